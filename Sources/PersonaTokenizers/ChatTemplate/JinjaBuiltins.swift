import Foundation

/// Positional + keyword argument binding helper (Python call semantics, simplified).
struct JArgs {
    let pos: [RValue]
    let kw: [(String, RValue)]
    let fname: String
    func get(_ i: Int, _ name: String) -> RValue? {
        if i >= 0, i < pos.count { return pos[i] }
        return kw.first(where: { $0.0 == name })?.1
    }
    func check(max: Int, names: [String], _ interp: JinjaInterpreter) throws {
        if pos.count > max { throw interp.fail(.type, "\(fname)() takes at most \(max) positional argument(s) (\(pos.count) given)") }
        for (k, _) in kw where !names.contains(k) { throw interp.fail(.type, "\(fname)() got an unexpected keyword argument '\(k)'") }
    }
}

let jinjaKnownFilters: Set<String> = [
    "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
    "format", "forceescape", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
    "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string", "sum",
    "title", "tojson", "trim", "unique", "upper", "wordcount",
]

let jinjaKnownTests: Set<String> = [
    "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "==", "escaped", "even", "false", "filter", "float",
    "ge", ">=", "gt", ">", "greaterthan", "in", "integer", "iterable", "le", "<=", "lower", "lt", "<", "lessthan", "mapping",
    "ne", "!=", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper",
]

