import Foundation

enum Const: Sendable {
    case none, bool(Bool), int(Int), double(Double), string(String)
}

indirect enum Expr: Sendable {
    case const(Const)
    case name(String)
    case list([Expr])
    case tuple([Expr])
    case dict([(Expr, Expr)])
    case getattr(Expr, String)
    case getitem(Expr, Expr)
    case slice(Expr, Expr?, Expr?, Expr?)
    case call(Expr, [Expr], [(String, Expr)])
    case filter(Expr, String, [Expr], [(String, Expr)])
    case test(Expr, String, [Expr], negated: Bool)
    case neg(Expr), pos(Expr), not(Expr)
    case binary(String, Expr, Expr)
    case and(Expr, Expr), or(Expr, Expr)
    case compare(Expr, [(String, Expr)])
    case concat([Expr])
    case cond(test: Expr, then: Expr, otherwise: Expr?)
}

indirect enum Target: Sendable {
    case name(String)
    case attr(String, String)  // namespace attribute assignment: ns.x
    case tuple([Target])
}

struct FilterCall: Sendable {
    let name: String
    let args: [Expr]
    let kwargs: [(String, Expr)]
}

struct Node: Sendable {
    let line: Int
    let kind: NodeKind
}

struct MacroDef: Sendable {
    let name: String
    let params: [(String, Expr?)]
    let body: [Node]
}

indirect enum NodeKind: Sendable {
    case text(String)
    case output(Expr)
    case ifChain([(Expr, [Node])], otherwise: [Node])
    case forLoop(target: Target, iter: Expr, cond: Expr?, body: [Node], otherwise: [Node])
    case set(Target, Expr)
    case setBlock(Target, [Node], [FilterCall])
    case macro(MacroDef)
    case filterBlock([FilterCall], [Node])
    case breakLoop, continueLoop
    case generation([Node])
}

/// Recursive-descent parser following jinja2's grammar and operator precedence.
struct JinjaParser {
    let toks: [Token]
    var i = 0
    // Nesting guard: hostile templates must not overflow the stack of the recursive descent / evaluator.
    var depth = 0
    static let maxDepth = 32

    mutating func enter() throws {
        depth += 1
        if depth > Self.maxDepth { throw fail("template nested too deeply (more than \(Self.maxDepth) levels)") }
    }

    init(tokens: [Token]) { toks = tokens }

    var cur: Token { toks[min(i, toks.count - 1)] }
    func peek(_ k: Int = 1) -> Token { toks[min(i + k, toks.count - 1)] }
    mutating func advance() { if i < toks.count - 1 { i += 1 } }

    func fail(_ msg: String, _ t: Token? = nil) -> ChatTemplateError {
        let t = t ?? cur
        return ChatTemplateError(kind: .syntax, message: msg, line: t.line, column: t.col)
    }

