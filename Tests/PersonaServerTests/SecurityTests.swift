import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PersonaRuns
import XCTest
@testable import PersonaTestSupport
@testable import PersonaServer
#if canImport(Glibc)
import Glibc
#endif

/// Hostile network clients: path traversal (static files and run ids, sent raw so that no client library
/// normalises the path first), the API key on every /api and /v1 route, body and token limits, CORS, and no
/// secrets in the server's log.
final class SecurityTests: XCTestCase {
    static let key = "k3y-Sup3r-S3cret-0123456789"

    /// Every route the server defines (APIRoutes.add, OpenAIRoutes.add), with a body where it takes one.
    static let routes: [(HTTPRequest.Method, String, String?)] = [
        (.get, "/api/health", nil), (.get, "/api/model", nil), (.get, "/api/traits", nil),
        (.get, "/api/runs", nil), (.post, "/api/runs", "[]"), (.get, "/api/runs/abc", nil), (.delete, "/api/runs/abc", nil),
        (.get, "/api/runs/abc/export", nil),
        (.post, "/api/generate", #"{"prompt": "Hi", "max_tokens": 2}"#),
        (.get, "/v1/models", nil),
        (.post, "/v1/chat/completions", #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}"#),
        (.post, "/v1/chat/completions", #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "stream": true}"#),
        (.post, "/v1/completions", #"{"prompt": "Hi", "max_tokens": 2}"#),
        (.post, "/v1/completions", #"{"prompt": "Hi", "max_tokens": 2, "stream": true}"#),
        (.get, "/api/no-such-route", nil), (.get, "/v1/no-such-route", nil),
    ]

    func testAPIKeyOnEveryRouteIncludingStreams() async throws {
        var config = ServerConfig(port: 0)
        config.apiKey = Self.key
        let backend = FakeBackend()
        try await makeApp(config, backend: backend).test(.router) { client in
            for (method, uri, payload) in Self.routes {
                let b = payload.map { body($0) }
                for auth in [nil, "Bearer wrong", "Bearer \(Self.key)x", "Bearer " + Self.key.dropLast(), Self.key, "Basic \(Self.key)",
                             "bearer \(Self.key)", "Bearer  \(Self.key)"] as [String?] {
                    var h = jsonHeaders
                    if let auth { h[.authorization] = auth }
                    let r = try await client.execute(uri: uri, method: method, headers: h, body: b)
                    XCTAssertEqual(r.status, .unauthorized, "\(method) \(uri) with \(auth ?? "no header")")
                    XCTAssertNotEqual(r.headers[.contentType], "text/event-stream", "\(uri): a refused stream must not start")
                    XCTAssertFalse(text(r.body).contains(Self.key), "\(uri): the key must not be echoed")
                }
                var h = jsonHeaders
                h[.authorization] = "Bearer \(Self.key)"
                let ok = try await client.execute(uri: uri, method: method, headers: h, body: b)
                XCTAssertNotEqual(ok.status, .unauthorized, "\(method) \(uri) with the key")
            }
        }
        // Only requests that carried the key reached the backend: the three generation routes, twice each at most.
        XCTAssertEqual(backend.requests.count, 5)
    }

    /// Paths a router might treat as /api/... although they do not start with "/api/" literally.
    func testAuthCannotBeSidesteppedByPathSpelling() async throws {
        var config = ServerConfig(port: 0)
        config.apiKey = Self.key
        try await makeApp(config).test(.live) { client in
            let port = client.port!
            for path in ["//api/health", "/./api/health", "/api/./health", "/x/../api/health", "/%61pi/health", "/api/health/",
                         "/API/health", "//v1/models", "/v1//models", "/./v1/models", "/api//runs", "/api/runs?x=/../"] {
                let (status, response) = try rawHTTP(port: port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                XCTAssertTrue(status == 401 || status == 404 || status == 400, "\(path): status \(status)\n\(response.prefix(300))")
                XCTAssertFalse(response.contains("\"status\""), "\(path): health answered without the key")
            }
        }
    }

    func testStaticFileTraversalOverRawHTTP() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sec-\(UUID().uuidString)")
        let dash = root.appendingPathComponent("Dashboard")
        try FileManager.default.createDirectory(at: dash.appendingPathComponent("js"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try Data("<!doctype html>ok".utf8).write(to: dash.appendingPathComponent("index.html"))
        try Data("let x = 1".utf8).write(to: dash.appendingPathComponent("js/app.js"))
        let secret = root.appendingPathComponent("secret.txt")
        try Data("TOP-SECRET-CONTENT".utf8).write(to: secret)
        var config = ServerConfig(port: 0)
        config.dashboardDirectory = dash
        try await makeApp(config).test(.live) { client in
            let port = client.port!
            let (ok, okBody) = try rawHTTP(port: port, "GET /js/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            XCTAssertEqual(ok, 200)
            XCTAssertTrue(okBody.hasSuffix("let x = 1"))
            let paths = ["/../secret.txt", "/js/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt", "/..%2fsecret.txt",
                         "/js/%2e%2e/%2e%2e/secret.txt", "/..%5csecret.txt", "/js/..\\..\\secret.txt", "/%252e%252e/secret.txt",
                         "/....//secret.txt", "/.%2e/secret.txt", "/js/app.js/../../secret.txt", secret.path, "/" + secret.path,
                         "/\(root.lastPathComponent)/secret.txt", "file://\(secret.path)", "http://x/../secret.txt",
                         "/js/app.js%00.html", "/index.html%00/../../secret.txt", "/..;/secret.txt"]
            for p in paths {
                let (status, response) = try rawHTTP(port: port, "GET \(p) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                XCTAssertFalse(response.contains("TOP-SECRET-CONTENT"), "\(p) leaked the file")
                XCTAssertNotEqual(status, 200, "\(p): status \(status)")
            }
        }
    }

    func testRunIDsCannotNameFiles() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sec-runs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Data(#"{"secret": "RUN-DIR-SECRET"}"#.utf8).write(to: dir.appendingPathComponent("secret.json"))
        let store = try SQLiteRunStore(path: dir.appendingPathComponent("runs.sqlite").path)
        try await makeApp(store: store).test(.live) { client in
            let port = client.port!
            let ids = ["..", "...", "../secret.json", "..%2fsecret.json", "%2e%2e%2fsecret.json", "%2E%2E", "..%2F..%2Fetc%2Fpasswd",
                       "%2Fetc%2Fpasswd", "/etc/passwd", "secret.json", "secret", "..%5csecret.json", "%00", "a%00b", "..%00",
                       String(repeating: "a", count: 5000), "%C0%AE%C0%AE%2F", "\(dir.path)/secret.json"]
            for id in ids {
                for (method, suffix) in [("GET", ""), ("DELETE", ""), ("GET", "/export?format=csv")] {
                    let (status, response) = try rawHTTP(port: port, "\(method) /api/runs/\(id)\(suffix) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    XCTAssertTrue([400, 404, 414, 431].contains(status), "\(method) \(id)\(suffix): status \(status)")
                    XCTAssertFalse(response.contains("RUN-DIR-SECRET"), "\(id) leaked a file")
                    XCTAssertFalse(response.contains("root:"), "\(id) leaked /etc/passwd")
                }
            }
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("secret.json").path), "DELETE reached a file")
    }

    func testTokenLimitsAndBodyLimits() async throws {
        var config = ServerConfig(port: 0)
        config.maxBodyBytes = 4096
        config.maxTokensPerRequest = 64
        let backend = FakeBackend()
        try await makeApp(config, backend: backend).test(.router) { client in
            let values = ["65", "1000000000", "9223372036854775807", "99999999999999999999", "-1", "0", "1e300", "16.5", "\"16\"", "null", "[16]"]
            for v in values {
                for (uri, fmt) in [("/api/generate", #"{"prompt": "Hi", "max_tokens": %@}"#),
                                   ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": %@}"#),
                                   ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": %@}"#),
                                   ("/v1/completions", #"{"prompt": "Hi", "max_tokens": %@, "stream": true}"#)] {
                    let payload = fmt.replacingOccurrences(of: "%@", with: v)
                    let r = try await client.execute(uri: uri, method: .post, headers: jsonHeaders, body: body(payload))
                    if v == "null" {
                        XCTAssertEqual(r.status, .ok, "\(uri) \(payload): null means the default")   // as OpenAI: null = unset
                        continue
                    }
                    let m = try assertErrorShape(r, .badRequest)
                    // Integers are range-checked by name; a number that is no Int (1e300, 16.5, 2^66) fails JSON decoding,
                    // whose Linux Foundation message names no field.
                    if Int(v) != nil || v.hasPrefix("\"") || v.hasPrefix("[") {
                        XCTAssertTrue(m.contains("max_tokens") || m.contains("max_completion_tokens"), "\(uri) \(payload): \(m)")
                    }
                }
            }
            // A body just under the limit is parsed; one byte over is 413 on every POST route, before any generation.
            // (padded in the prompt: /api/generate refuses unknown fields)
            let pad = { (n: Int) in #"{"max_tokens": 2, "prompt": "Hi"# + String(repeating: "a", count: n) + "\"}" }
            let base = pad(0).utf8.count
            let under = try await client.execute(uri: "/api/generate", method: .post, headers: jsonHeaders, body: body(pad(4096 - base)))
            XCTAssertEqual(under.status, .ok)
            for uri in ["/api/generate", "/api/runs", "/v1/chat/completions", "/v1/completions"] {
                let r = try await client.execute(uri: uri, method: .post, headers: jsonHeaders, body: body(pad(4097 - base)))
                try assertErrorShape(r, .contentTooLarge)
            }
        }
        // null max_tokens on the four route variants, plus the body-limit probe: nothing else reached the backend.
        XCTAssertEqual(backend.requests.count, 5)
        XCTAssertTrue(backend.requests.allSatisfy { $0.maxTokens <= 64 })
    }

    /// A chunked body (no Content-Length) larger than the limit is cut off with 413 too.
    func testChunkedOversizedBody() async throws {
        var config = ServerConfig(port: 0)
        config.maxBodyBytes = 4096
        let backend = FakeBackend()
        try await makeApp(config, backend: backend).test(.live) { client in
            var req = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            let chunk = String(repeating: " ", count: 1000)
            for _ in 0 ..< 20 { req += String(chunk.utf8.count, radix: 16) + "\r\n" + chunk + "\r\n" }
            req += "0\r\n\r\n"
            let (status, _) = try rawHTTP(port: client.port!, req)
            XCTAssertEqual(status, 413)
        }
        XCTAssertTrue(backend.requests.isEmpty)
    }

    func testCORSPreflightGetsNoGrantByDefault() async throws {
        try await makeApp().test(.router) { client in
            var h: HTTPFields = [.origin: "http://evil.example", .accessControlRequestMethod: "POST",
                                 .accessControlRequestHeaders: "authorization, content-type"]
            let pre = try await client.execute(uri: "/v1/chat/completions", method: .options, headers: h)
            XCTAssertNil(pre.headers[.accessControlAllowOrigin])
            XCTAssertNil(pre.headers[.accessControlAllowHeaders])
            XCTAssertNil(pre.headers[.accessControlAllowCredentials])
            h = [.origin: "http://evil.example"]
            for uri in ["/api/runs", "/v1/models", "/"] {
                let r = try await client.execute(uri: uri, method: .get, headers: h)
                XCTAssertNil(r.headers[.accessControlAllowOrigin], uri)
            }
        }
    }

    /// The server's log, captured at trace level while clients send the right key, wrong keys and errors,
    /// never contains a key or the Authorization header.
    func testNoSecretsInLogs() async throws {
        let sink = LogSink()
        var logger = Logger(label: "persona.server.test") { _ in CapturingLogHandler(sink: sink) }
        logger.logLevel = .trace
        var config = ServerConfig(port: 0)
        config.apiKey = Self.key
        config.maxBodyBytes = 2048
        let wrong = "wrong-\(Self.key.reversed())"
        let app = try await buildApplication(config, backend: FakeBackend(), store: InMemoryRunStore(), logger: logger)
        try await app.test(.live) { client in
            let port = client.port!
            for auth in ["Bearer \(Self.key)", "Bearer \(wrong)", Self.key] {
                for (method, uri, payload) in Self.routes {
                    var req = "\(method.rawValue) \(uri)?api_key=\(Self.key) HTTP/1.1\r\nHost: x\r\nAuthorization: \(auth)\r\nConnection: close\r\n"
                    if let payload { req += "Content-Type: application/json\r\nContent-Length: \(payload.utf8.count)\r\n\r\n\(payload)" } else { req += "\r\n" }
                    _ = try rawHTTP(port: port, req)
                }
                // malformed and oversized bodies, a bad id: error paths log too
                _ = try rawHTTP(port: port, "POST /api/runs HTTP/1.1\r\nHost: x\r\nAuthorization: \(auth)\r\nContent-Length: 5\r\nConnection: close\r\n\r\n{nope")
                let big = String(repeating: "x", count: 3000)
                _ = try rawHTTP(port: port, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: \(auth)\r\nContent-Length: \(big.utf8.count)\r\nConnection: close\r\n\r\n\(big)")
            }
        }
        let log = sink.text
        XCTAssertFalse(log.isEmpty, "nothing was logged: the capture does not work")
        XCTAssertFalse(log.contains(Self.key), "the API key appears in the log:\n\(log)")
        XCTAssertFalse(log.contains(wrong), "a presented (wrong) key appears in the log")
        XCTAssertFalse(log.lowercased().contains("authorization:"), "a request header dump appears in the log")
    }
}

// MARK: - helpers

final class LogSink: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ s: String) { lock.lock(); lines.append(s); lock.unlock() }
    var text: String { lock.lock(); defer { lock.unlock() }; return lines.joined(separator: "\n") }
}

/// Records every log line with its metadata (what a stream handler would print).
struct CapturingLogHandler: LogHandler {
    let sink: LogSink
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata extra: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        let all = metadata.merging(extra ?? [:]) { $1 }
        sink.append("\(level) \(message) \(all.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " "))")
    }
}
