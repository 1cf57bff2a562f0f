import Foundation
import XCTest
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

/// A minimal HTTP/1.1 server on 127.0.0.1 for the judge client: one thread per connection, `Connection: close`.
final class TinyHTTPServer: @unchecked Sendable {
    struct Reply { var status = 200; var headers: [String: String] = [:]; var body = ""; var delay: Double = 0 }
    private let fd: Int32
    let port: UInt16
    private let lock = NSLock()
    private var _requests: [String] = []
    private var _active = 0, _maxActive = 0
    private let handler: @Sendable (Int, String) -> Reply

    var requests: [String] { lock.lock(); defer { lock.unlock() }; return _requests }
    var maxActive: Int { lock.lock(); defer { lock.unlock() }; return _maxActive }

    init(handler: @escaping @Sendable (_ index: Int, _ body: String) -> Reply) throws {
        self.handler = handler
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let s = fd
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard ok == 0, listen(s, 16) == 0 else { throw JudgeError("test server: bind/listen failed") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        port = UInt16(bigEndian: addr.sin_port)
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    func stop() { shutdown(fd, Int32(SHUT_RDWR)); close(fd) }
    var baseURL: URL { URL(string: "http://127.0.0.1:\(port)/v1")! }

    private func acceptLoop() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { return }
            Thread { [self] in serve(c) }.start()
        }
    }

    private func serve(_ c: Int32) {
        defer { close(c) }
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        var bodyStart: Int? = nil, contentLength = 0
        while true {
            let n = read(c, &buf, buf.count)
            if n <= 0 { return }
            data += buf[0..<n]
            if bodyStart == nil, let r = findHeaderEnd(data) {
                bodyStart = r
                let head = String(decoding: data[0..<r], as: UTF8.self).lowercased()
                for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                    contentLength = Int(line.dropFirst(15).trimmingCharacters(in: .whitespaces)) ?? 0
                }
            }
            if let b = bodyStart, data.count - b >= contentLength { break }
        }
        let body = String(decoding: data[bodyStart!...], as: UTF8.self)
        lock.lock(); let index = _requests.count; _requests.append(body); _active += 1; _maxActive = max(_maxActive, _active); lock.unlock()
        let reply = handler(index, body)
        if reply.delay > 0 { Thread.sleep(forTimeInterval: reply.delay) }
        lock.lock(); _active -= 1; lock.unlock()
        var head = "HTTP/1.1 \(reply.status) X\r\nContent-Type: application/json\r\nContent-Length: \(reply.body.utf8.count)\r\nConnection: close\r\n"
        for (k, v) in reply.headers { head += "\(k): \(v)\r\n" }
        let out = Array((head + "\r\n" + reply.body).utf8)
        _ = out.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
    }

    private func findHeaderEnd(_ d: [UInt8]) -> Int? {
        guard d.count >= 4 else { return nil }
        for i in 0...(d.count - 4) where d[i] == 13 && d[i + 1] == 10 && d[i + 2] == 13 && d[i + 3] == 10 { return i + 4 }
        return nil
    }

    /// A chat completion whose first token has these top logprobs.
    static func completion(_ top: [(String, Double)]) -> String {
        let entries = top.map { "{\"token\":\"\($0.0)\",\"logprob\":\($0.1)}" }.joined(separator: ",")
        return "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"\(top.first?.0 ?? "")\"},\"logprobs\":{\"content\":[{\"token\":\"\(top.first?.0 ?? "")\",\"logprob\":\(top.first?.1 ?? 0),\"top_logprobs\":[\(entries)]}]}}]}"
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
