import PersonaTensor

/// Keys and values of every layer for positions 0..<count, preallocated to `capacity` positions
/// so decoding appends without allocating.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let numLayers: Int
    public let kvDim: Int
    /// Positions already filled.
    public internal(set) var count = 0
    let keys: [UnsafeMutablePointer<Float>]    // per layer (capacity, kvDim)
    let values: [UnsafeMutablePointer<Float>]  // per layer (capacity, kvDim)

    public init(numLayers: Int, kvDim: Int, capacity: Int) {
        self.capacity = capacity
        self.numLayers = numLayers
        self.kvDim = kvDim
        keys = (0..<numLayers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: max(1, capacity * kvDim)) }
        values = (0..<numLayers).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: max(1, capacity * kvDim)) }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Forgets positions from `n` on (e.g. to reuse a shared prompt prefix).
    public func truncate(to n: Int) { count = max(0, min(n, count)) }
    public func reset() { count = 0 }

    public var byteCount: Int { 2 * numLayers * capacity * kvDim * MemoryLayout<Float>.size }
}
