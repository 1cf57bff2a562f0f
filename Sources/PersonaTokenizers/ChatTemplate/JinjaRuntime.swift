import Foundation

/// Mutable attribute bag created by `namespace(...)`; reference semantics like jinja2's Namespace.
final class JNamespace {
    var attrs: [(String, RValue)]
    init(_ attrs: [(String, RValue)]) { self.attrs = attrs }
    subscript(_ k: String) -> RValue? {
        get { attrs.first(where: { $0.0 == k })?.1 }
        set {
            if let i = attrs.firstIndex(where: { $0.0 == k }) { if let v = newValue { attrs[i].1 = v } }
            else if let v = newValue { attrs.append((k, v)) }
        }
    }
}

/// The `loop` variable of one for-loop iteration; attributes are computed on access (cheap per iteration).
final class JLoopInfo {
    let items: [RValue]
    let index0: Int
    init(items: [RValue], index0: Int) {
        self.items = items
        self.index0 = index0
    }
    func attr(_ name: String) -> RValue? {
        let n = items.count, i = index0
        switch name {
        case "index": return .int(i + 1)
        case "index0": return .int(i)
        case "revindex": return .int(n - i)
        case "revindex0": return .int(n - i - 1)
        case "first": return .bool(i == 0)
        case "last": return .bool(i == n - 1)
        case "length": return .int(n)
        case "depth": return .int(1)
        case "depth0": return .int(0)
        case "previtem": return i > 0 ? items[i - 1] : .undefined("there is no previous item")
        case "nextitem": return i + 1 < n ? items[i + 1] : .undefined("there is no next item")
        case "cycle":
            return .callable(JCallable("cycle") { interp, args, _ in
                guard !args.isEmpty else { throw interp.fail(.type, "no items for cycling given") }
                return args[i % args.count]
            })
        default: return nil
        }
    }
}

/// A callable: global function, bound method, macro or loop helper.
final class JCallable {
    let name: String
    let fn: (JinjaInterpreter, [RValue], [(String, RValue)]) throws -> RValue
    init(_ name: String, _ fn: @escaping (JinjaInterpreter, [RValue], [(String, RValue)]) throws -> RValue) {
        self.name = name
        self.fn = fn
    }
}

/// Insertion-ordered dict with arbitrary hashable-ish keys (string keys in practice).
struct JDict {
    var entries: [(RValue, RValue)] = []
    func index(of k: RValue) -> Int? { entries.firstIndex(where: { pyEquals($0.0, k) }) }
    subscript(_ k: RValue) -> RValue? {
        get { index(of: k).map { entries[$0].1 } }
        set {
            if let i = index(of: k) { if let v = newValue { entries[i].1 = v } else { entries.remove(at: i) } }
            else if let v = newValue { entries.append((k, v)) }
        }
    }
}

/// Runtime value: Python objects as jinja2 sees them.
enum RValue {
    /// jinja2 Undefined; the string is the message used when it is misused.
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([RValue])
    case tuple([RValue])
    case dict(JDict)
    case namespace(JNamespace)
    case loop(JLoopInfo)
    case callable(JCallable)

    init(_ j: JinjaValue) {
        switch j {
        case .none: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(i)
        case .double(let d): self = .double(d)
        case .string(let s): self = .string(s)
        case .array(let a): self = .list(a.map(RValue.init))
        case .object(let o): self = .dict(JDict(entries: o.entries.map { (.string($0.key), RValue($0.value)) }))
        }
    }

    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .tuple: return "tuple"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .loop: return "LoopContext"
        case .callable: return "function"
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let a), .tuple(let a): return !a.isEmpty
        case .dict(let d): return !d.entries.isEmpty
        case .namespace, .loop, .callable: return true
        }
    }
}

// MARK: Python equality and ordering

/// Values nested deeper than this (only buildable by hostile templates) are not compared/printed recursively.
let jinjaMaxValueDepth = 200

func pyEquals(_ a: RValue, _ b: RValue, depth: Int = 0) -> Bool {
    if depth > jinjaMaxValueDepth { return false }
    switch (a, b) {
    case (.undefined, .undefined), (.none, .none): return true
    case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
    case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
        return x.count == y.count && zip(x, y).allSatisfy { pyEquals($0, $1, depth: depth + 1) }
    case (.dict(let x), .dict(let y)):
        guard x.entries.count == y.entries.count else { return false }
        for (k, v) in x.entries { guard let w = y[k], pyEquals(v, w, depth: depth + 1) else { return false } }
        return true
    case (.namespace(let x), .namespace(let y)): return x === y
    case (.loop(let x), .loop(let y)): return x === y
    case (.callable(let x), .callable(let y)): return x === y
    default:
        if let x = pyNumeric(a), let y = pyNumeric(b) {
            switch (x, y) {
            case (.int(let p), .int(let q)): return p == q
            default: return pyAsDouble(x) == pyAsDouble(y)
            }
        }
        return false
    }
}

