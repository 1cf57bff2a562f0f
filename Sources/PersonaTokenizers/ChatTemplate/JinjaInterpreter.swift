import Foundation

final class JFrame {
    var vars: [String: RValue] = [:]
    let parent: JFrame?
    init(parent: JFrame?) { self.parent = parent }
    func lookup(_ n: String) -> RValue? {
        var f: JFrame? = self
        while let cur = f {
            if let v = cur.vars[n] { return v }
            f = cur.parent
        }
        return nil
    }
}

enum JFlow { case normal, breakLoop, continueLoop }

/// Tree-walking evaluator with jinja2 semantics (scoping: `for` bodies get a fresh scope per iteration,
/// `if` does not; undefined names are jinja2 Undefined).
final class JinjaInterpreter {
    let limits: ChatTemplate.Limits
    let now: () -> Date
    var out = ""
    var outBytes = 0
    var steps = 0
    var callDepth = 0
    var line = 0
    let globals: JFrame

    init(limits: ChatTemplate.Limits, now: @escaping () -> Date) {
        self.limits = limits
        self.now = now
        globals = JFrame(parent: nil)
        installGlobals()
    }

    func fail(_ kind: ChatTemplateError.Kind, _ msg: String) -> ChatTemplateError {
        ChatTemplateError(kind: kind, message: msg, line: line, column: nil)
    }

    func render(_ nodes: [JNode], context: [String: RValue]) throws -> String {
        let root = JFrame(parent: globals)
        root.vars = context
        let flow = try exec(nodes, root)
        if flow != .normal { throw fail(.runtime, "'break'/'continue' outside of a loop") }
        return out
    }

    func emit(_ s: String) throws {
        outBytes += s.utf8.count
        if outBytes > limits.maxOutputBytes {
            throw fail(.limit, "output exceeds the limit of \(limits.maxOutputBytes) bytes")
        }
        out += s
    }

    func tick() throws {
        steps += 1
        if steps > limits.maxIterations {
            throw fail(.limit, "template exceeded the limit of \(limits.maxIterations) loop iterations / macro calls")
        }
    }

    func capture(_ body: () throws -> JFlow) throws -> (String, JFlow) {
        let saved = out
        out = ""
        defer { out = saved }
        let flow = try body()
        return (out, flow)
    }

    // MARK: statements

    private func exec(_ nodes: [JNode], _ frame: JFrame) throws -> JFlow {
        for node in nodes {
            line = node.line
            switch node.kind {
            case .text(let s): try emit(s)
            case .output(let e): try emit(pyStr(try eval(e, frame)))
            case .ifChain(let branches, let otherwise):
                var taken = false
                for (cond, body) in branches where try eval(cond, frame).truthy {
                    taken = true
                    let f = try exec(body, frame)
                    if f != .normal { return f }
                    break
                }
                if !taken {
                    let f = try exec(otherwise, frame)
                    if f != .normal { return f }
                }
            case .forLoop(let target, let iterExpr, let cond, let body, let otherwise):
                let seq = try iterate(try eval(iterExpr, frame), what: "for loop")
                var items: [RValue] = []
                if let cond {
                    for item in seq {
                        try tick()
                        let f = JFrame(parent: frame)
                        try bind(target, item, f)
                        if try eval(cond, f).truthy { items.append(item) }
                    }
                } else {
                    items = seq
                }
                if items.isEmpty {
                    let f = try exec(otherwise, frame)
                    if f != .normal { return f }
                    continue
                }
                for (idx, item) in items.enumerated() {
                    try tick()
                    let f = JFrame(parent: frame)
                    f.vars["loop"] = .loop(JLoopInfo(items: items, index0: idx))
                    try bind(target, item, f)
                    let flow = try exec(body, f)
                    line = node.line
                    if flow == .breakLoop { break }
                }
            case .set(let target, let e):
                try bind(target, try eval(e, frame), frame)
            case .setBlock(let target, let body, let filters):
                var (text, flow) = try capture { try exec(body, frame) }
                if flow != .normal { return flow }
                var v = RValue.string(text)
                for fc in filters { v = try applyFilter(fc.name, v, fc.args, fc.kwargs, frame) }
                if case .string(let s) = v { text = s }
                try bind(target, v, frame)
            case .macro(let def):
                frame.vars[def.name] = .callable(makeMacro(def, frame))
            case .filterBlock(let filters, let body):
                let (text, flow) = try capture { try exec(body, frame) }
                if flow != .normal { return flow }
                var v = RValue.string(text)
                for fc in filters { v = try applyFilter(fc.name, v, fc.args, fc.kwargs, frame) }
                try emit(pyStr(v))
            case .breakLoop: return .breakLoop
            case .continueLoop: return .continueLoop
            case .generation(let body):
                let f = try exec(body, frame)
                if f != .normal { return f }
            }
        }
        return .normal
    }

