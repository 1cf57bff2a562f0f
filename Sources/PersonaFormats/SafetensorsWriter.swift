import Foundation
import PersonaTensor

/// Writes `.safetensors` files (F32 / F16 / BF16), atomically.
public enum SafetensorsWriter {
    /// Writes tensors in the given order; the JSON header is padded with spaces to a multiple of 8 bytes.
    public static func write(_ tensors: [(name: String, dtype: DType, shape: [Int], data: Data)],
                             metadata: [String: String], to url: URL) throws {
        let file = url.path
        var names = Set<String>()
        var header = "{"
        var first = true
        if !metadata.isEmpty {
            header += "\"__metadata__\":{"
            header += metadata.sorted(by: { $0.key < $1.key })
                .map { "\(jsonString($0.key)):\(jsonString($0.value))" }.joined(separator: ",")
            header += "}"
            first = false
        }
        var offset = 0
        for t in tensors {
            guard t.name != "__metadata__", names.insert(t.name).inserted else {
                throw FormatError(file: file, "tensor name '\(t.name)' is duplicated or reserved")
            }
            guard let dt = t.dtype.safetensorsName else {
                throw FormatError(file: file, "tensor '\(t.name)': dtype \(t.dtype.rawValue) cannot be stored in safetensors")
            }
            guard case let .success(n) = expectedByteCount(dtype: t.dtype, shape: t.shape), n == t.data.count else {
                throw FormatError(file: file, "tensor '\(t.name)': \(t.data.count) bytes do not match \(dt) \(shapeText(t.shape))")
            }
            if !first { header += "," }
            first = false
            header += "\(jsonString(t.name)):{\"dtype\":\"\(dt)\",\"shape\":\(shapeText(t.shape).replacingOccurrences(of: " ", with: "")),\"data_offsets\":[\(offset),\(offset + n)]}"
            offset += n
        }
        header += "}"
        var hb = Array(header.utf8)
        while hb.count % 8 != 0 { hb.append(UInt8(ascii: " ")) }
        var w = try AtomicFileWriter(url: url)
        do {
            try w.write(withUnsafeBytes(of: UInt64(hb.count).littleEndian) { Array($0) })
            try w.write(hb)
            for t in tensors { try w.write(t.data) }
            try w.commit()
        } catch {
            w.abort_()
            throw error
        }
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
}
