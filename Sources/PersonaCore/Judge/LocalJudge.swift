import Foundation
import PersonaGeneration
import PersonaModels

/// A judge run on a loaded local model: the prompt goes through the model's chat template as one user
/// turn (raw text when it has none), and the score is `JudgeAggregation` over the probability of each reply
/// 0...100 (the whole distribution, not only the top 20).
///
/// The method reads that probability off the first token, which works for judges whose vocabulary has a token
/// per number (GPT-4o, Llama 3). Most local models spell numbers digit by digit (SmolLM2, Qwen, Mistral, Gemma,
/// Llama 2), so their first token only says 0...9, and "85" would count as 8. For those (`spellsDigits`) the
/// reply's number is followed one token further: P(n) = P(d) P(no digit follows | d) for n = d < 10,
/// P(d1) P(d2 | d1) for 11...99, and P(1) P(0 | 1) times P(no digit | "10") or P(0 | "10") for 10 and 100.
/// A two-digit reply is taken to end there (a third digit would pass 100, beyond what the judge is asked for),
/// as the method's single-token "85" does not ask what follows it either. Cost: 11 one-token steps after the
/// prompt (decided 2026-12-05; before, SmolLM2 judging its own answers scored on 0...9 only).
public final class LocalJudge: Judge, @unchecked Sendable {
    public let loaded: LoadedModel
    private let generator: Generator
    /// token id -> the integer its text stands for.
    public let numberTokens: [(id: Int, value: Int)]
    /// No single token reads as 10...100: numbers are spelt digit by digit.
    public let spellsDigits: Bool
    /// The token that continues a number with digit d (its piece is exactly "d"), for d = 0...9.
    private let digitIds: [Int?]
    /// Every token whose piece is one or more digits with nothing before them: what continues a number.
    private let continuationIds: [Int]
    private let lock = NSLock()

    public init(_ loaded: LoadedModel) {
        self.loaded = loaded
        generator = Generator(loaded)
        let tok = loaded.tokenizer.tokenizer
        var numbers: [(id: Int, value: Int)] = []
        var digits = [Int?](repeating: nil, count: 10)
        var continuations: [Int] = []
        for id in 0..<min(tok.vocabSize, loaded.config.vocabSize) where !tok.isSpecial(id) {
            let text = tok.decode([id], skipSpecialTokens: true)
            if let v = JudgeAggregation.number(text) { numbers.append((id, v)) }
            let piece = tok.tokenBytes(id)
            if !piece.isEmpty, piece.allSatisfy({ (0x30...0x39).contains($0) }) {
                continuations.append(id)
                if piece.count == 1, digits[Int(piece[0] - 0x30)] == nil { digits[Int(piece[0] - 0x30)] = id }
            }
        }
        numberTokens = numbers
        spellsDigits = !numbers.contains { $0.value >= 10 } && digits.allSatisfy { $0 != nil }
        digitIds = digits
        continuationIds = continuations
    }

    public var name: String { "local:\(loaded.name)" }

    public func score(prompt: String) async throws -> Double? {
        try scoreSync(prompt: prompt)
    }

    /// The same score, synchronously.
    public func scoreSync(prompt: String) throws -> Double? {
        let dist = try numberDistribution(prompt: prompt)
        return JudgeAggregation.score(topLogprobs: dist.map { (token: String($0.key), logprob: Foundation.log($0.value)) })
    }

    /// The probability of each reply 0...100 (numbers without any probability left out): the first token's, or,
    /// when the model spells digits, followed through the digits as the type's comment says.
    public func numberDistribution(prompt: String) throws -> [Int: Double] {
        guard spellsDigits else {
            return try numberProbabilities(prompt: prompt).reduce(into: [:]) { $0[$1.value, default: 0] += $1.p }
        }
        lock.lock(); defer { lock.unlock() }
        let ids = try judgePromptIds(prompt, steps: 2)
        let model = loaded.model
        let cache = model.makeCache(capacity: ids.count + 2)
        let first = Self.softmax(try model.forward(ids, cache: cache, logits: .last))
        // P(the reply starts with digit d), over every token reading as d (with or without a space), and the most
        // likely of them to continue from
        var start = [Double](repeating: 0, count: 10)
        var startId = [Int](repeating: -1, count: 10)
        for t in numberTokens {
            start[t.value] += first[t.id]
            if startId[t.value] < 0 || first[t.id] > first[startId[t.value]] { startId[t.value] = t.id }
        }
        var dist: [Int: Double] = [:]
        func next(_ tokens: [Int]) throws -> (digit: [Double], more: Double) {
            cache.truncate(to: ids.count)
            let q = Self.softmax(try model.forward(tokens, cache: cache, logits: .last))
            return (digitIds.map { q[$0!] }, continuationIds.reduce(0) { $0 + q[$1] })
        }
        for d in 0...9 where startId[d] >= 0 && start[d] > 0 {
            let after = try next([startId[d]])
            dist[d, default: 0] += start[d] * max(0, 1 - after.more)
            guard d > 0 else { continue }   // "05" is not how a number is written
            for e in 0...9 where e > 0 || d != 1 { dist[10 * d + e, default: 0] += start[d] * after.digit[e] }
            if d == 1 {
                let afterTen = try next([startId[1], digitIds[0]!])
                dist[10, default: 0] += start[1] * after.digit[0] * max(0, 1 - afterTen.more)
                dist[100, default: 0] += start[1] * after.digit[0] * afterTen.digit[0]
            }
        }
        return dist.filter { $0.value > 0 }
    }

    /// The judge prompt's ids, with room for `steps` more tokens in the model's context.
    private func judgePromptIds(_ prompt: String, steps: Int) throws -> [Int] {
        let ids = try generator.promptIds(for: prompt, raw: false)
        guard ids.count + steps < loaded.model.config.maxPositions else {
            throw JudgeError("local judge: the judge prompt has \(ids.count) tokens, more than the model's context (\(loaded.model.config.maxPositions))")
        }
        return ids
    }

    /// Softmax in double precision (the logits buffer is only valid until the next forward pass).
    private static func softmax(_ logits: UnsafeBufferPointer<Float>) -> [Double] {
        var m = -Float.infinity
        for v in logits where v > m { m = v }
        var out = logits.map { Foundation.exp(Double($0 - m)) }
        let z = out.reduce(0, +)
        for i in out.indices { out[i] /= z }
        return out
    }

    /// Next-token probability of every number token after the judge prompt (full softmax over the vocabulary).
    public func numberProbabilities(prompt: String) throws -> [(id: Int, value: Int, p: Double)] {
        lock.lock(); defer { lock.unlock() }
        let ids = try judgePromptIds(prompt, steps: 0)
        let model = loaded.model
        let p = Self.softmax(try model.forward(ids, cache: model.makeCache(capacity: ids.count), logits: .last))
        return numberTokens.map { (id: $0.id, value: $0.value, p: p[$0.id]) }
    }
}
