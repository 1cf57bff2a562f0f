import Foundation

/// A plain data value handed to a chat template (the JSON data model plus ints vs. floats),
/// as transformers passes Python dicts/lists/str/int/float/bool/None to jinja2.
public enum JinjaValue: Sendable, Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JinjaValue])
    /// Insertion-ordered mapping (Python dicts keep insertion order; `tojson` and loops depend on it).
    case object(JinjaObject)
}

/// Insertion-ordered string-keyed mapping. Setting an existing key keeps its position.
public struct JinjaObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var entries: [(key: String, value: JinjaValue)]

    public init() { entries = [] }
    public init(_ entries: [(String, JinjaValue)]) {
        self.entries = []
        for (k, v) in entries { self[k] = v }
    }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) { self.init(elements) }

    public subscript(key: String) -> JinjaValue? {
        get { entries.first(where: { $0.key == key })?.value }
        set {
            if let i = entries.firstIndex(where: { $0.key == key }) {
                if let v = newValue { entries[i].value = v } else { entries.remove(at: i) }
            } else if let v = newValue {
                entries.append((key, v))
            }
        }
    }

    /// Python dict equality: same keys and values, order ignored.
    public static func == (a: JinjaObject, b: JinjaObject) -> Bool {
        guard a.entries.count == b.entries.count else { return false }
        for (k, v) in a.entries { guard b[k] == v else { return false } }
        return true
    }
}

extension JinjaValue: ExpressibleByNilLiteral, ExpressibleByBooleanLiteral, ExpressibleByIntegerLiteral,
    ExpressibleByFloatLiteral, ExpressibleByStringLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(nilLiteral: ()) { self = .none }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JinjaValue)...) { self = .object(JinjaObject(elements)) }
}

extension JinjaValue {
    /// Parses JSON keeping object key order (Foundation's JSONSerialization loses it).
    /// Integers without fraction/exponent become `.int`, other numbers `.double`, as Python's json does.
    public init(json: String) throws {
        var p = JSONScanner(Array(json.unicodeScalars))
        p.skipWS()
        let v = try p.value(depth: 0)
        p.skipWS()
        guard p.i == p.s.count else { throw p.fail("trailing characters after JSON value") }
        self = v
    }

    /// Compact JSON the way Python's `json.dumps(x, ensure_ascii=False)` writes it.
    public var jsonString: String { RValue(self).toJSON(indent: nil, itemSep: ", ", keySep: ": ", sortKeys: false, ensureASCII: false) ?? "null" }
}

/// Error from `JinjaValue(json:)`; names the offset of the problem.
public struct JinjaJSONError: Error, CustomStringConvertible {
    public let offset: Int
    public let message: String
    public var description: String { "invalid JSON at offset \(offset): \(message)" }
}

private struct JSONScanner {
    let s: [Unicode.Scalar]
    var i = 0
    init(_ s: [Unicode.Scalar]) { self.s = s }

    func fail(_ m: String) -> JinjaJSONError { JinjaJSONError(offset: i, message: m) }
    mutating func skipWS() { while i < s.count, s[i] == " " || s[i] == "\n" || s[i] == "\t" || s[i] == "\r" { i += 1 } }
    mutating func lit(_ w: String, _ v: JinjaValue) throws -> JinjaValue {
        let ws = Array(w.unicodeScalars)
        guard i + ws.count <= s.count, Array(s[i..<i + ws.count]) == ws else { throw fail("unexpected character") }
        i += ws.count
        return v
    }

    mutating func value(depth: Int) throws -> JinjaValue {
        guard depth < 512 else { throw fail("nesting too deep") }
        guard i < s.count else { throw fail("unexpected end of input") }
        switch s[i] {
        case "{":
            i += 1
            var obj = JinjaObject()
            skipWS()
            if i < s.count, s[i] == "}" { i += 1; return .object(obj) }
            while true {
                skipWS()
                guard i < s.count, s[i] == "\"" else { throw fail("expected string key") }
                let k = try string()
                skipWS()
                guard i < s.count, s[i] == ":" else { throw fail("expected ':'") }
                i += 1
                skipWS()
                obj[k] = try value(depth: depth + 1)
                skipWS()
                guard i < s.count else { throw fail("unexpected end of input") }
                if s[i] == "," { i += 1; continue }
                if s[i] == "}" { i += 1; return .object(obj) }
                throw fail("expected ',' or '}'")
            }
        case "[":
            i += 1
            var arr: [JinjaValue] = []
            skipWS()
            if i < s.count, s[i] == "]" { i += 1; return .array(arr) }
            while true {
                skipWS()
                arr.append(try value(depth: depth + 1))
                skipWS()
                guard i < s.count else { throw fail("unexpected end of input") }
                if s[i] == "," { i += 1; continue }
                if s[i] == "]" { i += 1; return .array(arr) }
                throw fail("expected ',' or ']'")
            }
        case "\"": return .string(try string())
        case "t": return try lit("true", .bool(true))
        case "f": return try lit("false", .bool(false))
        case "n": return try lit("null", .none)
        default: return try number()
        }
    }

    mutating func number() throws -> JinjaValue {
        let start = i
        var isFloat = false
        if i < s.count, s[i] == "-" { i += 1 }
        while i < s.count, let c = s.at(i), "0123456789.eE+-".unicodeScalars.contains(c) {
            if c == "." || c == "e" || c == "E" { isFloat = true }
            i += 1
        }
        let text = String(String.UnicodeScalarView(s[start..<i]))
        if !isFloat, let v = Int(text) { return .int(v) }
        if let d = Double(text), !text.isEmpty, text != "-" { return .double(d) }
        i = start
        throw fail("invalid number")
    }

    mutating func hex4() throws -> UInt32 {
        guard i + 4 <= s.count else { throw fail("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard let d = UInt32(String(s[i]), radix: 16) else {
                throw fail("bad \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }

    mutating func string() throws -> String {
        i += 1  // opening quote
        var out = String.UnicodeScalarView()
        while true {
            guard i < s.count else { throw fail("unterminated string") }
            let c = s[i]
            i += 1
            if c == "\"" { return String(out) }
            if c != "\\" { out.append(c); continue }
            guard i < s.count else { throw fail("unterminated escape") }
            let e = s[i]
            i += 1
            switch e {
            case "\"": out.append("\"")
            case "\\": out.append("\\")
            case "/": out.append("/")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "u":
                var v = try hex4()
                if v >= 0xD800, v < 0xDC00, i + 1 < s.count, s[i] == "\\", s[i + 1] == "u" {
                    let save = i
                    i += 2
                    let lo = try hex4()
                    if lo >= 0xDC00, lo < 0xE000 { v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00) } else { i = save }
                }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            default: throw fail("bad escape '\\\(e)'")
            }
        }
    }
}

fileprivate extension Array where Element == Unicode.Scalar {
    @inline(__always) func at(_ i: Int) -> Unicode.Scalar? { i >= 0 && i < count ? self[i] : nil }
}
