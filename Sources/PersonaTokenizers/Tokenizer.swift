import Foundation

/// A text tokenizer: text <-> token ids, plus per-token views for display.
public protocol Tokenizer: AnyObject, Sendable {
    /// Number of ids (model vocabulary plus added tokens).
    var vocabSize: Int { get }
    var bosTokenId: Int? { get }
    /// Every id that ends generation (EOS, and EOT/EOM where the model defines them).
    var eosTokenIds: Set<Int> { get }
    /// Whether `encode(_:addSpecialTokens: true)` prepends BOS.
    var addBosToken: Bool { get }
    /// Encodes `text`; special/added tokens written in the text are matched before splitting.
    /// With `addSpecialTokens` the post-processor (BOS, ...) is applied.
    func encode(_ text: String, addSpecialTokens: Bool) -> [Int]
    /// Decodes ids to text the way Hugging Face `tokenizers` does; invalid UTF-8 becomes U+FFFD.
    func decode(_ ids: [Int], skipSpecialTokens: Bool) -> String
    /// Byte-exact piece of this token as it contributes to decoded text (for display).
    func tokenBytes(_ id: Int) -> [UInt8]
    /// Raw vocabulary entry.
    func tokenString(_ id: Int) -> String?
    func tokenId(_ token: String) -> Int?
    func isSpecial(_ id: Int) -> Bool
}

/// Error raised while loading a tokenizer; the message names the file or field at fault.
public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Display string for one token's bytes on their own: valid UTF-8 shown as text,
/// bytes that do not form a complete character shown as e.g. "<0xE2>". Never crashes.
public func displayString(forTokenBytes bytes: [UInt8]) -> String {
    var out = ""
    var i = 0
    while i < bytes.count {
        let n = utf8SequenceLength(bytes, at: i)
        if n > 0 {
            out += String(decoding: bytes[i..<(i + n)], as: UTF8.self)
            i += n
        } else {
            out += String(format: "<0x%02X>", bytes[i])
            i += 1
        }
    }
    return out
}

/// Length of the valid UTF-8 sequence starting at `i`, or 0 if the bytes there are invalid or incomplete.
func utf8SequenceLength(_ b: [UInt8], at i: Int) -> Int {
    let c = b[i]
    let n: Int
    var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
    switch c {
    case 0x00...0x7F: return 1
    case 0xC2...0xDF: n = 2
    case 0xE0: n = 3; lo = 0xA0
    case 0xE1...0xEC, 0xEE, 0xEF: n = 3
    case 0xED: n = 3; hi = 0x9F
    case 0xF0: n = 4; lo = 0x90
    case 0xF1...0xF3: n = 4
    case 0xF4: n = 4; hi = 0x8F
    default: return 0
    }
    guard i + n <= b.count else { return 0 }
    for k in 1..<n {
        let x = b[i + k]
        if k == 1 { if x < lo || x > hi { return 0 } } else if x < 0x80 || x > 0xBF { return 0 }
    }
    return n
}

/// Incremental decoding for streaming display: holds back incomplete UTF-8 sequences so
/// partial bytes never print as garbage. The concatenation of everything returned equals
/// `decode(allIds)` for tokenizers whose decoding is prefix-stable (all supported ones).
public struct StreamingDetokenizer: Sendable {
    private let tokenizer: any Tokenizer
    private let skipSpecialTokens: Bool
    private var ids: [Int] = []
    // Same scheme as text-generation-inference: decode a short window and emit the new suffix.
    private var prefixOffset = 0
    private var readOffset = 0

    /// `context`: ids already before the first appended one (e.g. the prompt's last few). Decoding starts with
    /// them so that what a tokenizer does at the start of a decode (SentencePiece drops the leading space of the
    /// first piece) does not happen to the first new token; none of their text is returned.
    public init(tokenizer: any Tokenizer, skipSpecialTokens: Bool = true, context: [Int] = []) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
        ids = Array(context.suffix(4))
        readOffset = ids.count
    }

    /// Adds one token; returns the newly completed text (may be "").
    public mutating func append(_ id: Int) -> String {
        ids.append(id)
        return emit(final: false)
    }

    /// Returns whatever is still held back (incomplete bytes appear as U+FFFD).
    public mutating func flush() -> String {
        emit(final: true)
    }

    private mutating func emit(final: Bool) -> String {
        let prefixText = tokenizer.decode(Array(ids[prefixOffset..<readOffset]), skipSpecialTokens: skipSpecialTokens)
        let newText = tokenizer.decode(Array(ids[prefixOffset...]), skipSpecialTokens: skipSpecialTokens)
        let p = Array(prefixText.utf8), n = Array(newText.utf8)
        guard n.count >= p.count, n.starts(with: p) else {
            // Decoding changed earlier text (should not happen); only resync at the end.
            return final ? resync(newText, after: prefixText) : ""
        }
        let delta = n[p.count...]
        if !final, delta.isEmpty || String(decoding: delta, as: UTF8.self).hasSuffix("\u{FFFD}") { return "" }
        prefixOffset = readOffset
        readOffset = ids.count
        return String(decoding: delta, as: UTF8.self)
    }

    private mutating func resync(_ newText: String, after prefixText: String) -> String {
        prefixOffset = ids.count
        readOffset = ids.count
        return String(newText.dropFirst(prefixText.count))
    }
}
