import Foundation
import XCTest

@testable import PersonaTokenizers

/// Chat templates vs. transformers' own rendering (fixtures from Scripts/make_template_fixtures.py).
final class ChatTemplateTests: XCTestCase {
    // MARK: fixture plumbing

    static func fixtureURL(_ name: String) -> URL? {
        if let u = Bundle.module.url(forResource: name, withExtension: "json", subdirectory: "Fixtures/templates") { return u }
        let here = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
        let u = here.appendingPathComponent("Fixtures/templates/\(name).json")
        return FileManager.default.fileExists(atPath: u.path) ? u : nil
    }

    /// The real templates live in the shared reference folder (../shared relative to the repo root, or $PERSONA_SHARED).
    static func templatesDir() -> URL? {
        if let env = ProcessInfo.processInfo.environment["PERSONA_SHARED"] {
            let u = URL(fileURLWithPath: env).appendingPathComponent("reference/chat-templates")
            if FileManager.default.fileExists(atPath: u.path) { return u }
        }
        for start in [URL(fileURLWithPath: #filePath), URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()] {
            var dir = start.deletingLastPathComponent()
            while dir.path != "/" {
                let u = dir.appendingPathComponent("shared/reference/chat-templates")
                if FileManager.default.fileExists(atPath: u.path) { return u }
                dir = dir.deletingLastPathComponent()
            }
        }
        return nil
    }

    static func loadCases(_ name: String) throws -> [[String: Any]] {
        guard let url = fixtureURL(name) else { throw XCTSkip("fixture \(name).json not found") }
        let obj = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        return try XCTUnwrap(obj?["cases"] as? [[String: Any]], "\(name).json has no 'cases'")
    }

    /// The fixture script pins strftime_now to 2024-07-26 10:00:00 local time.
    static let fixedNow: Date = {
        var c = DateComponents()
        (c.year, c.month, c.day, c.hour, c.minute, c.second) = (2024, 7, 26, 10, 0, 0)
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = TimeZone.current
        return cal.date(from: c)!
    }()

    static func object(_ json: String) throws -> [(String, JinjaValue)] {
        guard case .object(let o) = try JinjaValue(json: json) else { throw XCTSkip("expected a JSON object") }
        return o.entries.map { ($0.key, $0.value) }
    }

    func loadTemplate(_ file: String, _ cache: inout [String: ChatTemplate]) throws -> ChatTemplate {
        if let t = cache[file] { return t }
        guard let dir = Self.templatesDir() else { throw XCTSkip("shared/reference/chat-templates not found (set PERSONA_SHARED)") }
        let src = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
        var t = try ChatTemplate(source: src)
        t.now = { ChatTemplateTests.fixedNow }
        cache[file] = t
        return t
    }

    // MARK: real templates

    func testRealTemplatesMatchTransformers() throws {
        let cases = try Self.loadCases("chat_templates_expected")
        var cache: [String: ChatTemplate] = [:]
        var checked = 0, merged = 0
        for c in cases {
            let file = c["template"] as! String, name = c["case"] as! String
            let label = "\(file) / \(name) / agp=\(c["add_generation_prompt"] as! Bool)"
            let t = try loadTemplate(file, &cache)
            let agp = c["add_generation_prompt"] as! Bool
            let bos = c["bos_token"] as? String, eos = c["eos_token"] as? String
            let extra = Dictionary(try Self.object(c["extra_json"] as! String), uniquingKeysWith: { a, _ in a })
            let rich = c["rich"] as? Bool ?? false
            let messagesJSON = c["messages_json"] as! String

            func doRender() throws -> String {
                if rich {
                    // Tool calls etc. are beyond ChatMessage: the public variables-based entry point.
                    var vars: [String: JinjaValue] = ["messages": try JinjaValue(json: messagesJSON),
                                                      "add_generation_prompt": .bool(agp), "tools": .none, "documents": .none]
                    if let bos { vars["bos_token"] = .string(bos) }
                    if let eos { vars["eos_token"] = .string(eos) }
                    for (k, v) in extra { vars[k] = v }
                    return try t.render(variables: vars)
                }
                let msgs = try JSONDecoder().decode([ChatMessage].self, from: Data(messagesJSON.utf8))
                return try t.render(messages: msgs, addGenerationPrompt: agp, bosToken: bos, eosToken: eos, extra: extra)
            }

            if let expected = c["expected"] as? String {
                do {
                    let got = try doRender()
                    XCTAssertEqual(got, expected, label)
                    if got != expected { reportDiff(got, expected, label) }
                } catch { XCTFail("\(label): unexpected error \(error)") }
            } else {
                let type = c["error_type"] as! String, msg = c["error"] as! String
                XCTAssertThrowsError(try doRender(), label) { e in
                    guard let e = e as? ChatTemplateError else { return XCTFail("\(label): \(e)") }
                    XCTAssertEqual(e.kind, Self.kind(forPython: type), "\(label): \(e)")
                    XCTAssertEqual(e.message, msg, label)
                }
            }
            if let mexp = c["merged_expected"] as? String {
                let msgs = try JSONDecoder().decode([ChatMessage].self, from: Data(messagesJSON.utf8))
                XCTAssertEqual(try t.renderMergingSystemIfUnsupported(messages: msgs, addGenerationPrompt: agp, bosToken: bos, eosToken: eos, extra: extra), mexp, "merged: " + label)
                merged += 1
            }
            checked += 1
        }
        XCTAssertGreaterThanOrEqual(checked, 150)
        XCTAssertGreaterThanOrEqual(merged, 6, "Gemma system-merge cases")
    }

    func reportDiff(_ got: String, _ expected: String, _ label: String) {
        let g = Array(got.unicodeScalars), e = Array(expected.unicodeScalars)
        var i = 0
        while i < min(g.count, e.count), g[i] == e[i] { i += 1 }
        let lo = max(0, i - 40)
        func seg(_ a: [Unicode.Scalar]) -> String { String(String.UnicodeScalarView(a[lo..<min(a.count, i + 40)])).debugDescription }
        print("DIFF \(label) at \(i):\n got: \(seg(g))\n exp: \(seg(e))")
    }

    static func kind(forPython type: String) -> ChatTemplateError.Kind {
        switch type {
        case "TemplateSyntaxError": return .syntax
        case "TemplateAssertionError": return .unsupported
        case "UndefinedError", "SecurityError": return .undefined
        case "TemplateError": return .raised
        case "TypeError", "FilterArgumentError": return .type
        case "OverflowError": return .limit
        default: return .runtime
        }
    }

    func testSupportsSystemRoleProbe() throws {
        var cache: [String: ChatTemplate] = [:]
        guard let dir = Self.templatesDir() else { throw XCTSkip("shared templates not found") }
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".jinja") }.sorted()
        XCTAssertGreaterThanOrEqual(files.count, 9)
        for f in files {
            let t = try loadTemplate(f, &cache)
            XCTAssertEqual(t.supportsSystemRole, !f.hasPrefix("google-gemma-2"), f)
        }
        // Gemma: merged rendering is exactly the rendering of the merged conversation.
        let g = try loadTemplate("google-gemma-2-2b-it.jinja", &cache)
        let msgs = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi")]
        XCTAssertThrowsError(try g.render(messages: msgs, addGenerationPrompt: true, bosToken: "<bos>", eosToken: nil)) { e in
            XCTAssertEqual((e as? ChatTemplateError)?.description, "template raised: System role not supported at line 1")
        }
        XCTAssertEqual(try g.renderMergingSystemIfUnsupported(messages: msgs, addGenerationPrompt: true, bosToken: "<bos>", eosToken: nil),
                       try g.render(messages: [ChatMessage(role: "user", content: "Be brief.\n\nHi")], addGenerationPrompt: true, bosToken: "<bos>", eosToken: nil))
        // A template error that is not about the system role is not swallowed.
        XCTAssertThrowsError(try g.renderMergingSystemIfUnsupported(messages: [ChatMessage(role: "system", content: "s"), ChatMessage(role: "user", content: "u1"), ChatMessage(role: "user", content: "u2")], addGenerationPrompt: true, bosToken: "", eosToken: nil)) { e in
            XCTAssertEqual((e as? ChatTemplateError)?.message, "Conversation roles must alternate user/assistant/user/assistant/...")
        }
    }

    // MARK: Jinja feature snippets

    func testSnippetsMatchJinja2() throws {
        let cases = try Self.loadCases("jinja_snippets_expected")
        XCTAssertGreaterThanOrEqual(cases.count, 90)
        for c in cases {
            let name = c["name"] as! String, src = c["template"] as! String
            var ctx: [String: RValue] = [:]
            for (k, v) in try Self.object(c["context_json"] as! String) { ctx[k] = RValue(v) }
            let result: Result<String, Error> = Result {
                var t = try ChatTemplate(source: src)
                t.now = { ChatTemplateTests.fixedNow }
                return try t.renderContext(ctx)
            }
            if let expected = c["expected"] as? String {
                switch result {
                case .success(let got):
                    XCTAssertEqual(got, expected, name)
                    if got != expected { reportDiff(got, expected, name) }
                case .failure(let e): XCTFail("\(name): unexpected error \(e)")
                }
            } else {
                let type = c["error_type"] as! String, msg = c["error"] as! String
                guard case .failure(let err) = result else { XCTFail("\(name): expected \(type): \(msg)"); continue }
                guard let e = err as? ChatTemplateError else { XCTFail("\(name): \(err)"); continue }
                XCTAssertEqual(e.kind, Self.kind(forPython: type), "\(name): \(e)")
                if let line = c["error_line"] as? Int { XCTAssertEqual(e.line, line, "\(name): \(e)") }
                // Syntax error wording is ours; runtime messages follow Python/jinja2.
                if e.kind != .syntax && e.kind != .unsupported { XCTAssertEqual(e.message, msg, name) }
            }
        }
    }

    // MARK: errors and budgets

    func testSyntaxErrorsCarryLineAndColumn() {
        XCTAssertThrowsError(try ChatTemplate(source: "line one\nline two {{ 'ok' }}\n  {% if x == %}y{% endif %}")) { e in
            let e = e as! ChatTemplateError
            XCTAssertEqual(e.kind, .syntax)
            XCTAssertEqual(e.line, 3)
            XCTAssertEqual(e.column, 14)  // the "%}" where an expression was expected
            XCTAssertTrue(e.description.contains("line 3"), e.description)
        }
        XCTAssertThrowsError(try ChatTemplate(source: "a\n\n{% for x in y %}never closed")) { e in
            XCTAssertEqual((e as! ChatTemplateError).kind, .syntax)
            XCTAssertTrue((e as! ChatTemplateError).message.contains("endfor"), "\(e)")
        }
    }

    func testUnsupportedConstructsAreClear() {
        XCTAssertThrowsError(try ChatTemplate(source: "ok\n\n{{ x | frobnicate }}")) { e in
            XCTAssertEqual("\(e)", "template error: unsupported filter 'frobnicate' at line 3")
        }
        XCTAssertThrowsError(try ChatTemplate(source: "{% include 'other.jinja' %}")) { e in
            XCTAssertEqual((e as! ChatTemplateError).kind, .syntax)
            XCTAssertTrue("\(e)".contains("unsupported tag 'include'"), "\(e)")
        }
        XCTAssertThrowsError(try ChatTemplate(source: "{% for x in y recursive %}{% endfor %}")) { e in
            XCTAssertTrue("\(e)".contains("recursive"), "\(e)")
        }
        XCTAssertThrowsError(try ChatTemplate(source: "{{ '{:>5}'.format(1) }}").renderContext([:])) { e in
            XCTAssertEqual((e as! ChatTemplateError).kind, .unsupported)
        }
    }

    func testRunawayTemplatesAreBounded() throws {
        // 10^10 iterations; stopped by the iteration budget (lowered here only to keep the debug test fast).
        var nested = try ChatTemplate(source: "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")
        nested.limits.maxIterations = 200_000
        XCTAssertThrowsError(try nested.renderContext([:])) { e in
            XCTAssertEqual((e as! ChatTemplateError).kind, .limit)
            XCTAssertTrue("\(e)".contains("200000 loop iterations"), "\(e)")
        }
        let big = try ChatTemplate(source: "{% for a in range(100000) %}{{ 'x' * 100000 }}{% endfor %}")
        XCTAssertThrowsError(try big.renderContext([:])) { e in XCTAssertEqual((e as! ChatTemplateError).kind, .limit) }
        let rec = try ChatTemplate(source: "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
        XCTAssertThrowsError(try rec.renderContext([:])) { e in XCTAssertEqual((e as! ChatTemplateError).kind, .limit) }
        let rep = try ChatTemplate(source: "{{ 'ab' * 4000000000 }}")
        XCTAssertThrowsError(try rep.renderContext([:])) { e in XCTAssertEqual((e as! ChatTemplateError).kind, .limit) }
        var small = try ChatTemplate(source: "{% for x in range(50) %}{{ x }}{% endfor %}")
        small.limits.maxIterations = 10
        XCTAssertThrowsError(try small.renderContext([:])) { e in XCTAssertEqual((e as! ChatTemplateError).kind, .limit) }
        XCTAssertThrowsError(try ChatTemplate(source: "{{ 2 ** 200 }}").renderContext([:])) { e in
            XCTAssertEqual((e as! ChatTemplateError).message, "integer overflow")
        }
    }

    func testHostileInputsDoNotCrash() throws {
        // Deep syntactic nesting is a syntax error, not a stack overflow.
        for src in ["{{ " + String(repeating: "(", count: 5000) + "1" + String(repeating: ")", count: 5000) + " }}",
                    "{{ " + String(repeating: "not ", count: 5000) + "1 }}",
                    "{{ " + String(repeating: "-", count: 5000) + "1 }}",
                    "{{ " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + " }}",
                    String(repeating: "{% if true %}", count: 5000) + String(repeating: "{% endif %}", count: 5000)] {
            XCTAssertThrowsError(try ChatTemplate(source: src)) { e in
                XCTAssertTrue((e as! ChatTemplateError).message.contains("nested too deeply"), "\(e)")
            }
        }
        // Deep (but accepted) nesting and the deepest macro recursion work when called from a thread with a small (512 KiB) stack.
        let deepest = "{{ " + String(repeating: "(", count: 30) + "[1]|length" + String(repeating: ")", count: 30) + " }}" +
            String(repeating: "{% for i in [1] %}", count: 31) + "x" + String(repeating: "{% endfor %}", count: 31)
        let recursion = try ChatTemplate(source: "{% macro f(n) %}{% for i in [n] %}{% if n > 0 %}{{ f(n - 1) }}{% else %}{{ raise_exception('bottom') }}{% endif %}{% endfor %}{% endmacro %}{{ f(1000) }}")
        final class Box: @unchecked Sendable { var result, recursion: Result<String, Error>? }  // written before signal, read after wait
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.result = Result { try ChatTemplate(source: deepest).renderContext([:]) }
            // Deepest macro recursion allowed (the call-depth limit), also on the small stack.
            box.recursion = Result { try recursion.renderContext([:]) }
            done.signal()
        }
        thread.stackSize = 512 << 10
        thread.start()
        done.wait()
        XCTAssertEqual(try box.result?.get(), "1x")
        XCTAssertThrowsError(try box.recursion?.get()) { e in XCTAssertEqual((e as? ChatTemplateError)?.kind, .limit, "\(e)") }
                // Deep values built at run time print/compare/serialise without recursing unboundedly.
        let deep = try ChatTemplate(source: "{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ (ns.x|string)|length > 0 }} {{ ns.x == ns.x }}")
        XCTAssertEqual(try deep.renderContext([:]), "True False")
        XCTAssertThrowsError(try ChatTemplate(source: "{% set ns = namespace(x=[]) %}{% for i in range(5000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x|tojson }}").renderContext([:])) { e in
            XCTAssertEqual((e as! ChatTemplateError).kind, .type)
        }
        // Extreme integers never trap.
        let edge = try ChatTemplate(source: "{{ range(-9223372036854775807, 9223372036854775807, 9223372036854775807)|list }} {{ [1, 2, 3][1::9223372036854775807] }} {{ (-9223372036854775807 - 1) is divisibleby(-1) }} {{ 'ab' * -9223372036854775807 }}")
        XCTAssertEqual(try edge.renderContext([:]), "[-9223372036854775807, 0] [2] True ")
        for src in ["{{ 9223372036854775807 + 1 }}", "{{ -(-9223372036854775807 - 1) }}", "{{ (-9223372036854775807 - 1) // -1 }}", "{{ 99999999999999999999 }}", "{{ range(-9223372036854775807, 9223372036854775807)|length }}", "{{ 'a' * 9223372036854775807 }}"] {
            XCTAssertThrowsError(try ChatTemplate(source: src).renderContext([:]), src)
        }
    }

    /// Truncated and mangled real templates must give a result or a ChatTemplateError, never crash.
    func testMangledTemplatesNeverCrash() throws {
        guard let dir = Self.templatesDir() else { throw XCTSkip("shared templates not found") }
        let msgs = [ChatMessage(role: "system", content: "s"), ChatMessage(role: "user", content: "u")]
        var outcomes = 0
        for f in try FileManager.default.contentsOfDirectory(atPath: dir.path) where f.hasSuffix(".jinja") {
            let src = Array(try String(contentsOf: dir.appendingPathComponent(f), encoding: .utf8))
            var cuts = Set(stride(from: 0, to: src.count, by: max(1, src.count / 60)))
            cuts.insert(src.count - 1)
            for cut in cuts.sorted() {
                for variant in [String(src[..<cut]), String(src[..<cut]) + "}}", String(src[cut...])] {
                    do {
                        _ = try ChatTemplate(source: variant).render(messages: msgs, addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
                    } catch is ChatTemplateError {}
                    outcomes += 1
                }
            }
        }
        XCTAssertGreaterThan(outcomes, 500)
    }

    // MARK: values

    func testJinjaValueJSONKeepsOrderAndTypes() throws {
        let v = try JinjaValue(json: #"{"z": 1, "a": [true, null, 2.50, "x\u00e9\ud83e\udd16"], "m": {"k": -3e2}}"#)
        XCTAssertEqual(v.jsonString, #"{"z": 1, "a": [true, null, 2.5, "xé🤖"], "m": {"k": -300.0}}"#)
        let lit: JinjaValue = ["b": 1, "a": [nil, "s", 1.5, false]]
        XCTAssertEqual(lit.jsonString, #"{"b": 1, "a": [null, "s", 1.5, false]}"#)
        for bad in ["{", "[1,]", "{\"a\" 1}", "tru", "\"\\q\"", "01x", ""] {
            XCTAssertThrowsError(try JinjaValue(json: bad), bad)
        }
    }

    func testPythonFloatRepr() {
        let cases: [(Double, String)] = [
            (1, "1.0"), (0.1, "0.1"), (1e16, "1e+16"), (1e15, "1000000000000000.0"), (1e-4, "0.0001"), (1e-5, "1e-05"),
            (-2.5, "-2.5"), (123456789.125, "123456789.125"), (1.5e300, "1.5e+300"), (Double.leastNonzeroMagnitude, "5e-324"), (0, "0.0"),
            (2.0 / 3.0, "0.6666666666666666"), (1234567890123456.7, "1234567890123456.8"),
        ]
        for (d, s) in cases { XCTAssertEqual(pyFloatRepr(d), s, "\(d)") }
    }
}

extension ChatTemplateTests {
    /// Seeded random templates (whitespace control; expressions over mixed types) rendered by jinja2 via transformers.
    func testRandomDifferential() throws {
        let cases = try Self.loadCases("jinja_random_expected")
        XCTAssertGreaterThanOrEqual(cases.count, 400)
        var ctx: [String: RValue] = [:]
        var failures = 0
        for c in cases {
            let name = c["name"] as! String, src = c["template"] as! String
            if ctx.isEmpty { for (k, v) in try Self.object(c["context_json"] as! String) { ctx[k] = RValue(v) } }
            let result: Result<String, Error> = Result { try ChatTemplate(source: src).renderContext(ctx) }
            if let expected = c["expected"] as? String {
                switch result {
                case .success(let got):
                    if got != expected { failures += 1; XCTFail("\(name): \(src.debugDescription)\n got \(got.debugDescription)\n exp \(expected.debugDescription)") }
                case .failure(let e): failures += 1; XCTFail("\(name): \(src.debugDescription): unexpected error \(e)")
                }
            } else {
                let type = c["error_type"] as! String, msg = c["error"] as! String
                switch result {
                case .success(let got): failures += 1; XCTFail("\(name): \(src.debugDescription) expected \(type): \(msg), got \(got.debugDescription)")
                case .failure(let e as ChatTemplateError):
                    if e.kind != Self.kind(forPython: type) { failures += 1; XCTFail("\(name): \(src.debugDescription) expected \(type): \(msg), got \(e)") }
                case .failure(let e): failures += 1; XCTFail("\(name): \(e)")
                }
            }
        }
        XCTAssertEqual(failures, 0)
    }
}
