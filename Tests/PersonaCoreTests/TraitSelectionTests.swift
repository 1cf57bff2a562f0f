import Foundation
import PersonaCore
import PersonaGeneration
import PersonaModels
import XCTest

/// One vector per trait out of an extraction's file (three methods per trait), default rows that hold a
/// non-zero vector, and control vectors that steer as llama.cpp's --control-vector does.
final class TraitSelectionTests: XCTestCase {

    func vector(_ trait: String, _ method: String, rows: Int = 6, hidden: Int = 4, fill: Float = 1) -> TraitVector {
        TraitVector(trait: trait, method: method, rows: (0..<rows).map { r in (0..<hidden).map { Float(r + $0) * fill + 0.5 } })
    }

    /// What `persona extract` writes: evil.response_avg, evil.prompt_avg, evil.prompt_last.
    var extracted: [TraitVector] {
        [vector("evil", "prompt_avg"), vector("evil", "response_avg"), vector("evil", "prompt_last"), vector("happy", "controlvector")]
    }

    func testBareNameMeansResponseAvgAndMethodsAreSelectable() throws {
        let d = TraitSelection.defaults(extracted)
        XCTAssertEqual(d.map(\.trait), ["evil", "happy"])
        XCTAssertEqual(d.map(\.method), ["response_avg", "controlvector"])
        XCTAssertEqual(try TraitSelection.find("evil", in: extracted).method, "response_avg")
        let other = try TraitSelection.find("evil@prompt_avg", in: extracted)
        XCTAssertEqual([other.trait, other.method], ["evil@prompt_avg", "prompt_avg"])
        XCTAssertEqual(try TraitSelection.find("evil.prompt_last", in: extracted).method, "prompt_last")
        // naming the default method explicitly is the same vector under the same name
        XCTAssertEqual(try TraitSelection.find("evil@response_avg", in: extracted).trait, "evil")
        XCTAssertThrowsError(try TraitSelection.find("evil@median", in: extracted)) { e in
            XCTAssertTrue("\(e)".contains("no method 'median'") && "\(e)".contains("prompt_avg"), "\(e)")
        }
        XCTAssertThrowsError(try TraitSelection.find("calm", in: extracted, option: "--steer")) { e in
            XCTAssertTrue("\(e)".hasPrefix("--steer: no vector for trait 'calm'") && "\(e)".contains("evil (prompt_avg, response_avg, prompt_last)"), "\(e)")
        }
        // the selection feeds the monitor: no "given twice" for one file's three methods
        let chosen = try TraitSelection.select(["evil", "evil@prompt_avg"], from: extracted)
        XCTAssertNoThrow(try TraitMonitor(vectors: chosen, layers: .recommended, numLayers: 5, hiddenSize: 4, capacity: 4))
        let twice = try TraitSelection.select(["evil", "evil@response_avg"], from: extracted)
        XCTAssertThrowsError(try TraitMonitor(vectors: twice, layers: .recommended, numLayers: 5, hiddenSize: 4, capacity: 4))
    }

    func testDefaultRowsHoldANonZeroVectorAndZeroVectorsAreRefused() throws {
        // a control vector for a 5-block model holding direction.1...4: rows 0 and 1 are zero
        var v = vector("cv", "controlvector")
        v.rows[0] = [0, 0, 0, 0]
        v.rows[1] = [0, 0, 0, 0]
        XCTAssertEqual(v.numLayers, 5)
        XCTAssertEqual(v.defaultRow, 2, "a third of 5 blocks is row 1, which is zero: the nearest non-zero row")
        XCTAssertEqual(v.defaultSteeringRow, 3, "middle row (5 + 1) / 2")
        var w = vector("w", "response_avg", rows: 31)
        XCTAssertEqual(w.defaultSteeringRow, 15, "the middle of a 30-block model")
        w.steeringRow = 12
        XCTAssertEqual(w.defaultSteeringRow, 12, "a measured steering row wins")
        XCTAssertThrowsError(try TraitMonitor(vectors: [v], layers: .rows([1]), numLayers: 5, hiddenSize: 4, capacity: 4)) { e in
            XCTAssertTrue("\(e)".contains("zero at row 1") && "\(e)".contains("non-zero rows: 2-5"), "\(e)")
        }
        XCTAssertNoThrow(try TraitMonitor(vectors: [v], layers: .all, numLayers: 5, hiddenSize: 4, capacity: 4))
        v.rows = v.rows.map { $0.map { _ in 0 } }
        XCTAssertThrowsError(try TraitMonitor(vectors: [v], layers: .recommended, numLayers: 5, hiddenSize: 4, capacity: 4))
    }

    /// stories260K (5 blocks) with a control vector holding direction.1...4, as llama.cpp's cvector tools write for
    /// it: monitoring without --layers scores a non-zero row, and steering without @row adds coef * direction.N to
    /// block N's output for every N, the last one before the final norm, exactly as explicit interventions do.
    func testControlVectorSteersEveryDirectionAtItsBlock() throws {
        let stories = try sharedFolder().appendingPathComponent("models/stories260K/stories260K.gguf")
        guard FileManager.default.fileExists(atPath: stories.path) else { throw XCTSkip("\(stories.path) not present") }
        let loaded = try ModelLoader.load(path: stories.path)
        let L = loaded.config.numLayers, D = loaded.config.hiddenSize
        XCTAssertEqual(L, 5)
        var rng = SeededRandom(seed: 7)
        let rows = (0...L).map { r in (0..<D).map { _ in r < 2 ? Float(0) : Float(rng.nextUnit() * 2 - 1) * 0.2 } }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("cv-\(UUID().uuidString).gguf")
        defer { try? FileManager.default.removeItem(at: file) }
        try VectorFiles.exportControlVector(TraitVector(trait: "cv", method: "response_avg", rows: rows), rows: [2, 3, 4, 5],
                                            modelHint: "llama", to: file)
        let cv = try VectorFiles.load(file, numLayers: L)[0]
        XCTAssertTrue(cv.isControlVector)
        XCTAssertEqual(Steering.rows(SteeringSpec(trait: "cv", coef: 1), cv), [2, 3, 4, 5])

        let session = try MonitorSession(loaded: loaded, vectors: [cv])
        var req = MonitorRequest(prompt: "Once upon a time", options: GenerationOptions(maxTokens: 12, stopAtEOS: false))
        req.raw = true
        let plain = try session.run(req)
        XCTAssertEqual(plain.layers?["cv"], 2)
        XCTAssertTrue(plain.traitScores["cv"]!.allSatisfy { $0 != 0 }, "scores at a non-zero row")
        let coef: Float = 3
        req.steering = [SteeringSpec(trait: "cv", coef: coef)]
        let steered = try session.run(req)
        XCTAssertNil(steered.steering?.first?.layer, "every direction, no single row")

        // Independent: the same additions written as interventions on blocks.N.hook_resid_post, N = 1...4.
        let hooks = HookSet((1...4).map { n in Intervention(.residPost(n), .add(vector: rows[n + 1], coef: coef)) })
        let gen = Generator(loaded)
        let expected = try gen.generate(promptIds: try gen.promptIds(for: "Once upon a time", raw: true),
                                        options: GenerationOptions(maxTokens: 12, stopAtEOS: false), hooks: hooks)
        XCTAssertEqual(steered.tokenIds, expected.tokenIds)
        XCTAssertNotEqual(steered.tokenIds, plain.tokenIds, "the control vector changes the text")
    }
}
