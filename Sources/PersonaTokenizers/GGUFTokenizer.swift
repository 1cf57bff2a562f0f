import Foundation
import PersonaFormats

/// Builds tokenizers from GGUF metadata the way llama.cpp interprets it.
enum GGUFTokenizer {
    // llama.cpp token types
    static let typeUnknown = 2, typeControl = 3, typeUserDefined = 4

    static func build(_ md: [String: GGUFValue]) throws -> PipelineTokenizer {
        guard let kind = md["tokenizer.ggml.model"]?.string else {
            throw TokenizerError("GGUF: tokenizer.ggml.model missing (no embedded tokenizer)")
        }
        guard let tokens = md["tokenizer.ggml.tokens"]?.stringArray, !tokens.isEmpty else {
            throw TokenizerError("GGUF: tokenizer.ggml.tokens missing or empty")
        }
        let types = md["tokenizer.ggml.token_type"]?.intArray ?? []
        func id(_ key: String) -> Int? {
            guard let v = md[key]?.int, v >= 0, v < tokens.count else { return nil }
            return v
        }
        let bos = id("tokenizer.ggml.bos_token_id")
        var eos = Set<Int>()
        for k in ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"] {
            if let e = id(k) { eos.insert(e) }
        }
        var added: [AddedToken] = []
        for (i, t) in types.enumerated() where i < tokens.count {
            if t == typeControl || t == typeUnknown { added.append(AddedToken(id: i, content: tokens[i], special: true)) }
            else if t == typeUserDefined { added.append(AddedToken(id: i, content: tokens[i], special: false)) }
        }
        added.removeAll { $0.content.isEmpty }

