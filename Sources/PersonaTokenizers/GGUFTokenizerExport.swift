import Foundation
import PersonaFormats

/// The GGUF tokenizer metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`) for a model folder's tokenizer.json,
/// in the form llama.cpp's converter writes it, so a GGUF made from a folder keeps its tokenizer and chat template:
/// byte-level BPE (GPT-2, Llama-3, Qwen2, SmolLM, ...) as llama.cpp's "gpt2" tokenizer, byte-fallback
/// (SentencePiece-style) BPE (Llama-2, Mistral, Gemma) as its "llama" tokenizer.
///
/// llama.cpp's converter names the pre-tokenizer (`tokenizer.ggml.pre`) by hashing the ids of a fixed text against
/// a table of known tokenizers. Here the setting (pre-tokenizer name, or add_space_prefix) is chosen by behaviour
/// instead: the tokenizer the GGUF metadata describes (as `GGUFTokenizer` reads it, following llama.cpp) is built
/// for each candidate and must encode a set of check texts (contractions, digit runs, whitespace and newline runs,
/// punctuation, non-Latin scripts, emoji, every added token) to the folder tokenizer's ids, with and without special
/// tokens, and decode back the same; the first candidate that does is written. A tokenizer no candidate reproduces
/// is an error naming what differs, never a GGUF that tokenizes differently from its folder (except where llama.cpp
/// itself always does; returned as caveats).
public enum GGUFTokenizerExport {
    // llama.cpp's token types
    static let normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6

    /// Pre-tokenizer names tried, most common first (every name of `GGUFTokenizer.bpePreTokenizers` follows).
    static let preferred = ["gpt-2", "llama-bpe", "qwen2", "smollm", "dbrx", "default", "deepseek-llm"]

    /// Metadata for the tokenizer in `directory`, for a model with `vocabSize` embedding rows (ids the tokenizer
    /// does not use become `[PAD<id>]` tokens of type unused, as in llama.cpp's converter).
    public static func metadata(directory: URL, vocabSize: Int) throws -> [(String, GGUFValue)] {
        try export(directory: directory, vocabSize: vocabSize).metadata
    }

