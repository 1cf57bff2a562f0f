import Foundation

/// Scores one filled-in judge prompt on 0...100; `nil` when the judge gives no usable score.
public protocol Judge: Sendable {
    /// Identifies the judge (model name) in reports and cache keys.
    var name: String { get }
    func score(prompt: String) async throws -> Double?
}

/// The `none` judge: no scores; extraction then keeps every pair with non-empty answers.
public struct NoJudge: Judge {
    public init() {}
    public var name: String { "none" }
    public func score(prompt: String) async throws -> Double? { nil }
}

/// persona_vectors' aggregation of a judge's first-token distribution (docs/extraction.md, Judges).
public enum JudgeAggregation {
    /// Minimum probability mass on number tokens for a score to count.
    public static let minimumMass = 0.25

    /// The integer 0...100 a token stands for (after trimming whitespace), if any.
    public static func number(_ token: String) -> Int? {
        let t = token.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty, t.count <= 3, t.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(t), (0...100).contains(v) else { return nil }
        return v
    }

    /// sum(k * p_k) / sum(p_k) over the tokens that parse as 0...100, p = exp(logprob); nil if sum(p_k) < 0.25.
    public static func score(topLogprobs: [(token: String, logprob: Double)]) -> Double? {
        var mass = 0.0, weighted = 0.0
        for (tok, lp) in topLogprobs {
            guard let k = number(tok), lp.isFinite || lp == -.infinity else { continue }
            let p = Foundation.exp(lp)
            mass += p
            weighted += Double(k) * p
        }
        return mass >= minimumMass ? weighted / mass : nil
    }
}

/// Filling judge prompts: Python `str.format` with the fields `question` and `answer` (`{{`/`}}` are literal braces).
public enum JudgePrompt {
    /// Our coherence prompt (0 = not language, 50 = rambling, 100 = clear); correctness is not judged.
    public static let coherence = """
    You are grading how well-formed a language model's answer is. Ignore whether it is true, helpful, \
    polite or safe; judge only whether it reads as coherent language that addresses the question.

    Question:
    {question}

    Answer:
    {answer}

    Use this scale:
    0 = not English or not language at all (random characters, endless repeated tokens)
    50 = understandable in parts but rambling, contradictory, repetitive or drifting off topic
    100 = clear, well-formed text that stays on the question

    Reply with a single integer from 0 to 100 and nothing else.
    """

    public static func fill(_ template: String, question: String, answer: String) throws -> String {
        var out = ""
        var it = template[...]
        while let c = it.first {
            it = it.dropFirst()
            if c == "{" {
                if it.first == "{" { out.append("{"); it = it.dropFirst(); continue }
                guard let close = it.firstIndex(of: "}") else { throw TraitError("unclosed '{' in judge prompt") }
                let field = String(it[..<close])
                it = it[it.index(after: close)...]
                switch field {
                case "question": out += question
                case "answer": out += answer
                default: throw TraitError("unknown placeholder {\(field)} in judge prompt (only {question} and {answer})")
                }
            } else if c == "}" {
                guard it.first == "}" else { throw TraitError("single '}' in judge prompt (write '}}' for a literal brace)") }
                out.append("}")
                it = it.dropFirst()
            } else {
                out.append(c)
            }
        }
        return out
    }
}
