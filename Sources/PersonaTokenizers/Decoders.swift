import Foundation

/// tokenizer.json `decoder`, as HF's `decode_chain`: token strings in, strings out (then joined).
protocol TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String]
    /// Byte-exact contribution of one token for display, ignoring position-dependent
    /// steps (Strip, first-token prefix removal); steps that do not apply return the bytes unchanged.
    func pieceBytes(_ bytes: [UInt8]) -> [UInt8]
}

func makeDecoder(_ obj: JSONObject) throws -> TokenDecoder {
    switch try obj.type() {
    case "ByteLevel": return ByteLevelDecoder()
    case "Metaspace":
        let r = (obj.string("replacement") ?? "\u{2581}").unicodeScalars.first ?? "\u{2581}"
        return MetaspaceDecoder(replacement: r, prependScheme: try metaspaceScheme(obj))
    case "ByteFallback": return ByteFallbackDecoder()
    case "Fuse": return FuseDecoder()
    case "Strip":
        let c = (obj.string("content") ?? " ").unicodeScalars.first ?? " "
        return StripDecoder(content: c, start: obj.int("start") ?? 0, stop: obj.int("stop") ?? 0)
    case "Replace":
        guard let p = try obj.object("pattern") else { throw TokenizerError("\(obj.path).pattern: missing") }
        return ReplaceDecoder(pattern: try TextPattern(p), content: try obj.requireString("content"))
    case "WordPiece":
        return WordPieceDecoder(prefix: obj.string("prefix") ?? "##", cleanup: obj.bool("cleanup") ?? true)
    case "BPEDecoder":
        return BPESuffixDecoder(suffix: obj.string("suffix") ?? "</w>")
    case "Sequence":
        return SequenceDecoder(items: try obj.objects("decoders").map(makeDecoder))
    case let t: throw TokenizerError("\(obj.path): unsupported decoder type \"\(t)\"")
    }
}

private func bytesString(_ b: [UInt8]) -> String { String(decoding: b, as: UTF8.self) }

struct ByteLevelDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var bytes: [UInt8] = []
        for t in tokens { bytes += ByteLevelTable.decode(t) ?? Array(t.utf8) }
        return [bytesString(bytes)]
    }
    func pieceBytes(_ bytes: [UInt8]) -> [UInt8] {
        ByteLevelTable.decode(bytesString(bytes)) ?? bytes
    }
}

struct MetaspaceDecoder: TokenDecoder {
    let replacement: Unicode.Scalar
    let prependScheme: MetaspacePreTokenizer.Scheme
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            var v = String.UnicodeScalarView()
            for u in t.unicodeScalars {
                if u == replacement {
                    // HF drops every replacement char of the first token when a prefix was prepended.
                    if i == 0 && prependScheme != .never { continue }
                    v.append(" ")
                } else { v.append(u) }
            }
            return String(v)
        }
    }
    func pieceBytes(_ bytes: [UInt8]) -> [UInt8] {
        Array(bytesString(bytes).replacingOccurrences(of: String(replacement), with: " ", options: .literal).utf8)
    }
}

/// Parses "<0xNN>" byte tokens.
func parseByteToken(_ t: String) -> UInt8? {
    let u = Array(t.utf8)
    guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"), u[5] == UInt8(ascii: ">") else { return nil }
    return UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16)
}

struct ByteFallbackDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] {
        var out: [String] = []
        var pending: [UInt8] = []
        func flush() {
            guard !pending.isEmpty else { return }
            if let s = String(validatingUTF8CString: pending) { out.append(s) }
            else { out.append(String(repeating: "\u{FFFD}", count: pending.count)) }
            pending = []
        }
        for t in tokens {
            if let b = parseByteToken(t) { pending.append(b) } else { flush(); out.append(t) }
        }
        flush()
        return out
    }
    func pieceBytes(_ bytes: [UInt8]) -> [UInt8] {
        parseByteToken(bytesString(bytes)).map { [$0] } ?? bytes
    }
}

extension String {
    /// Strict UTF-8 decoding: nil if `bytes` is not entirely valid UTF-8.
    init?(validatingUTF8CString bytes: [UInt8]) {
        var i = 0
        while i < bytes.count {
            let n = utf8SequenceLength(bytes, at: i)
            if n == 0 { return nil }
            i += n
        }
        self = String(decoding: bytes, as: UTF8.self)
    }
}

struct FuseDecoder: TokenDecoder {
    func decodeChain(_ tokens: [String]) -> [String] { [tokens.joined()] }
    func pieceBytes(_ bytes: [UInt8]) -> [UInt8] { bytes }
}

struct StripDecoder: TokenDecoder {
    let content: Unicode.Scalar
    let start: Int, stop: Int
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.map { t in
            var u = Array(t.unicodeScalars)
            var a = 0
            while a < start, a < u.count, u[a] == content { a += 1 }
            u.removeFirst(a)
            var b = 0
            while b < stop, b < u.count, u[u.count - 1 - b] == content { b += 1 }
            u.removeLast(b)
            return String(String.UnicodeScalarView(u))
        }
    }
    func pieceBytes(_ bytes: [UInt8]) -> [UInt8] { bytes }
}

struct ReplaceDecoder: TokenDecoder {
    let pattern: TextPattern
    let content: String
    func decodeChain(_ tokens: [String]) -> [String] { tokens.map { pattern.replaceAll(in: $0, with: content) } }
    func pieceBytes(_ bytes: [UInt8]) -> [UInt8] { Array(pattern.replaceAll(in: bytesString(bytes), with: content).utf8) }
}

struct WordPieceDecoder: TokenDecoder {
    let prefix: String
    let cleanup: Bool
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            var s = t
            if i != 0 {
                if s.scalarsHavePrefix(prefix) { s = String(s.unicodeScalars.dropFirst(prefix.unicodeScalars.count)) } else { s = " " + s }
            }
            if cleanup {
                for (a, b) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                               (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
                    s = s.replacingOccurrences(of: a, with: b, options: .literal)
                }
            }
            return s
        }
    }
    func pieceBytes(_ bytes: [UInt8]) -> [UInt8] {
        let s = bytesString(bytes)
        return s.scalarsHavePrefix(prefix) ? Array(String(s.unicodeScalars.dropFirst(prefix.unicodeScalars.count)).utf8) : Array((" " + s).utf8)
    }
}

struct BPESuffixDecoder: TokenDecoder {
    let suffix: String
    func decodeChain(_ tokens: [String]) -> [String] {
        tokens.enumerated().map { i, t in
            t.replacingOccurrences(of: suffix, with: i == tokens.count - 1 ? "" : " ", options: .literal)
        }
    }
    func pieceBytes(_ bytes: [UInt8]) -> [UInt8] {
        Array(bytesString(bytes).replacingOccurrences(of: suffix, with: " ", options: .literal).utf8)
    }
}

struct SequenceDecoder: TokenDecoder {
    let items: [TokenDecoder]
    func decodeChain(_ tokens: [String]) -> [String] { items.reduce(tokens) { $1.decodeChain($0) } }
    func pieceBytes(_ bytes: [UInt8]) -> [UInt8] { items.reduce(bytes) { $1.pieceBytes($0) } }
}
