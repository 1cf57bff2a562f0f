import Foundation
import PersonaTensor

/// A GGUF file's content before it is written: metadata and tensors in file order, each tensor's bytes made when
/// asked for (from mapped weights, or computed into a buffer of their own). `write(to:)` writes it;
/// `GGUFQuantizer` reads it as it reads a file, so a model folder is quantised without an intermediate GGUF.
public struct GGUFContent: GGUFSource {
    public let sourcePath: String
    public private(set) var metadataKeys: [String] = []
    public private(set) var metadata: [String: GGUFValue] = [:]
    public private(set) var tensorNamesInFileOrder: [String] = []
    private var tensors: [String: (dtype: DType, shape: [Int], make: () -> TensorBytes)] = [:]

    /// A tensor's bytes and what keeps them alive.
    public struct TensorBytes {
        public let data: UnsafeRawPointer
        public let count: Int
        public let owner: AnyObject
        public init(data: UnsafeRawPointer, count: Int, owner: AnyObject) {
            self.data = data
            self.count = count
            self.owner = owner
        }
        /// A copy of `bytes` in memory of its own.
        public init(copying bytes: UnsafeRawBufferPointer) {
            let b = OwnedBytes(count: bytes.count)
            if let base = bytes.baseAddress { b.pointer.copyMemory(from: base, byteCount: bytes.count) }
            self.init(data: b.pointer, count: bytes.count, owner: b)
        }
        /// `count` bytes filled by `fill`, in memory of their own.
        public init(count: Int, fill: (UnsafeMutableRawPointer) -> Void) {
            let b = OwnedBytes(count: count)
            fill(b.pointer)
            self.init(data: b.pointer, count: count, owner: b)
        }
    }

    public init(sourcePath: String) { self.sourcePath = sourcePath }

    /// Sets a metadata value (replacing an earlier one with the same key, keeping its position).
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if metadata.updateValue(value, forKey: key) == nil { metadataKeys.append(key) }
    }

    /// Adds a tensor; `make` is called each time its bytes are needed (once per write or quantisation).
    public mutating func addTensor(name: String, dtype: DType, shape: [Int], make: @escaping () -> TensorBytes) throws {
        guard tensors[name] == nil else { throw FormatError("GGUF content: duplicate tensor '\(name)'") }
        tensors[name] = (dtype, shape, make)
        tensorNamesInFileOrder.append(name)
    }

    /// Adds f32 values.
    public mutating func addTensor(name: String, shape: [Int], floats: [Float]) throws {
        try addTensor(name: name, dtype: .f32, shape: shape) { floats.withUnsafeBytes { TensorBytes(copying: $0) } }
    }

    public func tensorHeader(_ name: String) -> (dtype: DType, shape: [Int])? { tensors[name].map { ($0.dtype, $0.shape) } }

    public func withTensor<R>(_ name: String, _ body: (TensorInfo) throws -> R) throws -> R {
        guard let t = tensors[name] else { throw FormatError(file: sourcePath, "no tensor '\(name)'") }
        let b = t.make()
        return try withExtendedLifetime(b.owner) {
            try body(TensorInfo(name: name, dtype: t.dtype, shape: t.shape, data: b.data, byteCount: b.count, owner: b.owner))
        }
    }

    /// Writes the file atomically, one tensor's bytes made at a time (GGUFWriter's checks apply).
    public func write(to url: URL) throws {
        var g = GGUFWriter()
        for k in metadataKeys { g.set(k, metadata[k]!) }
        for name in tensorNamesInFileOrder {
            let t = tensors[name]!
            try g.addTensor(name: name, dtype: t.dtype, shape: t.shape) {
                // the bytes where they lie (no copy of the largest tensor, the embedding, beside the model), kept
                // alive by the Data until the writer has written it
                let b = t.make()
                return Data(sharing: b.data, count: b.count, owner: b.owner)
            }
        }
        try g.write(to: url)
    }
}

/// Heap bytes freed with the object.
final class OwnedBytes {
    let pointer: UnsafeMutableRawPointer
    init(count: Int) { pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64) }
    deinit { pointer.deallocate() }
}
