import Foundation
import PersonaRuns
@testable import PersonaServer

/// TEST DOUBLE: a deterministic `GenerationBackend` with no model behind it. It emits a fixed word cycle with
/// made-up scores and log-probabilities, so server behaviour can be checked exactly.
final class FakeBackend: GenerationBackend, @unchecked Sendable {
    let modelInfo = ModelInfo(id: "fake-model", architecture: "llama", layers: 4, hidden: 8, contextLength: 512, vocabSize: 100)
    let traits = [TraitInfo(name: "happy", layer: 2, hookPoint: "blocks.1.hook_resid_post", norm: 1.5),
                  TraitInfo(name: "sad", layer: 3, hookPoint: "blocks.2.hook_resid_post", norm: 2)]
    static let words = [" Once", " upon", " a", " time", " there", " was", " a", " cat", ".", " The", " end", "!"]

    /// Text the run's response has after the streamed tokens (as a held-back stop-string prefix is at max tokens).
    var responseTail = ""
    /// Pause before each token (to test cancellation).
    var tokenDelayNanos: UInt64 = 0
    /// When set, generation waits until it is opened.
    let gate: Gate?

    private let lock = NSLock()
    private var _requests: [GenerationRequest] = []
    private var _cancelled = 0
    private var _tokensProduced = 0
    private let startedContinuation: AsyncStream<Void>.Continuation
    /// Yields once whenever a generation starts.
    let started: AsyncStream<Void>

    init(gate: Gate? = nil) {
        self.gate = gate
        (started, startedContinuation) = AsyncStream.makeStream(of: Void.self)
    }

    var requests: [GenerationRequest] { lock.lock(); defer { lock.unlock() }; return _requests }
    var cancelledCount: Int { lock.lock(); defer { lock.unlock() }; return _cancelled }
    var tokensProduced: Int { lock.lock(); defer { lock.unlock() }; return _tokensProduced }

    /// The scores the fake gives token i (happy wiggles and has a spike at 6; sad climbs).
    static func score(_ trait: String, _ i: Int) -> Double {
        trait == "happy" ? 0.3 * sin(1.7 * Double(i)) + (i == 6 ? 9 : 0) : 0.5 * Double(i)
    }

    func generate(_ r: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { cont in
            let task = Task {
                self.lock.withLock { self._requests.append(r) }
                self.startedContinuation.yield()
                if let gate = self.gate { await gate.wait() }
                let names = (r.traits ?? self.traits.map(\.name)).sorted()
                var tokens: [String] = [], ids: [Int] = [], lps: [Double] = []
                var scores: [String: [Double]] = Dictionary(uniqueKeysWithValues: names.map { ($0, []) })
                var reason = "length"
                // the prompt: the given ids, else "<s>" "Hi"; token i has logprob -0.5 i and happy score i
                let promptIds = r.promptIds ?? [1, 2]
                let promptTexts = r.promptIds.map { $0.map { "t\($0)" } } ?? ["<s>", "Hi"]
                if let top = r.promptLogprobs {
                    cont.yield(.prompt(ScoredPrompt(text: promptTexts.joined(), tokens: promptIds.indices.map { i in
                        StreamedToken(index: i, id: promptIds[i], text: promptTexts[i], logprob: i == 0 ? nil : -0.5 * Double(i),
                                      topK: i == 0 ? [] : (0..<top).map { TokenAlternative(id: 50 + $0, text: "p\($0)", logprob: -0.25 - Double($0)) },
                                      scores: Dictionary(uniqueKeysWithValues: names.map { ($0, Double(i)) }))
                    })))
                }
                do {
                    for i in 0..<r.maxTokens {
                        try Task.checkCancellation()
                        if self.tokenDelayNanos > 0 { try await Task.sleep(nanoseconds: self.tokenDelayNanos) }
                        let w = FakeBackend.words[i % FakeBackend.words.count]
                        if r.stop?.contains(w) == true { reason = "stop"; break }
                        let lp = -0.1 * Double(i + 1)
                        let alts = (0..<(r.topLogprobs ?? 0)).map {
                            TokenAlternative(id: $0 == 0 ? 10 + i : 1000 + $0, text: $0 == 0 ? w : "alt\($0)", logprob: lp - Double($0))
                        }
                        var s: [String: Double] = [:]
                        for n in names { s[n] = FakeBackend.score(n, i); scores[n, default: []].append(s[n]!) }
                        tokens.append(w); ids.append(10 + i); lps.append(lp)
                        self.lock.withLock { self._tokensProduced += 1 }
                        cont.yield(.token(StreamedToken(index: i, id: 10 + i, text: w, logprob: lp, topK: alts, scores: s)))
                    }
                } catch {
                    cont.finish(throwing: error)
                    return
                }
                var run = RunDocument(model: ModelRef(id: self.modelInfo.id, architecture: "llama", numLayers: 4, hiddenSize: 8),
                                      prompt: r.messages?.last?.content ?? r.prompt, response: tokens.joined() + self.responseTail,
                                      tokens: tokens, tokenIds: ids, traitScores: scores,
                                      layers: Dictionary(uniqueKeysWithValues: self.traits.filter { names.contains($0.name) }.map { ($0.name, $0.layer) }))
                run.promptTokens = promptTexts
                run.promptTokenIds = promptIds
                run.logprobs = lps
                run.steering = r.steer.isEmpty ? nil : r.steer.map(\.record)
                cont.yield(.done(run, finishReason: reason))
                cont.finish()
            }
            cont.onTermination = { reason in
                if case .cancelled = reason {
                    self.lock.withLock { self._cancelled += 1 }
                    task.cancel()
                }
            }
        }
    }
}

/// A one-shot latch.
actor Gate {
    private var open = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    func wait() async {
        if open { return }
        await withCheckedContinuation { waiters.append($0) }
    }
    func release() {
        open = true
        for w in waiters { w.resume() }
        waiters.removeAll()
    }
}
