import Foundation
import XCTest
import PersonaFormats
@testable import PersonaTokenizers

/// Compares against ids and decoded strings produced by HF `tokenizers` / `transformers`
/// (Scripts/make_tokenizer_fixtures.py) for locally trained tokenizers in each family.
final class GoldenTokenizerTests: XCTestCase {
    struct Case: Decodable {
        let text: String
        let ids: [Int]
        let ids_special: [Int]
        let decoded: String
        let decoded_special_skip: String?
        let decoded_special_keep: String?
    }
    struct Golden: Decodable { let name: String; let cases: [Case] }

    static let fixtureNames = ["bpe_llama3", "bpe_qwen2", "bpe_gpt2", "bpe_prefix_space", "spm_llama2", "spm_metaspace",
                               "spm_gemma", "unigram", "unigram_bytefallback", "wordpiece", "bpe_added_tokens", "bpe_misc"]

    private func load(_ name: String) throws -> (TokenizerBundle, Golden) {
        let dir = try fixtureURL(name)
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: dir.appendingPathComponent("golden.json")))
        return (try TokenizerBundle.load(directory: dir), golden)
    }

    private func check(_ name: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let (bundle, golden) = try load(name)
        let tok = bundle.tokenizer
        XCTAssertGreaterThan(golden.cases.count, 30)
        for c in golden.cases {
            let d = "\(name) \(c.text.debugDescription)"
            XCTAssertEqual(tok.encode(c.text, addSpecialTokens: false), c.ids, d, file: file, line: line)
            XCTAssertEqual(tok.encode(c.text, addSpecialTokens: true), c.ids_special, "\(d) (special)", file: file, line: line)
            XCTAssertEqual(tok.decode(c.ids, skipSpecialTokens: false), c.decoded, "\(d) decode", file: file, line: line)
            if let s = c.decoded_special_skip {
                XCTAssertEqual(tok.decode(c.ids_special, skipSpecialTokens: true), s, "\(d) decode skip", file: file, line: line)
            }
            if let s = c.decoded_special_keep {
                XCTAssertEqual(tok.decode(c.ids_special, skipSpecialTokens: false), s, "\(d) decode keep", file: file, line: line)
            }
        }
    }

    func testByteLevelLlama3() throws { try check("bpe_llama3") }
    func testByteLevelQwen2() throws { try check("bpe_qwen2") }
    func testByteLevelGPT2() throws { try check("bpe_gpt2") }
    func testByteLevelPrefixSpace() throws { try check("bpe_prefix_space") }
    func testSentencePieceBPELlama2() throws { try check("spm_llama2") }
    func testSentencePieceBPEMetaspace() throws { try check("spm_metaspace") }
    func testSentencePieceBPEGemma() throws { try check("spm_gemma") }
    func testUnigram() throws { try check("unigram") }
    func testUnigramByteFallback() throws { try check("unigram_bytefallback") }
    func testWordPiece() throws { try check("wordpiece") }
    func testAddedTokensStripSingleWordNormalized() throws { try check("bpe_added_tokens") }
    func testMiscNormalizersAndPreTokenizers() throws { try check("bpe_misc") }

    func testSpecialIdsFromConfig() throws {
        let (l3, _) = try load("bpe_llama3")
        XCTAssertEqual(l3.bosToken, "<|begin_of_text|>")
        XCTAssertEqual(l3.tokenizer.bosTokenId, l3.tokenizer.tokenId("<|begin_of_text|>"))
        XCTAssertEqual(l3.tokenizer.eosTokenIds, [l3.tokenizer.tokenId("<|eot_id|>")!])
        XCTAssertTrue(l3.tokenizer.addBosToken)
        XCTAssertTrue(l3.tokenizer.isSpecial(l3.tokenizer.tokenId("<|im_start|>")!))
        let (q, _) = try load("bpe_qwen2")
        XCTAssertNil(q.tokenizer.bosTokenId)
        XCTAssertFalse(q.tokenizer.addBosToken)
        let (sp, _) = try load("spm_llama2")
        XCTAssertEqual(sp.tokenizer.bosTokenId, 1)
        XCTAssertEqual(sp.tokenizer.eosTokenIds, [2])
        XCTAssertTrue(sp.tokenizer.addBosToken)
    }

    /// Byte-level BPE without a normalizer is lossless: decode(encode(x)) == x for every text.
    func testByteLevelRoundTrip() throws {
        for name in ["bpe_llama3", "bpe_gpt2"] {
            let (b, g) = try load(name)
            for c in g.cases {
                XCTAssertEqual(b.tokenizer.decode(b.tokenizer.encode(c.text, addSpecialTokens: false), skipSpecialTokens: false), c.text, name)
            }
        }
    }

    /// Streaming decode of every golden case (emoji and CJK split across byte tokens included) equals one-shot decode.
    func testStreamingMatchesDecode() throws {
        for name in Self.fixtureNames {
            let (b, g) = try load(name)
            for c in g.cases {
                for skip in [true, false] {
                    var s = StreamingDetokenizer(tokenizer: b.tokenizer, skipSpecialTokens: skip)
                    var out = ""
                    for id in c.ids_special {
                        let piece = s.append(id)
                        XCTAssertFalse(piece.contains("\u{FFFD}") && !c.decoded.contains("\u{FFFD}"), "\(name): partial bytes leaked")
                        out += piece
                    }
                    out += s.flush()
                    XCTAssertEqual(out, b.tokenizer.decode(c.ids_special, skipSpecialTokens: skip), "\(name) \(c.text.debugDescription)")
                }
            }
        }
    }

    /// tokenBytes of all tokens concatenated equals the decoded bytes for byte-level BPE (no position-dependent decoding).
    func testTokenBytesConcatenateToText() throws {
        let (b, g) = try load("bpe_llama3")
        for c in g.cases {
            let bytes = c.ids.flatMap { b.tokenizer.tokenBytes($0) }
            XCTAssertEqual(bytes, Array(c.decoded.utf8), c.text.debugDescription)
        }
        let (sp, g2) = try load("spm_llama2")
        for c in g2.cases where !c.text.isEmpty && !sp.tokenizer.isSpecial(c.ids[0]) {
            // SentencePiece: pieces carry the prefix space the decoder strips once at the start.
            let bytes = c.ids.flatMap { sp.tokenizer.tokenBytes($0) }
            XCTAssertEqual(String(decoding: bytes, as: UTF8.self), " " + c.decoded, c.text.debugDescription)
        }
    }

    func testUnknownComponentTypeIsAClearError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = #"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "Frobnicate"}}"#
        try json.write(to: dir.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try TokenizerBundle.load(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("Frobnicate"), "\(e)")
        }
    }
}

