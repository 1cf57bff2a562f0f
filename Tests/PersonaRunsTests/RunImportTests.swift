import Foundation
import XCTest
@testable import PersonaRuns

/// Imports the per-token project's result files (../shared/reference/trait-interp/pertoken_results) and exports them back.
final class RunImportTests: XCTestCase {
    let dir = "reference/trait-interp/pertoken_results/"

    /// The file as parsed by Foundation's JSONSerialization, independently of our decoder.
    func raw(_ name: String) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(contentsOf: requireShared(dir + name)))
    }

    func testPilotResults() throws {
        let runs = try RunImport.load(url: requireShared(dir + "pilot_results.json"))
        let entries = try XCTUnwrap(raw("pilot_results.json") as? [[String: Any]])
        XCTAssertEqual(runs.count, 18)
        XCTAssertEqual(runs.count, entries.count)
        for (run, e) in zip(runs, entries) {
            XCTAssertEqual(run.prompt, e["prompt"] as? String)
            XCTAssertEqual(run.response, e["response"] as? String)
            XCTAssertEqual(run.tokens, e["tokens"] as? [String])
            // Foundation's JSONSerialization on Linux misreads some decimals by an ulp or two, hence the tolerance.
            assertClose(run.traitScores, try XCTUnwrap(e["projections"] as? [String: [Double]]))
            XCTAssertEqual(run.traitNames, ["evil", "hallucinating", "sycophantic"])
            XCTAssertEqual(run.layers, ["evil": 20, "hallucinating": 20, "sycophantic": 20])
            XCTAssertEqual(run.hookPoints?["evil"], "blocks.19.hook_resid_post")
            XCTAssertEqual(run.metadata["convention"]?.stringValue, RunDocument.importedConvention)
            XCTAssertEqual(run.metadata["num_tokens"]?.intValue, run.tokens.count)
            XCTAssertNotNil(run.extras["evil_running_avg_5"])
            XCTAssertNoThrow(try run.validate())
        }
        // First entry, as printed by Python's json: prompt 'How do I write good Python code?', evil[0] = -1.3466796875.
        XCTAssertEqual(runs[0].prompt, "How do I write good Python code?")
        XCTAssertEqual(runs[0].traitScores["evil"]?.first, -1.3466796875)
        XCTAssertEqual(Set(runs.map(\.id)).count, runs.count, "ids are unique")
    }

    func assertClose(_ a: [String: [Double]], _ b: [String: [Double]], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted(), file: file, line: line)
        for (k, xs) in a {
            let ys = b[k] ?? []
            XCTAssertEqual(xs.count, ys.count, k, file: file, line: line)
            for i in 0..<min(xs.count, ys.count) where abs(xs[i] - ys[i]) > 1e-15 * max(1, abs(ys[i])) {
                XCTFail("\(k)[\(i)]: \(xs[i]) vs \(ys[i])", file: file, line: line)
                return
            }
        }
    }

    func testImportIdsAreStable() throws {
        let url = try requireShared(dir + "contaminated_results.json")
        let a = try RunImport.load(url: url), b = try RunImport.load(url: url)
        XCTAssertEqual(a.count, 10)
        XCTAssertEqual(a.map(\.id), b.map(\.id))
        XCTAssertNotNil(UUID(uuidString: a[0].id), "id is UUID-shaped: \(a[0].id)")
    }

    func testLayerComparisonObjectOfLists() throws {
        let runs = try RunImport.load(url: requireShared(dir + "layer_comparison.json"))
        let obj = try XCTUnwrap(raw("layer_comparison.json") as? [String: [[String: Any]]])
        XCTAssertEqual(runs.count, obj.values.map(\.count).reduce(0, +))
        XCTAssertEqual(runs.count, 18)  // layer_16, layer_20, layer_24 with 6 each; layer_28 is empty
        for group in ["layer_16", "layer_20", "layer_24"] {
            let rs = runs.filter { $0.metadata["group"]?.stringValue == group }
            XCTAssertEqual(rs.count, 6, group)
            let layer = Int(group.dropFirst("layer_".count))!
            for r in rs { XCTAssertEqual(r.layers?["evil"], layer) }
            XCTAssertEqual(rs.map(\.tokens), obj[group]!.map { $0["tokens"] as! [String] })
        }
    }

    func testAnalysisSummaryIsNotARunFile() throws {
        XCTAssertThrowsError(try RunImport.load(url: requireShared(dir + "analysis_summary.json"))) { e in
            let m = "\(e)"
            XCTAssertTrue(m.hasPrefix("analysis_summary.json: not a run file"), m)
            XCTAssertTrue(m.contains("total_prompts"), m)
        }
    }

    /// Their `<trait>_running_avg_N` columns (computed by their code) equal our running average.
    func testRunningAverageMatchesTheirColumns() throws {
        var checked = 0
        for name in ["pilot_results.json", "contaminated_results.json"] {
            for run in try RunImport.load(url: requireShared(dir + name)) {
                for (key, value) in run.extras {
                    guard let r = key.range(of: "_running_avg_"), let w = Int(key[r.upperBound...]),
                          let theirs = value.doubleArray, let xs = run.traitScores[String(key[..<r.lowerBound])] else { continue }
                    let ours = RunStats.runningAverage(xs, window: w)
                    XCTAssertEqual(ours.count, theirs.count)
                    for i in ours.indices { XCTAssertEqual(ours[i], theirs[i], accuracy: 1e-9, "\(name) \(key)[\(i)]") }
                    checked += 1
                }
            }
        }
        XCTAssertEqual(checked, 18 * 6 + 10 * 3)
    }

    func testExportBackToTheirShapeKeepsTheirContent() throws {
        for name in ["pilot_results.json", "contaminated_results.json"] {
            let runs = try RunImport.load(url: requireShared(dir + name))
            let exported = try XCTUnwrap(JSONSerialization.jsonObject(with: RunExport.perTokenProject(runs)) as? [[String: Any]])
            let original = try XCTUnwrap(raw(name) as? [[String: Any]])
            XCTAssertEqual(exported.count, original.count)
            for (e, o) in zip(exported, original) {
                for (k, v) in o where k != "metadata" {
                    XCTAssertEqual(e[k] as? NSObject, v as? NSObject, "\(name) key \(k)")
                }
                let em = try XCTUnwrap(e["metadata"] as? [String: Any]), om = try XCTUnwrap(o["metadata"] as? [String: Any])
                for (k, v) in om { XCTAssertEqual(em[k] as? NSObject, v as? NSObject, "\(name) metadata.\(k)") }
            }
            // And what we wrote imports again to the same scores.
            let again = try RunImport.load(data: RunExport.perTokenProject(runs), source: "export.json")
            XCTAssertEqual(again.map(\.traitScores), runs.map(\.traitScores))
            XCTAssertEqual(again.map(\.tokens), runs.map(\.tokens))
        }
    }

    func testExportOfOurRunAddsTheirKeys() throws {
        let run = RunDocument(id: "r", prompt: "p", response: "ab", tokens: ["a", "b"],
                              traitScores: ["happy": [1, 3]], layers: ["happy": 3])
        let e = try XCTUnwrap(JSONSerialization.jsonObject(with: RunExport.perTokenProject([run])) as? [[String: Any]]).first
        let meta = try XCTUnwrap(e?["metadata"] as? [String: Any])
        XCTAssertEqual(meta["num_tokens"] as? Int, 2)
        XCTAssertEqual(meta["layer"] as? Int, 3)
        XCTAssertEqual(meta["personas"] as? [String], ["happy"])
        XCTAssertEqual(meta["convention"] as? String, RunDocument.ownConvention)
        XCTAssertEqual((e?["projections"] as? [String: [Double]])?["happy"], [1, 3])
        XCTAssertEqual(e?["happy_running_avg_10"] as? [Double], [1, 2])
    }

    func testOwnFilesSingleObjectAndList() throws {
        let run = RunDocument(id: "abc", prompt: "p", response: "ab", tokens: ["a", "b"], traitScores: ["happy": [1, 3]])
        let one = try RunImport.load(data: run.jsonData(), source: "one.json")
        XCTAssertEqual(one, [run])
        let two = try RunImport.load(data: RunDocument.jsonData([run, run]), source: "two.json")
        XCTAssertEqual(two.count, 2)
        XCTAssertEqual(two[1].metadata["convention"]?.stringValue, RunDocument.ownConvention)
    }

    func testBadFilesGiveClearErrors() {
        func err(_ s: String) -> String {
            do { _ = try RunImport.load(data: Data(s.utf8), source: "f.json"); return "no error" } catch { return "\(error)" }
        }
        XCTAssertTrue(err("{not json").hasPrefix("f.json: not valid JSON"), err("{not json"))
        // a vector or model file given where a run belongs says what it is, not "not valid JSON"
        var st = Data([20, 0, 0, 0, 0, 0, 0, 0]); st.append(Data(#"{"__metadata__":{}}  "#.utf8))
        XCTAssertEqual(err(String(decoding: st, as: UTF8.self)), "f.json: a safetensors (trait vectors or weights) file, not a run JSON")
        XCTAssertEqual(err("GGUF\u{3}\0\0\0"), "f.json: a GGUF (model or control vector) file, not a run JSON")
        XCTAssertEqual(err("42"), "f.json: not a run file: the top level is neither an object nor a list")
        XCTAssertEqual(err(#"[{"prompt": "p"}]"#), #"f.json [0]: not a run: needs "tokens" and "trait_scores" or "projections" (or a "schema")"#)
        XCTAssertEqual(err(#"[{"tokens": ["a","b"], "projections": {"evil": [1]}}]"#),
                       "f.json [0]: trait_scores.evil has 1 values but tokens has 2")
        XCTAssertEqual(err(#"{"layer_1": [{"tokens": ["a"], "projections": {"evil": [1, 2]}}]}"#),
                       "f.json layer_1[0]: trait_scores.evil has 2 values but tokens has 1")
        XCTAssertTrue(err("{}").contains("not a run file"))
        XCTAssertEqual(try RunImport.load(data: Data("[]".utf8)), [])
        // valid JSON with a number that is not an integer where one belongs: Linux's decoder said "not valid JSON"
        let run = #"{"tokens": ["a", "b"], "trait_scores": {"evil": [1, 2]}, "#
        XCTAssertEqual(err(run + #""token_ids": [3, 1.5]}"#), "f.json: token_ids[1]: 1.5 is not an integer")
        XCTAssertEqual(err(run + #""layers": {"evil": 1e30}}"#), "f.json: layers.evil: 1e+30 is not an integer")
        XCTAssertEqual(err(run + #""top_k": [[{"id": 2.5, "token": "a", "logprob": -1}], []]}"#),
                       "f.json: top_k: a number in it is not an integer (ids, indexes and layers are)")
        XCTAssertEqual(err(run + #""token_ids": [3, -1]}"#), "f.json: token_ids[1] is -1; a token id must be >= 0")
    }

    func testCSV() {
        var run = RunDocument(id: "r", prompt: "p", response: "x", tokens: ["a,b", "say \"hi\"", "=1+1"], tokenIds: [5, 6, 7],
                              traitScores: ["z": [1, 2, 3], "a": [0.5, -0.5, 0]])
        run.logprobs = [-0.5, -1, -2]
        XCTAssertEqual(RunExport.csv(run), "index,token,token_id,logprob,a,z\r\n0,\"a,b\",5,-0.5,0.5,1.0\r\n"
                       + "1,\"say \"\"hi\"\"\",6,-1.0,-0.5,2.0\r\n2,'=1+1,7,-2.0,0.0,3.0\r\n")
        // Each of these is one Swift Character that equals none of "\r", "\n", "\"" or "=": RFC 4180 quoting (and
        // the formula guard) must still see them.
        var odd = RunDocument(id: "r", prompt: "p", response: "x", tokens: ["\r\n", "\"\u{301}", "=\u{301}1"], tokenIds: [1, 2, 3],
                              traitScores: ["a": [1, 2, 3]])
        odd.logprobs = [-1, -1, -1]
        XCTAssertEqual(RunExport.csv(odd), "index,token,token_id,logprob,a\r\n0,\"\r\n\",1,-1.0,1.0\r\n"
                       + "1,\"\"\"\u{301}\",2,-1.0,2.0\r\n2,'=\u{301}1,3,-1.0,3.0\r\n")
    }
}
