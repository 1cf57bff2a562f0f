import Foundation
import PersonaTensor

/// A GGUF file (versions 2 and 3, little-endian), memory-mapped. Tensor shapes are reported outermost-first
/// (the reverse of ggml's `ne[]`). Every count, length, offset and size is checked against the file.
public final class GGUFFile: TensorStore {
    public let url: URL
    public let version: Int
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    /// Byte alignment of the tensor data (general.alignment, default 32).
    public let alignment: Int
    /// Offset of the tensor data section in the file.
    public let dataOffset: Int
    public let tensorNames: [String]
    private let tensors: [String: TensorInfo]
    private let file: MappedFile

    /// general.architecture, e.g. "llama".
    public var architecture: String? { metadata["general.architecture"]?.string }

    public func tensor(_ name: String) -> TensorInfo? { tensors[name] }

    /// Tensor names in file order.
    public let tensorNamesInFileOrder: [String]

    static let maxDims = 4          // GGML_MAX_DIMS
    static let maxArrayDepth = 4    // nested arrays deeper than this are refused

    public convenience init(url: URL) throws {
        try self.init(file: MappedFile(url: url))
    }

    /// Parses an already mapped (or in-memory) file.
    init(file: MappedFile) throws {
        self.file = file
        let url = file.url
        self.url = url
        let name = url.path
        var r = ByteReader(file.bytes, file: name)

        let magic = try r.bytes(4, "magic")
        guard Array(magic) == Array("GGUF".utf8) else {
            throw FormatError(file: name, "not a GGUF file (magic \(Array(magic).map { String(format: "%02x", $0) }.joined()))")
        }
        let v = try r.u32("version")
        switch v {
        case 2, 3: version = Int(v)
        case 1: throw FormatError(file: name, "GGUF version 1 is not supported (re-convert the model)")
        default:
            if v.byteSwapped == 2 || v.byteSwapped == 3 {
                throw FormatError(file: name, "big-endian GGUF is not supported")
            }
            throw FormatError(file: name, "unsupported GGUF version \(v)")
        }
        let tensorCount64 = try r.u64("tensor_count")
        let kvCount64 = try r.u64("metadata_kv_count")
        // Each tensor info needs >= 8+4+4+8 bytes, each key/value >= 8+4+1: refuse counts the file cannot hold.
        guard let tensorCount = Int(exactly: tensorCount64), tensorCount <= r.remaining / 24 else {
            throw FormatError(file: name, "tensor_count \(tensorCount64) is larger than the file can hold")
        }
        guard let kvCount = Int(exactly: kvCount64), kvCount <= r.remaining / 13 else {
            throw FormatError(file: name, "metadata_kv_count \(kvCount64) is larger than the file can hold")
        }

        var meta = [String: GGUFValue](minimumCapacity: kvCount)
        var keys = [String]()
        keys.reserveCapacity(kvCount)
        for i in 0 ..< kvCount {
            let key = try Self.readString(&r, "metadata key #\(i)")
            let type = try r.u32("type of metadata '\(key)'")
            let value = try Self.readValue(&r, type: type, field: "metadata '\(key)'", depth: 0)
            guard meta.updateValue(value, forKey: key) == nil else {
                throw FormatError(file: name, "duplicate metadata key '\(key)'")
            }
            keys.append(key)
        }
        metadata = meta
        metadataKeys = keys

        var align = 32
        if let a = meta["general.alignment"] {
            guard case let .uint32(av) = a, av > 0, av & (av - 1) == 0, av <= 1 << 20 else {
                throw FormatError(file: name, "general.alignment must be a power-of-two uint32, got \(a)")
            }
            align = Int(av)
        }
        alignment = align

        struct Raw { let name: String; let dtype: DType; let shape: [Int]; let offset: Int; let size: Int }
        var raws = [Raw]()
        raws.reserveCapacity(tensorCount)
        var seen = Set<String>(minimumCapacity: tensorCount)
        for i in 0 ..< tensorCount {
            let tname = try Self.readString(&r, "name of tensor #\(i)")
            guard seen.insert(tname).inserted else { throw FormatError(file: name, "duplicate tensor name '\(tname)'") }
            let nDims = try r.u32("n_dims of tensor '\(tname)'")
            guard nDims <= UInt32(Self.maxDims) else {
                throw FormatError(file: name, "tensor '\(tname)': n_dims \(nDims) exceeds \(Self.maxDims)")
            }
            var ne = [Int]()
            for d in 0 ..< Int(nDims) {
                let x = try r.u64("ne[\(d)] of tensor '\(tname)'")
                guard let xi = Int(exactly: x) else {
                    throw FormatError(file: name, "tensor '\(tname)': dimension ne[\(d)] = \(x) is absurd")
                }
                ne.append(xi)
            }
            let type = try r.u32("type of tensor '\(tname)'")
            guard let dtype = DType(ggmlType: type) else {
                throw FormatError(file: name, "tensor '\(tname)': unsupported GGML type \(type) (supported: \(DType.allCases.map { "\($0.rawValue)=\($0.ggmlType)" }.joined(separator: ", ")))")
            }
            let off64 = try r.u64("offset of tensor '\(tname)'")
            guard let off = Int(exactly: off64) else {
                throw FormatError(file: name, "tensor '\(tname)': offset \(off64) out of range")
            }
            guard off % align == 0 else {
                throw FormatError(file: name, "tensor '\(tname)': offset \(off) is not a multiple of the alignment \(align)")
            }
            let shape = Array(ne.reversed())
            let size: Int
            switch expectedByteCount(dtype: dtype, shape: shape) {
            case let .success(s): size = s
            case let .failure(e): throw FormatError(file: name, "tensor '\(tname)' (\(dtype.rawValue), shape \(shapeText(shape))): \(e)")
            }
            raws.append(Raw(name: tname, dtype: dtype, shape: shape, offset: off, size: size))
        }

        guard let dataStart = Checked.alignUp(r.offset, align) else {
            throw FormatError(file: name, "data section offset overflows")
        }
        // A file with no tensors (vocab-only) may end right after the header, without padding.
        if tensorCount > 0 && dataStart > file.bytes.count {
            throw FormatError(file: name, "truncated: tensor data section starts at \(dataStart) but the file has \(file.bytes.count) bytes")
        }
        dataOffset = dataStart
        let dataSize = max(file.bytes.count - dataStart, 0)

        var infos = [String: TensorInfo](minimumCapacity: tensorCount)
        var ranges = [(start: Int, end: Int, name: String)]()
        for t in raws {
            guard let end = Checked.add(t.offset, t.size), end <= dataSize else {
                throw FormatError(file: name, "tensor '\(t.name)': bytes [\(t.offset), +\(t.size)) of the data section lie outside the file (data section has \(dataSize) bytes)")
            }
            // Non-empty file here since dataSize >= end and the header is non-empty.
            guard let base = file.bytes.baseAddress else { throw FormatError(file: name, "empty file") }
            infos[t.name] = TensorInfo(name: t.name, dtype: t.dtype, shape: t.shape,
                                       data: base + dataStart + t.offset, byteCount: t.size, owner: file)
            if t.size > 0 { ranges.append((t.offset, end, t.name)) }
        }
        ranges.sort { $0.start < $1.start }
        for i in ranges.indices.dropFirst() where ranges[i].start < ranges[i - 1].end {
            throw FormatError(file: name, "tensors '\(ranges[i - 1].name)' and '\(ranges[i].name)' overlap")
        }
        tensors = infos
        tensorNamesInFileOrder = raws.map(\.name)
        tensorNames = raws.map(\.name).sorted()
    }