    private func makeMacro(_ def: JMacroDef, _ defFrame: JFrame) -> JCallable {
        JCallable(def.name) { [unowned self] _, args, kwargs in
            try self.tick()
            guard self.callDepth < self.limits.maxCallDepth else {
                throw self.fail(.limit, "macro recursion deeper than \(self.limits.maxCallDepth)")
            }
            guard args.count <= def.params.count else {
                throw self.fail(.runtime, "macro '\(def.name)' takes not more than \(def.params.count) argument(s)")
            }
            self.callDepth += 1
            defer { self.callDepth -= 1 }
            let f = JFrame(parent: defFrame)
            for (k, _) in kwargs where !def.params.contains(where: { $0.0 == k }) {
                throw self.fail(.runtime, "macro '\(def.name)' was invoked with an unknown keyword argument '\(k)'")
            }
            for (i, (p, d)) in def.params.enumerated() {
                if i < args.count { f.vars[p] = args[i] }
                else if let kv = kwargs.first(where: { $0.0 == p }) { f.vars[p] = kv.1 }
                else if let d { f.vars[p] = try self.eval(d, f) }
                else { f.vars[p] = .undefined("parameter '\(p)' was not provided") }
            }
            let savedLine = self.line
            let (text, _) = try self.capture { try self.exec(def.body, f) }
            self.line = savedLine
            return .string(text)
        }
    }

    func bind(_ target: JTarget, _ v: RValue, _ frame: JFrame) throws {
        switch target {
        case .name(let n): frame.vars[n] = v
        case .attr(let n, let a):
            guard case .namespace(let ns)? = frame.lookup(n) ?? globals.lookup(n) else {
                throw fail(.runtime, "cannot assign attribute on non-namespace object '\(n)'")
            }
            ns[a] = v
        case .tuple(let ts):
            let items = try iterate(v, what: "unpacking")
            guard items.count == ts.count else {
                throw fail(.runtime, items.count > ts.count ? "too many values to unpack (expected \(ts.count))" : "not enough values to unpack (expected \(ts.count), got \(items.count))")
            }
            for (t, x) in zip(ts, items) { try bind(t, x, frame) }
        }
    }

    /// Python iteration: lists/tuples by item, dicts by key, strings by character; Undefined is empty.
    func iterate(_ v: RValue, what: String) throws -> [RValue] {
        switch v {
        case .undefined: return []
        case .list(let a), .tuple(let a): return a
        case .dict(let d): return d.entries.map { $0.0 }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .namespace: throw fail(.type, "'Namespace' object is not iterable")
        default: throw fail(.type, "'\(v.typeName)' object is not iterable")
        }
    }

    // MARK: expressions

