import Foundation
@testable import PersonaGeneration
import PersonaModels
import XCTest
import PersonaTensor

final class SamplerTests: XCTestCase {
    func sample(_ logits: [Float], _ p: SamplingParameters, history: [Int] = [], n: Int) -> [Int] {
        var s = Sampler(p)
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<n {
            var l = logits
            let id = l.withUnsafeMutableBufferPointer { s.sample($0, history: history) }
            counts[id] += 1
        }
        return counts
    }

    func softmax(_ x: [Double]) -> [Double] {
        let m = x.max()!
        let e = x.map { Foundation.exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    func testGreedyPicksArgmaxAndLowestIdOnTies() {
        XCTAssertEqual(sample([0, 3, 1, 3], SamplingParameters(temperature: 0), n: 1), [0, 1, 0, 0])
    }

    func testTemperatureSamplingFollowsSoftmax() {
        let logits: [Float] = [1, 2, 0.5, -1, 1.5]
        let n = 40_000
        let counts = sample(logits, SamplingParameters(temperature: 0.7, seed: 7), n: n)
        let expected = softmax(logits.map { Double($0) / 0.7 })
        for (c, p) in zip(counts, expected) {
            // 5 standard errors of a binomial proportion
            let se = (p * (1 - p) / Double(n)).squareRoot()
            XCTAssertEqual(Double(c) / Double(n), p, accuracy: 5 * se + 1e-9)
        }
    }

    func testTopKTopPMinPFilters() {
        let logits: [Float] = [3, 2.9, 1, 0, -1]
        // top-k 2: only ids 0 and 1
        let k = sample(logits, SamplingParameters(temperature: 1, topK: 2, seed: 1), n: 2000)
        XCTAssertEqual(k[2] + k[3] + k[4], 0)
        XCTAssertGreaterThan(k[0], 0); XCTAssertGreaterThan(k[1], 0)
        // top-p: p = softmax -> [0.47, 0.43, 0.06, ...]; 0.8 keeps ids 0, 1
        let p = sample(logits, SamplingParameters(temperature: 1, topP: 0.8, seed: 2), n: 2000)
        XCTAssertEqual(p[2] + p[3] + p[4], 0)
        // min-p 0.2: keeps tokens with p >= 0.2 * p(max) (ids 0, 1)
        let m = sample(logits, SamplingParameters(temperature: 1, minP: 0.2, seed: 3), n: 2000)
        XCTAssertEqual(m[2] + m[3] + m[4], 0)
    }

    /// The filters written the plain way (sort the whole vocabulary, then cut): the sampler, which only sorts the
    /// candidates it needs, must draw exactly the same ids for the same seeds.
    func referenceDraw(_ logits: [Float], _ p: SamplingParameters, _ rng: inout SeededRandom) -> Int {
        let n = logits.count
        let order = (0..<n).sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        let maxL = logits[order[0]]
        // the sampler's weights (Ops.softmaxWeight, tested against exp in testSoftmaxWeights...)
        let w = order.map { Ops.softmaxWeight(logits[$0], shift: maxL, temperature: p.temperature) }
        var keep: [Int]   // ranks
        var norm: Double
        if p.topK > 0 && p.topK < n {
            keep = Array(0..<p.topK)
            norm = keep.reduce(0.0) { $0 + Double(w[$1]) }
            if p.minP > 0 {
                let cut = Float(Double(w[0]) / norm) * p.minP
                var c = 0
                while c < keep.count, Float(Double(w[c]) / norm) >= cut { c += 1 }
                keep = Array(keep.prefix(max(1, c)))
            }
            norm = keep.reduce(0.0) { $0 + Double(w[$1]) }
        } else {
            keep = (0..<n).filter { w[$0] >= p.minP }
            norm = 0
            for i in 0..<n { let e = Ops.softmaxWeight(logits[i], shift: maxL, temperature: p.temperature); if e >= p.minP { norm += Double(e) } }
        }
        if p.topP < 1 {
            var acc = 0.0, c = 0
            while c < keep.count { acc += Double(w[keep[c]]) / norm; c += 1; if acc >= Double(p.topP) { break } }
            keep = Array(keep.prefix(max(1, c)))
        }
        let total = keep.reduce(0.0) { $0 + Double(w[$1]) }
        let r = rng.nextUnit() * total
        var acc = 0.0
        for k in keep { acc += Double(w[k]); if r < acc { return order[k] } }
        return order[keep.last!]
    }

    func testPartialSelectionDrawsWhatAFullSortDraws() {
        var gen = SeededRandom(seed: 99)
        for trial in 0..<24 {
            let n = [5, 64, 1000, 49152][trial % 4]
            // peaked logits with ties, as real vocabularies have
            let logits = (0..<n).map { _ in Float((gen.nextUnit() * 12).rounded() / 2) - 3 }
            let params = [SamplingParameters(temperature: 0.8, topK: 40, seed: UInt64(trial)),
                          SamplingParameters(temperature: 1, topP: 0.9, seed: UInt64(trial)),
                          SamplingParameters(temperature: 1.2, topK: 7, topP: 0.5, seed: UInt64(trial)),
                          SamplingParameters(temperature: 1, topP: 0.95, minP: 0.05, seed: UInt64(trial))]
            for p in params {
                var sampler = Sampler(p)
                var rng = SeededRandom(seed: p.seed)
                for draw in 0..<3 {
                    var l = logits
                    let got = l.withUnsafeMutableBufferPointer { sampler.sample($0, history: []) }
                    XCTAssertEqual(got, referenceDraw(logits, p, &rng), "n \(n) \(p) draw \(draw)")
                }
            }
        }
    }

    func testRepetitionPenaltyAsInTransformers() {
        // CTRL / HF: positive logits divided by the penalty, negative multiplied.
        var s = Sampler(SamplingParameters(temperature: 0, repetitionPenalty: 2))
        var l: [Float] = [3, 2, -1]
        let id = l.withUnsafeMutableBufferPointer { s.sample($0, history: [0, 2]) }
        XCTAssertEqual(l, [1.5, 2, -2])
        XCTAssertEqual(id, 1)
    }

    func testSeededSamplingIsReproducibleAndSeedsDiffer() {
        let logits: [Float] = (0..<50).map { Float($0 % 7) * 0.3 }
        func seq(_ seed: UInt64) -> [Int] {
            var s = Sampler(SamplingParameters(temperature: 1, seed: seed))
            return (0..<30).map { _ in var l = logits; return l.withUnsafeMutableBufferPointer { s.sample($0, history: []) } }
        }
        XCTAssertEqual(seq(42), seq(42))
        XCTAssertNotEqual(seq(42), seq(43))
    }

    func testInvalidParametersNameTheParameter() {
        for (p, word) in [(SamplingParameters(temperature: -1), "temperature"), (SamplingParameters(topP: 0), "top-p"),
                          (SamplingParameters(minP: 1), "min-p"), (SamplingParameters(repetitionPenalty: 0), "repetition")] {
            XCTAssertThrowsError(try p.validate()) { XCTAssertTrue("\($0)".contains(word), "\($0)") }
        }
    }

    func testStreamYieldsTheSameTokensAsGenerate() async throws {
        let loaded = try ModelLoader.load(path: TestPaths.stories260K.path)
        let gen = Generator(loaded)
        let ids = try gen.promptIds(for: "Once upon a time", raw: true)
        let opts = GenerationOptions(maxTokens: 20, sampling: SamplingParameters(temperature: 0.8, seed: 5))
        let direct = try gen.generate(promptIds: ids, options: opts).tokenIds
        var streamed: [Int] = []
        for try await ev in gen.stream(promptIds: ids, options: opts) { streamed.append(ev.id) }
        XCTAssertEqual(streamed, direct)
        XCTAssertEqual(direct.count, 20)
    }

    func testStopStrings() throws {
        let loaded = try ModelLoader.load(path: TestPaths.stories260K.path)
        let gen = Generator(loaded)
        let ids = try gen.promptIds(for: "Once upon a time", raw: true)
        let r = try gen.generate(promptIds: ids, options: GenerationOptions(maxTokens: 100, stopStrings: ["Lily"]))
        XCTAssertEqual(r.text, ", there was a little girl named ")
        XCTAssertEqual(r.finishReason, .stop)
    }

    /// What the events release, in order, then `unreleased`, is the result's text; no stop string is ever released,
    /// and text that may begin one waits only until it cannot (stops taken from the plain output itself).
    func testReleasedTextAddsUpAndNeverShowsAStop() throws {
        let loaded = try ModelLoader.load(path: TestPaths.stories260K.path)
        let gen = Generator(loaded)
        let ids = try gen.promptIds(for: "Once upon a time", raw: true)
        let plain = try gen.generate(promptIds: ids, options: GenerationOptions(maxTokens: 40)).text
        XCTAssertEqual(plain.prefix(32), ", there was a little girl named ")
        let cases: [[String]] = [
            [],                                // nothing held back
            ["little girl"],                   // a stop spanning tokens, in the middle
            ["girl", "little"],                // the earliest of two wins, not the first listed
            ["little boy"],                    // "little " waits, then is released when "girl" comes
            ["named Lilyx", "ere was a q"],    // prefixes that never complete: all released in the end
        ]
        for stops in cases {
            var released = ""
            var heldAfterNoMatch = false
            let r = try gen.generate(promptIds: ids, options: GenerationOptions(maxTokens: 40, stopStrings: stops)) { ev in
                released += ev.released
                for s in stops { XCTAssertFalse(released.contains(s), "\(stops): released the stop \(s)") }
                if ev.released != ev.text, !stops.contains(where: { released.contains($0) }) { heldAfterNoMatch = true }
                return true
            }
            XCTAssertEqual(released + r.unreleased, r.text, "\(stops)")
            let cut = stops.compactMap { plain.range(of: $0)?.lowerBound }.min()
            XCTAssertEqual(r.text, cut.map { String(plain[..<$0]) } ?? plain, "\(stops): the text is the plain output up to the earliest stop")
            XCTAssertEqual(r.finishReason, cut == nil ? .length : .stop, "\(stops)")
            XCTAssertEqual(heldAfterNoMatch, !stops.isEmpty, "\(stops): held back only where a stop could begin")
            if stops == ["little boy"] { XCTAssertEqual(r.unreleased, "", "the held \"little \" was released when \"girl\" came") }
        }
    }

    /// A stop that begins with "\r" is found when the "\r" and the "\n" come as separate tokens: the "\r" is held
    /// back although, as a Swift Character, the text's "\r" is not the stop's first Character "\r\n".
    func testStopStringStartingInsideACharacter() throws {
        let loaded = try ModelLoader.load(path: TestPaths.stories260K.path)
        let tok = loaded.tokenizer.tokenizer
        let words = tok.encode("Once upon a time", addSpecialTokens: false)
        let script = words + [try XCTUnwrap(tok.tokenId("<0x0D>")), try XCTUnwrap(tok.tokenId("<0x0A>"))] + tok.encode("Lily", addSpecialTokens: false)
        var state = SequenceState(promptIds: [1], options: GenerationOptions(maxTokens: 40, stopStrings: ["\r\n Lily"]), loaded: loaded)
        var logits = [Float](repeating: 0, count: loaded.model.config.vocabSize), scratch = logits
        var released = "", steps = 0
        for id in script {
            logits.indices.forEach { logits[$0] = $0 == id ? 10 : 0 }
            let next = logits.withUnsafeBufferPointer { l in state.step(logits: l, scratch: &scratch, cacheFull: false) { released += $0.released; return true } }
            steps += 1
            if next == nil { break }
        }
        XCTAssertEqual(steps, script.count, "the stop ends it at its last token")
        XCTAssertEqual(state.finish, .stop)
        XCTAssertEqual(state.text, "Once upon a time")
        XCTAssertFalse(released.unicodeScalars.contains("\r"), "the stop's \\r was released: \(released.debugDescription)")
    }

    /// OpenAI's frequency / presence penalties and logit_bias, greedy on hand-made logits: the penalties count only
    /// the generated ids (history from promptLength on), the bias is added before anything else.
    func testOpenAIPenaltiesAndLogitBias() throws {
        func pick(_ p: SamplingParameters, history: [Int], promptLength: Int) -> Int {
            var s = Sampler(p)
            var l: [Float] = [2.0, 1.9, 0.0]
            return l.withUnsafeMutableBufferPointer { s.sample($0, history: history, promptLength: promptLength) }
        }
        // id 0 generated twice: 2.0 - 2 x 0.1 = 1.8 < 1.9; 2.0 - 2 x 0.04 = 1.92 > 1.9
        XCTAssertEqual(pick(SamplingParameters(frequencyPenalty: 0.1), history: [7, 0, 0], promptLength: 1), 1)
        XCTAssertEqual(pick(SamplingParameters(frequencyPenalty: 0.04), history: [7, 0, 0], promptLength: 1), 0)
        // presence counts once: 2.0 - 0.15 = 1.85; 2.0 - 0.05 = 1.95
        XCTAssertEqual(pick(SamplingParameters(presencePenalty: 0.15), history: [7, 0, 0], promptLength: 1), 1)
        XCTAssertEqual(pick(SamplingParameters(presencePenalty: 0.05), history: [7, 0, 0], promptLength: 1), 0)
        // the prompt's ids do not count
        XCTAssertEqual(pick(SamplingParameters(frequencyPenalty: 2, presencePenalty: 2), history: [0, 0], promptLength: 2), 0)
        // a negative penalty favours what was said: 1.9 + 0.2 > 2.0
        XCTAssertEqual(pick(SamplingParameters(presencePenalty: -0.2), history: [1], promptLength: 0), 1)
        // bias: 0.0 + 2.5 > 2.0; -100 removes the best
        XCTAssertEqual(pick(SamplingParameters(logitBias: [2: 2.5]), history: [], promptLength: 0), 2)
        XCTAssertEqual(pick(SamplingParameters(logitBias: [0: -100]), history: [], promptLength: 0), 1)
        for (p, msg) in [(SamplingParameters(frequencyPenalty: 2.5), "frequency penalty"), (SamplingParameters(presencePenalty: .nan), "presence penalty"),
                         (SamplingParameters(logitBias: [3: 101]), "logit bias for token 3"), (SamplingParameters(logitBias: [-1: 1]), "token id -1")] {
            XCTAssertThrowsError(try p.validate()) { XCTAssertTrue("\($0)".contains(msg), "\($0)") }
        }
    }

    func testPendingSuffix() {
        XCTAssertEqual(StopStrings.pendingSuffix(of: "a little", stops: ["little boy"]), 6)
        XCTAssertEqual(StopStrings.pendingSuffix(of: "a little ", stops: ["little boy"]), 7)
        XCTAssertEqual(StopStrings.pendingSuffix(of: "a lit", stops: ["xyz", "lite", "t"]), 3)   // longest over the stops
        XCTAssertEqual(StopStrings.pendingSuffix(of: "abc", stops: ["c"]), 0)                     // a whole stop is not pending
        XCTAssertEqual(StopStrings.pendingSuffix(of: "ab", stops: ["abcdef"]), 2)                  // the whole text
        XCTAssertEqual(StopStrings.pendingSuffix(of: "x café", stops: ["é!"]), 1)                  // scalars, not bytes
        XCTAssertEqual(StopStrings.pendingSuffix(of: "line\r", stops: ["\r\nUser:"]), 1)           // nor Characters
        XCTAssertEqual(StopStrings.pendingSuffix(of: "x cafe", stops: ["e\u{301}!"]), 1)
        XCTAssertEqual(StopStrings.pendingSuffix(of: "x cafe\u{301}", stops: ["\u{301}!"]), 1)
        XCTAssertEqual(StopStrings.pendingSuffix(of: "", stops: ["ab"]), 0)
    }
}
