import Foundation

/// Bounds concurrent generations: `maxActive` run, up to `maxQueued` wait, the rest are refused (-> 429).
actor GenerationLimiter {
    struct Busy: Error {}

    let maxActive: Int
    let maxQueued: Int
    private(set) var active = 0
    private var waiters: [(id: UInt64, cont: CheckedContinuation<Void, Error>)] = []
    private var nextID: UInt64 = 0

    init(maxActive: Int, maxQueued: Int) {
        self.maxActive = max(1, maxActive)
        self.maxQueued = max(0, maxQueued)
    }

    var queued: Int { waiters.count }

    /// Waits for a slot; throws `Busy` at once when the queue is full, `CancellationError` if cancelled while queued.
    func acquire() async throws -> Slot {
        if active < maxActive {
            active += 1
            return Slot(self)
        }
        guard waiters.count < maxQueued else { throw Busy() }
        nextID += 1
        let id = nextID
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
                if Task.isCancelled { c.resume(throwing: CancellationError()) } else { waiters.append((id, c)) }
            }
        } onCancel: {
            Task { await self.cancelWaiter(id) }
        }
        return Slot(self)
    }

    private func cancelWaiter(_ id: UInt64) {
        if let i = waiters.firstIndex(where: { $0.id == id }) {
            waiters.remove(at: i).cont.resume(throwing: CancellationError())
        }
    }

    fileprivate func release() {
        if waiters.isEmpty {
            active = max(0, active - 1)
        } else {
            // Hand the slot straight to the next waiter (active stays the same).
            waiters.removeFirst().cont.resume()
        }
    }

    /// A held slot; released once, explicitly or when the last reference goes away.
    final class Slot: @unchecked Sendable {
        private let limiter: GenerationLimiter
        private let lock = NSLock()
        private var released = false
        init(_ l: GenerationLimiter) { limiter = l }

        func release() {
            lock.lock()
            let first = !released
            released = true
            lock.unlock()
            if first { let l = limiter; Task { await l.release() } }
        }

        deinit { release() }
    }
}
