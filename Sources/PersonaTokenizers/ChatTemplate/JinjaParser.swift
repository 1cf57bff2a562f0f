import Foundation

enum JConst: Sendable {
    case none, bool(Bool), int(Int), double(Double), string(String)
}

indirect enum JExpr: Sendable {
    case const(JConst)
    case name(String)
    case list([JExpr])
    case tuple([JExpr])
    case dict([(JExpr, JExpr)])
    case getattr(JExpr, String)
    case getitem(JExpr, JExpr)
    case slice(JExpr, JExpr?, JExpr?, JExpr?)
    case call(JExpr, [JExpr], [(String, JExpr)])
    case filter(JExpr, String, [JExpr], [(String, JExpr)])
    case test(JExpr, String, [JExpr], negated: Bool)
    case neg(JExpr), pos(JExpr), not(JExpr)
    case binary(String, JExpr, JExpr)
    case and(JExpr, JExpr), or(JExpr, JExpr)
    case compare(JExpr, [(String, JExpr)])
    case concat([JExpr])
    case cond(test: JExpr, then: JExpr, otherwise: JExpr?)
}

indirect enum JTarget: Sendable {
    case name(String)
    case attr(String, String)  // namespace attribute assignment: ns.x
    case tuple([JTarget])
}

struct JFilterCall: Sendable {
    let name: String
    let args: [JExpr]
    let kwargs: [(String, JExpr)]
}

struct JNode: Sendable {
    let line: Int
    let kind: JNodeKind
}

struct JMacroDef: Sendable {
    let name: String
    let params: [(String, JExpr?)]
    let body: [JNode]
}

indirect enum JNodeKind: Sendable {
    case text(String)
    case output(JExpr)
    case ifChain([(JExpr, [JNode])], otherwise: [JNode])
    case forLoop(target: JTarget, iter: JExpr, cond: JExpr?, body: [JNode], otherwise: [JNode])
    case set(JTarget, JExpr)
    case setBlock(JTarget, [JNode], [JFilterCall])
    case macro(JMacroDef)
    case filterBlock([JFilterCall], [JNode])
    case breakLoop, continueLoop
    case generation([JNode])
}

/// Recursive-descent parser following jinja2's grammar and operator precedence.
struct JinjaParser {
    let toks: [JToken]
    var i = 0
    // Nesting guard: hostile templates must not overflow the stack of the recursive descent / evaluator.
    var depth = 0
    static let maxDepth = 64

    mutating func enter() throws {
        depth += 1
        if depth > Self.maxDepth { throw fail("template nested too deeply (more than \(Self.maxDepth) levels)") }
    }

    init(tokens: [JToken]) { toks = tokens }

    var cur: JToken { toks[min(i, toks.count - 1)] }
    func peek(_ k: Int = 1) -> JToken { toks[min(i + k, toks.count - 1)] }
    mutating func advance() { if i < toks.count - 1 { i += 1 } }

    func fail(_ msg: String, _ t: JToken? = nil) -> ChatTemplateError {
        let t = t ?? cur
        return ChatTemplateError(kind: .syntax, message: msg, line: t.line, column: t.col)
    }