    func eval(_ e: JExpr, _ f: JFrame) throws -> RValue {
        switch e {
        case .const(let c):
            switch c {
            case .none: return .none
            case .bool(let b): return .bool(b)
            case .int(let i): return .int(i)
            case .double(let d): return .double(d)
            case .string(let s): return .string(s)
            }
        case .name(let n):
            return f.lookup(n) ?? .undefined("'\(n)' is undefined")
        case .list(let xs): return .list(try xs.map { try eval($0, f) })
        case .tuple(let xs): return .tuple(try xs.map { try eval($0, f) })
        case .dict(let kvs):
            var d = JDict()
            for (k, v) in kvs {
                let kv = try eval(k, f)
                switch kv {
                case .list, .dict, .namespace, .undefined: throw fail(.type, "unhashable type: '\(kv.typeName)'")
                default: break
                }
                d[kv] = try eval(v, f)
            }
            return .dict(d)
        case .getattr(let o, let name): return try getattr(try eval(o, f), name)
        case .getitem(let o, let k): return try getitem(try eval(o, f), try eval(k, f))
        case .slice(let o, let a, let b, let c):
            return try slice(try eval(o, f), try a.map { try eval($0, f) }, try b.map { try eval($0, f) }, try c.map { try eval($0, f) })
        case .call(let callee, let args, let kwargs):
            let fn = try eval(callee, f)
            let a = try args.map { try eval($0, f) }
            let k = try kwargs.map { ($0.0, try eval($0.1, f)) }
            return try call(fn, a, k)
        case .filter(let v, let name, let args, let kwargs):
            return try applyFilter(name, try eval(v, f), args, kwargs, f)
        case .test(let v, let name, let args, let negated):
            let r = try applyTest(name, try eval(v, f), try args.map { try eval($0, f) })
            return .bool(negated ? !r : r)
        case .neg(let x):
            let v = try eval(x, f)
            switch v {
            case .int(let i):
                guard i != Int.min else { throw fail(.runtime, "integer overflow") }
                return .int(-i)
            case .bool(let b): return .int(b ? -1 : 0)
            case .double(let d): return .double(-d)
            case .undefined(let m): throw fail(.undefined, m)
            default: throw fail(.type, "bad operand type for unary -: '\(v.typeName)'")
            }
        case .pos(let x):
            let v = try eval(x, f)
            switch v {
            case .int, .double: return v
            case .bool(let b): return .int(b ? 1 : 0)
            case .undefined(let m): throw fail(.undefined, m)
            default: throw fail(.type, "bad operand type for unary +: '\(v.typeName)'")
            }
        case .not(let x): return .bool(!(try eval(x, f).truthy))
        case .and(let a, let b):
            let l = try eval(a, f)
            return l.truthy ? try eval(b, f) : l
        case .or(let a, let b):
            let l = try eval(a, f)
            return l.truthy ? l : try eval(b, f)
        case .binary(let op, let a, let b):
            return try binary(op, try eval(a, f), try eval(b, f))
        case .compare(let first, let ops):
            var left = try eval(first, f)
            for (op, re) in ops {
                let right = try eval(re, f)
                if !(try compare(op, left, right)) { return .bool(false) }
                left = right
            }
            return .bool(true)
        case .concat(let xs):
            return .string(try xs.map { pyStr(try eval($0, f)) }.joined())
        case .cond(let test, let then, let otherwise):
            if try eval(test, f).truthy { return try eval(then, f) }
            if let otherwise { return try eval(otherwise, f) }
            return .undefined("the inline if-expression evaluated to false and no else section was defined")
        }
    }

    func call(_ fn: RValue, _ a: [RValue], _ k: [(String, RValue)]) throws -> RValue {
        switch fn {
        case .callable(let c): return try c.fn(self, a, k)
        case .undefined(let m): throw fail(.undefined, m)
        default: throw fail(.type, "'\(fn.typeName)' object is not callable")
        }
    }

    func compare(_ op: String, _ l: RValue, _ r: RValue) throws -> Bool {
        switch op {
        case "==": return pyEquals(l, r)
        case "!=": return !pyEquals(l, r)
        case "in": return try contains(r, l)
        case "notin": return !(try contains(r, l))
        default:
            if case .undefined(let m) = l { throw fail(.undefined, m) }
            if case .undefined(let m) = r { throw fail(.undefined, m) }
            guard let c = pyCompare(l, r) else {
                throw fail(.type, "'\(op)' not supported between instances of '\(l.typeName)' and '\(r.typeName)'")
            }
            switch op {
            case "<": return c < 0
            case ">": return c > 0
            case "<=": return c <= 0
            default: return c >= 0
            }
        }
    }

