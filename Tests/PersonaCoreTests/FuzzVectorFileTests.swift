import Foundation
import PersonaCore
import PersonaFormats
import XCTest
@testable import PersonaTestSupport

/// Seeded mutation fuzzing of trait-vector files as `VectorFiles.load` reads them: our safetensors, persona_vectors
/// `.pt` archives and llama.cpp / repeng control-vector GGUFs (the committed fixtures). A file that loads must give
/// rectangular, finite vectors; anything else must be a described VectorError / FormatError.
/// PERSONA_FUZZ_ITERATIONS=N for a longer run by hand.
final class FuzzVectorFileTests: XCTestCase {
    func testVectorFileMutations() throws {
        let fixtures = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/vectors")
        let names = ["cvgen_happy.gguf", "repeng_calm.gguf", "evil_response_avg_diff.pt", "humorous_prompt_last_diff.pt",
                     "python_written.safetensors"]
        let corpus = try names.map { ($0, [UInt8](try Data(contentsOf: fixtures.appendingPathComponent($0)))) }
        let others = corpus.map(\.1)
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-vectors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var rng = FuzzRNG(seed: FuzzMutator.seed(0x7EC7_5EED))
        var tally = FuzzTally()
        for i in 0 ..< FuzzMutator.iterations(1500) {
            let (name, orig) = rng.pick(corpus)
            let url = work.appendingPathComponent(name)   // same name: the .pt trait/method come from it
            try Data(FuzzMutator.mutated(orig, rng: &rng, others: others)).write(to: url)
            let numLayers: Int? = rng.chance(2) ? nil : rng.pick([1, 2, 4, 8, 32, 4096, 1 << 20])
            if let p = tally.run(iteration: i, expectedTypes: [VectorError.self, FormatError.self], {
                let vs = try VectorFiles.load(url, numLayers: numLayers)
                for v in vs {
                    XCTAssertGreaterThan(v.rows.count, 0, "iteration \(i)")
                    XCTAssertTrue(v.rows.allSatisfy { $0.count == v.hiddenSize }, "iteration \(i): ragged rows")
                    XCTAssertTrue(v.rows.allSatisfy { $0.allSatisfy(\.isFinite) }, "iteration \(i): non-finite value accepted")
                    if let n = numLayers { XCTAssertEqual(v.numLayers, n, "iteration \(i)") }
                }
            }) { XCTFail("iteration \(i): \(p)") }
        }
        XCTAssertGreaterThan(tally.refused, 0, "\(tally)")
        XCTAssertGreaterThan(tally.ok, 0, "\(tally)")
        XCTAssertLessThan(tally.slowest, 5, "one file took too long: \(tally)")
        print("fuzz vector files: \(tally)")
    }
}
