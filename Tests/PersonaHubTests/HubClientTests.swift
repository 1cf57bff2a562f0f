import XCTest
@testable import PersonaTestSupport
@testable import PersonaHub
#if canImport(Glibc)
import Glibc
#endif

/// Downloads over real HTTP from the loopback fake Hub serving Tests/PersonaModelsTests/Fixtures/llama2.
final class HubClientTests: XCTestCase {
    let commit = "0123456789abcdef0123456789abcdef01234567"
    let served = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                  "reference.json", "reference.safetensors"]
    let needed = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
    var hub: FakeHub!
    var cacheRoot: URL!

    override func setUpWithError() throws {
        hub = FakeHub()
        hub.addRepo("tiny/llama2", .init(commit: commit, branches: ["main": commit, "v1": commit],
                                         files: try FakeHub.files(in: llama2Folder, names: served)))
        try hub.start()
        cacheRoot = try makeTempDir("pull")
    }

    override func tearDownWithError() throws {
        hub.stop()
        try? FileManager.default.removeItem(at: cacheRoot)
    }

    func client(token: String? = nil, offline: Bool = false, attempts: Int = 5) -> HubClient {
        HubClient(environment: HubEnvironment(cacheRoot: cacheRoot, endpoint: hub.endpoint, token: token, offline: offline),
                  maxConcurrentDownloads: 4, maxAttempts: attempts, timeout: 20)
    }

    var repoFolder: URL { cacheRoot.appendingPathComponent("models--tiny--llama2") }

    /// Every needed file is a relative symlink ../../blobs/<etag> (sha256 for LFS, git sha1 otherwise)
    /// whose bytes equal the served fixture; nothing else is in the snapshot; no partial files remain.
    func assertSnapshotMatchesServer(files: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let fm = FileManager.default
        let snap = repoFolder.appendingPathComponent("snapshots/\(commit)")
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: snap.path).sorted(), files.sorted(), file: file, line: line)
        for f in files {
            let url = llama2Folder.appendingPathComponent(f)
            let etag = f.hasSuffix(".safetensors") ? try FakeHub.sha256sum(url) : try FakeHub.gitHashObject(url)
            XCTAssertEqual(try fm.destinationOfSymbolicLink(atPath: snap.appendingPathComponent(f).path), "../../blobs/\(etag)", f, file: file, line: line)
            XCTAssertEqual(try Data(contentsOf: snap.appendingPathComponent(f)), try Data(contentsOf: url), f, file: file, line: line)
        }
        let blobs = try fm.contentsOfDirectory(atPath: repoFolder.appendingPathComponent("blobs").path)
        XCTAssertFalse(blobs.contains { $0.hasSuffix(".incomplete") }, "\(blobs)", file: file, line: line)
        XCTAssertEqual(blobs.count, files.count, file: file, line: line)
    }

    func testPullFetchesWhatTheModelNeedsIntoTheHFCacheLayout() async throws {
        final class Seen: @unchecked Sendable { var last: HubProgress?; let lock = NSLock() }
        let seen = Seen()
        let result = try await client().pull(repo: "tiny/llama2") { p in seen.lock.lock(); seen.last = p; seen.lock.unlock() }
        XCTAssertEqual(result.commit, commit)
        XCTAssertEqual(result.files, needed)
        try assertSnapshotMatchesServer(files: needed)
        XCTAssertEqual(try String(contentsOf: repoFolder.appendingPathComponent("refs/main"), encoding: .utf8), commit)
        // Progress ends complete, with the byte total of the chosen files.
        let total = try needed.map { try Data(contentsOf: llama2Folder.appendingPathComponent($0)).count }.reduce(0, +)
        XCTAssertEqual(seen.last?.totalBytes, Int64(total))
        XCTAssertEqual(seen.last?.completedBytes, Int64(total))
        XCTAssertEqual(seen.last?.filesDone, needed.count)
        XCTAssertEqual(result.downloadedBytes, Int64(total))
        // Files were fetched at the pinned commit; the storage host got no token.
        let reqs = hub.requests
        XCTAssertTrue(reqs.filter { $0.path.contains("/resolve/") }.allSatisfy { $0.path.contains("/resolve/\(commit)/") })
        XCTAssertTrue(reqs.filter { $0.path.hasPrefix("/cdn/") }.allSatisfy { $0.headers["authorization"] == nil })
        XCTAssertFalse(reqs.contains { $0.path.contains("reference") })
        // The cache now resolves offline.
        let env = HubEnvironment(cacheRoot: cacheRoot, endpoint: hub.endpoint, offline: true)
        XCTAssertEqual(try ModelReference.resolve("tiny/llama2", environment: env).lastPathComponent, commit)

        // A rerun downloads nothing and asks only for the listing.
        let before = hub.requests.count
        let again = try await client().pull(repo: "tiny/llama2")
        XCTAssertEqual(again.downloadedBytes, 0)
        XCTAssertEqual(hub.requests.count - before, 1)
    }

    func testResumeAfterACutConnection() async throws {
        hub.cutFirstDownload(of: "model.safetensors", after: 50_000)
        _ = try await client().pull(repo: "tiny/llama2")
        try assertSnapshotMatchesServer(files: needed)
        // The retry asks for the rest from where the written part ends (bytes that arrived just before the cut
        // may be lost with the connection, never written twice or skipped).
        let cdn = hub.requests.filter { $0.path.hasPrefix("/cdn/") && $0.method == "GET" }
        let resumedAt = cdn.compactMap { $0.headers["range"] }.compactMap { Int($0.dropFirst(6).dropLast()) }
        XCTAssertEqual(resumedAt.count, 1, "\(cdn.map(\.headers))")
        XCTAssertTrue(resumedAt.allSatisfy { (1...50_000).contains($0) }, "\(cdn.map(\.headers))")
    }

    func testRerunResumesAPartialFile() async throws {
        hub.cutFirstDownload(of: "model.safetensors", after: 60_000)
        do {
            _ = try await client(attempts: 1).pull(repo: "tiny/llama2")
            XCTFail("the cut should fail a single attempt")
        } catch {
            XCTAssertTrue("\(error)".contains("model.safetensors: download failed after 1 attempts"), "\(error)")
            XCTAssertTrue("\(error)".contains("run the same command again to resume"), "\(error)")
        }
        let sha = try FakeHub.sha256sum(llama2Folder.appendingPathComponent("model.safetensors"))
        let partial = repoFolder.appendingPathComponent("blobs/\(sha).incomplete")
        let kept = try XCTUnwrap((try FileManager.default.attributesOfItem(atPath: partial.path)[.size] as? NSNumber)?.intValue)
        XCTAssertTrue((1...60_000).contains(kept), "partial file of \(kept) bytes")
        XCTAssertFalse(FileManager.default.fileExists(atPath: repoFolder.appendingPathComponent("refs/main").path))
        _ = try await client().pull(repo: "tiny/llama2")
        try assertSnapshotMatchesServer(files: needed)
        XCTAssertTrue(hub.requests.contains { $0.headers["range"] == "bytes=\(kept)-" }, "the rerun must resume at \(kept)")
    }

    func testWrongChecksumKeepsNothing() async throws {
        hub.corrupt("model.safetensors")
        do {
            _ = try await client().pull(repo: "tiny/llama2")
            XCTFail("a corrupted body must fail")
        } catch let e as HubError {
            XCTAssertEqual(e.kind, .checksum)
            XCTAssertTrue(e.description.contains("model.safetensors: sha256 mismatch"), e.description)
        }
        let sha = try FakeHub.sha256sum(llama2Folder.appendingPathComponent("model.safetensors"))
        let blobs = (try? FileManager.default.contentsOfDirectory(atPath: repoFolder.appendingPathComponent("blobs").path)) ?? []
        XCTAssertFalse(blobs.contains { $0.hasPrefix(sha) }, "\(blobs)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: repoFolder.appendingPathComponent("snapshots/\(commit)/model.safetensors").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: repoFolder.appendingPathComponent("refs/main").path))
    }

    func testGatedRepoNeedsAToken() async throws {
        hub.addRepo("gated/llama2", .init(commit: commit, branches: ["main": commit],
                                          files: try FakeHub.files(in: llama2Folder, names: needed), gated: true))
        do {
            _ = try await client().pull(repo: "gated/llama2")
            XCTFail("gated without a token")
        } catch let e as HubError {
            XCTAssertEqual(e.kind, .unauthorized)
            XCTAssertTrue(e.description.contains("gated model (HTTP 401)"), e.description)
            XCTAssertTrue(e.description.contains("\(hub.endpoint.absoluteString)/gated/llama2"), e.description)
            XCTAssertTrue(e.description.contains("set HF_TOKEN or run `huggingface-cli login`"), e.description)
        }
        do {
            _ = try await client(token: "hf_wrong").pull(repo: "gated/llama2")
            XCTFail("gated with a wrong token")
        } catch let e as HubError {
            XCTAssertTrue(e.description.contains("the token in use (HF_TOKEN or the token file) was refused"), e.description)
        }
        let result = try await client(token: hub.token).pull(repo: "gated/llama2")
        XCTAssertEqual(result.files, needed)
    }

    func testNotFound() async throws {
        do {
            _ = try await client().pull(repo: "nobody/nothing")
            XCTFail("unknown repo")
        } catch let e as HubError {
            XCTAssertEqual(e.kind, .notFound)
            XCTAssertTrue(e.description.hasPrefix("nobody/nothing: repository not found on \(hub.endpoint.absoluteString) (HTTP 404)"), e.description)
        }
        do {
            _ = try await client().pull(repo: "tiny/llama2", revision: "v9")
            XCTFail("unknown revision")
        } catch let e as HubError {
            XCTAssertTrue(e.description.contains("revision 'v9' not found"), e.description)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: repoFolder.appendingPathComponent("refs").path))
    }

    func testOfflineNeverTouchesTheNetwork() async throws {
        do {
            _ = try await client(offline: true).pull(repo: "tiny/llama2")
            XCTFail("offline")
        } catch let e as HubError {
            XCTAssertEqual(e.kind, .offline)
            XCTAssertTrue(e.description.contains("HF_HUB_OFFLINE"), e.description)
        }
        XCTAssertEqual(hub.requests.count, 0)
    }

    func testRevisionRefsAndIncludeGlobs() async throws {
        let r = try await client().pull(repo: "tiny/llama2", revision: "v1", include: ["*.json"])
        XCTAssertEqual(r.files, ["config.json", "generation_config.json", "reference.json", "tokenizer.json", "tokenizer_config.json"])
        XCTAssertEqual(try String(contentsOf: repoFolder.appendingPathComponent("refs/v1"), encoding: .utf8), commit)
        XCTAssertFalse(FileManager.default.fileExists(atPath: repoFolder.appendingPathComponent("refs/main").path))
        // Pinned by commit: no ref written (as huggingface_hub).
        _ = try await client().pull(repo: "tiny/llama2", revision: commit)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: repoFolder.appendingPathComponent("refs").path), ["v1"])
        try assertSnapshotMatchesServer(files: needed + ["reference.json"])
    }

    func testGGUFChoiceAndShardedSafetensors() async throws {
        let dir = try makeTempDir("repo")
        defer { try? FileManager.default.removeItem(at: dir) }
        for (n, s) in [("m-Q4_0.gguf", "four"), ("m-Q8_0.gguf", "eight"), ("model-00001-of-00002.safetensors", "shard one"),
                       ("model-00002-of-00002.safetensors", "shard two"), ("consolidated.safetensors", "not needed"),
                       ("config.json", "{}"),
                       ("model.safetensors.index.json", #"{"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors", "c": "model-00001-of-00002.safetensors"}}"#)] {
            try Data(s.utf8).write(to: dir.appendingPathComponent(n))
        }
        hub.addRepo("tiny/ggufs", .init(commit: commit, branches: ["main": commit], files: try FakeHub.files(in: dir, names: ["m-Q4_0.gguf", "m-Q8_0.gguf"])))
        do {
            _ = try await client().pull(repo: "tiny/ggufs")
            XCTFail("two GGUFs need a choice")
        } catch let e as HubError {
            XCTAssertTrue(e.description.contains("choose one with --gguf FILE: m-Q4_0.gguf, m-Q8_0.gguf"), e.description)
        }
        let g = try await client().pull(repo: "tiny/ggufs", gguf: "m-Q8_0.gguf")
        XCTAssertEqual(g.files, ["m-Q8_0.gguf"])
        let env = HubEnvironment(cacheRoot: cacheRoot, endpoint: hub.endpoint, offline: true)
        XCTAssertEqual(try Data(contentsOf: ModelReference.resolve("tiny/ggufs", environment: env)), Data("eight".utf8))

        hub.addRepo("tiny/sharded", .init(commit: commit, branches: ["main": commit], files: try FakeHub.files(in: dir, names: [
            "config.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "consolidated.safetensors"])))
        let s = try await client().pull(repo: "tiny/sharded")
        XCTAssertEqual(s.files, ["config.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "model.safetensors.index.json"])
        let snap = try ModelReference.resolve("tiny/sharded", environment: env)
        XCTAssertEqual(try Data(contentsOf: snap.appendingPathComponent("model-00002-of-00002.safetensors")), Data("shard two".utf8))
    }

    func testWaitsForHuggingFaceHubsLockOnTheBlob() async throws {
        // The lock path huggingface_hub uses: <root>/.locks/models--org--name/<etag>.lock (flock).
        let sha = try FakeHub.sha256sum(llama2Folder.appendingPathComponent("model.safetensors"))
        let lockDir = cacheRoot.appendingPathComponent(".locks/models--tiny--llama2")
        try FileManager.default.createDirectory(at: lockDir, withIntermediateDirectories: true)
        let fd = open(lockDir.appendingPathComponent("\(sha).lock").path, O_RDWR | O_CREAT, 0o664)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertEqual(flock(fd, LOCK_EX), 0)
        let c = client()
        let task = Task { try await c.pull(repo: "tiny/llama2") }
        try await Task.sleep(nanoseconds: 800_000_000)
        let blobs = (try? FileManager.default.contentsOfDirectory(atPath: repoFolder.appendingPathComponent("blobs").path)) ?? []
        XCTAssertFalse(blobs.contains { $0.hasPrefix(sha) }, "written while another process held the lock: \(blobs)")
        flock(fd, LOCK_UN)
        close(fd)
        _ = try await task.value
        try assertSnapshotMatchesServer(files: needed)
    }

    func testParallelDownloadsAreBounded() async throws {
        let dir = try makeTempDir("many")
        defer { try? FileManager.default.removeItem(at: dir) }
        let names = (1...6).map { "model-0000\($0)-of-00006.safetensors" }
        for n in names { try Data(n.utf8).write(to: dir.appendingPathComponent(n)) }
        hub.addRepo("tiny/many", .init(commit: commit, branches: ["main": commit], files: try FakeHub.files(in: dir, names: names)))
        hub.cdnDelay = 0.3
        let c = HubClient(environment: HubEnvironment(cacheRoot: cacheRoot, endpoint: hub.endpoint), maxConcurrentDownloads: 2, timeout: 20)
        let r = try await c.pull(repo: "tiny/many", include: ["*.safetensors"])
        XCTAssertEqual(r.files, names)
        XCTAssertEqual(hub.cdnMaxActive, 2)
    }
}
