import Foundation

/// tokenizer.json `normalizer`: rewrites each piece of text between added tokens.
protocol Normalizer {
    func normalize(_ s: String) -> String
}

func makeNormalizer(_ obj: JSONObject) throws -> Normalizer {
    switch try obj.type() {
    case "NFC": return UnicodeNormalizer(form: .nfc)
    case "NFD": return UnicodeNormalizer(form: .nfd)
    case "NFKC": return UnicodeNormalizer(form: .nfkc)
    case "NFKD": return UnicodeNormalizer(form: .nfkd)
    case "Lowercase": return LowercaseNormalizer()
    case "Strip":
        return StripNormalizer(left: obj.bool("strip_left") ?? true, right: obj.bool("strip_right") ?? true)
    case "Prepend": return PrependNormalizer(prefix: try obj.requireString("prepend"))
    case "Replace":
        guard let p = try obj.object("pattern") else { throw TokenizerError("\(obj.path).pattern: missing") }
        return ReplaceNormalizer(pattern: try TextPattern(p), content: try obj.requireString("content"))
    case "Sequence":
        return SequenceNormalizer(items: try obj.objects("normalizers").map(makeNormalizer))
    case "BertNormalizer":
        return BertNormalizer(cleanText: obj.bool("clean_text") ?? true,
                              lowercase: obj.bool("lowercase") ?? true,
                              stripAccents: obj.bool("strip_accents"))
    case "StripAccents": return StripAccentsNormalizer()
    case let t: throw TokenizerError("\(obj.path): unsupported normalizer type \"\(t)\"")
    }
}

struct UnicodeNormalizer: Normalizer {
    enum Form { case nfc, nfd, nfkc, nfkd }
    let form: Form
    func normalize(_ s: String) -> String {
        switch form {
        case .nfc: return s.precomposedStringWithCanonicalMapping
        case .nfd: return s.decomposedStringWithCanonicalMapping
        case .nfkc: return s.precomposedStringWithCompatibilityMapping
        case .nfkd: return s.decomposedStringWithCompatibilityMapping
        }
    }
}

struct LowercaseNormalizer: Normalizer {
    func normalize(_ s: String) -> String { s.lowercased() }
}

struct StripNormalizer: Normalizer {
    let left: Bool, right: Bool
    func normalize(_ s: String) -> String {
        let u = s.unicodeScalars
        var lo = u.startIndex, hi = u.endIndex
        if left { while lo < hi, u[lo].properties.isWhitespace { lo = u.index(after: lo) } }
        if right { while hi > lo, u[u.index(before: hi)].properties.isWhitespace { hi = u.index(before: hi) } }
        return String(u[lo..<hi])
    }
}

struct PrependNormalizer: Normalizer {
    let prefix: String
    // HF prepends only to non-empty text.
    func normalize(_ s: String) -> String { s.isEmpty ? s : prefix + s }
}

struct ReplaceNormalizer: Normalizer {
    let pattern: TextPattern
    let content: String
    func normalize(_ s: String) -> String { pattern.replaceAll(in: s, with: content) }
}

struct SequenceNormalizer: Normalizer {
    let items: [Normalizer]
    func normalize(_ s: String) -> String { items.reduce(s) { $1.normalize($0) } }
}

struct StripAccentsNormalizer: Normalizer {
    // Removes combining marks (HF applies it after NFD).
    func normalize(_ s: String) -> String {
        var v = String.UnicodeScalarView()
        for u in s.unicodeScalars where u.properties.generalCategory != .nonspacingMark { v.append(u) }
        return String(v)
    }
}

struct BertNormalizer: Normalizer {
    let cleanText: Bool, lowercase: Bool, stripAccents: Bool?
    func normalize(_ s: String) -> String {
        var v = String.UnicodeScalarView()
        for u in s.unicodeScalars {
            if cleanText {
                if u.value == 0 || u.value == 0xFFFD || isControl(u) { continue }
                if u.properties.isWhitespace { v.append(" "); continue }
            }
            if isCJK(u) { v.append(" "); v.append(u); v.append(" ") } else { v.append(u) }
        }
        var out = String(v)
        if stripAccents ?? lowercase { out = StripAccentsNormalizer().normalize(out.decomposedStringWithCanonicalMapping) }
        if lowercase { out = out.lowercased() }
        return out
    }
    private func isControl(_ u: Unicode.Scalar) -> Bool {
        if u == "\t" || u == "\n" || u == "\r" { return false }
        switch u.properties.generalCategory {
        case .control, .format, .privateUse, .surrogate, .unassigned: return true
        default: return false
        }
    }
    private func isCJK(_ u: Unicode.Scalar) -> Bool {
        let c = u.value
        return (0x4E00...0x9FFF).contains(c) || (0x3400...0x4DBF).contains(c) || (0x20000...0x2A6DF).contains(c)
            || (0x2A700...0x2B73F).contains(c) || (0x2B740...0x2B81F).contains(c) || (0x2B820...0x2CEAF).contains(c)
            || (0xF900...0xFAFF).contains(c) || (0x2F800...0x2FA1F).contains(c)
    }
}
