import CPersonaKernels
import PersonaTensor

/// How a KV cache stores keys and values. `.f32` keeps them as computed (the default: exact precision matches
/// transformers in f32). `.f16` rounds each to f16 (nearest even) as it is written, as llama.cpp's default cache
/// does: half the memory, and half the bytes a long context's attention reads each step. The attention kernels
/// widen f16 exactly as they load it, so an f16 cache gives what an f32 cache holding the rounded values gives.
public enum KVCacheType: String, Sendable, CaseIterable {
    case f32, f16

    public var elementSize: Int { self == .f16 ? 2 : 4 }
    var kernelCode: Int32 { self == .f16 ? Int32(PK_F16) : Int32(PK_F32) }
}

/// Keys and values of every layer for positions 0..<count, preallocated to `capacity` positions
/// so decoding appends without allocating.
public final class KVCache: @unchecked Sendable {
    public let capacity: Int
    public let numLayers: Int
    public let kvDim: Int
    public let type: KVCacheType
    /// Positions already filled.
    public internal(set) var count = 0
    let keys: [UnsafeMutableRawPointer]    // per layer (capacity, kvDim) elements of `type`
    let values: [UnsafeMutableRawPointer]  // per layer (capacity, kvDim) elements of `type`

    public init(numLayers: Int, kvDim: Int, capacity: Int, type: KVCacheType = .f32) {
        self.capacity = capacity
        self.numLayers = numLayers
        self.kvDim = kvDim
        self.type = type
        let bytes = max(1, capacity * kvDim) * type.elementSize
        keys = (0..<numLayers).map { _ in UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64) }
        values = (0..<numLayers).map { _ in UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64) }
    }

    deinit {
        keys.forEach { $0.deallocate() }
        values.forEach { $0.deallocate() }
    }

    /// Forgets positions from `n` on (e.g. to reuse a shared prompt prefix).
    public func truncate(to n: Int) { count = max(0, min(n, count)) }
    public func reset() { count = 0 }

    public var byteCount: Int { 2 * numLayers * capacity * kvDim * type.elementSize }

    /// Element `index` (counted in elements of `type`) of a layer's keys or values, as the kernels take it.
    @inline(__always) func element(_ base: UnsafeMutableRawPointer, _ index: Int) -> UnsafeMutableRawPointer {
        base + index * type.elementSize
    }

    /// Writes `count` values from `source` at element `index` of a layer's keys or values, rounding to f16 for `.f16`.
    @inline(__always) func write(_ base: UnsafeMutableRawPointer, at index: Int, from source: UnsafePointer<Float>, count: Int) {
        switch type {
        case .f32: element(base, index).assumingMemoryBound(to: Float.self).update(from: source, count: count)
        case .f16: pk_f32_to_f16_row(source, element(base, index).assumingMemoryBound(to: UInt16.self), Int64(count))
        }
    }
}
