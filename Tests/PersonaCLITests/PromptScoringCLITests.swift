import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import PersonaTestSupport

/// Prompt scoring through `persona serve`'s `/v1/completions` with `echo` (what lm-evaluation-harness's
/// loglikelihood tasks send): each prompt token's logprob against transformers' logits for the same ids, and,
/// on the real SmolLM2 with its shipped vectors, the echoed prompt's trait scores against `persona monitor
/// --include-prompt`'s, with and without steering.
final class PromptScoringCLITests: BinaryTestCase {
    override class var folderPrefix: String { "echo" }

    func post(_ base: URL, _ body: [String: Any]) async throws -> [String: Any] {
        var req = URLRequest(url: base.appendingPathComponent("v1/completions"))
        req.httpMethod = "POST"
        req.setValue("application/json", forHTTPHeaderField: "Content-Type")
        req.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, resp) = try await URLSession.shared.data(for: req)
        XCTAssertEqual((resp as? HTTPURLResponse)?.statusCode, 200, String(decoding: data, as: UTF8.self))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func choices(_ o: [String: Any]) throws -> [[String: Any]] { try XCTUnwrap(o["choices"] as? [[String: Any]]) }
    func logprobs(_ c: [String: Any]) throws -> [Double?] {
        try XCTUnwrap((c["logprobs"] as? [String: Any])?["token_logprobs"] as? [Any]).map { $0 as? Double }
    }

    func testEchoLogprobsMatchTransformersOnStories260K() async throws {
        let ref = try Reference(safetensors: TestPaths.fixtures.appendingPathComponent("stories260K.reference.safetensors"),
                                json: TestPaths.fixtures.appendingPathComponent("stories260K.reference.json"))
        let ids = ref.ints("input_ids")
        let (shape, logits) = try ref.floats("logits")
        let V = shape[1]
        let expected: [Double] = (1..<ids.count).map { p in
            let r = logits[((p - 1) * V)..<(p * V)].map(Double.init)
            let m = r.max()!
            return r[ids[p]] - m - Foundation.log(r.reduce(0) { $0 + Foundation.exp($1 - m) })
        }
        let port = 25000 + Int(getpid() % 20000)
        let server = ServeProcess(binary: try Subprocess.personaBinary(besides: Self.self), port: port,
                                  runs: dir.appendingPathComponent("runs"), arguments: ["--model", try TestPaths.stories260K.path])
        try await server.start()
        defer { server.stop() }

        // the reference's ids, its text (tokenized with BOS: the same ids), and a second prompt in the same request
        let o = try await post(server.base, ["prompt": [ids, [ids[0], ids[1]]], "max_tokens": 0, "logprobs": 1, "echo": true, "temperature": 0])
        let c = try choices(o)
        XCTAssertEqual(c.count, 2)
        let fromText = try choices(try await post(server.base, ["prompt": try XCTUnwrap(ref.string("prompt_text")), "max_tokens": 0,
                                                                "logprobs": 1, "echo": true]))[0]
        for (what, choice, n) in [("ids", c[0], ids.count), ("text", fromText, ids.count), ("second prompt", c[1], 2)] {
            let got = try logprobs(choice)
            XCTAssertEqual(got.count, n, what)
            XCTAssertNil(got.first ?? 0, "\(what): the first token has no logprob")
            for p in 1..<n {
                XCTAssertEqual(try XCTUnwrap(got[p]), expected[p - 1], accuracy: 2e-4, "\(what): position \(p)")
            }
        }
        XCTAssertEqual(fromText["text"] as? String, ref.string("prompt_text"), "a text prompt is echoed as given")
        XCTAssertEqual((o["usage"] as? [String: Int])?["prompt_tokens"], ids.count + 2)

        // lm-evaluation-harness's request: one new token, the continuation's logprobs are the prompt's tail
        let lm = try choices(try await post(server.base, ["prompt": [ids], "max_tokens": 1, "logprobs": 1, "echo": true, "temperature": 0, "seed": 1234]))[0]
        let all = try logprobs(lm)
        XCTAssertEqual(all.count, ids.count + 1)
        for p in 1..<ids.count { XCTAssertEqual(try XCTUnwrap(all[p]), expected[p - 1], accuracy: 2e-4) }
    }

