import Foundation

/// One chat turn as passed to a chat template (`{"role": ..., "content": ...}`).
public struct ChatMessage: Codable, Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// Error from parsing or rendering a chat template.
public struct ChatTemplateError: Error, CustomStringConvertible, Equatable {
    public enum Kind: String, Sendable {
        /// Template source does not parse.
        case syntax
        /// The template called `raise_exception(msg)`; `message` is `msg` verbatim.
        case raised
        /// An Undefined value was used where jinja2 raises UndefinedError.
        case undefined
        /// Python TypeError-like misuse (e.g. `'a' + 1`).
        case type
        /// Other runtime error (division by zero, bad unpacking, ...).
        case runtime
        /// A filter/test/tag/feature outside the implemented Jinja subset.
        case unsupported
        /// Iteration, output or recursion budget exceeded.
        case limit
    }
    public let kind: Kind
    public let message: String
    /// 1-based source line (of the statement for runtime errors), if known.
    public let line: Int?
    public let column: Int?

    public init(kind: Kind, message: String, line: Int?, column: Int?) {
        self.kind = kind
        self.message = message
        self.line = line
        self.column = column
    }

    public var description: String {
        var where_ = ""
        if let line { where_ = " at line \(line)" + (column.map { ", column \($0)" } ?? "") }
        switch kind {
        case .raised: return "template raised: \(message)" + where_
        case .syntax: return "template syntax error: \(message)" + where_
        case .undefined: return "template undefined value: \(message)" + where_
        case .limit: return "template limit exceeded: \(message)" + where_
        default: return "template error: \(message)" + where_
        }
    }
}

/// A parsed Hugging Face chat template, rendered like transformers' `apply_chat_template(tokenize=False)`:
/// jinja2 `ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)` with loopcontrols,
/// `raise_exception`, `strftime_now`, `namespace`, `dict`, transformers' `tojson` and `{% generation %}`.
public struct ChatTemplate: Sendable {
    /// Budgets so hostile templates cannot hang or exhaust memory.
    public struct Limits: Sendable {
        /// Total loop iterations plus macro calls per render.
        public var maxIterations: Int
        /// Rendered output size in UTF-8 bytes.
        public var maxOutputBytes: Int
        /// Macro recursion depth.
        public var maxCallDepth: Int
        public init(maxIterations: Int = 1_000_000, maxOutputBytes: Int = 16 << 20, maxCallDepth: Int = 100) {
            self.maxIterations = maxIterations
            self.maxOutputBytes = maxOutputBytes
            self.maxCallDepth = maxCallDepth
        }
    }

    let nodes: [JNode]
    public var limits: Limits
    /// Clock used by `strftime_now` (local time zone, like Python's `datetime.now()`); replaceable for reproducible output.
    public var now: @Sendable () -> Date

    /// Parses the template once; syntax errors and unknown filters/tests throw `ChatTemplateError` with line/column.
    public init(source: String, limits: Limits = Limits()) throws {
        let parsed = try runOnLargeStack { () throws -> [JNode] in
            var lexer = JinjaLexer(source: source)
            var parser = JinjaParser(tokens: try lexer.tokenize())
            let nodes = try parser.parseTemplate()
            try Self.validate(nodes)
            return nodes
        }
        nodes = parsed
        self.limits = limits
        self.now = { Date() }
    }

