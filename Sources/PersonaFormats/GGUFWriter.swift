import Foundation
import PersonaTensor

/// Builds a GGUF v3 file (alignment 32). Shapes are given outermost-first and stored reversed as ggml `ne[]`.
public struct GGUFWriter {
    private var keys: [String] = []
    private var values: [String: GGUFValue] = [:]
    /// A tensor's bytes: given, or made by `write` when it reaches the tensor (then dropped), so that a file larger
    /// than memory is written holding one tensor at a time.
    private enum Payload { case data(Data), deferred(() throws -> Data) }
    private var tensors: [(name: String, dtype: DType, shape: [Int], byteCount: Int, payload: Payload)] = []
    private var names = Set<String>()
    static let alignment = 32

    public init() {}

    /// Sets a metadata value (replacing an earlier one with the same key, keeping its position).
    public mutating func set(_ key: String, _ value: GGUFValue) {
        if values.updateValue(value, forKey: key) == nil { keys.append(key) }
    }

    /// Adds a tensor; `data.count` must equal the dtype's size for `shape` (inner dim a multiple of the block size).
    public mutating func addTensor(name: String, dtype: DType, shape: [Int], data: Data) throws {
        let n = try checkedByteCount(name: name, dtype: dtype, shape: shape)
        guard n == data.count else {
            throw FormatError("GGUFWriter: tensor '\(name)' (\(dtype.rawValue), shape \(shapeText(shape))) needs \(n) bytes, got \(data.count)")
        }
        names.insert(name)
        tensors.append((name, dtype, shape, n, .data(data)))
    }

    /// Adds a tensor whose bytes `make` returns only when `write` comes to it, in the order tensors were added; they
    /// are written and released before the next tensor's are made. The count is checked then, as for `data`.
    public mutating func addTensor(name: String, dtype: DType, shape: [Int], make: @escaping () throws -> Data) throws {
        let n = try checkedByteCount(name: name, dtype: dtype, shape: shape)
        names.insert(name)
        tensors.append((name, dtype, shape, n, .deferred(make)))
    }

    private func checkedByteCount(name: String, dtype: DType, shape: [Int]) throws -> Int {
        guard !names.contains(name) else { throw FormatError("GGUFWriter: duplicate tensor '\(name)'") }
        guard shape.count <= GGUFFile.maxDims else {
            throw FormatError("GGUFWriter: tensor '\(name)' has \(shape.count) dimensions, GGUF allows \(GGUFFile.maxDims)")
        }
        switch expectedByteCount(dtype: dtype, shape: shape) {
        case let .success(n): return n
        case let .failure(e): throw FormatError("GGUFWriter: tensor '\(name)' (\(dtype.rawValue), shape \(shapeText(shape))): \(e)")
        }
    }

    /// Writes the file atomically (temporary file + rename); an error from a deferred tensor leaves no file.
    public func write(to url: URL) throws {
        var header = [UInt8]()
        header += Array("GGUF".utf8)
        append(&header, UInt32(3))
        append(&header, UInt64(tensors.count))
        append(&header, UInt64(keys.count))
        for k in keys {
            appendString(&header, k)
            let v = values[k]!
            append(&header, v.typeCode)
            try appendValue(&header, v, key: k, file: url.path)
        }
        var offset = 0
        for t in tensors {
            appendString(&header, t.name)
            append(&header, UInt32(t.shape.count))
            for d in t.shape.reversed() { append(&header, UInt64(d)) }
            append(&header, t.dtype.ggmlType)
            append(&header, UInt64(offset))
            offset = Checked.alignUp(offset + t.byteCount, Self.alignment)!
        }
        var w = try AtomicFileWriter(url: url)
        do {
            try w.write(header)
            try w.pad(to: Self.alignment)
            for t in tensors {
                switch t.payload {
                case let .data(d): try w.write(d)
                case let .deferred(make):
                    let d = try make()
                    guard d.count == t.byteCount else {
                        throw FormatError(file: url.path, "tensor '\(t.name)' (\(t.dtype.rawValue), shape \(shapeText(t.shape))) needs \(t.byteCount) bytes, its writer made \(d.count)")
                    }
                    try w.write(d)
                }
                try w.pad(to: Self.alignment)
            }
            try w.commit()
        } catch {
            w.abort_()
            throw error
        }
    }

    private func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }

    private func appendString(_ out: inout [UInt8], _ s: String) {
        let u = Array(s.utf8)
        append(&out, UInt64(u.count))
        out += u
    }

    private func appendValue(_ out: inout [UInt8], _ v: GGUFValue, key: String, file: String) throws {
        switch v {
        case let .uint8(x): append(&out, x)
        case let .int8(x): append(&out, x)
        case let .uint16(x): append(&out, x)
        case let .int16(x): append(&out, x)
        case let .uint32(x): append(&out, x)
        case let .int32(x): append(&out, x)
        case let .uint64(x): append(&out, x)
        case let .int64(x): append(&out, x)
        case let .float32(x): append(&out, x.bitPattern)
        case let .float64(x): append(&out, x.bitPattern)
        case let .bool(x): out.append(x ? 1 : 0)
        case let .string(s): appendString(&out, s)
        case let .array(a):
            // GGUF arrays are homogeneous; an empty array is written as an empty uint8 array.
            let et = a.first?.typeCode ?? 0
            guard a.allSatisfy({ $0.typeCode == et }) else {
                throw FormatError(file: file, "metadata '\(key)': array elements must all have the same type")
            }
            append(&out, et)
            append(&out, UInt64(a.count))
            for e in a { try appendValue(&out, e, key: key, file: file) }
        }
    }
}
