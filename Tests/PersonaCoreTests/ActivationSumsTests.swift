import Foundation
@testable import PersonaCore
import PersonaModels
import XCTest

/// Merging shard statistics refuses what does not fit instead of truncating (zip) or wiping a method.
final class ActivationSumsTests: XCTestCase {
    func sums(rows: Int = 3, hidden: Int = 2, fill: Double = 1) throws -> ActivationSums {
        var s = ActivationSums(numRows: rows, hiddenSize: hidden)
        let h = (0..<rows).map { r in (0..<(4 * hidden)).map { Float(Double($0 + r) * fill) } }   // 4 tokens
        try s.add(hiddenStates: h, promptLength: 2, positive: true)
        try s.add(hiddenStates: h.map { $0.map { -$0 } }, promptLength: 2, positive: false)
        return s
    }

    func testMergeAddsExactly() throws {
        var a = try sums(), b = try sums(fill: 2)
        let expected = zip(a.positive["response_avg"]!, b.positive["response_avg"]!).map(+)
        try a.merge(b)
        XCTAssertEqual(a.positive["response_avg"], expected)
        XCTAssertEqual(a.positiveCount, 2)
        b.positive["prompt_avg"] = nil
        XCTAssertThrowsError(try a.merge(b, source: "s1/sums.json")) { e in
            XCTAssertEqual("\(e)", "s1/sums.json: positive sums have no prompt_avg")
        }
    }

    func testShortOrForeignSumsAreRefused() throws {
        var a = try sums()
        var short = try sums()
        short.negative["response_avg"]!.removeLast()
        XCTAssertThrowsError(try a.merge(short, source: "s2/sums.json")) { e in
            XCTAssertEqual("\(e)", "s2/sums.json: negative response_avg sums hold 5 values, [3, 2] needs 6")
        }
        var bad = try sums()
        bad.positiveCount = -1
        XCTAssertThrowsError(try bad.validate(source: "x"))
        var nan = try sums()
        nan.positive["prompt_last"]![0] = .nan
        XCTAssertThrowsError(try a.merge(nan))
        XCTAssertThrowsError(try a.merge(try sums(rows: 4)))
        XCTAssertEqual(a.positiveCount, 1, "nothing was merged")
    }

    /// Sums accumulated inside the forward pass equal `add` over a full trace bit for bit (same order, same
    /// arithmetic), for sequences of different lengths run in one batch.
    func testInHookAccumulationEqualsTraceSums() throws {
        let loaded = try ModelLoader.load(path: repoRoot().appendingPathComponent("Tests/PersonaModelsTests/Fixtures/llama2").path)
        let L = loaded.config.numLayers, D = loaded.config.hiddenSize
        let samples: [(ids: [Int], prompt: Int, positive: Bool)] = [
            ([1, 5, 9, 13, 2, 7, 3], 4, true), ([1, 8, 3, 20, 4], 2, false), ([1, 11, 6, 5, 5, 5, 9, 30, 2], 6, true)]
        // the same batch traced (a batched pass rounds like a batched pass)
        var expected = ActivationSums(numRows: L + 1, hiddenSize: D)
        let traces = try HiddenStateTrace.run(model: loaded.model, batch: samples.map(\.ids), logits: .none)
        for (s, trace) in zip(samples, traces) {
            try expected.add(hiddenStates: trace.hiddenStates, promptLength: s.prompt, positive: s.positive)
        }
        let acc = ActivationAccumulator(numRows: L + 1, hiddenSize: D)
        let seqs = try samples.map { s in
            BatchSequence(tokens: s.ids, cache: loaded.model.makeCache(capacity: s.ids.count),
                          hooks: try acc.hooks(promptLength: s.prompt, total: s.ids.count, positive: s.positive))
        }
        try loaded.model.forward(batch: seqs, logits: .none)
        let got = acc.statistics()
        XCTAssertEqual([got.positiveCount, got.negativeCount], [expected.positiveCount, expected.negativeCount])
        for m in AverageMethod.allCases {
            XCTAssertTrue(got.positive[m.rawValue] == expected.positive[m.rawValue], "positive \(m.rawValue) differs")
            XCTAssertTrue(got.negative[m.rawValue] == expected.negative[m.rawValue], "negative \(m.rawValue) differs")
        }
        XCTAssertThrowsError(try acc.hooks(promptLength: 5, total: 5, positive: true), "a sample without a response")
    }

    /// A tampered sums.json in a shard folder is named in the error of `extract merge`.
    func testMergeSumsChecksDecodedFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sums-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var files: [URL] = []
        for i in 0..<2 {
            let f = dir.appendingPathComponent("shard\(i)")
            try FileManager.default.createDirectory(at: f, withIntermediateDirectories: true)
            var s = try sums()
            if i == 1 { s.positive["prompt_last"] = Array(s.positive["prompt_last"]!.prefix(2)) }
            let file = SumsFile(trait: "t", model: "m", positive: "p", shard: Shard(index: i, count: 2), sums: s)
            try JSONEncoder().encode(file).write(to: f.appendingPathComponent("sums.json"))
            files.append(f)
        }
        XCTAssertThrowsError(try ExtractionPipeline.mergeSums(files)) { e in
            XCTAssertTrue("\(e)".contains("shard1/sums.json: positive prompt_last sums hold 2 values"), "\(e)")
        }
    }
}
