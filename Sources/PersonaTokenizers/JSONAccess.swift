import Foundation

/// Typed reads from `JSONSerialization` output; `path` names the field in errors.
struct JSONObject {
    let dict: [String: Any]
    let path: String

    init(_ any: Any?, path: String) throws {
        guard let d = any as? [String: Any] else { throw TokenizerError("\(path): expected a JSON object") }
        dict = d
        self.path = path
    }

    func has(_ key: String) -> Bool { dict[key] != nil && !(dict[key] is NSNull) }
    func string(_ key: String) -> String? { dict[key] as? String }
    func int(_ key: String) -> Int? { (dict[key] as? NSNumber)?.intValue }
    func double(_ key: String) -> Double? { (dict[key] as? NSNumber)?.doubleValue }
    func bool(_ key: String) -> Bool? { (dict[key] as? NSNumber)?.boolValue }
    func array(_ key: String) -> [Any]? { dict[key] as? [Any] }
    func object(_ key: String) throws -> JSONObject? {
        guard has(key) else { return nil }
        return try JSONObject(dict[key], path: "\(path).\(key)")
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
        case .regex(let re):
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
