import Foundation
import PersonaModels
import PersonaTensor
import PersonaTokenizers

/// One generated token, as streamed.
public struct TokenEvent: Sendable {
    /// 0-based index among generated tokens.
    public let index: Int
    /// Absolute position of this token in the sequence (prompt length + index).
    public let position: Int
    public let id: Int
    /// Text this token adds to the decoded output (may be "" while a UTF-8 sequence is incomplete).
    public let text: String
    /// Display-safe text of this token on its own.
    public let display: String
    /// The part of the output this token makes final, for printing or streaming as it comes: `text` (with text an
    /// earlier token left pending) up to where a stop string could still begin, or up to the stop string that
    /// ends the output here. The events' `released`, in order, then `GenerationResult.unreleased`, give exactly
    /// `GenerationResult.text`: no stop string and nothing past it is ever released.
    public let released: String
    /// log p(token) under the model's raw distribution (before temperature and filters).
    public let logprob: Float
    /// The most likely alternatives: (id, logprob), best first; empty unless requested.
    public let topAlternatives: [(id: Int, logprob: Float)]
}

public enum FinishReason: String, Sendable, Codable { case eos, stop, length }

/// log p(prompt token | the prompt tokens before it), under the model as it runs (with its hooks and steering):
/// prompt scoring, what OpenAI's `echo` with `logprobs` reports. The first token has none.
public struct PromptTokenLogprob: Sendable {
    /// Position in the prompt (1 or more).
    public let position: Int
    public let id: Int
    public let logprob: Float
    /// The most likely tokens at this position: (id, logprob), best first.
    public let topAlternatives: [(id: Int, logprob: Float)]
}

public struct GenerationResult: Sendable {
    public let promptIds: [Int]
    public let tokens: [TokenEvent]
    public let text: String
    /// The end of `text` that no event released (held back for a stop string that did not come, or an incomplete
    /// UTF-8 sequence flushed at the end).
    public let unreleased: String
    public let finishReason: FinishReason
    public let prefillSeconds: Double
    public let decodeSeconds: Double
    /// Positions 1..<prompt length, when `GenerationOptions.promptLogprobs` asked for them.
    public var promptLogprobs: [PromptTokenLogprob]? = nil
    public var tokenIds: [Int] { tokens.map(\.id) }
    /// Decode speed (tokens after the first / decode time).
    public var tokensPerSecond: Double { decodeSeconds > 0 ? Double(max(0, tokens.count - 1)) / decodeSeconds : 0 }
}

public struct GenerationOptions: Sendable {
    public var maxTokens: Int = 128
    public var sampling = SamplingParameters()
    public var stopStrings: [String] = []
    public var stopAtEOS = true
    /// How many top alternatives to report per token (0 = none; the chosen token's logprob is always computed).
    public var topLogprobs = 0
    /// Also run the last generated token through the model (no logits) so hooks see its own hidden state.
    /// Monitoring needs it: every token's score is the state at that token's position.
    public var processFinalToken = false
    /// Also score the prompt: each prompt token's logprob given those before it, with this many alternatives
    /// (nil: not scored). The prefill pass then computes logits at every prompt position ([prompt, vocab] floats).
    public var promptLogprobs: Int? = nil

    public init(maxTokens: Int = 128, sampling: SamplingParameters = SamplingParameters(), stopStrings: [String] = [],
                stopAtEOS: Bool = true, topLogprobs: Int = 0, processFinalToken: Bool = false) {
        self.processFinalToken = processFinalToken
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopStrings = stopStrings
        self.stopAtEOS = stopAtEOS
        self.topLogprobs = topLogprobs
    }

    /// Sequence positions a request can fill: the prompt, at most `maxTokens` new tokens (and the last one run
    /// again), never past the context. Bounded first, so a huge `maxTokens` neither overflows nor sizes a buffer
    /// for tokens the cache cannot hold.
    public func positions(prompt: Int, contextLength: Int) -> Int {
        min(contextLength, prompt + min(max(0, maxTokens), contextLength) + (processFinalToken ? 1 : 0))
    }
}

/// Runs prefill + decode with a KV cache. Interventions in `hooks` apply to every forward pass
/// (their `PositionSelector` decides prompt / response / all positions).
public final class Generator: @unchecked Sendable {
    public let loaded: LoadedModel

