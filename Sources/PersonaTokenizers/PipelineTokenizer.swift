import Foundation

/// A tokenizer assembled from the components of a tokenizer.json (or their GGUF equivalents):
/// added tokens -> normalizer -> pre-tokenizer -> model -> post-processor; decoding via the decoder.
final class PipelineTokenizer: Tokenizer, @unchecked Sendable {
    let normalizer: Normalizer?
    let preTokenizer: PreTokenizer?
    let model: TokenModel
    let postProcessor: PostProcessor?
    let decoder: TokenDecoder?
    let addedTokens: [AddedToken]
    private let rawMatcher: AddedTokenMatcher
    private let normalizedMatcher: AddedTokenMatcher
    private let addedById: [Int: AddedToken]
    private let addedByContent: TokenVocab

    let bosTokenId: Int?
    let eosTokenIds: Set<Int>
    /// nil: the post-processor decides; true/false: force BOS on/off (tokenizer_config `add_bos_token`).
    private let bosOverride: Bool?

    init(normalizer: Normalizer?, preTokenizer: PreTokenizer?, model: TokenModel, postProcessor: PostProcessor?,
         decoder: TokenDecoder?, addedTokens: [AddedToken], bosTokenId: Int?, eosTokenIds: Set<Int>, bosOverride: Bool?) {
        self.normalizer = normalizer
        self.preTokenizer = preTokenizer
        self.model = model
        self.postProcessor = postProcessor
        self.decoder = decoder
        self.addedTokens = addedTokens
        let raw = addedTokens.filter { !$0.normalized }
        rawMatcher = AddedTokenMatcher(tokens: raw, patterns: raw.map(\.content))
        let norm = addedTokens.filter { $0.normalized }
        normalizedMatcher = AddedTokenMatcher(tokens: norm, patterns: norm.map { normalizer?.normalize($0.content) ?? $0.content })
        var byId: [Int: AddedToken] = [:]
        var byContent = TokenVocab()
        for t in addedTokens {
            // HF reports a normalized added token by its normalized form (id_to_token, decode).
            var shown = t
            if t.normalized, let n = normalizer { shown.content = n.normalize(t.content) }
            byId[t.id] = shown
            byContent[shown.content] = t.id
            byContent[t.content] = t.id
        }
        addedById = byId
        addedByContent = byContent
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
        self.bosOverride = bosOverride
    }

    var vocabSize: Int { max(model.vocabCount, (addedTokens.map(\.id).max() ?? -1) + 1) }

    var addBosToken: Bool {
        if let o = bosOverride { return o }
        guard let bos = bosTokenId else { return false }
        return postProcessor?.prefixIds.first == bos
    }

    func encode(_ text: String, addSpecialTokens: Bool) -> [Int] {
        var ids: [Int] = []
        for (segment, token, offset) in rawMatcher.split(text) {
            if let t = token { ids.append(t.id); continue }
            let normalized = normalizer?.normalize(segment) ?? segment
            for (sub, t2, off2) in normalizedMatcher.split(normalized) {
                if let t = t2 { ids.append(t.id); continue }
                let piece = Piece(text: sub, atStart: offset == 0 && off2 == 0)
                let words = preTokenizer?.preTokenize([piece]) ?? [piece]
                for w in words { ids.append(contentsOf: model.tokenize(w.text)) }
            }
        }
        guard addSpecialTokens else { return ids }
        if let p = postProcessor { ids = p.process(ids) }
        if let o = bosOverride, let bos = bosTokenId {
            let processorAddsBos = postProcessor?.prefixIds.first == bos
            if o && !processorAddsBos { ids.insert(bos, at: 0) }
            if !o && processorAddsBos, ids.first == bos { ids.removeFirst() }
        }
        return ids
    }

    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String {
        var tokens: [String] = []
        tokens.reserveCapacity(ids.count)
        for id in ids {
            if let a = addedById[id] {
                if skipSpecialTokens && a.special { continue }
                tokens.append(a.content)
            } else if let t = model.idToToken(id) {
                tokens.append(t)
            }
        }
        guard let d = decoder else { return tokens.joined(separator: " ") }
        return d.decodeChain(tokens).joined()
    }

    func tokenBytes(_ id: Int) -> [UInt8] {
        if let a = addedById[id] { return Array(a.content.utf8) }
        guard let t = model.idToToken(id) else { return [] }
        return decoder?.pieceBytes(Array(t.utf8)) ?? Array(t.utf8)
    }

    func tokenString(_ id: Int) -> String? { addedById[id]?.content ?? model.idToToken(id) }
    func tokenId(_ token: String) -> Int? { addedByContent[token] ?? model.tokenToId(token) }
    func isSpecial(_ id: Int) -> Bool { addedById[id]?.special ?? false }
}
