import Foundation
import PersonaGeneration
import PersonaModels
import PersonaRuns
import PersonaTokenizers

/// What to generate and watch.
public struct MonitorRequest: Sendable {
    public var prompt: String
    public var system: String? = nil
    /// A whole conversation; when set it replaces `prompt`/`system` for building the model input.
    public var messages: [ChatMessage]? = nil
    public var raw = false
    public var options = GenerationOptions(maxTokens: 64)
    /// Traits to monitor, `trait` or `trait@method` (nil = every trait's default method; see `TraitSelection`).
    public var traits: [String]? = nil
    public var layers: LayerSelection = .recommended
    public var steering: [SteeringSpec] = []
    public var condition: SteeringCondition? = nil
    /// Also record scores for the prompt tokens.
    public var includePrompt = false
    /// The model input as token ids, fed as given (no template, no BOS added): replaces `prompt`, `messages`
    /// and `raw` for building it; `prompt` is still what the run document records.
    public var promptIds: [Int]? = nil

    public init(prompt: String, options: GenerationOptions = GenerationOptions(maxTokens: 64)) {
        self.prompt = prompt
        self.options = options
    }
}

/// A generated token together with its trait scores (available once its own hidden state was computed).
public struct MonitoredToken: Sendable {
    public let event: TokenEvent
    /// Score per trait at the trait's primary row.
    public let scores: [String: Double]
}

/// The prompt as the prefill pass saw it, for prompt scoring (`GenerationOptions.promptLogprobs`).
public struct MonitoredPrompt: Sendable {
    public let ids: [Int]
    /// Positions 1..<ids.count: each token's logprob given those before it.
    public let logprobs: [PromptTokenLogprob]
    /// Per trait, the score at every prompt position (as `RunDocument.promptScores`).
    public let scores: [String: [Double]]
}

/// Generation with per-token monitoring and optional steering in one pass, producing a run document.
public final class MonitorSession: @unchecked Sendable {
    public let loaded: LoadedModel
    public let vectors: [TraitVector]

    public init(loaded: LoadedModel, vectors: [TraitVector]) throws {
        self.loaded = loaded
        self.vectors = vectors
        for v in vectors { try v.check(against: loaded.config) }
    }

    /// Runs the request. `onToken` gets each token once its own score is known (one token behind the sampler);
    /// returning false stops generation.
    public func run(_ request: MonitorRequest, onToken: (MonitoredToken) throws -> Bool = { _ in true }) throws -> RunDocument {
        let p = try prepare(request)
        let started = Date()
        let result = try Generator(loaded).generate(promptIds: p.promptIds, options: p.options, hooks: p.hooks) { ev in
            try p.sampled(ev, emit: onToken)
        }
        try p.flush(emit: onToken)
        return try finished(p, result, started: started)
    }

    /// Runs several requests as one batch: one batched forward pass per step for all unfinished prompts, each with
    /// its own monitor, steering and sampler, so each document equals what `run` gives for that request alone
    /// (up to f32 rounding of the batched products). `onToken(i, token)` streams request i's scored tokens and
    /// returns false to stop that request; `onFinish(i, document)` is called as soon as request i is done.
    /// Documents are returned in request order; a document's elapsed time is the batch's time until it finished.
    public func run(batch requests: [MonitorRequest], onToken: (Int, MonitoredToken) throws -> Bool = { _, _ in true },
                    onFinish: (Int, RunDocument) throws -> Void = { _, _ in }) throws -> [RunDocument] {
        guard !requests.isEmpty else { return [] }
        let prepared = try requests.map { try prepare($0) }
        var docs = [RunDocument?](repeating: nil, count: requests.count)
        let started = Date()
        _ = try Generator(loaded).generate(
            batch: prepared.map(\.promptIds), options: prepared.map(\.options), hooks: prepared.map(\.hooks),
            onToken: { i, ev in try prepared[i].sampled(ev) { try onToken(i, $0) } },
            onFinish: { i, result in
                try prepared[i].flush { try onToken(i, $0) }
                let doc = try finished(prepared[i], result, started: started)
                docs[i] = doc
                try onFinish(i, doc)
            })
        return docs.map { $0! }
    }

