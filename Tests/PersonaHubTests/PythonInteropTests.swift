import XCTest
@testable import PersonaTestSupport
@testable import PersonaHub

/// huggingface_hub itself (Python, the reference implementation) against the same fake Hub:
/// its cache and ours must be the same tree, and each must read the other's.
/// Skipped when no Python with huggingface_hub is found (PERSONA_PYTHON, else ../V/bin/python from the repo root).
final class PythonInteropTests: XCTestCase {
    let commit = "fedcba9876543210fedcba9876543210fedcba98"
    let needed = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]

    func python() throws -> String {
        let path = ProcessInfo.processInfo.environment["PERSONA_PYTHON"] ?? repoRoot.deletingLastPathComponent().appendingPathComponent("V/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw XCTSkip("no Python at \(path)") }
        return path
    }

    func runPython(_ py: String, _ script: String, env: [String: String]) throws -> String {
        let r = try Subprocess.run(URL(fileURLWithPath: py), ["-c", script],
                                   environment: Subprocess.environment(merging: env, droppingPrefix: "HF_"))
        if r.status == 3 { throw XCTSkip("huggingface_hub is not installed for \(py)") }
        XCTAssertEqual(r.status, 0, r.stderr)
        return r.stdout
    }

    /// Relative path -> symlink target or file bytes, for every entry under the repo folder (locks aside).
    func tree(_ folder: URL) throws -> [String: String] {
        var out: [String: String] = [:]
        let fm = FileManager.default
        for case let rel as String in fm.enumerator(atPath: folder.path)! {
            let url = folder.appendingPathComponent(rel)
            if let dest = try? fm.destinationOfSymbolicLink(atPath: url.path) { out[rel] = "-> " + dest; continue }
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue {
                out[rel] = try FakeHub.sha256sum(url)
            }
        }
        return out
    }

    func testSameTreeAsHuggingFaceHub() async throws {
        let py = try python()
        let hub = FakeHub()
        hub.addRepo("tiny/llama2", .init(commit: commit, branches: ["main": commit],
                                         files: try FakeHub.files(in: llama2Folder, names: needed + ["reference.json"])))
        try hub.start()
        defer { hub.stop() }
        let ours = try makeTempDir("ours"), theirs = try makeTempDir("theirs")
        defer { try? FileManager.default.removeItem(at: ours); try? FileManager.default.removeItem(at: theirs) }

        _ = try await HubClient(environment: HubEnvironment(cacheRoot: ours, endpoint: hub.endpoint)).pull(repo: "tiny/llama2")
        let script = """
        import sys
        try:
            from huggingface_hub import hf_hub_download, try_to_load_from_cache, scan_cache_dir
        except ImportError:
            sys.exit(3)
        for f in [\(needed.map { "'\($0)'" }.joined(separator: ", "))]:
            hf_hub_download('tiny/llama2', f, cache_dir='\(theirs.path)')
        # Python reads the cache we wrote.
        for f in [\(needed.map { "'\($0)'" }.joined(separator: ", "))]:
            p = try_to_load_from_cache('tiny/llama2', f, cache_dir='\(ours.path)')
            assert isinstance(p, str), (f, p)
        info = scan_cache_dir('\(ours.path)')
        assert not info.warnings, info.warnings
        (repo,) = info.repos
        (rev,) = repo.revisions
        print(repo.repo_id, rev.commit_hash, sorted(rev.refs), rev.nb_files)
        """
        let out = try runPython(py, script, env: ["HF_ENDPOINT": hub.endpoint.absoluteString, "HF_HUB_DISABLE_TELEMETRY": "1",
                                                  "HF_HUB_DISABLE_XET": "1", "HF_HUB_ENABLE_HF_TRANSFER": "0"])
        XCTAssertEqual(out.trimmingCharacters(in: .whitespacesAndNewlines), "tiny/llama2 \(commit) ['main'] \(needed.count)")

        let a = try tree(ours.appendingPathComponent("models--tiny--llama2"))
        let b = try tree(theirs.appendingPathComponent("models--tiny--llama2"))
        XCTAssertFalse(b.isEmpty)
        XCTAssertEqual(a, b)

        // And we resolve the cache Python wrote.
        let snap = try HubCache(root: theirs).resolve(HubID(repo: "tiny/llama2"))
        XCTAssertEqual(try Data(contentsOf: snap.appendingPathComponent("model.safetensors")),
                       try Data(contentsOf: llama2Folder.appendingPathComponent("model.safetensors")))
    }
}
