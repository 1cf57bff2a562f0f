import Foundation
import PersonaGeneration
import PersonaModels
import XCTest
@testable import PersonaTestSupport

/// Several sequences in one forward pass (each with its own cache, positions and hooks) against transformers,
/// and batched generation against transformers' greedy output and against one-at-a-time generation.
final class BatchedForwardTests: XCTestCase {
    let tolerance: Float = 1e-4   // the same agreement the single-sequence engine tests ask for

    func fixture(_ name: String) -> URL { ArchitectureFixtures.url(name) }
    func reference(_ arch: String) throws -> Reference { try ArchitectureFixtures.reference(arch) }
    func eachArchitecture(_ body: (String) throws -> Void) { ArchitectureFixtures.each(body) }

    /// Three sequences in one pass, at different positions: the reference prompt from scratch, the second half of
    /// the same prompt over a cache already holding the first half, and a short unrelated prompt. Every hidden
    /// state row and every logit of the first two must equal transformers' for the whole prompt.
    func testMixedBatchMatchesTransformersRowByRow() throws {
        eachArchitecture { arch in
            let model = try ModelLoader.loadNetwork(path: fixture(arch).path)
            let ref = try reference(arch)
            let ids = ref.ints("input_ids"), half = ids.count / 2
            let L = model.config.numLayers, D = model.config.hiddenSize, V = model.config.vocabSize

            func captureHooks() -> (HookSet, [CaptureBuffer]) {
                let buffers = (0...L).map { _ in CaptureBuffer() }
                var hooks = HookSet()
                for row in 0...L { hooks.add(Intervention(HookPoint.hiddenStateRow(row, numLayers: L)!, .capture(buffers[row]))) }
                return (hooks, buffers)
            }
            let (fullHooks, fullRows) = captureHooks()
            let (tailHooks, tailRows) = captureHooks()
            let tailCache = model.makeCache(capacity: ids.count)
            try model.forward(Array(ids.prefix(half)), cache: tailCache, logits: .none)
            let other = Array(ref.ints("greedy_prompt_ids").prefix(3))

            let logits = Array(try model.forward(batch: [
                BatchSequence(tokens: ids, cache: model.makeCache(capacity: ids.count), hooks: fullHooks),
                BatchSequence(tokens: other, cache: model.makeCache(capacity: 8)),
                BatchSequence(tokens: Array(ids.dropFirst(half)), cache: tailCache, hooks: tailHooks),
            ], logits: .all))
            XCTAssertEqual(logits.count, (ids.count + other.count + ids.count - half) * V)
            XCTAssertEqual(tailCache.count, ids.count)

            let refLogits = try ref.floats("logits").values
            let d0 = maxAbsDiff(Array(logits[0..<(ids.count * V)]), refLogits)
            XCTAssertLessThanOrEqual(d0, tolerance, "\(arch): batched logits of sequence 0 differ by \(d0)")
            let tailStart = (ids.count + other.count) * V
            let d2 = maxAbsDiff(Array(logits[tailStart...]), Array(refLogits[(half * V)...]))
            XCTAssertLessThanOrEqual(d2, tolerance, "\(arch): batched logits of the continued sequence differ by \(d2)")

            for row in 0...L {
                let r = try ref.floats("hidden_states.\(row)").values
                let d = maxAbsDiff(fullRows[row].values, r)
                XCTAssertLessThanOrEqual(d, tolerance, "\(arch) hidden_states.\(row), sequence 0: \(d)")
                let dt = maxAbsDiff(tailRows[row].values, Array(r[(half * D)...]))
                XCTAssertLessThanOrEqual(dt, tolerance, "\(arch) hidden_states.\(row), continued sequence: \(dt)")
            }
        }
    }

    /// `.last` gives one row per sequence, equal to what each sequence alone gives.
    func testLastLogitsPerSequence() throws {
        let model = try ModelLoader.loadNetwork(path: fixture("qwen2").path)
        let ref = try reference("qwen2")
        let ids = ref.ints("input_ids"), V = model.config.vocabSize
        let prompts = [ids, Array(ids.prefix(2)), Array(ids.suffix(5))]
        let batched = Array(try model.forward(batch: prompts.map { BatchSequence(tokens: $0, cache: model.makeCache(capacity: 16)) }))
        XCTAssertEqual(batched.count, prompts.count * V)
        for (b, p) in prompts.enumerated() {
            let alone = Array(try model.forward(p, cache: model.makeCache(capacity: 16)))
            let d = maxAbsDiff(Array(batched[(b * V)..<((b + 1) * V)]), alone)
            XCTAssertLessThanOrEqual(d, tolerance, "sequence \(b): \(d)")
        }
        // the reference's last logits row, for the first sequence
        let refLast = Array(try ref.floats("logits").values.suffix(V))
        XCTAssertLessThanOrEqual(maxAbsDiff(Array(batched[0..<V]), refLast), tolerance)
    }

