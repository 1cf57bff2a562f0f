import Foundation
import XCTest
@testable import PersonaTestSupport
@testable import PersonaRuns

/// Synthetic curves with known change points (unit Gaussian noise unless said otherwise).
final class DecisionPointTests: XCTestCase {
    func testPerTokenRuleByHand() {
        // mean([1,2,3]) = 2, np.std([1,2,3]) = 0.816496580927726 -> threshold 2.8165: x[3] = 2.9 qualifies.
        XCTAssertEqual(DecisionPoints.perTokenRule([1, 2, 3, 2.9]), 3)
        XCTAssertEqual(DecisionPoints.perTokenRule([1, 2, 3, 2.8, 2.81, 2.82]), 5)
        XCTAssertNil(DecisionPoints.perTokenRule([1, 1, 1, 1]))  // std 0, needs x > 1 strictly
        XCTAssertNil(DecisionPoints.perTokenRule([1, 2, 3]))
        XCTAssertEqual(DecisionPoints.perTokenRule([0, 0, 0, 0, 5]), 4)
        let d = DecisionPoints.perTokenRuleDecision([1, 2, 3, 2.9])!
        XCTAssertEqual(d.method, "pertoken-rule")
        XCTAssertEqual(d.score, 0.9 / 0.816496580927726, accuracy: 1e-12)
    }

    func testNoiseScaleIsRobust() {
        var g = GaussianNoise(seed: 1)
        let x = g.series(2000, sigma: 0.5)
        XCTAssertEqual(DecisionPoints.noiseScale(x), 0.5, accuracy: 0.05)
        // A big step and spikes barely move it.
        var y = x
        for i in 1000..<2000 { y[i] += 50 }
        y[300] += 100; y[700] -= 80
        XCTAssertEqual(DecisionPoints.noiseScale(y), 0.5, accuracy: 0.05)
    }

    func testPureNoiseGivesNothing() {
        for seed in UInt64(0)..<40 {
            var g = GaussianNoise(seed: seed)
            let pts = DecisionPoints.detect(g.series(200, sigma: 0.7))
            XCTAssertEqual(pts, [], "seed \(seed)")
        }
    }

    func testConstantAndDegenerateInputs() {
        XCTAssertEqual(DecisionPoints.detect(Array(repeating: 2.5, count: 50)), [])
        XCTAssertEqual(DecisionPoints.detect([]), [])
        XCTAssertEqual(DecisionPoints.detect([1, 9]), [])
        XCTAssertEqual(DecisionPoints.detect([1, .nan, 3, 4, 5, 6, 7]), [])
        XCTAssertEqual(DecisionPoints.detect([1, .infinity, 3, 4, 5, 6, 7]), [])
    }

    func testStepUpAndDown() {
        for seed in UInt64(0)..<20 {
            var g = GaussianNoise(seed: seed)
            var x = g.series(120)
            for i in 50..<120 { x[i] += 3 }  // 3 sigma up at 50
            for i in 90..<120 { x[i] -= 5 }  // 5 sigma down at 90
            let pts = DecisionPoints.detect(x)
            XCTAssertEqual(pts.map(\.kind), [.rise, .fall], "seed \(seed): \(pts)")
            if pts.count == 2 {
                XCTAssertEqual(Double(pts[0].index), 50, accuracy: 3, "seed \(seed)")
                XCTAssertEqual(Double(pts[1].index), 90, accuracy: 2, "seed \(seed)")
                // Scores are in estimated noise units; times the estimate they give the shift in data units
                // (standard error of a difference of segment means here is about 0.2).
                let sigma = DecisionPoints.noiseScale(x)
                XCTAssertEqual(pts[0].score * sigma, 3, accuracy: 0.7, "seed \(seed)")
                XCTAssertEqual(pts[1].score * sigma, -5, accuracy: 0.7, "seed \(seed)")
            }
        }
    }

    func testNoiseFreeStepIsExact() {
        let x = (0..<30).map { $0 < 17 ? 0.25 : -1.0 }
        let pts = DecisionPoints.detect(x)
        XCTAssertEqual(pts.count, 1)
        XCTAssertEqual(pts.first?.index, 17)
        XCTAssertEqual(pts.first?.kind, .fall)
    }