    /// Queues the request on a continuous-batching scheduler (which must serve this session's model): it shares
    /// forward passes with whatever else the scheduler runs. Callbacks come on the scheduler's thread: `onToken`
    /// gets each scored token (one behind the sampler, as in `run`) and returns false to stop; `onFinish` is
    /// called once with the document or the error (bad requests included).
    /// With `options.promptLogprobs` set, `onPrompt` gets the scored prompt after the prefill pass, before any token.
    public func submit(_ request: MonitorRequest, to scheduler: BatchScheduler,
                       onPrompt: ((MonitoredPrompt) -> Void)? = nil,
                       onToken: @escaping (MonitoredToken) -> Bool,
                       onFinish: @escaping (Result<(document: RunDocument, finish: FinishReason), Error>) -> Void) {
        let p: Prepared
        do { p = try prepare(request) } catch { onFinish(.failure(error)); return }
        let started = Date()
        scheduler.submit(promptIds: p.promptIds, options: p.options, hooks: p.hooks, onPrompt: onPrompt.map { onPrompt in
            { logprobs in onPrompt(MonitoredPrompt(ids: p.promptIds, logprobs: logprobs, scores: p.promptScores())) }
        }, onToken: { ev in
            p.sampled(ev, emit: onToken)
        }, onFinish: { [self] result in
            do {
                let r = try result.get()
                p.flush(emit: onToken)
                onFinish(.success((try finished(p, r, started: started), r.finishReason)))
            } catch {
                onFinish(.failure(error))
            }
        })
    }

    /// A request turned into model input, generation options and hooks (steering first, then monitoring, so a
    /// monitor at the steered point sees the steered state), and the stream of its scored tokens: a token's own
    /// state is computed by the forward pass that samples the next one, so tokens go out one behind the sampler
    /// and the last one when generation ends.
    final class Prepared: @unchecked Sendable {
        let request: MonitorRequest
        let promptIds: [Int]
        let options: GenerationOptions
        let monitor: TraitMonitor
        let hooks: HookSet
        private var pending: TokenEvent?
        private var stopped = false

        init(request: MonitorRequest, promptIds: [Int], options: GenerationOptions, monitor: TraitMonitor, hooks: HookSet) {
            self.request = request
            self.promptIds = promptIds
            self.options = options
            self.monitor = monitor
            self.hooks = hooks
        }

        /// Takes a freshly sampled token and emits the previous one, now scored; false once `emit` said stop.
        func sampled(_ ev: TokenEvent, emit: (MonitoredToken) throws -> Bool) rethrows -> Bool {
            if let prev = pending { try send(prev, emit) }
            pending = ev
            return !stopped
        }

        /// Every trait's score at each prompt position (valid once the prompt has been run).
        func promptScores() -> [String: [Double]] { monitor.scores(positions: 0..<promptIds.count) }

        /// Emits the last token once generation has ended.
        func flush(emit: (MonitoredToken) throws -> Bool) rethrows {
            if let prev = pending { try send(prev, emit) }
            pending = nil
        }

        private func send(_ ev: TokenEvent, _ emit: (MonitoredToken) throws -> Bool) rethrows {
            if stopped { return }
            if try !emit(MonitoredToken(event: ev, scores: monitor.primaryScores(position: ev.position))) { stopped = true }
        }
    }

    /// The run document of a finished request (an error if a monitored state was NaN/Inf).
    func finished(_ p: Prepared, _ result: GenerationResult, started: Date) throws -> RunDocument {
        if let bad = p.monitor.nonFinite {
            throw GenerationError("non-finite activation (NaN/Inf) at \(bad.point.name), position \(bad.position): the weights or the steering coefficients are broken")
        }
        return document(request: p.request, promptIds: p.promptIds, result: result, monitor: p.monitor,
                        elapsed: Date().timeIntervalSince(started))
    }

    func prepare(_ request: MonitorRequest) throws -> Prepared {
        let config = loaded.config
        let selected = try TraitSelection.select(request.traits, from: vectors, option: "--traits")
        let gen = Generator(loaded)
        let promptIds = try request.promptIds ?? request.messages.map { try gen.promptIds(messages: $0, raw: request.raw) }
            ?? gen.promptIds(for: request.prompt, system: request.system, raw: request.raw)
        if let bad = promptIds.first(where: { $0 < 0 || $0 >= config.vocabSize }) {
            throw GenerationError("prompt token id \(bad) is outside the vocabulary (0..<\(config.vocabSize))")
        }
        var options = request.options
        options.processFinalToken = true
        let capacity = options.positions(prompt: promptIds.count, contextLength: config.maxPositions)
        let monitor = try TraitMonitor(vectors: selected, layers: request.layers, numLayers: config.numLayers,
                                       hiddenSize: config.hiddenSize, capacity: capacity)
        let steer = try Steering.interventions(request.steering, vectors: vectors, numLayers: config.numLayers,
                                               promptLength: promptIds.count, condition: request.condition, monitor: monitor)
        return Prepared(request: request, promptIds: promptIds, options: options, monitor: monitor,
                        hooks: HookSet(steer + monitor.interventions()))
    }

