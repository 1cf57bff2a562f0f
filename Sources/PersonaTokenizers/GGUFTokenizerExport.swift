import Foundation
import PersonaFormats

/// The GGUF tokenizer metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`) for a model folder's byte-level BPE
/// tokenizer.json (GPT-2, Llama-3, Qwen2, SmolLM, ...), in the form llama.cpp's converter writes it, so a GGUF made
/// from a folder keeps its tokenizer and chat template.
///
/// llama.cpp's converter names the pre-tokenizer (`tokenizer.ggml.pre`) by hashing the ids of a fixed text against
/// a table of known tokenizers. Here the name is chosen by behaviour instead: the tokenizer the GGUF metadata
/// describes (as llama.cpp's names are read by `GGUFTokenizer`) is built for each known name and must encode a set
/// of check texts (contractions, digit runs, whitespace and newline runs, punctuation, non-Latin scripts, emoji, every
/// added token) to the folder tokenizer's ids, with and without special tokens, and decode back the same; the first
/// name that does is written. A tokenizer no name reproduces is an error naming what differs, never a GGUF that
/// tokenizes differently from its folder.
public enum GGUFTokenizerExport {
    // llama.cpp's token types
    static let normal = 1, control = 3, userDefined = 4, unused = 5

    /// Pre-tokenizer names tried, most common first (every name of `GGUFTokenizer.bpePreTokenizers` follows).
    static let preferred = ["gpt-2", "llama-bpe", "qwen2", "smollm", "dbrx", "default", "deepseek-llm"]

