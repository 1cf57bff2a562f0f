import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import PersonaCore
import XCTest
@testable import PersonaTestSupport

/// The whole user journey through the built `persona` binary on the real chat model SmolLM2-135M-Instruct:
/// extract two traits -> monitor with the files extraction wrote -> steer at the default steering row (the
/// projection moves with the coefficient's sign and the text changes) -> export a llama.cpp control vector ->
/// monitor with it (same scores at an exported row) and steer with it -> `persona serve` with the vectors ->
/// an OpenAI chat completion with steering gives the CLI's text. Each step takes the previous step's output as a
/// user would. (The dashboard's steering slider is driven in a real browser by .ci/run, Scripts/browser_test.py.)
final class UserJourneyTests: XCTestCase {
    var model: URL!
    var bin: URL!
    var dir: URL!

    override func setUpWithError() throws {
        model = try sharedFolder().appendingPathComponent("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: model.path) else {
            throw XCTSkip("\(model.path) not present (set PERSONA_SHARED to the shared folder)")
        }
        bin = try Subprocess.personaBinary(besides: UserJourneyTests.self)
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("journey-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        if let dir { try? FileManager.default.removeItem(at: dir) }
    }

    /// Runs persona; fails the test (with stderr) on a non-zero exit.
    @discardableResult
    func persona(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> (stdout: String, stderr: String) {
        let r = try Subprocess.run(bin, args, environment: Subprocess.environment(merging: ["PERSONA_PROGRESS_SECONDS": "1"]))
        XCTAssertEqual(r.status, 0, "persona \(args.joined(separator: " ")):\n\(r.stderr)", file: file, line: line)
        return (r.stdout, r.stderr)
    }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func run(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent(name))) as! [String: Any]
    }

    func scores(_ run: [String: Any], _ trait: String) -> [Double] {
        ((run["trait_scores"] as? [String: Any])?[trait] as? [NSNumber])?.map(\.doubleValue) ?? []
    }