    func describe(_ k: JTokKind) -> String {
        switch k {
        case .text: return "template text"
        case .varBegin: return "'{{'"
        case .varEnd: return "end of print statement '}}'"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "end of statement block '%}'"
        case .name(let n): return "'\(n)'"
        case .string: return "string literal"
        case .int, .float: return "number"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }

    func isOp(_ o: String) -> Bool { if case .op(let x) = cur.kind { return x == o }; return false }
    func isName(_ n: String) -> Bool { if case .name(let x) = cur.kind { return x == n }; return false }

    mutating func expectOp(_ o: String) throws {
        guard isOp(o) else { throw fail("expected '\(o)', got \(describe(cur.kind))") }
        advance()
    }
    mutating func expectName() throws -> String {
        guard case .name(let n) = cur.kind else { throw fail("expected a name, got \(describe(cur.kind))") }
        advance()
        return n
    }
    mutating func expectBlockEnd() throws {
        guard case .blockEnd = cur.kind else { throw fail("expected end of statement block '%}', got \(describe(cur.kind))") }
        advance()
    }

    // MARK: statements

    mutating func parseTemplate() throws -> [JNode] {
        let (body, end) = try parseBody(until: [])
        if let end { throw fail("unexpected '\(end)' outside of any block", cur) }
        return body
    }

    /// Parses nodes until a `{% name %}` with name in `until`; leaves `cur` on that name token.
    mutating func parseBody(until: Set<String>) throws -> ([JNode], String?) {
        var nodes: [JNode] = []
        while true {
            let t = cur
            switch t.kind {
            case .eof:
                if !until.isEmpty {
                    throw fail("unexpected end of template, expected one of: " + until.sorted().map { "'\($0)'" }.joined(separator: ", "))
                }
                return (nodes, nil)
            case .text(let s):
                nodes.append(JNode(line: t.line, kind: .text(s)))
                advance()
            case .varBegin:
                advance()
                let e = try parseTuple()
                guard case .varEnd = cur.kind else { throw fail("expected end of print statement '}}', got \(describe(cur.kind))") }
                advance()
                nodes.append(JNode(line: t.line, kind: .output(e)))
            case .blockBegin:
                advance()
                guard case .name(let kw) = cur.kind else { throw fail("expected a statement name, got \(describe(cur.kind))") }
                if until.contains(kw) { return (nodes, kw) }
                nodes.append(try parseStatement(kw, line: t.line))
            default:
                throw fail("unexpected \(describe(t.kind))")
            }
        }
    }

    mutating func parseStatement(_ kw: String, line: Int) throws -> JNode {
        try enter()
        defer { depth -= 1 }
        let kwTok = cur
        advance()
        switch kw {
        case "if":
            var branches: [(JExpr, [JNode])] = []
            var cond = try parseExpression()
            try expectBlockEnd()
            while true {
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                branches.append((cond, body))
                advance()
                if end == "elif" {
                    cond = try parseExpression()
                    try expectBlockEnd()
                    continue
                }
                if end == "else" {
                    try expectBlockEnd()
                    let (eb, _) = try parseBody(until: ["endif"])
                    advance()
                    try expectBlockEnd()
                    return JNode(line: line, kind: .ifChain(branches, otherwise: eb))
                }
                try expectBlockEnd()
                return JNode(line: line, kind: .ifChain(branches, otherwise: []))
            }
        case "for":
            let target = try parseAssignTarget(allowAttr: false)
            guard isName("in") else { throw fail("expected 'in' in for loop, got \(describe(cur.kind))") }
            advance()
            let iter = try parseTuple(withCond: false)
            var cond: JExpr? = nil
            if isName("if") { advance(); cond = try parseExpression() }
            if isName("recursive") { throw fail("recursive for loops are not supported") }
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["else", "endfor"])
            advance()
            var otherwise: [JNode] = []
            if end == "else" {
                try expectBlockEnd()
                (otherwise, _) = try parseBody(until: ["endfor"])
                advance()
            }
            try expectBlockEnd()
            return JNode(line: line, kind: .forLoop(target: target, iter: iter, cond: cond, body: body, otherwise: otherwise))
        case "set":
            let target = try parseAssignTarget(allowAttr: true)
            if isOp("=") {
                advance()
                let e = try parseTuple()
                try expectBlockEnd()
                return JNode(line: line, kind: .set(target, e))
            }
            var filters: [JFilterCall] = []
            while isOp("|") { advance(); filters.append(try parseFilterCall()) }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endset"])
            advance()
            try expectBlockEnd()
            return JNode(line: line, kind: .setBlock(target, body, filters))
        case "macro":
            let name = try expectName()
            try expectOp("(")
            var params: [(String, JExpr?)] = []
            while !isOp(")") {
                if !params.isEmpty { try expectOp(",") }
                if isOp(")") { break }
                let p = try expectName()
                var def: JExpr? = nil
                if isOp("=") { advance(); def = try parseExpression() }
                params.append((p, def))
            }
            advance()
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endmacro"])
            advance()
            if case .name = cur.kind { advance() }  // optional `endmacro name`
            try expectBlockEnd()
            return JNode(line: line, kind: .macro(JMacroDef(name: name, params: params, body: body)))
        case "filter":
            var filters = [try parseFilterCall()]
            while isOp("|") { advance(); filters.append(try parseFilterCall()) }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endfilter"])
            advance()
            try expectBlockEnd()
            return JNode(line: line, kind: .filterBlock(filters, body))
        case "break", "continue":
            try expectBlockEnd()
            return JNode(line: line, kind: kw == "break" ? .breakLoop : .continueLoop)
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            advance()
            try expectBlockEnd()
            return JNode(line: line, kind: .generation(body))
        case "endif", "endfor", "endset", "endmacro", "endfilter", "endraw", "endgeneration", "elif", "else":
            throw fail("unexpected '\(kw)' (no matching open block)", kwTok)
        default:
            throw fail("unsupported tag '\(kw)'", kwTok)
        }
    }