/// bool is an int subclass in Python.
func pyNumeric(_ v: RValue) -> RValue? {
    switch v {
    case .bool(let b): return .int(b ? 1 : 0)
    case .int, .double: return v
    default: return nil
    }
}

func pyAsDouble(_ v: RValue) -> Double {
    switch v {
    case .int(let i): return Double(i)
    case .double(let d): return d
    case .bool(let b): return b ? 1 : 0
    default: return .nan
    }
}

/// Python `<` ordering; nil when the types are not orderable.
func pyCompare(_ a: RValue, _ b: RValue, depth: Int = 0) -> Int? {
    if depth > jinjaMaxValueDepth { return nil }
    if let x = pyNumeric(a), let y = pyNumeric(b) {
        if case .int(let p) = x, case .int(let q) = y { return p < q ? -1 : (p > q ? 1 : 0) }
        let p = pyAsDouble(x), q = pyAsDouble(y)
        return p < q ? -1 : (p > q ? 1 : 0)
    }
    switch (a, b) {
    case (.string(let x), .string(let y)):
        // Python compares code points.
        var ix = x.unicodeScalars.makeIterator(), iy = y.unicodeScalars.makeIterator()
        while true {
            switch (ix.next(), iy.next()) {
            case (nil, nil): return 0
            case (nil, _): return -1
            case (_, nil): return 1
            case (let p?, let q?): if p != q { return p.value < q.value ? -1 : 1 }
            }
        }
    case (.list(let x), .list(let y)), (.tuple(let x), .tuple(let y)):
        for (p, q) in zip(x, y) where !pyEquals(p, q, depth: depth + 1) { return pyCompare(p, q, depth: depth + 1) }
        return x.count < y.count ? -1 : (x.count > y.count ? 1 : 0)
    default: return nil
    }
}

// MARK: Python str() / repr()

func pyStr(_ v: RValue) -> String {
    switch v {
    case .undefined: return ""
    case .string(let s): return s
    default: return pyRepr(v)
    }
}

func pyRepr(_ v: RValue, depth: Int = 0) -> String {
    if depth > jinjaMaxValueDepth { return "..." }
    let r = { (x: RValue) in pyRepr(x, depth: depth + 1) }
    switch v {
    case .undefined: return "Undefined"
    case .none: return "None"
    case .bool(let b): return b ? "True" : "False"
    case .int(let i): return String(i)
    case .double(let d): return pyFloatRepr(d)
    case .string(let s): return pyStringRepr(s)
    case .list(let a): return "[" + a.map(r).joined(separator: ", ") + "]"
    case .tuple(let a): return a.count == 1 ? "(" + r(a[0]) + ",)" : "(" + a.map(r).joined(separator: ", ") + ")"
    case .dict(let d): return "{" + d.entries.map { r($0.0) + ": " + r($0.1) }.joined(separator: ", ") + "}"
    case .namespace(let n): return "<Namespace " + n.attrs.map { "\($0.0)=" + r($0.1) }.joined(separator: ", ") + ">"
    case .loop(let l): return "<LoopContext \(l.index0 + 1)/\(l.items.count)>"
    case .callable(let c): return "<function \(c.name)>"
    }
}

func pyStringRepr(_ s: String) -> String {
    let hasSingle = s.unicodeScalars.contains("'"), hasDouble = s.unicodeScalars.contains("\"")
    let q: Unicode.Scalar = hasSingle && !hasDouble ? "\"" : "'"
    var out = String.UnicodeScalarView()
    out.append(q)
    for c in s.unicodeScalars {
        switch c {
        case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
        case "\n": out.append(contentsOf: "\\n".unicodeScalars)
        case "\r": out.append(contentsOf: "\\r".unicodeScalars)
        case "\t": out.append(contentsOf: "\\t".unicodeScalars)
        default:
            if c == q { out.append("\\"); out.append(c) }
            else if c.value < 0x20 || c.value == 0x7F { out.append(contentsOf: String(format: "\\x%02x", c.value).unicodeScalars) }
            else if !isPyPrintable(c) {
                let f = c.value <= 0xFF ? String(format: "\\x%02x", c.value) : (c.value <= 0xFFFF ? String(format: "\\u%04x", c.value) : String(format: "\\U%08x", c.value))
                out.append(contentsOf: f.unicodeScalars)
            } else { out.append(c) }
        }
    }
    out.append(q)
    return String(out)
}

/// Approximation of Python's str.isprintable for repr (control, format, separator and unassigned are not printable).
func isPyPrintable(_ c: Unicode.Scalar) -> Bool {
    if c == " " { return true }
    switch c.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator, .spaceSeparator: return false
    default: return true
    }
}

