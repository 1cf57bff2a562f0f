import XCTest
@testable import PersonaCore

/// The small statistics behind `persona evaluate`, against values worked out by hand.
final class EvaluationStatsTests: XCTestCase {
    func testRepetitionCountsRepeatedTrigrams() {
        XCTAssertEqual(SteeringSweep.repetition([1, 2, 3, 4, 5, 6]), 0)
        // 1 2 3 1 2 3 1 2 3: 7 trigrams, 3 distinct.
        XCTAssertEqual(SteeringSweep.repetition([1, 2, 3, 1, 2, 3, 1, 2, 3]), 1 - 3.0 / 7, accuracy: 1e-12)
        XCTAssertEqual(SteeringSweep.repetition([7, 7, 7, 7, 7]), 1 - 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(SteeringSweep.repetition([1, 2, 3]), 0)
    }

    func testSpearmanUsesMeanRanksForTies() throws {
        XCTAssertEqual(MonitorValidation.ranks([10, 20, 20, 5]), [2, 3.5, 3.5, 1])
        // x = 1 2 3 4 5, y = 5 6 7 8 7: ranks of y 1 2 3.5 5 3.5; rho = Pearson of the ranks = 0.82078 (worked out separately in Python).
        let rho = try XCTUnwrap(MonitorValidation.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]))
        XCTAssertEqual(rho, 0.820782681668123, accuracy: 1e-12)
    }

    func testBootstrapIntervalHoldsThePointEstimate() throws {
        let x = (0..<40).map { Double($0) }, y = x.map { $0 * 2 + sin($0) * 5 }
        let c = MonitorValidation.correlation(x, y, { a, b in MonitorValidation.spearman(a, b) }, 500, 7)
        let r = try XCTUnwrap(c.r), lo = try XCTUnwrap(c.low), hi = try XCTUnwrap(c.high)
        XCTAssertTrue(lo <= r && r <= hi && hi <= 1, "\(lo) \(r) \(hi)")
        XCTAssertEqual(MonitorValidation.correlation(x, y, { a, b in MonitorValidation.spearman(a, b) }, 500, 7), c, "seeded")
    }

    /// `screen --flag-top`: the fraction of the samples rounded up (10% of 3 flags the highest one, where rounding
    /// to nearest flagged none), never more than there are, and 10% of 30 is 3 although 0.1 x 30 is 3.0000000000000004.
    func testFlagTopRoundsUp() {
        XCTAssertEqual(DataScreen.flagCount(of: 3, fraction: 0.1), 1)
        XCTAssertEqual(DataScreen.flagCount(of: 30, fraction: 0.1), 3)
        XCTAssertEqual(DataScreen.flagCount(of: 31, fraction: 0.1), 4)
        XCTAssertEqual(DataScreen.flagCount(of: 6, fraction: 0.5), 3)
        XCTAssertEqual(DataScreen.flagCount(of: 7, fraction: 1), 7)
        XCTAssertEqual(DataScreen.flagCount(of: 7, fraction: 0), 0)
        XCTAssertEqual(DataScreen.flagCount(of: 0, fraction: 0.1), 0)
    }
}
