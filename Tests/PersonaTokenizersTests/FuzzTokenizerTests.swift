import Foundation
import PersonaFormats
import PersonaTokenizers
import XCTest
@testable import PersonaTestSupport

/// Seeded mutation fuzzing of the tokenizer-side parsers, starting from real files: tokenizer.json folders,
/// vocabulary-only GGUFs from llama.cpp, and real chat templates. Every input must load (and then encode, decode
/// and render without crashing) or be refused with a described error of the module's own type.
/// CI runs a few seconds per target; PERSONA_FUZZ_ITERATIONS=N (and PERSONA_FUZZ_SEED) for longer runs by hand.
final class FuzzTokenizerTests: XCTestCase {
    let sample = "Hello world! 123 héllo 日本 🚀 <|endoftext|> <s>\n\t  x"

    /// Uses what a loaded tokenizer offers, as the engine would.
    func exercise(_ tok: any Tokenizer) {
        let ids = tok.encode(sample, addSpecialTokens: true)
        XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < max(tok.vocabSize, 1) }, "encode produced an id outside 0..<\(tok.vocabSize)")
        _ = tok.decode(ids, skipSpecialTokens: false)
        _ = tok.decode(ids + [-1, tok.vocabSize, Int.max], skipSpecialTokens: true)
        var s = StreamingDetokenizer(tokenizer: tok)
        for id in ids.prefix(32) { _ = s.append(id) }
        _ = s.flush()
    }

    func testTokenizerJSONMutations() throws {
        let names = ["bpe_llama3", "bpe_qwen2", "bpe_gpt2", "bpe_misc", "bpe_added_tokens", "spm_llama2", "spm_gemma",
                     "unigram", "unigram_bytefallback", "wordpiece"]
        var corpus: [(tj: [UInt8], cfg: [UInt8]?)] = []
        for n in names {
            let dir = try fixtureURL(n)
            let cfg = try? [UInt8](Data(contentsOf: dir.appendingPathComponent("tokenizer_config.json")))
            corpus.append((try [UInt8](Data(contentsOf: dir.appendingPathComponent("tokenizer.json"))), cfg))
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-tokjson-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var rng = FuzzRNG(seed: FuzzMutator.seed(0x70C_5EED))
        var tally = FuzzTally()
        for i in 0 ..< FuzzMutator.iterations(150) {
            let (tj, cfg) = rng.pick(corpus)
            let mutateConfig = cfg != nil && rng.chance(5)
            let tjOut = mutateConfig ? tj : FuzzMutator.mutatedJSON(tj, rng: &rng)
            try Data(tjOut).write(to: work.appendingPathComponent("tokenizer.json"))
            let cfgURL = work.appendingPathComponent("tokenizer_config.json")
            try? FileManager.default.removeItem(at: cfgURL)
            if let cfg { try Data(mutateConfig ? FuzzMutator.mutatedJSON(cfg, rng: &rng) : cfg).write(to: cfgURL) }
            if let p = tally.run(iteration: i, expectedTypes: [TokenizerError.self], {
                let b = try TokenizerBundle.load(directory: work)
                exercise(b.tokenizer)
            }) { XCTFail("iteration \(i): \(p)") }
        }
        XCTAssertGreaterThan(tally.refused, 0, "\(tally)")
        XCTAssertGreaterThan(tally.ok, 0, "\(tally)")
        XCTAssertLessThan(tally.slowest, 5, "one input took too long: \(tally)")
        print("fuzz tokenizer.json: \(tally)")
    }

    func testGGUFVocabularyMutations() throws {
        // Both GGUF tokenizer models (llama = SentencePiece, gpt2 = byte-level BPE); the large vocabularies
        // (qwen2, deepseek, gemma-4) are added when PERSONA_FUZZ_ITERATIONS asks for a longer run.
        var files = ["ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-gpt-2.gguf"]
        if ProcessInfo.processInfo.environment["PERSONA_FUZZ_ITERATIONS"] != nil {
            files += ["ggml-vocab-qwen2.gguf", "ggml-vocab-deepseek-llm.gguf", "ggml-vocab-llama-bpe.gguf"]
        }
        var corpus: [(bytes: [UInt8], hot: [Int])] = []
        for f in files {
            let b = try [UInt8](Data(contentsOf: try requireShared("reference/llama.cpp-vocab/\(f)")))
            corpus.append((b, Self.fieldPositions(b)))
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-ggufvocab-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: work) }
        var rng = FuzzRNG(seed: FuzzMutator.seed(0x66_0F_5EED))
        var tally = FuzzTally()
        for i in 0 ..< FuzzMutator.iterations(60) {
            let (orig, hot) = rng.pick(corpus)
            var b = orig
            for _ in 0 ..< 1 + rng.below(3) {
                if !hot.isEmpty && rng.chance(2) {
                    // Overwrite the type / count / value right after a tokenizer.* key with a boundary integer.
                    let p = rng.pick(hot) + rng.pick([0, 4, 8, 12])
                    let v = rng.chance(3) ? rng.next() : rng.pick(FuzzMutator.interestingIntegers)
                    for k in 0 ..< rng.pick([1, 4, 8]) where p + k < b.count { b[p + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) }
                } else {
                    FuzzMutator.mutateBytes(&b, rng: &rng)
                }
            }
            try Data(b).write(to: work)
            if let p = tally.run(iteration: i, expectedTypes: [TokenizerError.self, FormatError.self], {
                let bundle = try TokenizerBundle.load(gguf: try GGUFFile(url: work))
                exercise(bundle.tokenizer)
            }) { XCTFail("iteration \(i): \(p)") }
        }
        XCTAssertGreaterThan(tally.refused, 0, "\(tally)")
        XCTAssertGreaterThan(tally.ok, 0, "\(tally)")
        XCTAssertLessThan(tally.slowest, 10, "one input took too long: \(tally)")
        print("fuzz GGUF vocab: \(tally)")
    }

    /// Offsets just after each metadata key that starts with "tokenizer." or "general." (where its value type,
    /// array count or scalar value sits).
    static func fieldPositions(_ b: [UInt8]) -> [Int] {
        var out: [Int] = []
        let prefixes = [Array("tokenizer.".utf8), Array("general.".utf8)]
        var i = 8
        while i + 16 < b.count, out.count < 64 {
            // A GGUF string: u64 length, bytes. Look for a plausible length followed by one of the prefixes.
            if let p = prefixes.first(where: { b[i ..< min(b.count, i + $0.count)].elementsEqual($0) }) {
                var n = 0
                for k in 0 ..< 8 { n |= Int(b[i - 8 + k]) << (8 * k) }
                if n >= p.count && n < 256 && i + n < b.count { out.append(i + n); i += n; continue }
            }
            i += 1
        }
        return out
    }

    func testChatTemplateMutations() throws {
        let dir = try requireShared("reference/chat-templates")
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".jinja") }.sorted()
        XCTAssertGreaterThan(files.count, 3)
        let corpus = try files.map { [UInt8](try Data(contentsOf: dir.appendingPathComponent($0))) }
        let messages = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi {{ there }}"),
                        ChatMessage(role: "assistant", content: "Hello."), ChatMessage(role: "user", content: "Again")]
        // Budgets well under the defaults so that a mutated loop costs milliseconds, not seconds.
        let limits = ChatTemplate.Limits(maxIterations: 20_000, maxOutputBytes: 1 << 20, maxCallDepth: 50)
        var rng = FuzzRNG(seed: FuzzMutator.seed(0xC4A7_5EED))
        var tally = FuzzTally()
        for i in 0 ..< FuzzMutator.iterations(3000) {
            let src = String(decoding: FuzzMutator.mutated(rng.pick(corpus), rng: &rng, others: corpus, maxStack: 6), as: UTF8.self)
            if let p = tally.run(iteration: i, expectedTypes: [ChatTemplateError.self, JinjaJSONError.self], messageLength: 60, {
                let t = try ChatTemplate(source: src, limits: limits)
                let out = try t.render(messages: messages, addGenerationPrompt: rng.chance(2), bosToken: "<s>", eosToken: "</s>")
                XCTAssertLessThanOrEqual(out.utf8.count, limits.maxOutputBytes)
            }) { XCTFail("iteration \(i): \(p)") }
        }
        XCTAssertGreaterThan(tally.refused, 0, "\(tally)")
        XCTAssertGreaterThan(tally.ok, 0, "\(tally)")
        XCTAssertLessThan(tally.slowest, 5, "one template took too long: \(tally)")
        print("fuzz chat templates: \(tally)")
    }

    /// Found by the tokenizer.json fuzzer (seed 0x70C_5EED, iteration 611 of 2000): a Unigram unk_id outside the
    /// vocabulary was accepted and then emitted by encode as a token id (-9223372036854775808). HF tokenizers refuses
    /// it too (UnkIdNotInVocabulary).
    func testRegressionUnigramUnkIdOutsideVocabularyIsRefused() throws {
        let src = try fixtureURL("unigram")
        let data = try Data(contentsOf: src.appendingPathComponent("tokenizer.json"))
        guard var root = try JSONSerialization.jsonObject(with: data) as? [String: Any],
              var model = root["model"] as? [String: Any], let vocab = model["vocab"] as? [Any] else {
            return XCTFail("unigram fixture is not a Unigram tokenizer.json")
        }
        for bad in [Int.min, -1, vocab.count] {
            model["unk_id"] = bad
            root["model"] = model
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("unk-id-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            try JSONSerialization.data(withJSONObject: root).write(to: dir.appendingPathComponent("tokenizer.json"))
            XCTAssertThrowsError(try TokenizerBundle.load(directory: dir)) { e in
                XCTAssertTrue(e is TokenizerError && "\(e)".contains("unk_id") && "\(e)".contains("\(bad)"), "\(e)")
            }
        }
    }
}
