import Foundation
import XCTest
@testable import PersonaRuns

final class RunDocumentTests: XCTestCase {
    func sampleRun() -> RunDocument {
        var r = RunDocument(id: "run-1", created: "2026-11-27T01:02:03Z",
                            model: ModelRef(id: "stories260K", path: "/m", architecture: "llama", numLayers: 5, hiddenSize: 64),
                            prompt: "Once upon a time", promptText: "<s>Once upon a time", response: " there was",
                            tokens: [" there", " was"], tokenIds: [403, 407],
                            traitScores: ["happy": [0.5, -0.25], "sad": [1, 2]],
                            layers: ["happy": 3, "sad": 3], hookPoints: ["happy": "blocks.2.hook_resid_post", "sad": "blocks.2.hook_resid_post"])
        r.promptTokens = ["<s>", "Once"]
        r.promptTokenIds = [1, 9]
        r.promptScores = ["happy": [0, 0.1], "sad": [0.2, 0.3]]
        r.perLayer = ["happy": Array(repeating: [0.1, 0.2], count: 6)]
        r.cosine = ["happy": [0.01, -0.02]]
        r.residNorm = [3, 4]
        r.logprobs = [-0.5, -1.25]
        r.topK = [[TopKEntry(id: 403, token: " there", logprob: -0.5)], [TopKEntry(id: 407, token: " was", logprob: -1.25)]]
        r.decisionPoints = ["happy": [DecisionPoint(index: 1, kind: .fall, method: "cusum", score: -2.5)]]
        r.steering = [SteeringRecord(trait: "happy", coef: 1.5, layer: 3, positions: "response", mode: "add", when: "happy>0.5")]
        r.stats = ["happy": TraitStats(mean: 0.125, std: 0.375, min: -0.25, max: 0.5)]
        r.correlations = Correlations(traits: ["happy", "sad"], matrix: [[1, -1], [-1, 1]])
        r.metadata["temperature"] = 0
        return r
    }

    func testRoundTripKeepsEveryField() throws {
        let r = sampleRun()
        try r.validate()
        let back = try JSONDecoder().decode(RunDocument.self, from: r.jsonData())
        XCTAssertEqual(back, r)
    }

    func testWritesSnakeCaseKeysAndProjectionsCopy() throws {
        let obj = try JSONSerialization.jsonObject(with: sampleRun().jsonData()) as! [String: Any]
        for k in ["schema", "trait_scores", "projections", "prompt_text", "token_ids", "prompt_token_ids", "hook_points",
                  "per_layer", "resid_norm", "top_k", "decision_points", "prompt_scores"] {
            XCTAssertNotNil(obj[k], k)
        }
        XCTAssertEqual(obj["schema"] as? String, "personascope.run/1")
        XCTAssertEqual((obj["model"] as? [String: Any])?["num_layers"] as? Int, 5)
        XCTAssertEqual((obj["projections"] as? [String: [Double]])?["happy"], [0.5, -0.25])
        let noProj = try JSONSerialization.jsonObject(with: sampleRun().jsonData(writeProjections: false)) as! [String: Any]
        XCTAssertNil(noProj["projections"])
        XCTAssertNotNil(noProj["trait_scores"])
    }

    func testSortedKeysOutputIsDeterministic() throws {
        let a = try sampleRun().jsonData(sortedKeys: true)
        let b = try sampleRun().jsonData(sortedKeys: true)
        XCTAssertEqual(a, b)
        let text = String(decoding: a, as: UTF8.self)
        let ci = try XCTUnwrap(text.range(of: "\"correlations\"")), ti = try XCTUnwrap(text.range(of: "\"tokens\""))
        XCTAssertLessThan(ci.lowerBound, ti.lowerBound)
    }

    func testUnknownKeysAreKeptAndProjectionsAcceptedAsScores() throws {
        let json = """
        {"schema": "personascope.run/1", "id": "x", "prompt": "p", "response": "ab", "tokens": ["a", "b"],
         "projections": {"evil": [1, 2]}, "future_field": {"nested": [1, "two", null, true]}, "metadata": {"layer": 20}}
        """
        let r = try JSONDecoder().decode(RunDocument.self, from: Data(json.utf8))
        XCTAssertEqual(r.traitScores["evil"], [1, 2])
        XCTAssertEqual(r.extras["future_field"], .object(["nested": .array([1, "two", .null, true])]))
        XCTAssertEqual(r.metadata["layer"]?.intValue, 20)
        let again = try JSONSerialization.jsonObject(with: r.jsonData()) as! [String: Any]
        XCTAssertNotNil(again["future_field"])
        try r.validate()
    }

