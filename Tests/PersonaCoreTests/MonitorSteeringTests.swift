import Foundation
import PersonaCore
import PersonaGeneration
import PersonaModels
import PersonaRuns
import XCTest

/// Monitoring and steering: monitor scores equal dot products of traced hidden states; steering moves the
/// projection by exactly coef * ||v||; ablation zeroes it.
final class MonitorSteeringTests: XCTestCase {
    static var fixtureModel: URL { repoRoot().appendingPathComponent("Tests/PersonaModelsTests/Fixtures/llama2") }

    func randomVector(_ trait: String, rows: Int, hidden: Int, seed: UInt64) -> TraitVector {
        var rng = SeededRandom(seed: seed)
        let r = (0..<rows).map { _ in (0..<hidden).map { _ in Float(rng.nextUnit() * 2 - 1) } }
        return TraitVector(trait: trait, method: "response_avg", rows: r, recommendedRow: 1)
    }

    func setUpModel() throws -> (LoadedModel, [TraitVector]) {
        let loaded = try ModelLoader.load(path: Self.fixtureModel.path)
        let L = loaded.config.numLayers, D = loaded.config.hiddenSize
        return (loaded, [randomVector("alpha", rows: L + 1, hidden: D, seed: 1), randomVector("beta", rows: L + 1, hidden: D, seed: 2)])
    }

    func testMonitorScoresEqualTraceDotProducts() throws {
        let (loaded, vectors) = try setUpModel()
        let session = try MonitorSession(loaded: loaded, vectors: vectors)
        var req = MonitorRequest(prompt: "Once upon a time", options: GenerationOptions(maxTokens: 8, stopAtEOS: false))
        req.raw = true
        req.layers = .all
        req.includePrompt = true
        var streamed: [MonitoredToken] = []
        let doc = try session.run(req) { streamed.append($0); return true }
        XCTAssertEqual(doc.tokens.count, 8)
        XCTAssertEqual(streamed.count, 8)
        // Independent recomputation: trace prompt + response in one uncached pass.
        let ids = doc.promptTokenIds! + doc.tokenIds!
        let trace = try HiddenStateTrace.run(model: loaded.model, tokens: ids)
        let P = doc.promptTokenIds!.count, D = loaded.config.hiddenSize
        for v in vectors {
            let perLayer = try XCTUnwrap(doc.perLayer?[v.trait])
            XCTAssertEqual(perLayer.count, loaded.config.numLayers + 1)
            for row in 0...loaded.config.numLayers {
                let norm = v.norms[row]
                for i in 0..<doc.tokens.count {
                    let h = trace.hiddenStates[row][(P + i) * D ..< (P + i + 1) * D]
                    let expected = zip(h, v.rows[row]).reduce(Float(0)) { $0 + $1.0 * $1.1 } / norm
                    XCTAssertEqual(perLayer[row][i], Double(expected), accuracy: 1e-4, "\(v.trait) row \(row) token \(i)")
                }
            }
            // Primary (recommended row 1) scores and the streamed scores agree with the per-layer table.
            XCTAssertEqual(doc.layers?[v.trait], 1)
            XCTAssertEqual(doc.hookPoints?[v.trait], "blocks.0.hook_resid_post")
            for i in 0..<doc.tokens.count {
                XCTAssertEqual(doc.traitScores[v.trait]![i], perLayer[1][i], accuracy: 1e-9)
                XCTAssertEqual(streamed[i].scores[v.trait]!, perLayer[1][i], accuracy: 1e-9)
            }
            // Prompt scores likewise.
            for p in 0..<P {
                let h = trace.hiddenStates[1][p * D ..< (p + 1) * D]
                let expected = zip(h, v.rows[1]).reduce(Float(0)) { $0 + $1.0 * $1.1 } / v.norms[1]
                XCTAssertEqual(doc.promptScores![v.trait]![p], Double(expected), accuracy: 1e-4)
            }
        }
        XCTAssertEqual(doc.tokenIds!.count, doc.logprobs!.count)
        XCTAssertNotNil(doc.decisionPoints)
        XCTAssertNotNil(doc.stats?["alpha"])
    }

