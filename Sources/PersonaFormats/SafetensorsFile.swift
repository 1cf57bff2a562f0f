import Foundation
import PersonaTensor

/// A `.safetensors` file, memory-mapped: 8-byte little-endian header length, JSON header, then the data section.
/// Every tensor's `data_offsets` must lie inside the data section, match dtype x shape, and not overlap another.
public final class SafetensorsFile: TensorStore {
    public let url: URL
    /// The header's `__metadata__` map.
    public let metadata: [String: String]
    public let tensorNames: [String]
    /// Tensors whose dtype is a valid safetensors dtype that `DType` cannot hold (e.g. I64 buffers): name -> dtype.
    /// They are bounds-checked but not served by `tensor(_:)`.
    public let unsupportedTensors: [String: String]
    private let tensors: [String: TensorInfo]
    private let file: MappedFile

    /// The format's own header limit (safetensors refuses headers over 100 MB).
    static let maxHeaderBytes = 100_000_000

    /// Byte width of every dtype the safetensors format defines (sub-byte types are not accepted).
    static let knownDTypeWidths: [String: Int] = [
        "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
        "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
        "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
    ]

    public func tensor(_ name: String) -> TensorInfo? { tensors[name] }

    public convenience init(url: URL) throws {
        try self.init(file: MappedFile(url: url))
    }

    /// Parses an already mapped (or in-memory) file.
    init(file: MappedFile) throws {
        self.file = file
        let url = file.url
        self.url = url
        let fname = url.path
        let bytes = file.bytes
        guard bytes.count >= 8 else {
            throw FormatError(file: fname, "truncated: \(bytes.count) bytes, too short for the 8-byte header length")
        }
        let n64 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard n64 <= UInt64(Self.maxHeaderBytes) else {
            throw FormatError(file: fname, "header length \(n64) exceeds the 100 MB limit (corrupt or not a safetensors file)")
        }
        let headerLen = Int(n64)
        guard headerLen >= 2, headerLen <= bytes.count - 8 else {
            throw FormatError(file: fname, "header length \(headerLen) does not fit in the file (\(bytes.count) bytes)")
        }
        let dataStart = 8 + headerLen
        let dataSize = bytes.count - dataStart
        let headerData = Data(UnsafeRawBufferPointer(rebasing: bytes[8 ..< dataStart]))
        guard headerData.first == UInt8(ascii: "{") else {
            throw FormatError(file: fname, "header is not a JSON object")
        }
        let root: [String: Any]
        do {
            guard let obj = try JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
                throw FormatError(file: fname, "header is not a JSON object")
            }
            root = obj
        } catch let e as FormatError {
            throw e
        } catch {
            throw FormatError(file: fname, "header is not valid JSON (\(error.localizedDescription))")
        }

        var meta = [String: String]()
        if let m = root["__metadata__"] {
            guard let mm = m as? [String: Any] else { throw FormatError(file: fname, "__metadata__ is not an object") }
            for (k, v) in mm {
                guard let s = v as? String else { throw FormatError(file: fname, "__metadata__ '\(k)' is not a string") }
                meta[k] = s
            }
        }
        metadata = meta

        var infos = [String: TensorInfo](minimumCapacity: root.count)
        var unsupported = [String: String]()
        var ranges = [(start: Int, end: Int, name: String)]()
        for (name, value) in root where name != "__metadata__" {
            guard let t = value as? [String: Any] else { throw FormatError(file: fname, "tensor '\(name)': entry is not an object") }
            guard let dtName = t["dtype"] as? String else { throw FormatError(file: fname, "tensor '\(name)': missing or non-string dtype") }
            guard let width = Self.knownDTypeWidths[dtName] else {
                throw FormatError(file: fname, "tensor '\(name)': unknown dtype '\(dtName)'")
            }
            guard let shapeAny = t["shape"] as? [Any] else { throw FormatError(file: fname, "tensor '\(name)': missing or non-array shape") }
            var shape = [Int]()
            for d in shapeAny {
                guard let di = jsonInt(d), di >= 0 else {
                    throw FormatError(file: fname, "tensor '\(name)': shape entry \(d) is not a non-negative integer")
                }
                shape.append(di)
            }
            guard let offs = t["data_offsets"] as? [Any], offs.count == 2,
                  let start = jsonInt(offs[0]), let end = jsonInt(offs[1]) else {
                throw FormatError(file: fname, "tensor '\(name)': data_offsets must be two integers")
            }
            guard start >= 0, start <= end, end <= dataSize else {
                throw FormatError(file: fname, "tensor '\(name)': data_offsets [\(start), \(end)] outside the data section (\(dataSize) bytes)")
            }
            guard let count = Checked.product(shape), let expected = Checked.mul(count, width) else {
                throw FormatError(file: fname, "tensor '\(name)': shape \(shapeText(shape)) overflows")
            }
            guard end - start == expected else {
                throw FormatError(file: fname, "tensor '\(name)': \(end - start) bytes but \(dtName) \(shapeText(shape)) needs \(expected)")
            }
            if end > start { ranges.append((start, end, name)) }
            guard let dtype = DType(safetensorsName: dtName) else {
                unsupported[name] = dtName
                continue
            }
            // dataSize >= end > ... ; the mapping is non-empty because the header is.
            guard let base = bytes.baseAddress else { throw FormatError(file: fname, "empty file") }
            infos[name] = TensorInfo(name: name, dtype: dtype, shape: shape, data: base + dataStart + start,
                                     byteCount: expected, owner: file)
        }
        ranges.sort { $0.start < $1.start }
        for i in ranges.indices.dropFirst() where ranges[i].start < ranges[i - 1].end {
            throw FormatError(file: fname, "tensors '\(ranges[i - 1].name)' and '\(ranges[i].name)' overlap")
        }
        tensors = infos
        unsupportedTensors = unsupported
        tensorNames = infos.keys.sorted()
    }
}

/// An exact non-fractional JSON number as Int (JSONSerialization yields NSNumber; 1.5 or 1e30 are refused).
func jsonInt(_ v: Any) -> Int? {
    if let i = v as? Int { return i }
    if let n = v as? NSNumber {
        // Reject fractional and out-of-range numbers.
        let d = n.doubleValue
        guard d.isFinite, d == d.rounded(), abs(d) < 9.0e18 else { return nil }
        return n.intValue
    }
    return nil
}
