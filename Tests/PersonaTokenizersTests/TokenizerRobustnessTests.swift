import Foundation
import XCTest
import PersonaFormats
@testable import PersonaTokenizers

final class TokenizerRobustnessTests: XCTestCase {
    /// tokenizer.json's `ByteLevel` with `use_regex` splits at scalars inside a Swift Character, as HF does. Expected
    /// pieces: `tokenizers` 0.23.3, `pre_tokenizers.ByteLevel(add_prefix_space=False).pre_tokenize_str(text)`.
    func testByteLevelRegexSplitsInsideGraphemeClusters() throws {
        let pre = try ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: true)
        let cases: [(String, [String])] = [
            ("a\r\nb", ["a", "č", "Ċ", "b"]),
            ("ก่อน ที่", ["à¸ģ", "à¹Ī", "à¸Ńà¸Ļ", "Ġà¸Ĺ", "à¸µà¹Ī"]),
            ("e\u{301}x \u{301}y", ["e", "Ìģ", "x", "ĠÌģ", "y"]),
        ]
        for (text, want) in cases {
            let got = pre.preTokenize([Piece(text: text, atStart: true)]).map(\.text)
            XCTAssertTrue(got.elementsEqual(want) { $0.utf8.elementsEqual($1.utf8) }, "\(text.debugDescription): \(got) want \(want)")
        }
    }

    func testDisplayString() {
        XCTAssertEqual(displayString(forTokenBytes: Array("héllo".utf8)), "héllo")
        // First two bytes of "€" (E2 82 AC): incomplete, shown as hex.
        XCTAssertEqual(displayString(forTokenBytes: [0xE2, 0x82]), "<0xE2><0x82>")
        XCTAssertEqual(displayString(forTokenBytes: [0x20, 0xF0, 0x9F, 0x9A, 0x80, 0xAC]), " 🚀<0xAC>")
        XCTAssertEqual(displayString(forTokenBytes: [0xED, 0xA0, 0x80]), "<0xED><0xA0><0x80>") // UTF-16 surrogate: invalid
        XCTAssertEqual(displayString(forTokenBytes: []), "")
    }

    func testStreamingHoldsBackPartialBytes() throws {
        // stories260K has no emoji pieces: "🚀" is four <0xNN> byte tokens.
        let url = try requireShared("models/stories260K/stories260K.gguf")
        let tok = try TokenizerBundle.load(gguf: try GGUFFile(url: url)).tokenizer
        let ids = tok.encode("Hi 🚀 日本", addSpecialTokens: true)
        var s = StreamingDetokenizer(tokenizer: tok)
        var pieces: [String] = []
        for id in ids { pieces.append(s.append(id)) }
        pieces.append(s.flush())
        XCTAssertEqual(pieces.joined(), tok.decode(ids, skipSpecialTokens: true))
        XCTAssertEqual(pieces.joined(), "Hi 🚀 日本")
        XCTAssertFalse(pieces.contains { $0.contains("\u{FFFD}") })
        XCTAssertTrue(pieces.contains(""), "byte tokens of one character must be held back until complete")
        // Per-token display of a lone byte token.
        let rocketBytes = ids.filter { tok.tokenString($0)?.hasPrefix("<0x") == true }
        XCTAssertFalse(rocketBytes.isEmpty)
        XCTAssertEqual(displayString(forTokenBytes: tok.tokenBytes(rocketBytes[0])), "<0xF0>")
    }

    /// A continuation streamed after a prompt keeps the first piece's leading space (decoding it alone would drop
    /// it, as SentencePiece does at the start of any decode): the pieces are exactly what decoding prompt +
    /// continuation adds to decoding the prompt, as HF tokenizers computes it.
    func testStreamingWithContextKeepsTheFirstLeadingSpace() throws {
        let url = try requireShared("models/stories260K/stories260K.gguf")
        let tok = try TokenizerBundle.load(gguf: try GGUFFile(url: url)).tokenizer
        let prompt = tok.encode("Once upon a time", addSpecialTokens: true)
        let all = tok.encode("Once upon a time there was a 🚀 cat.", addSpecialTokens: true)
        XCTAssertEqual(Array(all.prefix(prompt.count)), prompt)
        let continuation = Array(all.dropFirst(prompt.count))
        var s = StreamingDetokenizer(tokenizer: tok, context: prompt)
        let streamed = continuation.map { s.append($0) }.joined() + s.flush()
        let full = tok.decode(all, skipSpecialTokens: true), head = tok.decode(prompt, skipSpecialTokens: true)
        XCTAssertTrue(full.hasPrefix(head))
        XCTAssertEqual(streamed, String(full.dropFirst(head.count)))
        XCTAssertEqual(streamed, " there was a 🚀 cat.")
        var alone = StreamingDetokenizer(tokenizer: tok)
        XCTAssertEqual(continuation.map { alone.append($0) }.joined() + alone.flush(), "there was a 🚀 cat.")
    }

    /// Arbitrary text and ids never crash any tokenizer.
    func testRandomInputDoesNotCrash() throws {
        var rng = SystemRandomNumberGenerator()
        var tokenizers: [any Tokenizer] = []
        for name in GoldenTokenizerTests.fixtureNames {
            tokenizers.append(try TokenizerBundle.load(directory: try fixtureURL(name)).tokenizer)
        }
        if let u = sharedReferenceURL("models/stories260K/stories260K.gguf") {
            tokenizers.append(try TokenizerBundle.load(gguf: try GGUFFile(url: u)).tokenizer)
        }
        let alphabet = Array("ab Z9 \t\n\r<|>_'sé\u{301}日🚀\u{200d}\u{0}▁<0x41>".unicodeScalars)
        for tok in tokenizers {
            for _ in 0..<50 {
                var v = String.UnicodeScalarView()
                for _ in 0..<Int.random(in: 0..<40, using: &rng) { v.append(alphabet.randomElement(using: &rng)!) }
                let text = String(v)
                let ids = tok.encode(text, addSpecialTokens: Bool.random(using: &rng))
                XCTAssertTrue(ids.allSatisfy { $0 >= 0 && $0 < tok.vocabSize })
                _ = tok.decode(ids, skipSpecialTokens: true)
                let junk = (0..<10).map { _ in Int.random(in: -5...(tok.vocabSize + 5), using: &rng) } + [Int.min, Int.max]
                _ = tok.decode(junk, skipSpecialTokens: false)
                for id in junk { _ = displayString(forTokenBytes: tok.tokenBytes(id)); _ = tok.tokenString(id); _ = tok.isSpecial(id) }
                var s = StreamingDetokenizer(tokenizer: tok)
                for id in junk { _ = s.append(id) }
                _ = s.flush()
            }
        }
    }

    func testHostileTokenizerJSON() throws {
        let bad: [(String, String)] = [
            (#"{"model": {"type": "BPE", "vocab": {"a": -3, "b": 99999999999, "ab": 2}, "merges": ["a b", "x"]}}"#, "merges[1]"),
            (#"{"model": {"type": "Zeta"}}"#, "Zeta"),
            (#"{"model": {"type": "Unigram", "vocab": [["a"]]}}"#, "vocab[0]"),
            (#"{"added_tokens": [{"id": -1, "content": "x"}], "model": {"type": "BPE", "vocab": {}, "merges": []}}"#, "added_tokens[0].id"),
            (#"{"normalizer": {"type": "Precompiled"}, "model": {"type": "BPE", "vocab": {}, "merges": []}}"#, "Precompiled"),
            (#"{"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(["}, "behavior": "Isolated"}, "model": {"type": "BPE", "vocab": {}, "merges": []}}"#, "regex"),
            (#"[1, 2]"#, "JSON object"),
            (#"{"model": "#, "invalid JSON"),
        ]
        for (json, expect) in bad {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-bad-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            try json.write(to: dir.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try TokenizerBundle.load(directory: dir), json) { e in
                XCTAssertTrue("\(e)".contains(expect), "\(e) should mention \(expect)")
            }
        }
        // Negative / huge ids in a vocabulary load without crashing and simply never appear.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-odd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try #"{"model": {"type": "BPE", "vocab": {"a": -3, "b": 99999999999, "ab": 2, "c": 0}, "merges": ["a b"]}}"#
            .write(to: dir.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        let tok = try TokenizerBundle.load(directory: dir).tokenizer
        XCTAssertEqual(tok.encode("c", addSpecialTokens: true), [0])
        XCTAssertEqual(tok.encode("abcab", addSpecialTokens: true), [0], "tokens with corrupt ids are dropped, no unk defined")
        XCTAssertEqual(tok.decode([0, 2, -3, 99999999999], skipSpecialTokens: false), "c ab")
    }

    /// "ά" U+03AC and "ά" U+1F71 are canonically equivalent but distinct tokens (Llama/Phi-3 vocabularies hold both).
    func testCanonicallyEquivalentTokensStayDistinct() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-nfc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let json = #"{"model": {"type": "BPE", "vocab": {"\u03ac": 0, "\u1f71": 1, "x": 2}, "merges": []}}"#
        try json.write(to: dir.appendingPathComponent("tokenizer.json"), atomically: true, encoding: .utf8)
        let tok = try TokenizerBundle.load(directory: dir).tokenizer
        XCTAssertEqual(tok.encode("\u{03AC}x\u{1F71}", addSpecialTokens: false), [0, 2, 1])
        XCTAssertEqual(Array(tok.decode([1, 0], skipSpecialTokens: false).unicodeScalars), ["\u{1F71}", " ", "\u{03AC}"])
        XCTAssertEqual(tok.tokenId("\u{1F71}"), 1)
        XCTAssertEqual(tok.tokenId("\u{03AC}"), 0)
    }

    func testMissingTokenizerJSONNamesTheFile() {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tok-none-\(UUID().uuidString)")
        XCTAssertThrowsError(try TokenizerBundle.load(directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("tokenizer.json"), "\(e)")
        }
    }
}

final class TokenizerBundlePathTests: XCTestCase {
    func testLoadByPath() throws {
        let gguf = try requireShared("models/stories260K/stories260K.gguf")
        XCTAssertEqual(try TokenizerBundle.load(path: gguf).tokenizer.vocabSize, 512)
        // The stories260K folder has no tokenizer.json, only the .gguf.
        XCTAssertEqual(try TokenizerBundle.load(path: gguf.deletingLastPathComponent()).tokenizer.bosTokenId, 1)
        let dir = try fixtureURL("bpe_qwen2")
        XCTAssertNotNil(try TokenizerBundle.load(path: dir).tokenizer.tokenId("<|im_end|>"))
        XCTAssertThrowsError(try TokenizerBundle.load(path: dir.appendingPathComponent("golden.json")))
        XCTAssertThrowsError(try TokenizerBundle.load(path: dir.appendingPathComponent("nope")))
    }
}