    mutating func parseAssignTarget(allowAttr: Bool) throws -> JTarget {
        func one(_ p: inout JinjaParser) throws -> JTarget {
            let n = try p.expectName()
            if allowAttr, p.isOp(".") {
                p.advance()
                let a = try p.expectName()
                return .attr(n, a)
            }
            return .name(n)
        }
        var parens = false
        if isOp("(") { parens = true; advance() }
        var items = [try one(&self)]
        var isTuple = false
        while isOp(",") {
            isTuple = true
            advance()
            if case .name = cur.kind { items.append(try one(&self)) } else { break }
        }
        if parens { try expectOp(")") }
        return isTuple || parens && items.count > 1 ? .tuple(items) : items[0]
    }

    mutating func parseFilterCall() throws -> JFilterCall {
        var name = try expectName()
        while isOp(".") { advance(); name += "." + (try expectName()) }
        var args: [JExpr] = []
        var kwargs: [(String, JExpr)] = []
        if isOp("(") { (args, kwargs) = try parseCallArgs() }
        return JFilterCall(name: name, args: args, kwargs: kwargs)
    }

    // MARK: expressions (jinja2 precedence)

    mutating func parseTuple(withCond: Bool = true) throws -> JExpr {
        var items: [JExpr] = []
        var isTuple = false
        while true {
            if !items.isEmpty {
                guard isOp(",") else { break }
                advance()
                isTuple = true
            }
            if tupleEnds() { break }
            items.append(withCond ? try parseExpression() : try parseOr())
        }
        if !isTuple {
            guard let first = items.first else { throw fail("expected an expression, got \(describe(cur.kind))") }
            return first
        }
        return .tuple(items)
    }

    func tupleEnds() -> Bool {
        switch cur.kind {
        case .varEnd, .blockEnd, .eof: return true
        case .op(let o): return o == ")" || o == "]" || o == "}"
        case .name(let n): return n == "in" || n == "recursive" || n == "if"
        default: return false
        }
    }

    mutating func parseExpression() throws -> JExpr {
        try enter()
        defer { depth -= 1 }
        var e = try parseOr()
        while isName("if") {
            advance()
            let test = try parseOr()
            var otherwise: JExpr? = nil
            if isName("else") { advance(); otherwise = try parseExpression() }
            e = .cond(test: test, then: e, otherwise: otherwise)
        }
        return e
    }