    public init(_ loaded: LoadedModel) { self.loaded = loaded }

    /// Builds the prompt ids: through the chat template unless `raw` (or the model has none), else the
    /// text with the tokenizer's own special tokens (BOS once).
    public func promptIds(for prompt: String, system: String? = nil, raw: Bool) throws -> [Int] {
        var messages: [ChatMessage] = []
        if let system { messages.append(ChatMessage(role: "system", content: system)) }
        messages.append(ChatMessage(role: "user", content: prompt))
        return try promptIds(messages: messages, raw: raw)
    }

    /// Prompt ids for a whole conversation through the chat template (system merged where unsupported).
    /// Without a template (or with `raw`), the messages' contents are joined by blank lines as plain text.
    public func promptIds(messages: [ChatMessage], raw: Bool) throws -> [Int] {
        let tok = loaded.tokenizer
        if !raw, let template = tok.chatTemplate {
            let t = try ChatTemplate(source: template)
            let text = try t.renderMergingSystemIfUnsupported(messages: messages, addGenerationPrompt: true,
                                                              bosToken: tok.bosToken, eosToken: tok.eosToken)
            return tok.tokenizer.encode(text, addSpecialTokens: false)
        }
        return tok.tokenizer.encode(messages.map(\.content).joined(separator: "\n\n"), addSpecialTokens: true)
    }

    /// Generates up to `options.maxTokens` tokens after `promptIds`. `onToken` returns false to stop early.
    /// The batch decoder with one sequence: every generation path runs the same loop.
    public func generate(promptIds: [Int], options: GenerationOptions, hooks: HookSet = HookSet(),
                         onToken: (TokenEvent) throws -> Bool = { _ in true }) throws -> GenerationResult {
        try generate(batch: [promptIds], options: [options], hooks: [hooks], onToken: { _, ev in try onToken(ev) })[0]
    }

    /// Generates a continuation for each prompt at once: the prompts are prefilled together, then every step runs
    /// the sequences still going in one batched forward pass (one read of the weights for all of them), dropping
    /// each as it finishes. Each sequence has its own KV cache and sampler; `seeds[i]` (if given) replaces the
    /// sampling seed of sequence i, so its tokens are those that `generate(promptIds:)` with that seed draws
    /// (up to f32 rounding of the batched products). `onToken(i, event)` streams tokens of sequence i and returns
    /// false to stop that sequence; `onFinish(i, result)` is called as soon as sequence i is done, so callers can
    /// save finished work while the rest are still generating. Results are returned in prompt order.
    public func generate(batch prompts: [[Int]], options: GenerationOptions, seeds: [UInt64]? = nil, hooks: HookSet = HookSet(),
                         onToken: (Int, TokenEvent) throws -> Bool = { _, _ in true },
                         onFinish: (Int, GenerationResult) throws -> Void = { _, _ in }) throws -> [GenerationResult] {
        if let seeds, seeds.count != prompts.count {
            throw GenerationError("batch generation: \(seeds.count) seeds for \(prompts.count) prompts")
        }
        let perSequence = prompts.indices.map { i -> GenerationOptions in
            var o = options
            if let seeds { o.sampling.seed = seeds[i] }
            return o
        }
        return try generate(batch: prompts, options: perSequence, hooks: Array(repeating: hooks, count: prompts.count),
                            onToken: onToken, onFinish: onFinish)
    }

    /// Batched generation with options and hooks of its own for each sequence (e.g. one monitor per prompt).
    public func generate(batch prompts: [[Int]], options: [GenerationOptions], hooks: [HookSet],
                         onToken: (Int, TokenEvent) throws -> Bool = { _, _ in true },
                         onFinish: (Int, GenerationResult) throws -> Void = { _, _ in }) throws -> [GenerationResult] {
        guard !prompts.isEmpty else { return [] }
        guard options.count == prompts.count, hooks.count == prompts.count else {
            throw GenerationError("batch generation: \(prompts.count) prompts need as many options and hook sets (got \(options.count) and \(hooks.count))")
        }
        var results = [GenerationResult?](repeating: nil, count: prompts.count)
        try withoutActuallyEscaping(onToken) { onToken in
            try withoutActuallyEscaping(onFinish) { onFinish in
                // every prompt is checked before anything runs
                let decoder = BatchDecoder(loaded: loaded)
                for i in prompts.indices {
                    try decoder.admit(promptIds: prompts[i], options: options[i], hooks: hooks[i], label: prompts.count == 1 ? "the prompt" : "prompt \(i) of the batch",
                                      onToken: { try onToken(i, $0) },
                                      onFinish: { r in
                                          let result = try r.get()
                                          results[i] = result
                                          try onFinish(i, result)
                                      })
                }
                while !decoder.isEmpty { try decoder.step(isolateFailures: false) }
            }
        }
        return results.map { $0! }
    }