extension JinjaInterpreter {
    func installGlobals() {
        globals.vars["range"] = .callable(JCallable("range") { interp, a, _ in
            var ints: [Int] = []
            for v in a {
                guard case .int(let i)? = pyNumeric(v), !v.isDouble else { throw interp.fail(.type, "range() arguments must be integers") }
                ints.append(i)
            }
            let (start, stop, step): (Int, Int, Int)
            switch ints.count {
            case 1: (start, stop, step) = (0, ints[0], 1)
            case 2: (start, stop, step) = (ints[0], ints[1], 1)
            case 3: (start, stop, step) = (ints[0], ints[1], ints[2])
            default: throw interp.fail(.type, "range expected 1 to 3 arguments, got \(ints.count)")
            }
            guard step != 0 else { throw interp.fail(.runtime, "range() arg 3 must not be zero") }
            // Count in floating point first so extreme bounds cannot overflow.
            let approx = step > 0 ? (Double(stop) - Double(start)) / Double(step) : (Double(start) - Double(stop)) / -Double(step)
            guard approx <= 100_000 else { throw interp.fail(.limit, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).") }
            // The true span fits in UInt even when it overflows Int; elements lie in [start, stop) so wrapping math is exact.
            var count = 0
            if approx > 0 {
                let span = step > 0 ? UInt(bitPattern: stop &- start) : UInt(bitPattern: start &- stop)
                count = Int((span - 1) / step.magnitude + 1)
            }
            // jinja2 sandbox MAX_RANGE.
            guard count <= 100_000 else { throw interp.fail(.limit, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).") }
            return .list((0..<count).map { .int(start &+ $0 &* step) })
        })
        globals.vars["namespace"] = .callable(JCallable("namespace") { interp, a, k in
            var attrs: [(String, RValue)] = []
            if let first = a.first {
                guard case .dict(let d) = first else { throw interp.fail(.type, "namespace() positional argument must be a dict") }
                for (key, v) in d.entries { attrs.append((pyStr(key), v)) }
            }
            attrs += k
            let ns = JNamespace([])
            for (key, v) in attrs {
                if key.hasPrefix("_") { throw interp.fail(.runtime, "Chat templates cannot store underscore-prefixed attributes on a namespace, but got '\(key)'.") }
                ns[key] = v
            }
            return .namespace(ns)
        })
        globals.vars["dict"] = .callable(JCallable("dict") { interp, a, k in
            var d = JDict()
            if let first = a.first {
                switch first {
                case .dict(let x): d = x
                default:
                    for item in try interp.iterate(first, what: "dict") {
                        let kv = try interp.iterate(item, what: "dict")
                        guard kv.count == 2 else { throw interp.fail(.type, "dictionary update sequence element has length \(kv.count); 2 is required") }
                        d[kv[0]] = kv[1]
                    }
                }
            }
            for (key, v) in k { d[.string(key)] = v }
            return .dict(d)
        })
        globals.vars["raise_exception"] = .callable(JCallable("raise_exception") { interp, a, _ in
            throw interp.fail(.raised, a.first.map(pyStr) ?? "")
        })
        globals.vars["strftime_now"] = .callable(JCallable("strftime_now") { interp, a, _ in
            guard case .string(let fmt)? = a.first else { throw interp.fail(.type, "strftime_now() argument must be str") }
            return .string(try pyStrftime(fmt, interp.now(), interp))
        })
    }

    // MARK: filters

    func applyFilter(_ name: String, _ v: RValue, _ argExprs: [JExpr], _ kwExprs: [(String, JExpr)], _ f: JFrame) throws -> RValue {
        let a = JArgs(pos: try argExprs.map { try eval($0, f) }, kw: try kwExprs.map { ($0.0, try eval($0.1, f)) }, fname: name)
        return try filter(name, v, a)
    }

    func str(_ v: RValue) -> String { pyStr(v) }

    func filter(_ name: String, _ v: RValue, _ a: JArgs) throws -> RValue {
        switch name {
        case "safe": return v
        case "string": return .string(pyStr(v))
        case "e", "escape", "forceescape":
            // jinja2's escape filter always HTML-escapes (Markup), even with autoescape off.
            var s = ""
            for c in pyStr(v).unicodeScalars {
                switch c {
                case "&": s += "&amp;"
                case "<": s += "&lt;"
                case ">": s += "&gt;"
                case "\"": s += "&#34;"
                case "'": s += "&#39;"
                default: s.unicodeScalars.append(c)
                }
            }
            return .string(s)
        case "trim":
            return .string(pyStrip(pyStr(v), chars: try optChars(a.get(0, "chars")), left: true, right: true))
        case "upper": return .string(pyStr(v).uppercased())
        case "lower": return .string(pyStr(v).lowercased())
        case "capitalize": return .string(pyCapitalize(pyStr(v)))
        case "title": return .string(jinjaTitle(pyStr(v)))
        case "length", "count":
            switch v {
            case .undefined: return .int(0)
            case .string(let s): return .int(s.unicodeScalars.count)
            case .list(let x), .tuple(let x): return .int(x.count)
            case .dict(let d): return .int(d.entries.count)
            case .namespace: throw fail(.type, "object of type 'Namespace' has no len()")
            default: throw fail(.type, "object of type '\(v.typeName)' has no len()")
            }
        case "tojson":
            try a.check(max: 4, names: ["ensure_ascii", "indent", "separators", "sort_keys"], self)
            let ensureASCII = a.get(0, "ensure_ascii")?.truthy ?? false
            var indent: String? = nil
            switch a.get(1, "indent") {
            case nil, .none?: indent = nil
            case .int(let n)?: indent = String(repeating: " ", count: max(0, n))
            case .string(let s)?: indent = s
            case let other?: throw fail(.type, "tojson indent must be an int or string, not \(other.typeName)")
            }
            var itemSep = indent == nil ? ", " : ",", keySep = ": "
            if let seps = a.get(2, "separators"), !(seps.isNone) {
                let parts = try iterate(seps, what: "separators")
                guard parts.count == 2, case .string(let i) = parts[0], case .string(let k) = parts[1] else {
                    throw fail(.type, "tojson separators must be a (item_separator, key_separator) pair of strings")
                }
                itemSep = i; keySep = k
            }
            let sortKeys = a.get(3, "sort_keys")?.truthy ?? false
            guard let j = v.toJSON(indent: indent, itemSep: itemSep, keySep: keySep, sortKeys: sortKeys, ensureASCII: ensureASCII) else {
                let bad = firstUnserializable(v)
                throw fail(.type, bad.isEmpty ? "value nested too deeply for tojson" : "Object of type \(bad) is not JSON serializable")
            }
            return .string(j)
        case "replace":
            guard let old = a.get(0, "old"), let new = a.get(1, "new") else { throw fail(.type, "replace() needs 'old' and 'new'") }
            var count = -1
            if let c = a.get(2, "count"), case .int(let n)? = pyNumeric(c) { count = n }
            return .string(pyReplace(pyStr(v), pyStr(old), pyStr(new), count: count))
        case "join":
            let sep = pyStr(a.get(0, "d") ?? .string(""))
            var items = try iterate(v, what: "join")
            if let attr = a.get(1, "attribute"), !attr.isNone { items = try items.map { try attrPath($0, attr) } }
            return .string(items.map(pyStr).joined(separator: sep))
        case "first":
            if case .undefined = v { return v }
            return try iterate(v, what: "first").first ?? .undefined("No first item, sequence was empty.")
        case "last":
            if case .undefined = v { return v }
            return try iterate(v, what: "last").last ?? .undefined("No last item, sequence was empty.")
        case "default", "d":
            let dflt = a.get(0, "default_value") ?? .string("")
            let boolean = a.get(1, "boolean")?.truthy ?? false
            if v.isUndefined || (boolean && !v.truthy) { return dflt }
            return v
        case "int":
            let dflt = a.get(0, "default") ?? .int(0)
            switch v {
            case .int: return v
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return d.isFinite && abs(d) < 9.2e18 ? .int(Int(d)) : dflt
            case .string(let s):
                let t = pyStrip(s, chars: nil, left: true, right: true).replacingOccurrences(of: "_", with: "")
                if let i = Int(t) { return .int(i) }
                if let d = Double(t), d.isFinite, abs(d) < 9.2e18 { return .int(Int(d)) }
                return dflt
            case .undefined(let m): throw fail(.undefined, m)
            default: return dflt
            }
        case "float":
            let dflt = a.get(0, "default") ?? .double(0)
            switch v {
            case .int(let i): return .double(Double(i))
            case .bool(let b): return .double(b ? 1 : 0)
            case .double: return v
            case .string(let s):
                if let d = Double(pyStrip(s, chars: nil, left: true, right: true)) { return .double(d) }
                return dflt
            case .undefined(let m): throw fail(.undefined, m)
            default: return dflt
            }
        case "abs":
            switch v {
            case .int(let i): guard i != Int.min else { throw fail(.runtime, "integer overflow") }; return .int(abs(i))
            case .bool(let b): return .int(b ? 1 : 0)
            case .double(let d): return .double(abs(d))
            default: throw fail(.type, "bad operand type for abs(): '\(v.typeName)'")
            }
        case "round":
            let precision: Int
            if case .int(let p)? = a.get(0, "precision") { precision = p } else { precision = 0 }
            let method = pyStr(a.get(1, "method") ?? .string("common"))
            let x = pyAsDouble(pyNumeric(v) ?? .double(.nan))
            guard !x.isNaN || v.isDouble else { throw fail(.type, "round filter needs a number") }
            let m = pow(10.0, Double(precision))
            switch method {
            case "common": return .double((x * m).rounded(.toNearestOrEven) / m)  // Python round(): half-even
            case "ceil": return .double((x * m).rounded(.up) / m)
            case "floor": return .double((x * m).rounded(.down) / m)
            default: throw fail(.runtime, "method must be common, ceil or floor")
            }
        case "list":
            return .list(try iterate(v, what: "list"))
        case "items":
            switch v {
            case .undefined: return .list([])
            case .dict(let d): return .list(d.entries.map { .tuple([$0.0, $0.1]) })
            default: throw fail(.type, "items filter expects a mapping, got \(v.typeName)")
            }
        case "reverse":
            switch v {
            case .string(let s): return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed())))
            default: return .list(try iterate(v, what: "reverse").reversed())
            }
        case "unique":
            var seen: [(RValue, RValue)] = []
            let cs = a.get(0, "case_sensitive")?.truthy ?? false
            let attr = a.get(1, "attribute")
            for x in try iterate(v, what: "unique") {
                var key = x
                if let attr, !attr.isNone { key = try attrPath(x, attr) }
                if !cs, case .string(let s) = key { key = .string(s.lowercased()) }
                if !seen.contains(where: { pyEquals($0.0, key) }) { seen.append((key, x)) }
            }
            return .list(seen.map { $0.1 })
        case "sort":
            let reverse = a.get(0, "reverse")?.truthy ?? false
            let cs = a.get(1, "case_sensitive")?.truthy ?? false
            let attr = a.get(2, "attribute")
            var items = try iterate(v, what: "sort").map { x -> (RValue, RValue) in
                var key = x
                if let attr, !attr.isNone { key = try attrPath(x, attr) }
                if !cs, case .string(let s) = key { key = .string(s.lowercased()) }
                return (key, x)
            }
            var failure: ChatTemplateError? = nil
            // Stable sort as Python's.
            items = items.enumerated().sorted { l, r in
                guard let c = pyCompare(l.element.0, r.element.0) else {
                    failure = fail(.type, "'<' not supported between instances of '\(l.element.0.typeName)' and '\(r.element.0.typeName)'")
                    return false
                }
                if c == 0 { return l.offset < r.offset }
                return reverse ? c > 0 : c < 0
            }.map { $0.element }
            if let failure { throw failure }
            return .list(items.map { $0.1 })
        case "dictsort":
            guard case .dict(let d) = v else { throw fail(.type, "dictsort expects a mapping") }
            let cs = a.get(0, "case_sensitive")?.truthy ?? false
            let byValue = pyStr(a.get(1, "by") ?? .string("key")) == "value"
            let reverse = a.get(2, "reverse")?.truthy ?? false
            let sorted = d.entries.enumerated().sorted { l, r in
                var x = byValue ? l.element.1 : l.element.0, y = byValue ? r.element.1 : r.element.0
                if !cs, case .string(let s) = x { x = .string(s.lowercased()) }
                if !cs, case .string(let s) = y { y = .string(s.lowercased()) }
                let c = pyCompare(x, y) ?? 0
                if c == 0 { return l.offset < r.offset }
                return reverse ? c > 0 : c < 0
            }
            return .list(sorted.map { .tuple([$0.element.0, $0.element.1]) })
        case "sum":
            var total: RValue = a.get(1, "start") ?? .int(0)
            let attr = a.get(0, "attribute")
            for x in try iterate(v, what: "sum") {
                total = try binary("+", total, attr.map { at in at.isNone ? x : (try? attrPath(x, at)) ?? .undefined("missing attribute") } ?? x)
            }
            return total
        case "min", "max":
            let cs = a.get(0, "case_sensitive")?.truthy ?? false
            let attr = a.get(1, "attribute")
            var best: (RValue, RValue)? = nil
            for x in try iterate(v, what: name) {
                var key = x
                if let attr, !attr.isNone { key = try attrPath(x, attr) }
                if !cs, case .string(let s) = key { key = .string(s.lowercased()) }
                if let b = best {
                    guard let c = pyCompare(key, b.0) else { throw fail(.type, "cannot compare \(key.typeName) and \(b.0.typeName)") }
                    if name == "min" ? c < 0 : c > 0 { best = (key, x) }
                } else { best = (key, x) }
            }
            return best?.1 ?? .undefined("No aggregated item, sequence was empty.")
        case "wordcount":
            return .int(pyStr(v).split(whereSeparator: { $0.isWhitespace || $0.isPunctuation }).count)
        case "center":
            let width: Int
            if case .int(let w)? = a.get(0, "width") { width = w } else { width = 80 }
            let s = pyStr(v), n = s.unicodeScalars.count
            guard width > n else { return .string(s) }
            let total = width - n
            let left = total / 2 + (total & width & 1)
            return .string(String(repeating: " ", count: left) + s + String(repeating: " ", count: total - left))
        case "indent":
            var ind = "    "
            switch a.get(0, "width") {
            case .int(let w)?: ind = String(repeating: " ", count: max(0, w))
            case .string(let s)?: ind = s
            default: break
            }
            let first = a.get(1, "first")?.truthy ?? false
            let blank = a.get(2, "blank")?.truthy ?? false
            // jinja2 do_indent, including its trailing-newline quirk.
            var lines = pySplitLines(pyStr(v) + "\n", keepEnds: false)
            var rv: String
            if blank {
                rv = lines.joined(separator: "\n" + ind)
            } else {
                rv = lines.isEmpty ? "" : lines.removeFirst()
                if !lines.isEmpty { rv += "\n" + lines.map { $0.isEmpty ? $0 : ind + $0 }.joined(separator: "\n") }
            }
            if first { rv = ind + rv }
            return .string(rv)
        case "format":
            return .string(try printf(pyStr(v), a.pos))
        case "attr":
            guard let n = a.get(0, "name") else { throw fail(.type, "attr filter needs a name") }
            return try getattr(v, pyStr(n))
        case "batch":
            guard case .int(let size)? = a.get(0, "linecount"), size > 0 else { throw fail(.type, "batch needs a positive size") }
            let fill = a.get(1, "fill_with")
            let items = try iterate(v, what: "batch")
            var res: [RValue] = []
            var i = 0
            while i < items.count {
                var chunk = Array(items[i..<min(i + size, items.count)])
                if chunk.count < size, let fill, !fill.isNone { chunk += Array(repeating: fill, count: size - chunk.count) }
                res.append(.list(chunk))
                i += size
            }
            return .list(res)
        case "map":
            let items = try iterate(v, what: "map")
            if let attr = a.kw.first(where: { $0.0 == "attribute" })?.1 {
                let dflt = a.kw.first(where: { $0.0 == "default" })?.1
                return .list(try items.map { x in
                    let r = try attrPath(x, attr)
                    if r.isUndefined, let dflt { return dflt }
                    return r
                })
            }
            guard case .string(let fname)? = a.pos.first else { throw fail(.type, "map needs a filter name or attribute=") }
            guard jinjaKnownFilters.contains(fname) else { throw fail(.unsupported, "unsupported filter '\(fname)'") }
            let sub = JArgs(pos: Array(a.pos.dropFirst()), kw: a.kw, fname: fname)
            return .list(try items.map { try filter(fname, $0, sub) })
        case "select", "reject", "selectattr", "rejectattr":
            let byAttr = name.hasSuffix("attr")
            let keep = name.hasPrefix("select")
            var pos = a.pos
            var attr: RValue? = nil
            if byAttr {
                guard !pos.isEmpty else { throw fail(.type, "\(name) needs an attribute name") }
                attr = pos.removeFirst()
            }
            var testName: String? = nil
            if !pos.isEmpty {
                guard case .string(let t) = pos.removeFirst() else { throw fail(.type, "\(name): test name must be a string") }
                guard jinjaKnownTests.contains(t) else { throw fail(.unsupported, "unsupported test '\(t)'") }
                testName = t
            }
            var res: [RValue] = []
            for x in try iterate(v, what: name) {
                let subject = try attr.map { try attrPath(x, $0) } ?? x
                let ok = try testName.map { try applyTest($0, subject, pos) } ?? subject.truthy
                if ok == keep { res.append(x) }
            }
            return .list(res)
        default:
            throw fail(.unsupported, "unsupported filter '\(name)'")
        }
    }

    func firstUnserializable(_ v: RValue, depth: Int = 0) -> String {
        if depth > jinjaMaxValueDepth { return "" }
        switch v {
        case .undefined: return "Undefined"
        case .namespace: return "Namespace"
        case .loop: return "LoopContext"
        case .callable: return "function"
        case .list(let a), .tuple(let a):
            for x in a { let n = firstUnserializable(x, depth: depth + 1); if !n.isEmpty { return n } }
        case .dict(let d):
            for (k, x) in d.entries {
                if case .tuple = k { return "tuple" }
                let n = firstUnserializable(x, depth: depth + 1); if !n.isEmpty { return n }
            }
        default: break
        }
        return ""
    }

    /// jinja2 `make_attrgetter`: "a.b.0" paths, each step getitem.
    func attrPath(_ x: RValue, _ attr: RValue) throws -> RValue {
        if case .int = attr { return try getitem(x, attr) }
        var cur = x
        for part in pyStr(attr).split(separator: ".", omittingEmptySubsequences: false) {
            let p = String(part)
            cur = try getitem(cur, Int(p).map { .int($0) } ?? .string(p))
        }
        return cur
    }

    func optChars(_ v: RValue?) throws -> String? {
        switch v {
        case nil, .none?: return nil
        case .string(let s)?: return s
        case let x?: throw fail(.type, "strip arg must be None or str, not \(x.typeName)")
        }
    }

    // MARK: tests

    func applyTest(_ name: String, _ v: RValue, _ args: [RValue]) throws -> Bool {
        func arg() throws -> RValue {
            guard let a = args.first else { throw fail(.type, "test '\(name)' needs an argument") }
            return a
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": return { if case .none = v { return true }; return false }()
        case "boolean": return { if case .bool = v { return true }; return false }()
        case "true": return { if case .bool(true) = v { return true }; return false }()
        case "false": return { if case .bool(false) = v { return true }; return false }()
        case "integer": return { if case .int = v { return true }; return false }()
        case "float": return v.isDouble
        case "number": return pyNumeric(v) != nil
        case "string": return v.isString
        case "mapping": return { if case .dict = v { return true }; return false }()
        case "iterable", "sequence":
            switch v {
            case .list, .tuple, .dict, .string: return true
            case .undefined: return name == "iterable"
            default: return false
            }
        case "callable": return { if case .callable = v { return true }; return false }()
        case "lower": let s = pyStr(v); return v.isString && s == s.lowercased() && s != s.uppercased()
        case "upper": let s = pyStr(v); return v.isString && s == s.uppercased() && s != s.lowercased()
        case "escaped": return false
        case "odd", "even":
            guard case .int(let i)? = pyNumeric(v) else { throw fail(.type, "test '\(name)' needs an integer") }
            return (abs(i % 2) == 1) == (name == "odd")
        case "divisibleby":
            guard case .int(let i)? = pyNumeric(v), case .int(let n)? = pyNumeric(try arg()), n != 0 else { throw fail(.type, "divisibleby needs non-zero integers") }
            return n == -1 || i % n == 0
        case "eq", "equalto", "==": return pyEquals(v, try arg())
        case "ne", "!=": return !pyEquals(v, try arg())
        case "lt", "<", "lessthan": return try compare("<", v, try arg())
        case "le", "<=": return try compare("<=", v, try arg())
        case "gt", ">", "greaterthan": return try compare(">", v, try arg())
        case "ge", ">=": return try compare(">=", v, try arg())
        case "in": return try contains(try arg(), v)
        case "sameas":
            let o = try arg()
            switch (v, o) {
            case (.none, .none): return true
            case (.bool(let x), .bool(let y)): return x == y
            case (.namespace(let x), .namespace(let y)): return x === y
            case (.callable(let x), .callable(let y)): return x === y
            case (.int(let x), .int(let y)): return x == y && (-5...256).contains(x)  // CPython small-int cache
            default: return false
            }
        case "filter": guard case .string(let s) = v else { return false }; return jinjaKnownFilters.contains(s)
        case "test": guard case .string(let s) = v else { return false }; return jinjaKnownTests.contains(s)
        default: throw fail(.unsupported, "unsupported test '\(name)'")
        }
    }

    // MARK: methods of str / dict / list

    func method(_ obj: RValue, _ name: String) -> RValue? {
        func m(_ fn: @escaping (JinjaInterpreter, JArgs) throws -> RValue) -> RValue {
            .callable(JCallable(name) { interp, a, k in try fn(interp, JArgs(pos: a, kw: k, fname: name)) })
        }
        switch obj {
        case .string(let s):
            switch name {
            case "strip", "lstrip", "rstrip":
                return m { i, a in .string(pyStrip(s, chars: try i.optChars(a.get(0, "chars")), left: name != "rstrip", right: name != "lstrip")) }
            case "upper": return m { _, _ in .string(s.uppercased()) }
            case "lower": return m { _, _ in .string(s.lowercased()) }
            case "casefold": return m { _, _ in .string(s.lowercased()) }
            case "title": return m { _, _ in .string(pyTitle(s)) }
            case "capitalize": return m { _, _ in .string(pyCapitalize(s)) }
            case "swapcase":
                return m { _, _ in .string(String(s.map { c in c.isUppercase ? Character(c.lowercased()) : (c.isLowercase ? Character(c.uppercased()) : c) })) }
            case "startswith", "endswith":
                return m { i, a in
                    guard let p = a.get(0, "prefix") else { throw i.fail(.type, "\(name)() takes at least 1 argument") }
                    let cands: [RValue]
                    if case .tuple(let t) = p { cands = t } else { cands = [p] }
                    for c in cands {
                        guard case .string(let x) = c else { throw i.fail(.type, "\(name) first arg must be str or a tuple of str, not \(c.typeName)") }
                        if name == "startswith" ? s.unicodeScalars.starts(with: x.unicodeScalars) : s.unicodeScalars.reversed().starts(with: x.unicodeScalars.reversed()) { return .bool(true) }
                    }
                    return .bool(false)
                }
            case "split", "rsplit":
                return m { i, a in
                    let sep = a.get(0, "sep")
                    var maxsplit = -1
                    if case .int(let n)? = a.get(1, "maxsplit") { maxsplit = n }
                    if let sep, !sep.isNone {
                        guard case .string(let sp) = sep else { throw i.fail(.type, "must be str or None, not \(sep.typeName)") }
                        guard !sp.isEmpty else { throw i.fail(.runtime, "empty separator") }
                        return .list(pySplit(s, sp, maxsplit: maxsplit, fromRight: name == "rsplit").map { .string($0) })
                    }
                    return .list(pySplitWhitespace(s, maxsplit: maxsplit, fromRight: name == "rsplit").map { .string($0) })
                }
            case "splitlines":
                return m { _, a in
                    .list(pySplitLines(s, keepEnds: a.get(0, "keepends")?.truthy ?? false).map { .string($0) })
                }
            case "replace":
                return m { i, a in
                    guard case .string(let old)? = a.get(0, "old"), case .string(let new)? = a.get(1, "new") else { throw i.fail(.type, "replace() arguments must be str") }
                    var count = -1
                    if case .int(let n)? = a.get(2, "count") { count = n }
                    return .string(pyReplace(s, old, new, count: count))
                }
            case "find", "rfind", "index", "rindex", "count":
                return m { i, a in
                    guard case .string(let sub)? = a.get(0, "sub") else { throw i.fail(.type, "\(name)() argument must be str") }
                    let hay = Array(s.unicodeScalars), needle = Array(sub.unicodeScalars)
                    var hits: [Int] = []
                    var p = 0
                    while p + needle.count <= hay.count {
                        if Array(hay[p..<p + needle.count]) == needle { hits.append(p); p += max(needle.count, 1) } else { p += 1 }
                        if name == "find" || name == "index", !hits.isEmpty { break }
                    }
                    if name == "count" { return .int(needle.isEmpty ? hay.count + 1 : hits.count) }
                    if needle.isEmpty { return .int(name.hasPrefix("r") ? hay.count : 0) }
                    if name.hasPrefix("r") {
                        // rfind: last occurrence, overlapping allowed.
                        var q = hay.count - needle.count
                        while q >= 0 { if Array(hay[q..<q + needle.count]) == needle { return .int(q) }; q -= 1 }
                    } else if let h = hits.first { return .int(h) }
                    if name.hasSuffix("index") { throw i.fail(.runtime, "substring not found") }
                    return .int(-1)
                }
            case "join":
                return m { i, a in
                    guard let seq = a.get(0, "iterable") else { throw i.fail(.type, "join() takes exactly one argument") }
                    var parts: [String] = []
                    for x in try i.iterate(seq, what: "join") {
                        guard case .string(let t) = x else { throw i.fail(.type, "sequence item \(parts.count): expected str instance, \(x.typeName) found") }
                        parts.append(t)
                    }
                    return .string(parts.joined(separator: s))
                }
            case "isdigit", "isnumeric", "isdecimal":
                return m { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil }) }
            case "isalpha": return m { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic }) }
            case "isalnum": return m { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil }) }
            case "isspace": return m { _, _ in .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(isPyWhitespace)) }
            case "islower": return m { _, _ in .bool(s == s.lowercased() && s != s.uppercased()) }
            case "isupper": return m { _, _ in .bool(s == s.uppercased() && s != s.lowercased()) }
            case "removeprefix", "removesuffix":
                return m { i, a in
                    guard case .string(let x)? = a.get(0, "prefix") else { throw i.fail(.type, "\(name)() argument must be str") }
                    if name == "removeprefix", s.unicodeScalars.starts(with: x.unicodeScalars) { return .string(String(String.UnicodeScalarView(s.unicodeScalars.dropFirst(x.unicodeScalars.count)))) }
                    if name == "removesuffix", !x.isEmpty, s.unicodeScalars.reversed().starts(with: x.unicodeScalars.reversed()) { return .string(String(String.UnicodeScalarView(s.unicodeScalars.dropLast(x.unicodeScalars.count)))) }
                    return .string(s)
                }
            case "format":
                return m { i, a in .string(try i.pyFormat(s, a)) }
            default: return nil
            }
        case .dict(let d):
            switch name {
            case "items": return m { _, _ in .list(d.entries.map { .tuple([$0.0, $0.1]) }) }
            case "keys": return m { _, _ in .list(d.entries.map { $0.0 }) }
            case "values": return m { _, _ in .list(d.entries.map { $0.1 }) }
            case "get":
                return m { i, a in
                    guard let k = a.get(0, "key") else { throw i.fail(.type, "get expected at least 1 argument, got 0") }
                    return d[k] ?? a.get(1, "default") ?? .none
                }
            case "copy": return m { _, _ in .dict(d) }
            case "pop", "popitem", "setdefault", "update", "clear":
                return .undefined("access to attribute '\(name)' of 'dict' object is unsafe.")
            default: return nil
            }
        case .list(let l), .tuple(let l):
            switch name {
            case "index":
                return m { i, a in
                    guard let x = a.get(0, "value"), let idx = l.firstIndex(where: { pyEquals($0, x) }) else { throw i.fail(.runtime, "value is not in list") }
                    return .int(idx)
                }
            case "count": return m { _, a in .int(l.filter { pyEquals($0, a.get(0, "value") ?? .none) }.count) }
            case "copy": return m { _, _ in .list(l) }
            case "append", "extend", "insert", "pop", "remove", "reverse", "sort", "clear":
                return .undefined("access to attribute '\(name)' of '\(obj.typeName)' object is unsafe.")
            default: return nil
            }
        default: return nil
        }
    }

    // MARK: formatting

    /// Python `str.format` with auto/explicit positional and named fields; no format specs beyond empty.
    func pyFormat(_ fmt: String, _ a: JArgs) throws -> String {
        var out = ""
        let u = Array(fmt.unicodeScalars)
        var i = 0, auto = 0
        while i < u.count {
            let c = u[i]
            if c == "{" {
                if i + 1 < u.count, u[i + 1] == "{" { out += "{"; i += 2; continue }
                guard let close = u[i...].firstIndex(of: "}") else { throw fail(.runtime, "Single '{' encountered in format string") }
                let field = String(String.UnicodeScalarView(u[(i + 1)..<close]))
                if field.contains(":") || field.contains("!") || field.contains(".") || field.contains("[") {
                    throw fail(.unsupported, "unsupported format field '{\(field)}' in str.format")
                }
                let v: RValue?
                if field.isEmpty { v = a.pos.indices.contains(auto) ? a.pos[auto] : nil; auto += 1 }
                else if let n = Int(field) { v = a.pos.indices.contains(n) ? a.pos[n] : nil }
                else { v = a.kw.first(where: { $0.0 == field })?.1 }
                guard let v else { throw fail(.runtime, "format: missing argument for field '{\(field)}'") }
                out += pyStr(v)
                i = close + 1
                continue
            }
            if c == "}" {
                if i + 1 < u.count, u[i + 1] == "}" { out += "}"; i += 2; continue }
                throw fail(.runtime, "Single '}' encountered in format string")
            }
            out.unicodeScalars.append(c)
            i += 1
        }
        return out
    }

    /// printf-style `%` formatting: %s %r %d %i %f %% (flags/width unsupported beyond precision for %f).
    func printf(_ fmt: String, _ args: [RValue]) throws -> String {
        var out = ""
        let u = Array(fmt.unicodeScalars)
        var i = 0, ai = 0
        func next() throws -> RValue {
            guard ai < args.count else { throw fail(.type, "not enough arguments for format string") }
            ai += 1
            return args[ai - 1]
        }
        while i < u.count {
            let c = u[i]
            guard c == "%" else { out.unicodeScalars.append(c); i += 1; continue }
            i += 1
            guard i < u.count else { throw fail(.runtime, "incomplete format") }
            var precision: Int? = nil
            if u[i] == "." {
                i += 1
                var p = 0
                while i < u.count, let d = Int(String(u[i])) { p = p * 10 + d; i += 1 }
                precision = p
            }
            guard i < u.count else { throw fail(.runtime, "incomplete format") }
            switch u[i] {
            case "%": out += "%"
            case "s": out += pyStr(try next())
            case "r": out += pyRepr(try next())
            case "d", "i":
                let v = try next()
                guard let n = pyNumeric(v) else { throw fail(.type, "%d format: a real number is required, not \(v.typeName)") }
                if case .int(let x) = n { out += String(x) } else { out += String(Int(pyAsDouble(n).rounded(.towardZero))) }
            case "f":
                let v = try next()
                guard let n = pyNumeric(v) else { throw fail(.type, "must be real number, not \(v.typeName)") }
                out += String(format: "%.\(precision ?? 6)f", pyAsDouble(n))
            default: throw fail(.unsupported, "unsupported format character '\(u[i])'")
            }
            i += 1
        }
        if ai < args.count, !(args.count == 1 && ai == 0 && fmt.isEmpty) {
            throw fail(.type, "not all arguments converted during string formatting")
        }
        return out
    }
}

