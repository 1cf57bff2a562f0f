import Foundation
import PersonaFormats
import XCTest
@testable import PersonaTestSupport

/// The command-line surface outside checks use (`generate`, `trace`, `tokenize`, `convert`), run as a user would.
final class CLITests: XCTestCase {
    var binary: URL { get throws { try Subprocess.personaBinary(besides: CLITests.self) } }

    func run(_ args: [String], environment: [String: String]? = nil) throws -> (status: Int32, stdout: String, stderr: String) {
        try Subprocess.run(try binary, args, environment: environment.map { Subprocess.environment(merging: $0) })
    }

    var stories: String { get throws { try TestPaths.stories260K.path } }

    func testGeneratePrintsOnlyTheCompletion() throws {
        // Reference: transformers' greedy continuation (Fixtures/stories260K.reference.json), 32 tokens.
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: TestPaths.fixtures.appendingPathComponent("stories260K.reference.json"))) as! [String: Any]
        let expected = ref["greedy_text"] as! String
        let r = try run(["generate", "--model", stories, "--prompt", "Once upon a time", "--max-tokens", "32", "--temperature", "0"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertEqual("Once upon a time" + r.stdout, expected)
    }

    /// `monitor --json-lines`: one JSON object per line; each token's `text` is the run's token (split characters as
    /// <0xNN>), its `piece` what it adds to the response, and `done` carries the response the pieces add up to.
    func testMonitorJSONLinesPiecesAddUpToTheResponse() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("jl-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: out) }
        // a prompt SmolLM2 answers with Thai: characters split over byte tokens
        let r = try run(["monitor", "--model", try Repository.smolLM2.path, "--vectors", Repository.root.appendingPathComponent("examples/vectors/smollm2").path,
                         "--traits", "evil", "--prompt", "Translate to Thai and Chinese: good morning, friend", "--max-tokens", "24",
                         "--json-lines", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let events = try r.stdout.split(separator: "\n").map { try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let tokens = events.filter { $0["event"] as? String == "token" }, done = try XCTUnwrap(events.last)
        let run = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
        XCTAssertEqual(done["event"] as? String, "done")
        XCTAssertEqual(tokens.count, 24)
        XCTAssertEqual(tokens.compactMap { $0["text"] as? String }, run["tokens"] as? [String])
        XCTAssertTrue(tokens.contains { ($0["text"] as? String)?.hasPrefix("<0x") == true }, "the answer has a split character")
        XCTAssertEqual(tokens.compactMap { $0["piece"] as? String }.joined(), run["response"] as? String)
        XCTAssertEqual(done["response"] as? String, run["response"] as? String)
    }

    /// A --max-tokens far past the context (up to Int.max) generates until the context is full: no overflow, and no
    /// buffer sized for tokens the cache cannot hold (100000000000 asked for 800 GB and aborted before).
    func testMaxTokensPastTheContextStopsAtTheContext() throws {
        for n in ["100000000000", String(Int.max)] {
            let r = try run(["generate", "--model", stories, "--prompt", "Once upon a time", "--raw", "--max-tokens", n,
                             "--ignore-eos", "--verbose"])
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertTrue(r.stderr.contains("finish: length"), r.stderr)
            // stories260K's context is 2048: the prompt (5 ids with BOS) and 2043 new tokens fill it, and the
            // last position's logits give one more
            XCTAssertTrue(r.stderr.contains("5 prompt tokens, 2044 generated"), r.stderr)
        }
    }

    /// --frequency-penalty / --presence-penalty (negative values too) reach greedy decoding on stories260K, whose
    /// plain answer says "Lily" and "she" again; out of range is a one-line error.
    func testOpenAIPenaltiesThroughTheBinary() throws {
        let base = ["generate", "--model", try stories, "--prompt", "Once upon a time", "--max-tokens", "40"]
        let plain = try run(base), freq = try run(base + ["--frequency-penalty", "2"]), pres = try run(base + ["--presence-penalty", "-2"])
        for r in [plain, freq, pres] { XCTAssertEqual(r.status, 0, r.stderr) }
        XCTAssertNotEqual(freq.stdout, plain.stdout)
        XCTAssertNotEqual(pres.stdout, plain.stdout)
        let bad = try run(base + ["--frequency-penalty", "3"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("frequency penalty must be in [-2, 2]"), bad.stderr)
    }

    func testTraceWritesHiddenStatesAndLogitsMatchingTransformers() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("trace-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try run(["trace", "--model", stories, "--ids", "1,403,407,261,378", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let mine = try SafetensorsFile(url: out)
        let ref = try SafetensorsFile(url: TestPaths.fixtures.appendingPathComponent("stories260K.reference.safetensors"))
        XCTAssertEqual(Set(mine.tensorNames), Set((0...5).map { "hidden_states.\($0)" } + ["logits"]))
        for name in mine.tensorNames {
            let a = mine.tensor(name)!, b = ref.tensor(name)!
            XCTAssertEqual(a.shape, b.shape, name)
            XCTAssertEqual(a.dtype, .f32)
            let x = UnsafeBufferPointer(start: a.data.assumingMemoryBound(to: Float.self), count: a.elementCount)
            let y = UnsafeBufferPointer(start: b.data.assumingMemoryBound(to: Float.self), count: b.elementCount)
            XCTAssertLessThanOrEqual(maxAbsDiff(Array(x), Array(y)), 1e-4, name)
        }
    }

    func testTokenizePrintsJSONIds() throws {
        let r = try run(["tokenize", "--model", stories, "--text", "Once upon a time", "--add-special"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ids = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [Int]
        XCTAssertEqual(ids, [1, 403, 407, 261, 378])  // transformers' GGUF tokenizer gives the same
    }

    /// `tokenize --bench` encodes line by line; a Windows (CRLF) file has as many lines as a Unix one,
    /// so both give the same byte and token counts (Swift's "\r\n" is one Character, not a line break).
    func testTokenizeBenchSplitsCRLFLinesLikeLF() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let lines = ["Once upon a time", "there was a cat", "", "The end"]
        var counts: [[String: Double]] = []
        for (name, sep) in [("lf.txt", "\n"), ("crlf.txt", "\r\n")] {
            let f = dir.appendingPathComponent(name)
            try Data(lines.joined(separator: sep).utf8).write(to: f)
            let r = try run(["tokenize", "--model", stories, "--file", f.path, "--bench"])
            XCTAssertEqual(r.status, 0, r.stderr)
            counts.append(try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Double]))
        }
        let bytes = lines.reduce(0) { $0 + $1.utf8.count }
        var tokens = 0
        for l in lines where !l.isEmpty {
            let r = try run(["tokenize", "--model", stories, "--text", l])
            tokens += try XCTUnwrap(JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [Int]).count
        }
        for c in counts {
            XCTAssertEqual(c["bytes"], Double(bytes))
            XCTAssertEqual(c["tokens"], Double(tokens))
        }
    }

    /// `models` says why a cached snapshot does not run: a config.json without model_type is not "no config.json".
    func testModelsSaysWhyASnapshotDoesNotRun() throws {
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("hf-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: home) }
        let snaps = home.appendingPathComponent("hub/models--org--noType/snapshots/abc")
        try FileManager.default.createDirectory(at: snaps, withIntermediateDirectories: true)
        try Data(#"{"architectures": ["LlamaForCausalLM"]}"#.utf8).write(to: snaps.appendingPathComponent("config.json"))
        let empty = home.appendingPathComponent("hub/models--org--empty/snapshots/abc")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let r = try run(["models", "--json"], environment: ["HF_HOME": home.path, "HF_HUB_CACHE": home.appendingPathComponent("hub").path])
        XCTAssertEqual(r.status, 0, r.stderr)
        var notes: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            notes[o["id"] as? String ?? "?"] = o["note"] as? String
        }
        XCTAssertEqual(notes, ["org/noType": "config.json has no model_type (or is not a JSON object)", "org/empty": "no config.json or .gguf"])
    }

    /// `--messages -` and `--messages /dev/stdin` read standard input; the render equals transformers' (fixture).
    func testChatTemplateReadsMessagesFromStandardInput() throws {
        let ref = try ArchitectureFixtures.reference("llama")
        let expected = try XCTUnwrap(ref.string("chat_prompt_text"))
        let model = ArchitectureFixtures.url("llama").path
        let messages = #"[{"role": "user", "content": "Hi there"}]"#
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("msgs-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data(messages.utf8).write(to: file)
        for source in ["-", "/dev/stdin"] {
            let r = try Subprocess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "\"$0\" chat-template --model \"$1\" --messages \"$2\" < \"$3\"",
                                                                          try binary.path, model, source, file.path])
            XCTAssertEqual(r.status, 0, "--messages \(source): \(r.stderr)")
            XCTAssertEqual(r.stdout, expected, "--messages \(source)")
        }
        let piped = try Subprocess.run(URL(fileURLWithPath: "/bin/sh"), ["-c", "cat \"$2\" | \"$0\" chat-template --model \"$1\" --messages -",
                                                                        try binary.path, model, file.path])
        XCTAssertEqual(piped.stdout, expected, piped.stderr)
    }

    func testBadArgumentsAreOneLineErrors() throws {
        let r = try run(["generate", "--model", "/nonexistent.gguf", "--prompt", "x"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("/nonexistent.gguf"), r.stderr)
        let t = try run(["trace", "--model", stories, "--ids", "1,x", "--out", "/tmp/never.safetensors"])
        XCTAssertNotEqual(t.status, 0)
        XCTAssertTrue(t.stderr.contains("'x'"), t.stderr)
    }

    func testConvertImportsPerTokenProjectResults() throws {
        let input = try TestPaths.shared.appendingPathComponent("reference/trait-interp/pertoken_results/pilot_results.json")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("runs-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try run(["convert", input.path, "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let runs = try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as! [[String: Any]]
        let theirs = try JSONSerialization.jsonObject(with: Data(contentsOf: input)) as! [[String: Any]]
        XCTAssertEqual(runs.count, theirs.count)
        XCTAssertEqual(runs[0]["schema"] as? String, "personascope.run/1")
        XCTAssertEqual(runs[0]["tokens"] as? [String], theirs[0]["tokens"] as? [String])
        let mine = (runs[0]["trait_scores"] as! [String: [Double]])["evil"]!
        let orig = (theirs[0]["projections"] as! [String: [Double]])["evil"]!
        XCTAssertEqual(mine, orig)
    }

    /// A model in a Hugging Face cache (laid out as huggingface_hub does: blobs, snapshot symlinks, refs)
    /// loads by id, offline, and generates exactly what the folder itself generates.
    func testHubIdFromTheCacheGeneratesLikeTheFolder() throws {
        let fm = FileManager.default
        let root = fm.temporaryDirectory.appendingPathComponent("hub-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: root) }
        let repo = root.appendingPathComponent("models--tiny--llama2")
        let commit = "0123456789abcdef0123456789abcdef01234567"
        let snapshot = repo.appendingPathComponent("snapshots/\(commit)")
        try fm.createDirectory(at: snapshot, withIntermediateDirectories: true)
        try fm.createDirectory(at: repo.appendingPathComponent("blobs"), withIntermediateDirectories: true)
        try fm.createDirectory(at: repo.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try commit.write(to: repo.appendingPathComponent("refs/main"), atomically: true, encoding: .utf8)
        let source = TestPaths.fixtures.appendingPathComponent("llama2")
        for (i, name) in try fm.contentsOfDirectory(atPath: source.path).sorted().enumerated() where !name.hasPrefix("reference") {
            let blob = "blob\(i)"
            try fm.copyItem(at: source.appendingPathComponent(name), to: repo.appendingPathComponent("blobs/\(blob)"))
            try fm.createSymbolicLink(atPath: snapshot.appendingPathComponent(name).path, withDestinationPath: "../../blobs/\(blob)")
        }
        let args = ["generate", "--prompt", "Once upon a time", "--max-tokens", "12", "--temperature", "0", "--raw"]
        let byId = try run(args + ["--model", "tiny/llama2"], environment: ["HF_HUB_CACHE": root.path, "HF_HUB_OFFLINE": "1"])
        let byPath = try run(args + ["--model", source.path])
        XCTAssertEqual(byId.status, 0, byId.stderr)
        XCTAssertEqual(byId.stdout, byPath.stdout)
        XCTAssertFalse(byId.stdout.isEmpty)
        let missing = try run(args + ["--model", "tiny/absent"], environment: ["HF_HUB_CACHE": root.path, "HF_HUB_OFFLINE": "1"])
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.stderr.contains("persona pull"), missing.stderr)
    }

    /// `--kv-cache f16` through the binary on the real SmolLM2: generate still answers the chat question
    /// (transformers' greedy answer, Paris), monitor's scores stay within the f16 rounding of keys and values of the
    /// f32 cache's (the same text; with stdout a pipe, monitor's summary line on stderr gives each run's token count
    /// and mean score as the file has them), bench reports the type, half the cache bytes and the bandwidth bound with the
    /// cache bytes a decode step reads, and an unknown type is refused naming the flag.
    func testKVCacheF16ThroughTheBinary() throws {
        let smol = try Repository.smolLM2.path
        let q = "What is the capital of France?"
        let g = try run(["generate", "--model", smol, "--prompt", q, "--max-tokens", "12", "--temperature", "0", "--kv-cache", "f16"])
        XCTAssertEqual(g.status, 0, g.stderr)
        XCTAssertTrue(g.stdout.contains("Paris"), g.stdout)
        let dir = try Repository.temporaryDirectory("kv16")
        defer { try? FileManager.default.removeItem(at: dir) }
        var runs: [String: [String: Any]] = [:]
        for kv in ["f32", "f16"] {
            let out = dir.appendingPathComponent("\(kv).json").path
            let r = try run(["monitor", "--model", smol, "--vectors", Repository.root.appendingPathComponent("examples/vectors/smollm2").path,
                             "--traits", "evil", "--prompt", q, "--max-tokens", "16", "--temperature", "0", "--kv-cache", kv, "--out", out])
            XCTAssertEqual(r.status, 0, r.stderr)
            runs[kv] = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out))) as? [String: Any]
            // stdout is a pipe here, so no live view: the run's summary goes to stderr, stdout stays empty
            XCTAssertEqual(r.stdout, "")
            let evil = ((runs[kv]?["trait_scores"] as? [String: Any])?["evil"] as? [NSNumber])?.map(\.doubleValue) ?? []
            let finish = try XCTUnwrap((runs[kv]?["metadata"] as? [String: Any])?["finish_reason"] as? String)
            XCTAssertTrue(r.stderr.contains("\n\(evil.count) tokens, "), r.stderr)
            XCTAssertTrue(r.stderr.contains(" tok/s, finish: \(finish); mean score: evil "
                + String(format: "%+.1f", evil.reduce(0, +) / Double(max(evil.count, 1))) + "\n"), r.stderr)
        }
        XCTAssertEqual(runs["f16"]?["response"] as? String, runs["f32"]?["response"] as? String)
        let a = ((runs["f32"]?["trait_scores"] as? [String: Any])?["evil"] as? [NSNumber])?.map(\.doubleValue) ?? []
        let b = ((runs["f16"]?["trait_scores"] as? [String: Any])?["evil"] as? [NSNumber])?.map(\.doubleValue) ?? []
        XCTAssertEqual(a.count, b.count)
        XCTAssertFalse(a.isEmpty)
        XCTAssertNotEqual(a, b, "the f16 cache's rounding is in effect")
        // scores are residual projections of size ~100: the cache's 2^-11 rounding moves them by far less than 1%
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-3 * max(abs(x), 10)) }
        var bytes: [String: Int] = [:]
        for kv in ["f32", "f16"] {
            let r = try run(["bench", "--model", smol, "--prompt-tokens", "8", "--decode-tokens", "2", "--repeats", "1", "--kv-cache", kv, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(j["kv_cache_type"] as? String, kv)
            bytes[kv] = j["kv_cache_bytes"] as? Int
            // The bound counts the keys and values the two decode steps read: SmolLM2-135M has 30 layers of 3 KV
            // heads of 64; steps at positions 8 and 9 attend to 9 and 10 rows, K and V each.
            let element = kv == "f32" ? 4 : 2
            XCTAssertEqual(j["kv_bytes_per_token"] as? Int, 30 * 2 * 3 * 64 * element * (9 + 10) / 2)
            let bound = try XCTUnwrap(j["bandwidth_gb_s"] as? Double) * 1e9
                / Double(try XCTUnwrap(j["weight_bytes_per_token"] as? Int) + (j["kv_bytes_per_token"] as? Int ?? 0))
            XCTAssertEqual(try XCTUnwrap(j["bandwidth_bound_tok_s"] as? Double), bound, accuracy: 1e-9 * bound)
        }
        XCTAssertEqual(bytes["f16"].map { $0 * 2 }, bytes["f32"])
        let bad = try run(["generate", "--model", smol, "--prompt", q, "--kv-cache", "q8_0"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--kv-cache must be f32 or f16"), bad.stderr)
    }

    /// The bench's bandwidth bound counts the cached keys and values a decode step reads, a sliding-window layer
    /// only its window: the Gemma-2 fixture's shape (3 layers, sliding / full / sliding, window 6, 2 KV heads of 16)
    /// with an 8-token prompt and 4 steps: the full layer reads 9 + 10 + 11 + 12 rows, each sliding one 6 per step.
    func testBenchBoundCountsTheKVCacheASlidingWindowReads() throws {
        let config = TestPaths.repoRoot.appendingPathComponent("Tests/PersonaModelsTests/Fixtures/gemma2/config.json").path
        let r = try run(["bench", "--config", config, "--dtype", "f32", "--prompt-tokens", "8", "--decode-tokens", "4",
                         "--repeats", "1", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let rowBytes = 2 * 2 * 16 * 4   // K and V, 2 heads of 16, f32
        XCTAssertEqual(j["kv_bytes_per_token"] as? Int, rowBytes * ((9 + 10 + 11 + 12) + 2 * 4 * 6) / 4)
    }

    /// `persona bench --json` reports every measurement, the batched decode included, for both precisions.
    func testBenchReportsBatchedDecode() throws {
        for precision in ["exact", "native"] {
            let r = try run(["bench", "--model", stories, "--prompt-tokens", "8", "--decode-tokens", "4", "--repeats", "1",
                             "--batch", "3", "--precision", precision, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(j["batch"] as? Int, 3)
            XCTAssertEqual(j["precision"] as? String, precision)
            for key in ["prefill_tok_s", "decode_tok_s", "decode_monitored_tok_s", "decode_steered_tok_s", "decode_batched_tok_s"] {
                XCTAssertGreaterThan(j[key] as? Double ?? 0, 0, key)
            }
        }
        let bad = try run(["bench", "--model", stories, "--batch", "-1"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("--batch"), bad.stderr)
    }

    /// A batch monitor killed with SIGKILL resumes from its journal: no lost or duplicated runs, same result as
    /// an uninterrupted one-prompt-at-a-time run (greedy decoding is deterministic; prompts run 5 at a time
    /// finish out of order and are journaled as they finish).
    func testBatchMonitorResumesAfterKill9() throws {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("batch-\(UUID().uuidString)")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? fm.removeItem(at: dir) }
        let prompts = (0..<40).map { "{\"prompt\": \"Once upon a time there was a cat number \($0)\"}" }.joined(separator: "\n")
        let set = dir.appendingPathComponent("prompts.jsonl")
        try prompts.write(to: set, atomically: true, encoding: .utf8)
        let vectors = TestPaths.repoRoot.appendingPathComponent("examples/vectors/stories260K").path
        let stories = try self.stories
        func args(_ out: URL, batch: Int = 5) -> [String] {
            ["monitor", "--model", stories, "--vectors", vectors, "--prompts", set.path, "--max-tokens", "24",
             "--batch-size", "\(batch)", "--out", out.path]
        }
        let out = dir.appendingPathComponent("runs.json"), journal = URL(fileURLWithPath: out.path + ".partial.jsonl")
        let p = Process()
        p.executableURL = try binary
        p.arguments = args(out)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // kill -9 once a few prompts are journaled
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if let d = try? Data(contentsOf: journal), d.filter({ $0 == UInt8(ascii: "\n") }).count >= 3 { break }
            usleep(20_000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertFalse(fm.fileExists(atPath: out.path), "killed before the end")
        let resumed = try run(args(out))
        XCTAssertEqual(resumed.status, 0, resumed.stderr)
        XCTAssertTrue(resumed.stderr.contains("resuming"), resumed.stderr)
        XCTAssertFalse(fm.fileExists(atPath: journal.path), "journal removed once the output is written")
        let full = dir.appendingPathComponent("full.json")
        XCTAssertEqual(try run(args(full, batch: 1)).status, 0)
        let a = try JSONSerialization.jsonObject(with: Data(contentsOf: out)) as! [[String: Any]]
        let b = try JSONSerialization.jsonObject(with: Data(contentsOf: full)) as! [[String: Any]]
        XCTAssertEqual(a.count, 40)
        XCTAssertEqual(Set(a.map { $0["id"] as! String }).count, 40, "no duplicated runs")
        XCTAssertEqual(a.map { $0["prompt"] as! String }, b.map { $0["prompt"] as! String })
        XCTAssertEqual(a.map { $0["token_ids"] as! [Int] }, b.map { $0["token_ids"] as! [Int] })
        for (x, y) in zip(a, b) {
            let sx = x["trait_scores"] as! [String: [Double]], sy = y["trait_scores"] as! [String: [Double]]
            XCTAssertEqual(Set(sx.keys), Set(sy.keys))
            for (trait, v) in sx { for (p, q) in zip(v, sy[trait]!) { XCTAssertEqual(p, q, accuracy: 1e-4, trait) } }
        }
    }

    /// Every command's --help, reached by walking the SUBCOMMANDS lists: it exits 0 and shows no source-code line
    /// continuations (a doubled backslash in a help text printed "\" at the end of lines of three commands).
    func testEveryHelpTextReadsClean() throws {
        var queue: [[String]] = [[]], seen = 0
        while let path = queue.popLast() {
            let r = try run(path + ["--help"])
            XCTAssertEqual(r.status, 0, "\(path) \(r.stderr)")
            for line in r.stdout.split(separator: "\n") where line.hasSuffix("\\") {
                XCTFail("persona \(path.joined(separator: " ")) --help: \(line)")
            }
            // The discussion is reflowed at 80 columns, so text laid out in columns there comes out broken
            // (convert's did); and one blank line, not two, before USAGE.
            if let usage = r.stdout.range(of: "USAGE:") {
                let discussion = r.stdout[..<usage.lowerBound]
                for line in discussion.split(separator: "\n") where line.drop { $0 == " " }.contains("   ") {
                    XCTFail("persona \(path.joined(separator: " ")) --help: laid out in columns: \(line)")
                }
                XCTAssertFalse(discussion.hasSuffix("\n\n\n"), "persona \(path.joined(separator: " ")) --help: blank lines before USAGE")
            }
            seen += 1
            guard let start = r.stdout.range(of: "SUBCOMMANDS:\n") else { continue }
            for line in r.stdout[start.upperBound...].split(separator: "\n", omittingEmptySubsequences: false) {
                if line.isEmpty { break }
                guard line.hasPrefix("  "), !line.hasPrefix("   "), let name = line.split(separator: " ").first else { continue }
                queue.append(path + [String(name)])
            }
        }
        XCTAssertGreaterThan(seen, 20, "the walk should reach every command")
    }
}
