import Foundation
import PersonaModels
import PersonaFormats
import XCTest

/// Broken model files give a one-line error that names the file and what is wrong.
final class BadModelFileTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = FileManager.default.temporaryDirectory.appendingPathComponent("persona-bad-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: TestPaths.fixtures.appendingPathComponent("llama2"), to: tmp)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func expectError(_ contains: [String], file: StaticString = #filePath, line: UInt = #line) {
        do {
            _ = try ModelLoader.loadNetwork(path: tmp.path)
            XCTFail("expected an error", file: file, line: line)
        } catch {
            let msg = "\(error)"
            XCTAssertFalse(msg.contains("\n"), "error should be one line: \(msg)", file: file, line: line)
            for c in contains { XCTAssertTrue(msg.contains(c), "error '\(msg)' should mention '\(c)'", file: file, line: line) }
        }
    }

    func editConfig(_ edit: (inout [String: Any]) -> Void) throws {
        let url = tmp.appendingPathComponent("config.json")
        var d = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&d)
        try JSONSerialization.data(withJSONObject: d).write(to: url)
    }

    func testTruncatedSafetensors() throws {
        let url = tmp.appendingPathComponent("model.safetensors")
        let data = try Data(contentsOf: url)
        try data.prefix(data.count / 2).write(to: url)
        expectError(["model.safetensors"])
    }

    func testWrongHeader() throws {
        let url = tmp.appendingPathComponent("model.safetensors")
        var data = try Data(contentsOf: url)
        data.replaceSubrange(0..<8, with: [UInt8](repeating: 0xff, count: 8))
        try data.write(to: url)
        expectError(["model.safetensors"])
    }

    func testShapeMismatch() throws {
        try editConfig { $0["intermediate_size"] = ($0["intermediate_size"] as! Int) * 2 }
        expectError(["mlp.gate_proj.weight", "shape"])
    }

    func testUnknownArchitecture() throws {
        try editConfig { $0["model_type"] = "frobnicator" }
        expectError(["config.json", "frobnicator"])
    }

    func testMissingTensor() throws {
        try editConfig { $0["num_hidden_layers"] = ($0["num_hidden_layers"] as! Int) + 1 }
        expectError(["missing tensor", "model.layers."])
    }

    func testUnexpectedTensor() throws {
        try editConfig { $0["num_hidden_layers"] = ($0["num_hidden_layers"] as! Int) - 1 }
        expectError(["unexpected tensor"])
    }

    /// Settings that change the math and are not implemented are refused by name; they used to run as if absent.
    func testUnsupportedActivationAndRopeScaling() throws {
        try editConfig { $0["hidden_act"] = "gelu" }
        expectError(["config.json", "unsupported hidden_act 'gelu'"])
        try editConfig { $0["hidden_act"] = "silu"; $0["rope_scaling"] = ["rope_type": "dynamic", "factor": 2.0] }
        expectError(["config.json", "unsupported rope scaling type 'dynamic'"])
    }

    func testNotAGGUF() throws {
        let url = tmp.appendingPathComponent("x.gguf")
        try Data("definitely not gguf".utf8).write(to: url)
        do {
            _ = try ModelLoader.loadNetwork(path: url.path)
            XCTFail("expected an error")
        } catch {
            XCTAssertTrue("\(error)".contains("x.gguf"), "\(error)")
        }
    }

    func testMissingPath() {
        XCTAssertThrowsError(try ModelLoader.load(path: "/nonexistent/model")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/model"))
        }
    }
}

/// Gemma-2 from GGUF: the attention scale llama.cpp uses (1/sqrt(hidden/heads) for the 46-block 27B model, where
/// query_pre_attn_scalar = 144 differs from head_dim = 128; 1/sqrt(head_dim) otherwise), on synthetic configs of
/// the real shapes (gemma-2-27b-it and gemma-2-2b-it config.json values).
final class Gemma2GGUFConfigTests: XCTestCase {
    func config(blocks: Int, hidden: Int, heads: Int, kvHeads: Int, headDim: Int) throws -> ModelConfig {
        var w = GGUFWriter()
        w.set("general.architecture", .string("gemma2"))
        for (k, v) in [("block_count", blocks), ("embedding_length", hidden), ("attention.head_count", heads),
                       ("attention.head_count_kv", kvHeads), ("attention.key_length", headDim), ("attention.value_length", headDim),
                       ("feed_forward_length", 4 * hidden), ("vocab_size", 256000), ("context_length", 8192),
                       ("attention.sliding_window", 4096)] {
            w.set("gemma2.\(k)", .uint32(UInt32(v)))
        }
        w.set("gemma2.attention.layer_norm_rms_epsilon", .float32(1e-6))
        w.set("gemma2.attn_logit_softcapping", .float32(50))
        w.set("gemma2.final_logit_softcapping", .float32(30))
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gemma2-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        try w.write(to: url)
        return try ArchitectureRegistry.config(gguf: try GGUFFile(url: url))
    }

