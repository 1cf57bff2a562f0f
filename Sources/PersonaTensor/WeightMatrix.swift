import CPersonaKernels

/// A 2-D weight `[rows, cols]` kept in its stored type (usually inside a memory map).
/// Rows are packed: `dtype.rowBytes(cols)` bytes each.
public struct WeightMatrix: @unchecked Sendable {
    public let data: UnsafeRawPointer
    public let dtype: DType
    public let rows: Int
    public let cols: Int
    /// Keeps the storage (mapping or heap buffer) alive.
    public let owner: AnyObject?

    public init(data: UnsafeRawPointer, dtype: DType, rows: Int, cols: Int, owner: AnyObject?) {
        self.data = data
        self.dtype = dtype
        self.rows = rows
        self.cols = cols
        self.owner = owner
    }

    public var rowBytes: Int { dtype.rowBytes(cols) ?? 0 }
    public var byteCount: Int { rowBytes * rows }

    /// Converts row `r` to f32 into `out[0..<cols]`.
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        precondition(r >= 0 && r < rows, "row \(r) out of range 0..<\(rows)")
        pk_dequant_row(dtype.kernelCode, data + r * rowBytes, Int64(cols), out)
    }

    /// Row `r` as a new f32 array (not for hot paths).
    public func rowArray(_ r: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: cols) { buf, n in
            dequantizeRow(r, into: buf.baseAddress!)
            n = cols
        }
    }

    /// An owned f32 copy of a whole matrix, e.g. for tests.
    public func toFloatArray() -> [Float] {
        var out = [Float](repeating: 0, count: rows * cols)
        out.withUnsafeMutableBufferPointer { b in
            for r in 0..<rows { dequantizeRow(r, into: b.baseAddress! + r * cols) }
        }
        return out
    }
}

/// Heap storage owned by a WeightMatrix made in memory (tests, synthesised weights).
public final class OwnedBytes: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let count: Int
    public init(count: Int) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
    }
    deinit { pointer.deallocate() }
}

extension WeightMatrix {
    /// Builds a matrix of `dtype` from f32 values (f32/f16/bf16/q8_0 only).
    public static func from(_ values: [Float], rows: Int, cols: Int, dtype: DType) -> WeightMatrix {
        precondition(values.count == rows * cols)
        let rb = dtype.rowBytes(cols)!
        let storage = OwnedBytes(count: rb * rows)
        values.withUnsafeBufferPointer { v in
            for r in 0..<rows {
                let src = v.baseAddress! + r * cols
                let dst = storage.pointer + r * rb
                switch dtype {
                case .f32: dst.copyMemory(from: src, byteCount: rb)
                case .f16:
                    let d = dst.assumingMemoryBound(to: UInt16.self)
                    for c in 0..<cols { d[c] = pk_f32_to_f16(src[c]) }
                case .bf16:
                    let d = dst.assumingMemoryBound(to: UInt16.self)
                    for c in 0..<cols { d[c] = pk_f32_to_bf16(src[c]) }
                case .q8_0: pk_quantize_row_q8_0(src, Int64(cols), dst)
                default: preconditionFailure("WeightMatrix.from does not quantise to \(dtype)")
                }
            }
        }
        return WeightMatrix(data: UnsafeRawPointer(storage.pointer), dtype: dtype, rows: rows, cols: cols, owner: storage)
    }
}
