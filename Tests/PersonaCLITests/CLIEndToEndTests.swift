import XCTest
@testable import PersonaTestSupport
@testable import PersonaHub

/// The user's path through the `persona` binary: `pull` from the loopback fake Hub, then `generate` and
/// `models` on the cache with the network gone (HF_HUB_OFFLINE=1, server stopped). The generated text is
/// compared with transformers' greedy continuation stored in the fixture (reference.json, greedy_text).
/// Skipped when no `persona` binary is built (PERSONA_BINARY, else beside the test bundle as `swift build` leaves it).
final class CLIEndToEndTests: XCTestCase {
    let commit = "89abcdef0123456789abcdef0123456789abcdef"

    var binary: URL { get throws { try Subprocess.personaBinary(besides: CLIEndToEndTests.self) } }

    func run(_ args: [String], env: [String: String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Subprocess.run(try binary, args, environment: Subprocess.environment(merging: env, droppingPrefix: "HF_"))
    }

    func testPulledCacheLoadsWithGenerateOffline() throws {
        _ = try binary
        let needed = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]
        let hub = FakeHub()
        hub.addRepo("tiny/llama2", .init(commit: commit, branches: ["main": commit],
                                         files: try FakeHub.files(in: llama2Folder, names: needed + ["reference.json"])))
        try hub.start()
        var hubRunning = true
        defer { if hubRunning { hub.stop() } }
        let cache = try makeTempDir("cli")
        defer { try? FileManager.default.removeItem(at: cache) }
        let home = cache.appendingPathComponent("home")   // no token file from the real user

        let pull = try run(["pull", "tiny/llama2"], env: ["HF_HUB_CACHE": cache.path, "HF_HOME": home.path, "HF_ENDPOINT": hub.endpoint.absoluteString,
                                                          "PERSONA_PROGRESS": "1"])
        XCTAssertEqual(pull.status, 0, pull.stderr)
        // The progress line (forced on without a terminal) ends complete, with speed and ETA.
        let total = try needed.map { try Data(contentsOf: llama2Folder.appendingPathComponent($0)).count }.reduce(0, +)
        let lastLine = pull.stderr.components(separatedBy: "\r").last(where: { $0.contains("ETA") }) ?? ""
        XCTAssertTrue(lastLine.contains("100%") && lastLine.contains("/s  ETA") && lastLine.contains("(5/5)"), pull.stderr)
        XCTAssertTrue(pull.stderr.contains("commit \(commit), 5 files"), pull.stderr)
        let snapshot = cache.appendingPathComponent("models--tiny--llama2/snapshots/\(commit)")
        XCTAssertEqual(pull.stdout.trimmingCharacters(in: .whitespacesAndNewlines), snapshot.path)
        for f in needed {
            XCTAssertEqual(try Data(contentsOf: snapshot.appendingPathComponent(f)), try Data(contentsOf: llama2Folder.appendingPathComponent(f)), f)
        }

        hub.stop()
        hubRunning = false
        let offline = ["HF_HUB_CACHE": cache.path, "HF_HOME": home.path, "HF_HUB_OFFLINE": "1",
                       "HF_ENDPOINT": hub.endpoint.absoluteString]
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: llama2Folder.appendingPathComponent("reference.json"))) as? [String: Any]
        let prompt = try XCTUnwrap(ref?["prompt_text"] as? String)
        let expected = try XCTUnwrap(ref?["greedy_text"] as? String)
        let count = try XCTUnwrap(ref?["greedy_text_ids"] as? [Int]).count
        for model in ["tiny/llama2", "tiny/llama2@main", "tiny/llama2@\(commit)"] {
            let g = try run(["generate", "--model", model, "--prompt", prompt, "--max-tokens", "\(count)",
                             "--temperature", "0", "--raw", "--ignore-eos"], env: offline)
            XCTAssertEqual(g.status, 0, "\(model): \(g.stderr)")
            XCTAssertEqual(g.stdout, expected, model)
        }

        // A revision that was never pulled: the error says how to get it.
        let missing = try run(["generate", "--model", "tiny/llama2@v2", "--prompt", "x"], env: offline)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("persona pull tiny/llama2 --revision v2"), missing.stderr)

        // `persona models` sees it: llama, bf16 weights (the fixture's dtype), runnable.
        let m = try run(["models", "--json"], env: offline)
        XCTAssertEqual(m.status, 0, m.stderr)
        let rows = m.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(rows.count, 1, m.stdout)
        let row = try XCTUnwrap(rows.first)
        XCTAssertEqual(row["id"] as? String, "tiny/llama2")
        XCTAssertEqual(row["runs"] as? Bool, true, m.stdout)
        XCTAssertEqual(row["architecture"] as? String, "llama")   // config.json model_type
        XCTAssertEqual(row["dtype"] as? String, "BF16")           // reference.json: weights_dtype bf16
        XCTAssertEqual(row["path"] as? String, snapshot.path)
        XCTAssertEqual((row["size_bytes"] as? NSNumber)?.intValue, total)
    }
}
