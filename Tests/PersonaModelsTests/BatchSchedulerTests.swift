import Foundation
import PersonaGeneration
import PersonaModels
import XCTest
@testable import PersonaTestSupport

/// Continuous batching: requests submitted while others run get the tokens they get alone; stopping,
/// bad requests and failing requests affect only themselves.
final class BatchSchedulerTests: XCTestCase {
    final class Box<T>: @unchecked Sendable {
        private let lock = NSLock()
        private var value: T
        init(_ v: T) { value = v }
        func with<R>(_ f: (inout T) -> R) -> R { lock.lock(); defer { lock.unlock() }; return f(&value) }
    }

    func load() throws -> LoadedModel { try ModelLoader.load(path: TestPaths.stories260K.path) }

    func testStaggeredRequestsEqualOneAtATime() throws {
        let loaded = try load()
        let gen = Generator(loaded)
        let prompts = ["Once upon a time", "The little dog", "Lily and Tom went to the park. They", "One day", "The sun"]
            .map { loaded.tokenizer.tokenizer.encode($0, addSpecialTokens: true) }
        let options: [GenerationOptions] = prompts.indices.map { i in
            var o = GenerationOptions(maxTokens: 12 + 5 * i, stopAtEOS: i % 2 == 0)
            if i >= 2 { o.sampling = SamplingParameters(temperature: 0.9, topP: 0.9, seed: UInt64(i)) }
            o.topLogprobs = 2
            return o
        }
        let scheduler = BatchScheduler(loaded: loaded, maxBatch: 3)   // fewer places than requests: some wait
        let results = Box([Result<GenerationResult, Error>?](repeating: nil, count: prompts.count))
        let streamed = Box([[Int]](repeating: [], count: prompts.count))
        let done = DispatchSemaphore(value: 0), firstToken = DispatchSemaphore(value: 0)
        func submit(_ i: Int) {
            scheduler.submit(promptIds: prompts[i], options: options[i], onToken: { ev in
                let n = streamed.with { s -> Int in s[i].append(ev.id); return s[i].count }
                if i == 0 && n == 3 { firstToken.signal() }
                return true
            }, onFinish: { r in results.with { $0[i] = r }; done.signal() })
        }
        submit(0)
        submit(1)
        XCTAssertEqual(firstToken.wait(timeout: .now() + 30), .success)
        for i in 2..<prompts.count { submit(i) }   // they join a batch that is already decoding
        for _ in prompts { XCTAssertEqual(done.wait(timeout: .now() + 60), .success) }
        // request 0 is greedy from transformers' prompt: its tokens are transformers' greedy continuation
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: TestPaths.fixtures.appendingPathComponent("stories260K.reference.json"))) as! [String: Any]
        XCTAssertEqual(prompts[0], (ref["greedy_prompt_ids"] as! [NSNumber]).map(\.intValue))
        let expected = (ref["greedy_ids"] as! [NSNumber]).map(\.intValue)
        let first = try XCTUnwrap(results.with { $0[0] }).get().tokenIds
        XCTAssertEqual(Array(first.prefix(expected.count)), Array(expected.prefix(first.count)))
        for i in prompts.indices {
            let alone = try gen.generate(promptIds: prompts[i], options: options[i])
            let got = try XCTUnwrap(results.with { $0[i] }).get()
            XCTAssertEqual(got.tokenIds, alone.tokenIds, "request \(i)")
            XCTAssertEqual(got.text, alone.text, "request \(i)")
            XCTAssertEqual(got.finishReason, alone.finishReason, "request \(i)")
            XCTAssertEqual(streamed.with { $0[i] }, alone.tokenIds, "request \(i) streamed")
            for (a, b) in zip(got.tokens, alone.tokens) { XCTAssertEqual(a.logprob, b.logprob, accuracy: 1e-3) }
        }
        scheduler.shutdown()
    }

    /// Prompt scoring (OpenAI's echo): each prompt token's logprob given those before it equals transformers'
    /// log-softmax at that position, also when the scored prefill shares its pass with a sequence already
    /// decoding (which then reads its own row of the all-positions logits and gets the tokens it gets alone).
    func testPromptLogprobsMatchTransformersInAMixedBatch() throws {
        let ref = try Reference(safetensors: TestPaths.fixtures.appendingPathComponent("stories260K.reference.safetensors"),
                                json: TestPaths.fixtures.appendingPathComponent("stories260K.reference.json"))
        let ids = ref.ints("input_ids")
        let (shape, logits) = try ref.floats("logits")
        let V = shape[1]
        func logSoftmax(_ row: Int) -> [Double] {
            let r = logits[(row * V)..<((row + 1) * V)].map(Double.init)
            let m = r.max()!, lse = m + Foundation.log(r.reduce(0) { $0 + Foundation.exp($1 - m) })
            return r.map { $0 - lse }
        }
        func check(_ got: [PromptTokenLogprob], _ what: String) {
            XCTAssertEqual(got.map(\.position), Array(1..<ids.count), what)
            for t in got {
                let expected = logSoftmax(t.position - 1)
                XCTAssertEqual(t.id, ids[t.position], what)
                XCTAssertEqual(Double(t.logprob), expected[t.id], accuracy: 2e-4, "\(what): position \(t.position)")
                let best = expected.indices.max { expected[$0] < expected[$1] }!
                XCTAssertEqual(t.topAlternatives.count, 3, what)
                XCTAssertEqual(t.topAlternatives.first?.id, best, "\(what): position \(t.position)")
                XCTAssertEqual(Double(t.topAlternatives.first?.logprob ?? 0), expected[best], accuracy: 2e-4, what)
            }
        }

        let loaded = try load()
        var scored = GenerationOptions(maxTokens: 0)
        scored.promptLogprobs = 3
        // alone, through the generator: no new tokens, only the score
        let alone = try Generator(loaded).generate(promptIds: ids, options: scored)
        XCTAssertTrue(alone.tokens.isEmpty)
        check(try XCTUnwrap(alone.promptLogprobs), "generator")
        XCTAssertNil(try Generator(loaded).generate(promptIds: ids, options: GenerationOptions(maxTokens: 2)).promptLogprobs)

        // joining a batch that is already decoding
        let other = loaded.tokenizer.tokenizer.encode("The little dog", addSpecialTokens: true)
        let otherOptions = GenerationOptions(maxTokens: 24, stopAtEOS: false)
        let scheduler = BatchScheduler(loaded: loaded, maxBatch: 4)
        let results = Box([Int: Result<GenerationResult, Error>]())
        let prompts = Box([[PromptTokenLogprob]]())
        let tokensBeforePrompt = Box(0)
        let done = DispatchSemaphore(value: 0), decoding = DispatchSemaphore(value: 0)
        scheduler.submit(promptIds: other, options: otherOptions, onToken: { ev in
            if ev.index == 2 { decoding.signal() }
            return true
        }, onFinish: { r in results.with { $0[0] = r }; done.signal() })
        XCTAssertEqual(decoding.wait(timeout: .now() + 30), .success)
        scored.maxTokens = 2
        scheduler.submit(promptIds: ids, options: scored, onPrompt: { p in prompts.with { $0.append(p) } }, onToken: { _ in
            if prompts.with({ $0.isEmpty }) { tokensBeforePrompt.with { $0 += 1 } }
            return true
        }, onFinish: { r in results.with { $0[1] = r }; done.signal() })
        for _ in 0..<2 { XCTAssertEqual(done.wait(timeout: .now() + 60), .success) }
        scheduler.shutdown()
        XCTAssertEqual(prompts.with { $0.count }, 1, "onPrompt is called once")
        XCTAssertEqual(tokensBeforePrompt.with { $0 }, 0, "the prompt comes before the tokens")
        check(prompts.with { $0[0] }, "scheduler onPrompt")
        let batched = try XCTUnwrap(results.with { $0[1] }).get()
        check(try XCTUnwrap(batched.promptLogprobs), "scheduler result")
        XCTAssertEqual(batched.tokens.count, 2)
        XCTAssertEqual(try XCTUnwrap(results.with { $0[0] }).get().tokenIds,
                       try Generator(loaded).generate(promptIds: other, options: otherOptions).tokenIds)
    }

    func testStopBadAndFailingRequestsAffectOnlyThemselves() throws {
        let loaded = try load()
        let gen = Generator(loaded)
        let ids = loaded.tokenizer.tokenizer.encode("Once upon a time", addSpecialTokens: true)
        let options = GenerationOptions(maxTokens: 10, stopAtEOS: false)
        let scheduler = BatchScheduler(loaded: loaded, maxBatch: 4)
        let results = Box([Int: Result<GenerationResult, Error>]())
        let done = DispatchSemaphore(value: 0)
        func submit(_ key: Int, _ prompt: [Int], _ o: GenerationOptions, hooks: HookSet = HookSet(), stopAfter: Int? = nil) {
            let count = Box(0)
            scheduler.submit(promptIds: prompt, options: o, hooks: hooks, onToken: { _ in
                count.with { (n: inout Int) -> Bool in
                    n += 1
                    guard let s = stopAfter else { return true }
                    return n < s
                }
            }, onFinish: { r in results.with { $0[key] = r }; done.signal() })
        }
        // a NaN written into the residual stream makes that request's forward fail
        let poison = HookSet([Intervention(.residPost(0), positions: .all, .custom({ _, row, _ in row[0] = .nan }))])
        submit(0, ids, options)
        submit(1, ids, options, stopAfter: 3)
        submit(2, [], options)                              // empty prompt
        submit(3, ids + [loaded.config.vocabSize + 7], options)  // id outside the vocabulary
        submit(4, ids, options, hooks: poison)
        var bad = options; bad.sampling.temperature = -1
        submit(5, ids, bad)                                 // invalid sampling
        for _ in 0..<6 { XCTAssertEqual(done.wait(timeout: .now() + 60), .success) }
        let alone = try gen.generate(promptIds: ids, options: options)
        let r = results.with { $0 }
        XCTAssertEqual(try r[0]!.get().tokenIds, alone.tokenIds)
        let stopped = try r[1]!.get()
        XCTAssertEqual(stopped.tokenIds, Array(alone.tokenIds.prefix(3)))
        XCTAssertEqual(stopped.finishReason, .stop)
        for (k, needle) in [(2, "empty"), (3, "outside the vocabulary"), (4, "non-finite"), (5, "temperature")] {
            guard case .failure(let e) = r[k]! else { XCTFail("request \(k) should fail"); continue }
            XCTAssertTrue("\(e)".contains(needle), "request \(k): \(e)")
        }
        scheduler.shutdown()
    }

    /// With processFinalToken the hooks see every generated token's own state, as with Generator.generate.
    func testFinalTokenReachesTheHooks() throws {
        let loaded = try load()
        let ids = loaded.tokenizer.tokenizer.encode("Once upon a time", addSpecialTokens: true)
        let scheduler = BatchScheduler(loaded: loaded, maxBatch: 2)
        let buffers = [CaptureBuffer(), CaptureBuffer()]
        let done = DispatchSemaphore(value: 0)
        let results = Box([Int: GenerationResult]())
        for k in 0..<2 {
            var o = GenerationOptions(maxTokens: 6 + k, stopAtEOS: false)
            o.processFinalToken = true
            scheduler.submit(promptIds: ids, options: o, hooks: HookSet([Intervention(.residPost(1), .capture(buffers[k]))]),
                             onToken: { _ in true }, onFinish: { r in results.with { $0[k] = try? r.get() }; done.signal() })
        }
        for _ in 0..<2 { XCTAssertEqual(done.wait(timeout: .now() + 60), .success) }
        scheduler.shutdown()
        let late = DispatchSemaphore(value: 0)
        scheduler.submit(promptIds: ids, options: GenerationOptions(maxTokens: 2), onToken: { _ in true }, onFinish: { r in
            if case .failure(let e) = r, "\(e)".contains("shut down") { late.signal() }
        })
        XCTAssertEqual(late.wait(timeout: .now() + 5), .success, "a request after shutdown fails at once")
        for k in 0..<2 {
            let r = try XCTUnwrap(results.with { $0[k] })
            let D = loaded.config.hiddenSize
            XCTAssertEqual(buffers[k].values.count, (ids.count + r.tokens.count) * D, "request \(k)")
            // and those states equal a trace of the whole sequence
            let trace = try HiddenStateTrace.run(model: loaded.model, tokens: ids + r.tokenIds)
            XCTAssertLessThanOrEqual(maxAbsDiff(buffers[k].values, trace.hiddenStates[2]), 1e-4)
        }
    }
}
