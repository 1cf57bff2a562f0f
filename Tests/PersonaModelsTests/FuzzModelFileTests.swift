import Foundation
import PersonaFormats
import PersonaModels
import PersonaTokenizers
import XCTest
@testable import PersonaTestSupport

/// Seeded mutation fuzzing of what the loader reads beyond the containers (whose parsers PersonaFormatsTests fuzz):
/// config.json of every fixture architecture, and GGUF model metadata (hyper-parameters, tokenizer) with real
/// weights behind it. An input that loads must also run a short forward pass; anything else must be refused with
/// a described ModelError / FormatError / TokenizerError. PERSONA_FUZZ_ITERATIONS=N for a longer run by hand.
final class FuzzModelFileTests: XCTestCase {
    static let expected: [Error.Type] = [ModelError.self, FormatError.self, TokenizerError.self]

    /// A forward pass of three tokens, as generation would start.
    func exercise(_ m: TransformerModel) throws {
        let ids = [1, 2, 3].map { min($0, m.config.vocabSize - 1) }
        let logits = try m.forward(ids, cache: m.makeCache(capacity: 8), logits: .last)
        XCTAssertEqual(logits.count, m.config.vocabSize)
        XCTAssertTrue(logits.allSatisfy { $0.isFinite }, "a forward that returns must return finite logits")
    }

    func testConfigJSONMutations() throws {
        let archs = ["llama", "llama2", "mistral", "qwen2", "qwen3", "gemma", "gemma2"]
        let fm = FileManager.default
        let work = fm.temporaryDirectory.appendingPathComponent("fuzz-config-\(UUID().uuidString)")
        defer { try? fm.removeItem(at: work) }
        // One working folder per architecture: the fixture's files linked, config.json rewritten each iteration.
        var corpus: [(dir: URL, config: [UInt8])] = []
        for a in archs {
            let src = TestPaths.fixtures.appendingPathComponent(a)
            let dir = work.appendingPathComponent(a)
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            for f in try fm.contentsOfDirectory(atPath: src.path) where f != "config.json" {
                try fm.createSymbolicLink(at: dir.appendingPathComponent(f), withDestinationURL: src.appendingPathComponent(f))
            }
            corpus.append((dir, try [UInt8](Data(contentsOf: src.appendingPathComponent("config.json")))))
        }
        var rng = FuzzRNG(seed: FuzzMutator.seed(0xC0F1_65EED))
        var tally = FuzzTally()
        var forwards = 0
        for i in 0 ..< FuzzMutator.iterations(300) {
            let (dir, config) = rng.pick(corpus)
            try Data(FuzzMutator.mutatedJSON(config, rng: &rng)).write(to: dir.appendingPathComponent("config.json"))
            if let p = tally.run(iteration: i, expectedTypes: Self.expected, {
                _ = try ArchitectureRegistry.config(hfConfigAt: dir.appendingPathComponent("config.json"))
                let m = try ModelLoader.loadNetwork(path: dir.path)
                try exercise(m)
                forwards += 1
            }) { XCTFail("iteration \(i): \(p)") }
        }
        XCTAssertGreaterThan(tally.refused, 0, "\(tally)")
        XCTAssertGreaterThan(forwards, 0, "\(tally)")
        XCTAssertLessThan(tally.slowest, 5, "one config took too long: \(tally)")
        print("fuzz config.json: \(tally), \(forwards) forward passes")
    }

    func testGGUFModelMetadataMutations() throws {
        var corpus: [(bytes: [UInt8], header: Int, withTokenizer: Bool)] = []
        for f in ["llama2-q8_0.gguf", "qwen2-f16.gguf"] {
            let u = TestPaths.fixtures.appendingPathComponent(f)
            corpus.append(([UInt8](try Data(contentsOf: u)), try GGUFFile(url: u).dataOffset, false))
        }
        if let stories = try? TestPaths.stories260K, FileManager.default.fileExists(atPath: stories.path) {
            corpus.append(([UInt8](try Data(contentsOf: stories)), try GGUFFile(url: stories).dataOffset, true))
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-ggufmodel-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: work) }
        var rng = FuzzRNG(seed: FuzzMutator.seed(0x660F_30DE1))
        var tally = FuzzTally()
        var forwards = 0
        for i in 0 ..< FuzzMutator.iterations(300) {
            let (orig, header, withTokenizer) = rng.pick(corpus)
            // Mostly the metadata and tensor table; one time in eight anywhere (weights included: NaN detection).
            let b = FuzzMutator.mutated(orig, rng: &rng, region: rng.chance(8) ? nil : header)
            try Data(b).write(to: work)
            if let p = tally.run(iteration: i, expectedTypes: Self.expected, {
                if withTokenizer {
                    let loaded = try ModelLoader.load(path: work.path)
                    _ = loaded.tokenizer.tokenizer.encode("Once upon a time", addSpecialTokens: true)
                    try exercise(loaded.model)
                } else {
                    try exercise(try ModelLoader.loadNetwork(path: work.path))
                }
                forwards += 1
            }) { XCTFail("iteration \(i): \(p)") }
        }
        XCTAssertGreaterThan(tally.refused, 0, "\(tally)")
        XCTAssertGreaterThan(forwards, 0, "\(tally)")
        XCTAssertLessThan(tally.slowest, 5, "one file took too long: \(tally)")
        print("fuzz GGUF model metadata: \(tally), \(forwards) forward passes")
    }

    // MARK: regressions (crashes the fuzzing found, fixed in the owning module)

    /// A negative or huge num_hidden_layers crashed ModelConfig.init (Array with a negative count, or a
    /// multi-gigabyte per-layer array) before validate() could refuse it.
    func testRegressionLayerCountIsCheckedBeforeUse() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-reg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = TestPaths.fixtures.appendingPathComponent("qwen2/config.json")
        for arch in ["qwen2", "gemma2", "mistral"] {
            for n in [-1, 0, Int(Int32.max), 1 << 40] {
                var j = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: src)) as? [String: Any])
                j["model_type"] = arch
                j["num_hidden_layers"] = n
                j["sliding_window"] = 16
                let u = dir.appendingPathComponent("config.json")
                try JSONSerialization.data(withJSONObject: j).write(to: u)
                XCTAssertThrowsError(try ArchitectureRegistry.config(hfConfigAt: u)) { e in
                    XCTAssertTrue("\(e)".contains("num_hidden_layers \(n)"), "\(e)")
                }
            }
        }
        // The same through GGUF metadata: llama.block_count retyped to int32 -1, and set to 2^32 - 1.
        var b = [UInt8](try Data(contentsOf: TestPaths.fixtures.appendingPathComponent("llama2-q8_0.gguf")))
        let key = Array("llama.block_count".utf8)
        let at = try XCTUnwrap((0 ..< b.count - key.count).first { b[$0 ..< $0 + key.count].elementsEqual(key) }) + key.count
        XCTAssertEqual(b[at], 4, "block_count is stored as uint32")
        for (type, value) in [(UInt8(5), UInt32.max), (UInt8(4), UInt32.max)] {
            b[at] = type
            for k in 0 ..< 4 { b[at + 4 + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(k))) }
            let u = dir.appendingPathComponent("m.gguf")
            try Data(b).write(to: u)
            XCTAssertThrowsError(try ModelLoader.loadNetwork(path: u.path)) { e in
                XCTAssertTrue("\(e)".contains("llama.block_count"), "\(e)")
            }
        }
    }
}
