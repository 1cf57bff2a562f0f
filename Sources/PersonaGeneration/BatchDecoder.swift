import Foundation
import PersonaModels
import PersonaTensor

/// Sequences that decode together: each step runs every sequence's pending input (its prompt at first, then one
/// token) in one `TransformerModel.forward(batch:)` and samples each from its own logits row. Shared by
/// `Generator.generate(batch:)` (a fixed batch) and `BatchScheduler` (requests joining between steps).
/// Not thread-safe: one owner drives it.
final class BatchDecoder {
    final class Sequence {
        let options: GenerationOptions
        let hooks: HookSet
        let cache: KVCache
        var state: SequenceState
        /// Tokens to run next step (the prompt at first, then one token).
        var input: [Int]
        /// Only the final token's own state is wanted (processFinalToken): no sampling after this step.
        var finalOnly = false
        let onPrompt: (([PromptTokenLogprob]) throws -> Void)?
        let onToken: (TokenEvent) throws -> Bool
        let onFinish: (Result<GenerationResult, Error>) throws -> Void
        let admitted = Date()
        var prefilled = false
        /// This step's pass is the prefill of a prompt to score.
        var scoresPrompt: Bool { !prefilled && options.promptLogprobs != nil }
        var prefillSeconds = 0.0
        var decodeStart = Date()

        init(promptIds: [Int], options: GenerationOptions, hooks: HookSet, cache: KVCache, state: SequenceState,
             onPrompt: (([PromptTokenLogprob]) throws -> Void)?,
             onToken: @escaping (TokenEvent) throws -> Bool, onFinish: @escaping (Result<GenerationResult, Error>) throws -> Void) {
            self.onPrompt = onPrompt
            self.options = options
            self.hooks = hooks
            self.cache = cache
            self.state = state
            input = promptIds
            self.onToken = onToken
            self.onFinish = onFinish
        }
    }

    /// An error from sampling or a callback, told apart from a failed pass.
    private struct SamplingFailure: Error { let underlying: Error }

    let loaded: LoadedModel
    private(set) var running: [Sequence] = []
    private var scratch: [Float] = []

    init(loaded: LoadedModel) { self.loaded = loaded }

    var isEmpty: Bool { running.isEmpty }

    /// Adds a sequence; its prompt runs in the next step. Throws, adding nothing, if the request is invalid
    /// (`label` names the prompt in the message).
    func admit(promptIds: [Int], options: GenerationOptions, hooks: HookSet, label: String,
               onPrompt: (([PromptTokenLogprob]) throws -> Void)? = nil,
               onToken: @escaping (TokenEvent) throws -> Bool, onFinish: @escaping (Result<GenerationResult, Error>) throws -> Void) throws {
        try loaded.checkRequest(promptIds, options, label: label)
        running.append(Sequence(promptIds: promptIds, options: options, hooks: hooks,
                                cache: loaded.model.makeCache(capacity: loaded.cacheCapacity(promptIds, options)),
                                state: SequenceState(promptIds: promptIds, options: options, loaded: loaded),
                                onPrompt: onPrompt, onToken: onToken, onFinish: onFinish))
    }

