import Foundation
import XCTest
@testable import PersonaTestSupport
@testable import PersonaCore
#if canImport(Glibc)
import Glibc
#endif

final class JudgeAggregationTests: XCTestCase {
    func testHandComputedScore() {
        // p = 0.5, 0.3, 0.1 on "80", " 90", "70"; "REF" and "101" are not numbers 0..100.
        let top: [(token: String, logprob: Double)] = [("80", log(0.5)), (" 90", log(0.3)), ("70", log(0.1)),
                                                       ("REF", log(0.05)), ("101", log(0.04))]
        // (80*0.5 + 90*0.3 + 70*0.1) / 0.9 = 74 / 0.9
        XCTAssertEqual(JudgeAggregation.score(topLogprobs: top)!, 74.0 / 0.9, accuracy: 1e-12)
    }

    func testBelowMinimumMassGivesNil() {
        // 0.24 < 0.25 of the mass on numbers
        XCTAssertNil(JudgeAggregation.score(topLogprobs: [("50", log(0.24)), ("No", log(0.7))]))
        XCTAssertEqual(JudgeAggregation.score(topLogprobs: [("50", log(0.25)), ("No", log(0.7))])!, 50, accuracy: 1e-12)
        XCTAssertNil(JudgeAggregation.score(topLogprobs: []))
    }

    func testNumberParsing() {
        XCTAssertEqual(JudgeAggregation.number(" 7\n"), 7)
        XCTAssertEqual(JudgeAggregation.number("100"), 100)
        XCTAssertEqual(JudgeAggregation.number("0"), 0)
        for bad in ["-1", "101", "1.5", "", " ", "٣", "+5", "5a", "1000"] { XCTAssertNil(JudgeAggregation.number(bad), bad) }
    }

    func testPromptFill() throws {
        XCTAssertEqual(try JudgePrompt.fill("Q={question} {{x}} A={answer}", question: "a{b}", answer: "c"), "Q=a{b} {x} A=c")
        XCTAssertThrowsError(try JudgePrompt.fill("{other}", question: "", answer: ""))
        XCTAssertThrowsError(try JudgePrompt.fill("oops }", question: "", answer: ""))
        XCTAssertThrowsError(try JudgePrompt.fill("{question", question: "", answer: ""))
        XCTAssertNoThrow(try JudgePrompt.fill(JudgePrompt.coherence, question: "q", answer: "a"))
    }

    func testSHA256KnownVectors() {
        // FIPS 180-4 examples.
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        XCTAssertEqual(SHA256.hex(String(repeating: "a", count: 1000)),
                       "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}


final class JudgeHTTPTests: XCTestCase {
    let good = TinyHTTPServer.completion([("90", log(0.6)), ("80", log(0.4))])  // 86

    func makeJudge(_ server: TinyHTTPServer, cache: JudgeCache? = nil, attempts: Int = 4, timeout: Double = 5) -> OpenAIJudge {
        var cfg = OpenAIJudge.Configuration(baseURL: server.baseURL, model: "judge-test", apiKey: "sk-test")
        cfg.maxAttempts = attempts
        cfg.baseDelay = 0.01
        cfg.maxDelay = 0.5
        cfg.timeout = timeout
        return OpenAIJudge(cfg, cache: cache)
    }

    func testRequestShapeAndScore() async throws {
        let server = try TinyHTTPServer { _, _ in .init(body: self.good) }
        defer { server.stop() }
        let s = try await makeJudge(server).score(prompt: "rate this")
        XCTAssertEqual(s!, 86, accuracy: 1e-9)
        let req = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(server.requests[0].utf8)) as? [String: Any])
        XCTAssertEqual(req["max_tokens"] as? Int, 1)
        XCTAssertEqual(req["temperature"] as? Int, 0)
        XCTAssertEqual(req["logprobs"] as? Bool, true)
        XCTAssertEqual(req["top_logprobs"] as? Int, 20)
        XCTAssertEqual(req["model"] as? String, "judge-test")
        let msgs = try XCTUnwrap(req["messages"] as? [[String: String]])
        XCTAssertEqual(msgs, [["role": "user", "content": "rate this"]])
    }

    func testRetriesOn429And5xxHonouringRetryAfter() async throws {
        let server = try TinyHTTPServer { i, _ in
            switch i {
            case 0: return .init(status: 429, headers: ["Retry-After": "0.3"], body: "{}")
            case 1: return .init(status: 503, body: "{}")
            default: return .init(body: self.good)
            }
        }
        defer { server.stop() }
        let judge = makeJudge(server)
        let t0 = Date()
        let s = try await judge.score(prompt: "p")
        XCTAssertEqual(s!, 86, accuracy: 1e-9)
        XCTAssertEqual(server.requests.count, 3)
        XCTAssertEqual(judge.counters.retries, 2)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(t0), 0.3, "Retry-After: 0.3 must be waited out")
    }