    /// Batched greedy generation reproduces transformers' greedy continuations of two different prompts.
    func testBatchedGreedyMatchesTransformers() throws {
        eachArchitecture { arch in
            let ref = try reference(arch)
            let gen = Generator(try ModelLoader.load(path: fixture(arch).path))
            var prompts = [ref.ints("greedy_prompt_ids")], expected = [ref.ints("greedy_ids")]
            if ref.string("prompt_text") != nil, (ref.json["greedy_text_stopped_on_eos"] as? Bool) != true {
                prompts.append(ref.ints("prompt_ids"))
                expected.append(ref.ints("greedy_text_ids"))
            }
            let n = expected.map(\.count).max()!
            var finishedOrder: [Int] = []
            let results = try gen.generate(batch: prompts, options: GenerationOptions(maxTokens: n, stopAtEOS: false),
                                           onFinish: { i, _ in finishedOrder.append(i) })
            XCTAssertEqual(results.count, prompts.count)
            XCTAssertEqual(Set(finishedOrder), Set(prompts.indices), "\(arch): every sequence reported finished once")
            for (i, r) in results.enumerated() {
                XCTAssertEqual(Array(r.tokenIds.prefix(expected[i].count)), expected[i], "\(arch): sequence \(i)")
            }
        }
    }

    /// Sampling with a seed per sequence draws the same tokens batched as one at a time, including
    /// sequences that stop early (max tokens differ through EOS / stop strings) while others go on.
    func testBatchedSamplingEqualsSequential() throws {
        let loaded = try ModelLoader.load(path: fixture("llama").path)
        let gen = Generator(loaded)
        let ref = try reference("llama")
        let base = ref.ints("input_ids")
        let prompts = [base, Array(base.prefix(3)), Array(base.suffix(4)), Array(base.prefix(6))]
        let seeds: [UInt64] = [1, 2, 3, 4]
        var options = GenerationOptions(maxTokens: 12, sampling: SamplingParameters(temperature: 1, topP: 0.95))
        options.topLogprobs = 3
        options.processFinalToken = true
        var streamed = [[Int]](repeating: [], count: prompts.count)
        let batched = try gen.generate(batch: prompts, options: options, seeds: seeds,
                                       onToken: { i, ev in streamed[i].append(ev.id); return !(i == 1 && ev.index == 4) })
        for (i, p) in prompts.enumerated() {
            var o = options
            o.sampling.seed = seeds[i]
            let alone = try gen.generate(promptIds: p, options: o, onToken: { ev in !(i == 1 && ev.index == 4) })
            XCTAssertEqual(batched[i].tokenIds, alone.tokenIds, "sequence \(i)")
            XCTAssertEqual(batched[i].text, alone.text, "sequence \(i)")
            XCTAssertEqual(batched[i].finishReason, alone.finishReason, "sequence \(i)")
            XCTAssertEqual(streamed[i], alone.tokenIds, "sequence \(i): streamed ids")
            for (a, b) in zip(batched[i].tokens, alone.tokens) {
                XCTAssertEqual(a.logprob, b.logprob, accuracy: 1e-3, "sequence \(i) token \(a.index)")
            }
        }
        XCTAssertEqual(batched[1].tokens.count, 5)
        XCTAssertEqual(batched[1].finishReason, .stop)
    }

    func testBadBatchesAreClearErrors() throws {
        let model = try ModelLoader.loadNetwork(path: fixture("llama").path)
        let shared = model.makeCache(capacity: 8)
        XCTAssertThrowsError(try model.forward(batch: [BatchSequence(tokens: [1], cache: shared), BatchSequence(tokens: [2], cache: shared)])) {
            XCTAssertTrue("\($0)".contains("sequences 0 and 1"), "\($0)")
        }
        XCTAssertThrowsError(try model.forward(batch: [BatchSequence(tokens: [1], cache: model.makeCache(capacity: 8)),
                                                      BatchSequence(tokens: [1, -5], cache: model.makeCache(capacity: 8))])) {
            XCTAssertTrue("\($0)".contains("sequence 1") && "\($0)".contains("-5"), "\($0)")
        }
        XCTAssertThrowsError(try model.forward(batch: [BatchSequence(tokens: [1, 2, 3], cache: model.makeCache(capacity: 2))])) {
            XCTAssertTrue("\($0)".contains("context length exceeded"), "\($0)")
        }
        XCTAssertThrowsError(try model.forward(batch: []))
        // a failed batch leaves the caches as they were
        XCTAssertEqual(shared.count, 0)
        let gen = Generator(try ModelLoader.load(path: fixture("llama").path))
        XCTAssertThrowsError(try gen.generate(batch: [[1], []], options: GenerationOptions(maxTokens: 2))) {
            XCTAssertTrue("\($0)".contains("prompt 1 of the batch"), "\($0)")
        }
        XCTAssertThrowsError(try gen.generate(batch: [[1]], options: GenerationOptions(maxTokens: 2), seeds: [1, 2]))
    }
}
