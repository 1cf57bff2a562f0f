import Foundation

/// Tokens of the template source. Text outside tags is already whitespace-controlled
/// (`-` markers, trim_blocks, lstrip_blocks) exactly as jinja2's lexer does it.
enum JTokKind: Equatable {
    case text(String)
    case varBegin, varEnd, blockBegin, blockEnd
    case name(String)
    case string(String)
    case int(Int)
    case float(Double)
    case op(String)
    case eof
}

struct JToken {
    let kind: JTokKind
    let line: Int
    let col: Int
}

/// Python `str.isspace()` / `re` `\s` for str patterns.
@inline(__always) func isPyWhitespace(_ c: Unicode.Scalar) -> Bool {
    switch c.value {
    case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
    default: return false
    }
}

struct JinjaLexer {
    let s: [Unicode.Scalar]
    var pos = 0
    var tokens: [JToken] = []
    // jinja2 Environment options used by transformers.
    let trimBlocks = true
    let lstripBlocks = true

    init(source: String) {
        // jinja2 normalises \r\n and \r to \n and drops one trailing newline (keep_trailing_newline=False).
        var scalars: [Unicode.Scalar] = []
        scalars.reserveCapacity(source.unicodeScalars.count)
        var prevCR = false
        for c in source.unicodeScalars {
            if c == "\r" { scalars.append("\n"); prevCR = true; continue }
            if c == "\n", prevCR { prevCR = false; continue }
            prevCR = false
            scalars.append(c)
        }
        if scalars.last == "\n" { scalars.removeLast() }
        s = scalars
    }

    func lineCol(_ p: Int) -> (Int, Int) {
        var line = 1, col = 1
        var i = 0
        while i < p && i < s.count {
            if s[i] == "\n" { line += 1; col = 1 } else { col += 1 }
            i += 1
        }
        return (line, col)
    }

    func err(_ msg: String, at p: Int) -> ChatTemplateError {
        let (l, c) = lineCol(p)
        return ChatTemplateError(kind: .syntax, message: msg, line: l, column: c)
    }

    func starts(_ lit: String, at p: Int) -> Bool {
        var i = p
        for c in lit.unicodeScalars {
            guard i < s.count, s[i] == c else { return false }
            i += 1
        }
        return true
    }

    // Line/column bookkeeping is incremental to keep lexing linear.
    var curLine = 1, curCol = 1, curPos = 0
    mutating func lc(_ p: Int) -> (Int, Int) {
        if p < curPos { curLine = 1; curCol = 1; curPos = 0 }
        while curPos < p && curPos < s.count {
            if s[curPos] == "\n" { curLine += 1; curCol = 1 } else { curCol += 1 }
            curPos += 1
        }
        return (curLine, curCol)
    }

    mutating func emit(_ k: JTokKind, at p: Int) {
        let (l, c) = lc(p)
        tokens.append(JToken(kind: k, line: l, col: c))
    }

    mutating func tokenize() throws -> [JToken] {
        var lineStarting = true
        let n = s.count
        while pos < n {
            // Next tag opener.
            var i = pos
            var found = -1
            while i + 1 < n {
                if s[i] == "{", s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#" { found = i; break }
                i += 1
            }
            if found < 0 {
                emit(.text(String(String.UnicodeScalarView(s[pos..<n]))), at: pos)
                pos = n
                break
            }
            let kind = s[found + 1]
            var j = found + 2
            var sign: Unicode.Scalar? = nil
            if j < n, s[j] == "-" || s[j] == "+" { sign = s[j]; j += 1 }
            var text = Array(s[pos..<found])
            if sign == "-" {
                while let last = text.last, isPyWhitespace(last) { text.removeLast() }
            } else if sign != "+", lstripBlocks, kind != "{" {
                let lPos = (text.lastIndex(of: "\n") ?? -1) + 1
                if lPos > 0 || lineStarting {
                    let tail = text[lPos...]
                    if !tail.isEmpty, tail.allSatisfy(isPyWhitespace) { text.removeSubrange(lPos...) }
                }
            }
            if !text.isEmpty { emit(.text(String(String.UnicodeScalarView(text))), at: pos) }

            if kind == "#" {
                var k = j
                while k + 1 < n, !(s[k] == "#" && s[k + 1] == "}") { k += 1 }
                guard k + 1 < n else { throw err("missing end of comment tag", at: found) }
                let stripRight = k - 1 >= j && s[k - 1] == "-"
                pos = k + 2
                if stripRight {
                    while pos < n, isPyWhitespace(s[pos]) { pos += 1 }
                } else if trimBlocks, !(k - 1 >= j && s[k - 1] == "+"), pos < n, s[pos] == "\n" {
                    pos += 1
                }
                lineStarting = s[pos - 1] == "\n"
                continue
            }

            if kind == "%", let rawEnd = try lexRaw(from: j, tagStart: found) {
                pos = rawEnd
                lineStarting = s[pos - 1] == "\n"
                continue
            }

            emit(kind == "{" ? .varBegin : .blockBegin, at: found)
            pos = j
            try lexTag(block: kind == "%", tagStart: found)
            lineStarting = s[pos - 1] == "\n"
        }
        emit(.eof, at: n)
        return tokens
    }