    func contains(_ container: RValue, _ item: RValue) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let sub) = item else {
                throw fail(.type, "'in <string>' requires string as left operand, not \(item.typeName)")
            }
            return sub.isEmpty || s.contains(sub)
        case .list(let a), .tuple(let a): return a.contains { pyEquals($0, item) }
        case .dict(let d): return d.index(of: item) != nil
        case .undefined: return false
        default: throw fail(.type, "argument of type '\(container.typeName)' is not iterable")
        }
    }

    func binary(_ op: String, _ l: RValue, _ r: RValue) throws -> RValue {
        if case .undefined(let m) = l { throw fail(.undefined, m) }
        if case .undefined(let m) = r { throw fail(.undefined, m) }
        func unsupported() -> ChatTemplateError {
            fail(.type, "unsupported operand type(s) for \(op): '\(l.typeName)' and '\(r.typeName)'")
        }
        if let x = pyNumeric(l), let y = pyNumeric(r) {
            if case .int(let p) = x, case .int(let q) = y {
                switch op {
                case "+": let (v, o) = p.addingReportingOverflow(q); if o { throw fail(.runtime, "integer overflow") }; return .int(v)
                case "-": let (v, o) = p.subtractingReportingOverflow(q); if o { throw fail(.runtime, "integer overflow") }; return .int(v)
                case "*": let (v, o) = p.multipliedReportingOverflow(by: q); if o { throw fail(.runtime, "integer overflow") }; return .int(v)
                case "/":
                    guard q != 0 else { throw fail(.runtime, "division by zero") }
                    return .double(Double(p) / Double(q))
                case "//":
                    guard q != 0 else { throw fail(.runtime, "integer division or modulo by zero") }
                    guard !(p == Int.min && q == -1) else { throw fail(.runtime, "integer overflow") }
                    var d = p / q
                    if (p % q != 0) && ((p < 0) != (q < 0)) { d -= 1 }
                    return .int(d)
                case "%":
                    guard q != 0 else { throw fail(.runtime, "integer division or modulo by zero") }
                    guard q != -1 else { return .int(0) }
                    var m = p % q
                    if m != 0 && ((m < 0) != (q < 0)) { m += q }
                    return .int(m)
                case "**":
                    if q < 0 { return .double(pow(Double(p), Double(q))) }
                    var result = 1, base = p, e = q
                    while e > 0 {
                        if e & 1 == 1 {
                            let (v, o) = result.multipliedReportingOverflow(by: base)
                            if o { throw fail(.runtime, "integer overflow") }
                            result = v
                        }
                        e >>= 1
                        if e > 0 {
                            let (b2, o) = base.multipliedReportingOverflow(by: base)
                            if o { throw fail(.runtime, "integer overflow") }
                            base = b2
                        }
                    }
                    return .int(result)
                default: throw unsupported()
                }
            }
            let p = pyAsDouble(x), q = pyAsDouble(y)
            switch op {
            case "+": return .double(p + q)
            case "-": return .double(p - q)
            case "*": return .double(p * q)
            case "/":
                guard q != 0 else { throw fail(.runtime, "float division by zero") }
                return .double(p / q)
            case "//":
                guard q != 0 else { throw fail(.runtime, "float floor division by zero") }
                return .double((p / q).rounded(.down))
            case "%":
                guard q != 0 else { throw fail(.runtime, "float modulo") }
                var m = fmod(p, q)
                if m != 0 && ((m < 0) != (q < 0)) { m += q }
                return .double(m)
            case "**": return .double(pow(p, q))
            default: throw unsupported()
            }
        }
        switch (op, l, r) {
        case ("+", .string(let a), .string(let b)): return .string(a + b)
        case ("+", .string, _): throw fail(.type, "can only concatenate str (not \"\(r.typeName)\") to str")
        case ("+", .list(let a), .list(let b)): return .list(a + b)
        case ("+", .tuple(let a), .tuple(let b)): return .tuple(a + b)
        case ("+", .list, _): throw fail(.type, "can only concatenate list (not \"\(r.typeName)\") to list")
        case ("*", .string(let s), _), ("*", _, .string(let s)):
            guard case .int(let n)? = pyNumeric(l.isString ? r : l) else { throw fail(.type, "can't multiply sequence by non-int of type '\((l.isString ? r : l).typeName)'") }
            if n <= 0 { return .string("") }
            let (bytes, over) = s.utf8.count.multipliedReportingOverflow(by: n)
            guard !over, bytes <= limits.maxOutputBytes else {
                throw fail(.limit, "string repetition exceeds the output limit")
            }
            return .string(String(repeating: s, count: n))
        case ("*", .list(let a), _), ("*", _, .list(let a)):
            guard case .int(let n)? = pyNumeric(l.isList ? r : l) else { throw fail(.type, "can't multiply sequence by non-int") }
            if n <= 0 || a.isEmpty { return .list([]) }
            let (items, over) = a.count.multipliedReportingOverflow(by: n)
            guard !over, items <= limits.maxIterations else {
                throw fail(.limit, "list repetition exceeds the iteration limit")
            }
            return .list(Array([[RValue]](repeating: a, count: n).joined()))
        case ("%", .string(let fmt), _):
            if case .tuple(let args) = r { return .string(try printf(fmt, args)) }
            return .string(try printf(fmt, [r]))
        default: throw unsupported()
        }
    }

    // MARK: attribute / item access (jinja2 sandbox getattr / getitem)

    func getattr(_ obj: RValue, _ name: String) throws -> RValue {
        switch obj {
        case .undefined(let m): throw fail(.undefined, m)
        case .dict(let d):
            if let m = method(obj, name) { return m }
            if let v = d[.string(name)] { return v }
            return .undefined("'dict object' has no attribute '\(name)'")
        case .namespace(let ns):
            if let v = ns[name] { return v }
            return .undefined("'\(obj.typeName) object' has no attribute '\(name)'")
        case .loop(let l):
            return l.attr(name) ?? .undefined("'LoopContext object' has no attribute '\(name)'")
        default:
            if let m = method(obj, name) { return m }
            return .undefined("'\(obj.typeName == "NoneType" ? "None" : obj.typeName + " object")' has no attribute '\(name)'")
        }
    }

    func getitem(_ obj: RValue, _ key: RValue) throws -> RValue {
        switch obj {
        case .undefined(let m): throw fail(.undefined, m)
        case .dict(let d):
            if let v = d[key] { return v }
        case .list(let a), .tuple(let a):
            if case .int(var i)? = pyNumeric(key), !(key.isDouble) {
                if i < 0 { i += a.count }
                if i >= 0 && i < a.count { return a[i] }
                return .undefined("'\(obj.typeName) object' has no element \(pyRepr(key))")
            }
        case .string(let s):
            if case .int(var i)? = pyNumeric(key), !(key.isDouble) {
                let u = Array(s.unicodeScalars)
                if i < 0 { i += u.count }
                if i >= 0 && i < u.count { return .string(String(u[i])) }
                return .undefined("'str object' has no element \(pyRepr(key))")
            }
        case .namespace(let ns):
            if case .string(let k) = key, let v = ns[k] { return v }
        default: break
        }
        if case .string(let name) = key {
            if let m = method(obj, name) { return m }
            return .undefined("'\(obj.typeName) object' has no attribute '\(name)'")
        }
        return .undefined("'\(obj.typeName) object' has no element \(pyRepr(key))")
    }

    func slice(_ obj: RValue, _ a: RValue?, _ b: RValue?, _ c: RValue?) throws -> RValue {
        if case .undefined(let m) = obj { throw fail(.undefined, m) }
        func intOrNil(_ v: RValue?) throws -> Int? {
            guard let v else { return nil }
            switch v {
            case .none: return nil
            case .int(let i): return i
            case .bool(let b): return b ? 1 : 0
            case .undefined(let m): throw fail(.undefined, m)
            default: throw fail(.type, "slice indices must be integers or None")
            }
        }
        let step = try intOrNil(c) ?? 1
        guard step != 0 else { throw fail(.runtime, "slice step cannot be zero") }
        func indices(_ n: Int) throws -> [Int] {
            // CPython PySlice_AdjustIndices.
            var start: Int, stop: Int
            if let s = try intOrNil(a) {
                start = s < 0 ? max(s + n, step < 0 ? -1 : 0) : min(s, step < 0 ? n - 1 : n)
            } else { start = step < 0 ? n - 1 : 0 }
            if let e = try intOrNil(b) {
                stop = e < 0 ? max(e + n, step < 0 ? -1 : 0) : min(e, step < 0 ? n - 1 : n)
            } else { stop = step < 0 ? -1 : n }
            var r: [Int] = []
            var i = start
            while step > 0 ? i < stop : i > stop {
                r.append(i)
                let (next, over) = i.addingReportingOverflow(step)
                if over { break }
                i = next
            }
            return r
        }
        switch obj {
        case .list(let x): return .list(try indices(x.count).map { x[$0] })
        case .tuple(let x): return .tuple(try indices(x.count).map { x[$0] })
        case .string(let s):
            let u = Array(s.unicodeScalars)
            var v = String.UnicodeScalarView()
            for i in try indices(u.count) { v.append(u[i]) }
            return .string(String(v))
        case .dict: throw fail(.type, "unhashable type: 'slice'")
        default:
            // jinja2 compiles slices to plain Python subscripts (no Undefined fallback).
            throw fail(.type, "'\(obj.typeName)' object is not subscriptable")
        }
    }
}

extension RValue {
    var isString: Bool { if case .string = self { return true }; return false }
    var isList: Bool { if case .list = self { return true }; return false }
    var isDouble: Bool { if case .double = self { return true }; return false }
}