    /// One forward pass for every running sequence, then sampling; finished sequences are reported and dropped.
    /// A failing pass is thrown, or with `isolateFailures` rerun sequence by sequence (a failed pass leaves the
    /// caches as they were) so that only the sequences that fail alone end, with `.failure`.
    func step(isolateFailures: Bool) throws {
        guard !running.isEmpty else { return }
        let model = loaded.model
        let V = model.config.vocabSize
        var still: [Sequence] = []
        // a prompt to score needs every position's logits; the other sequences read their last row of those
        let all = running.contains(where: \.scoresPrompt)
        do {
            // sampled under the model's lock: no other pass can overwrite the logits meanwhile
            try model.forward(batch: running.map { BatchSequence(tokens: $0.input, cache: $0.cache, hooks: $0.hooks) }, logits: all ? .all : .last) { logits in
                do {
                    var start = 0   // the sequence's first logits row
                    for s in running {
                        let n = all ? s.input.count : 1
                        if try consume(s, logits: UnsafeBufferPointer(rebasing: logits[(start * V)..<((start + n) * V)])) {
                            still.append(s)
                        }
                        start += n
                    }
                } catch {
                    throw SamplingFailure(underlying: error)   // not the pass: no rerun
                }
            }
        } catch let failure as SamplingFailure {
            throw failure.underlying
        } catch {
            guard isolateFailures else { throw error }
            var still: [Sequence] = []
            for s in running {
                do {
                    if try consume(s, logits: try model.forward(s.input, cache: s.cache, hooks: s.hooks, logits: s.scoresPrompt ? .all : .last)) { still.append(s) }
                } catch {
                    try s.onFinish(.failure(error))
                }
            }
            running = still
            return
        }
        running = still
    }

    /// Samples the sequence's next token from its logits row (the last of `logits`, which holds every input
    /// position's row when the prompt is scored); false once it is finished (and reported).
    private func consume(_ s: Sequence, logits rows: UnsafeBufferPointer<Float>) throws -> Bool {
        let V = loaded.model.config.vocabSize
        if s.scoresPrompt, let top = s.options.promptLogprobs {
            s.state.scorePrompt(rows, vocab: V, top: top)
            try s.onPrompt?(s.state.promptLogprobs ?? [])
        }
        let logits = UnsafeBufferPointer(rebasing: rows[(rows.count - V)...])
        if !s.prefilled {
            s.prefilled = true
            s.prefillSeconds = Date().timeIntervalSince(s.admitted)
            s.decodeStart = Date()
        }
        if s.finalOnly {
            try finish(s)
            return false
        }
        s.state.pending = nil   // the token the last pass ran
        if scratch.count != logits.count { scratch = [Float](repeating: 0, count: logits.count) }
        if let id = try s.state.step(logits: logits, scratch: &scratch, cacheFull: s.cache.count >= s.cache.capacity, onToken: s.onToken) {
            s.input = [id]
            return true
        }
        if s.options.processFinalToken, let id = s.state.pending, s.cache.count < s.cache.capacity {
            // one more pass so the hooks see the last token's own state
            s.input = [id]
            s.finalOnly = true
            return true
        }
        try finish(s)
        return false
    }

    private func finish(_ s: Sequence) throws {
        try s.onFinish(.success(s.state.result(prefillSeconds: s.prefillSeconds, decodeSeconds: Date().timeIntervalSince(s.decodeStart))))
    }
}

extension LoadedModel {
    /// The checks every generation path makes before running a request; `label` names the prompt in messages.
    func checkRequest(_ promptIds: [Int], _ options: GenerationOptions, label: String) throws {
        try options.sampling.validate()
        guard !promptIds.isEmpty else { throw GenerationError("\(label) is empty (no tokens)") }
        guard options.maxTokens >= 0 else { throw GenerationError("max tokens must be >= 0, got \(options.maxTokens)") }
        if let k = options.promptLogprobs, k < 0 { throw GenerationError("prompt logprobs: alternatives must be >= 0, got \(k)") }
        if let id = options.sampling.logitBias.keys.first(where: { $0 >= model.config.vocabSize }) {
            throw GenerationError("logit bias: token id \(id) is outside the vocabulary (0..<\(model.config.vocabSize))")
        }
        let maxPos = model.config.maxPositions
        guard promptIds.count < maxPos else {
            throw GenerationError("\(label) has \(promptIds.count) tokens; the model's context length is \(maxPos)")
        }
    }

    /// KV cache positions a request can fill: prompt, new tokens and (processFinalToken) the last one run again.
    func cacheCapacity(_ promptIds: [Int], _ options: GenerationOptions) -> Int {
        options.positions(prompt: promptIds.count, contextLength: model.config.maxPositions)
    }
}
