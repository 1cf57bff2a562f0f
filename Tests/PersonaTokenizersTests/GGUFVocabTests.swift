import Foundation
import XCTest
import PersonaFormats
@testable import PersonaTokenizers
@testable import PersonaTestSupport

/// llama.cpp's tokenizer test suite (ggml-vocab-*.gguf with .inp texts and .out ids made by
/// Hugging Face `AutoTokenizer.encode(text, add_special_tokens=False)`), read from ../shared.
final class GGUFVocabTests: XCTestCase {
    private func runSuite(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let gguf = try requireShared("reference/llama.cpp-vocab/ggml-vocab-\(name).gguf")
        let inp = try String(contentsOf: URL(fileURLWithPath: gguf.path + ".inp"), encoding: .utf8)
        let out = try String(contentsOf: URL(fileURLWithPath: gguf.path + ".out"), encoding: .utf8)
        var texts = inp.components(separatedBy: "\n__ggml_vocab_test__\n")
        if texts.last == "" { texts.removeLast() }
        let expected = out.split(separator: "\n", omittingEmptySubsequences: false).map { l in
            l.split(separator: " ").compactMap { Int($0) }
        }
        XCTAssertGreaterThan(texts.count, 40, file: file, line: line)
        let bundle = try TokenizerBundle.load(gguf: try GGUFFile(url: gguf))
        let tok = bundle.tokenizer
        var failures = 0
        for (i, text) in texts.enumerated() {
            let got = tok.encode(text, addSpecialTokens: false)
            if got != expected[i] {
                failures += 1
                XCTFail("\(name) case \(i) \(text.debugDescription.prefix(60)): got \(got) want \(expected[i])", file: file, line: line)
            }
        }
        XCTAssertEqual(failures, 0, "\(name): \(failures)/\(texts.count) cases differ", file: file, line: line)
    }

    func testLlamaSPM() throws { try runSuite("llama-spm") }
    func testPhi3() throws { try runSuite("phi-3") }
    func testLlamaBPE() throws { try runSuite("llama-bpe") }
    func testQwen2() throws { try runSuite("qwen2") }
    func testGPT2() throws { try runSuite("gpt-2") }
    func testDeepseekLLM() throws { try runSuite("deepseek-llm") }
    func testGemma4() throws { try runSuite("gemma-4") }

    /// The o200k pre-tokenizer (GGUF pre "gpt-4o": gpt-oss, Llama-4) on the suite's texts with the qwen2 test
    /// vocabulary's BPE: HF tokenizers' ids for the same chain (Scripts/make_gpt4o_pre_reference.py).
    func testGPT4OPreTokenizer() throws {
        let src = try requireShared("reference/llama.cpp-vocab/ggml-vocab-qwen2.gguf")
        let gguf = try ggufCopy(of: src, setting: ["tokenizer.ggml.pre": .string("gpt-4o")])
        defer { try? FileManager.default.removeItem(at: gguf) }
        let inp = try String(contentsOf: URL(fileURLWithPath: src.path + ".inp"), encoding: .utf8)
        var texts = inp.components(separatedBy: "\n__ggml_vocab_test__\n")
        if texts.last == "" { texts.removeLast() }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: try fixtureURL("gguf_gpt4o").appendingPathComponent("expected.json"))) as! [String: Any]
        texts += json["extra"] as! [String]   // texts of ours on which o200k's splits differ from qwen2's
        let expected = (json["ids"] as! [[NSNumber]]).map { $0.map(\.intValue) }
        XCTAssertEqual(texts.count, expected.count)
        let tok = try TokenizerBundle.load(gguf: try GGUFFile(url: gguf)).tokenizer
        var differ = 0
        for (i, text) in texts.enumerated() where tok.encode(text, addSpecialTokens: false) != expected[i] {
            differ += 1
            XCTFail("case \(i) \(text.debugDescription.prefix(60)): got \(tok.encode(text, addSpecialTokens: false)) want \(expected[i])")
        }
        XCTAssertEqual(differ, 0)
        // the regex differs from qwen2's on these texts: the check is not the qwen2 suite again
        let qwen2 = try TokenizerBundle.load(gguf: try GGUFFile(url: src)).tokenizer
        XCTAssertTrue(texts.indices.contains { qwen2.encode(texts[$0], addSpecialTokens: false) != expected[$0] })
    }

    /// Real vocabularies on texts whose regex splits fall inside a Swift Character ("\r" | "\n", a Thai or
    /// Arabic letter | its vowel sign), against transformers' conversion of the same GGUF
    /// (Scripts/make_gguf_script_fixtures.py; llama.cpp agrees on every case).
    func testSplitsInsideGraphemeClusters() throws {
        struct Golden: Decodable {
            struct Vocabulary: Decodable { let name: String; let gguf: String; let cases: [Case] }
            struct Case: Decodable { let text: String; let ids: [Int] }
            let vocabularies: [Vocabulary]
        }
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: try fixtureURL("gguf_scripts").appendingPathComponent("golden.json")))
        XCTAssertEqual(golden.vocabularies.map(\.name), ["qwen2", "gpt-2", "llama-bpe", "smollm2"])
        for v in golden.vocabularies {
            let tok = try TokenizerBundle.load(gguf: try GGUFFile(url: try requireShared(v.gguf))).tokenizer
            XCTAssertGreaterThanOrEqual(v.cases.count, 19)
            for c in v.cases {
                XCTAssertEqual(tok.encode(c.text, addSpecialTokens: false), c.ids, "\(v.name): \(c.text.debugDescription)")
            }
        }
    }
}