    /// Streams tokens as an AsyncSequence; cancelling the consuming task stops generation.
    public func stream(promptIds: [Int], options: GenerationOptions, hooks: HookSet = HookSet()) -> AsyncThrowingStream<TokenEvent, Error> {
        AsyncThrowingStream { continuation in
            let flag = CancelFlag()
            continuation.onTermination = { _ in flag.cancel() }
            let thread = Thread {
                do {
                    _ = try self.generate(promptIds: promptIds, options: options, hooks: hooks) { ev in
                        continuation.yield(ev)
                        return !flag.isCancelled
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
    }

    /// log-softmax lookup for the chosen id, plus the top `top` alternatives.
    static func logprobs(_ logits: UnsafeBufferPointer<Float>, top: Int) -> ((Int) -> Float, [(id: Int, logprob: Float)]) {
        var m = -Float.infinity
        for v in logits where v > m { m = v }
        let s = Ops.softmaxWeights(logits.baseAddress!, count: logits.count, shift: m, out: nil)
        let lse = m + Float(Foundation.log(s))
        var alts: [(id: Int, logprob: Float)] = []
        if top > 0 {
            // simple selection of the top entries
            var best: [(Int, Float)] = []
            for (i, v) in logits.enumerated() {
                if best.count < top { best.append((i, v)); best.sort { $0.1 > $1.1 } }
                else if v > best[best.count - 1].1 { best[best.count - 1] = (i, v); best.sort { $0.1 > $1.1 } }
            }
            alts = best.map { (id: $0.0, logprob: $0.1 - lse) }
        }
        let base = logits.baseAddress!
        return ({ id in base[id] - lse }, alts)
    }
}

/// What one sequence carries between forward passes: its sampler, history, events, text and stop state.
/// `step` consumes the logits of the sequence's last position and returns the token to run next, or nil once
/// the sequence is done (EOS, a stop string, `onToken` returning false, max tokens, or a full cache).
struct SequenceState {
    let promptIds: [Int]
    let options: GenerationOptions
    let eos: Set<Int>
    let tokenizer: any Tokenizer
    var sampler: Sampler
    var history: [Int]
    var events: [TokenEvent] = []
    var detokenizer: StreamingDetokenizer
    var text = ""
    private var releasedUTF8 = 0   // bytes of `text` handed out in events' `released`
    private var stopped = false   // cut at a stop string: nothing held back may follow
    var finish = FinishReason.length
    var produced = 0
    /// The last emitted token, until it has been run through the model.
    var pending: Int? = nil
    /// Set by the prefill pass when the options ask for prompt scoring.
    var promptLogprobs: [PromptTokenLogprob]? = nil

    init(promptIds: [Int], options: GenerationOptions, loaded: LoadedModel) {
        self.promptIds = promptIds
        self.options = options
        eos = options.stopAtEOS ? loaded.eosTokenIds : []
        tokenizer = loaded.tokenizer.tokenizer
        sampler = Sampler(options.sampling)
        history = promptIds
        history.reserveCapacity(options.positions(prompt: promptIds.count, contextLength: loaded.config.maxPositions))
        detokenizer = StreamingDetokenizer(tokenizer: tokenizer, context: promptIds)
    }

    /// Scores the prompt from the prefill pass's logits, one row per prompt position (the last row predicts the
    /// first new token and is not a prompt token's).
    mutating func scorePrompt(_ logits: UnsafeBufferPointer<Float>, vocab V: Int, top: Int) {
        var out: [PromptTokenLogprob] = []
        out.reserveCapacity(max(0, promptIds.count - 1))
        for p in 1..<max(1, promptIds.count) {
            let row = UnsafeBufferPointer(rebasing: logits[((p - 1) * V)..<(p * V)])
            let (logprob, alts) = Generator.logprobs(row, top: top)
            out.append(PromptTokenLogprob(position: p, id: promptIds[p], logprob: logprob(promptIds[p]), topAlternatives: alts))
        }
        promptLogprobs = out
    }

    mutating func step(logits: UnsafeBufferPointer<Float>, scratch: inout [Float], cacheFull: Bool,
                       onToken: (TokenEvent) throws -> Bool) rethrows -> Int? {
        guard produced < options.maxTokens else { return nil }
        scratch.withUnsafeMutableBufferPointer { s in _ = s.initialize(from: logits) }
        let (logprob, alts) = Generator.logprobs(logits, top: options.topLogprobs)
        let id = scratch.withUnsafeMutableBufferPointer { sampler.sample($0, history: history, promptLength: promptIds.count) }
        history.append(id)
        let isEOS = eos.contains(id)
        let piece = isEOS ? "" : detokenizer.append(id)
        text += piece
        // The earliest stop string in the text ends it; otherwise a tail that could begin one waits.
        var end = text.endIndex
        let released: String
        if options.stopStrings.isEmpty {
            released = piece   // nothing is ever held back
        } else if isEOS {
            released = ""      // no event is sent for EOS: what is held goes to `unreleased`
        } else {
            // only the unreleased tail is searched: a stop string beginning before it would have been held back
            let from = text.utf8.index(text.startIndex, offsetBy: releasedUTF8)
            let tail = text[from...]
            if let cut = options.stopStrings.compactMap({ tail.range(of: $0, options: .literal)?.lowerBound }).min() {
                end = cut
                stopped = true
            } else {
                end = text.unicodeScalars.index(end, offsetBy: -StopStrings.pendingSuffix(of: tail, stops: options.stopStrings))
            }
            released = from < end ? String(text[from..<end]) : ""
        }
        releasedUTF8 += released.utf8.count
        let event = TokenEvent(index: produced, position: promptIds.count + produced, id: id, text: piece,
                               display: displayString(forTokenBytes: tokenizer.tokenBytes(id)), released: released,
                               logprob: logprob(id), topAlternatives: alts)
        produced += 1
        if isEOS { finish = .eos; return nil }
        events.append(event)
        pending = id
        let keepGoing = try onToken(event)
        if stopped {
            text = String(text[..<end])
            finish = .stop
            return nil
        }
        if !keepGoing { finish = .stop; return nil }
        if produced >= options.maxTokens || cacheFull { return nil }
        return id
    }

    mutating func result(prefillSeconds: Double, decodeSeconds: Double) -> GenerationResult {
        if !stopped { text += detokenizer.flush() }   // text held back for an incomplete UTF-8 sequence
        let unreleased = String(text.utf8.dropFirst(min(releasedUTF8, text.utf8.count)))!
        return GenerationResult(promptIds: promptIds, tokens: events, text: text, unreleased: unreleased,
                                finishReason: finish, prefillSeconds: prefillSeconds, decodeSeconds: decodeSeconds,
                                promptLogprobs: promptLogprobs)
    }
}

/// Stop-string matching shared by everything that streams generated text.
public enum StopStrings {
    /// The length in Unicode scalars of the longest end of `text` that is the start of some stop string (and not a
    /// whole one): text that must be held back while streaming, since the next token may complete a stop string there.
    /// Scalars, as stop strings match (a literal search): in Characters a text ending in "\r" does not end with the
    /// "\r\n" that a stop "\r\nUser:" begins with, and the stop was missed once the "\r" had been released.
    public static func pendingSuffix(of text: some StringProtocol, stops: [String]) -> Int {
        let t = text.unicodeScalars
        var best = 0
        for s in stops {
            let u = Array(s.unicodeScalars)
            var k = u.count - 1
            while k > best {
                if t.suffix(k).elementsEqual(u.prefix(k)) { best = k; break }
                k -= 1
            }
        }
        return best
    }
}

/// A thread-safe "stop" flag set by a stream's consumer and read by the generating thread.
public final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    public init() {}
    public func cancel() { lock.lock(); cancelled = true; lock.unlock() }
    public var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }
}
