import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import PersonaCore
import PersonaGeneration
import PersonaModels
import PersonaTokenizers
import XCTest
@testable import PersonaTestSupport

/// The OpenAI-compatible judge client against our own `persona serve` (the real binary, loopback):
/// the score must equal the method's aggregation over the top-20 of the engine's own next-token distribution.
final class JudgeAgainstServeTests: XCTestCase {

    func binary() throws -> URL { try Subprocess.personaBinary(besides: JudgeAgainstServeTests.self) }

    func testOpenAIJudgeThroughPersonaServe() async throws {
        // stories260K: a real model whose next token after this prompt is not the end of text (a judge call
        // whose top token is EOS gets no logprobs and no score, by design).
        let model = try sharedFolder().appendingPathComponent("models/stories260K/stories260K.gguf").path
        let port = 20000 + Int(getpid() % 20000)
        let runs = FileManager.default.temporaryDirectory.appendingPathComponent("judge-serve-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: runs) }
        let server = ServeProcess(binary: try binary(), port: port, runs: runs, arguments: ["--model", model])
        try await server.start()
        defer { server.stop() }
        let base = server.base.appendingPathComponent("v1")

        let cache = try JudgeCache(directory: runs.appendingPathComponent("judge-cache"))
        let judge = OpenAIJudge(OpenAIJudge.Configuration(baseURL: base, model: "stories260K"), cache: cache)
        let prompt = "Lily was 5 years old. She had 3 cats and"
        let score = try await judge.score(prompt: prompt)

        // Independent recomputation from the engine: same chat prompt, raw next-token distribution, top 20.
        let loaded = try ModelLoader.load(path: model)
        let ids = try Generator(loaded).promptIds(messages: [ChatMessage(role: "user", content: prompt)], raw: false)
        let logits = Array(try loaded.model.forward(ids, cache: loaded.model.makeCache(capacity: ids.count), logits: .last))
        let m = logits.max()!
        let lse = m + Float(Foundation.log(logits.reduce(0.0) { $0 + Foundation.exp(Double($1 - m)) }))
        let top = logits.enumerated().sorted { $0.element > $1.element }.prefix(20)
        let entries = top.map { (String(decoding: loaded.tokenizer.tokenizer.tokenBytes($0.offset), as: UTF8.self), Double($0.element - lse)) }
        let expected = JudgeAggregation.score(topLogprobs: entries)
        if let expected {
            XCTAssertEqual(try XCTUnwrap(score), expected, accuracy: 1e-3)
        } else {
            XCTAssertNil(score)
        }
        XCTAssertEqual(judge.counters.requests, 1)
        // A rerun pays nothing.
        let again = try await judge.score(prompt: prompt)
        XCTAssertEqual(again, score)
        XCTAssertEqual(judge.counters.requests, 1)
        XCTAssertEqual(judge.counters.cacheHits, 1)
    }
}
