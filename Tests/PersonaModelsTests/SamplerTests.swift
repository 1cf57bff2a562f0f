import Foundation
import PersonaGeneration
import PersonaModels
import XCTest

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
}