    /// `{% raw %}...{% endraw %}`: emits the body verbatim. Returns the position after the end tag, or nil if not raw.
    mutating func lexRaw(from j: Int, tagStart: Int) throws -> Int? {
        let n = s.count
        var p = j
        while p < n, isPyWhitespace(s[p]) { p += 1 }
        guard starts("raw", at: p) else { return nil }
        p += 3
        while p < n, isPyWhitespace(s[p]) { p += 1 }
        var stripAfterOpen = false
        if p < n, s[p] == "-" { stripAfterOpen = true; p += 1 } else if p < n, s[p] == "+" { p += 1 }
        guard starts("%}", at: p) else { return nil }
        p += 2
        if stripAfterOpen { while p < n, isPyWhitespace(s[p]) { p += 1 } }
        else if trimBlocks, p < n, s[p] == "\n" { p += 1 }
        let bodyStart = p
        // Find {%[-+]? endraw [-+]?%}
        var q = p
        while q + 1 < n {
            if s[q] == "{", s[q + 1] == "%" {
                var r = q + 2
                var sign: Unicode.Scalar? = nil
                if r < n, s[r] == "-" || s[r] == "+" { sign = s[r]; r += 1 }
                while r < n, isPyWhitespace(s[r]) { r += 1 }
                if starts("endraw", at: r) {
                    r += 6
                    while r < n, isPyWhitespace(s[r]) { r += 1 }
                    var endStrip = false, endKeep = false
                    if r < n, s[r] == "-" { endStrip = true; r += 1 } else if r < n, s[r] == "+" { endKeep = true; r += 1 }
                    if starts("%}", at: r) {
                        var body = Array(s[bodyStart..<q])
                        if sign == "-" {
                            while let l = body.last, isPyWhitespace(l) { body.removeLast() }
                        } else if sign != "+", lstripBlocks {
                            let lPos = (body.lastIndex(of: "\n") ?? -1) + 1
                            if lPos > 0 {
                                let tail = body[lPos...]
                                if !tail.isEmpty, tail.allSatisfy(isPyWhitespace) { body.removeSubrange(lPos...) }
                            }
                        }
                        if !body.isEmpty { emit(.text(String(String.UnicodeScalarView(body))), at: bodyStart) }
                        r += 2
                        if endStrip { while r < n, isPyWhitespace(s[r]) { r += 1 } }
                        else if !endKeep, trimBlocks, r < n, s[r] == "\n" { r += 1 }
                        return r
                    }
                }
            }
            q += 1
        }
        throw err("missing end of raw directive", at: tagStart)
    }