    func testAttentionScaleAsLlamaCpp() throws {
        let big = try config(blocks: 46, hidden: 4608, heads: 32, kvHeads: 16, headDim: 128)
        XCTAssertEqual(big.attnScale, 1 / Float(144).squareRoot(), accuracy: 1e-7, "27B: query_pre_attn_scalar 144")
        let small = try config(blocks: 26, hidden: 2304, heads: 8, kvHeads: 4, headDim: 256)
        XCTAssertEqual(small.attnScale, 1 / Float(256).squareRoot(), accuracy: 1e-7, "2B: head_dim 256 (hidden/heads would be 288)")
    }
}

#if os(Linux)
/// A model frees its scratch buffers when it goes away (they were never freed: every loaded-then-dropped model
/// leaked its workspace, which grows with the longest batch it ran).
final class WorkspaceLifetimeTests: XCTestCase {
    /// Resident bytes of this process (/proc/self/statm). Buffers this large are mmapped by malloc and given back
    /// to the system when freed, so a leak shows as growth and freeing does not.
    func residentBytes() throws -> Int {
        let fields = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8).split(separator: " ")
        return Int(fields[1])! * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    func testDroppedModelsReturnTheirWorkspace() throws {
        let path = TestPaths.fixtures.appendingPathComponent("llama2").path
        func cycle() throws {
            let net = try ModelLoader.loadNetwork(path: path)
            // 6 x 250 tokens in one pass (the model holds 256 positions): workspace and logits of several MB
            let batch = (0..<6).map { _ in BatchSequence(tokens: Array(repeating: 5, count: 250), cache: net.makeCache(capacity: 256)) }
            try net.forward(batch: batch, logits: .all)
        }
        try cycle()
        let before = try residentBytes()
        for _ in 0..<12 { try cycle() }
        let grown = try residentBytes() - before
        XCTAssertLessThan(grown, 16 << 20, "resident memory grew by \(grown >> 20) MB over 12 load-run-drop cycles")
    }
}
#endif

/// A precision change made from another thread while a forward pass runs waits for the pass: the pass computes
/// in the precision it started with (it used to read the property at every product).
final class PrecisionChangeTests: XCTestCase {
    func testPrecisionSetDuringAPassWaitsForIt() throws {
        let net = try ModelLoader.loadNetwork(path: TestPaths.fixtures.appendingPathComponent("llama2-q8_0.gguf").path)
        let ids = [1, 5, 9, 13, 2, 7, 3, 11]
        let exact = Array(try net.forward(ids, cache: net.makeCache(capacity: 16), logits: .all))
        net.precision = .native
        let native = Array(try net.forward(ids, cache: net.makeCache(capacity: 16), logits: .all))
        XCTAssertNotEqual(exact, native, "q8_0 weights compute differently in native precision")
        net.precision = .exact

        // At block 0's output, another thread asks for native precision; the pass must finish in exact.
        let changed = DispatchSemaphore(value: 0)
        // shared with the setter's thread: a class under its lock (captured vars are not Sendable)
        final class Flags: @unchecked Sendable {
            let lock = NSLock()
            var hookDone = false, setReturnedDuringPass = false
        }
        let flags = Flags()
        let hooks = HookSet([Intervention(.residPost(0), positions: .last, .custom { _, _, _ in
            DispatchQueue.global().async {
                net.precision = .native
                flags.lock.withLock { flags.setReturnedDuringPass = !flags.hookDone }
                changed.signal()
            }
            Thread.sleep(forTimeInterval: 0.2)   // time for the setter to return if nothing held it back
            flags.lock.withLock { flags.hookDone = true }
        })])
        let during = Array(try net.forward(ids, cache: net.makeCache(capacity: 16), hooks: hooks, logits: .all))
        changed.wait()
        XCTAssertFalse(flags.lock.withLock { flags.setReturnedDuringPass }, "the setter returned while the pass was running")
        XCTAssertEqual(during, exact, "the pass switched precision halfway")
        XCTAssertEqual(net.precision, .native, "the change took effect after the pass")
    }
}

/// Logits read in `forward(batch:logits:body:)` cannot be overwritten by a pass from another thread: that pass
/// waits for the reader (the plain `forward` returns the model's buffer, which the next pass reuses).
final class LogitsOwnershipTests: XCTestCase {
    func testAnotherThreadsPassWaitsForTheReader() throws {
        let net = try ModelLoader.loadNetwork(path: TestPaths.fixtures.appendingPathComponent("llama2").path)
        let done = DispatchSemaphore(value: 0)
        var intact = false
        try net.forward(batch: [BatchSequence(tokens: [1, 5, 9], cache: net.makeCache(capacity: 8))], logits: .last) { logits in
            let copy = Array(logits)
            DispatchQueue.global().async {
                _ = try? net.forward([1, 300, 2, 8, 8], cache: net.makeCache(capacity: 8), logits: .last)
                done.signal()
            }
            Thread.sleep(forTimeInterval: 0.2)   // the other pass would have finished by now if it could run
            intact = Array(logits) == copy
        }
        done.wait()
        XCTAssertTrue(intact, "another pass overwrote the logits while they were being read")
    }
}
