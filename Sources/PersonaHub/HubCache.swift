import Foundation

/// The Hugging Face cache, laid out exactly as huggingface_hub writes it:
///
///     <root>/models--org--name/refs/<revision>            (text file: commit hash)
///     <root>/models--org--name/blobs/<etag>               (file contents; etag = sha256 for LFS files, git sha1 otherwise)
///     <root>/models--org--name/snapshots/<commit>/<file>  (relative symlink to ../../blobs/<etag>)
public struct HubCache: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root }

    /// The cache named by the environment (`HF_HUB_CACHE`, `HF_HOME/hub`, `~/.cache/huggingface/hub`).
    public init(environment: HubEnvironment = .fromEnvironment()) { root = environment.cacheRoot }

    public func repoFolder(_ repo: String) -> URL {
        root.appendingPathComponent(HubID(repo: repo).cacheFolderName, isDirectory: true)
    }

    public func blobURL(repo: String, etag: String) -> URL {
        repoFolder(repo).appendingPathComponent("blobs").appendingPathComponent(etag)
    }

    public func snapshotFolder(repo: String, commit: String) -> URL {
        repoFolder(repo).appendingPathComponent("snapshots").appendingPathComponent(commit, isDirectory: true)
    }

    /// The commit a revision names in this cache: a commit hash with a snapshot, or a ref (branch/tag).
    public func commit(repo: String, revision: String) -> String? {
        let fm = FileManager.default
        if HubID.isCommitHash(revision), fm.fileExists(atPath: snapshotFolder(repo: repo, commit: revision).path) { return revision }
        let ref = repoFolder(repo).appendingPathComponent("refs").appendingPathComponent(revision)
        guard let s = try? String(contentsOf: ref, encoding: .utf8) else { return nil }
        let c = s.trimmingCharacters(in: .whitespacesAndNewlines)
        return c.isEmpty ? nil : c
    }

    /// Resolves `org/name[/file][@revision]` to a path the model loader accepts, without any network access:
    /// - a snapshot with `config.json`: the snapshot folder (its weights must be complete);
    /// - a snapshot with no `config.json` and exactly one `.gguf`: that file; several: an error listing them;
    /// - `org/name/file`: that file in the snapshot.
    public func resolve(_ id: HubID) throws -> URL {
        let fm = FileManager.default
        let folder = repoFolder(id.repo)
        guard fm.fileExists(atPath: folder.path) else {
            throw HubError(.notCached, "\(id): not in the Hugging Face cache (\(root.path)). \(HubCache.howToGet(id))")
        }
        guard let commit = commit(repo: id.repo, revision: id.revision) else {
            let refs = (try? fm.contentsOfDirectory(atPath: folder.appendingPathComponent("refs").path))?.sorted() ?? []
            throw HubError(.notCached, "\(id): revision '\(id.revision)' is not in the cache (cached refs: \(refs.isEmpty ? "none" : refs.joined(separator: ", "))). \(HubCache.howToGet(id))")
        }
        let snap = snapshotFolder(repo: id.repo, commit: commit)
        guard fm.fileExists(atPath: snap.path) else {
            throw HubError(.incompleteSnapshot, "\(id): refs/\(id.revision) points to commit \(commit) but \(snap.path) is missing. \(HubCache.howToGet(id))")
        }
        if let file = id.file {
            let url = snap.appendingPathComponent(file)
            try HubCache.requirePresent(url, name: file, id: id)
            return url
        }
        let entries = ((try? fm.contentsOfDirectory(atPath: snap.path)) ?? []).sorted()
        for e in entries { try HubCache.requirePresent(snap.appendingPathComponent(e), name: e, id: id) }
        if entries.contains("config.json") {
            try HubCache.requireWeights(snap, entries: entries, id: id)
            return snap
        }
        let ggufs = entries.filter { $0.lowercased().hasSuffix(".gguf") }
        if ggufs.count == 1 { return snap.appendingPathComponent(ggufs[0]) }
        if ggufs.count > 1 {
            throw HubError(.selection, "\(id): the cached snapshot holds several GGUF files (\(ggufs.joined(separator: ", "))); name one, e.g. --model \(id.repo)/\(ggufs[0])\(id.revision == "main" ? "" : "@" + id.revision)")
        }
        throw HubError(.incompleteSnapshot, "\(id): the cached snapshot \(snap.path) has neither config.json nor a .gguf file. \(HubCache.howToGet(id))")
    }

    /// The command lines that fetch `id`.
    public static func howToGet(_ id: HubID) -> String {
        var persona = "persona pull \(id.repo)"
        var hf = "huggingface-cli download \(id.repo)"
        if id.revision != "main" { persona += " --revision \(id.revision)"; hf += " --revision \(id.revision)" }
        if let f = id.file {
            persona += f.lowercased().hasSuffix(".gguf") ? " --gguf \(f)" : " --include \(f)"
            hf += " \(f)"
        }
        return "Download it with `\(persona)` (or `\(hf)`)."
    }

    /// A snapshot entry must exist and, when a symlink, point at an existing blob.
    static func requirePresent(_ url: URL, name: String, id: HubID) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: url.path) { return }
        if let dest = try? fm.destinationOfSymbolicLink(atPath: url.path) {
            throw HubError(.incompleteSnapshot, "\(id): cached file \(name) is a link to a missing blob (\(dest)). \(howToGet(id))")
        }
        throw HubError(.incompleteSnapshot, "\(id): \(name) is not in the cached snapshot \(url.deletingLastPathComponent().path). \(howToGet(id))")
    }

    /// A folder with config.json needs its safetensors weights: all shards named by the index, or a *.safetensors file.
    static func requireWeights(_ snap: URL, entries: [String], id: HubID) throws {
        let indexName = "model.safetensors.index.json"
        if entries.contains(indexName) {
            let shards = try HubCache.shardNames(indexAt: snap.appendingPathComponent(indexName))
            for s in shards { try requirePresent(snap.appendingPathComponent(s), name: s, id: id) }
            return
        }
        if !entries.contains(where: { $0.hasSuffix(".safetensors") }) {
            throw HubError(.incompleteSnapshot, "\(id): the cached snapshot \(snap.path) has config.json but no *.safetensors weights. \(howToGet(id))")
        }
    }

    /// The shard files a `model.safetensors.index.json` names (its `weight_map` values), sorted and unique.
    public static func shardNames(indexAt url: URL) throws -> [String] {
        guard let data = try? Data(contentsOf: url) else {
            throw HubError(.io, "\(url.path): cannot read the safetensors index")
        }
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let map = obj["weight_map"] as? [String: Any] else {
            throw HubError(.io, "\(url.path): not a safetensors index (no weight_map object)")
        }
        let names = Set(map.values.compactMap { $0 as? String })
        for n in names where n.isEmpty || n.unicodeScalars.first == "/" || HubID.pathComponents(n).contains("..") {
            throw HubError(.io, "\(url.path): weight_map names an unsafe path '\(n)'")
        }
        return names.sorted()
    }
}
