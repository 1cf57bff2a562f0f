import Foundation

/// HF `tokenizers` Unigram: Viterbi over vocabulary pieces with log-probability scores;
/// characters outside the vocabulary become `unk` (consecutive unknowns fused) or bytes.
final class UnigramModel: TokenModel {
    let pieces: [(String, Double)]
    let vocab: [[UInt8]: Int]
    let tokToId: TokenVocab
    let unkId: Int?
    let byteFallback: Bool
    let byteIds: [Int?]
    let minScore: Double
    let maxPieceBytes: Int
    private let cache = WordCache()

    init(pieces: [(String, Double)], unkId: Int?, byteFallback: Bool) {
        self.pieces = pieces
        var v: [[UInt8]: Int] = [:]
        var t = TokenVocab()
        var maxLen = 1
        for (i, p) in pieces.enumerated() {
            if t[p.0] == nil { t[p.0] = i; v[Array(p.0.utf8)] = i }
            maxLen = max(maxLen, p.0.utf8.count)
        }
        vocab = v
        tokToId = t
        self.unkId = unkId
        self.byteFallback = byteFallback
        byteIds = byteFallbackIds(t)
        minScore = pieces.map(\.1).min() ?? 0
        maxPieceBytes = maxLen
    }

    var vocabCount: Int { pieces.count }
    func tokenToId(_ token: String) -> Int? { tokToId[token] }
    func idToToken(_ id: Int) -> String? { id >= 0 && id < pieces.count ? pieces[id].0 : nil }

    func tokenize(_ word: String) -> [Int] {
        if word.isEmpty { return [] }
        if let c = cache.get(word) { return c }
        var ids: [Int] = []
        for piece in bestPath(Array(word.utf8)) {
            if let id = vocab[piece] { ids.append(id); continue }
            if byteFallback {
                let b = piece.map { byteIds[Int($0)] }
                if b.allSatisfy({ $0 != nil }) { ids.append(contentsOf: b.map { $0! }); continue }
            }
            if let u = unkId { ids.append(u) }
        }
        cache.set(word, ids)
        return ids
    }

    /// HF's Unigram::encode_optimized (mirrors sentencepiece); unknown runs are fused.
    private func bestPath(_ s: [UInt8]) -> [[UInt8]] {
        let n = s.count
        let unkScore = minScore - 10.0
        var best = [Double](repeating: 0, count: n + 1)
        var from = [Int](repeating: -1, count: n + 1)
        var tok = [Int](repeating: -1, count: n + 1)
        var start = 0
        while start < n {
            let here = best[start]
            let mblen = min(utf8LeadLength(s[start]), n - start)
            var hasSingle = false
            var len = 1
            while len <= min(maxPieceBytes, n - start) {
                if let id = vocab[Array(s[start..<(start + len)])] {
                    let end = start + len
                    let cand = pieces[id].1 + here
                    if from[end] < 0 || cand > best[end] { best[end] = cand; from[end] = start; tok[end] = id }
                    if len == mblen { hasSingle = true }
                }
                len += 1
            }
            if !hasSingle {
                let end = start + mblen
                let cand = unkScore + here
                if from[end] < 0 || cand > best[end] { best[end] = cand; from[end] = start; tok[end] = unkId ?? -2 }
            }
            start += mblen
        }
        var out: [[UInt8]] = []
        var pendingUnk: [UInt8] = []
        var end = n
        while end > 0 {
            let st = max(from[end], 0)
            let piece = Array(s[st..<end])
            if unkId != nil && tok[end] == unkId || tok[end] == -2 {
                pendingUnk = piece + pendingUnk
            } else {
                if !pendingUnk.isEmpty { out.append(pendingUnk); pendingUnk = [] }
                out.append(piece)
            }
            if st == end { break }
            end = st
        }
        if !pendingUnk.isEmpty { out.append(pendingUnk) }
        return out.reversed()
    }
}

/// BERT WordPiece: greedy longest match with a continuation prefix.
final class WordPieceModel: TokenModel {
    let vocab: TokenVocab
    let idToTok: [String?]
    let unkId: Int?
    let prefix: String
    let maxChars: Int

    init(vocab: TokenVocab, unkToken: String, prefix: String, maxChars: Int) {
        self.vocab = vocab
        idToTok = reverseVocab(vocab)
        unkId = vocab[unkToken]
        self.prefix = prefix
        self.maxChars = maxChars
    }

    var vocabCount: Int { idToTok.count }
    func tokenToId(_ token: String) -> Int? { vocab[token] }
    func idToToken(_ id: Int) -> String? { id >= 0 && id < idToTok.count ? idToTok[id] : nil }

    func tokenize(_ word: String) -> [Int] {
        let u = Array(word.unicodeScalars)
        if u.count > maxChars { return unkId.map { [$0] } ?? [] }
        var out: [Int] = []
        var start = 0
        while start < u.count {
            var end = u.count
            var found: Int?
            while start < end {
                var s = String(String.UnicodeScalarView(u[start..<end]))
                if start > 0 { s = prefix + s }
                if let id = vocab[s] { found = id; break }
                end -= 1
            }
            guard let id = found else { return unkId.map { [$0] } ?? [] }
            out.append(id)
            start = end
        }
        return out
    }
}

/// WordLevel: each word is one vocabulary entry, else `unk`.
final class WordLevelModel: TokenModel {
    let vocab: TokenVocab
    let idToTok: [String?]
    let unkId: Int?
    init(vocab: TokenVocab, unkToken: String) {
        self.vocab = vocab
        idToTok = reverseVocab(vocab)
        unkId = vocab[unkToken]
    }
    var vocabCount: Int { idToTok.count }
    func tokenToId(_ token: String) -> Int? { vocab[token] }
    func idToToken(_ id: Int) -> String? { id >= 0 && id < idToTok.count ? idToTok[id] : nil }
    func tokenize(_ word: String) -> [Int] { vocab[word].map { [$0] } ?? unkId.map { [$0] } ?? [] }
}
