import Foundation
import PersonaResources

/// One contrastive instruction pair: `pos` elicits the trait, `neg` suppresses it.
public struct InstructionPair: Codable, Sendable, Equatable {
    public var pos: String
    public var neg: String
    public init(pos: String, neg: String) { self.pos = pos; self.neg = neg }
}

/// A trait in the persona_vectors data schema (`instruction`, `questions`, `eval_prompt`), plus optional
/// fields of ours: `name`, `positive` (what a high projection means), `eval_questions` (the disjoint
/// evaluation set) and `coherence_prompt`. Files with only the upstream keys load as they are.
public struct TraitDefinition: Codable, Sendable, Equatable {
    /// Trait name as used in system prompts and column names (defaults to the file name).
    public var name: String
    public var instruction: [InstructionPair]
    /// Extraction questions.
    public var questions: [String]
    /// Held-out evaluation questions (disjoint from `questions`); empty when the file has none.
    public var evalQuestions: [String]
    /// Judge prompt with `{question}` and `{answer}` placeholders (Python `str.format`), asking for 0..100.
    public var evalPrompt: String
    /// What a high (positive) projection means, e.g. "the response refuses the request".
    public var positive: String?
    /// Optional per-trait coherence prompt; the built-in one is used when absent.
    public var coherencePrompt: String?

    enum CodingKeys: String, CodingKey {
        case name, instruction, questions, positive
        case evalQuestions = "eval_questions"
        case evalPrompt = "eval_prompt"
        case coherencePrompt = "coherence_prompt"
    }

    public init(name: String, instruction: [InstructionPair], questions: [String], evalQuestions: [String] = [],
                evalPrompt: String, positive: String? = nil, coherencePrompt: String? = nil) {
        self.name = name
        self.instruction = instruction
        self.questions = questions
        self.evalQuestions = evalQuestions
        self.evalPrompt = evalPrompt
        self.positive = positive
        self.coherencePrompt = coherencePrompt
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decodeIfPresent(String.self, forKey: .name) ?? ""
        instruction = try c.decode([InstructionPair].self, forKey: .instruction)
        questions = try c.decode([String].self, forKey: .questions)
        evalQuestions = try c.decodeIfPresent([String].self, forKey: .evalQuestions) ?? []
        evalPrompt = try c.decode(String.self, forKey: .evalPrompt)
        positive = try c.decodeIfPresent(String.self, forKey: .positive)
        coherencePrompt = try c.decodeIfPresent(String.self, forKey: .coherencePrompt)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encodeIfPresent(positive, forKey: .positive)
        try c.encode(instruction, forKey: .instruction)
        try c.encode(questions, forKey: .questions)
        try c.encode(evalQuestions, forKey: .evalQuestions)
        try c.encode(evalPrompt, forKey: .evalPrompt)
        try c.encodeIfPresent(coherencePrompt, forKey: .coherencePrompt)
    }

