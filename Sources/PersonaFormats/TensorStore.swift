import Foundation
import PersonaTensor

/// One tensor inside a mapped file. `shape` is outermost-first (PyTorch order), e.g. a Linear weight is [out, in].
/// For GGUF this is the reverse of ggml's `ne[]` order. `data` points into the mapping; `owner` keeps it alive.
public struct TensorInfo: @unchecked Sendable {
    public let name: String
    public let dtype: DType
    public let shape: [Int]
    public let data: UnsafeRawPointer
    public let byteCount: Int
    public let owner: AnyObject

    public init(name: String, dtype: DType, shape: [Int], data: UnsafeRawPointer, byteCount: Int, owner: AnyObject) {
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.data = data
        self.byteCount = byteCount
        self.owner = owner
    }

    /// Number of elements (product of `shape`; 1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The tensor's bytes, without copying (valid while `owner` lives).
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: data, count: byteCount) }

    /// The tensor's bytes as a `Data` that holds `owner`, without copying them (a mapped file's pages are read when
    /// the Data is; writers pass tensors on this way).
    public var sharedData: Data { Data(sharing: data, count: byteCount, owner: owner) }
}

extension Data {
    /// `count` bytes at `pointer`, not copied: the Data keeps `owner` (which keeps the bytes) alive and never
    /// writes through the pointer (a mutation copies first).
    public init(sharing pointer: UnsafeRawPointer, count: Int, owner: AnyObject) {
        self.init(bytesNoCopy: UnsafeMutableRawPointer(mutating: pointer), count: count,
                  deallocator: .custom { _, _ in withExtendedLifetime(owner) {} })
    }
}

/// A set of named tensors backed by mapped files.
public protocol TensorStore: AnyObject {
    /// All tensor names, sorted.
    var tensorNames: [String] { get }
    func tensor(_ name: String) -> TensorInfo?
}

/// Byte size of a tensor of `dtype` and `shape` (outermost first), or a reason it is invalid.
/// The innermost dimension must be a multiple of the quantisation block size.
func expectedByteCount(dtype: DType, shape: [Int]) -> Result<Int, SizeError> {
    guard shape.allSatisfy({ $0 >= 0 }) else { return .failure(.negative) }
    guard let total = Checked.product(shape) else { return .failure(.overflow) }
    let inner = shape.last ?? 1
    guard let row = dtype.rowBytes(inner) else { return .failure(.blockMisaligned(inner: inner, block: dtype.blockSize)) }
    if inner == 0 { return .success(0) }
    guard let n = Checked.mul(total / inner, row) else { return .failure(.overflow) }
    return .success(n)
}

enum SizeError: Error, CustomStringConvertible {
    case negative, overflow, blockMisaligned(inner: Int, block: Int)
    var description: String {
        switch self {
        case .negative: return "negative dimension"
        case .overflow: return "size overflows"
        case let .blockMisaligned(inner, block): return "inner dimension \(inner) is not a multiple of the block size \(block)"
        }
    }
}

func shapeText(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
