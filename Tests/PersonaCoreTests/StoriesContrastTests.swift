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
