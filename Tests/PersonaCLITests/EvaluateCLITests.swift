import Foundation
import XCTest
import PersonaCore
@testable import PersonaTestSupport

/// `persona evaluate steering` on SmolLM2 through the binary: a deterministic judge double for the numbers (every
/// score is a known function of the judge prompt, so the per-setting means and the choice can be recomputed here),
/// `persona serve` as the OpenAI-compatible judge for the plumbing, and `--steer trait:auto` reproducing the choice.
final class EvaluateCLITests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try Repository.temporaryDirectory("evaluate") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func persona(_ args: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        try Subprocess.run(try Subprocess.personaBinary(besides: Self.self), args)
    }

    /// The double's score for a judge prompt: a hash of its text, 0...100 for trait prompts, 40...100 for coherence.
    static func score(_ prompt: String) -> Int {
        let h = prompt.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }
        return prompt.contains("You are grading how well-formed") ? 40 + Int(h % 61) : Int(h % 101)
    }

    func lines(_ url: URL) throws -> [[String: Any]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testSweepWithAJudgeDoubleChoosesAndAutoSteeringReproducesIt() throws {
        let model = try Repository.smolLM2.path
        let vectors = dir.appendingPathComponent("vectors")
        try FileManager.default.copyItem(at: Repository.root.appendingPathComponent("examples/vectors/smollm2"), to: vectors)
        let judge = try TinyHTTPServer { _, body in
            let obj = (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
            let prompt = ((obj?["messages"] as? [[String: Any]])?.first?["content"] as? String) ?? ""
            return .init(body: TinyHTTPServer.completion([(String(Self.score(prompt)), 0)]))
        }
        defer { judge.stop() }
        let out = dir.appendingPathComponent("sweep")
        let r = try persona(["evaluate", "steering", "--model", model, "--vectors", vectors.path, "--trait", "evil",
                             "--questions", "2", "--rows", "12,18", "--coefs", "2,4", "--max-tokens", "12",
                             "--judge", "openai", "--judge-base-url", judge.baseURL.absoluteString, "--judge-model", "double",
                             "--coherence-threshold", "70", "--write-vector", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)

        // Recompute every number from the answers and the double's rule.
        let evil = try BuiltinTraits.resolve("evil")
        let questions = Array(evil.evalQuestions.prefix(2))
        let samples = try lines(out.appendingPathComponent("samples.jsonl"))
        XCTAssertEqual(samples.count, 2 * 5)
        var trait: [String: [Double]] = [:], coherence: [String: [Double]] = [:]
        for s in samples {
            let q = try XCTUnwrap(s["question"] as? Int), answer = try XCTUnwrap(s["answer"] as? String)
            let cell = try XCTUnwrap(s["cell"] as? [String: Any])
            let key = "\(cell["row"] as? Int ?? -1)/\((cell["coef"] as? NSNumber)?.doubleValue ?? .nan)"
            trait[key, default: []].append(Double(Self.score(try JudgePrompt.fill(evil.evalPrompt, question: questions[q], answer: answer))))
            coherence[key, default: []].append(Double(Self.score(try JudgePrompt.fill(JudgePrompt.coherence, question: questions[q], answer: answer))))
        }
        func mean(_ x: [Double]) -> Double { x.reduce(0, +) / Double(x.count) }
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("sweep.json"))) as? [String: Any])
        XCTAssertEqual(summary["judged"] as? Bool, true)
        let baseTrait = mean(try XCTUnwrap(trait["0/0.0"]))
        var best: (effect: Double, row: Int, coef: Double)? = nil
        let cells = try XCTUnwrap(summary["cells"] as? [[String: Any]])
        XCTAssertEqual(cells.count, 4)
        for c in cells {
            let row = try XCTUnwrap(c["row"] as? Int), coef = try XCTUnwrap((c["coef"] as? NSNumber)?.doubleValue)
            let key = "\(row)/\(coef)"
            let t = mean(try XCTUnwrap(trait[key])), h = mean(try XCTUnwrap(coherence[key]))
            XCTAssertEqual(try XCTUnwrap((c["trait"] as? NSNumber)?.doubleValue), t, accuracy: 1e-9, key)
            XCTAssertEqual(try XCTUnwrap((c["coherence"] as? NSNumber)?.doubleValue), h, accuracy: 1e-9, key)
            XCTAssertEqual(try XCTUnwrap((c["effect"] as? NSNumber)?.doubleValue), t - baseTrait, accuracy: 1e-9, key)
            XCTAssertEqual(c["coherent"] as? Bool, h >= 70, key)
            if h >= 70, t - baseTrait > 0, t - baseTrait > (best?.effect ?? 0) { best = (t - baseTrait, row, coef) }
        }
        let chosen = summary["chosen"] as? [String: Any]
        XCTAssertEqual(chosen?["row"] as? Int, best?.row)
        XCTAssertEqual((chosen?["coef"] as? NSNumber)?.doubleValue, best?.coef)
        for f in ["sweep.csv", "heatmap.svg"] { XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f) }
        XCTAssertEqual(judge.requests.count, 2 * samples.count, "one trait and one coherence request per answer")

        // A rerun resumes: nothing is generated or judged again.
        let again = try persona(["evaluate", "steering", "--model", model, "--vectors", vectors.path, "--trait", "evil",
                                 "--questions", "2", "--rows", "12,18", "--coefs", "2,4", "--max-tokens", "12",
                                 "--judge", "openai", "--judge-base-url", judge.baseURL.absoluteString, "--judge-model", "double", "--out", out.path])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("resuming: 10 of 10"), again.stderr)
        XCTAssertEqual(judge.requests.count, 2 * samples.count)

        // With these answers the double's scores give a coherent rise (checked once: the hash is fixed, generation greedy).
        guard let best else { return XCTFail("no coherent setting rose: the --write-vector / auto half was not exercised") }
        // The choice is in the vector file, and --steer evil:auto steers exactly there.
        let file = vectors.appendingPathComponent("evil.safetensors")
        let v = try XCTUnwrap(try VectorFiles.load(file).first { $0.trait == "evil" && $0.method == "response_avg" })
        XCTAssertEqual(v.steeringRow, best.row)
        XCTAssertEqual(v.steeringCoef.map(Double.init), best.coef)
        let run = dir.appendingPathComponent("auto.json")
        let m = try persona(["monitor", "--model", model, "--vectors", vectors.path, "--traits", "evil", "--prompt", questions[0],
                             "--max-tokens", "12", "--temperature", "0", "--steer", "evil:auto", "--out", run.path])
        XCTAssertEqual(m.status, 0, m.stderr)
        let doc = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: run)) as? [String: Any])
        let swept = try XCTUnwrap(samples.first { s in
            let cell = s["cell"] as? [String: Any]
            return s["question"] as? Int == 0 && cell?["row"] as? Int == best.row && (cell?["coef"] as? NSNumber)?.doubleValue == best.coef
        })
        XCTAssertEqual(doc["response"] as? String, swept["answer"] as? String)
    }

    /// Plumbing: `persona serve` on SmolLM2 is the judge (its answers are whatever a 135M model says).
    func testSweepJudgedByPersonaServe() throws {
        let model = try Repository.smolLM2.path
        let binary = try Subprocess.personaBinary(besides: Self.self)
        let port = 18_900 + Int.random(in: 0..<80)
        let serve = Process()
        serve.executableURL = binary
        serve.arguments = ["serve", "--model", model, "--port", String(port), "--runs", dir.appendingPathComponent("runs").path]
        serve.standardOutput = FileHandle.nullDevice
        serve.standardError = FileHandle.nullDevice
        try serve.run()
        defer { serve.terminate(); serve.waitUntilExit() }
        var up = false
        for _ in 0..<60 where !up {
            up = (try? rawHTTP(port: port, "GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", timeout: 2).0) == 200
            if !up { Thread.sleep(forTimeInterval: 0.5) }
        }
        XCTAssertTrue(up, "persona serve did not start")
        let out = dir.appendingPathComponent("sweep")
        let r = try persona(["evaluate", "steering", "--model", model, "--vectors", Repository.root.appendingPathComponent("examples/vectors/smollm2").path,
                             "--trait", "evil", "--questions", "1", "--rows", "15", "--coefs", "3", "--max-tokens", "8",
                             "--judge", "openai", "--judge-base-url", "http://127.0.0.1:\(port)/v1", "--judge-model", "smollm2", "--out", out.path])
        XCTAssertEqual(r.status, 0, r.stderr)
        let judgments = try lines(out.appendingPathComponent("judgments.jsonl"))
        XCTAssertEqual(judgments.count, 2)
        XCTAssertTrue(judgments.allSatisfy { $0["judge"] as? String == "smollm2" })
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("sweep.json"))) as? [String: Any])
        XCTAssertEqual(summary["judged"] as? Bool, true)
    }
}
