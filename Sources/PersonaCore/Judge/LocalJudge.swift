import Foundation
import PersonaGeneration
import PersonaModels

/// A judge run on a loaded local model: the prompt goes through the model's chat template as one user
/// turn (raw text when it has none), and the score is `JudgeAggregation` over the next-token distribution
/// restricted to the tokens whose text is an integer 0...100 (all of them, not only the top 20).
public final class LocalJudge: Judge, @unchecked Sendable {
    public let loaded: LoadedModel
    private let generator: Generator
    /// token id -> the integer its text stands for.
    public let numberTokens: [(id: Int, value: Int)]
    private let lock = NSLock()

    public init(_ loaded: LoadedModel) {
        self.loaded = loaded
        generator = Generator(loaded)
        let tok = loaded.tokenizer.tokenizer
        var numbers: [(id: Int, value: Int)] = []
        for id in 0..<min(tok.vocabSize, loaded.config.vocabSize) where !tok.isSpecial(id) {
            let text = tok.decode([id], skipSpecialTokens: true)
            if let v = JudgeAggregation.number(text) { numbers.append((id, v)) }
        }
        numberTokens = numbers
    }

    public var name: String { "local:\(loaded.name)" }

    public func score(prompt: String) async throws -> Double? {
        try scoreSync(prompt: prompt)
    }

    /// The same score, synchronously.
    public func scoreSync(prompt: String) throws -> Double? {
        let probs = try numberProbabilities(prompt: prompt)
        return JudgeAggregation.score(topLogprobs: probs.map { (token: String($0.value), logprob: Foundation.log($0.p)) })
    }

    /// Next-token probability of every number token after the judge prompt (full softmax over the vocabulary).
    public func numberProbabilities(prompt: String) throws -> [(id: Int, value: Int, p: Double)] {
        lock.lock(); defer { lock.unlock() }
        let ids = try generator.promptIds(for: prompt, raw: false)
        let model = loaded.model
        guard ids.count < model.config.maxPositions else {
            throw JudgeError("local judge: the judge prompt has \(ids.count) tokens, more than the model's context (\(model.config.maxPositions))")
        }
        let cache = model.makeCache(capacity: ids.count)
        let logits = try model.forward(ids, cache: cache, logits: .last)
        var m = -Float.infinity
        for v in logits where v > m { m = v }
        var z = 0.0
        for v in logits { z += Foundation.exp(Double(v - m)) }
        return numberTokens.map { (id: $0.id, value: $0.value, p: Foundation.exp(Double(logits[$0.id] - m)) / z) }
    }
}
