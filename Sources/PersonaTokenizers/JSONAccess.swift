import Foundation

/// Typed reads from a JSON object; `path` names the field in errors.
struct JSONObject {
    let value: JSONValue
    let path: String

    init(_ v: JSONValue?, path: String) throws {
        guard let v, v.members != nil else { throw TokenizerError("\(path): expected a JSON object") }
        value = v
        self.path = path
    }

    subscript(key: String) -> JSONValue? { value[key] }
    var members: [(String, JSONValue)] { value.members ?? [] }
    func has(_ key: String) -> Bool { value[key].map { !$0.isNull } ?? false }
    func string(_ key: String) -> String? { value[key]?.string }
    func int(_ key: String) -> Int? { value[key]?.int }
    func double(_ key: String) -> Double? { value[key]?.double }
    func bool(_ key: String) -> Bool? { value[key]?.bool }
    func array(_ key: String) -> [JSONValue]? { value[key]?.array }
    func object(_ key: String) throws -> JSONObject? {
        guard has(key) else { return nil }
        return try JSONObject(value[key], path: "\(path).\(key)")
    }
    func objects(_ key: String) throws -> [JSONObject] {
        guard let a = array(key) else { throw TokenizerError("\(path).\(key): expected an array") }
        return try a.enumerated().map { try JSONObject($0.element, path: "\(path).\(key)[\($0.offset)]") }
    }
    func requireString(_ key: String) throws -> String {
        guard let s = string(key) else { throw TokenizerError("\(path).\(key): expected a string") }
        return s
    }
    func type() throws -> String { try requireString("type") }
}

/// A pattern field as HF writes it: {"String": "..."} or {"Regex": "..."}.
enum TextPattern {
    case literal(String)
    case regex(NSRegularExpression)

    init(_ obj: JSONObject) throws {
        if let s = obj.string("String") {
            self = .literal(s)
        } else if let r = obj.string("Regex") {
            do { self = .regex(try NSRegularExpression(pattern: r, options: [])) }
            catch { throw TokenizerError("\(obj.path): regex does not compile: \(r)") }
        } else {
            throw TokenizerError("\(obj.path): expected {\"String\": ...} or {\"Regex\": ...}")
        }
    }

    /// Match ranges (non-overlapping, left to right) as UTF-16 NSRanges over `ns`.
    func matches(in ns: NSString) -> [NSRange] {
        switch self {
        case .literal(let s):
            guard !s.isEmpty else { return [] }
            var out: [NSRange] = []
            var start = 0
            while start < ns.length {
                let r = ns.range(of: s, options: .literal, range: NSRange(location: start, length: ns.length - start))
                if r.location == NSNotFound { break }
                out.append(r)
                start = r.location + max(r.length, 1)
            }
            return out
        case .regex(let re):
            return re.matches(in: ns as String, options: [], range: NSRange(location: 0, length: ns.length)).map(\.range)
        }
    }

    func replaceAll(in s: String, with content: String) -> String {
        switch self {
        case .literal(let p):
            return p.isEmpty ? s : s.replacingOccurrences(of: p, with: content, options: .literal)
        case .regex:
            let ns = s as NSString
            var out = ""
            var last = 0
            for r in matches(in: ns) {
                out += ns.substring(with: NSRange(location: last, length: r.location - last))
                out += content
                last = r.location + r.length
            }
            out += ns.substring(from: last)
            return out
        }
    }
}
