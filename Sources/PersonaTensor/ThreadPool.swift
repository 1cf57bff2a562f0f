import Foundation

/// Splits work over the machine's cores. One shared instance; `parallelFor` blocks until done.
public final class ThreadPool: @unchecked Sendable {
    public static let shared = ThreadPool(threads: ThreadPool.defaultThreadCount())
    public let threads: Int

    public init(threads: Int) { self.threads = max(1, threads) }

    static func defaultThreadCount() -> Int {
        if let s = ProcessInfo.processInfo.environment["PERSONA_THREADS"], let n = Int(s), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }

    /// Runs `body(i)` for i in 0..<n, spread over the pool's threads.
    public func parallelFor(_ n: Int, _ body: (Int) -> Void) {
        if n <= 0 { return }
        if n == 1 || threads == 1 {
            for i in 0..<n { body(i) }
            return
        }
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: n) { i in body(i) }
        }
    }
}
