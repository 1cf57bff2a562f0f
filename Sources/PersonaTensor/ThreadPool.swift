import CPersonaKernels
import Foundation

/// A persistent pool of worker threads (C, `pk_pool_*`): the caller works too, idle workers spin briefly and
/// then sleep, and tasks are handed out one index at a time so a preempted thread delays nobody.
/// `parallelFor` blocks until done; nested or concurrent calls run serially on the calling thread.
public final class ThreadPool: @unchecked Sendable {
    /// The pool the engine uses: `PERSONA_THREADS` threads, else one per active core.
    public static let shared = ThreadPool(threads: ThreadPool.defaultThreadCount())
    /// Threads that work on a loop, the caller included.
    public let threads: Int
    @usableFromInline let pool: OpaquePointer?

    public init(threads: Int) {
        let n = max(1, threads)
        pool = n > 1 ? pk_pool_create(Int32(n)) : nil
        self.threads = pool.map { Int(pk_pool_threads($0)) } ?? 1
    }

    deinit { if let pool { pk_pool_destroy(pool) } }

    static func defaultThreadCount() -> Int {
        if let s = ProcessInfo.processInfo.environment["PERSONA_THREADS"], let n = Int(s), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// Runs `body(i)` for i in 0..<n, spread over the pool's threads.
    /// Inlinable so the optimiser keeps the closure's context on the stack: the decode loop must not allocate.
    @inlinable
    public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        guard let pool, n > 1 else {
            for i in 0..<n { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            var task = body
            withUnsafeMutablePointer(to: &task) { ctx in
                pk_pool_run(pool, Int64(n), { ctx, i in
                    ctx!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(Int(i))
                }, ctx)
            }
        }
    }

    /// Allocation-free form for hot loops: runs `task(context, i)` for i in 0..<n. `task` must not capture
    /// anything (a C function pointer); pass what it needs through `context`.
    public func parallelFor(_ n: Int, context: UnsafeMutableRawPointer, _ task: @convention(c) (UnsafeMutableRawPointer?, Int64) -> Void) {
        if n <= 0 { return }
        guard let pool, n > 1 else {
            for i in 0..<n { task(context, Int64(i)) }
            return
        }
        pk_pool_run(pool, Int64(n), task, context)
    }
}