/// stories260K (llama SentencePiece GGUF): ids from transformers' GGUF tokenizer conversion.
final class Stories260KTokenizerTests: XCTestCase {
    func testMatchesTransformers() throws {
        let url = try requireShared("models/stories260K/stories260K.gguf")
        let bundle = try TokenizerBundle.load(gguf: try GGUFFile(url: url))
        let tok = bundle.tokenizer
        XCTAssertEqual(tok.bosTokenId, 1)
        XCTAssertEqual(tok.eosTokenIds, [2])
        XCTAssertTrue(tok.addBosToken)
        XCTAssertEqual(tok.vocabSize, 512)
        XCTAssertEqual(bundle.bosToken, "<s>")
        XCTAssertEqual(bundle.eosToken, "</s>")
        let g = try JSONDecoder().decode(GoldenTokenizerTests.Golden.self,
                                         from: Data(contentsOf: try fixtureURL("stories260K").appendingPathComponent("golden.json")))
        for c in g.cases {
            XCTAssertEqual(tok.encode(c.text, addSpecialTokens: true), c.ids_special, c.text.debugDescription)
            XCTAssertEqual(tok.encode(c.text, addSpecialTokens: false), c.ids, c.text.debugDescription)
            XCTAssertEqual(tok.decode(c.ids, skipSpecialTokens: true), c.decoded, c.text.debugDescription)
        }
        XCTAssertEqual(tok.encode("Once upon a time", addSpecialTokens: true).first, 1)
    }
}