    static func readString(_ r: inout ByteReader, _ field: @autoclosure () -> String) throws -> String {
        let n = try r.u64("length of \(field())")
        guard let len = Int(exactly: n), len <= r.remaining else {
            throw r.fail("truncated or corrupt: \(field()) has length \(n) but only \(r.remaining) bytes remain")
        }
        return try r.utf8(len, field())
    }

    /// Minimum encoded size of one value of a GGUF type (for sanity-checking array counts).
    static func minSize(ofType t: UInt32) -> Int? {
        switch t {
        case 0, 1, 7: return 1
        case 2, 3: return 2
        case 4, 5, 6: return 4
        case 10, 11, 12: return 8
        case 8: return 8    // length prefix
        case 9: return 12   // element type + count
        default: return nil
        }
    }

    static func readValue(_ r: inout ByteReader, type: UInt32, field: @autoclosure () -> String, depth: Int) throws -> GGUFValue {
        switch type {
        case 0: return .uint8(try r.read(UInt8.self, field()))
        case 1: return .int8(try r.read(Int8.self, field()))
        case 2: return .uint16(try r.read(UInt16.self, field()))
        case 3: return .int16(try r.read(Int16.self, field()))
        case 4: return .uint32(try r.read(UInt32.self, field()))
        case 5: return .int32(try r.read(Int32.self, field()))
        case 6: return .float32(try r.f32(field()))
        case 7:
            let b = try r.u8(field())
            guard b <= 1 else { throw r.fail("\(field()): bool value \(b) is not 0 or 1") }
            return .bool(b == 1)
        case 8: return .string(try readString(&r, field()))
        case 9:
            guard depth < maxArrayDepth else { throw r.fail("\(field()): arrays nested deeper than \(maxArrayDepth)") }
            let et = try r.u32("element type of \(field())")
            guard let minSize = minSize(ofType: et) else { throw r.fail("\(field()): unknown array element type \(et)") }
            let n = try r.u64("count of \(field())")
            guard let count = Int(exactly: n), count <= r.remaining / minSize else {
                throw r.fail("\(field()): array count \(n) is larger than the \(r.remaining) remaining bytes can hold")
            }
            return .array(try readArray(&r, elementType: et, count: count, field: field(), depth: depth))
        case 10: return .uint64(try r.u64(field()))
        case 11: return .int64(try r.read(Int64.self, field()))
        case 12: return .float64(try r.f64(field()))
        default: throw r.fail("\(field()): unknown value type \(type)")
        }
    }

    /// Reads `count` elements; fixed-size types are bounds-checked once for the whole array.
    static func readArray(_ r: inout ByteReader, elementType et: UInt32, count: Int, field: @autoclosure () -> String, depth: Int) throws -> [GGUFValue] {
        var out = [GGUFValue]()
        out.reserveCapacity(count)
        switch et {
        case 8:
            for i in 0 ..< count {
                let n = try r.u64("length of \(field())[\(i)]")
                guard let len = Int(exactly: n), len <= r.remaining else {
                    throw r.fail("truncated or corrupt: \(field())[\(i)] has length \(n) but only \(r.remaining) bytes remain")
                }
                out.append(.string(try r.utf8(len, "\(field())[\(i)]")))
            }
        case 9:
            for i in 0 ..< count {
                out.append(try readValue(&r, type: 9, field: "\(field())[\(i)]", depth: depth + 1))
            }
        default:
            let size = minSize(ofType: et)!  // caller validated et
            try r.need(size * count, field())  // count <= remaining / size, so no overflow
            for _ in 0 ..< count {
                out.append(try readValue(&r, type: et, field: field(), depth: depth + 1))
            }
        }
        return out
    }
}
