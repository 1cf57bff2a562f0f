import Foundation
import PersonaHTTP
import PersonaHash
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One file of a Hub repository, as the model API lists it.
public struct RepoFile: Sendable, Equatable {
    public var name: String
    public var size: Int64?
    /// sha256 of an LFS file (its blob name in the cache).
    public var lfsSHA256: String?
    public init(name: String, size: Int64? = nil, lfsSHA256: String? = nil) {
        self.name = name
        self.size = size
        self.lfsSHA256 = lfsSHA256
    }
}

/// What `GET /api/models/{id}/revision/{rev}` says about a revision.
public struct RepoInfo: Sendable {
    public var commit: String
    public var files: [RepoFile]
}

/// Download progress over a whole pull (reported after every received chunk).
public struct HubProgress: Sendable {
    /// Bytes of all selected files (from the listing; grows if a size was unknown there).
    public var totalBytes: Int64
    /// Bytes present so far, including files already cached and resumed partial files.
    public var completedBytes: Int64
    /// Bytes received over the network in this run (for speed).
    public var receivedBytes: Int64
    public var filesTotal: Int
    public var filesDone: Int
    /// Files being downloaded now.
    public var active: [String]
}

/// The outcome of a pull.
public struct PullResult: Sendable {
    public var repo: String
    public var commit: String
    /// The snapshot folder (`snapshots/<commit>`).
    public var snapshot: URL
    /// Files in the snapshot now, repo-relative.
    public var files: [String]
    /// Bytes fetched over the network in this run.
    public var downloadedBytes: Int64
}

/// Downloads repository files into the Hugging Face cache the way huggingface_hub does,
/// so both tools share it: blobs named by etag, snapshot symlinks, refs.
public final class HubClient: @unchecked Sendable {
    public let environment: HubEnvironment
    public let cache: HubCache
    /// Files downloaded at the same time.
    public let maxConcurrentDownloads: Int
    /// Tries per file; each retry resumes with an HTTP Range request.
    public let maxAttempts: Int
    private let http: HTTPSession

    public init(environment: HubEnvironment = .fromEnvironment(), maxConcurrentDownloads: Int = 4, maxAttempts: Int = 5, timeout: TimeInterval = 60) {
        self.environment = environment
        self.cache = HubCache(root: environment.cacheRoot)
        self.maxConcurrentDownloads = max(1, maxConcurrentDownloads)
        self.maxAttempts = max(1, maxAttempts)
        self.http = HTTPSession(timeout: timeout)
    }


    // MARK: listing