    func testSpikeIsFoundAndDoesNotLookLikeALevelChange() {
        var g = GaussianNoise(seed: 3)
        var x = g.series(80)
        x[30] += 10
        x[60] -= 9
        let pts = DecisionPoints.detect(x)
        XCTAssertEqual(pts.map(\.index), [30, 60])
        XCTAssertEqual(pts.map(\.kind), [.spike, .spike])
        XCTAssertGreaterThan(pts[0].score, 5)
        XCTAssertLessThan(pts[1].score, -5)
    }

    /// Sets x[i] to `c` noise units above what its Hampel window's median will be, so the excursion's size is exact.
    func plant(_ x: inout [Double], at i: Int, units c: Double, sigma: Double) {
        // With x[i] above all its neighbours, the median of the 7-window is the 4th smallest of the 6 neighbours.
        let neighbours = (i - 3...i + 3).filter { $0 != i }.map { x[$0] }.sorted()
        x[i] = neighbours[3] + c * sigma
    }

    func testSingleSamplesBelowTheSpikeThresholdAreIgnored() {
        for seed in UInt64(0)..<20 {
            var g = GaussianNoise(seed: seed)
            var x = g.series(100)
            // The MAD does not depend on how large an outlier is, so plant first, then measure the scale
            // the detector will see, then plant again at exact multiples of it.
            for i in [20, 50, 75] { plant(&x, at: i, units: 50, sigma: 1) }
            let sigma = DecisionPoints.noiseScale(x)
            var small = x
            for i in [20, 50, 75] { plant(&small, at: i, units: 4.5, sigma: sigma) }
            XCTAssertEqual(DecisionPoints.noiseScale(small), sigma, accuracy: 1e-12)
            XCTAssertEqual(DecisionPoints.detect(small), [], "seed \(seed)")
            for i in [20, 50, 75] { plant(&x, at: i, units: 6, sigma: sigma) }
            XCTAssertEqual(DecisionPoints.detect(x).map(\.index), [20, 50, 75], "seed \(seed)")
            XCTAssertEqual(DecisionPoints.detect(x).map(\.kind), [.spike, .spike, .spike], "seed \(seed)")
        }
    }

    func testShortBurstIsOneSpikeLongPlateauIsRiseThenFall() {
        var g = GaussianNoise(seed: 11)
        var x = g.series(100)
        for i in 20..<23 { x[i] += 12 }  // 3 samples: a spike
        for i in 60..<70 { x[i] += 6 }   // 10 samples: a plateau
        let pts = DecisionPoints.detect(x)
        XCTAssertEqual(pts.map(\.kind), [.spike, .rise, .fall], "\(pts)")
        if pts.count == 3 {
            XCTAssertTrue((20..<23).contains(pts[0].index))
            XCTAssertEqual(Double(pts[1].index), 60, accuracy: 1)
            XCTAssertEqual(Double(pts[2].index), 70, accuracy: 1)
        }
    }

    func testRampIsCaughtAsRises() {
        for seed in UInt64(0)..<10 {
            var g = GaussianNoise(seed: seed)
            var x = g.series(150)
            for i in 50..<150 { x[i] += Double(min(i - 50, 40)) * 0.15 }  // 0 -> 6 sigma over tokens 50..90, then flat
            let pts = DecisionPoints.detect(x)
            XCTAssertFalse(pts.isEmpty, "seed \(seed)")
            XCTAssertTrue(pts.allSatisfy { $0.kind == .rise }, "seed \(seed): \(pts)")
            XCTAssertTrue(pts.allSatisfy { (45...95).contains($0.index) }, "seed \(seed): \(pts)")
        }
    }

    func testScaleInvariance() {
        var g = GaussianNoise(seed: 5)
        var x = g.series(100)
        for i in 40..<100 { x[i] += 4 }
        let a = DecisionPoints.detect(x)
        let b = DecisionPoints.detect(x.map { $0 * 1e-3 + 7 })
        XCTAssertEqual(a.map(\.index), b.map(\.index))
        XCTAssertEqual(a.map(\.kind), b.map(\.kind))
    }
}
