import Foundation
import PersonaCore
import PersonaModels
import XCTest

/// A real trained model: a vector from contrastive story texts separates held-out texts by projection.
final class StoriesContrastTests: XCTestCase {

    func lines(_ name: String) throws -> [String] {
        try String(contentsOf: repoRoot().appendingPathComponent("examples/stories/\(name).txt"), encoding: .utf8)
            .split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    func testHappyVsSadSeparatesHeldOutStories() throws {
        let loaded = try ModelLoader.load(path: sharedFolder().appendingPathComponent("models/stories260K/stories260K.gguf").path)
        let happy = try lines("happy"), sad = try lines("sad")
        // First 18 of each side build the vector; the last 6 are never seen.
        var sums = ActivationSums(numRows: loaded.config.numLayers + 1, hiddenSize: loaded.config.hiddenSize)
        try TextContrast.accumulate(loaded, texts: Array(happy.prefix(18)), positive: true, into: &sums)
        try TextContrast.accumulate(loaded, texts: Array(sad.prefix(18)), positive: false, into: &sums)
        let v = try sums.vector(trait: "happy", method: .responseAvg)
        let report = try TextContrast.report(loaded, vector: v, positive: Array(happy.suffix(6)), negative: Array(sad.suffix(6)))
        let best = report.max { $0.auroc < $1.auroc }!
        // Measured: held-out AUROC 0.75-1.0 across rows, 1.0 at row 1 (examples/vectors/stories260K/happy.report.json).
        // Chance is 0.5; with 6 vs 6 texts an AUROC >= 0.9 has p < 0.01 under the null.
        XCTAssertGreaterThanOrEqual(best.auroc, 0.9, "best held-out AUROC \(best.auroc) at row \(best.row)")
        XCTAssertGreaterThan(report.filter { $0.auroc > 0.5 }.count, report.count / 2, "most rows should separate above chance")
        // Held-out projections at the recommended row: happy stories above sad ones on average.
        let row = TextContrast.recommendedRow(report, numLayers: loaded.config.numLayers)
        XCTAssertGreaterThan(report[row].cohensD, 1)
    }
}

/// The row choice without a model: AUROC first, then a defined Cohen's d, then the row nearest a third of the depth.
final class RecommendedRowTests: XCTestCase {
    func rows(_ auroc: [Double], _ d: [Double]) -> [TextContrast.RowReport] {
        zip(auroc, d).enumerated().map { TextContrast.RowReport(row: $0.offset, hookPoint: "", auroc: $0.element.0, cohensD: $0.element.1, norm: 1) }
    }

    func testUndefinedEffectSizesTieThenAThirdOfTheDepth() {
        // 30 layers, rows 0...30: every AUROC 1, every d undefined -> row 10 (it was row 1: NaN broke the ordering)
        XCTAssertEqual(TextContrast.recommendedRow(rows(Array(repeating: 1, count: 31), Array(repeating: .nan, count: 31)), numLayers: 30), 10)
        // a defined d beats an undefined one at equal AUROC, wherever it is
        var d = Array(repeating: Double.nan, count: 31); d[25] = 0.1
        XCTAssertEqual(TextContrast.recommendedRow(rows(Array(repeating: 1, count: 31), d), numLayers: 30), 25)
        // AUROC decides first; rows 0 and L are not candidates
        var a = Array(repeating: 0.6, count: 31); a[30] = 1; a[0] = 1; a[4] = 0.9
        XCTAssertEqual(TextContrast.recommendedRow(rows(a, Array(repeating: 2, count: 31)), numLayers: 30), 4)
        // larger d wins among equal AUROCs
        var d2 = Array(repeating: 1.0, count: 31); d2[7] = 3
        XCTAssertEqual(TextContrast.recommendedRow(rows(Array(repeating: 0.8, count: 31), d2), numLayers: 30), 7)
    }
}
