import Foundation

/// tokenizer.json `model`: turns one pre-tokenized word into ids.
protocol TokenModel: AnyObject {
    func tokenize(_ word: String) -> [Int]
    func tokenToId(_ token: String) -> Int?
    func idToToken(_ id: Int) -> String?
    /// One past the largest id the model knows.
    var vocabCount: Int { get }
}

/// Min-heap keyed by (primary, position): lower primary first, then leftmost.
struct MergeHeap {
    struct Entry { var key: Double; var pos: Int; var payload: Int }
    private var items: [Entry] = []
    var isEmpty: Bool { items.isEmpty }

    private func less(_ a: Entry, _ b: Entry) -> Bool { a.key < b.key || (a.key == b.key && a.pos < b.pos) }

    mutating func push(_ e: Entry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            if less(items[i], items[p]) { items.swapAt(i, p); i = p } else { break }
        }
    }

    mutating func pop() -> Entry? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && less(items[l], items[m]) { m = l }
                if r < items.count && less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m)
                i = m
            }
        }
        return top
    }
}

/// Vocabulary-sized id -> token table built from a token -> id map. Ids far beyond the
/// vocabulary size (corrupt files) are left out rather than allocating a huge table.
func reverseVocab(_ vocab: TokenVocab) -> [String?] {
    let limit = vocab.count + 1_000_000
    let n = (vocab.values.filter { $0 < limit }.max() ?? -1) + 1
    var r = [String?](repeating: nil, count: max(n, 0))
    for (k, v) in vocab.pairs where v >= 0 && v < n { r[v] = k }
    return r
}

/// Ids of the SentencePiece byte tokens "<0x00>" ... "<0xFF>", where present.
func byteFallbackIds(_ vocab: TokenVocab) -> [Int?] {
    (0..<256).map { vocab[String(format: "<0x%02X>", $0)] }
}

/// Small thread-safe word cache (HF caches BPE words too).
final class WordCache: @unchecked Sendable {
    private var map: [ByteString: [Int]] = [:]
    private let lock = NSLock()
    private let capacity: Int
    init(capacity: Int = 10_000) { self.capacity = capacity }
    func get(_ k: String) -> [Int]? { lock.lock(); defer { lock.unlock() }; return map[ByteString(k)] }
    func set(_ k: String, _ v: [Int]) {
        lock.lock(); defer { lock.unlock() }
        if map.count >= capacity { map.removeAll(keepingCapacity: true) }
        map[ByteString(k)] = v
    }
}