extension RValue {
    var isNone: Bool { if case .none = self { return true }; return false }
}

// MARK: Python string helpers

func pyStrip(_ s: String, chars: String?, left: Bool, right: Bool) -> String {
    let u = Array(s.unicodeScalars)
    let set = chars.map { Set($0.unicodeScalars) }
    func strip(_ c: Unicode.Scalar) -> Bool { set.map { $0.contains(c) } ?? isPyWhitespace(c) }
    var a = 0, b = u.count
    if left { while a < b, strip(u[a]) { a += 1 } }
    if right { while b > a, strip(u[b - 1]) { b -= 1 } }
    return String(String.UnicodeScalarView(u[a..<b]))
}

func pyReplace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
    let u = Array(s.unicodeScalars), o = Array(old.unicodeScalars), nw = Array(new.unicodeScalars)
    var out: [Unicode.Scalar] = []
    var done = 0
    if o.isEmpty {
        // Python inserts `new` between every character and at both ends.
        for c in u {
            if count < 0 || done < count { out += nw; done += 1 }
            out.append(c)
        }
        if count < 0 || done < count { out += nw }
        return String(String.UnicodeScalarView(out))
    }
    var i = 0
    while i < u.count {
        if (count < 0 || done < count), i + o.count <= u.count, Array(u[i..<i + o.count]) == o {
            out += nw; i += o.count; done += 1
        } else { out.append(u[i]); i += 1 }
    }
    return String(String.UnicodeScalarView(out))
}