    func document(request: MonitorRequest, promptIds: [Int], result: GenerationResult, monitor: TraitMonitor, elapsed: Double) -> RunDocument {
        let config = loaded.config
        let tok = loaded.tokenizer.tokenizer
        let positions = result.tokens.map(\.position)
        var scores: [String: [Double]] = [:]
        var layers: [String: Int] = [:]
        var hooks: [String: String] = [:]
        var cosine: [String: [Double]] = [:]
        var perLayer: [String: [[Double]]] = [:]
        for trait in monitor.traits {
            let main = monitor.primaryProbe(trait: trait)!
            let probe = monitor.probes[main]
            scores[trait] = positions.map { Double(monitor.projection(probe: main, position: $0)) }
            cosine[trait] = positions.map { Double(monitor.cosine(probe: main, position: $0)) }
            layers[trait] = probe.row
            hooks[trait] = probe.point.name
            if case .all = request.layers {
                perLayer[trait] = (0...config.numLayers).map { row in
                    let i = monitor.probes.firstIndex { $0.trait == trait && $0.row == row }!
                    return positions.map { Double(monitor.projection(probe: i, position: $0)) }
                }
            }
        }
        let promptText = tok.decode(promptIds, skipSpecialTokens: false)
        var doc = RunDocument(
            model: ModelRef(id: loaded.name, path: loaded.url.path, architecture: config.architecture,
                            numLayers: config.numLayers, hiddenSize: config.hiddenSize),
            prompt: request.prompt, promptText: promptText, response: result.text,
            tokens: result.tokens.map(\.display), tokenIds: result.tokenIds, traitScores: scores,
            layers: layers, hookPoints: hooks)
        doc.cosine = cosine
        if let first = monitor.traits.first, let i = monitor.primaryProbe(trait: first) {
            doc.residNorm = positions.map { Double(monitor.residualNorm(probe: i, position: $0)) }
        }
        doc.logprobs = result.tokens.map { Double($0.logprob) }
        if request.options.topLogprobs > 0 {
            doc.topK = result.tokens.map { ev in
                ev.topAlternatives.map { TopKEntry(id: $0.id, token: displayString(forTokenBytes: tok.tokenBytes($0.id)), logprob: Double($0.logprob)) }
            }
        }
        doc.promptTokenIds = promptIds
        doc.promptTokens = promptIds.map { displayString(forTokenBytes: tok.tokenBytes($0)) }
        if request.includePrompt { doc.promptScores = monitor.scores(positions: 0..<promptIds.count) }
        if !perLayer.isEmpty { doc.perLayer = perLayer }
        if !request.steering.isEmpty {
            doc.steering = request.steering.map { given in
                // `trait:auto` is recorded as what it resolved to.
                let s = (try? TraitSelection.find(given.trait, in: vectors)).flatMap { try? given.resolved(for: $0) } ?? given
                return SteeringRecord(trait: s.trait, coef: Double(s.coef),
                               layer: (try? TraitSelection.find(s.trait, in: vectors)).flatMap { v in
                                   let rows = Steering.rows(s, v); return rows.count == 1 ? rows[0] : nil } ?? s.row,
                               positions: s.positions.rawValue, mode: s.mode.rawValue,
                               when: (s.condition ?? request.condition)?.description)
            }
        }
        let sampling = request.options.sampling
        doc.metadata = [
            "convention": .string(RunDocument.ownConvention),
            "num_tokens": .number(Double(result.tokens.count)),
            "max_new_tokens": .number(Double(request.options.maxTokens)),
            "personas": .array(monitor.traits.map { .string($0) }),
            "temperature": .number(Double(sampling.temperature)),
            // exact, as a signed 64-bit integer: an OpenAI seed (Int64) reads back as given
            "seed": JSONValue(exactly: Int64(bitPattern: sampling.seed)),
            "finish_reason": .string(result.finishReason.rawValue),
            "elapsed_s": .number(elapsed),
            "tokens_per_s": .number(result.tokensPerSecond),
            "prompt_tokens": .number(Double(promptIds.count)),
        ]
        if let l = layers.values.first, Set(layers.values).count == 1 { doc.metadata["layer"] = .number(Double(l)) }
        doc.computeAnalysis()
        return doc
    }
}