    /// The metadata, and what of the folder's tokenization it cannot reproduce (for the user to be told).
    public static func export(directory: URL, vocabSize: Int) throws -> (metadata: [(String, GGUFValue)], caveats: [String]) {
        var caveats: [String] = []
        let tjURL = directory.appendingPathComponent("tokenizer.json")
        let bundle = try TokenizerBundle.load(directory: directory)
        guard let hf = bundle.tokenizer as? PipelineTokenizer else { throw TokenizerError("\(tjURL.path): not a tokenizer.json pipeline") }
        let root = try readJSON(tjURL)
        guard let model = try root.object("model"), (model.string("type") ?? "BPE") == "BPE", model.has("merges") else {
            throw TokenizerError("\(tjURL.path): model is not BPE; only byte-level or byte-fallback (SentencePiece-style) BPE tokenizers are written to GGUF")
        }
        let decoder = try root.object("decoder")?.string("type") ?? "none"
        let sentencePiece = model.bool("byte_fallback") == true
        guard sentencePiece || decoder == "ByteLevel" else {
            throw TokenizerError("\(tjURL.path): neither a byte-level BPE nor a byte-fallback (SentencePiece-style) BPE (decoder \(decoder)); only those are written to GGUF")
        }
        if !sentencePiece, let n = try root.object("normalizer"), let type = n.string("type"), type != "NFC" {
            throw TokenizerError("\(tjURL.path): normalizer \(type) has no GGUF equivalent for a byte-level BPE (only none or NFC)")
        }
        guard hf.vocabSize <= vocabSize else {
            throw TokenizerError("\(tjURL.path): the tokenizer has \(hf.vocabSize) ids but the model only \(vocabSize) embedding rows")
        }

        var merges: [String] = []
        for (i, m) in (model.array("merges") ?? []).enumerated() {
            if let s = m.string { merges.append(s) }
            else if let a = m.array?.compactMap(\.string), a.count == 2 { merges.append(a[0] + " " + a[1]) }
            else { throw TokenizerError("\(tjURL.path): model.merges[\(i)]: expected \"a b\" or [a, b]") }
        }
        // SentencePiece scores that merge in the folder's order: llama.cpp's "llama" tokenizer merges the adjacent
        // pair whose concatenation scores highest, HF's BPE the pair of lowest merge rank, so a piece scores minus
        // the rank of the first merge that makes it; pieces no merge makes (characters, bytes, specials) score
        // below every merge result (-1e9).
        var rankScore: [String: Float] = [:]
        if sentencePiece {
            for (r, m) in merges.enumerated() {
                guard let (l, rr) = splitMergeLine(m) else { continue }
                if rankScore[l + rr] == nil { rankScore[l + rr] = -Float(r) }
            }
        }
        let unk = model.string("unk_token").flatMap(hf.tokenId)

        var tokens: [String] = [], types: [Int32] = [], scores: [Float] = []
        tokens.reserveCapacity(vocabSize)
        types.reserveCapacity(vocabSize)
        let added = Dictionary(hf.addedTokens.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        for i in 0 ..< vocabSize {
            if let a = added[i] {
                tokens.append(a.content)
                types.append(Int32(i == unk ? unknown : a.special || looksSpecial(a.content) ? control : userDefined))
            } else if let t = hf.model.idToToken(i) {
                tokens.append(t)
                types.append(Int32(i == unk ? unknown : sentencePiece && isByteToken(t) ? byte : normal))
            } else {
                tokens.append("[PAD\(i)]")
                types.append(Int32(unused))
            }
            scores.append(rankScore[tokens[i]] ?? -1e9)
        }

        var md: [(String, GGUFValue)] = [("tokenizer.ggml.model", .string(sentencePiece ? "llama" : "gpt2"))]
        let variantKey = sentencePiece ? "tokenizer.ggml.add_space_prefix" : "tokenizer.ggml.pre"
        md.append((variantKey, .string("")))   // chosen below
        md.append(("tokenizer.ggml.tokens", .array(tokens.map { .string($0) })))
        if sentencePiece { md.append(("tokenizer.ggml.scores", .array(scores.map { .float32($0) }))) }
        md.append(("tokenizer.ggml.token_type", .array(types.map { .int32($0) })))
        if !sentencePiece { md.append(("tokenizer.ggml.merges", .array(merges.map { .string($0) }))) }
        if let b = hf.bosTokenId { md.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(b)))) }
        let eos = bundle.eosToken.flatMap(hf.tokenId) ?? hf.eosTokenIds.min()
        if let e = eos { md.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(e)))) }
        if let u = unk { md.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(u)))) }
        md.append(("tokenizer.ggml.add_bos_token", .bool(hf.addBosToken)))
        md.append(("tokenizer.ggml.add_eos_token", .bool(false)))
        if let t = bundle.chatTemplate { md.append(("tokenizer.chat_template", .string(t))) }

        var texts = checkTexts + hf.addedTokens.map(\.content) + hf.addedTokens.map { "a \($0.content) b" }
        // HF's Metaspace pre-tokenizer (prepend_scheme "first") puts ▁ only before the start of the whole text, and
        // not when it already starts with a space; llama.cpp's add_space_prefix puts one before every run of text
        // that starts the input or follows a special token (its own conversions of e.g. Mistral differ the same
        // way). Those texts are not compared, and the caller is told.
        if sentencePiece, let p = try root.object("pre_tokenizer"), p.string("type") == "Metaspace", p.string("prepend_scheme") != "always" {
            let specials = hf.addedTokens.map(\.content).filter { !$0.isEmpty }
            texts = texts.filter { t in !(t.first?.isWhitespace ?? false) && !specials.contains { t.contains($0) } }
            caveats.append("HF's Metaspace (prepend_scheme first) puts no ▁ before a text that starts with a space or after a special token, llama.cpp's add_space_prefix does: such texts tokenize as in llama.cpp's own conversions, not as in the folder")
        }
        var variants: [GGUFValue]
        if sentencePiece {
            variants = [.bool(true), .bool(false)]
        } else {
            var names = preferred.filter { GGUFTokenizer.bpePreTokenizers[$0] != nil }
            names += GGUFTokenizer.bpePreTokenizers.keys.sorted().filter { !names.contains($0) }
            variants = names.map { .string($0) }
        }
        var mismatches: [String] = []
        for v in variants {
            md[1].1 = v
            let candidate = try GGUFTokenizer.build(Dictionary(md, uniquingKeysWith: { a, _ in a }))
            if let m = mismatch(hf, candidate, texts, compareWords: !sentencePiece) { mismatches.append("\(variantKey) \(v): \(m)") }
            else { return (md, caveats) }
        }
        throw TokenizerError("\(tjURL.path): no llama.cpp \(sentencePiece ? "SentencePiece" : "pre-tokenizer") setting reproduces this tokenizer (\(mismatches.prefix(3).joined(separator: "; ")))")
    }

    static func isByteToken(_ t: String) -> Bool {
        let u = Array(t.utf8)
        return u.count == 6 && t.hasPrefix("<0x") && t.hasSuffix(">") && UInt8(t.dropFirst(3).prefix(2), radix: 16) != nil
    }

    /// The first check text on which the candidate (GGUF) tokenizer differs from the folder's, described; nil if
    /// none. The pre-tokenizers must split every text (normalised as the folder does) into the same words; since a
    /// small vocabulary can give equal ids for different splits, this is what tells the names apart. Ids (with and
    /// without special tokens) and decoded text must be equal on the texts the folder's normaliser leaves as they
    /// are (a GGUF tokenizer has no normaliser: llama.cpp does not apply e.g. Qwen2's NFC either).
    /// (SentencePiece-style tokenizers have no words to compare: the GGUF one has no pre-tokenizer, and its
    /// normaliser is `add_space_prefix` plus the ▁ replacement, so ids are compared on every text.)
    static func mismatch(_ a: PipelineTokenizer, _ b: PipelineTokenizer, _ texts: [String], compareWords: Bool) -> String? {
        func words(_ t: PipelineTokenizer, _ s: String) -> [String] {
            let p = Piece(text: s, atStart: true)
            return (t.preTokenizer?.preTokenize([p]) ?? [p]).map(\.text)
        }
        for t in texts {
            if compareWords {
                let n = a.normalizer?.normalize(t) ?? t
                if words(a, n) != words(b, n) { return "\(String(reflecting: t)) is split into different words" }
                guard n.utf8.elementsEqual(t.utf8) else { continue }
            }   // (String == compares canonically)
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
