import Foundation
import Hummingbird
import HummingbirdTesting
import PersonaRuns
import XCTest
@testable import PersonaServer

/// POST /api/generate (Server-Sent Events), limits and back-pressure.
final class GenerateTests: XCTestCase {
    func testStreamsTokensWithScoresThenDoneAndSaves() async throws {
        let store = InMemoryRunStore()
        try await makeApp(store: store).test(.router) { client in
            let r = try await client.execute(uri: "/api/generate", method: .post, headers: jsonHeaders,
                                             body: body(#"{"prompt": "Hi", "max_tokens": 8, "temperature": 0, "top_logprobs": 3}"#))
            XCTAssertEqual(r.status, .ok)
            XCTAssertEqual(r.headers[.contentType], "text/event-stream; charset=utf-8")
            let events = parseSSE(text(r.body))
            XCTAssertEqual(events.map(\.event), Array(repeating: "token", count: 8) + ["done"])
            for (i, e) in events.prefix(8).enumerated() {
                let t = try jsonObject(e.data)
                XCTAssertEqual(t["index"] as? Int, i)
                XCTAssertEqual(t["text"] as? String, FakeBackend.words[i])
                XCTAssertEqual((t["top_k"] as? [Any])?.count, 3)
                let scores = try XCTUnwrap(t["scores"] as? [String: Double])
                XCTAssertEqual(scores["sad"], FakeBackend.score("sad", i))
                // Foundation's JSONSerialization on Linux can misread the last digit, hence the tolerance.
                XCTAssertEqual(try XCTUnwrap(scores["happy"]), FakeBackend.score("happy", i), accuracy: 1e-12)
            }
            let done = try jsonObject(events[8].data)
            XCTAssertEqual(done["finish_reason"] as? String, "length")
            XCTAssertEqual(done["saved"] as? Bool, true)
            let id = try XCTUnwrap(done["run_id"] as? String)
            let run = try XCTUnwrap(done["run"] as? [String: Any])
            XCTAssertEqual(run["tokens"] as? [String], Array(FakeBackend.words.prefix(8)))
            // The server adds the analysis: the fake's happy curve spikes at token 6.
            let dps = try XCTUnwrap((run["decision_points"] as? [String: [[String: Any]]])?["happy"])
            XCTAssertTrue(dps.contains { $0["index"] as? Int == 6 && $0["kind"] as? String == "spike" }, "\(dps)")
            XCTAssertNotNil(run["stats"])
            XCTAssertNotNil(run["correlations"])

            let stored = try await client.execute(uri: "/api/runs/\(id)", method: .get)
            XCTAssertEqual(stored.status, .ok)
        }
        let n = try await store.count()
        XCTAssertEqual(n, 1)
    }

    func testSaveFalseStopSequencesAndTraitSelection() async throws {
        let store = InMemoryRunStore()
        let backend = FakeBackend()
        try await makeApp(backend: backend, store: store).test(.router) { client in
            let r = try await client.execute(uri: "/api/generate", method: .post, headers: jsonHeaders, body: body("""
                {"prompt": "Hi", "max_tokens": 10, "save": false, "stop": " time", "traits": ["sad"],
                 "steer": [{"trait": "happy", "coef": 1.5, "positions": "response"}], "seed": 42}
                """))
            let events = parseSSE(text(r.body))
            XCTAssertEqual(events.map(\.event), ["token", "token", "token", "done"])
            XCTAssertEqual(try XCTUnwrap(try jsonObject(events[0].data)["scores"] as? [String: Double]).keys.sorted(), ["sad"])
            let done = try jsonObject(events[3].data)
            XCTAssertEqual(done["finish_reason"] as? String, "stop")
            XCTAssertEqual(done["saved"] as? Bool, false)
        }
        let n = try await store.count()
        XCTAssertEqual(n, 0)
        let req = try XCTUnwrap(backend.requests.first)
        XCTAssertEqual(req.stop, [" time"])
        XCTAssertEqual(req.seed, 42)
        XCTAssertEqual(req.steer, [APISteer(trait: "happy", coef: 1.5, positions: "response")])
        XCTAssertEqual(req.traits, ["sad"])
    }

    func testInvalidParametersAre400WithTheParameterNamed() async throws {
        var config = ServerConfig(port: 0)
        config.maxTokensPerRequest = 100
        try await makeApp(config).test(.router) { client in
            let cases: [(String, String)] = [
                (#"{"prompt": "x", "max_tokens": 0}"#, "max_tokens"),
                (#"{"prompt": "x", "max_tokens": 101}"#, "max_tokens"),
                (#"{"prompt": "x", "temperature": -1}"#, "temperature"),
                (#"{"prompt": "x", "top_p": 0}"#, "top_p"),
                (#"{"prompt": "x", "top_logprobs": 21}"#, "top_logprobs"),
                (#"{"prompt": ""}"#, "prompt"),
                (#"{"messages": []}"#, "messages"),
                (#"{"messages": [{"role": "wizard", "content": "x"}]}"#, "messages[0].role"),
                (#"{"prompt": "x", "steer": [{"trait": "happy", "coef": 1, "mode": "multiply"}]}"#, "steer[0].mode"),
                (#"{"prompt": "x", "steer": [{"trait": "happy", "coef": 1, "positions": "middle"}]}"#, "steer[0].positions"),
                (#"{"prompt": "x", "traits": ["evil"]}"#, "unknown trait"),
                (#"{"prompt": "x", "max_tokens": "many"}"#, "malformed JSON request: max_tokens"),
                // a misspelt field would otherwise be dropped (64 tokens, no steering) without a word
                (#"{"prompt": "x", "max_new_tokens": 5}"#, "max_new_tokens: unknown field (known: prompt, messages,"),
                (#"{"prompt": "x", "steer": [{"trait": "happy", "coeff": 1}]}"#, "steer[0].coeff: unknown field"),
                (#"{"prompt": "x", "steer": [{"trait": "happy"}]}"#, "steer[0].coef: required"),
                // a closed-loop condition is checked before the stream starts (it used to fail mid-stream, as a 200
                // whose only event was a server_error naming the CLI's --steer-when)
                (#"{"prompt": "x", "steer": [{"trait": "happy", "coef": 1, "when": "happy<<0"}]}"#, "steer[0].when: \"happy<<0\" is not trait>threshold"),
                (#"{"prompt": "x", "steer": [{"trait": "happy", "coef": 1, "when": "evil>1"}]}"#, "steer[0].when: unknown trait \"evil\""),
                // the fake model has 4 layers, so hidden-state rows 0-4; row 5 used to fail mid-stream as well
                (#"{"prompt": "x", "steer": [{"trait": "happy", "coef": 1, "layer": 5}]}"#, "steer[0].layer: row 5 is out of range (0 to 4)"),
                // valid JSON whose number is not the field's integer used to be "not valid JSON", with no field named
                (#"{"prompt": "x", "steer": [{"trait": "happy", "coef": 1e300}]}"#, "steer[0].coef: must be a finite number"),
                (#"{"prompt": "x", "max_tokens": 2.5}"#, "max_tokens: must be an integer, not 2.5"),
                (#"{"prompt": "x", "top_k": 1e30}"#, "top_k: 1e+30 is out of range"),
                (#"{"prompt": "x", "seed": 1e20}"#, "seed: must be a 64-bit integer"),
                (#"{"prompt": "x", "steer": [{"trait": "happy", "coef": 1, "layer": 1.5}]}"#, "steer[0].layer: must be an integer"),
            ]
            for (req, word) in cases {
                let m = try assertErrorShape(try await client.execute(uri: "/api/generate", method: .post, body: body(req)), .badRequest)
                XCTAssertTrue(m.hasPrefix(word), "\(req) -> \(m)")
            }
        }
    }

    func testNoModelIs503() async throws {
        try await makeApp(backend: nil).test(.router) { client in
            let m = try assertErrorShape(try await client.execute(uri: "/api/generate", method: .post, body: body(#"{"prompt": "x"}"#)),
                                         .serviceUnavailable)
            XCTAssertTrue(m.hasPrefix("no model loaded"), m)
            try assertErrorShape(try await client.execute(uri: "/v1/chat/completions", method: .post,
                                                          body: body(#"{"messages": [{"role": "user", "content": "x"}]}"#)), .serviceUnavailable)
            try assertErrorShape(try await client.execute(uri: "/v1/completions", method: .post, body: body(#"{"prompt": "x"}"#)),
                                 .serviceUnavailable)
            let models = try json(try await client.execute(uri: "/v1/models", method: .get).body)
            XCTAssertEqual((models["data"] as? [Any])?.count, 0)
        }
    }

    /// One generation at a time and no queue: a second concurrent request gets 429 with Retry-After.
    func testBusyServerAnswers429() async throws {
        let gate = Gate()
        let backend = FakeBackend(gate: gate)
        var config = ServerConfig(port: 0)
        config.maxConcurrentGenerations = 1
        config.maxQueuedGenerations = 0
        config.retryAfterSeconds = 7
        try await makeApp(config, backend: backend).test(.router) { client in
            async let first = client.execute(uri: "/api/generate", method: .post, body: body(#"{"prompt": "x", "max_tokens": 3}"#))
            var it = backend.started.makeAsyncIterator()
            _ = await it.next()  // the first generation holds the slot
            let second = try await client.execute(uri: "/v1/completions", method: .post, body: body(#"{"prompt": "x", "max_tokens": 3}"#))
            let m = try assertErrorShape(second, .tooManyRequests)
            XCTAssertTrue(m.contains("too many"), m)
            XCTAssertEqual(second.headers[.retryAfter], "7")
            await gate.release()
            let r1 = try await first
            XCTAssertEqual(r1.status, .ok)
            XCTAssertEqual(parseSSE(text(r1.body)).last?.event, "done")
            // The slot is free again.
            let third = try await client.execute(uri: "/v1/completions", method: .post, body: body(#"{"prompt": "x", "max_tokens": 2}"#))
            XCTAssertEqual(third.status, .ok, text(third.body))
        }
    }

    /// With a queue of one, a second request waits and then runs; a third is refused.
    func testQueuedRequestWaitsForTheSlot() async throws {
        let gate = Gate()
        let backend = FakeBackend(gate: gate)
        var config = ServerConfig(port: 0)
        config.maxConcurrentGenerations = 1
        config.maxQueuedGenerations = 1
        try await makeApp(config, backend: backend).test(.router) { client in
            async let first = client.execute(uri: "/v1/completions", method: .post, body: body(#"{"prompt": "a", "max_tokens": 2}"#))
            var it = backend.started.makeAsyncIterator()
            _ = await it.next()
            async let second = client.execute(uri: "/v1/completions", method: .post, body: body(#"{"prompt": "b", "max_tokens": 2}"#))
            // Wait until the second request is queued (the limiter reports it through /api/health).
            var queued = 0
            for _ in 0..<200 where queued == 0 {
                queued = try json(try await client.execute(uri: "/api/health", method: .get).body)["queued_generations"] as? Int ?? 0
                if queued == 0 { try await Task.sleep(nanoseconds: 10_000_000) }
            }
            XCTAssertEqual(queued, 1)
            let third = try await client.execute(uri: "/v1/completions", method: .post, body: body(#"{"prompt": "c", "max_tokens": 2}"#))
            try assertErrorShape(third, .tooManyRequests)
            await gate.release()
            let (r1, r2) = try await (first, second)
            XCTAssertEqual(r1.status, .ok)
            XCTAssertEqual(r2.status, .ok)
            XCTAssertEqual(backend.requests.map(\.prompt), ["a", "b"])
        }
    }

    /// A client that goes away mid-stream stops the generation (checked on a real socket).
    func testClientDisconnectCancelsGeneration() async throws {
        #if !canImport(Glibc)
        throw XCTSkip("raw-socket client is written for Linux")
        #else
        let backend = FakeBackend()
        backend.tokenDelayNanos = 20_000_000
        try await makeApp(backend: backend).test(.live) { client in
            let port = try XCTUnwrap(client.port)
            let payload = #"{"prompt": "x", "max_tokens": 2000}"#
            let request = "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                + "Content-Length: \(payload.utf8.count)\r\n\r\n" + payload
            let sock = try RawSocket(port: port)
            try sock.send(request)
            let first = try sock.receive(until: "event: token")
            XCTAssertTrue(first.contains("200"), first)
            sock.close()
            for _ in 0..<300 where backend.cancelledCount == 0 { try await Task.sleep(nanoseconds: 10_000_000) }
            XCTAssertEqual(backend.cancelledCount, 1)
            let produced = backend.tokensProduced
            XCTAssertLessThan(produced, 2000)
            try await Task.sleep(nanoseconds: 200_000_000)
            XCTAssertEqual(backend.tokensProduced, produced, "generation kept going after the client left")
            let health = try await client.execute(uri: "/api/health", method: .get)
            XCTAssertEqual(try json(health.body)["active_generations"] as? Int, 0)
        }
        #endif
    }
}

#if canImport(Glibc)
import Glibc

/// A minimal blocking TCP client on 127.0.0.1, to drop a connection mid-response.
final class RawSocket {
    let fd: Int32
    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NSError(domain: "socket", code: Int(errno)) }
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { Glibc.close(fd); throw NSError(domain: "connect", code: Int(errno)) }
    }

    func send(_ s: String) throws {
        let bytes = Array(s.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw NSError(domain: "send", code: Int(errno)) }
            sent += n
        }
    }

    func receive(until marker: String) throws -> String {
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while !String(decoding: out, as: UTF8.self).contains(marker) {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { throw NSError(domain: "recv", code: Int(errno)) }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func close() { Glibc.close(fd) }
}
#endif