    /// Renders with variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token` (left undefined when nil),
    /// `tools` and `documents` (None, as transformers passes them), then `extra` (which may override any of these).
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String?, eosToken: String?,
                       extra: [String: JinjaValue] = [:]) throws -> String {
        var ctx: [String: RValue] = [
            "messages": .list(messages.map { .dict(JDict(entries: [(.string("role"), .string($0.role)), (.string("content"), .string($0.content))])) }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "tools": .none,
            "documents": .none,
        ]
        if let bosToken { ctx["bos_token"] = .string(bosToken) }
        if let eosToken { ctx["eos_token"] = .string(eosToken) }
        for (k, v) in extra { ctx[k] = RValue(v) }
        return try renderContext(ctx)
    }

    /// Renders with exactly these variables and no defaults, for messages that carry more than role/content
    /// (tool calls, content blocks, reasoning). Pass e.g. `messages`, `add_generation_prompt`, `bos_token`, `tools`.
    public func render(variables: [String: JinjaValue]) throws -> String {
        try renderContext(variables.mapValues { RValue($0) })
    }

    func renderContext(_ ctx: [String: RValue]) throws -> String {
        let (limits, now, nodes) = (self.limits, self.now, self.nodes)
        return try runOnLargeStack {
            try JinjaInterpreter(limits: limits, now: now).render(nodes, context: ctx)
        }
    }

    /// As `render`, but if the template raises on a leading system message (e.g. Gemma's "System role not supported"),
    /// merges the system text into the first user turn as "{system}\n\n{user}" and renders again.
    public func renderMergingSystemIfUnsupported(messages: [ChatMessage], addGenerationPrompt: Bool, bosToken: String?,
                                                 eosToken: String?, extra: [String: JinjaValue] = [:]) throws -> String {
        do {
            return try render(messages: messages, addGenerationPrompt: addGenerationPrompt, bosToken: bosToken, eosToken: eosToken, extra: extra)
        } catch let e as ChatTemplateError where e.kind == .raised {
            guard messages.first?.role == "system", !supportsSystemRole else { throw e }
            return try render(messages: Self.mergeSystem(messages), addGenerationPrompt: addGenerationPrompt,
                              bosToken: bosToken, eosToken: eosToken, extra: extra)
        }
    }

    /// The merge used by `renderMergingSystemIfUnsupported`: the leading system message's text is prefixed to the
    /// first user message ("{system}\n\n{user}"); with no user message it becomes a user message.
    public static func mergeSystem(_ messages: [ChatMessage]) -> [ChatMessage] {
        guard let first = messages.first, first.role == "system" else { return messages }
        var rest = Array(messages.dropFirst())
        if let i = rest.firstIndex(where: { $0.role == "user" }) {
            rest[i].content = first.content + "\n\n" + rest[i].content
        } else {
            rest.insert(ChatMessage(role: "user", content: first.content), at: 0)
        }
        return rest
    }

    /// Rendered probe: does a [system, user] conversation render without raising.
    public var supportsSystemRole: Bool {
        let probe = [ChatMessage(role: "system", content: "You are a helpful assistant."), ChatMessage(role: "user", content: "Hello")]
        return (try? render(messages: probe, addGenerationPrompt: true, bosToken: "", eosToken: "")) != nil
    }

    // MARK: static checks (jinja2 rejects unknown filters/tests at compile time)

    static func validate(_ nodes: [JNode]) throws {
        for n in nodes {
            func chk(_ e: JExpr) throws { try validate(e, line: n.line) }
            func chkFilters(_ fs: [JFilterCall]) throws {
                for f in fs {
                    guard jinjaKnownFilters.contains(f.name) else {
                        throw ChatTemplateError(kind: .unsupported, message: "unsupported filter '\(f.name)'", line: n.line, column: nil)
                    }
                    try f.args.forEach(chk)
                    try f.kwargs.forEach { try chk($0.1) }
                }
            }
            switch n.kind {
            case .text, .breakLoop, .continueLoop: break
            case .output(let e): try chk(e)
            case .ifChain(let bs, let o):
                for (c, b) in bs { try chk(c); try validate(b) }
                try validate(o)
            case .forLoop(_, let it, let c, let b, let o):
                try chk(it)
                if let c { try chk(c) }
                try validate(b); try validate(o)
            case .set(_, let e): try chk(e)
            case .setBlock(_, let b, let fs): try chkFilters(fs); try validate(b)
            case .macro(let m):
                for (_, d) in m.params { if let d { try chk(d) } }
                try validate(m.body)
            case .filterBlock(let fs, let b): try chkFilters(fs); try validate(b)
            case .generation(let b): try validate(b)
            }
        }
    }

    static func validate(_ e: JExpr, line: Int) throws {
        func v(_ x: JExpr) throws { try validate(x, line: line) }
        switch e {
        case .const, .name: break
        case .list(let xs), .tuple(let xs), .concat(let xs): try xs.forEach(v)
        case .dict(let kv): for (a, b) in kv { try v(a); try v(b) }
        case .getattr(let o, _): try v(o)
        case .getitem(let o, let k): try v(o); try v(k)
        case .slice(let o, let a, let b, let c): try v(o); for x in [a, b, c] { if let x { try v(x) } }
        case .call(let f, let a, let k): try v(f); try a.forEach(v); try k.forEach { try v($0.1) }
        case .filter(let x, let name, let a, let k):
            guard jinjaKnownFilters.contains(name) else {
                throw ChatTemplateError(kind: .unsupported, message: "unsupported filter '\(name)'", line: line, column: nil)
            }
            try v(x); try a.forEach(v); try k.forEach { try v($0.1) }
        case .test(let x, let name, let a, _):
            guard jinjaKnownTests.contains(name) else {
                throw ChatTemplateError(kind: .unsupported, message: "unsupported test '\(name)'", line: line, column: nil)
            }
            try v(x); try a.forEach(v)
        case .neg(let x), .pos(let x), .not(let x): try v(x)
        case .binary(_, let a, let b), .and(let a, let b), .or(let a, let b): try v(a); try v(b)
        case .compare(let a, let ops): try v(a); try ops.forEach { try v($0.1) }
        case .cond(let t, let a, let b): try v(t); try v(a); if let b { try v(b) }
        }
    }
}

/// Parsing and evaluation recurse with the template's nesting (macros, nested blocks). Run them on a thread with a
/// known large stack so the caller's stack size (512 KiB on secondary threads in some runtimes) never matters.
final class JResultBox<T>: @unchecked Sendable {  // written before the semaphore signal, read after the wait
    var result: Result<T, Error>?
}

func runOnLargeStack<T>(_ body: @escaping () throws -> T) throws -> T {
    let box = JResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    let work = JUncheckedSendable(body)
    let thread = Thread {
        box.result = Result { try work.value() }
        done.signal()
    }
    thread.stackSize = 64 << 20
    thread.start()
    done.wait()
    guard let r = box.result else { throw ChatTemplateError(kind: .runtime, message: "template worker thread did not finish", line: nil, column: nil) }
    return try r.get()
}

/// The closure is only run on the worker thread while the caller blocks, so no concurrent access happens.
struct JUncheckedSendable<V>: @unchecked Sendable {
    let value: V
    init(_ v: V) { value = v }
}
