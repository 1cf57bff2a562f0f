import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
@testable import PersonaTestSupport

/// Text that streams (`persona generate`'s stdout, the OpenAI routes' content deltas, `/api/generate`'s pieces)
/// must add up to the text the same request returns whole, on the real SmolLM2-135M-Instruct: a character split
/// over byte-level tokens comes whole, and a stop string is never sent. Stops are cut out of the model's own plain
/// output, so nothing here depends on what the model happens to say.
final class StreamingTextTests: BinaryTestCase {
    override class var folderPrefix: String { "streaming" }
    static let emojiPrompt = "Write three emoji that describe happiness, then say 'done'."

    func smollm2() throws -> String {
        let m = try sharedFolder().appendingPathComponent("models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
        guard FileManager.default.fileExists(atPath: m.path) else { throw XCTSkip("\(m.path) not present") }
        return m.path
    }

    /// A stop made of two words from the middle of `text` (so it spans tokens).
    func stop(inside text: String) throws -> String {
        let words = text.split(separator: " ")
        XCTAssertGreaterThan(words.count, 6, "too short to cut a stop from: \(text)")
        guard words.count > 6 else { throw XCTSkip("short output") }
        return words[3] + " " + words[4]
    }

    func testGeneratePrintsExactlyUpToTheStop() throws {
        let m = try smollm2()
        let args = ["generate", "--model", m, "--prompt", "Count from 1 to 20 in words.", "--max-tokens", "48"]
        let plain = try persona(args)
        XCTAssertEqual(plain.status, 0, plain.stderr)
        let s = try stop(inside: plain.stdout)
        let stopped = try persona(args + ["--stop", s])
        XCTAssertEqual(stopped.status, 0, stopped.stderr)
        let cut = try XCTUnwrap(plain.stdout.range(of: s)).lowerBound
        XCTAssertEqual(stopped.stdout, String(plain.stdout[..<cut]), "stdout ends where the stop string begins")
    }

    /// Text held back for a stop string that the end of sequence then rules out is printed, not lost.
    func testGeneratePrintsTextHeldAtTheEnd() throws {
        let m = try smollm2()
        let args = ["generate", "--model", m, "--prompt", "What is the capital of France?", "--max-tokens", "48", "--verbose"]
        let plain = try persona(args)
        XCTAssertTrue(plain.stderr.contains("finish: eos"), "the answer ends by end of sequence: \(plain.stderr)")
        let last = try XCTUnwrap(plain.stdout.last)
        let held = try persona(args + ["--stop", "\(last)\u{7}"])   // its start is the output's last character
        XCTAssertEqual(held.status, 0, held.stderr)
        XCTAssertEqual(held.stdout, plain.stdout)
    }

    func testStreamedTextAddsUpToTheResponse() async throws {
        let m = try smollm2()
        let port = 23000 + Int(getpid() % 20000)
        let server = ServeProcess(binary: try Subprocess.personaBinary(besides: Self.self), port: port,
                                  runs: dir.appendingPathComponent("runs"), arguments: ["--model", m])
        try await server.start()
        defer { server.stop() }
        let base = server.base

        func post(_ route: String, _ body: [String: Any]) async throws -> String {
            var req = URLRequest(url: base.appendingPathComponent(route))
            req.httpMethod = "POST"
            req.setValue("application/json", forHTTPHeaderField: "Content-Type")
            req.httpBody = try JSONSerialization.data(withJSONObject: body)
            let (data, resp) = try await URLSession.shared.data(for: req)
            XCTAssertEqual((resp as? HTTPURLResponse)?.statusCode, 200, String(decoding: data, as: UTF8.self))
            return String(decoding: data, as: UTF8.self)
        }
        func events(_ sse: String) -> [[String: Any]] {
            sse.split(separator: "\n").compactMap { line in
                guard line.hasPrefix("data: "), line != "data: [DONE]" else { return nil }
                return try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any]
            }
        }
        func chat(stream: Bool, stop: String? = nil) async throws -> (content: String, events: [[String: Any]]) {
            var body: [String: Any] = ["messages": [["role": "user", "content": Self.emojiPrompt]], "max_tokens": 40,
                                       "temperature": 0, "stream": stream, "logprobs": true]
            if let stop { body["stop"] = stop }
            let text = try await post("v1/chat/completions", body)
            if !stream {
                let o = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
                return ((((o?["choices"] as? [[String: Any]])?.first)?["message"] as? [String: Any])?["content"] as? String ?? "", [])
            }
            let evs = events(text)
            let content = evs.flatMap { ($0["choices"] as? [[String: Any]]) ?? [] }
                .compactMap { ($0["delta"] as? [String: Any])?["content"] as? String }.joined()
            return (content, evs)
        }

        let whole = try await chat(stream: false)
        let streamed = try await chat(stream: true)
        XCTAssertEqual(streamed.content, whole.content, "the content deltas add up to the non-streamed content")
        // the case this guards: a token holding part of a character (its logprob bytes are not its text's UTF-8)
        let tokens = streamed.events.flatMap { ($0["choices"] as? [[String: Any]]) ?? [] }
            .flatMap { (($0["logprobs"] as? [String: Any])?["content"] as? [[String: Any]]) ?? [] }
        let split = tokens.filter { t in
            (t["bytes"] as? [NSNumber])?.map(\.uint8Value) != Array(((t["token"] as? String) ?? "").utf8)
        }
        XCTAssertFalse(split.isEmpty, "the prompt no longer makes SmolLM2 write a character split over tokens: \(whole.content)")
        XCTAssertFalse(streamed.content.contains("<0x"), streamed.content)

        let s = try stop(inside: whole.content)
        let cut = String(whole.content[..<(try XCTUnwrap(whole.content.range(of: s)).lowerBound)])
        let stoppedWhole = try await chat(stream: false, stop: s)
        let stoppedStream = try await chat(stream: true, stop: s)
        XCTAssertEqual(stoppedWhole.content, cut)
        XCTAssertEqual(stoppedStream.content, cut, "the stop sequence is not streamed")

        // /api/generate: the tokens' pieces (text where absent), then the rest of the response, are the response
        let sse = try await post("api/generate", ["prompt": Self.emojiPrompt, "max_tokens": 40, "temperature": 0, "save": false, "stop": s])
        var pieces = "", response: String?
        var event = ""
        for line in sse.split(separator: "\n") {
            if line.hasPrefix("event: ") { event = String(line.dropFirst(7)); continue }
            guard line.hasPrefix("data: "), let o = try? JSONSerialization.jsonObject(with: Data(line.dropFirst(6).utf8)) as? [String: Any] else { continue }
            if event == "token" { pieces += (o["piece"] as? String) ?? (o["text"] as? String ?? "") }
            if event == "done" { response = (o["run"] as? [String: Any])?["response"] as? String }
        }
        let r = try XCTUnwrap(response)
        XCTAssertEqual(r, cut)
        XCTAssertTrue(r.hasPrefix(pieces), "pieces \(pieces.debugDescription) are a prefix of the response \(r.debugDescription)")
        XCTAssertFalse(pieces.contains(s))
    }
}
