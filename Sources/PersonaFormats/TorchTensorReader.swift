import Foundation
import PersonaTensor

/// Reads tensors from a PyTorch `torch.save` file (zip archive: `<name>/data.pkl` + `<name>/data/<key>`),
/// e.g. persona_vectors' `*_response_avg_diff.pt`. Only plain data is read: the pickle is interpreted by a tiny
/// allow-listed machine that never imports or executes anything.
public enum TorchTensorReader {
    /// A single saved tensor is returned under the key "" ; a dict of tensors under its keys
    /// (integer keys as decimal strings). float32 / float16 / bfloat16, contiguous layouts only.
    public static func readTensors(url: URL) throws -> [String: (dtype: DType, shape: [Int], data: Data)] {
        try readTensors(file: MappedFile(url: url))
    }

    static func readTensors(file: MappedFile) throws -> [String: (dtype: DType, shape: [Int], data: Data)] {
        let fname = file.url.path
        if file.bytes.count >= 2, file.bytes[0] == 0x80 {
            throw FormatError(file: fname, "legacy (pre-1.6, non-zip) torch format is not supported; re-save with torch.save")
        }
        let archive = try ZipArchive(file: file)
        let pkls = archive.entries.keys.filter { $0.hasSuffix("/data.pkl") && $0.split(separator: "/").count == 2 }
        guard pkls.count == 1, let pklName = pkls.first else {
            throw FormatError(file: fname, "not a torch.save archive (expected one <name>/data.pkl, found \(pkls.count))")
        }
        let prefix = String(pklName.dropLast("data.pkl".count))
        if let bo = archive.entries[prefix + "byteorder"], String(decoding: archive.bytes(of: bo), as: UTF8.self) != "little" {
            throw FormatError(file: fname, "big-endian torch archives are not supported")
        }
        let root = try TorchPickle(file: fname).run(archive.bytes(of: archive.entries[pklName]!))

        func materialise(_ t: TensorRef, _ key: String) throws -> (dtype: DType, shape: [Int], data: Data) {
            let label = key.isEmpty ? "tensor" : "tensor '\(key)'"
            let dtype: DType
            switch t.storage.storageType {
            case "torch.FloatStorage": dtype = .f32
            case "torch.HalfStorage": dtype = .f16
            case "torch.BFloat16Storage": dtype = .bf16
            default: throw FormatError(file: fname, "\(label): unsupported storage \(t.storage.storageType)")
            }
            let width = dtype.blockBytes
            guard let entry = archive.entries[prefix + "data/" + t.storage.key] else {
                throw FormatError(file: fname, "\(label): storage data/\(t.storage.key) missing from the archive")
            }
            guard let storageBytes = Checked.mul(t.storage.numel, width), storageBytes == entry.size else {
                throw FormatError(file: fname, "\(label): storage data/\(t.storage.key) has \(entry.size) bytes, expected \(t.storage.numel) x \(width)")
            }
            guard let count = Checked.product(t.size) else { throw FormatError(file: fname, "\(label): size overflows") }
            // Contiguous (row-major) strides, ignoring dimensions of extent 1.
            var expect = 1
            for (d, s) in zip(t.size, t.stride).reversed() {
                if d != 1 && s != expect { throw FormatError(file: fname, "\(label): non-contiguous strides \(t.stride) for size \(t.size)") }
                expect = Checked.mul(expect, d) ?? Int.max
            }
            guard let end = Checked.add(t.offset, count), end <= t.storage.numel else {
                throw FormatError(file: fname, "\(label): elements [\(t.offset), +\(count)) outside its storage of \(t.storage.numel)")
            }
            let raw = archive.bytes(of: entry)
            let slice = UnsafeRawBufferPointer(rebasing: raw[(t.offset * width) ..< (end * width)])
            return (dtype, t.size, Data(slice))
        }

        switch root {
        case let .tensor(t):
            return ["": try materialise(t, "")]
        case let .dict(d):
            var out = [String: (dtype: DType, shape: [Int], data: Data)]()
            for (k, v) in d.items {
                let key: String
                switch k {
                case let .string(s): key = s
                case let .int(i): key = String(i)
                default: throw FormatError(file: fname, "dict key of type \(k.kind) is not supported")
                }
                guard case let .tensor(t) = v else {
                    throw FormatError(file: fname, "value for '\(key)' is a \(v.kind), not a tensor")
                }
                guard out[key] == nil else { throw FormatError(file: fname, "duplicate key '\(key)'") }
                out[key] = try materialise(t, key)
            }
            return out
        default:
            throw FormatError(file: fname, "top-level object is a \(root.kind); expected a tensor or a dict of tensors")
        }
    }
}
