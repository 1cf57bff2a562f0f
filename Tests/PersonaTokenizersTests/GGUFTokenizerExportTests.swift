import Foundation
import XCTest
import PersonaFormats
@testable import PersonaTokenizers

/// The tokenizer metadata written into a GGUF made from a model folder: the GGUF read back (a real file, through
/// the same reader as any downloaded GGUF) must tokenize every golden case as HF `tokenizers` did
/// (Scripts/make_tokenizer_fixtures.py), with and without special tokens, and decode it back; the pre-tokenizer
/// name must be llama.cpp's for that family; tokenizers a GGUF cannot describe are refused with the reason.
final class GGUFTokenizerExportTests: XCTestCase {
    struct Case: Decodable { let text: String; let ids: [Int]; let ids_special: [Int]; let decoded: String }
    struct Golden: Decodable { let cases: [Case] }

    private func roundTrip(_ name: String, extraRows: Int = 3) throws -> (TokenizerBundle, GGUFFile, [Case]) {
        let dir = try fixtureURL(name)
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: dir.appendingPathComponent("golden.json")))
        let rows = try TokenizerBundle.load(directory: dir).tokenizer.vocabSize + extraRows
        var w = GGUFWriter()
        w.set("general.architecture", .string("llama"))
        for (k, v) in try GGUFTokenizerExport.metadata(directory: dir, vocabSize: rows) { w.set(k, v) }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("export-\(name)-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: url) }
        try w.write(to: url)
        let file = try GGUFFile(url: url)
        XCTAssertEqual(file.metadata["tokenizer.ggml.tokens"]?.stringArray?.count, rows, name)
        return (try TokenizerBundle.load(gguf: file), file, golden.cases)
    }

    private func check(_ name: String, pre: String? = nil, spacePrefix: Bool? = nil) throws {
        let (bundle, file, cases) = try roundTrip(name)
        if let pre {
            XCTAssertEqual(file.metadata["tokenizer.ggml.pre"]?.string, pre, name)
            XCTAssertEqual(file.metadata["tokenizer.ggml.model"]?.string, "gpt2", name)
        } else {
            XCTAssertEqual(file.metadata["tokenizer.ggml.model"]?.string, "llama", name)
            XCTAssertEqual(file.metadata["tokenizer.ggml.add_space_prefix"]?.bool, spacePrefix, name)
        }
        XCTAssertGreaterThan(cases.count, 30)
        let tok = bundle.tokenizer
        let folder = try XCTUnwrap(try TokenizerBundle.load(directory: try fixtureURL(name)).tokenizer as? PipelineTokenizer)
        var checked = 0
        // a byte-level GGUF tokenizer has no normaliser (nor does llama.cpp's Qwen2): texts NFC would change are not
        // compared; HF's Metaspace adds no ▁ before a leading space where llama.cpp's add_space_prefix does
        let metaspace = folder.preTokenizer is MetaspacePreTokenizer
        let specials = folder.addedTokens.map(\.content)
        for c in cases where pre == nil ? !(metaspace && (c.text.first?.isWhitespace == true || specials.contains { c.text.contains($0) }))
                : (folder.normalizer?.normalize(c.text) ?? c.text).utf8.elementsEqual(c.text.utf8) {
            checked += 1
            XCTAssertEqual(tok.encode(c.text, addSpecialTokens: false), c.ids, "\(name) \(c.text.debugDescription)")
            XCTAssertEqual(tok.encode(c.text, addSpecialTokens: true), c.ids_special, "\(name) \(c.text.debugDescription) special")
            XCTAssertEqual(tok.decode(c.ids, skipSpecialTokens: false), c.decoded, "\(name) \(c.text.debugDescription) decode")
        }
        XCTAssertGreaterThan(checked, 20, name)
        // ids past the tokenizer's own are llama.cpp's padding tokens
        let types = file.metadata["tokenizer.ggml.token_type"]?.intArray ?? []
        XCTAssertEqual(types.suffix(3), [GGUFTokenizerExport.unused, GGUFTokenizerExport.unused, GGUFTokenizerExport.unused], name)
        XCTAssertEqual(bundle.tokenizer.tokenString(types.count - 1), "[PAD\(types.count - 1)]", name)
        XCTAssertEqual(bundle.chatTemplate, try TokenizerBundle.load(directory: try fixtureURL(name)).chatTemplate, name)
    }

    func testGPT2() throws { try check("bpe_gpt2", pre: "gpt-2") }
    func testLlama3() throws { try check("bpe_llama3", pre: "llama-bpe") }
    func testQwen2() throws { try check("bpe_qwen2", pre: "qwen2") }
    /// SentencePiece-style (byte-fallback BPE) tokenizer.json files become llama.cpp's "llama" tokenizer: scores
    /// from the merge ranks, byte / unknown / control token types, the ▁ prefix as add_space_prefix.
    func testSentencePieceLlama2() throws { try check("spm_llama2", spacePrefix: true) }
    func testSentencePieceGemma() throws { try check("spm_gemma", spacePrefix: false) }
    func testSentencePieceMetaspace() throws {
        try check("spm_metaspace", spacePrefix: true)
        XCTAssertEqual(try GGUFTokenizerExport.export(directory: try fixtureURL("spm_metaspace"), vocabSize: 1000).caveats.count, 1)
        XCTAssertEqual(try GGUFTokenizerExport.export(directory: try fixtureURL("spm_llama2"), vocabSize: 1000).caveats.count, 0)
    }

    /// The control tokens are written as llama.cpp's control type and BOS / EOS as the folder names them.
    func testSpecialTokens() throws {
        let (bundle, file, _) = try roundTrip("bpe_llama3")
        let folder = try TokenizerBundle.load(directory: try fixtureURL("bpe_llama3"))
        XCTAssertEqual(bundle.tokenizer.bosTokenId, folder.tokenizer.bosTokenId)
        XCTAssertNotNil(bundle.tokenizer.bosTokenId)
        XCTAssertEqual(file.metadata["tokenizer.ggml.eos_token_id"]?.int, folder.eosToken.flatMap(folder.tokenizer.tokenId))
        let types = file.metadata["tokenizer.ggml.token_type"]?.intArray ?? []
        for id in 0 ..< folder.tokenizer.vocabSize where folder.tokenizer.isSpecial(id) {
            XCTAssertEqual(types[id], GGUFTokenizerExport.control, folder.tokenizer.tokenString(id) ?? "")
        }
    }

    /// What a GGUF tokenizer cannot express is refused, saying why: Unigram, WordPiece, a
    /// ByteLevel pre-tokenizer that adds a prefix space, added tokens with lstrip / rstrip / single_word.
    func testRefusals() throws {
        for (name, says) in [("unigram", "byte-fallback"), ("wordpiece", "byte-fallback"), ("bpe_prefix_space", "pre-tokenizer"),
                             ("bpe_added_tokens", "normalizer")] {
            XCTAssertThrowsError(try roundTrip(name), name) { e in
                let m = "\(e)"
                XCTAssertTrue(m.contains(says) && m.contains("tokenizer.json"), "\(name): \(m)")
            }
        }
    }

    func testTooFewEmbeddingRows() throws {
        let dir = try fixtureURL("bpe_gpt2")
        XCTAssertThrowsError(try GGUFTokenizerExport.metadata(directory: dir, vocabSize: 10)) { e in
            XCTAssertTrue("\(e)".contains("embedding rows"), "\(e)")
        }
    }
}
