import Foundation

/// A piece of text flowing through the pipeline; `atStart` is true when it begins at offset 0
/// of the original input (HF's Metaspace `prepend_scheme: first` needs it).
struct Piece {
    var text: String
    var atStart: Bool
}

/// tokenizer.json `pre_tokenizer`: splits pieces into words for the model.
protocol PreTokenizer {
    func preTokenize(_ pieces: [Piece]) -> [Piece]
}

enum SplitBehavior {
    case removed, isolated, mergedWithPrevious, mergedWithNext, contiguous

    init(_ s: String?, path: String) throws {
        switch s {
        case "Removed": self = .removed
        case "Isolated": self = .isolated
        case "MergedWithPrevious": self = .mergedWithPrevious
        case "MergedWithNext": self = .mergedWithNext
        case "Contiguous": self = .contiguous
        default: throw TokenizerError("\(path).behavior: unsupported split behavior \(s ?? "nil")")
        }
    }
}

/// HF's NormalizedString::split: `matches` are non-overlapping ranges; returns the kept pieces (empty ones dropped).
func splitPiece(_ piece: Piece, matches: [Range<String.Index>], behavior: SplitBehavior, invert: Bool = false) -> [Piece] {
    let s = piece.text
    if s.isEmpty { return [] }
    var segs: [(Range<String.Index>, Bool)] = []
    var prev = s.startIndex
    for m in matches {
        if prev < m.lowerBound { segs.append((prev..<m.lowerBound, false)) }
        segs.append((m, true))
        prev = m.upperBound
    }
    if prev < s.endIndex { segs.append((prev..<s.endIndex, false)) }
    if invert { segs = segs.map { ($0.0, !$0.1) } }

    var out: [Range<String.Index>] = []
    switch behavior {
    case .isolated:
        out = segs.map(\.0)
    case .removed:
        out = segs.filter { !$0.1 }.map(\.0)
    case .contiguous:
        var prevMatch = false
        for (r, isMatch) in segs {
            if isMatch == prevMatch, let last = out.last { out[out.count - 1] = last.lowerBound..<r.upperBound } else { out.append(r) }
            prevMatch = isMatch
        }
    case .mergedWithPrevious:
        var prevMatch = false
        for (r, isMatch) in segs {
            if isMatch && !prevMatch, let last = out.last { out[out.count - 1] = last.lowerBound..<r.upperBound } else { out.append(r) }
            prevMatch = isMatch
        }
    case .mergedWithNext:
        var prevMatch = false
        for (r, isMatch) in segs.reversed() {
            if isMatch && !prevMatch, let last = out.last { out[out.count - 1] = r.lowerBound..<last.upperBound } else { out.append(r) }
            prevMatch = isMatch
        }
        out.reverse()
    }
    return out.filter { !$0.isEmpty }.map { Piece(text: String(s.unicodeScalars[$0]), atStart: piece.atStart && $0.lowerBound == s.startIndex) }
}

// Unicode-scalar level predicates; HF works on Rust `char`s (scalars), so split at scalar granularity.
func scalarMatches(_ s: String, _ pred: (Unicode.Scalar) -> Bool) -> [Range<String.Index>] {
    var out: [Range<String.Index>] = []
    let u = s.unicodeScalars
    var i = u.startIndex
    while i < u.endIndex {
        let j = u.index(after: i)
        if pred(u[i]) { out.append(i..<j) }
        i = j
    }
    return out
}

func regexMatches(_ re: NSRegularExpression, _ s: String) -> [Range<String.Index>] {
    let ns = s as NSString
    return stringRanges(re.matches(in: s, options: [], range: NSRange(location: 0, length: ns.length)).map(\.range), in: s)
}

/// Ascending, non-overlapping UTF-16 ranges of `s` as its indices. Not `Range(_:in:)`: that gives nil for a bound
/// inside a grapheme cluster (between "\r" and "\n", a letter and its combining mark), where HF, which works on
/// Rust chars, splits; a dropped match then merged its text with its neighbours' ("a\r\nb" became one piece).
func stringRanges(_ ranges: [NSRange], in s: String) -> [Range<String.Index>] {
    let u = s.utf16
    var at = u.startIndex, offset = 0
    return ranges.map { r in
        let lo = u.index(at, offsetBy: r.location - offset)
        let hi = u.index(lo, offsetBy: r.length)
        at = hi
        offset = r.location + r.length
        return lo..<hi
    }
}

func isRustWhitespace(_ u: Unicode.Scalar) -> Bool { u.properties.isWhitespace }
func isRustNumeric(_ u: Unicode.Scalar) -> Bool {
    switch u.properties.generalCategory {
    case .decimalNumber, .letterNumber, .otherNumber: return true
    default: return false
    }
}
func isPunctuation(_ u: Unicode.Scalar) -> Bool {
    if u.isASCII { return "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".unicodeScalars.contains(u) }
    switch u.properties.generalCategory {
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
         .initialPunctuation, .finalPunctuation, .otherPunctuation: return true
    default: return false
    }
}

/// The regex GPT-2's ByteLevel pre-tokenizer uses when `use_regex` is true.
let gpt2SplitPattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#

func compileRegex(_ pattern: String, path: String) throws -> NSRegularExpression {
    do { return try NSRegularExpression(pattern: pattern, options: []) }
    catch { throw TokenizerError("\(path): regex does not compile: \(pattern)") }
}