func pySplit(_ s: String, _ sep: String, maxsplit: Int, fromRight: Bool) -> [String] {
    let u = Array(s.unicodeScalars), p = Array(sep.unicodeScalars)
    var parts: [[Unicode.Scalar]] = []
    if !fromRight {
        var cur: [Unicode.Scalar] = []
        var i = 0, n = 0
        while i < u.count {
            if (maxsplit < 0 || n < maxsplit), i + p.count <= u.count, Array(u[i..<i + p.count]) == p {
                parts.append(cur); cur = []; i += p.count; n += 1
            } else { cur.append(u[i]); i += 1 }
        }
        parts.append(cur)
    } else {
        var cur: [Unicode.Scalar] = []
        var i = u.count, n = 0
        while i > 0 {
            if (maxsplit < 0 || n < maxsplit), i - p.count >= 0, Array(u[(i - p.count)..<i]) == p {
                parts.insert(cur, at: 0); cur = []; i -= p.count; n += 1
            } else { cur.insert(u[i - 1], at: 0); i -= 1 }
        }
        parts.insert(cur, at: 0)
    }
    return parts.map { String(String.UnicodeScalarView($0)) }
}

func pySplitWhitespace(_ s: String, maxsplit: Int, fromRight: Bool) -> [String] {
    var u = Array(s.unicodeScalars)
    if fromRight { u.reverse() }
    var parts: [[Unicode.Scalar]] = []
    var i = 0
    while i < u.count {
        while i < u.count, isPyWhitespace(u[i]) { i += 1 }
        if i >= u.count { break }
        if maxsplit >= 0, parts.count == maxsplit {
            var rest = Array(u[i...])
            while let l = rest.last, isPyWhitespace(l) { rest.removeLast() }
            parts.append(rest)
            break
        }
        var cur: [Unicode.Scalar] = []
        while i < u.count, !isPyWhitespace(u[i]) { cur.append(u[i]); i += 1 }
        parts.append(cur)
    }
    if fromRight { parts = parts.reversed().map { $0.reversed() } }
    return parts.map { String(String.UnicodeScalarView($0)) }
}

