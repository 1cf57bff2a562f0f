import Foundation

/// llama.cpp's SentencePiece tokenizer for GGUF `tokenizer.ggml.model = "llama"`: start from
/// UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is the vocabulary
/// entry with the highest score (leftmost on ties), then emit pieces, falling back to the
/// `<0xNN>` byte tokens for characters outside the vocabulary.
final class SentencePieceScoreModel: TokenModel {
    let vocab: TokenVocab
    let idToTok: [String?]
    let scores: [Float]
    let byteIds: [Int?]
    let unkId: Int?

    init(tokens: [String], scores: [Float], unkId: Int?) {
        var v = TokenVocab(minimumCapacity: tokens.count)
        // First occurrence wins for duplicate pieces.
        for (i, t) in tokens.enumerated() where v[t] == nil { v[t] = i }
        vocab = v
        idToTok = tokens.map { Optional($0) }
        self.scores = scores
        byteIds = byteFallbackIds(v)
        self.unkId = unkId
    }

    var vocabCount: Int { idToTok.count }
    func tokenToId(_ token: String) -> Int? { vocab[token] }
    func idToToken(_ id: Int) -> String? { id >= 0 && id < idToTok.count ? idToTok[id] : nil }

    private struct Symbol { var start: Int; var n: Int; var prev: Int; var next: Int }

    func tokenize(_ word: String) -> [Int] {
        let bytes = Array(word.utf8)
        if bytes.isEmpty { return [] }
        var syms: [Symbol] = []
        var i = 0
        while i < bytes.count {
            let len = min(utf8LeadLength(bytes[i]), bytes.count - i)
            syms.append(Symbol(start: i, n: len, prev: syms.count - 1, next: syms.count + 1))
            i += len
        }
        syms[syms.count - 1].next = -1

        func text(_ a: Int, _ n: Int) -> String { String(decoding: bytes[a..<(a + n)], as: UTF8.self) }
        var heap = MergeHeap()
        // Pending bigrams carry the combined length so stale entries can be recognised.
        var bigramSize: [Int: Int] = [:]
        var revMerge: [ByteString: (Int, Int)] = [:]
        var serial = 0
        var bigramLR: [Int: (Int, Int)] = [:]
        func tryAdd(_ l: Int, _ r: Int) {
            guard l >= 0, r >= 0 else { return }
            let t = text(syms[l].start, syms[l].n + syms[r].n)
            guard let id = vocab[t], id < scores.count else { return }
            // Max-heap on score via negation; ties: leftmost (smaller left index).
            heap.push(.init(key: -Double(scores[id]), pos: l, payload: serial))
            bigramSize[serial] = syms[l].n + syms[r].n
            bigramLR[serial] = (l, r)
            revMerge[ByteString(t)] = (l, r)
            serial += 1
        }
        for k in 1..<syms.count { tryAdd(k - 1, k) }

        while let top = heap.pop() {
            guard let (l, r) = bigramLR[top.payload], let size = bigramSize[top.payload] else { continue }
            // Skip if one side was already merged away or changed.
            if syms[l].n == 0 || syms[r].n == 0 || syms[l].n + syms[r].n != size { continue }
            syms[l].n += syms[r].n
            syms[r].n = 0
            syms[l].next = syms[r].next
            if syms[r].next >= 0 { syms[syms[r].next].prev = l }
            tryAdd(syms[l].prev, l)
            tryAdd(l, syms[l].next)
        }

        var out: [Int] = []
        func resegment(_ s: Symbol) {
            let t = text(s.start, s.n)
            if let id = vocab[t] { out.append(id); return }
            if let (a, b) = revMerge[ByteString(t)] { resegment(syms[a]); resegment(syms[b]); return }
            for k in s.start..<(s.start + s.n) {
                if let id = byteIds[Int(bytes[k])] { out.append(id) } else if let u = unkId { out.append(u) }
            }
        }
        var k = 0
        while k >= 0 { if syms[k].n > 0 { resegment(syms[k]) }; k = syms[k].next }
        return out
    }
}

/// Length of the UTF-8 sequence introduced by lead byte `b` (1 for stray continuation bytes, like llama.cpp).
func utf8LeadLength(_ b: UInt8) -> Int {
    if b < 0x80 { return 1 }
    if b >> 5 == 0b110 { return 2 }
    if b >> 4 == 0b1110 { return 3 }
    if b >> 3 == 0b11110 { return 4 }
    return 1
}
