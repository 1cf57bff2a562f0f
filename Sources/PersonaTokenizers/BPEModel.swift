import Foundation

/// Byte-pair encoding with merge ranks, as HF `tokenizers` BPE (also SentencePiece-style
/// BPE with `byte_fallback`, and llama.cpp's `gpt2` vocabularies).
final class BPEModel: TokenModel {
    let vocab: TokenVocab
    let idToTok: [String?]
    /// (left id, right id) packed -> (rank, merged id)
    let merges: [UInt64: (rank: Int, id: Int)]
    let unkId: Int?
    let fuseUnk: Bool
    let byteFallback: Bool
    let ignoreMerges: Bool
    let continuingSubwordPrefix: String?
    let endOfWordSuffix: String?
    let byteIds: [Int?]
    private let cache = WordCache()

    /// `merges` are token pairs in rank order; pairs naming unknown tokens are skipped.
    init(vocab: TokenVocab, merges: [(String, String)], unkToken: String? = nil, fuseUnk: Bool = false,
         byteFallback: Bool = false, ignoreMerges: Bool = false,
         continuingSubwordPrefix: String? = nil, endOfWordSuffix: String? = nil) {
        self.vocab = vocab
        idToTok = reverseVocab(vocab)
        var m: [UInt64: (rank: Int, id: Int)] = [:]
        m.reserveCapacity(merges.count)
        let prefixLen = continuingSubwordPrefix?.unicodeScalars.count ?? 0
        for (rank, (a, b)) in merges.enumerated() {
            guard let ia = vocab[a], let ib = vocab[b] else { continue }
            let bTail = prefixLen > 0 && b.scalarsHavePrefix(continuingSubwordPrefix!) ? String(b.unicodeScalars.dropFirst(prefixLen)) : b
            guard let inew = vocab[a + bTail], ia >= 0, ib >= 0, ia <= Int(UInt32.max), ib <= Int(UInt32.max) else { continue }
            let key = UInt64(UInt32(ia)) << 32 | UInt64(UInt32(ib))
            if m[key] == nil { m[key] = (rank, inew) }
        }
        self.merges = m
        unkId = unkToken.flatMap { vocab[$0] }
        self.fuseUnk = fuseUnk
        self.byteFallback = byteFallback
        self.ignoreMerges = ignoreMerges
        self.continuingSubwordPrefix = continuingSubwordPrefix
        self.endOfWordSuffix = endOfWordSuffix
        byteIds = byteFallbackIds(vocab)
    }

    var vocabCount: Int { idToTok.count }
    func tokenToId(_ token: String) -> Int? { vocab[token] }
    func idToToken(_ id: Int) -> String? { id >= 0 && id < idToTok.count ? idToTok[id] : nil }

    func tokenize(_ word: String) -> [Int] {
        if word.isEmpty { return [] }
        if ignoreMerges, let id = vocab[word] { return [id] }
        if let c = cache.get(word) { return c }
        let ids = merge(initialSymbols(word))
        cache.set(word, ids)
        return ids
    }

    private func initialSymbols(_ word: String) -> [Int] {
        var syms: [Int] = []
        var lastWasUnk = false
        let scalars = Array(word.unicodeScalars)
        for (i, u) in scalars.enumerated() {
            var s = String(u)
            if i > 0, let p = continuingSubwordPrefix { s = p + s }
            if i == scalars.count - 1, let x = endOfWordSuffix { s += x }
            if let id = vocab[s] { syms.append(id); lastWasUnk = false; continue }
            if byteFallback {
                let bytes = Array(s.utf8).map { byteIds[Int($0)] }
                if bytes.allSatisfy({ $0 != nil }) { syms.append(contentsOf: bytes.map { $0! }); lastWasUnk = false; continue }
            }
            if let unk = unkId {
                if !(fuseUnk && lastWasUnk) { syms.append(unk) }
                lastWasUnk = true
            }
            // No unk token: HF drops the character.
        }
        return syms
    }

    /// HF's Word::merge_all: repeatedly apply the lowest-ranked adjacent merge, leftmost first.
    private func merge(_ ids: [Int]) -> [Int] {
        if ids.count < 2 || merges.isEmpty { return ids }
        var c = ids
        var prev = Array(-1..<(ids.count - 1))
        var next = Array(1...ids.count); next[ids.count - 1] = -1
        var alive = [Bool](repeating: true, count: ids.count)
        var heap = MergeHeap()
        func key(_ a: Int, _ b: Int) -> UInt64 { UInt64(UInt32(truncatingIfNeeded: a)) << 32 | UInt64(UInt32(truncatingIfNeeded: b)) }
        for i in 0..<(ids.count - 1) {
            if let m = merges[key(c[i], c[i + 1])] { heap.push(.init(key: Double(m.rank), pos: i, payload: m.id)) }
        }
        while let top = heap.pop() {
            let p = top.pos
            guard alive[p], next[p] >= 0 else { continue }
            let r = next[p]
            guard let m = merges[key(c[p], c[r])], m.id == top.payload else { continue }
            c[p] = m.id
            alive[r] = false
            next[p] = next[r]
            if next[r] >= 0 { prev[next[r]] = p }
            if prev[p] >= 0, let m2 = merges[key(c[prev[p]], c[p])] { heap.push(.init(key: Double(m2.rank), pos: prev[p], payload: m2.id)) }
            if next[p] >= 0, let m2 = merges[key(c[p], c[next[p]])] { heap.push(.init(key: Double(m2.rank), pos: p, payload: m2.id)) }
        }
        var out: [Int] = []
        var i = 0
        while i >= 0 { out.append(c[i]); i = next[i] }
        return out
    }
}

/// Splits a merges entry "a b" at the first space after the first character (llama.cpp does the same).
func splitMergeLine(_ line: String) -> (String, String)? {
    let u = line.unicodeScalars
    guard let first = u.indices.first else { return nil }
    guard let sp = u[u.index(after: first)...].firstIndex(of: " ") else { return nil }
    return (String(u[..<sp]), String(u[u.index(after: sp)...]))
}