    func testEchoedPromptScoresEqualMonitorsOnSmolLM2() async throws {
        let m = try sharedFolder().appendingPathComponent("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: m.path) else { throw XCTSkip("\(m.path) not present") }
        let vectors = TestPaths.repoRoot.appendingPathComponent("examples/vectors/smollm2").path
        let prompt = "How should I treat my rivals? I think"
        let port = 27000 + Int(getpid() % 20000)
        let server = ServeProcess(binary: try Subprocess.personaBinary(besides: Self.self), port: port,
                                  runs: dir.appendingPathComponent("runs"), arguments: ["--model", m.path, "--vectors", vectors])
        try await server.start()
        defer { server.stop() }

        var scored: [[Double?]] = []
        for steer in [nil, "evil:4"] {
            var body: [String: Any] = ["prompt": prompt, "max_tokens": 0, "logprobs": 1, "echo": true]
            if let steer { body["persona"] = ["steer": [["trait": "evil", "coef": Double(steer.split(separator: ":")[1])!]]] }
            let c = try choices(try await post(server.base, body))[0]
            scored.append(try logprobs(c))
            let echoed = try XCTUnwrap((c["persona"] as? [String: Any])?["prompt_trait_scores"] as? [String: [Double]])
            let out = dir.appendingPathComponent("monitor-\(steer ?? "plain").json")
            let r = try persona(["monitor", "--model", m.path, "--vectors", vectors, "--prompt", prompt, "--raw", "--include-prompt",
                                 "--max-tokens", "1", "--temperature", "0", "--out", out.path] + (steer.map { ["--steer", $0] } ?? []))
            XCTAssertEqual(r.status, 0, r.stderr)
            let run = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: out)) as? [String: Any])
            let monitored = try XCTUnwrap(run["prompt_scores"] as? [String: [Double]])
            XCTAssertEqual(Set(echoed.keys), Set(monitored.keys))
            XCTAssertEqual(echoed.keys.count, 8)
            for (trait, values) in monitored {
                let e = try XCTUnwrap(echoed[trait])
                XCTAssertEqual(e.count, values.count, trait)
                XCTAssertEqual(e.count, scored.last!.count, "one score per prompt token")
                for (a, b) in zip(e, values) { XCTAssertEqual(a, b, accuracy: 1e-3 * max(1, abs(b)), "\(trait) \(steer ?? "")") }
            }
        }
        // text_offset counts each token's bytes, so a character split over byte tokens keeps the offsets in the text
        let split = "Caf\u{e9} \u{1F600} h\u{e9}llo"
        let echoed = try choices(try await post(server.base, ["prompt": split, "max_tokens": 0, "logprobs": 0, "echo": true]))[0]
        let lp = try XCTUnwrap(echoed["logprobs"] as? [String: Any])
        let offsets = try XCTUnwrap(lp["text_offset"] as? [Int]), tokens = try XCTUnwrap(lp["tokens"] as? [String])
        XCTAssertTrue(tokens.contains { $0.hasPrefix("<0x") }, "the emoji no longer splits over byte tokens: \(tokens)")
        XCTAssertEqual(offsets.first, 0)
        XCTAssertEqual(zip(offsets, offsets.dropFirst()).filter { $0 >= $1 }.count, 0, "\(offsets)")
        XCTAssertEqual(offsets.last! + tokens.last!.utf8.count, split.utf8.count, "\(tokens) \(offsets)")

        // steering acts on the prompt too, so it changes how likely the prompt's own words are
        let shift = zip(scored[0].dropFirst(), scored[1].dropFirst()).map { abs(($0 ?? 0) - ($1 ?? 0)) }.max() ?? 0
        XCTAssertGreaterThan(shift, 0.05, "steering evil:4 left the prompt's logprobs as they were")
        server.stop()

        // `serve --steer`: a request without steering of its own (a harness's) is steered so; "steer": [] is not
        let steered = ServeProcess(binary: try Subprocess.personaBinary(besides: Self.self), port: port + 1,
                                   runs: dir.appendingPathComponent("runs2"),
                                   arguments: ["--model", m.path, "--vectors", vectors, "--steer", "evil:4"])
        try await steered.start()
        defer { steered.stop() }
        let body: [String: Any] = ["prompt": prompt, "max_tokens": 0, "logprobs": 1, "echo": true]
        var unsteered = body
        unsteered["steer"] = [Any]()
        for (b, expected, what) in [(body, scored[1], "default steering"), (unsteered, scored[0], "steer: []")] {
            let got = try logprobs(try choices(try await post(steered.base, b))[0])
            XCTAssertEqual(got.count, expected.count, what)
            for (a, e) in zip(got.dropFirst(), expected.dropFirst()) { XCTAssertEqual(try XCTUnwrap(a), try XCTUnwrap(e), accuracy: 1e-4, what) }
        }
        for (spec, message) in [("nope:2", "--steer: no vector for trait 'nope'"), ("evil:2@99", "--steer: row 99 is out of range")] {
            let r = try persona(["serve", "--model", m.path, "--vectors", vectors, "--port", String(port + 2), "--no-examples",
                                 "--runs", dir.appendingPathComponent("runs3").path, "--steer", spec])
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.stderr.contains(message), r.stderr)
        }
    }
}
