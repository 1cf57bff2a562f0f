import Foundation

/// Builds a PipelineTokenizer from a parsed tokenizer.json object.
enum HFTokenizerJSON {
    static func build(_ root: JSONObject, bosToken: String?, eosTokens: [String], extraBosId: Int?, extraEosIds: [Int],
                      bosOverride: Bool?) throws -> PipelineTokenizer {
        var added: [AddedToken] = []
        if root.has("added_tokens") {
            for t in try root.objects("added_tokens") {
                guard let id = t.int("id"), id >= 0, id < Int(Int32.max) else { throw TokenizerError("\(t.path).id: expected a non-negative integer id") }
                added.append(AddedToken(id: id, content: try t.requireString("content"), special: t.bool("special") ?? false,
                                        lstrip: t.bool("lstrip") ?? false, rstrip: t.bool("rstrip") ?? false,
                                        normalized: t.bool("normalized") ?? !(t.bool("special") ?? false),
                                        singleWord: t.bool("single_word") ?? false))
            }
        }
        let normalizer = try root.object("normalizer").map(makeNormalizer)
        let pre = try root.object("pre_tokenizer").map(makePreTokenizer)
        guard let modelObj = try root.object("model") else { throw TokenizerError("\(root.path).model: missing") }
        let model = try makeModel(modelObj)
        let post = try root.object("post_processor").map(makePostProcessor)
        let decoder = try root.object("decoder").map(makeDecoder)

        func lookup(_ s: String) -> Int? { added.first { $0.content.utf8.elementsEqual(s.utf8) }?.id ?? model.tokenToId(s) }
        let bos = bosToken.flatMap(lookup) ?? extraBosId
        var eos = Set(eosTokens.compactMap(lookup))
        eos.formUnion(extraEosIds)
        return PipelineTokenizer(normalizer: normalizer, preTokenizer: pre, model: model, postProcessor: post, decoder: decoder,
                                 addedTokens: added, bosTokenId: bos, eosTokenIds: eos, bosOverride: bosOverride)
    }

    static func makeModel(_ obj: JSONObject) throws -> TokenModel {
        let type = obj.string("type") ?? (obj.has("merges") ? "BPE" : (obj.array("vocab") != nil ? "Unigram" : "WordPiece"))
        switch type {
        case "BPE":
            let vocab = try intVocab(obj)
            var merges: [(String, String)] = []
            for (i, m) in (obj.array("merges") ?? []).enumerated() {
                if let s = m.string, let p = splitMergeLine(s) { merges.append(p) }
                else if let a = m.array?.compactMap(\.string), a.count == 2 { merges.append((a[0], a[1])) }
                else { throw TokenizerError("\(obj.path).merges[\(i)]: expected \"a b\" or [a, b]") }
            }
            return BPEModel(vocab: vocab, merges: merges, unkToken: obj.string("unk_token"), fuseUnk: obj.bool("fuse_unk") ?? false,
                            byteFallback: obj.bool("byte_fallback") ?? false, ignoreMerges: obj.bool("ignore_merges") ?? false,
                            continuingSubwordPrefix: obj.string("continuing_subword_prefix").flatMap { $0.isEmpty ? nil : $0 },
                            endOfWordSuffix: obj.string("end_of_word_suffix").flatMap { $0.isEmpty ? nil : $0 })
        case "Unigram":
            guard let v = obj.array("vocab") else { throw TokenizerError("\(obj.path).vocab: expected [[piece, score], ...]") }
            var pieces: [(String, Double)] = []
            pieces.reserveCapacity(v.count)
            for (i, e) in v.enumerated() {
                guard let a = e.array, a.count == 2, let s = a[0].string, let sc = a[1].double else {
                    throw TokenizerError("\(obj.path).vocab[\(i)]: expected [piece, score]")
                }
                pieces.append((s, sc))
            }
            // As HF tokenizers (UnkIdNotInVocabulary): an unk_id outside the vocabulary would be emitted as a token id.
            let unkId = obj.int("unk_id")
            if let u = unkId, !(0 ..< pieces.count).contains(u) {
                throw TokenizerError("\(obj.path).unk_id: \(u) is outside the vocabulary (0..<\(pieces.count))")
            }
            return UnigramModel(pieces: pieces, unkId: unkId, byteFallback: obj.bool("byte_fallback") ?? false)
        case "WordPiece":
            return WordPieceModel(vocab: try intVocab(obj), unkToken: obj.string("unk_token") ?? "[UNK]",
                                  prefix: obj.string("continuing_subword_prefix") ?? "##",
                                  maxChars: obj.int("max_input_chars_per_word") ?? 100)
        case "WordLevel":
            return WordLevelModel(vocab: try intVocab(obj), unkToken: obj.string("unk_token") ?? "<unk>")
        case let t:
            throw TokenizerError("\(obj.path): unsupported model type \"\(t)\"")
        }
    }

    private static func intVocab(_ obj: JSONObject) throws -> TokenVocab {
        guard let v = obj["vocab"]?.members else { throw TokenizerError("\(obj.path).vocab: expected {token: id}") }
        var out = TokenVocab(minimumCapacity: v.count)
        for (k, x) in v {
            guard let id = x.int else { throw TokenizerError("\(obj.path).vocab[\(k)]: expected an integer id") }
            // Corrupt ids (negative, absurdly large) are dropped so encode never returns them.
            if id >= 0 && id < v.count + 1_000_000 { out[k] = id }
        }
        return out
    }
}
