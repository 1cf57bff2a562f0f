import Foundation
import PersonaRuns
import XCTest
@testable import PersonaTestSupport

/// Seeded mutation fuzzing of run-file import (`RunImport.load`): our own documents (the bundled example runs) and
/// the per-token project's result files. An import that succeeds must survive what the server then does with a
/// run (analysis, JSON export, per-token export, CSV); anything else must be a described RunError.
/// PERSONA_FUZZ_ITERATIONS=N for a longer run by hand.
final class FuzzRunImportTests: XCTestCase {
    func testRunImportMutations() throws {
        let repo = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var corpus: [[UInt8]] = [[UInt8](try Data(contentsOf: repo.appendingPathComponent("Sources/persona/Examples/08-closed-loop-evil.json")))]
        for f in ["layer_comparison.json", "analysis_summary.json"] {
            if let u = sharedReferenceURL("reference/trait-interp/pertoken_results/\(f)") { corpus.append([UInt8](try Data(contentsOf: u))) }
        }
        // Smaller documents mutate faster: one example run cut down to its first few tokens too.
        if let obj = try JSONSerialization.jsonObject(with: Data(corpus[0])) as? [String: Any] {
            var small = obj
            for (k, v) in obj {
                if let a = v as? [Any] { small[k] = Array(a.prefix(6)) }
                if let d = v as? [String: Any] { small[k] = d.mapValues { ($0 as? [Any]).map { Array($0.prefix(6)) } ?? $0 } }
            }
            corpus.append([UInt8](try JSONSerialization.data(withJSONObject: small, options: [.sortedKeys])))
        }
        var rng = FuzzRNG(seed: FuzzMutator.seed(0x0202_5EED))
        var tally = FuzzTally()
        for i in 0 ..< FuzzMutator.iterations(150) {
            let input = FuzzMutator.mutatedJSON(rng.pick(corpus), rng: &rng, others: corpus)
            if let p = tally.run(iteration: i, expectedTypes: [RunError.self], {
                let runs = try RunImport.load(data: Data(input), source: "fuzz.json")
                for r in runs {
                    let analysed = r.withAnalysis()
                    _ = try analysed.jsonData()
                    _ = RunExport.csv(analysed)
                }
                _ = try RunExport.perTokenProject(runs)
            }) { XCTFail("iteration \(i): \(p)") }
        }
        XCTAssertGreaterThan(tally.refused, 0, "\(tally)")
        XCTAssertGreaterThan(tally.ok, 0, "\(tally)")
        XCTAssertLessThan(tally.slowest, 5, "one document took too long: \(tally)")
        print("fuzz run import: \(tally)")
    }
}