func makePreTokenizer(_ obj: JSONObject) throws -> PreTokenizer {
    switch try obj.type() {
    case "ByteLevel":
        return try ByteLevelPreTokenizer(addPrefixSpace: obj.bool("add_prefix_space") ?? true,
                                         useRegex: obj.bool("use_regex") ?? true)
    case "Split":
        guard let p = try obj.object("pattern") else { throw TokenizerError("\(obj.path).pattern: missing") }
        return SplitPreTokenizer(pattern: try TextPattern(p),
                                 behavior: try SplitBehavior(obj.string("behavior"), path: obj.path),
                                 invert: obj.bool("invert") ?? false)
    case "Metaspace":
        return try MetaspacePreTokenizer(obj)
    case "Digits":
        return DigitsPreTokenizer(individual: obj.bool("individual_digits") ?? false)
    case "Whitespace":
        return RegexKeepPreTokenizer(re: try compileRegex(#"\w+|[^\w\s]+"#, path: obj.path))
    case "WhitespaceSplit":
        return FunctionPreTokenizer { splitPiece($0, matches: scalarMatches($0.text, isRustWhitespace), behavior: .removed) }
    case "Punctuation":
        let b = try SplitBehavior(obj.string("behavior") ?? "Isolated", path: obj.path)
        return FunctionPreTokenizer { splitPiece($0, matches: scalarMatches($0.text, isPunctuation), behavior: b) }
    case "BertPreTokenizer":
        return FunctionPreTokenizer { p in
            splitPiece(p, matches: scalarMatches(p.text, isRustWhitespace), behavior: .removed).flatMap {
                splitPiece($0, matches: scalarMatches($0.text, isPunctuation), behavior: .isolated)
            }
        }
    case "Sequence":
        return SequencePreTokenizer(items: try obj.objects("pretokenizers").map(makePreTokenizer))
    case let t: throw TokenizerError("\(obj.path): unsupported pre_tokenizer type \"\(t)\"")
    }
}

struct FunctionPreTokenizer: PreTokenizer {
    let f: (Piece) -> [Piece]
    func preTokenize(_ pieces: [Piece]) -> [Piece] { pieces.flatMap(f) }
}

struct SequencePreTokenizer: PreTokenizer {
    let items: [PreTokenizer]
    func preTokenize(_ pieces: [Piece]) -> [Piece] { items.reduce(pieces) { $1.preTokenize($0) } }
}

struct RegexKeepPreTokenizer: PreTokenizer {
    let re: NSRegularExpression
    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.flatMap { splitPiece($0, matches: regexMatches(re, $0.text), behavior: .removed, invert: true) }
    }
}

struct SplitPreTokenizer: PreTokenizer {
    let pattern: TextPattern
    let behavior: SplitBehavior
    let invert: Bool
    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.flatMap { p in
            let ns = p.text as NSString
            let m = stringRanges(pattern.matches(in: ns), in: p.text)
            return splitPiece(p, matches: m, behavior: behavior, invert: invert)
        }
    }
}

struct ByteLevelPreTokenizer: PreTokenizer {
    let addPrefixSpace: Bool
    let regex: NSRegularExpression?
    init(addPrefixSpace: Bool, useRegex: Bool) throws {
        self.addPrefixSpace = addPrefixSpace
        regex = useRegex ? try compileRegex(gpt2SplitPattern, path: "ByteLevel") : nil
    }
    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.flatMap { p -> [Piece] in
            var p = p
            if addPrefixSpace && !p.text.scalarsHavePrefix(" ") { p.text = " " + p.text }
            let parts = regex.map { splitPiece(p, matches: regexMatches($0, p.text), behavior: .isolated) } ?? (p.text.isEmpty ? [] : [p])
            return parts.map { Piece(text: ByteLevelTable.encode($0.text), atStart: $0.atStart) }
        }
    }
}

struct MetaspacePreTokenizer: PreTokenizer {
    enum Scheme { case always, first, never }
    let replacement: Unicode.Scalar
    let scheme: Scheme
    let split: Bool

    init(_ obj: JSONObject) throws {
        replacement = (obj.string("replacement") ?? "\u{2581}").unicodeScalars.first ?? "\u{2581}"
        scheme = try metaspaceScheme(obj)
        split = obj.bool("split") ?? true
    }

    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.flatMap { p -> [Piece] in
            let rep = String(replacement)
            var t = p.text.replacingOccurrences(of: " ", with: rep, options: .literal)
            switch scheme {
            case .always: if !t.scalarsHavePrefix(rep) { t = rep + t }
            case .first: if !t.scalarsHavePrefix(rep) && p.atStart { t = rep + t }
            case .never: break
            }
            let q = Piece(text: t, atStart: p.atStart)
            if !split { return t.isEmpty ? [] : [q] }
            return splitPiece(q, matches: scalarMatches(t) { $0 == replacement }, behavior: .mergedWithNext)
        }
    }
}

func metaspaceScheme(_ obj: JSONObject) throws -> MetaspacePreTokenizer.Scheme {
    if let s = obj.string("prepend_scheme") {
        switch s {
        case "always": return .always
        case "first": return .first
        case "never": return .never
        default: throw TokenizerError("\(obj.path).prepend_scheme: unsupported value \(s)")
        }
    }
    // Older files: add_prefix_space bool.
    return (obj.bool("add_prefix_space") ?? true) ? .always : .never
}

struct DigitsPreTokenizer: PreTokenizer {
    let individual: Bool
    func preTokenize(_ pieces: [Piece]) -> [Piece] {
        pieces.flatMap { splitPiece($0, matches: scalarMatches($0.text, isRustNumeric), behavior: individual ? .isolated : .contiguous) }
    }
}

extension String {
    /// Prefix test on Unicode scalars (Rust `starts_with` semantics, not grapheme clusters).
    func scalarsHavePrefix(_ p: String) -> Bool { unicodeScalars.starts(with: p.unicodeScalars) }
}