    mutating func parseOr() throws -> JExpr {
        var l = try parseAnd()
        while isName("or") { advance(); l = .or(l, try parseAnd()) }
        return l
    }
    mutating func parseAnd() throws -> JExpr {
        var l = try parseNot()
        while isName("and") { advance(); l = .and(l, try parseNot()) }
        return l
    }
    mutating func parseNot() throws -> JExpr {
        if isName("not") {
            try enter()
            defer { depth -= 1 }
            advance()
            return .not(try parseNot())
        }
        return try parseCompare()
    }
    mutating func parseCompare() throws -> JExpr {
        let first = try parseMath1()
        var ops: [(String, JExpr)] = []
        while true {
            if case .op(let o) = cur.kind, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                advance(); ops.append((o, try parseMath1()))
            } else if isName("in") {
                advance(); ops.append(("in", try parseMath1()))
            } else if isName("not"), case .name("in") = peek().kind {
                advance(); advance(); ops.append(("notin", try parseMath1()))
            } else { break }
        }
        return ops.isEmpty ? first : .compare(first, ops)
    }
    mutating func parseMath1() throws -> JExpr {
        var l = try parseConcat()
        while case .op(let o) = cur.kind, o == "+" || o == "-" { advance(); l = .binary(o, l, try parseConcat()) }
        return l
    }
    mutating func parseConcat() throws -> JExpr {
        var args = [try parseMath2()]
        while isOp("~") { advance(); args.append(try parseMath2()) }
        return args.count == 1 ? args[0] : .concat(args)
    }
    mutating func parseMath2() throws -> JExpr {
        var l = try parsePow()
        while case .op(let o) = cur.kind, ["*", "/", "//", "%"].contains(o) { advance(); l = .binary(o, l, try parsePow()) }
        return l
    }
    mutating func parsePow() throws -> JExpr {
        var l = try parseUnary()
        while isOp("**") { advance(); l = .binary("**", l, try parseUnary()) }
        return l
    }
    mutating func parseUnary(withFilter: Bool = true) throws -> JExpr {
        var node: JExpr
        if isOp("-") || isOp("+") {
            try enter()
            defer { depth -= 1 }
            let neg = isOp("-")
            advance()
            let operand = try parseUnary(withFilter: false)
            node = neg ? .neg(operand) : .pos(operand)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    mutating func parsePrimary() throws -> JExpr {
        let t = cur
        switch t.kind {
        case .name(let n):
            advance()
            switch n {
            case "true", "True": return .const(.bool(true))
            case "false", "False": return .const(.bool(false))
            case "none", "None": return .const(.none)
            default: return .name(n)
            }
        case .string(var s):
            advance()
            while case .string(let more) = cur.kind { s += more; advance() }
            return .const(.string(s))
        case .int(let v): advance(); return .const(.int(v))
        case .float(let v): advance(); return .const(.double(v))
        case .op("("):
            advance()
            if isOp(")") { advance(); return .tuple([]) }
            var items: [JExpr] = []
            var isTuple = false
            while true {
                items.append(try parseExpression())
                if isOp(",") {
                    isTuple = true
                    advance()
                    if isOp(")") { break }
                    continue
                }
                break
            }
            try expectOp(")")
            return isTuple ? .tuple(items) : items[0]
        case .op("["):
            advance()
            var items: [JExpr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(","); if isOp("]") { break } }
                items.append(try parseExpression())
            }
            advance()
            return .list(items)
        case .op("{"):
            advance()
            var items: [(JExpr, JExpr)] = []
            while !isOp("}") {
                if !items.isEmpty { try expectOp(","); if isOp("}") { break } }
                let k = try parseExpression()
                try expectOp(":")
                items.append((k, try parseExpression()))
            }
            advance()
            return .dict(items)
        default:
            throw fail("expected an expression, got \(describe(t.kind))")
        }
    }

    mutating func parsePostfix(_ start: JExpr) throws -> JExpr {
        var node = start
        while true {
            if isOp(".") {
                advance()
                switch cur.kind {
                case .name(let n): advance(); node = .getattr(node, n)
                case .int(let v): advance(); node = .getitem(node, .const(.int(v)))
                default: throw fail("expected an attribute name after '.', got \(describe(cur.kind))")
                }
            } else if isOp("[") {
                advance()
                node = try parseSubscript(node)
            } else if isOp("(") {
                let (a, k) = try parseCallArgs()
                node = .call(node, a, k)
            } else {
                return node
            }
        }
    }

    mutating func parseSubscript(_ obj: JExpr) throws -> JExpr {
        // Already past '['.
        var parts: [JExpr?] = []
        var isSlice = false
        var current: JExpr? = nil
        while true {
            if isOp("]") { parts.append(current); break }
            if isOp(":") {
                isSlice = true
                parts.append(current)
                current = nil
                advance()
                continue
            }
            if current != nil { throw fail("expected ']' or ':', got \(describe(cur.kind))") }
            current = try parseExpression()
            if isOp(",") { throw fail("tuple subscripts are not supported") }
        }
        advance()  // ']'
        if !isSlice {
            guard let e = parts[0] else { throw fail("empty subscript") }
            return .getitem(obj, e)
        }
        guard parts.count <= 3 else { throw fail("too many ':' in slice") }
        while parts.count < 3 { parts.append(nil) }
        return .slice(obj, parts[0], parts[1], parts[2])
    }

    mutating func parseCallArgs() throws -> ([JExpr], [(String, JExpr)]) {
        try expectOp("(")
        var args: [JExpr] = []
        var kwargs: [(String, JExpr)] = []
        while !isOp(")") {
            if !args.isEmpty || !kwargs.isEmpty { try expectOp(","); if isOp(")") { break } }
            if isOp("*") || isOp("**") { throw fail("*args / **kwargs in calls are not supported") }
            if case .name(let n) = cur.kind, case .op("=") = peek().kind {
                advance(); advance()
                kwargs.append((n, try parseExpression()))
            } else {
                if !kwargs.isEmpty { throw fail("positional argument after keyword argument") }
                args.append(try parseExpression())
            }
        }
        advance()
        return (args, kwargs)
    }

    mutating func parseFilterExpr(_ start: JExpr) throws -> JExpr {
        var node = start
        while true {
            if isOp("|") {
                advance()
                let f = try parseFilterCall()
                node = .filter(node, f.name, f.args, f.kwargs)
            } else if isName("is") {
                advance()
                var negated = false
                if isName("not") { advance(); negated = true }
                var name = try expectName()
                while isOp(".") { advance(); name += "." + (try expectName()) }
                var args: [JExpr] = []
                if isOp("(") {
                    let (a, k) = try parseCallArgs()
                    if !k.isEmpty { throw fail("keyword arguments to tests are not supported") }
                    args = a
                } else {
                    var takesArg = false
                    switch cur.kind {
                    case .name(let n): takesArg = !["else", "or", "and"].contains(n)
                        if n == "is" { throw fail("You cannot chain multiple tests with is") }
                    case .string, .int, .float: takesArg = true
                    case .op(let o): takesArg = o == "(" || o == "[" || o == "{"
                    default: break
                    }
                    if takesArg { args = [try parsePostfix(try parsePrimary())] }
                }
                node = .test(node, name, args, negated: negated)
            } else if isOp("(") {
                let (a, k) = try parseCallArgs()
                node = .call(node, a, k)
            } else {
                return node
            }
        }
    }
}
