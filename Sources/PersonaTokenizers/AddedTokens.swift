import Foundation

/// An entry of tokenizer.json `added_tokens` (or a GGUF control / user-defined token).
struct AddedToken {
    var id: Int
    var content: String
    var special: Bool
    var lstrip = false
    var rstrip = false
    var normalized = false
    var singleWord = false
}

/// Finds added tokens in text, leftmost-longest like HF's Aho-Corasick matcher, and
/// applies `lstrip` / `rstrip` / `single_word` the way HF's AddedVocabulary::find_matches does.
struct AddedTokenMatcher {
    private var byFirstByte: [UInt8: [(bytes: [UInt8], token: Int)]] = [:]
    let tokens: [AddedToken]
    var isEmpty: Bool { byFirstByte.isEmpty }

    /// `patterns[i]` is the text to look for for `tokens[i]` (normalized content for normalized tokens).
    init(tokens: [AddedToken], patterns: [String]) {
        self.tokens = tokens
        for (i, p) in patterns.enumerated() {
            let b = Array(p.utf8)
            guard let f = b.first else { continue }
            byFirstByte[f, default: []].append((b, i))
        }
        for k in byFirstByte.keys { byFirstByte[k]!.sort { $0.bytes.count > $1.bytes.count } }
    }

    /// Segments of `text`: (byte range, index into `tokens` or nil for plain text).
    func split(_ text: String) -> [(String, AddedToken?, Int)] {
        let s = Array(text.utf8)
        if isEmpty || s.isEmpty { return s.isEmpty ? [] : [(text, nil, 0)] }
        var out: [(String, AddedToken?, Int)] = []
        var startOffset = 0
        var pos = 0
        func str(_ a: Int, _ b: Int) -> String { String(decoding: s[a..<b], as: UTF8.self) }
        while pos < s.count {
            var found: (len: Int, token: Int)?
            if let cands = byFirstByte[s[pos]] {
                for c in cands where pos + c.bytes.count <= s.count && s[pos..<(pos + c.bytes.count)].elementsEqual(c.bytes) {
                    found = (c.bytes.count, c.token); break
                }
            }
            guard let f = found else { pos += 1; continue }
            var start = pos, stop = pos + f.len
            let tok = tokens[f.token]
            if tok.singleWord {
                let startOK = start == 0 || !endsWithWordChar(str(0, start))
                let stopOK = stop == s.count || !startsWithWordChar(str(stop, s.count))
                if !(startOK && stopOK) { pos += 1; continue }
            }
            let searchResume = stop
            if tok.lstrip {
                var a = start
                while a > startOffset, let l = lastScalarStart(s, before: a, floor: startOffset), isWhitespaceBytes(s, l, a) { a = l }
                start = a
            }
            if tok.rstrip {
                var b = stop
                while b < s.count {
                    let n = max(1, min(utf8LeadLength(s[b]), s.count - b))
                    if isWhitespaceBytes(s, b, b + n) { b += n } else { break }
                }
                stop = b
            }
            if startOffset < start { out.append((str(startOffset, start), nil, startOffset)) }
            out.append((str(start, stop), tok, start))
            startOffset = stop
            pos = max(searchResume, stop)
        }
        if startOffset < s.count { out.append((str(startOffset, s.count), nil, startOffset)) }
        return out
    }
}

private func lastScalarStart(_ s: [UInt8], before i: Int, floor: Int) -> Int? {
    var j = i - 1
    while j > floor && (s[j] & 0xC0) == 0x80 { j -= 1 }
    return j >= floor ? j : nil
}

private func isWhitespaceBytes(_ s: [UInt8], _ a: Int, _ b: Int) -> Bool {
    let str = String(decoding: s[a..<b], as: UTF8.self)
    return str.unicodeScalars.count == 1 && str.unicodeScalars.first!.properties.isWhitespace
}

private func isWordScalar(_ u: Unicode.Scalar) -> Bool {
    u == "_" || u.properties.isAlphabetic || u.properties.numericType != nil
}
private func endsWithWordChar(_ s: String) -> Bool { s.unicodeScalars.last.map(isWordScalar) ?? false }
private func startsWithWordChar(_ s: String) -> Bool { s.unicodeScalars.first.map(isWordScalar) ?? false }