    func testSteeringRaisesProjectionByCoefTimesNormAndAblationZeroesIt() throws {
        let (loaded, vectors) = try setUpModel()
        let session = try MonitorSession(loaded: loaded, vectors: vectors)
        func run(_ steer: [SteeringSpec]) throws -> RunDocument {
            var req = MonitorRequest(prompt: "Once upon a time", options: GenerationOptions(maxTokens: 6, stopAtEOS: false))
            req.raw = true
            req.traits = ["alpha"]
            req.layers = .rows([2])
            req.includePrompt = true
            req.steering = steer
            return try session.run(req)
        }
        let base = try run([])
        let coef: Float = 4
        let steered = try run([SteeringSpec(trait: "alpha", coef: coef, row: 2, positions: .all)])
        let norm = Double(vectors[0].norms[2])
        // First step (prefill): every prompt position moves by exactly coef * ||v|| at the steered row.
        let b = base.promptScores!["alpha"]!, s = steered.promptScores!["alpha"]!
        for p in b.indices { XCTAssertEqual(s[p] - b[p], Double(coef) * norm, accuracy: 1e-3 * max(1, Double(coef) * norm)) }
        XCTAssertNotEqual(base.tokenIds!, steered.tokenIds!, "a strong steering vector should change the generation")

        // Prompt-only steering moves the prompt positions the same way.
        let promptOnly = try run([SteeringSpec(trait: "alpha", coef: coef, row: 2, positions: .prompt)])
        for p in b.indices { XCTAssertEqual(promptOnly.promptScores!["alpha"]![p] - b[p], Double(coef) * norm, accuracy: 1e-3 * Double(coef) * norm) }

        let ablated = try run([SteeringSpec(trait: "alpha", coef: 0, row: 2, positions: .all, mode: .ablate)])
        for x in ablated.promptScores!["alpha"]! + ablated.traitScores["alpha"]! { XCTAssertEqual(x, 0, accuracy: 1e-4) }
        XCTAssertEqual(ablated.steering?.first?.mode, "ablate")
    }

    func testClosedLoopSteeringOnlyActsPastThreshold() throws {
        let (loaded, vectors) = try setUpModel()
        let session = try MonitorSession(loaded: loaded, vectors: vectors)
        func run(_ when: SteeringCondition?) throws -> RunDocument {
            var req = MonitorRequest(prompt: "Once upon a time", options: GenerationOptions(maxTokens: 6, stopAtEOS: false))
            req.raw = true
            req.layers = .rows([2])
            req.steering = [SteeringSpec(trait: "alpha", coef: 4, row: 1)]
            req.condition = when
            return try session.run(req)
        }
        let never = try run(SteeringCondition(trait: "alpha", above: true, threshold: 1e9))
        var req = MonitorRequest(prompt: "Once upon a time", options: GenerationOptions(maxTokens: 6, stopAtEOS: false))
        req.raw = true
        req.layers = .rows([2])
        let plain = try session.run(req)
        XCTAssertEqual(never.tokenIds, plain.tokenIds, "a condition that never holds must not steer")
        XCTAssertEqual(never.traitScores["alpha"]!, plain.traitScores["alpha"]!)
        // The gate reads the latest measured score, so it opens from the first decode step on (the prompt
        // has no measurement yet when its own steering site runs): the response must change.
        let always = try run(SteeringCondition(trait: "alpha", above: true, threshold: -1e9))
        XCTAssertNotEqual(always.tokenIds, plain.tokenIds, "a condition that always holds must steer the response")
        XCTAssertEqual(always.steering?.first?.when, "alpha>-1e+09")

        // Per-vector conditions (the API's `when`) gate only their own vector: a never-open gate on beta next to
        // an unconditional alpha steers exactly as alpha alone.
        func steered(_ specs: [SteeringSpec]) throws -> RunDocument {
            var r = req
            r.steering = specs
            return try session.run(r)
        }
        let alphaOnly = try steered([SteeringSpec(trait: "alpha", coef: 4, row: 1)])
        let mixed = try steered([SteeringSpec(trait: "alpha", coef: 4, row: 1),
                                 SteeringSpec(trait: "beta", coef: 8, row: 1, condition: SteeringCondition(trait: "alpha", above: true, threshold: 1e9))])
        XCTAssertEqual(mixed.tokenIds, alphaOnly.tokenIds)
        XCTAssertEqual(mixed.traitScores["alpha"]!, alphaOnly.traitScores["alpha"]!)
        XCTAssertEqual(mixed.steering?.map(\.when), [nil, "alpha>1e+09"])
    }