    /// Lists a revision's files and its commit through the model API.
    public func repoInfo(repo: String, revision: String = "main") async throws -> RepoInfo {
        try checkOnline()
        let url = URL(string: environment.endpoint.absoluteString + "/api/models/\(repo)/revision/\(HubClient.escape(revision))?blobs=true")!
        let (response, body) = try await request(url, method: "GET", followRedirects: true, context: repo, revision: revision)
        try checkStatus(response, body: body, repo: repo, revision: revision, file: nil)
        guard let obj = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any],
              let sha = obj["sha"] as? String, let siblings = obj["siblings"] as? [[String: Any]] else {
            throw HubError(.http, "\(repo): unexpected answer from \(url.absoluteString) (no sha/siblings)")
        }
        let files = siblings.compactMap { s -> RepoFile? in
            guard let name = s["rfilename"] as? String else { return nil }
            let lfs = s["lfs"] as? [String: Any]
            let size = (s["size"] as? NSNumber)?.int64Value ?? (lfs?["size"] as? NSNumber)?.int64Value
            return RepoFile(name: name, size: size, lfsSHA256: lfs?["sha256"] as? String)
        }
        return RepoInfo(commit: sha, files: files)
    }

    // MARK: selection

    /// The files a model needs. `include` globs (fnmatch, as huggingface_hub's allow_patterns) and `gguf`
    /// override the default: config, generation config, tokenizer files, chat template and safetensors
    /// weights (`model.safetensors`, or the index and — added by `pull` — the shards it names, or every
    /// top-level `*.safetensors`); a repo without safetensors must hold exactly one `.gguf` unless `gguf` names one.
    public static func selectFiles(_ files: [RepoFile], include: [String] = [], gguf: String? = nil, repo: String = "") throws -> [String] {
        let names = files.map(\.name)
        var chosen: [String] = []
        if !include.isEmpty {
            chosen = names.filter { n in include.contains { HubClient.glob($0, matches: n) } }
            if chosen.isEmpty && gguf == nil {
                throw HubError(.selection, "\(repo): no file matches --include \(include.joined(separator: " ")) (files: \(names.prefix(20).joined(separator: ", "))\(names.count > 20 ? ", ..." : ""))")
            }
        }
        if let g = gguf {
            guard names.contains(g) else {
                let ggufs = names.filter { $0.lowercased().hasSuffix(".gguf") }
                throw HubError(.selection, "\(repo): no file \(g) in the repository (GGUF files: \(ggufs.isEmpty ? "none" : ggufs.joined(separator: ", ")))")
            }
            if !chosen.contains(g) { chosen.append(g) }
        }
        if !include.isEmpty || gguf != nil { return chosen }

        let topLevel = names.filter { !$0.contains("/") }
        let support = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                       "special_tokens_map.json", "chat_template.jinja", "chat_template.json", "tokenizer.model"]
        let safetensors = topLevel.filter { $0.hasSuffix(".safetensors") }
        if topLevel.contains("model.safetensors.index.json") {
            chosen = support.filter(topLevel.contains) + ["model.safetensors.index.json"]
        } else if topLevel.contains("model.safetensors") {
            chosen = support.filter(topLevel.contains) + ["model.safetensors"]
        } else if !safetensors.isEmpty {
            chosen = support.filter(topLevel.contains) + safetensors.sorted()
        } else {
            let ggufs = names.filter { $0.lowercased().hasSuffix(".gguf") }
            if ggufs.count == 1 { return ggufs }
            if ggufs.count > 1 {
                throw HubError(.selection, "\(repo): several GGUF files; choose one with --gguf FILE: \(ggufs.joined(separator: ", "))")
            }
            throw HubError(.selection, "\(repo): no safetensors or GGUF weights in the repository (persona reads *.safetensors or .gguf; files: \(names.prefix(20).joined(separator: ", ")))")
        }
        if !chosen.contains("config.json") {
            throw HubError(.selection, "\(repo): safetensors weights but no config.json at the top level of the repository")
        }
        return chosen
    }

    /// fnmatch-style matching where `*` also crosses `/` (Python's fnmatch); `dir/` means `dir/*`.
    public static func glob(_ pattern: String, matches name: String) -> Bool {
        let p = pattern.hasSuffix("/") ? pattern + "*" : pattern
        return fnmatch(p, name, 0) == 0
    }

    // MARK: pull

    /// Downloads what `selectFiles` picks (plus the shards of a safetensors index) for `repo` at `revision`
    /// into the cache, then points `refs/<revision>` at the commit. Interrupting is safe: partial files stay
    /// as `blobs/<etag>.incomplete` and the next pull resumes them with a Range request.
    public func pull(repo: String, revision: String = "main", include: [String] = [], gguf: String? = nil,
                     progress: (@Sendable (HubProgress) -> Void)? = nil) async throws -> PullResult {
        try checkOnline()
        guard let id = HubID(parsing: repo), id.file == nil, !repo.contains("@") else {
            throw HubError(.invalidID, "\(repo): not a Hugging Face model id (org/name)")
        }
        let info = try await repoInfo(repo: repo, revision: revision)
        guard HubID.isCommitHash(info.commit) else { throw HubError(.http, "\(repo): the Hub answered an invalid commit '\(info.commit)'") }
        let byName = Dictionary(info.files.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var names = try HubClient.selectFiles(info.files, include: include, gguf: gguf, repo: repo)
        let tracker = ProgressTracker(files: names.map { byName[$0]?.size ?? 0 }, callback: progress)
        var downloaded: Int64 = 0

        // The index first: it names the shards to fetch.
        let index = "model.safetensors.index.json"
        if include.isEmpty && gguf == nil, names.contains(index) {
            downloaded += try await download(repo: repo, commit: info.commit, file: index, listing: byName[index], tracker: tracker)
            let shards = try HubCache.shardNames(indexAt: cache.snapshotFolder(repo: repo, commit: info.commit).appendingPathComponent(index))
            for s in shards where byName[s] == nil {
                throw HubError(.selection, "\(repo): \(index) names \(s), which the repository does not have")
            }
            let extra = shards.filter { !names.contains($0) }
            names += extra
            tracker.addFiles(extra.map { byName[$0]?.size ?? 0 })
        }

        let pending = names.filter { $0 != index || !(include.isEmpty && gguf == nil) }
        downloaded += try await withThrowingTaskGroup(of: Int64.self) { group in
            var total: Int64 = 0
            var iterator = pending.makeIterator()
            for _ in 0..<maxConcurrentDownloads {
                guard let f = iterator.next() else { break }
                group.addTask { try await self.download(repo: repo, commit: info.commit, file: f, listing: byName[f], tracker: tracker) }
            }
            while let n = try await group.next() {
                total += n
                if let f = iterator.next() {
                    group.addTask { try await self.download(repo: repo, commit: info.commit, file: f, listing: byName[f], tracker: tracker) }
                }
            }
            return total
        }
        if revision != info.commit { try writeRef(repo: repo, revision: revision, commit: info.commit) }
        return PullResult(repo: repo, commit: info.commit, snapshot: cache.snapshotFolder(repo: repo, commit: info.commit),
                          files: names.sorted(), downloadedBytes: downloaded)
    }

    /// Fetches one file into blobs/ and links it from the snapshot; returns the bytes received.
    func download(repo: String, commit: String, file: String, listing: RepoFile?, tracker: ProgressTracker) async throws -> Int64 {
        let fm = FileManager.default
        let pointer = cache.snapshotFolder(repo: repo, commit: commit).appendingPathComponent(file)
        // Snapshots are immutable: a file already linked at this commit is done (as huggingface_hub does).
        if fm.fileExists(atPath: pointer.path), let size = try? fm.attributesOfItem(atPath: pointer.path)[.size] as? NSNumber {
            tracker.finish(file, size: size.int64Value)
            return 0
        }
        let meta = try await fileMetadata(repo: repo, commit: commit, file: file)
        let expectedSize = meta.size ?? listing?.size
        let blob = cache.blobURL(repo: repo, etag: meta.etag)
        try fm.createDirectory(at: blob.deletingLastPathComponent(), withIntermediateDirectories: true)
        // The same lock file huggingface_hub takes; re-check the blob once it is ours.
        let lock = try await FileLock.acquire(cache.root.appendingPathComponent(".locks")
            .appendingPathComponent(HubID(repo: repo).cacheFolderName).appendingPathComponent("\(meta.etag).lock"))
        defer { lock.release() }
        var received: Int64 = 0
        if !fm.fileExists(atPath: blob.path) {
            received = try await fetchBlob(meta: meta, to: blob, expectedSize: expectedSize, file: file, repo: repo, tracker: tracker)
        }
        try link(pointer: pointer, blob: blob, file: file)
        let size = (try? fm.attributesOfItem(atPath: blob.path)[.size] as? NSNumber)?.int64Value ?? expectedSize ?? 0
        tracker.finish(file, size: size)
        return received
    }

    struct FileMetadata {
        var etag: String
        var size: Int64?
        var commit: String?
        var location: URL
    }

    /// HEAD on the resolve URL without following the redirect to storage, as huggingface_hub does:
    /// `X-Linked-Etag` (sha256 of LFS files) or `ETag`, `X-Linked-Size` or `Content-Length`, `X-Repo-Commit`, `Location`.
    func fileMetadata(repo: String, commit: String, file: String) async throws -> FileMetadata {
        var url = URL(string: environment.endpoint.absoluteString + "/\(repo)/resolve/\(commit)/\(HubClient.escapePath(file))")!
        for _ in 0..<5 {
            let (r, body) = try await request(url, method: "HEAD", followRedirects: false, context: repo, revision: commit)
            let location = r.value(forHTTPHeaderField: "Location").flatMap { URL(string: $0, relativeTo: url)?.absoluteURL }
            if (300..<400).contains(r.statusCode), let loc = location, loc.host == url.host,
               r.value(forHTTPHeaderField: "X-Linked-Etag") == nil, r.value(forHTTPHeaderField: "ETag") == nil {
                url = loc   // a renamed repository: follow relative redirects on the Hub itself
                continue
            }
            try checkStatus(r, body: body, repo: repo, revision: commit, file: file)
            guard let raw = r.value(forHTTPHeaderField: "X-Linked-Etag") ?? r.value(forHTTPHeaderField: "ETag") else {
                throw HubError(.http, "\(repo)/\(file): the Hub sent no ETag; cannot name the cached blob")
            }
            let etag = HubClient.normalizeETag(raw)
            guard !etag.isEmpty, !etag.unicodeScalars.contains("/"), etag != ".", etag != ".." else {
                throw HubError(.http, "\(repo)/\(file): invalid ETag '\(raw)'")
            }
            let size = (r.value(forHTTPHeaderField: "X-Linked-Size") ?? r.value(forHTTPHeaderField: "Content-Length")).flatMap { Int64($0) }
            return FileMetadata(etag: etag, size: size, commit: r.value(forHTTPHeaderField: "X-Repo-Commit"),
                                location: (300..<400).contains(r.statusCode) ? (location ?? url) : url)
        }
        throw HubError(.http, "\(repo)/\(file): too many redirects")
    }

    private final class Sink: @unchecked Sendable {
        var handle: FileHandle?
        var hasher = SHA256Hasher()
        var written: Int64 = 0
        var status = 0
    }

    /// Streams the blob into `<blob>.incomplete`, resuming with Range, verifies size and sha256, renames.
    private func fetchBlob(meta: FileMetadata, to blob: URL, expectedSize: Int64?, file: String, repo: String, tracker: ProgressTracker) async throws -> Int64 {
        let fm = FileManager.default
        let partial = URL(fileURLWithPath: blob.path + ".incomplete")
        let verifySHA = meta.etag.count == 64 && meta.etag.allSatisfy(\.isHexDigit)
        var received: Int64 = 0
        var lastError: Error?
        for attempt in 0..<maxAttempts {
            try Task.checkCancellation()
            if !fm.fileExists(atPath: partial.path) { _ = fm.createFile(atPath: partial.path, contents: nil) }
            let sink = Sink()
            var offset = (try? fm.attributesOfItem(atPath: partial.path)[.size] as? NSNumber)?.int64Value ?? 0
            if let e = expectedSize, offset > e { try? fm.removeItem(at: partial); _ = fm.createFile(atPath: partial.path, contents: nil); offset = 0 }
            if verifySHA && offset > 0 { try SHA256Hasher.hash(fileAt: partial, into: &sink.hasher) }
            guard let handle = try? FileHandle(forWritingTo: partial) else {
                throw HubError(.io, "\(partial.path): cannot write (check permissions and free space)")
            }
            sink.handle = handle
            defer { try? handle.close() }
            tracker.update(file, bytes: offset)

            if let e = expectedSize, offset == e {
                // Everything arrived before an interruption; only the checks and rename are left.
            } else {
                var req = HTTPRequest(url: meta.location)
                req.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
                if offset > 0 { req.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range") }
                if meta.location.host == environment.endpoint.host, let t = environment.token { req.setValue("Bearer \(t)", forHTTPHeaderField: "Authorization") }
                req.setValue(HubClient.userAgent, forHTTPHeaderField: "User-Agent")
                let startOffset = offset
                do {
                    let r = try await http.send(req, followRedirects: true, onResponse: { r in
                        sink.status = r.statusCode
                        if r.statusCode == 200 {
                            // Full body: start over.
                            try? handle.truncate(atOffset: 0)
                            try? handle.seek(toOffset: 0)
                            sink.hasher = SHA256Hasher()
                            tracker.update(file, bytes: 0)
                            return true
                        }
                        if r.statusCode == 206 {
                            let range = r.value(forHTTPHeaderField: "Content-Range") ?? ""
                            guard range.hasPrefix("bytes \(startOffset)-") else { return false }
                            _ = try? handle.seekToEnd()
                            return true
                        }
                        return false
                    }, onData: { data in
                        try handle.write(contentsOf: data)
                        if verifySHA { sink.hasher.update(data) }
                        sink.written += Int64(data.count)
                        tracker.update(file, bytes: (sink.status == 206 ? startOffset : 0) + sink.written, received: Int64(data.count))
                    })
                    received += sink.written
                    if r.statusCode == 416 {
                        // Our partial file does not fit the remote one: drop it and start over.
                        try? handle.close(); try? fm.removeItem(at: partial)
                        lastError = HubError(.http, "\(repo)/\(file): the server refused to resume (HTTP 416)")
                        continue
                    }
                    if r.statusCode == 206, !(r.value(forHTTPHeaderField: "Content-Range") ?? "").hasPrefix("bytes \(startOffset)-") {
                        try? handle.close(); try? fm.removeItem(at: partial)
                        lastError = HubError(.http, "\(repo)/\(file): the server answered a different byte range than requested")
                        continue
                    }
                    if r.statusCode != 200 && r.statusCode != 206 {
                        try checkStatus(r, body: Data(), repo: repo, revision: meta.commit ?? "", file: file)
                        throw HubError(.http, "\(repo)/\(file): HTTP \(r.statusCode) from \(meta.location.host ?? "the server")")
                    }
                } catch let e as HubError {
                    throw e
                } catch is CancellationError {
                    throw CancellationError()
                } catch {
                    received += sink.written
                    lastError = error
                    if Task.isCancelled { throw CancellationError() }
                    // A cut connection: back off briefly, then resume from what is on disk.
                    try await Task.sleep(nanoseconds: UInt64(min(8, 1 << attempt)) * 200_000_000)
                    continue
                }
            }
            try handle.synchronize()
            let size = (try? fm.attributesOfItem(atPath: partial.path)[.size] as? NSNumber)?.int64Value ?? -1
            if let e = expectedSize, size < e {
                lastError = HubError(.network, "\(repo)/\(file): connection ended after \(size) of \(e) bytes")
                continue
            }
            if let e = expectedSize, size != e {
                try? fm.removeItem(at: partial)
                throw HubError(.checksum, "\(repo)/\(file): received \(size) bytes, expected \(e); the partial file was deleted, run the pull again")
            }
            if verifySHA {
                let digest = sink.hasher.hexDigest()
                if digest != meta.etag.lowercased() {
                    try? fm.removeItem(at: partial)
                    throw HubError(.checksum, "\(repo)/\(file): sha256 mismatch (expected \(meta.etag), got \(digest)); the download was deleted, nothing was cached")
                }
            }
            if rename(partial.path, blob.path) != 0 {
                throw HubError(.io, "\(blob.path): cannot move the finished download into place (errno \(errno))")
            }
            return received
        }
        let why = lastError.map { ($0 as? HubError)?.description ?? $0.localizedDescription } ?? "unknown error"
        throw HubError(.network, "\(repo)/\(file): download failed after \(maxAttempts) attempts (\(why)); the partial file is kept, run the same command again to resume")
    }

    /// `snapshots/<commit>/<file>` -> relative link to `../../blobs/<etag>` (deeper for files in subfolders).
    private func link(pointer: URL, blob: URL, file: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: pointer.deletingLastPathComponent(), withIntermediateDirectories: true)
        let depth = file.split(separator: "/").count - 1
        let relative = String(repeating: "../", count: 2 + depth) + "blobs/" + blob.lastPathComponent
        if (try? fm.destinationOfSymbolicLink(atPath: pointer.path)) != nil || fm.fileExists(atPath: pointer.path) {
            try? fm.removeItem(at: pointer)
        }
        do { try fm.createSymbolicLink(atPath: pointer.path, withDestinationPath: relative) } catch {
            throw HubError(.io, "\(pointer.path): cannot create the snapshot link (\(error.localizedDescription))")
        }
    }

    /// Writes `refs/<revision>` (the commit, no newline, as huggingface_hub does) atomically.
    func writeRef(repo: String, revision: String, commit: String) throws {
        let ref = cache.repoFolder(repo).appendingPathComponent("refs").appendingPathComponent(revision)
        guard !HubID.pathComponents(revision).contains("..") else { throw HubError(.invalidID, "invalid revision '\(revision)'") }
        do {
            try FileManager.default.createDirectory(at: ref.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(commit.utf8).write(to: ref, options: .atomic)
        } catch {
            throw HubError(.io, "\(ref.path): cannot write the ref (\(error.localizedDescription))")
        }
    }

    // MARK: HTTP helpers

    static let userAgent = "persona/0.1 (huggingface_hub-compatible cache)"

    private func checkOnline() throws {
        if environment.offline {
            throw HubError(.offline, "HF_HUB_OFFLINE is set, so nothing is downloaded; unset it (or set HF_HUB_OFFLINE=0) to pull, or use a model already in \(environment.cacheRoot.path)")
        }
    }

    private func request(_ url: URL, method: String, followRedirects: Bool, context: String, revision: String) async throws -> (HTTPResponse, Data) {
        var req = HTTPRequest(url: url, method: method)
        req.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        req.setValue(HubClient.userAgent, forHTTPHeaderField: "User-Agent")
        if let t = environment.token { req.setValue("Bearer \(t)", forHTTPHeaderField: "Authorization") }
        do {
            return try await http.fetch(req, followRedirects: followRedirects)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw HubError(.network, "\(context): cannot reach \(environment.endpoint.absoluteString) (\(error.localizedDescription)); check the network, HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only the cache")
        }
    }

    /// Maps Hub errors (`X-Error-Code`, status) to messages that say what to do.
    private func checkStatus(_ r: HTTPResponse, body: Data, repo: String, revision: String, file: String?) throws {
        let code = r.value(forHTTPHeaderField: "X-Error-Code") ?? ""
        let what = file.map { "\(repo)/\($0)" } ?? repo
        let page = environment.endpoint.absoluteString + "/" + repo
        let tokenNote = environment.token == nil
            ? "no token is set: set HF_TOKEN or run `huggingface-cli login` (it writes the token file \(HubEnvironment.defaultTokenPathDescription))"
            : "the token in use (HF_TOKEN or the token file) was refused or has no access to it"
        switch (r.statusCode, code) {
        case (200..<400, _): return
        case (_, "GatedRepo"):
            throw HubError(.unauthorized, "\(what): this is a gated model (HTTP \(r.statusCode)). Accept its terms at \(page) while logged in; \(tokenNote).")
        case (_, "RepoNotFound"):
            throw HubError(.notFound, "\(repo): repository not found on \(environment.endpoint.absoluteString) (HTTP \(r.statusCode)). Check the id (org/name); a private repository also needs a token: \(tokenNote).")
        case (_, "RevisionNotFound"):
            throw HubError(.notFound, "\(repo): revision '\(revision)' not found (HTTP \(r.statusCode)); check the branch, tag or commit")
        case (_, "EntryNotFound"):
            throw HubError(.notFound, "\(what): file not found at revision \(revision) (HTTP \(r.statusCode))")
        case (404, _) where file != nil:
            throw HubError(.notFound, "\(what): file not found at revision \(revision) (HTTP 404)")
        case (401, _), (403, _):
            throw HubError(.unauthorized, "\(what): access denied (HTTP \(r.statusCode)). It may be a gated or private model: accept its terms at \(page); \(tokenNote).")
        case (404, _):
            throw HubError(.notFound, "\(repo): not found on \(environment.endpoint.absoluteString) (HTTP 404). Check the id (org/name) and the revision '\(revision)'.")
        default:
            let text = String(decoding: body.prefix(300), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw HubError(.http, "\(what): HTTP \(r.statusCode) from \(environment.endpoint.absoluteString)\(text.isEmpty ? "" : ": " + text)")
        }
    }

    static func normalizeETag(_ s: String) -> String {
        var t = s.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("W/") { t.removeFirst(2) }
        return t.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }

    /// Percent-encodes a revision as one path segment (`refs/pr/1` -> `refs%2Fpr%2F1`).
    static func escape(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    static func escapePath(_ s: String) -> String {
        s.split(separator: "/", omittingEmptySubsequences: false).map { escape(String($0)) }.joined(separator: "/")
    }
}

extension HubEnvironment {
    static var defaultTokenPathDescription: String { "HF_HOME/token, default ~/.cache/huggingface/token" }
}

/// Sums per-file byte counts for the progress callback.
final class ProgressTracker: @unchecked Sendable {
    private let lock = NSLock()
    private var sizes: [Int64]
    private var bytes: [String: Int64] = [:]
    private var done: Set<String> = []
    private var received: Int64 = 0
    private var filesTotal: Int
    private let callback: (@Sendable (HubProgress) -> Void)?

    init(files sizes: [Int64], callback: (@Sendable (HubProgress) -> Void)?) {
        self.sizes = sizes
        self.filesTotal = sizes.count
        self.callback = callback
    }

    func addFiles(_ s: [Int64]) {
        lock.lock(); sizes += s; filesTotal += s.count; lock.unlock()
    }

    func update(_ file: String, bytes n: Int64, received r: Int64 = 0) {
        lock.lock()
        bytes[file] = n
        received += r
        let p = snapshot()
        lock.unlock()
        callback?(p)
    }

    func finish(_ file: String, size: Int64) {
        lock.lock()
        bytes[file] = size
        done.insert(file)
        let p = snapshot()
        lock.unlock()
        callback?(p)
    }

    private func snapshot() -> HubProgress {
        let completed = bytes.values.reduce(0, +)
        let total = max(sizes.reduce(0, +), completed)
        let active = bytes.keys.filter { !done.contains($0) }.sorted()
        return HubProgress(totalBytes: total, completedBytes: completed, receivedBytes: received,
                           filesTotal: filesTotal, filesDone: done.count, active: active)
    }
}