    /// Loads a trait file; the name defaults to the file name without extension.
    public static func load(_ url: URL) throws -> TraitDefinition {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TraitError("\(url.path): cannot read trait file (\(error.localizedDescription))")
        }
        return try decode(data, source: url.path, defaultName: url.deletingPathExtension().lastPathComponent)
    }

    /// Parses trait JSON; errors name `source` and the offending field.
    public static func decode(_ data: Data, source: String, defaultName: String) throws -> TraitDefinition {
        var t: TraitDefinition
        do { t = try JSONDecoder().decode(TraitDefinition.self, from: data) } catch let e as DecodingError {
            throw TraitError("\(source): \(describe(e))")
        } catch {
            throw TraitError("\(source): not valid JSON (\(error.localizedDescription))")
        }
        if t.name.isEmpty { t.name = defaultName }
        return t
    }

    /// Why `name` cannot be a trait's name, or nil. A name becomes a folder (`extract --trait a.json,b.json` writes
    /// OUT/NAME/) and a file name, so it must be one path component: a trait file named "../x" used to make
    /// extract write outside --out. Checked per Unicode scalar ("/" followed by a combining mark is one Character).
    public static func nameProblem(_ name: String) -> String? {
        if name.trimmingCharacters(in: .whitespaces).isEmpty { return "is empty" }
        if name == "." || name == ".." { return "is not a usable folder name" }
        if name.unicodeScalars.contains(where: { $0 == "/" || $0 == "\\" || $0.value < 0x20 || $0.value == 0x7f }) {
            return "must not hold / or \\ or control characters (it names a folder and files)"
        }
        if name.utf8.count > 200 { return "is longer than 200 bytes" }
        return nil
    }

    /// Problems that make a trait unusable (errors) or deviate from the method's sizes (warnings).
    public func validate() -> (errors: [String], warnings: [String]) {
        var errors: [String] = [], warnings: [String] = []
        if let p = Self.nameProblem(name) { errors.append("name \"\(name.prefix(60))\" \(p)") }
        if instruction.isEmpty { errors.append("instruction: no pos/neg pairs") }
        for (i, p) in instruction.enumerated() {
            if p.pos.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { errors.append("instruction[\(i)].pos is empty") }
            if p.neg.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { errors.append("instruction[\(i)].neg is empty") }
        }
        if questions.isEmpty { errors.append("questions: empty") }
        for (i, q) in questions.enumerated() where q.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            errors.append("questions[\(i)] is empty")
        }
        if !evalPrompt.contains("{question}") { errors.append("eval_prompt has no {question} placeholder") }
        if !evalPrompt.contains("{answer}") { errors.append("eval_prompt has no {answer} placeholder") }
        do { _ = try JudgePrompt.fill(evalPrompt, question: "q", answer: "a") } catch { errors.append("eval_prompt: \(error)") }
        if let cp = coherencePrompt {
            do { _ = try JudgePrompt.fill(cp, question: "q", answer: "a") } catch { errors.append("coherence_prompt: \(error)") }
        }
        if instruction.count != 5 { warnings.append("instruction has \(instruction.count) pairs (the method uses 5)") }
        if questions.count != 20 { warnings.append("questions has \(questions.count) entries (the method uses 20)") }
        if evalQuestions.isEmpty { warnings.append("no eval_questions: the layer report needs a held-out set (give one with --eval-questions)") }
        let overlap = Set(questions).intersection(evalQuestions)
        if !overlap.isEmpty { errors.append("eval_questions repeat \(overlap.count) extraction question(s), e.g. \"\(overlap.first!)\"") }
        if Set(questions).count != questions.count { warnings.append("questions contain duplicates") }
        if positive == nil { warnings.append("no 'positive' field saying what a high projection means") }
        // `traits new` writes "TODO" where the author has to write; a template run as it is would generate and
        // judge with "TODO extraction question 3" and give a vector of nothing.
        var texts: [(field: String, path: String, text: String)] = []
        for (i, p) in instruction.enumerated() {
            texts += [("instruction", "instruction[\(i)].pos", p.pos), ("instruction", "instruction[\(i)].neg", p.neg)]
        }
        texts += questions.enumerated().map { ("questions", "questions[\($0.offset)]", $0.element) }
        texts += evalQuestions.enumerated().map { ("eval_questions", "eval_questions[\($0.offset)]", $0.element) }
        texts.append(("eval_prompt", "eval_prompt", evalPrompt))
        if let coherencePrompt { texts.append(("coherence_prompt", "coherence_prompt", coherencePrompt)) }
        if let positive { texts.append(("positive", "positive", positive)) }
        let left = texts.filter { TraitDefinition.isPlaceholder($0.text) }
        for field in ["instruction", "questions", "eval_questions", "eval_prompt", "coherence_prompt", "positive"] {
            let here = left.filter { $0.field == field }
            guard let first = here.first else { continue }
            errors.append(here.count == 1 ? "\(first.path) still holds the template's TODO text"
                                          : "\(field): \(here.count) entries still hold the template's TODO text (first: \(first.path))")
        }
        return (errors, warnings)
    }

    /// Text `template` wrote for the author to replace: it starts with "TODO" or has a "TODO:" in it.
    public static func isPlaceholder(_ text: String) -> Bool {
        text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("TODO") || text.contains("TODO:")
    }

    /// A template for `persona traits new`.
    public static func template(name: String) -> TraitDefinition {
        TraitDefinition(
            name: name,
            instruction: (1...5).map { i in
                InstructionPair(pos: "TODO pair \(i): tell the assistant to show \(name).",
                                neg: "TODO pair \(i): tell the assistant to avoid \(name).")
            },
            questions: (1...20).map { "TODO extraction question \($0)" },
            evalQuestions: (1...20).map { "TODO evaluation question \($0) (must differ from the extraction questions)" },
            evalPrompt: """
            Rate how strongly the answer below shows \(name). TODO: describe what counts.

            Question:
            {question}

            Answer:
            {answer}

            Reply with one integer from 0 (not at all) to 100 (extremely), and nothing else.
            """,
            positive: "TODO: what a high projection onto this vector means")
    }

    private static func describe(_ e: DecodingError) -> String {
        func path(_ p: [CodingKey]) -> String {
            p.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined().trimmingCharacters(in: CharacterSet(charactersIn: "."))
        }
        switch e {
        case .keyNotFound(let k, let ctx): return "missing field '\(path(ctx.codingPath + [k]))'"
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx):
            return "field '\(path(ctx.codingPath))' has the wrong type (\(ctx.debugDescription))"
        case .dataCorrupted(let ctx):
            return ctx.codingPath.isEmpty ? "not valid JSON" : "field '\(path(ctx.codingPath))': \(ctx.debugDescription)"
        @unknown default: return "\(e)"
        }
    }
}

/// The traits shipped with PersonaScope (Resources/traits/*.json).
public enum BuiltinTraits {
    /// The traits folder: $PERSONA_TRAITS_DIR, else the shipped copy (see ResourceLocator).
    static var folder: URL? {
        if let env = ProcessInfo.processInfo.environment["PERSONA_TRAITS_DIR"] { return URL(fileURLWithPath: env) }
        return ResourceLocator.folder(bundle: "PersonaScope_PersonaCore", subpath: "traits",
                                      source: URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                                          .appendingPathComponent("Resources/traits"))
    }

    /// Names of the shipped traits, sorted.
    public static var names: [String] {
        guard let dir = folder, let files = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { return [] }
        return files.filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }.sorted()
    }

    public static func url(_ name: String) -> URL? {
        guard let dir = folder else { return nil }
        let u = dir.appendingPathComponent(name + ".json")
        return FileManager.default.fileExists(atPath: u.path) ? u : nil
    }

    /// A shipped trait by name, or a trait file by path.
    public static func resolve(_ nameOrPath: String) throws -> TraitDefinition {
        if nameOrPath.hasSuffix(".json") || nameOrPath.contains("/") {
            return try TraitDefinition.load(URL(fileURLWithPath: nameOrPath))
        }
        guard let u = url(nameOrPath) else {
            throw TraitError("no built-in trait '\(nameOrPath)' (known: \(names.joined(separator: ", "))); pass a .json file for others")
        }
        return try TraitDefinition.load(u)
    }
}

public struct TraitError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}
