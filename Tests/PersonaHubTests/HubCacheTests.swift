import XCTest
@testable import PersonaTestSupport
import PersonaHash
@testable import PersonaHub

final class HubCacheTests: XCTestCase {
    let c1 = String(repeating: "a1", count: 20)
    let c2 = String(repeating: "b2", count: 20)
    var root: URL!

    override func setUpWithError() throws {
        root = try makeTempDir("cache")
        let model = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
        try writeCachedRepo(root: root, repo: "tiny/llama2", commit: c1, files: try llama2Files(model), refs: ["main"])
        var older = try llama2Files(["config.json", "model.safetensors"])
        older["README.md"] = Data("older revision\n".utf8)
        try writeCachedRepo(root: root, repo: "tiny/llama2", commit: c2, files: older, refs: ["dev", "refs/pr/1"])
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: root) }

    func testResolvesMainToItsSnapshotWithTheServedBytes() throws {
        let url = try HubCache(root: root).resolve(HubID(parsing: "tiny/llama2")!)
        XCTAssertEqual(url.standardizedFileURL.path, root.appendingPathComponent("models--tiny--llama2/snapshots/\(c1)").standardizedFileURL.path)
        for f in ["config.json", "model.safetensors", "tokenizer.json"] {
            XCTAssertEqual(try Data(contentsOf: url.appendingPathComponent(f)), try Data(contentsOf: llama2Folder.appendingPathComponent(f)), f)
        }
    }

    func testRevisionPinByBranchTagAndCommit() throws {
        let cache = HubCache(root: root)
        XCTAssertEqual(try cache.resolve(HubID(parsing: "tiny/llama2@dev")!).lastPathComponent, c2)
        XCTAssertEqual(try cache.resolve(HubID(parsing: "tiny/llama2@refs/pr/1")!).lastPathComponent, c2)
        // A commit hash needs no ref.
        try FileManager.default.removeItem(at: root.appendingPathComponent("models--tiny--llama2/refs/dev"))
        XCTAssertEqual(try cache.resolve(HubID(parsing: "tiny/llama2@\(c2)")!).lastPathComponent, c2)
        XCTAssertThrowsHubError(try cache.resolve(HubID(parsing: "tiny/llama2@dev")!)) {
            XCTAssertTrue($0.contains("revision 'dev' is not in the cache"), $0)
            XCTAssertTrue($0.contains("persona pull tiny/llama2 --revision dev"), $0)
        }
    }

    func testMissingModelSaysHowToGetIt() {
        XCTAssertThrowsHubError(try HubCache(root: root).resolve(HubID(parsing: "other/model")!)) {
            XCTAssertTrue($0.contains("other/model: not in the Hugging Face cache"), $0)
            XCTAssertTrue($0.contains("`persona pull other/model`"), $0)
            XCTAssertTrue($0.contains("`huggingface-cli download other/model`"), $0)
        }
    }

    func testMissingBlobAndMissingShardAreNamed() throws {
        let folder = root.appendingPathComponent("models--tiny--llama2")
        let link = folder.appendingPathComponent("snapshots/\(c1)/model.safetensors")
        let blob = link.resolvingSymlinksInPath()
        try FileManager.default.removeItem(at: blob)
        XCTAssertThrowsHubError(try HubCache(root: root).resolve(HubID(parsing: "tiny/llama2")!)) {
            XCTAssertTrue($0.contains("model.safetensors is a link to a missing blob"), $0)
            XCTAssertTrue($0.contains("persona pull tiny/llama2"), $0)
        }
        // A sharded snapshot whose index names a shard that was never downloaded.
        let index = #"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#
        try writeCachedRepo(root: root, repo: "tiny/sharded", commit: c1,
                            files: ["config.json": Data("{}".utf8), "model.safetensors.index.json": Data(index.utf8),
                                    "model-00001-of-00002.safetensors": Data([1, 2, 3])], refs: ["main"])
        XCTAssertThrowsHubError(try HubCache(root: root).resolve(HubID(parsing: "tiny/sharded")!)) {
            XCTAssertTrue($0.contains("model-00002-of-00002.safetensors is not in the cached snapshot"), $0)
        }
        // A named file that is not there.
        XCTAssertThrowsHubError(try HubCache(root: root).resolve(HubID(parsing: "tiny/llama2/tokenizer.model")!)) {
            XCTAssertTrue($0.contains("tokenizer.model is not in the cached snapshot"), $0)
        }
        XCTAssertThrowsHubError(try HubCache(root: root).resolve(HubID(parsing: "tiny/noweights")!)) { _ in }
    }

    func testGGUFSnapshots() throws {
        try writeCachedRepo(root: root, repo: "tiny/one-gguf", commit: c1, files: ["m-Q8_0.gguf": Data("GGUF1".utf8)], refs: ["main"])
        try writeCachedRepo(root: root, repo: "tiny/two-gguf", commit: c1,
                            files: ["m-Q4_0.gguf": Data("GGUF4".utf8), "m-Q8_0.gguf": Data("GGUF8".utf8)], refs: ["main"])
        let cache = HubCache(root: root)
        XCTAssertEqual(try cache.resolve(HubID(parsing: "tiny/one-gguf")!).lastPathComponent, "m-Q8_0.gguf")
        XCTAssertThrowsHubError(try cache.resolve(HubID(parsing: "tiny/two-gguf")!)) {
            XCTAssertTrue($0.contains("several GGUF files (m-Q4_0.gguf, m-Q8_0.gguf)"), $0)
            XCTAssertTrue($0.contains("--model tiny/two-gguf/m-Q4_0.gguf"), $0)
        }
        let picked = try cache.resolve(HubID(parsing: "tiny/two-gguf/m-Q4_0.gguf")!)
        XCTAssertEqual(try Data(contentsOf: picked), Data("GGUF4".utf8))
    }

    func testModelReferenceOrderAndEnvironment() throws {
        // A path on disk wins over the cache.
        let env = HubEnvironment.fromEnvironment(["HF_HUB_CACHE": root.path, "HF_HUB_OFFLINE": "1"])
        XCTAssertTrue(env.offline)
        XCTAssertEqual(try ModelReference.resolve(llama2Folder.path, environment: env).path, llama2Folder.path)
        XCTAssertEqual(try ModelReference.resolve("tiny/llama2@dev", environment: env).lastPathComponent, c2)
        XCTAssertThrowsHubError(try ModelReference.resolve("./no/such/folder", environment: env)) {
            XCTAssertTrue($0.hasPrefix("./no/such/folder: no such file or folder, and not a Hugging Face model id"), $0)
        }
        XCTAssertThrowsHubError(try ModelReference.resolve("nosuch/model", environment: env)) {
            XCTAssertTrue($0.hasPrefix("nosuch/model: no such file or folder; as a Hub id: nosuch/model: not in the Hugging Face cache"), $0)
        }
        // HF_HOME/hub, then HOME/.cache/huggingface/hub.
        let home = try makeTempDir("home")
        defer { try? FileManager.default.removeItem(at: home) }
        XCTAssertEqual(HubEnvironment.fromEnvironment(["HF_HOME": home.path]).cacheRoot.path, home.appendingPathComponent("hub").path)
        XCTAssertEqual(HubEnvironment.fromEnvironment(["HOME": home.path]).cacheRoot.path, home.appendingPathComponent(".cache/huggingface/hub").path)
        XCTAssertEqual(HubEnvironment.fromEnvironment(["HOME": home.path]).endpoint.absoluteString, "https://huggingface.co")
        XCTAssertEqual(HubEnvironment.fromEnvironment(["HF_ENDPOINT": "http://127.0.0.1:9/"]).endpoint.absoluteString, "http://127.0.0.1:9")
        // Token: HF_TOKEN first, else the token file huggingface_hub writes.
        try FileManager.default.createDirectory(at: home.appendingPathComponent(".cache/huggingface"), withIntermediateDirectories: true)
        try Data("hf_fromfile\n".utf8).write(to: home.appendingPathComponent(".cache/huggingface/token"))
        XCTAssertEqual(HubEnvironment.fromEnvironment(["HOME": home.path]).token, "hf_fromfile")
        XCTAssertEqual(HubEnvironment.fromEnvironment(["HOME": home.path, "HF_TOKEN": "hf_env"]).token, "hf_env")
        XCTAssertFalse(HubEnvironment.fromEnvironment(["HF_HUB_OFFLINE": "0"]).offline)
    }

    func testHubIDParsing() {
        XCTAssertEqual(HubID(parsing: "google/gemma-2-2b-it"), HubID(repo: "google/gemma-2-2b-it"))
        XCTAssertEqual(HubID(parsing: "a/b@v1.0"), HubID(repo: "a/b", revision: "v1.0"))
        XCTAssertEqual(HubID(parsing: "a/b/sub/x.gguf@refs/pr/3"), HubID(repo: "a/b", file: "sub/x.gguf", revision: "refs/pr/3"))
        XCTAssertEqual(HubID(parsing: "a/b")?.cacheFolderName, "models--a--b")
        for bad in ["gpt2", "a/", "/a/b", "a/b@", "a/../b", "a b/c", "a//b"] { XCTAssertNil(HubID(parsing: bad), bad) }
        // "/" then a combining mark: one Swift Character, but the file system still sees "..", "\u{301}x"
        XCTAssertNil(HubID(parsing: "a/b/../\u{301}x.gguf"))
        XCTAssertEqual(HubID.pathComponents("../\u{301}x"), ["..", "\u{301}x"])
    }

    func testShardNamesLeavingTheSnapshotAreRefused() throws {
        let index = FileManager.default.temporaryDirectory.appendingPathComponent("index-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: index) }
        for bad in ["../x.safetensors", "../\u{301}x.safetensors", "/\u{301}x.safetensors"] {
            let json = try JSONSerialization.data(withJSONObject: ["weight_map": ["w": bad]])
            try json.write(to: index)
            XCTAssertThrowsError(try HubCache.shardNames(indexAt: index), bad.debugDescription) {
                XCTAssertTrue("\($0)".contains("unsafe path"), "\($0)")
            }
        }
        try JSONSerialization.data(withJSONObject: ["weight_map": ["w": "sub/x.safetensors"]]).write(to: index)
        XCTAssertEqual(try HubCache.shardNames(indexAt: index), ["sub/x.safetensors"])
    }

    func testListingAndSummary() throws {
        let models = HubCache(root: root).listModels()
        XCTAssertEqual(models.map(\.repo), ["tiny/llama2"])
        let m = try XCTUnwrap(models.first)
        XCTAssertEqual(m.refs, ["main": c1, "dev": c2, "refs/pr/1": c2])
        XCTAssertEqual(m.snapshots, [c1, c2].sorted())
        XCTAssertEqual(m.primarySnapshot?.lastPathComponent, c1)
        // Blobs are shared between snapshots: size = distinct blobs (5 files + README).
        let names = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
        let expected = try names.map { try Data(contentsOf: llama2Folder.appendingPathComponent($0)).count }.reduce(0, +) + "older revision\n".utf8.count
        XCTAssertEqual(m.sizeOnDisk, Int64(expected))
        let s = HubCache.summarize(snapshot: try XCTUnwrap(m.primarySnapshot))
        XCTAssertEqual(s.modelType, "llama")
        XCTAssertEqual(s.configDType, "bfloat16")
        // First tensor by offset, per the safetensors package: model.embed_tokens.weight, BF16.
        XCTAssertEqual(s.safetensorsDType, "BF16")
    }

    func testSHA256AgainstFIPSVectorsAndSha256sum() throws {
        func hex(_ s: String) -> String { var h = SHA256Hasher(); h.update(Data(s.utf8)); return h.hexDigest() }
        XCTAssertEqual(hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Fed in uneven pieces across block boundaries, compared with coreutils.
        let url = llama2Folder.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: url)
        var h = SHA256Hasher()
        var i = 0, step = 1
        while i < data.count { let j = min(data.count, i + step); h.update(data.subdata(in: i..<j)); i = j; step = step * 3 % 1000 + 1 }
        XCTAssertEqual(h.hexDigest(), try FakeHub.sha256sum(url))
    }
}
