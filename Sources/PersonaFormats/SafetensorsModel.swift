import Foundation

/// A Hugging Face model folder's weights: `model.safetensors`, or the shards listed in
/// `model.safetensors.index.json` (`weight_map`), merged into one store.
public final class SafetensorsModel: TensorStore {
    public let directory: URL
    /// The opened shard files, by file name.
    public let shards: [String: SafetensorsFile]
    public let tensorNames: [String]
    private let owners: [String: SafetensorsFile]

    public func tensor(_ name: String) -> TensorInfo? { owners[name]?.tensor(name) }

    public init(directory: URL) throws {
        self.directory = directory
        let fm = FileManager.default
        let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
        let singleURL = directory.appendingPathComponent("model.safetensors")
        var files = [String: SafetensorsFile]()
        var owners = [String: SafetensorsFile]()

        if fm.fileExists(atPath: indexURL.path) {
            let ipath = indexURL.path
            let data: Data
            do { data = try Data(contentsOf: indexURL) } catch {
                throw FormatError(file: ipath, "cannot read (\(error.localizedDescription))")
            }
            guard data.count <= 100_000_000 else { throw FormatError(file: ipath, "index is larger than 100 MB") }
            let obj: Any
            do { obj = try JSONSerialization.jsonObject(with: data) } catch {
                throw FormatError(file: ipath, "not valid JSON (\(error.localizedDescription))")
            }
            guard let root = obj as? [String: Any], let wm = root["weight_map"] as? [String: Any] else {
                throw FormatError(file: ipath, "missing or non-object weight_map")
            }
            var map = [String: String]()
            for (tensor, f) in wm {
                guard let fn = f as? String else { throw FormatError(file: ipath, "weight_map '\(tensor)' is not a string") }
                // Shards live in the folder itself: no paths, so an index cannot point outside it. Scalars, not
                // Characters: "/" followed by a combining mark is one Character, but still a separator to the OS.
                guard !fn.isEmpty, !fn.unicodeScalars.contains("/"), !fn.unicodeScalars.contains("\\"), fn != ".", fn != ".." else {
                    throw FormatError(file: ipath, "weight_map '\(tensor)': shard name '\(fn)' must be a plain file name")
                }
                map[tensor] = fn
            }
            for fn in Set(map.values).sorted() {
                let u = directory.appendingPathComponent(fn)
                guard fm.fileExists(atPath: u.path) else {
                    throw FormatError(file: ipath, "shard '\(fn)' listed in weight_map does not exist")
                }
                files[fn] = try SafetensorsFile(url: u)
            }
            // Every tensor comes from exactly one shard.
            for fn in files.keys.sorted() {
                let f = files[fn]!
                for t in f.tensorNames {
                    if let other = owners[t] {
                        throw FormatError(file: ipath, "tensor '\(t)' is in two shards: '\(other.url.lastPathComponent)' and '\(fn)'")
                    }
                    owners[t] = f
                }
            }
            for (t, fn) in map.sorted(by: { $0.key < $1.key }) {
                guard let f = owners[t], f === files[fn] else {
                    if let uns = files[fn]?.unsupportedTensors[t] {
                        throw FormatError(file: ipath, "tensor '\(t)' in shard '\(fn)' has unsupported dtype \(uns)")
                    }
                    throw FormatError(file: ipath, "tensor '\(t)' is not in its shard '\(fn)'")
                }
            }
        } else if fm.fileExists(atPath: singleURL.path) {
            let f = try SafetensorsFile(url: singleURL)
            files["model.safetensors"] = f
            for t in f.tensorNames { owners[t] = f }
        } else {
            throw FormatError(file: directory.path, "no model.safetensors or model.safetensors.index.json")
        }
        shards = files
        self.owners = owners
        tensorNames = owners.keys.sorted()
    }
}