    func testValidationNamesTheField() {
        func message(_ edit: (inout RunDocument) -> Void) -> String? {
            var r = sampleRun()
            edit(&r)
            do { try r.validate(); return nil } catch { return (error as? RunError)?.message }
        }
        XCTAssertNil(message { _ in })
        XCTAssertEqual(message { $0.traitScores["happy"] = [1] }, "trait_scores.happy has 1 values but tokens has 2")
        XCTAssertEqual(message { $0.tokenIds = [1, 2, 3] }, "token_ids has 3 values but tokens has 2")
        XCTAssertEqual(message { $0.traitScores["sad"] = [1, .nan] }, "trait_scores.sad[1] is not a finite number")
        XCTAssertEqual(message { $0.promptScores = ["happy": [1]] }, "prompt_scores.happy has 1 values but prompt_tokens has 2")
        XCTAssertEqual(message { $0.perLayer = ["happy": [[1, 2]]] },
                       "per_layer.happy has 1 rows but the model has 5 layers (expected 6 rows)")
        XCTAssertEqual(message { $0.logprobs = [0.5, -1] }, "logprobs[0] is 0.5; a log-probability must be <= 0")
        XCTAssertEqual(message { $0.topK = [] }, "top_k has 0 entries but tokens has 2")
        XCTAssertEqual(message { $0.decisionPoints = ["happy": [DecisionPoint(index: 2, kind: .rise, method: "cusum", score: 1)]] },
                       "decision_points.happy[0].index is 2 but tokens has 2")
        XCTAssertEqual(message { $0.steering = [SteeringRecord(trait: "happy", coef: 1, positions: "middle")] },
                       "steering[0].positions is \"middle\"; expected all, prompt or response")
        XCTAssertEqual(message { $0.correlations = Correlations(traits: ["a"], matrix: [[1, 0]]) },
                       "correlations.matrix[0] has 2 values but correlations.traits has 1")
        XCTAssertEqual(message { $0.layers = ["happy": -1] }, "layers.happy is -1; a hidden-state row must be >= 0")
        XCTAssertEqual(message { $0.id = "" }, #"id: "" is not 1-200 ASCII letters, digits, '-', '_' or '.'"#)
        // the API cannot name such a run in its URLs, so it used to be listed yet never opened, exported or deleted
        XCTAssertEqual(message { $0.id = "../../x" }, #"id: "../../x" is not 1-200 ASCII letters, digits, '-', '_' or '.'"#)
        XCTAssertEqual(message { $0.id = "caf\u{e9}" }, #"id: "café" is not 1-200 ASCII letters, digits, '-', '_' or '.'"#)
        XCTAssertEqual(message { $0.tokenIds = [1, -2] }, "token_ids[1] is -2; a token id must be >= 0")
        XCTAssertEqual(message { $0.schema = "personascope.run/2" },
                       "schema: \"personascope.run/2\" is newer than this version understands (personascope.run/1)")
        XCTAssertEqual(message { $0.schema = "other/1" },
                       "schema: \"other/1\" is not a run document schema (expected \"personascope.run/1\")")
    }

    func testSchemaVersionParsing() {
        XCTAssertEqual(RunDocument.schemaVersion("personascope.run/1"), 1)
        XCTAssertEqual(RunDocument.schemaVersion("personascope.run/1.3"), 1)
        XCTAssertEqual(RunDocument.schemaVersion("personascope.run/12"), 12)
        XCTAssertNil(RunDocument.schemaVersion("personascope.run/"))
        XCTAssertNil(RunDocument.schemaVersion("personascope.run/0"))
        XCTAssertNil(RunDocument.schemaVersion("trait-interp"))
    }

    func testWrongTypesAreDecodingErrorsNotCrashes() {
        for bad in [#"{"schema":"personascope.run/1","tokens":"abc","trait_scores":{}}"#,
                    #"{"schema":"personascope.run/1","tokens":["a"],"trait_scores":{"x":["no"]}}"#,
                    #"{"schema":"personascope.run/1","tokens":["a"],"trait_scores":{"x":[1]},"layers":{"x":1.5}}"#] {
            XCTAssertThrowsError(try RunImport.load(data: Data(bad.utf8), source: "bad.json")) { e in
                XCTAssertTrue("\(e)".hasPrefix("bad.json"), "\(e)")
            }
        }
    }
}
