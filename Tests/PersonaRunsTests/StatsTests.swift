import Foundation
import XCTest
@testable import PersonaTestSupport
@testable import PersonaRuns

/// Statistics checked against numpy (Scripts/make_runs_fixtures.py -> Fixtures/stats_reference.json).
final class StatsTests: XCTestCase {
    struct Reference: Decodable {
        struct Stat: Decodable {
            var mean, std, min, max, spikiness: Double
            var running_avg_5, running_avg_10: [Double]
            var pertoken_rule: Int?
            var pertoken_spikes: [Int]
        }
        var curves: [String: [Double]]
        var stats: [String: Stat]
        var correlations: Correlations
    }

    func reference() throws -> Reference {
        try JSONDecoder().decode(Reference.self, from: Data(contentsOf: fixtureURL("stats_reference.json")))
    }

    func testSummaryAgainstNumpy() throws {
        let ref = try reference()
        XCTAssertEqual(ref.curves.count, 3)
        for (name, x) in ref.curves {
            let want = try XCTUnwrap(ref.stats[name])
            let got = try XCTUnwrap(RunStats.summary(x))
            XCTAssertEqual(got.mean, want.mean, accuracy: 1e-12, name)
            XCTAssertEqual(got.std, want.std, accuracy: 1e-12, name)
            XCTAssertEqual(got.min, want.min, name)
            XCTAssertEqual(got.max, want.max, name)
            XCTAssertEqual(try XCTUnwrap(RunStats.spikiness(x)), want.spikiness, accuracy: 1e-9, name)
            for (w, ra) in [(5, want.running_avg_5), (10, want.running_avg_10)] {
                let ours = RunStats.runningAverage(x, window: w)
                XCTAssertEqual(ours.count, ra.count)
                for i in ra.indices { XCTAssertEqual(ours[i], ra[i], accuracy: 1e-12, "\(name) w=\(w) [\(i)]") }
            }
            XCTAssertEqual(DecisionPoints.perTokenRule(x), want.pertoken_rule, name)
            XCTAssertEqual(DecisionPoints.perTokenSpikes(x), want.pertoken_spikes, name)
        }
    }

    func testCorrelationMatrixAgainstNumpyCorrcoef() throws {
        let ref = try reference()
        let c = RunStats.correlationMatrix(ref.curves)
        XCTAssertEqual(c.traits, ref.correlations.traits)
        for i in c.traits.indices {
            for j in c.traits.indices {
                XCTAssertEqual(c.matrix[i][j], ref.correlations.matrix[i][j], accuracy: 1e-12, "\(i),\(j)")
            }
        }
        // numpy: r(evil, happy) = -0.618, the only pair with |r| > 0.3 (calm-evil 0.067, calm-happy -0.225).
        XCTAssertEqual(RunStats.cascades(c).map { "\($0.a)-\($0.b)" }, ["evil-happy"])
        XCTAssertEqual(RunStats.cascades(c)[0].r, -0.6181460315810606, accuracy: 1e-12)
    }

    func testHandComputedValues() {
        // np.std([1, 2, 3, 4]) = 1.118033988749895; np.mean = 2.5
        let s = RunStats.summary([1, 2, 3, 4])!
        XCTAssertEqual(s.std, 1.118033988749895, accuracy: 1e-15)
        XCTAssertEqual(s.mean, 2.5)
        XCTAssertNil(RunStats.summary([]))
        XCTAssertNil(RunStats.spikiness([1, -1]))
        // np.corrcoef([1,2,3],[2,4,7])[0,1] = 0.9933992677987828
        XCTAssertEqual(RunStats.pearson([1, 2, 3], [2, 4, 7])!, 0.9933992677987828, accuracy: 1e-15)
        XCTAssertNil(RunStats.pearson([1, 1, 1], [1, 2, 3]))  // numpy gives nan: constant series
        let c = RunStats.correlationMatrix(["a": [1, 1, 1], "b": [1, 2, 3]])
        XCTAssertEqual(c.matrix, [[1, 0], [0, 1]])
        XCTAssertEqual(RunStats.runningAverage([2, 4, 6, 8], window: 2), [2, 3, 5, 7])
        XCTAssertEqual(RunStats.runningAverage([2, 4], window: 0), [2, 4])
    }

    func testComputeAnalysisProducesAValidDocument() throws {
        var noise = GaussianNoise(seed: 7)
        let x = noise.series(60).enumerated().map { $0.offset >= 30 ? $0.element + 6 : $0.element }
        var run = RunDocument(prompt: "p", response: "r", tokens: Array(repeating: "t", count: 60),
                              traitScores: ["a": x, "b": noise.series(60)])
        run.computeAnalysis()
        try run.validate()
        XCTAssertEqual(run.stats?["a"], RunStats.summary(x))
        XCTAssertEqual(run.correlations?.traits, ["a", "b"])
        let auto = run.decisionPoints?["a"]?.filter { $0.method == DecisionPoints.automaticMethod } ?? []
        XCTAssertEqual(auto.map(\.index), [30])
        XCTAssertEqual(auto.map(\.kind), [.rise])
    }
}
