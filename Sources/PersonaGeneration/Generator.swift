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
    /// log p(token) under the model's raw distribution (before temperature and filters).
    public let logprob: Float
    /// The most likely alternatives: (id, logprob), best first; empty unless requested.
    public let topAlternatives: [(id: Int, logprob: Float)]
}

public enum FinishReason: String, Sendable, Codable { case eos, stop, length }

public struct GenerationResult: Sendable {
    public let promptIds: [Int]
    public let tokens: [TokenEvent]
    public let text: String
    public let finishReason: FinishReason
    public let prefillSeconds: Double
    public let decodeSeconds: Double
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

    public init(maxTokens: Int = 128, sampling: SamplingParameters = SamplingParameters(), stopStrings: [String] = [],
                stopAtEOS: Bool = true, topLogprobs: Int = 0, processFinalToken: Bool = false) {
        self.processFinalToken = processFinalToken
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopStrings = stopStrings
        self.stopAtEOS = stopAtEOS
        self.topLogprobs = topLogprobs
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
    public func generate(promptIds: [Int], options: GenerationOptions, hooks: HookSet = HookSet(),
                         onToken: (TokenEvent) throws -> Bool = { _ in true }) throws -> GenerationResult {
        try options.sampling.validate()
        guard !promptIds.isEmpty else { throw GenerationError("the prompt is empty (no tokens)") }
        guard options.maxTokens >= 0 else { throw GenerationError("max tokens must be >= 0, got \(options.maxTokens)") }
        let model = loaded.model
        let maxPos = model.config.maxPositions
        guard promptIds.count < maxPos else {
            throw GenerationError("the prompt has \(promptIds.count) tokens; the model's context length is \(maxPos)")
        }
        let capacity = min(maxPos, promptIds.count + options.maxTokens + (options.processFinalToken ? 1 : 0))
        let cache = model.makeCache(capacity: capacity)
        let tokenizer = loaded.tokenizer.tokenizer
        let eos = options.stopAtEOS ? loaded.eosTokenIds : []
        var sampler = Sampler(options.sampling)
        var history = promptIds
        history.reserveCapacity(promptIds.count + options.maxTokens)
        var events: [TokenEvent] = []
        var text = TextAccumulator(tokenizer: tokenizer, context: promptIds)
        var finish = FinishReason.length
        var scratch = [Float](repeating: 0, count: model.config.vocabSize)

        let t0 = Date()
        var logits = try model.forward(promptIds, cache: cache, hooks: hooks, logits: .last)
        let prefill = Date().timeIntervalSince(t0)
        let t1 = Date()
        var produced = 0
        var pendingForward: Int? = nil   // last emitted token not yet run through the model
        while produced < options.maxTokens {
            scratch.withUnsafeMutableBufferPointer { s in _ = s.initialize(from: logits) }
            let (logprob, alts) = Generator.logprobs(UnsafeBufferPointer(start: logits.baseAddress, count: logits.count),
                                                     top: options.topLogprobs)
            let id = scratch.withUnsafeMutableBufferPointer { sampler.sample($0, history: history) }
            let chosenLogprob = logprob(id)
            history.append(id)
            let isEOS = eos.contains(id)
            let piece = isEOS ? "" : text.append(id)
            let event = TokenEvent(index: produced, position: promptIds.count + produced, id: id, text: piece,
                                   display: displayString(forTokenBytes: tokenizer.tokenBytes(id)),
                                   logprob: chosenLogprob, topAlternatives: alts)
            produced += 1
            if isEOS { finish = .eos; break }
            events.append(event)
            pendingForward = id
            let keepGoing = try onToken(event)
            if let s = options.stopStrings.first(where: { text.text.contains($0) }) {
                text.cut(at: s)
                finish = .stop
                break
            }
            if !keepGoing { finish = .stop; break }
            if produced >= options.maxTokens || cache.count >= cache.capacity { break }
            logits = try model.forward([id], cache: cache, hooks: hooks, logits: .last)
            pendingForward = nil
        }
        if options.processFinalToken, let id = pendingForward, cache.count < cache.capacity {
            try model.forward([id], cache: cache, hooks: hooks, logits: .none)
        }
        return GenerationResult(promptIds: promptIds, tokens: events, text: text.text + text.flush(), finishReason: finish,
                                prefillSeconds: prefill, decodeSeconds: Date().timeIntervalSince(t1))
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
        var s: Double = 0
        for v in logits { s += Foundation.exp(Double(v - m)) }
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

/// A thread-safe "stop" flag set by a stream's consumer and read by the generating thread.
public final class CancelFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false
    public init() {}
    public func cancel() { lock.lock(); cancelled = true; lock.unlock() }
    public var isCancelled: Bool { lock.lock(); defer { lock.unlock() }; return cancelled }
}

/// Incremental detokenisation: decodes a short window of ids with some left context so tokenizers that
/// strip or merge at the start of a decode (SentencePiece's leading space) still give the exact continuation,
/// and holds back text while a UTF-8 sequence is incomplete (decoders emit U+FFFD for it).
struct TextAccumulator {
    let tokenizer: any Tokenizer
    private var ids: [Int]
    private var emitted = ""       // decoded text of the window up to the last emitted point
    private var windowStart: Int
    private(set) var text = ""

    init(tokenizer: any Tokenizer, context: [Int]) {
        self.tokenizer = tokenizer
        ids = Array(context.suffix(4))
        windowStart = 0
        emitted = tokenizer.decode(ids, skipSpecialTokens: true)
    }

    /// Appends one id; returns the newly completed text.
    mutating func append(_ id: Int) -> String {
        ids.append(id)
        let full = tokenizer.decode(Array(ids[windowStart...]), skipSpecialTokens: true)
        if full.hasSuffix("\u{FFFD}") { return "" }
        // Compare by unicode scalars: a combining mark must not re-emit the character it joins.
        let f = Array(full.unicodeScalars), e = Array(emitted.unicodeScalars)
        var common = 0
        while common < min(f.count, e.count), f[common] == e[common] { common += 1 }
        var piece = ""
        piece.unicodeScalars.append(contentsOf: f[common...])
        text += piece
        // slide the window so decoding stays O(1) per token
        if ids.count - windowStart > 16 {
            windowStart = ids.count - 4
            emitted = tokenizer.decode(Array(ids[windowStart...]), skipSpecialTokens: true)
        } else {
            emitted = full
        }
        return piece
    }

    mutating func flush() -> String {
        let full = tokenizer.decode(Array(ids[windowStart...]), skipSpecialTokens: true)
        let f = Array(full.unicodeScalars), e = Array(emitted.unicodeScalars)
        guard f.count > e.count, f.starts(with: e) else { return "" }
        var piece = ""
        piece.unicodeScalars.append(contentsOf: f[e.count...])
        text += piece
        emitted = full
        return piece
    }

    mutating func cut(at stop: String) {
        if let r = text.range(of: stop) { text = String(text[..<r.lowerBound]) }
    }
}