    func testTimeoutIsRetried() async throws {
        let server = try TinyHTTPServer { i, _ in i == 0 ? .init(body: self.good, delay: 2.5) : .init(body: self.good) }
        defer { server.stop() }
        let judge = makeJudge(server, timeout: 1)
        let t0 = Date()
        let s = try await judge.score(prompt: "p")
        XCTAssertEqual(s!, 86, accuracy: 1e-9)
        XCTAssertEqual(server.requests.count, 2)
        XCTAssertEqual(judge.counters.retries, 1)
        XCTAssertTrue(judge.counters.lastRetryReason?.contains("timeout") == true, judge.counters.lastRetryReason ?? "-")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(t0), 0.95, "the first request must have waited for its timeout")
    }

    func testGivesUpAndDoesNotRetry4xx() async throws {
        let server = try TinyHTTPServer { _, _ in .init(status: 500, body: "{}") }
        defer { server.stop() }
        do { _ = try await makeJudge(server, attempts: 3).score(prompt: "p"); XCTFail("expected an error") } catch {
            XCTAssertTrue("\(error)".contains("3 attempts"), "\(error)")
        }
        XCTAssertEqual(server.requests.count, 3)
        let bad = try TinyHTTPServer { _, _ in .init(status: 401, body: "{\"error\":\"bad key\"}") }
        defer { bad.stop() }
        do { _ = try await makeJudge(bad).score(prompt: "p"); XCTFail("expected an error") } catch {
            XCTAssertTrue("\(error)".contains("401"), "\(error)")
        }
        XCTAssertEqual(bad.requests.count, 1)
    }

    /// The check before generation: a good server passes with one request, a wrong key / model (4xx), a server
    /// without logprobs and a closed port fail at once (no retries), a busy server (429 / 5xx) passes.
    func testPreflight() async throws {
        let good = try TinyHTTPServer { _, _ in .init(body: self.good) }
        defer { good.stop() }
        let noWarnings = try await makeJudge(good).preflight()
        XCTAssertEqual(noWarnings, [])
        XCTAssertEqual(good.requests.count, 1)
        // what the reply shows of the judge: digits only (a model that spells numbers), or little mass on numbers
        let warned: [(TinyHTTPServer.Reply, String)] = [
            (.init(body: TinyHTTPServer.completion([("8", log(0.7)), ("9", log(0.2)), ("The", log(0.05))])),
             "only single digits among its top tokens (\"8\", \"9\")"),
            (.init(body: TinyHTTPServer.completion([("Sure", log(0.8)), ("85", log(0.1))])), "put 10% of its first-token probability"),
        ]
        for (reply, expected) in warned {
            let server = try TinyHTTPServer { _, _ in reply }
            defer { server.stop() }
            let w = try await makeJudge(server).preflight()
            XCTAssertEqual(w.count, 1)
            XCTAssertTrue(w.first?.contains(expected) == true, "\(w)")
        }
        let cases: [(TinyHTTPServer.Reply, String?)] = [
            (.init(status: 404, body: "{\"error\":\"model judge-test not found\"}"), "HTTP 404: {\"error\":\"model judge-test not found\"}"),
            (.init(status: 401, body: "{}"), "HTTP 401"),
            (.init(body: "{\"choices\":[{\"message\":{\"content\":\"85\"}}]}"), "no logprobs"),
            (.init(status: 429, body: "{}"), nil),
            (.init(status: 503, body: "{}"), nil),
        ]
        for (reply, expected) in cases {
            let server = try TinyHTTPServer { _, _ in reply }
            defer { server.stop() }
            do {
                try await makeJudge(server).preflight()
                XCTAssertNil(expected, "expected an error for HTTP \(reply.status)")
            } catch {
                XCTAssertTrue(expected.map { "\(error)".contains($0) } ?? false, "\(error)")
            }
            XCTAssertEqual(server.requests.count, 1)
        }
        // a port nothing listens on: refused at once, not after the retries' back-off
        let closed = try TinyHTTPServer { _, _ in .init(body: self.good) }
        let url = closed.baseURL
        closed.stop()
        var cfg = OpenAIJudge.Configuration(baseURL: url, model: "judge-test")
        cfg.timeout = 30
        let t0 = Date()
        do { try await OpenAIJudge(cfg).preflight(); XCTFail("expected an error") } catch {
            XCTAssertTrue("\(error)".contains("not reachable"), "\(error)")
        }
        // the HTTP client no longer retries a refused connection until its 30 s connect timeout (HTTPSession)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 15)
    }

    func testMissingLogprobsGiveNilNotCrash() async throws {
        let bodies = ["{\"choices\":[{\"message\":{\"content\":\"85\"}}]}",
                      "{\"choices\":[{\"logprobs\":null}]}",
                      "{\"choices\":[]}",
                      TinyHTTPServer.completion([("yes", log(0.9))])]
        let server = try TinyHTTPServer { i, _ in .init(body: bodies[min(i, bodies.count - 1)]) }
        defer { server.stop() }
        let judge = makeJudge(server)
        for _ in bodies { let s = try await judge.score(prompt: "p"); XCTAssertNil(s) }
    }

    func testCacheHitSendsNoRequest() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("judge-cache-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let server = try TinyHTTPServer { _, _ in .init(body: self.good) }
        defer { server.stop() }
        let first = makeJudge(server, cache: try JudgeCache(directory: dir))
        let a = try await first.score(prompt: "same prompt")
        // A new client (a rerun) with the same cache folder pays nothing.
        let second = makeJudge(server, cache: try JudgeCache(directory: dir))
        let b = try await second.score(prompt: "same prompt")
        XCTAssertEqual(a, b)
        XCTAssertEqual(server.requests.count, 1)
        XCTAssertEqual(second.counters.cacheHits, 1)
        XCTAssertEqual(second.counters.requests, 0)
        // A different prompt or model is a different key.
        _ = try await second.score(prompt: "other prompt")
        XCTAssertEqual(server.requests.count, 2)
        XCTAssertNotEqual(JudgeCache.key(model: "a", prompt: "bc"), JudgeCache.key(model: "ab", prompt: "c"))
    }

    /// The same prompt asked for at the same time is one request (two samples with the same answer). It used to be
    /// one request per caller when they overlapped and one in all when they did not, so the count hung on timing;
    /// without a cache too. A failure reaches every caller waiting on it.
    func testSamePromptAtOnceIsOneRequest() async throws {
        let server = try TinyHTTPServer { _, _ in .init(body: self.good, delay: 0.2) }
        defer { server.stop() }
        var cfg = OpenAIJudge.Configuration(baseURL: server.baseURL, model: "m")
        cfg.concurrency = 4
        let judge = OpenAIJudge(cfg)
        try await withThrowingTaskGroup(of: Double?.self) { g in
            for i in 0..<8 { g.addTask { try await judge.score(prompt: i % 2 == 0 ? "same" : "other") } }
            for try await s in g { XCTAssertEqual(s!, 86, accuracy: 1e-9) }
        }
        XCTAssertEqual(server.requests.count, 2)
        XCTAssertEqual(judge.counters.requests, 2)
        XCTAssertEqual(judge.counters.cacheHits, 6)
        // after the fetch, the same prompt is fetched again (no cache here): nothing is kept but the cache
        _ = try await judge.score(prompt: "same")
        XCTAssertEqual(server.requests.count, 3)

        let bad = try TinyHTTPServer { _, _ in .init(status: 401, body: "{\"error\":\"bad key\"}", delay: 0.2) }
        defer { bad.stop() }
        let failing = OpenAIJudge(OpenAIJudge.Configuration(baseURL: bad.baseURL, model: "m"))
        let outcomes = await withTaskGroup(of: Bool.self) { g -> [Bool] in
            for _ in 0..<3 { g.addTask { (try? await failing.score(prompt: "p")) == nil } }
            var all: [Bool] = []
            for await f in g { all.append(f) }
            return all
        }
        XCTAssertEqual(outcomes, [true, true, true], "every caller sees the failure")
        XCTAssertEqual(bad.requests.count, 1)
    }

    func testConcurrencyLimit() async throws {
        let server = try TinyHTTPServer { _, _ in .init(body: self.good, delay: 0.1) }
        defer { server.stop() }
        var cfg = OpenAIJudge.Configuration(baseURL: server.baseURL, model: "m")
        cfg.concurrency = 2
        let judge = OpenAIJudge(cfg)
        try await withThrowingTaskGroup(of: Double?.self) { g in
            for i in 0..<6 { g.addTask { try await judge.score(prompt: "p\(i)") } }
            for try await s in g { XCTAssertEqual(s!, 86, accuracy: 1e-9) }
        }
        XCTAssertEqual(server.requests.count, 6)
        XCTAssertLessThanOrEqual(server.maxActive, 2)
    }

    func testEnvironmentConfiguration() throws {
        let c = try OpenAIJudge.Configuration.fromEnvironment(environment: ["OPENAI_BASE_URL": "http://h:1/v1", "OPENAI_API_KEY": "k",
                                                                            "PERSONA_JUDGE_MODEL": "m"])
        XCTAssertEqual(c.baseURL.absoluteString, "http://h:1/v1")
        XCTAssertEqual(c.apiKey, "k")
        XCTAssertEqual(c.model, "m")
        let d = try OpenAIJudge.Configuration.fromEnvironment(model: "flag", environment: ["PERSONA_JUDGE_MODEL": "env"])
        XCTAssertEqual(d.model, "flag")
        XCTAssertThrowsError(try OpenAIJudge.Configuration.fromEnvironment(baseURL: "ftp://x", environment: [:]))
    }
}