    mutating func lexTag(block: Bool, tagStart: Int) throws {
        let n = s.count
        var balance: [Unicode.Scalar] = []
        while true {
            while pos < n, isPyWhitespace(s[pos]) { pos += 1 }
            guard pos < n else {
                throw err("unexpected end of template, expected '\(block ? "%}" : "}}")' to close the tag opened", at: tagStart)
            }
            if balance.isEmpty {
                if block {
                    if starts("-%}", at: pos) {
                        emit(.blockEnd, at: pos); pos += 3
                        while pos < n, isPyWhitespace(s[pos]) { pos += 1 }
                        return
                    }
                    if starts("+%}", at: pos) { emit(.blockEnd, at: pos); pos += 3; return }
                    if starts("%}", at: pos) {
                        emit(.blockEnd, at: pos); pos += 2
                        if trimBlocks, pos < n, s[pos] == "\n" { pos += 1 }
                        return
                    }
                } else {
                    if starts("-}}", at: pos) {
                        emit(.varEnd, at: pos); pos += 3
                        while pos < n, isPyWhitespace(s[pos]) { pos += 1 }
                        return
                    }
                    if starts("}}", at: pos) { emit(.varEnd, at: pos); pos += 2; return }
                }
            }
            let c = s[pos]
            let start = pos
            if isDigit(c) {
                try lexNumber()
                continue
            }
            if isNameStart(c) {
                var e = pos + 1
                while e < n, isNameStart(s[e]) || isDigit(s[e]) { e += 1 }
                emit(.name(String(String.UnicodeScalarView(s[pos..<e]))), at: start)
                pos = e
                continue
            }
            if c == "'" || c == "\"" {
                emit(.string(try lexString(quote: c)), at: start)
                continue
            }
            for op in ["//", "**", "==", "!=", ">=", "<="] where starts(op, at: pos) {
                emit(.op(op), at: start)
                pos += 2
                break
            }
            if pos != start { continue }
            if "+-/*%~[](){}><=.:|,;".unicodeScalars.contains(c) {
                switch c {
                case "(": balance.append(")")
                case "[": balance.append("]")
                case "{": balance.append("}")
                case ")", "]", "}":
                    guard let top = balance.popLast(), top == c else { throw err("unexpected '\(c)'", at: pos) }
                default: break
                }
                emit(.op(String(c)), at: start)
                pos += 1
                continue
            }
            throw err("unexpected char '\(c)'", at: pos)
        }
    }

    @inline(__always) func isDigit(_ c: Unicode.Scalar) -> Bool { c.value >= 48 && c.value <= 57 }
    @inline(__always) func isNameStart(_ c: Unicode.Scalar) -> Bool {
        (c.value >= 65 && c.value <= 90) || (c.value >= 97 && c.value <= 122) || c == "_"
    }

    mutating func lexNumber() throws {
        let n = s.count
        let start = pos
        var e = pos
        func digits(_ p: inout Int) { while p < n, isDigit(s[p]) || (s[p] == "_" && p + 1 < n && isDigit(s[p + 1])) { p += 1 } }
        // Float only when not right after a '.', so `x.0` stays an integer attribute.
        let afterDot = start > 0 && s[start - 1] == "."
        digits(&e)
        var isFloat = false
        if !afterDot {
            if e + 1 < n, s[e] == ".", isDigit(s[e + 1]) { e += 1; digits(&e); isFloat = true }
            if e < n, s[e] == "e" || s[e] == "E" {
                var f = e + 1
                if f < n, s[f] == "+" || s[f] == "-" { f += 1 }
                if f < n, isDigit(s[f]) { digits(&f); e = f; isFloat = true }
            }
        }
        let text = String(String.UnicodeScalarView(s[start..<e])).replacingOccurrences(of: "_", with: "")
        pos = e
        if isFloat {
            guard let d = Double(text) else { throw err("invalid number '\(text)'", at: start) }
            emit(.float(d), at: start)
        } else {
            guard let v = Int(text) else { throw err("integer literal too large '\(text)'", at: start) }
            emit(.int(v), at: start)
        }
    }

    /// Python `unicode-escape` decoding of a string literal body.
    mutating func lexString(quote: Unicode.Scalar) throws -> String {
        let n = s.count
        let start = pos
        pos += 1
        var out = String.UnicodeScalarView()
        while true {
            guard pos < n else { throw err("unterminated string", at: start) }
            let c = s[pos]
            pos += 1
            if c == quote { return String(out) }
            if c != "\\" { out.append(c); continue }
            guard pos < n else { throw err("unterminated string", at: start) }
            let e = s[pos]
            pos += 1
            switch e {
            case "\n": break  // line continuation
            case "\\": out.append("\\")
            case "'": out.append("'")
            case "\"": out.append("\"")
            case "a": out.append("\u{07}")
            case "b": out.append("\u{08}")
            case "f": out.append("\u{0C}")
            case "n": out.append("\n")
            case "r": out.append("\r")
            case "t": out.append("\t")
            case "v": out.append("\u{0B}")
            case "0"..."7":
                var v = e.value - 48
                var k = 1
                while k < 3, pos < n, s[pos].value >= 48, s[pos].value <= 55 { v = v * 8 + s[pos].value - 48; pos += 1; k += 1 }
                out.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            case "x", "u", "U":
                let len = e == "x" ? 2 : (e == "u" ? 4 : 8)
                guard pos + len <= n, let v = UInt32(String(String.UnicodeScalarView(s[pos..<pos + len])), radix: 16),
                    let u = Unicode.Scalar(v)
                else { throw err("invalid \\\(e) escape in string", at: pos - 2) }
                pos += len
                out.append(u)
            default:
                out.append("\\")
                out.append(e)
            }
        }
    }
}
