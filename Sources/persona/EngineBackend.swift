import Foundation
import PersonaCore
import PersonaGeneration
import PersonaModels
import PersonaRuns
import PersonaServer
import PersonaTokenizers

/// The server's live generation, backed by the real engine: monitoring and steering in one pass.
/// Concurrent generations (up to the server's --max-concurrent) share forward passes through one
/// continuous-batching scheduler, which owns the model.
final class EngineBackend: GenerationBackend, @unchecked Sendable {
    let session: MonitorSession
    let scheduler: BatchScheduler
    let modelInfo: ModelInfo
    let traits: [TraitInfo]

    init(loaded: LoadedModel, vectors: [TraitVector], maxBatch: Int) throws {
        session = try MonitorSession(loaded: loaded, vectors: vectors)
        scheduler = BatchScheduler(loaded: loaded, maxBatch: maxBatch)
        let c = loaded.config
        modelInfo = ModelInfo(id: loaded.name, architecture: c.architecture, layers: c.numLayers, hidden: c.hiddenSize,
                              contextLength: c.maxPositions, vocabSize: c.vocabSize)
        traits = TraitSelection.defaults(vectors).map { v in
            let row = v.defaultRow
            let steer = Steering.rows(SteeringSpec(trait: v.trait, coef: 1), v)
            return TraitInfo(name: v.trait, layer: row, hookPoint: v.hookPoint(row: row)?.name ?? "", norm: Double(v.norms[row]),
                             steeringLayer: steer.count == 1 ? steer[0] : nil, steeringCoef: v.steeringCoef.map(Double.init))
        }
    }

    /// `serve --steer` specs as API steering, checked against the loaded vectors and model now (`trait:auto`
    /// resolved to the vector's measured row and coefficient), so that no request fails on them later.
    func steering(parsing texts: [String]) throws -> [(spec: SteeringSpec, api: APISteer)] {
        try texts.map { text in
            let spec = try SteeringSpec(parsing: text)
            let s = try spec.resolved(for: try TraitSelection.find(spec.trait, in: session.vectors, option: "--steer"))
            _ = try Steering.interventions([s], vectors: session.vectors, numLayers: session.loaded.config.numLayers, promptLength: 1)
            return (s, APISteer(trait: s.trait, coef: Double(s.coef), layer: s.row, positions: s.positions.rawValue, mode: s.mode.rawValue))
        }
    }

    func monitorRequest(_ r: GenerationRequest) throws -> MonitorRequest {
        var sampling = SamplingParameters(temperature: Float(r.temperature), seed: r.seed ?? UInt64.random(in: 0...UInt64(UInt32.max)))
        if let p = r.topP { sampling.topP = Float(p) }
        if let k = r.topK { sampling.topK = k }
        if let m = r.minP { sampling.minP = Float(m) }
        if let f = r.frequencyPenalty { sampling.frequencyPenalty = Float(f) }
        if let f = r.presencePenalty { sampling.presencePenalty = Float(f) }
        sampling.logitBias = try r.logitBiasIds().mapValues { Float($0) }
        var m = MonitorRequest(prompt: r.prompt, options: GenerationOptions(
            maxTokens: r.maxTokens, sampling: sampling, stopStrings: r.stop ?? [], topLogprobs: r.topLogprobs ?? 5))
        m.raw = r.raw
        m.options.promptLogprobs = r.promptLogprobs
        if let ids = r.promptIds {
            m.promptIds = ids
            if r.prompt.isEmpty { m.prompt = session.loaded.tokenizer.tokenizer.decode(ids, skipSpecialTokens: false) }
        }
        if let msgs = r.messages, !msgs.isEmpty {
            m.messages = msgs.map { ChatMessage(role: $0.role, content: $0.content) }
            if r.prompt.isEmpty { m.prompt = msgs.last { $0.role == "user" }?.content ?? msgs.last!.content }
        }
        m.traits = r.traits
        // each vector's own `when`: a condition gates only the vector it is given with
        m.steering = try r.steer.map { s in
            let condition = try s.when.flatMap { $0.isEmpty ? nil : try SteeringCondition(parsing: $0) }
            guard let positions = SteeringSpec.Positions(rawValue: s.positions) else {
                throw VectorError("steer.positions must be all, prompt or response, not '\(s.positions)'")
            }
            guard let mode = SteeringSpec.Mode(rawValue: s.mode) else {
                throw VectorError("steer.mode must be add or ablate, not '\(s.mode)'")
            }
            return SteeringSpec(trait: s.trait, coef: Float(s.coef), row: s.layer, positions: positions, mode: mode, condition: condition)
        }
        return m
    }

    func generate(_ request: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { continuation in
            let cancelled = CancelFlag()
            continuation.onTermination = { _ in cancelled.cancel() }
            let req: MonitorRequest
            do { req = try monitorRequest(request) } catch { continuation.finish(throwing: error); return }
            let tokenizer = session.loaded.tokenizer.tokenizer
            session.submit(req, to: scheduler, onPrompt: { prompt in
                var tokens: [StreamedToken] = []
                for (i, id) in prompt.ids.enumerated() {
                    let bytes = tokenizer.tokenBytes(id), text = displayString(forTokenBytes: bytes)
                    let lp = i > 0 ? prompt.logprobs[i - 1] : nil
                    tokens.append(StreamedToken(
                        index: i, id: id, text: text, bytes: Array(text.utf8) == bytes ? nil : bytes,
                        logprob: lp.map { Double($0.logprob) },
                        topK: lp?.topAlternatives.map { alt in
                            TokenAlternative(id: alt.id, text: displayString(forTokenBytes: tokenizer.tokenBytes(alt.id)), logprob: Double(alt.logprob))
                        } ?? [],
                        scores: prompt.scores.compactMapValues { $0.indices.contains(i) ? $0[i] : nil }))
                }
                continuation.yield(.prompt(ScoredPrompt(text: tokenizer.decode(prompt.ids, skipSpecialTokens: false), tokens: tokens)))
            }, onToken: { tok in
                let ev = tok.event
                let bytes = tokenizer.tokenBytes(ev.id)
                continuation.yield(.token(StreamedToken(
                    index: ev.index, id: ev.id, text: ev.display, bytes: Array(ev.display.utf8) == bytes ? nil : bytes,
                    piece: ev.released == ev.display ? nil : ev.released, logprob: Double(ev.logprob),
                    topK: ev.topAlternatives.map { alt in
                        TokenAlternative(id: alt.id, text: displayString(forTokenBytes: tokenizer.tokenBytes(alt.id)), logprob: Double(alt.logprob))
                    },
                    scores: tok.scores)))
                return !cancelled.isCancelled
            }, onFinish: { result in
                switch result {
                case .failure(let error as GenerationError):
                    // what the request asked for cannot be run (a prompt past the context, a bias outside the
                    // vocabulary, steering that overflows): the client's error, with its message, not a 500
                    continuation.finish(throwing: APIError(.badRequest, error.message))
                case .failure(let error):
                    continuation.finish(throwing: error)
                case .success(let (doc, finish)):
                    let reason = cancelled.isCancelled ? "cancelled" : finish == .length ? "length" : "stop"
                    continuation.yield(.done(doc, finishReason: reason))
                    continuation.finish()
                }
            })
        }
    }
}