    /// Metadata for the tokenizer in `directory`, for a model with `vocabSize` embedding rows (ids the tokenizer
    /// does not use become `[PAD<id>]` tokens of type unused, as in llama.cpp's converter).
    public static func metadata(directory: URL, vocabSize: Int) throws -> [(String, GGUFValue)] {
        let tjURL = directory.appendingPathComponent("tokenizer.json")
        let bundle = try TokenizerBundle.load(directory: directory)
        guard let hf = bundle.tokenizer as? PipelineTokenizer else { throw TokenizerError("\(tjURL.path): not a tokenizer.json pipeline") }
        let root = try readJSON(tjURL)
        guard let model = try root.object("model"), (model.string("type") ?? "BPE") == "BPE", model.has("merges") else {
            throw TokenizerError("\(tjURL.path): model is not BPE; only byte-level BPE tokenizers are written to GGUF")
        }
        let decoder = try root.object("decoder")?.string("type") ?? "none"
        guard model.bool("byte_fallback") != true, decoder == "ByteLevel" else {
            throw TokenizerError("\(tjURL.path): not a byte-level BPE (decoder \(decoder)); only byte-level BPE tokenizers are written to GGUF")
        }
        if let n = try root.object("normalizer"), let type = n.string("type"), type != "NFC" {
            throw TokenizerError("\(tjURL.path): normalizer \(type) has no GGUF equivalent; only byte-level BPE tokenizers without one (or with NFC) are written to GGUF")
        }
        guard hf.vocabSize <= vocabSize else {
            throw TokenizerError("\(tjURL.path): the tokenizer has \(hf.vocabSize) ids but the model only \(vocabSize) embedding rows")
        }

        var tokens: [String] = [], types: [Int32] = []
        tokens.reserveCapacity(vocabSize)
        types.reserveCapacity(vocabSize)
        let added = Dictionary(hf.addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for i in 0 ..< vocabSize {
            if let a = added[i] {
                tokens.append(a.content)
                types.append(Int32(a.special || looksSpecial(a.content) ? control : userDefined))
            } else if let t = hf.model.idToToken(i) {
                tokens.append(t)
                types.append(Int32(normal))
            } else {
                tokens.append("[PAD\(i)]")
                types.append(Int32(unused))
            }
        }
        var merges: [GGUFValue] = []
        for (i, m) in (model.array("merges") ?? []).enumerated() {
            if let s = m.string { merges.append(.string(s)) }
            else if let a = m.array?.compactMap(\.string), a.count == 2 { merges.append(.string(a[0] + " " + a[1])) }
            else { throw TokenizerError("\(tjURL.path): model.merges[\(i)]: expected \"a b\" or [a, b]") }
        }

        var md: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string("")),   // chosen below
            ("tokenizer.ggml.tokens", .array(tokens.map { .string($0) })),
            ("tokenizer.ggml.token_type", .array(types.map { .int32($0) })),
            ("tokenizer.ggml.merges", .array(merges)),
        ]
        if let b = hf.bosTokenId { md.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(b)))) }
        let eos = bundle.eosToken.flatMap(hf.tokenId) ?? hf.eosTokenIds.min()
        if let e = eos { md.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(e)))) }
        md.append(("tokenizer.ggml.add_bos_token", .bool(hf.addBosToken)))
        md.append(("tokenizer.ggml.add_eos_token", .bool(false)))
        if let t = bundle.chatTemplate { md.append(("tokenizer.chat_template", .string(t))) }

        let texts = checkTexts + hf.addedTokens.map(\.content) + hf.addedTokens.map { "a \($0.content) b" }
        var names = preferred.filter { GGUFTokenizer.bpePreTokenizers[$0] != nil }
        names += GGUFTokenizer.bpePreTokenizers.keys.sorted().filter { !names.contains($0) }
        var mismatches: [String] = []
        for name in names {
            md[1].1 = .string(name)
            let candidate = try GGUFTokenizer.build(Dictionary(md, uniquingKeysWith: { a, _ in a }))
            if let m = mismatch(hf, candidate, texts) { mismatches.append("\(name): \(m)") }
            else { return md }
        }
        throw TokenizerError("\(tjURL.path): no llama.cpp pre-tokenizer name reproduces this tokenizer (\(mismatches.prefix(3).joined(separator: "; ")))")
    }

    /// The first check text on which the candidate (GGUF) tokenizer differs from the folder's, described; nil if
    /// none. The pre-tokenizers must split every text (normalised as the folder does) into the same words; since a
    /// small vocabulary can give equal ids for different splits, this is what tells the names apart. Ids (with and
    /// without special tokens) and decoded text must be equal on the texts the folder's normaliser leaves as they
    /// are (a GGUF tokenizer has no normaliser: llama.cpp does not apply e.g. Qwen2's NFC either).
    static func mismatch(_ a: PipelineTokenizer, _ b: PipelineTokenizer, _ texts: [String]) -> String? {
        func words(_ t: PipelineTokenizer, _ s: String) -> [String] {
            let p = Piece(text: s, atStart: true)
            return (t.preTokenizer?.preTokenize([p]) ?? [p]).map(\.text)
        }
        for t in texts {
            let n = a.normalizer?.normalize(t) ?? t
            if words(a, n) != words(b, n) { return "\(String(reflecting: t)) is split into different words" }
            guard n.utf8.elementsEqual(t.utf8) else { continue }   // (String == compares canonically)
            for special in [false, true] {
                let x = a.encode(t, addSpecialTokens: special), y = b.encode(t, addSpecialTokens: special)
                if x != y { return "\(String(reflecting: t)) encodes to \(y.prefix(12)) instead of \(x.prefix(12))" }
                if a.decode(x, skipSpecialTokens: false) != b.decode(y, skipSpecialTokens: false) {
                    return "\(String(reflecting: t)) decodes differently"
                }
            }
        }
        return nil
    }

    /// llama.cpp's converter marks added tokens that look like control tokens as control even when not flagged special.
    static func looksSpecial(_ s: String) -> Bool {
        (s.hasPrefix("<|") && s.hasSuffix("|>") && s.count > 4) || ["<pad>", "<mask>", "<unk>", "<s>", "</s>"].contains(s)
    }

    /// Texts on which byte-level pre-tokenizers differ: contractions in both cases, digit runs (single digits,
    /// groups of three, whole runs), spaces / tabs / newline runs, punctuation runs, letters after punctuation,
    /// accents, CJK, Cyrillic, Arabic, emoji (multi-byte and ZWJ sequences), code.
    static let checkTexts = [
        "", " ", "  ", "\t", "\n", "\n\n\n", " \n \n", "Hello world", " Hello  world ", "hello\tworld\n",
        "I've been 'there' and I'M sure you'd, we'll, they're, it's, I'D", "DON'T 'S 'T 'RE 'VE 'M 'LL 'D",
        "1 12 123 1234 12345 3333333 1.5 -42 3,000,000 2024-12-04 0x1F", "a1b22c333d4444",
        "...!!! ??? ,,, ;;: -- --- ``` ~~ $$ %% && ** ++ == || \\\\ // <> []{}()", "@user #tag $100 50% a+b=c",
        "café naïve résumé Ångström", "你好，世界！这是一个测试。", "日本語のテキストです", "Привет, мир!", "مرحبا بالعالم",
        "한국어 텍스트", "emoji 🦙🚀 👨‍👩‍👧‍👦 ❤️ 🇫🇷", "func f(x: Int) -> Int {\n    return x * 2 // double\n}",
        "   leading spaces", "trailing spaces   ", "\r\n\r\nwindows\r\nlines", "mixed\u{00A0}nbsp and\u{2003}em space",
        "ALL CAPS SENTENCE. lower case sentence.", "The quick brown fox jumps over the lazy dog 0123456789",
        "tabs\tand\ttabs\t\t\tend", "\n\nnewlines\n\n\nmany\n", "def f(x):\n    return x * 2\n", "x  \n  y\t \n",
        "a\u{0301} e\u{0308} (combining) \u{00E9}", "ÆØÅ æøå ß ẞ ﬁ ﬂ ① ² ½ ٣ ⅷ", "!hello ?World .Test 'quote' \"dq\"",
        "it's It'S IT'S we'Re they'VE", "100000000000 1,2,3 ١٢٣ 一二三 ½½",
    ]
}
