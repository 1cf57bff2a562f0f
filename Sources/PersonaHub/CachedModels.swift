import Foundation

/// A model repository found in the cache.
public struct CachedModel: Sendable {
    /// `org/name`.
    public var repo: String
    public var folder: URL
    /// Bytes of the files in blobs/ (what the repository occupies on disk, partial downloads included).
    public var sizeOnDisk: Int64
    /// Bytes of unfinished `*.incomplete` downloads inside `sizeOnDisk`.
    public var incompleteBytes: Int64
    /// refs/<name> -> commit.
    public var refs: [String: String]
    /// Commits with a snapshot folder.
    public var snapshots: [String]
    /// The snapshot to describe: the one `main` points to, else the most recently modified.
    public var primarySnapshot: URL?
}

/// What the files of a snapshot say about the model, read without loading it.
public struct SnapshotSummary: Sendable {
    /// `model_type` from config.json.
    public var modelType: String?
    /// `torch_dtype` / `dtype` from config.json.
    public var configDType: String?
    /// dtype of the first tensor (by file offset) in the first safetensors file, e.g. "BF16".
    public var safetensorsDType: String?
    /// GGUF files in the snapshot (their metadata is read by the caller).
    public var ggufFiles: [URL]
}

extension HubCache {
    /// All `models--*` repositories under the root, sorted by id. Missing root: empty.
    public func listModels() -> [CachedModel] {
        let fm = FileManager.default
        guard let entries = try? fm.contentsOfDirectory(atPath: root.path) else { return [] }
        var out: [CachedModel] = []
        for e in entries.sorted() where e.hasPrefix("models--") {
            let parts = e.dropFirst("models--".count).components(separatedBy: "--")
            guard parts.count >= 2 else { continue }
            let repo = parts[0] + "/" + parts[1...].joined(separator: "--")
            let folder = root.appendingPathComponent(e, isDirectory: true)
            var size: Int64 = 0, incomplete: Int64 = 0
            let blobs = folder.appendingPathComponent("blobs")
            for b in (try? fm.contentsOfDirectory(atPath: blobs.path)) ?? [] {
                let n = ((try? fm.attributesOfItem(atPath: blobs.appendingPathComponent(b).path))?[.size] as? NSNumber)?.int64Value ?? 0
                size += n
                if b.hasSuffix(".incomplete") { incomplete += n }
            }
            var refs: [String: String] = [:]
            let refsDir = folder.appendingPathComponent("refs")
            if let en = fm.enumerator(atPath: refsDir.path) {
                for case let r as String in en {
                    var isDir: ObjCBool = false
                    let p = refsDir.appendingPathComponent(r).path
                    if fm.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue,
                       let c = try? String(contentsOfFile: p, encoding: .utf8) {
                        refs[r] = c.trimmingCharacters(in: .whitespacesAndNewlines)
                    }
                }
            }
            let snapDir = folder.appendingPathComponent("snapshots")
            let snaps = ((try? fm.contentsOfDirectory(atPath: snapDir.path)) ?? []).sorted()
            var primary: URL?
            if let m = refs["main"], snaps.contains(m) {
                primary = snapDir.appendingPathComponent(m, isDirectory: true)
            } else {
                primary = snaps.max { a, b in
                    let da = (try? fm.attributesOfItem(atPath: snapDir.appendingPathComponent(a).path))?[.modificationDate] as? Date ?? .distantPast
                    let db = (try? fm.attributesOfItem(atPath: snapDir.appendingPathComponent(b).path))?[.modificationDate] as? Date ?? .distantPast
                    return da < db
                }.map { snapDir.appendingPathComponent($0, isDirectory: true) }
            }
            out.append(CachedModel(repo: repo, folder: folder, sizeOnDisk: size, incompleteBytes: incomplete,
                                   refs: refs, snapshots: snaps, primarySnapshot: primary))
        }
        return out
    }

    /// Reads config.json and the first safetensors header of a snapshot (or any model folder).
    public static func summarize(snapshot: URL) -> SnapshotSummary {
        let fm = FileManager.default
        let entries = ((try? fm.contentsOfDirectory(atPath: snapshot.path)) ?? []).sorted()
        var s = SnapshotSummary(ggufFiles: entries.filter { $0.lowercased().hasSuffix(".gguf") }.map { snapshot.appendingPathComponent($0) })
        if let data = try? Data(contentsOf: snapshot.appendingPathComponent("config.json")),
           let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
            s.modelType = obj["model_type"] as? String
            s.configDType = (obj["torch_dtype"] as? String) ?? (obj["dtype"] as? String)
        }
        var weightFiles = entries.filter { $0.hasSuffix(".safetensors") }
        if let shards = try? shardNames(indexAt: snapshot.appendingPathComponent("model.safetensors.index.json")), !shards.isEmpty {
            weightFiles = shards
        } else if weightFiles.contains("model.safetensors") {
            weightFiles = ["model.safetensors"]
        }
        if let first = weightFiles.first { s.safetensorsDType = firstTensorDType(snapshot.appendingPathComponent(first)) }
        return s
    }

    /// The dtype of the tensor stored first in a safetensors file (smallest data offset), from its JSON header.
    public static func firstTensorDType(_ url: URL) -> String? {
        guard let fh = try? FileHandle(forReadingFrom: url) else { return nil }
        defer { try? fh.close() }
        guard let lenData = try? fh.read(upToCount: 8), lenData.count == 8 else { return nil }
        let len = lenData.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard len > 0, len < 100_000_000, let header = try? fh.read(upToCount: Int(len)), header.count == Int(len),
              let obj = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any] else { return nil }
        var best: (Int, String)?
        for (k, v) in obj where k != "__metadata__" {
            guard let t = v as? [String: Any], let dtype = t["dtype"] as? String,
                  let offs = t["data_offsets"] as? [NSNumber], let start = offs.first?.intValue else { continue }
            if best == nil || start < best!.0 { best = (start, dtype) }
        }
        return best?.1
    }
}