    /// Hooks made by a monitor keep working after the caller drops the monitor (they used an unowned reference).
    func testMonitorHooksOutliveTheCallersReference() throws {
        let (loaded, vectors) = try setUpModel()
        var monitor: TraitMonitor? = try TraitMonitor(vectors: vectors, layers: .recommended, numLayers: loaded.config.numLayers,
                                                      hiddenSize: loaded.config.hiddenSize, capacity: 8)
        weak var weakMonitor = monitor
        let hooks = HookSet(monitor!.interventions())
        monitor = nil
        XCTAssertNotNil(weakMonitor, "the hooks hold the monitor")
        _ = try Generator(loaded).generate(promptIds: [1, 2, 3], options: GenerationOptions(maxTokens: 2, stopAtEOS: false), hooks: hooks)
        XCTAssertTrue(weakMonitor?.hasPosition(0) == true, "the hooks recorded into the monitor")
    }

    /// The sampler's 64-bit seed is written exactly: a negative OpenAI seed reads back as sent, a large one whole.
    func testSeedIsWrittenExactly() throws {
        let (loaded, vectors) = try setUpModel()
        let session = try MonitorSession(loaded: loaded, vectors: vectors)
        for seed: Int64 in [-5, 42, (1 << 60) + 1, Int64.min] {
            var req = MonitorRequest(prompt: "Once upon a time", options: GenerationOptions(
                maxTokens: 2, sampling: SamplingParameters(temperature: 1, seed: UInt64(bitPattern: seed))))
            req.raw = true
            let doc = try session.run(req)
            let back = try JSONDecoder().decode(RunDocument.self, from: try doc.jsonData())
            XCTAssertEqual(back.metadata["seed"]?.intValue, Int(seed), "seed \(seed)")
        }
    }

    /// A batch of requests (plain, steered, closed-loop, different prompts and lengths) gives each request the
    /// document it gets alone: same tokens, same scores; the batch's own scores also equal a trace's dot products.
    func testBatchedMonitoringEqualsOneAtATime() throws {
        let (loaded, vectors) = try setUpModel()
        let session = try MonitorSession(loaded: loaded, vectors: vectors)
        func request(_ prompt: String, tokens: Int) -> MonitorRequest {
            var r = MonitorRequest(prompt: prompt, options: GenerationOptions(maxTokens: tokens, stopAtEOS: false))
            r.raw = true
            r.layers = .all
            r.includePrompt = true
            return r
        }
        var steered = request("The cat sat", tokens: 7)
        steered.steering = [SteeringSpec(trait: "alpha", coef: 4, row: 2)]
        var gated = request("Once upon a time there", tokens: 5)
        gated.steering = [SteeringSpec(trait: "beta", coef: -3, row: 1)]
        gated.condition = SteeringCondition(trait: "alpha", above: true, threshold: -1e9)
        var sampled = request("A dog", tokens: 9)
        sampled.options.sampling = SamplingParameters(temperature: 1, seed: 7)
        let requests = [request("Once upon a time", tokens: 8), steered, gated, sampled]

        var streamed = [[MonitoredToken]](repeating: [], count: requests.count)
        var finishOrder: [Int] = []
        let batch = try session.run(batch: requests, onToken: { i, t in streamed[i].append(t); return true },
                                    onFinish: { i, _ in finishOrder.append(i) })
        XCTAssertEqual(Set(finishOrder), Set(requests.indices))
        for (i, req) in requests.enumerated() {
            let alone = try session.run(req)
            XCTAssertEqual(batch[i].tokenIds, alone.tokenIds, "request \(i)")
            XCTAssertEqual(batch[i].tokens.count, req.options.maxTokens, "request \(i)")
            XCTAssertEqual(streamed[i].map(\.event.id), alone.tokenIds!, "request \(i): streamed")
            XCTAssertEqual(batch[i].steering?.count, alone.steering?.count)
            for v in vectors {
                for (a, b) in zip(batch[i].traitScores[v.trait]!, alone.traitScores[v.trait]!) { XCTAssertEqual(a, b, accuracy: 1e-4, "request \(i) \(v.trait)") }
                for (a, b) in zip(batch[i].promptScores![v.trait]!, alone.promptScores![v.trait]!) { XCTAssertEqual(a, b, accuracy: 1e-4) }
                for (k, t) in streamed[i].enumerated() { XCTAssertEqual(t.scores[v.trait]!, batch[i].traitScores[v.trait]![k], accuracy: 1e-9) }
            }
        }
        // independent check of the plain request's batched scores: dot products of one uncached trace
        let doc = batch[0], P = doc.promptTokenIds!.count, D = loaded.config.hiddenSize
        let trace = try HiddenStateTrace.run(model: loaded.model, tokens: doc.promptTokenIds! + doc.tokenIds!)
        for v in vectors {
            for row in 0...loaded.config.numLayers {
                for i in 0..<doc.tokens.count {
                    let h = trace.hiddenStates[row][(P + i) * D ..< (P + i + 1) * D]
                    let expected = zip(h, v.rows[row]).reduce(Float(0)) { $0 + $1.0 * $1.1 } / v.norms[row]
                    XCTAssertEqual(doc.perLayer![v.trait]![row][i], Double(expected), accuracy: 1e-4, "\(v.trait) row \(row) token \(i)")
                }
            }
        }
    }