func pyCapitalize(_ s: String) -> String {
    guard let f = s.first else { return s }
    return f.uppercased() + s.dropFirst().lowercased()
}

/// Python str.title(): a cased character following an uncased one is uppercased, others lowercased.
func pyTitle(_ s: String) -> String {
    var out = ""
    var prevCased = false
    for c in s {
        let cased = c.isCased
        if cased { out += prevCased ? c.lowercased() : c.uppercased() } else { out.append(c) }
        prevCased = cased
    }
    return out
}

/// jinja2 `title` filter: capitalise each word split on `[-\s({\[<]+`.
func jinjaTitle(_ s: String) -> String {
    var out = ""
    var atStart = true
    for c in s {
        let isSep = c == "-" || c == "(" || c == "{" || c == "[" || c == "<" || c.unicodeScalars.allSatisfy(isPyWhitespace)
        if isSep { out.append(c); atStart = true; continue }
        out += atStart ? c.uppercased() : c.lowercased()
        atStart = false
    }
    return out
}

// MARK: strftime (Python datetime.strftime, C locale, local time zone)

func pyStrftime(_ fmt: String, _ date: Date, _ interp: JinjaInterpreter) throws -> String {
    var cal = Calendar(identifier: .gregorian)
    cal.timeZone = TimeZone.current
    let c = cal.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday, .nanosecond], from: date)
    let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
    let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    let y = c.year ?? 1970, mo = c.month ?? 1, d = c.day ?? 1, h = c.hour ?? 0, mi = c.minute ?? 0, se = c.second ?? 0, wd = (c.weekday ?? 1) - 1
    func p2(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
    var out = ""
    var it = fmt.unicodeScalars.makeIterator()
    while let ch = it.next() {
        guard ch == "%" else { out.unicodeScalars.append(ch); continue }
        guard let k = it.next() else { out += "%"; break }
        switch k {
        case "Y": out += String(y)
        case "y": out += p2(y % 100)
        case "m": out += p2(mo)
        case "d": out += p2(d)
        case "e": out += d < 10 ? " \(d)" : "\(d)"
        case "H": out += p2(h)
        case "I": out += p2(h % 12 == 0 ? 12 : h % 12)
        case "M": out += p2(mi)
        case "S": out += p2(se)
        case "p": out += h < 12 ? "AM" : "PM"
        case "b", "h": out += String(months[mo - 1].prefix(3))
        case "B": out += months[mo - 1]
        case "a": out += String(days[wd].prefix(3))
        case "A": out += days[wd]
        case "w": out += String(wd)
        case "j":
            let doy = cal.ordinality(of: .day, in: .year, for: date) ?? 1
            out += doy < 10 ? "00\(doy)" : (doy < 100 ? "0\(doy)" : "\(doy)")
        case "F": out += "\(y)-\(p2(mo))-\(p2(d))"
        case "T": out += "\(p2(h)):\(p2(mi)):\(p2(se))"
        case "%": out += "%"
        default: throw interp.fail(.unsupported, "unsupported strftime directive '%\(k)'")
        }
    }
    return out
}

/// Python's str.splitlines: breaks at \n, \r, \r\n and the other Unicode line boundaries, scalar by scalar (a Swift
/// Character holds "\r\n" as one, so Foundation's line splitting would not see its "\n").
func pySplitLines(_ s: String, keepEnds: Bool) -> [String] {
    var res: [String] = []
    var cur = String.UnicodeScalarView()
    let u = Array(s.unicodeScalars)
    var i = 0
    while i < u.count {
        let c = u[i]
        if [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(c.value) {
            if keepEnds { cur.append(c) }
            if c == "\r", i + 1 < u.count, u[i + 1] == "\n" { if keepEnds { cur.append("\n") }; i += 1 }
            res.append(String(cur)); cur = String.UnicodeScalarView()
        } else { cur.append(c) }
        i += 1
    }
    if !cur.isEmpty { res.append(String(cur)) }
    return res
}