        switch kind {
        case "llama":
            let scores = md["tokenizer.ggml.scores"]?.floatArray ?? []
            guard scores.count == tokens.count else {
                throw TokenizerError("GGUF: tokenizer.ggml.scores has \(scores.count) entries for \(tokens.count) tokens")
            }
            let addSpacePrefix = ggufBool(md["tokenizer.ggml.add_space_prefix"]) ?? true
            let addBos = ggufBool(md["tokenizer.ggml.add_bos_token"]) ?? true
            let addEos = ggufBool(md["tokenizer.ggml.add_eos_token"]) ?? false
            let model = SentencePieceScoreModel(tokens: tokens, scores: scores, unkId: id("tokenizer.ggml.unknown_token_id"))
            var norm: [Normalizer] = []
            if addSpacePrefix { norm.append(PrependNormalizer(prefix: " ")) }
            norm.append(ReplaceNormalizer(pattern: .literal(" "), content: "\u{2581}"))
            var dec: [TokenDecoder] = [ReplaceDecoder(pattern: .literal("\u{2581}"), content: " "), ByteFallbackDecoder(), FuseDecoder()]
            if addSpacePrefix { dec.append(StripDecoder(content: " ", start: 1, stop: 0)) }
            let post = SimplePostProcessor(before: addBos ? bos.map { [$0] } ?? [] : [],
                                           after: addEos ? eos.sorted().prefix(1).map { $0 } : [])
            return PipelineTokenizer(normalizer: SequenceNormalizer(items: norm), preTokenizer: nil, model: model,
                                     postProcessor: post, decoder: SequenceDecoder(items: dec), addedTokens: added,
                                     bosTokenId: bos, eosTokenIds: eos, bosOverride: nil)
        case "gpt2":
            let pre = md["tokenizer.ggml.pre"]?.string ?? "default"
            guard let spec = bpePreTokenizers[pre] else {
                throw TokenizerError("GGUF: tokenizer.ggml.pre \"\(pre)\" not supported (supported: \(bpePreTokenizers.keys.sorted().joined(separator: ", ")))")
            }
            guard let mergeLines = md["tokenizer.ggml.merges"]?.stringArray else {
                throw TokenizerError("GGUF: tokenizer.ggml.merges missing for gpt2 tokenizer")
            }
            var vocab = TokenVocab(minimumCapacity: tokens.count)
            for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = i }
            let model = BPEModel(vocab: vocab, merges: mergeLines.compactMap(splitMergeLine), ignoreMerges: spec.ignoreMerges)
            var splits: [PreTokenizer] = []
            for r in spec.regexes {
                splits.append(SplitPreTokenizer(pattern: .regex(try compileRegex(r, path: "GGUF pre \(pre)")), behavior: .isolated, invert: false))
            }
            splits.append(try ByteLevelPreTokenizer(addPrefixSpace: false, useRegex: false))
            let addBos = ggufBool(md["tokenizer.ggml.add_bos_token"]) ?? spec.addBos
            let addEos = ggufBool(md["tokenizer.ggml.add_eos_token"]) ?? false
            let post = SimplePostProcessor(before: addBos ? bos.map { [$0] } ?? [] : [],
                                           after: addEos ? eos.sorted().prefix(1).map { $0 } : [])
            return PipelineTokenizer(normalizer: nil, preTokenizer: SequencePreTokenizer(items: splits), model: model,
                                     postProcessor: post, decoder: ByteLevelDecoder(), addedTokens: added,
                                     bosTokenId: bos, eosTokenIds: eos, bosOverride: nil)
        case "gemma4":
            // SentencePiece-style BPE with merges and byte fallback (HF's Gemma tokenizer.json shape).
            guard let mergeLines = md["tokenizer.ggml.merges"]?.stringArray else {
                throw TokenizerError("GGUF: tokenizer.ggml.merges missing for gemma4 tokenizer")
            }
            var vocab = TokenVocab(minimumCapacity: tokens.count)
            for (i, t) in tokens.enumerated() where vocab[t] == nil { vocab[t] = i }
            let model = BPEModel(vocab: vocab, merges: mergeLines.compactMap(splitMergeLine),
                                 unkToken: id("tokenizer.ggml.unknown_token_id").map { tokens[$0] }, byteFallback: true)
            // Like transformers: no automatic BOS although the file sets the flag, because Gemma-4's
            // chat template writes <bos> itself (llama.cpp forces it on instead).
            let post = SimplePostProcessor(before: [], after: [])
            return PipelineTokenizer(normalizer: ReplaceNormalizer(pattern: .literal(" "), content: "\u{2581}"), preTokenizer: nil,
                                     model: model, postProcessor: post,
                                     decoder: SequenceDecoder(items: [ReplaceDecoder(pattern: .literal("\u{2581}"), content: " "),
                                                                     ByteFallbackDecoder(), FuseDecoder()]),
                                     addedTokens: added, bosTokenId: bos, eosTokenIds: eos, bosOverride: nil)
        default:
            throw TokenizerError("GGUF: tokenizer.ggml.model \"\(kind)\" not supported (supported: llama, gpt2, gemma4)")
        }
    }

    struct BPEPre { var regexes: [String]; var ignoreMerges = false; var addBos = false }

    static let gpt2Regex = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let llama3Regex = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    /// o200k's (gpt-oss, Llama-4): the regex of their tokenizer.json, as HF tokenizers runs it. (llama.cpp runs an
    /// ASCII-case rewrite of it, which differs on non-ASCII lowercase letters; the model's own regex is followed here.)
    static let gpt4oRegex = #"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let qwen2Regex = #"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    /// llama.cpp's pre-tokenizer table (src/llama-vocab.cpp), for the names we support.
    static let bpePreTokenizers: [String: BPEPre] = {
        var m: [String: BPEPre] = [:]
        for k in ["llama3", "llama-v3", "llama-bpe", "falcon3"] { m[k] = BPEPre(regexes: [llama3Regex], ignoreMerges: true, addBos: true) }
        for k in ["dbrx", "smaug-bpe"] { m[k] = BPEPre(regexes: [llama3Regex]) }
        for k in ["gpt-4o", "llama4", "kanana2", "talkie"] { m[k] = BPEPre(regexes: [gpt4oRegex]) }
        for k in ["qwen2", "stablelm2", "deepseek-r1-qwen", "hunyuan"] { m[k] = BPEPre(regexes: [qwen2Regex]) }
        for k in ["gpt-2", "gpt2", "mpt", "olmo", "jais", "phi-2"] { m[k] = BPEPre(regexes: [gpt2Regex]) }
        for k in ["smollm", "refact", "command-r", "starcoder", "codeshell", "exaone"] { m[k] = BPEPre(regexes: [#"\p{N}"#, gpt2Regex]) }
        m["default"] = BPEPre(regexes: [#"[\p{P}\$\+<=>\^~\|]+"#, gpt2Regex, #"\p{N}+"#, "[0-9][0-9][0-9]"])
        // Escaped code points are singletons that Unicode normalization would silently rewrite in source text.
        m["deepseek-llm"] = BPEPre(regexes: [
            #"[\r\n]"#,
            #"\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\x{1F7D}ᾀ-ᾴᾶ-ᾼ\x{1FBE}ῂ-ῄῆ-ῌῐ-\x{1FD3}ῖ-\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\x{2126}ℨ\x{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+"#,
            #"\s?[!-/:-~！-／：-～‘-‟　-。]+"#,
            #"\s+$"#,
            #"[一-龥ࠀ-一가-퟿]+"#,
            #"\p{N}+"#,
        ], addBos: true)
        return m
    }()
}

/// GGUF booleans, read through the integer accessor (true = nonzero).
func ggufBool(_ v: GGUFValue?) -> Bool? {
    guard let v else { return nil }
    if let i = v.int { return i != 0 }
    return nil
}