    func testSteeringSpecParsing() throws {
        let s = try SteeringSpec(parsing: "evil:1.5@16:response")
        XCTAssertEqual(s, SteeringSpec(trait: "evil", coef: 1.5, row: 16, positions: .response, mode: .add))
        XCTAssertEqual(try SteeringSpec(parsing: "evil:ablate").mode, .ablate)
        XCTAssertEqual(try SteeringSpec(parsing: "evil:-2").coef, -2)
        for bad in ["evil", "evil:x", "evil:1@x", "evil:1:sometimes", ":1"] {
            XCTAssertThrowsError(try SteeringSpec(parsing: bad), bad)
        }
        let c = try SteeringCondition(parsing: "evil>2.5")
        XCTAssertTrue(c.holds(3) && !c.holds(2))
        XCTAssertThrowsError(try SteeringCondition(parsing: "evil=2"))
        XCTAssertEqual(try LayerSelection(parsing: "8,16"), .rows([8, 16]))
        XCTAssertThrowsError(try LayerSelection(parsing: "x"))
    }

    func testMeanDifferenceMatchesHandComputation() throws {
        var sums = ActivationSums(numRows: 2, hiddenSize: 2)
        // rows x [T=3, D=2], prompt length 1
        try sums.add(hiddenStates: [[1, 2, 3, 4, 5, 6], [0, 0, 2, 2, 4, 4]], promptLength: 1, positive: true)
        try sums.add(hiddenStates: [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], promptLength: 1, positive: false)
        let v = try sums.vector(trait: "t", method: .responseAvg)
        XCTAssertEqual(v.rows[0], [4 - 1, 5 - 1])
        XCTAssertEqual(v.rows[1], [3 - 1, 3 - 1])
        XCTAssertEqual(try sums.vector(trait: "t", method: .promptLast).rows[0], [1, 2])
        var a = ActivationSums(numRows: 2, hiddenSize: 2), b = ActivationSums(numRows: 2, hiddenSize: 2)
        try a.add(hiddenStates: [[1, 2, 3, 4, 5, 6], [0, 0, 2, 2, 4, 4]], promptLength: 1, positive: true)
        try b.add(hiddenStates: [[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], promptLength: 1, positive: false)
        try a.merge(b)
        XCTAssertEqual(a, sums)
        XCTAssertEqual(Separation.auroc(positive: [3, 4], negative: [1, 2]), 1)
        XCTAssertEqual(Separation.auroc(positive: [1, 3], negative: [2, 2]), 0.5)
    }
}
