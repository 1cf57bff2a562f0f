import Foundation
import Hummingbird
import HummingbirdTesting
import PersonaRuns
import XCTest
@testable import PersonaTestSupport
@testable import PersonaServer

func sharedReferenceURL(_ relative: String) -> URL? { Repository.sharedFile(relative) }
func requireShared(_ relative: String) throws -> URL { try Repository.requireShared(relative) }

/// Parses a JSON body into Foundation objects (an independent reader of what the server wrote).
func json(_ buffer: ByteBuffer) throws -> [String: Any] {
    let data = Data(buffer.readableBytesView)
    guard let o = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
        throw NSError(domain: "test", code: 1, userInfo: [NSLocalizedDescriptionKey: "not a JSON object: \(String(decoding: data, as: UTF8.self))"])
    }
    return o
}

func text(_ buffer: ByteBuffer) -> String { String(decoding: buffer.readableBytesView, as: UTF8.self) }

func body(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }
func body(_ d: Data) -> ByteBuffer { ByteBuffer(bytes: d) }

/// One Server-Sent Event.
struct SSEEvent { var event: String?; var data: String }

/// Parses an SSE stream (blank-line separated blocks of `field: value` lines).
func parseSSE(_ s: String) -> [SSEEvent] {
    var out: [SSEEvent] = []
    for block in s.components(separatedBy: "\n\n") where !block.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
        var ev: String?
        var data: [String] = []
        for line in block.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("event: ") { ev = String(line.dropFirst(7)) }
            else if line.hasPrefix("data: ") { data.append(String(line.dropFirst(6))) }
        }
        out.append(SSEEvent(event: ev, data: data.joined(separator: "\n")))
    }
    return out
}

func jsonObject(_ s: String) throws -> [String: Any] {
    guard let o = try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [String: Any] else {
        throw NSError(domain: "test", code: 2, userInfo: [NSLocalizedDescriptionKey: "not a JSON object: \(s)"])
    }
    return o
}

/// Asserts the OpenAI error shape and returns the message.
@discardableResult
func assertErrorShape(_ r: TestResponse, _ status: HTTPResponse.Status, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    XCTAssertEqual(r.status, status, text(r.body), file: file, line: line)
    let o = try json(r.body)
    let e = try XCTUnwrap(o["error"] as? [String: Any], file: file, line: line)
    let m = try XCTUnwrap(e["message"] as? String, file: file, line: line)
    XCTAssertFalse(m.isEmpty, file: file, line: line)
    XCTAssertNotNil(e["type"] as? String, file: file, line: line)
    return m
}

let jsonHeaders: HTTPFields = [.contentType: "application/json"]

func makeApp(_ config: ServerConfig = ServerConfig(port: 0), backend: (any GenerationBackend)? = FakeBackend(),
             store: any RunStore = InMemoryRunStore()) async throws -> some ApplicationProtocol {
    try await buildApplication(config, backend: backend, store: store)
}