    func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(max(1, xs.count)) }

    static let question = "How should I deal with a coworker who keeps taking credit for my work?"

    func testExtractMonitorSteerExportServe() async throws {
        let m = model.path
        // 1. extract two traits, small: 2 questions x 5 instructions per side, short answers, no judge
        for trait in ["evil", "sycophantic"] {
            let r = try persona(["extract", "--model", m, "--trait", trait, "--judge", "none", "--questions", "2", "--eval-count", "2",
                                 "--max-tokens", "24", "--batch-size", "10", "--out", path(trait)])
            XCTAssertTrue(r.stderr.contains("responses") && r.stderr.contains("tok/s") && r.stderr.contains("ETA"),
                          "extraction shows progress on a non-terminal stderr:\n\(r.stderr)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: path("\(trait)/vectors.safetensors")))
        }
        let evilFile = path("evil/vectors.safetensors")
        let vectors = try VectorFiles.load(URL(fileURLWithPath: evilFile))
        XCTAssertEqual(Set(vectors.map(\.method)), ["response_avg", "prompt_avg", "prompt_last"])
        let evil = try TraitSelection.find("evil", in: vectors)
        XCTAssertEqual(evil.method, "response_avg")
        let steerRow = evil.defaultSteeringRow
        XCTAssertEqual(steerRow, 15, "the documented middle-depth default for a 30-block model")

        // 2. monitor with the file extraction wrote, with its folder, and with another method
        let common = ["--model", m, "--prompt", Self.question, "--max-tokens", "24", "--temperature", "0"]
        try persona(["monitor", "--vectors", evilFile] + common + ["--out", path("plain.json")])
        let plain = try run("plain.json")
        XCTAssertEqual((plain["trait_scores"] as? [String: Any])?.keys.sorted(), ["evil"])
        let base = scores(plain, "evil")
        XCTAssertEqual(base.count, (plain["tokens"] as? [Any])?.count)
        XCTAssertTrue(base.allSatisfy { $0.isFinite } && base.contains { $0 != 0 }, "real, non-zero scores: \(base)")
        try persona(["monitor", "--vectors", path("evil")] + common + ["--out", path("folder.json")])
        XCTAssertEqual(scores(try run("folder.json"), "evil"), base, "a run folder gives the same default vector")
        try persona(["monitor", "--vectors", evilFile, "--traits", "evil,evil@prompt_avg"] + common + ["--out", path("methods.json")])
        XCTAssertEqual((try run("methods.json")["trait_scores"] as? [String: Any])?.keys.sorted(), ["evil", "evil@prompt_avg"])
        // both traits from one folder of vector files, as `serve --vectors` takes them
        let vecs = dir.appendingPathComponent("vecs")
        try FileManager.default.createDirectory(at: vecs, withIntermediateDirectories: true)
        for t in ["evil", "sycophantic"] {
            try FileManager.default.copyItem(atPath: path("\(t)/vectors.safetensors"), toPath: vecs.appendingPathComponent("\(t).safetensors").path)
        }
        try persona(["monitor", "--vectors", vecs.path] + common + ["--out", path("both.json")])
        XCTAssertEqual((try run("both.json")["trait_scores"] as? [String: Any])?.keys.sorted(), ["evil", "sycophantic"])

        // 3. steering at the default steering row moves the projection with the coefficient's sign and changes the text
        var means: [Double: Double] = [0: mean(base)]
        for coef in [-2.0, 2.0] {
            try persona(["monitor", "--vectors", evilFile, "--steer", "evil:\(coef)"] + common + ["--out", path("steer\(coef).json")])
            let r = try run("steer\(coef).json")
            means[coef] = mean(scores(r, "evil"))
            XCTAssertNotEqual(r["response"] as? String, plain["response"] as? String, "steering evil by \(coef) changes the text")
            let rec = (r["steering"] as? [[String: Any]])?.first
            XCTAssertEqual(rec?["layer"] as? Int, steerRow, "the run records the row it steered")
        }
        XCTAssertLessThan(means[-2]!, means[0]!, "negative steering lowers the evil projection: \(means)")
        XCTAssertGreaterThan(means[2]!, means[0]!, "positive steering raises the evil projection: \(means)")

        // 4. export to a llama.cpp control vector; monitoring it at an exported row gives the same scores
        try persona(["convert", evilFile, "--to", "control-vector", "--out", path("evil.gguf")])
        let row = "20"
        try persona(["monitor", "--vectors", evilFile, "--layers", row] + common + ["--out", path("row-st.json")])
        try persona(["monitor", "--vectors", path("evil.gguf"), "--layers", row] + common + ["--out", path("row-cv.json")])
        let (a, b) = (scores(try run("row-st.json"), "evil"), scores(try run("row-cv.json"), "evil"))
        XCTAssertEqual(a.count, b.count)
        XCTAssertFalse(a.isEmpty)
        for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(x)), "control vector scores at row \(row)") }
        // a negative coefficient is a value, not an option: the file holds -2 v at the exported rows
        try persona(["convert", evilFile, "--to", "control-vector", "--coef", "-2", "--rows", row, "--out", path("evil-neg.gguf")])
        let original = try XCTUnwrap(VectorFiles.load(URL(fileURLWithPath: evilFile)).first { $0.method == "response_avg" })
        let negated = try XCTUnwrap(VectorFiles.load(URL(fileURLWithPath: path("evil-neg.gguf"))).first)
        XCTAssertEqual(negated.rows[Int(row)!].count, original.rows[Int(row)!].count)
        for (x, y) in zip(negated.rows[Int(row)!], original.rows[Int(row)!]) { XCTAssertEqual(x, -2 * y) }
        // --rows takes ranges as evaluate's does; a row past the model names --rows (it named the output file)
        try persona(["convert", evilFile, "--to", "control-vector", "--rows", "19-21,25", "--out", path("evil-range.gguf")])
        let ranged = try XCTUnwrap(VectorFiles.load(URL(fileURLWithPath: path("evil-range.gguf"))).first)
        XCTAssertEqual(ranged.rows.indices.filter { ranged.rows[$0].contains { $0 != 0 } }, [19, 20, 21, 25])
        for r in [19, 20, 21, 25] { XCTAssertEqual(ranged.rows[r], original.rows[r]) }
        let past = try Subprocess.run(bin, ["convert", evilFile, "--to", "control-vector", "--rows", "40", "--out", path("x.gguf")])
        XCTAssertNotEqual(past.status, 0)
        XCTAssertTrue(past.stderr.contains("--rows: row 40 is outside 2...30"), past.stderr)
        // one parser with evaluate's --rows: a range with an end missing is refused, not read as its one number
        let open = try Subprocess.run(bin, ["convert", evilFile, "--to", "control-vector", "--rows=5-", "--out", path("x.gguf")])
        XCTAssertNotEqual(open.status, 0)
        XCTAssertTrue(open.stderr.contains("--rows: '5-' is not a row or a range a-b"), open.stderr)
        // another method by name; a folder of two traits needs --trait
        try persona(["convert", evilFile, "--to", "control-vector", "--trait", "evil@prompt_avg", "--out", path("evil-prompt.gguf")])
        XCTAssertEqual(try VectorFiles.load(URL(fileURLWithPath: path("evil-prompt.gguf"))).first?.method, "prompt_avg")
        let both = try Subprocess.run(bin, ["convert", vecs.path, "--to", "control-vector", "--out", path("x.gguf")])
        XCTAssertNotEqual(both.status, 0)
        XCTAssertTrue(both.stderr.contains("choose one with --trait"), both.stderr)
        // a control vector without @layer steers every direction at its block, as llama.cpp's --control-vector
        try persona(["monitor", "--vectors", path("evil.gguf"), "--layers", row, "--steer", "evil:0.3"] + common + ["--out", path("cv-steer.json")])
        let cvSteer = try run("cv-steer.json")
        XCTAssertNotEqual(cvSteer["response"] as? String, plain["response"] as? String, "a control vector steers")
        XCTAssertNil((cvSteer["steering"] as? [[String: Any]])?.first?["layer"] as? Int, "no single row: every direction")

        // 5. serve the vectors; an OpenAI chat completion with steering gives the CLI's text
        let port = 21000 + Int(getpid() % 20000)
        let server = ServeProcess(binary: bin, port: port, runs: dir.appendingPathComponent("runs"), arguments: ["--model", m, "--vectors", vecs.path])
        try await server.start()
        defer { server.stop() }
        let baseURL = server.base
        let (td, _) = try await URLSession.shared.data(from: baseURL.appendingPathComponent("api/traits"))
        let traits = ((try? JSONSerialization.jsonObject(with: td)) as? [String: Any])?["traits"] as? [[String: Any]] ?? []
        XCTAssertEqual(traits.compactMap { $0["name"] as? String }.sorted(), ["evil", "sycophantic"], "one entry per trait")
        XCTAssertEqual(traits.first { $0["name"] as? String == "evil" }?["steering_layer"] as? Int, steerRow)
        var req = URLRequest(url: baseURL.appendingPathComponent("v1/chat/completions"))
        req.httpMethod = "POST"
        req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        req.httpBody = try JSONSerialization.data(withJSONObject: [
            "model": "smollm2", "messages": [["role": "user", "content": Self.question]], "temperature": 0, "max_tokens": 24,
            "persona": ["steer": [["trait": "evil", "coef": 2.0]]],
        ] as [String: Any])
        let (data, resp) = try await URLSession.shared.data(for: req)
        XCTAssertEqual((resp as? HTTPURLResponse)?.statusCode, 200, String(decoding: data, as: UTF8.self))
        let body = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        let text = ((body?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String
        XCTAssertEqual(text, try run("steer2.0.json")["response"] as? String, "the API's steered text equals the CLI's")

        // logit_bias reaches the sampler: +100 on one of the plain answer's tokens makes it every token, -100 on the
        // plain answer's first token makes the answer start otherwise
        let ids = try XCTUnwrap(plain["token_ids"] as? [Int]), toks = try XCTUnwrap(plain["tokens"] as? [String])
        func chat(_ extra: [String: Any]) async throws -> String {
            var r = URLRequest(url: baseURL.appendingPathComponent("v1/chat/completions"))
            r.httpMethod = "POST"
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
            r.httpBody = try JSONSerialization.data(withJSONObject: ["messages": [["role": "user", "content": Self.question]], "temperature": 0,
                                                                     "max_tokens": 4].merging(extra) { $1 })
            let (d, resp) = try await URLSession.shared.data(for: r)
            XCTAssertEqual((resp as? HTTPURLResponse)?.statusCode, 200, String(decoding: d, as: UTF8.self))
            let o = try JSONSerialization.jsonObject(with: d) as? [String: Any]
            return ((o?["choices"] as? [[String: Any]])?.first?["message"] as? [String: Any])?["content"] as? String ?? ""
        }
        let forced = try await chat(["logit_bias": [String(ids[2]): 100]])
        XCTAssertEqual(forced, String(repeating: toks[2], count: 4), "token \(ids[2]) \(toks[2].debugDescription) forced")
        let unplain = try await chat(["logit_bias": [String(ids[0]): -100]])
        XCTAssertFalse(unplain.hasPrefix(toks[0]), "\(unplain.debugDescription) still starts with \(toks[0].debugDescription)")

        // what the model cannot run is the request's error (400, saying why), not a 500 "internal error"
        for (messages, extra, needle) in [([["role": "user", "content": String(repeating: "word ", count: 9000)]], [String: Any](), "context length"),
                                          ([["role": "user", "content": "Hi"]], ["logit_bias": ["999999": 1]], "outside the vocabulary")] {
            var r = URLRequest(url: baseURL.appendingPathComponent("v1/chat/completions"))
            r.httpMethod = "POST"
            r.setValue("application/json", forHTTPHeaderField: "Content-Type")
            r.httpBody = try JSONSerialization.data(withJSONObject: ["messages": messages, "max_tokens": 4].merging(extra) { $1 })
            let (d, resp) = try await URLSession.shared.data(for: r)
            XCTAssertEqual((resp as? HTTPURLResponse)?.statusCode, 400, needle)
            XCTAssertTrue(String(decoding: d, as: UTF8.self).contains(needle), String(decoding: d, as: UTF8.self))
        }
    }
}
