/// GPT-2's reversible byte <-> printable-character table used by ByteLevel pre-tokenizers and decoders.
enum ByteLevelTable {
    static let byteToChar: [Character] = {
        var bs: [Int] = Array(33...126) + Array(161...172) + Array(174...255)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) {
            bs.append(b)
            cs.append(256 + n)
            n += 1
        }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(bs, cs) { table[b] = Character(Unicode.Scalar(UInt32(c))!) }
        return table
    }()

    static let charToByte: [Character: UInt8] = {
        var m: [Character: UInt8] = [:]
        for (b, c) in byteToChar.enumerated() { m[c] = UInt8(b) }
        return m
    }()

    static func encode(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 { out.append(byteToChar[Int(b)]) }
        return out
    }

    /// Bytes for a byte-level token; nil if some character is outside the table (e.g. an added token with spaces).
    static func decode(_ s: String) -> [UInt8]? {
        var out: [UInt8] = []
        for ch in s.unicodeScalars {
            guard let b = charToByte[Character(ch)] else { return nil }
            out.append(b)
        }
        return out
    }
}