    func describe(_ k: TokKind) -> String {
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

    mutating func parseTemplate() throws -> [Node] {
        let (body, end) = try parseBody(until: [])
        if let end { throw fail("unexpected '\(end)' outside of any block", cur) }
        return body
    }

    /// Parses nodes until a `{% name %}` with name in `until`; leaves `cur` on that name token.
    mutating func parseBody(until: Set<String>) throws -> ([Node], String?) {
        var nodes: [Node] = []
        while true {
            let t = cur
            switch t.kind {
            case .eof:
                if !until.isEmpty {
                    throw fail("unexpected end of template, expected one of: " + until.sorted().map { "'\($0)'" }.joined(separator: ", "))
                }
                return (nodes, nil)
            case .text(let s):
                nodes.append(Node(line: t.line, kind: .text(s)))
                advance()
            case .varBegin:
                advance()
                let e = try parseTuple()
                guard case .varEnd = cur.kind else { throw fail("expected end of print statement '}}', got \(describe(cur.kind))") }
                advance()
                nodes.append(Node(line: t.line, kind: .output(e)))
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

    mutating func parseStatement(_ kw: String, line: Int) throws -> Node {
        try enter()
        defer { depth -= 1 }
        let kwTok = cur
        advance()
        switch kw {
        case "if":
            var branches: [(Expr, [Node])] = []
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
                    return Node(line: line, kind: .ifChain(branches, otherwise: eb))
                }
                try expectBlockEnd()
                return Node(line: line, kind: .ifChain(branches, otherwise: []))
            }
        case "for":
            let target = try parseAssignTarget(allowAttr: false)
            guard isName("in") else { throw fail("expected 'in' in for loop, got \(describe(cur.kind))") }
            advance()
            let iter = try parseTuple(withCond: false)
            var cond: Expr? = nil
            if isName("if") { advance(); cond = try parseExpression() }
            if isName("recursive") { throw fail("recursive for loops are not supported") }
            try expectBlockEnd()
            let (body, end) = try parseBody(until: ["else", "endfor"])
            advance()
            var otherwise: [Node] = []
            if end == "else" {
                try expectBlockEnd()
                (otherwise, _) = try parseBody(until: ["endfor"])
                advance()
            }
            try expectBlockEnd()
            return Node(line: line, kind: .forLoop(target: target, iter: iter, cond: cond, body: body, otherwise: otherwise))
        case "set":
            let target = try parseAssignTarget(allowAttr: true)
            if isOp("=") {
                advance()
                let e = try parseTuple()
                try expectBlockEnd()
                return Node(line: line, kind: .set(target, e))
            }
            var filters: [FilterCall] = []
            while isOp("|") { advance(); filters.append(try parseFilterCall()) }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endset"])
            advance()
            try expectBlockEnd()
            return Node(line: line, kind: .setBlock(target, body, filters))
        case "macro":
            let name = try expectName()
            try expectOp("(")
            var params: [(String, Expr?)] = []
            while !isOp(")") {
                if !params.isEmpty { try expectOp(",") }
                if isOp(")") { break }
                let p = try expectName()
                var def: Expr? = nil
                if isOp("=") { advance(); def = try parseExpression() }
                params.append((p, def))
            }
            advance()
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endmacro"])
            advance()
            if case .name = cur.kind { advance() }  // optional `endmacro name`
            try expectBlockEnd()
            return Node(line: line, kind: .macro(MacroDef(name: name, params: params, body: body)))
        case "filter":
            var filters = [try parseFilterCall()]
            while isOp("|") { advance(); filters.append(try parseFilterCall()) }
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endfilter"])
            advance()
            try expectBlockEnd()
            return Node(line: line, kind: .filterBlock(filters, body))
        case "break", "continue":
            try expectBlockEnd()
            return Node(line: line, kind: kw == "break" ? .breakLoop : .continueLoop)
        case "generation":
            try expectBlockEnd()
            let (body, _) = try parseBody(until: ["endgeneration"])
            advance()
            try expectBlockEnd()
            return Node(line: line, kind: .generation(body))
        case "endif", "endfor", "endset", "endmacro", "endfilter", "endraw", "endgeneration", "elif", "else":
            throw fail("unexpected '\(kw)' (no matching open block)", kwTok)
        default:
            throw fail("unsupported tag '\(kw)'", kwTok)
        }
    }

    mutating func parseAssignTarget(allowAttr: Bool) throws -> Target {
        func one(_ p: inout JinjaParser) throws -> Target {
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

    mutating func parseFilterCall() throws -> FilterCall {
        var name = try expectName()
        while isOp(".") { advance(); name += "." + (try expectName()) }
        var args: [Expr] = []
        var kwargs: [(String, Expr)] = []
        if isOp("(") { (args, kwargs) = try parseCallArgs() }
        return FilterCall(name: name, args: args, kwargs: kwargs)
    }

    // MARK: expressions (jinja2 precedence)

    mutating func parseTuple(withCond: Bool = true) throws -> Expr {
        var items: [Expr] = []
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

    mutating func parseExpression() throws -> Expr {
        try enter()
        defer { depth -= 1 }
        var e = try parseOr()
        while isName("if") {
            advance()
            let test = try parseOr()
            var otherwise: Expr? = nil
            if isName("else") { advance(); otherwise = try parseExpression() }
            e = .cond(test: test, then: e, otherwise: otherwise)
        }
        return e
    }

    mutating func parseOr() throws -> Expr {
        var l = try parseAnd()
        while isName("or") { advance(); l = .or(l, try parseAnd()) }
        return l
    }
    mutating func parseAnd() throws -> Expr {
        var l = try parseNot()
        while isName("and") { advance(); l = .and(l, try parseNot()) }
        return l
    }
    mutating func parseNot() throws -> Expr {
        if isName("not") {
            try enter()
            defer { depth -= 1 }
            advance()
            return .not(try parseNot())
        }
        return try parseCompare()
    }
    mutating func parseCompare() throws -> Expr {
        let first = try parseMath1()
        var ops: [(String, Expr)] = []
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
    mutating func parseMath1() throws -> Expr {
        var l = try parseConcat()
        while case .op(let o) = cur.kind, o == "+" || o == "-" { advance(); l = .binary(o, l, try parseConcat()) }
        return l
    }
    mutating func parseConcat() throws -> Expr {
        var args = [try parseMath2()]
        while isOp("~") { advance(); args.append(try parseMath2()) }
        return args.count == 1 ? args[0] : .concat(args)
    }
    mutating func parseMath2() throws -> Expr {
        var l = try parsePow()
        while case .op(let o) = cur.kind, ["*", "/", "//", "%"].contains(o) { advance(); l = .binary(o, l, try parsePow()) }
        return l
    }
    mutating func parsePow() throws -> Expr {
        var l = try parseUnary()
        while isOp("**") { advance(); l = .binary("**", l, try parseUnary()) }
        return l
    }
    mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        var node: Expr
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

    mutating func parsePrimary() throws -> Expr {
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
            var items: [Expr] = []
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
            var items: [Expr] = []
            while !isOp("]") {
                if !items.isEmpty { try expectOp(","); if isOp("]") { break } }
                items.append(try parseExpression())
            }
            advance()
            return .list(items)
        case .op("{"):
            advance()
            var items: [(Expr, Expr)] = []
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

    mutating func parsePostfix(_ start: Expr) throws -> Expr {
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

    mutating func parseSubscript(_ obj: Expr) throws -> Expr {
        // Already past '['.
        var parts: [Expr?] = []
        var isSlice = false
        var current: Expr? = nil
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

    mutating func parseCallArgs() throws -> ([Expr], [(String, Expr)]) {
        try expectOp("(")
        var args: [Expr] = []
        var kwargs: [(String, Expr)] = []
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

    mutating func parseFilterExpr(_ start: Expr) throws -> Expr {
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
                var args: [Expr] = []
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