/// Python float repr: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16, else scientific.
func pyFloatRepr(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    if d == 0 { return d.sign == .minus ? "-0.0" : "0.0" }
    // Swift's description is also shortest round-trip; extract digits and exponent from it.
    var desc = "\(d.magnitude)"
    var exp10 = 0
    if let e = desc.firstIndex(where: { $0 == "e" || $0 == "E" }) {
        exp10 = Int(desc[desc.index(after: e)...]) ?? 0
        desc = String(desc[..<e])
    }
    var intPart = desc, frac = ""
    if let dot = desc.firstIndex(of: ".") {
        intPart = String(desc[..<dot])
        frac = String(desc[desc.index(after: dot)...])
    }
    var digits = intPart + frac
    var point = intPart.count + exp10  // decimal point position relative to digits start
    while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); point -= 1 }
    while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
    let sci = point - 1  // exponent in d.ddd form
    var out: String
    if sci >= 16 || sci < -4 {
        var m = String(digits.prefix(1))
        if digits.count > 1 { m += "." + digits.dropFirst() }
        out = m + "e" + (sci < 0 ? "-" : "+") + (abs(sci) < 10 ? "0" : "") + String(abs(sci))
    } else if point <= 0 {
        out = "0." + String(repeating: "0", count: -point) + digits
    } else if point >= digits.count {
        out = digits + String(repeating: "0", count: point - digits.count) + ".0"
    } else {
        let idx = digits.index(digits.startIndex, offsetBy: point)
        out = digits[..<idx] + "." + digits[idx...]
    }
    return d < 0 ? "-" + out : out
}

// MARK: JSON (Python json.dumps)

extension RValue {
    /// Returns nil if the value holds something JSON cannot encode (Undefined, functions, ...).
    func toJSON(indent: String?, itemSep: String, keySep: String, sortKeys: Bool, ensureASCII: Bool, level: Int = 0) -> String? {
        if level > jinjaMaxValueDepth { return nil }
        switch self {
        case .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d):
            if d.isNaN { return "NaN" }
            if d.isInfinite { return d < 0 ? "-Infinity" : "Infinity" }
            return pyFloatRepr(d)
        case .string(let s): return pyJSONQuote(s, ensureASCII: ensureASCII)
        case .list(let a), .tuple(let a):
            if a.isEmpty { return "[]" }
            var parts: [String] = []
            for x in a {
                guard let j = x.toJSON(indent: indent, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys, ensureASCII: ensureASCII, level: level + 1) else { return nil }
                parts.append(j)
            }
            return wrap("[", "]", parts, indent: indent, itemSep: itemSep, level: level)
        case .dict(let d):
            if d.entries.isEmpty { return "{}" }
            var entries: [(String, RValue)] = []
            for (k, v) in d.entries {
                let ks: String
                switch k {
                case .string(let s): ks = s
                case .int(let i): ks = String(i)
                case .double(let x): ks = pyFloatRepr(x)
                case .bool(let b): ks = b ? "true" : "false"
                case .none: ks = "null"
                default: return nil
                }
                entries.append((ks, v))
            }
            if sortKeys {
                entries.sort { pyCompare(.string($0.0), .string($1.0)) ?? 0 < 0 }
            }
            var parts: [String] = []
            for (k, v) in entries {
                guard let j = v.toJSON(indent: indent, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys, ensureASCII: ensureASCII, level: level + 1) else { return nil }
                parts.append(pyJSONQuote(k, ensureASCII: ensureASCII) + keySep + j)
            }
            return wrap("{", "}", parts, indent: indent, itemSep: itemSep, level: level)
        case .undefined, .namespace, .loop, .callable: return nil
        }
    }

    private func wrap(_ open: String, _ close: String, _ parts: [String], indent: String?, itemSep: String, level: Int) -> String {
        guard let ind = indent else { return open + parts.joined(separator: itemSep) + close }
        let inner = "\n" + String(repeating: ind, count: level + 1)
        let outer = "\n" + String(repeating: ind, count: level)
        return open + inner + parts.joined(separator: itemSep + inner) + outer + close
    }
}

func pyJSONQuote(_ s: String, ensureASCII: Bool) -> String {
    var out = String.UnicodeScalarView()
    out.append("\"")
    for c in s.unicodeScalars {
        switch c {
        case "\"": out.append(contentsOf: "\\\"".unicodeScalars)
        case "\\": out.append(contentsOf: "\\\\".unicodeScalars)
        case "\n": out.append(contentsOf: "\\n".unicodeScalars)
        case "\r": out.append(contentsOf: "\\r".unicodeScalars)
        case "\t": out.append(contentsOf: "\\t".unicodeScalars)
        case "\u{08}": out.append(contentsOf: "\\b".unicodeScalars)
        case "\u{0C}": out.append(contentsOf: "\\f".unicodeScalars)
        default:
            if c.value < 0x20 || (ensureASCII && c.value > 0x7E) {
                if c.value > 0xFFFF {
                    let v = c.value - 0x10000
                    out.append(contentsOf: String(format: "\\u%04x\\u%04x", 0xD800 + (v >> 10), 0xDC00 + (v & 0x3FF)).unicodeScalars)
                } else {
                    out.append(contentsOf: String(format: "\\u%04x", c.value).unicodeScalars)
                }
            } else {
                out.append(c)
            }
        }
    }
    out.append("\"")
    return String(out)
}
