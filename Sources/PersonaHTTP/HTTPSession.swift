import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

// HTTP for the Hub client and the judge, on AsyncHTTPClient (SwiftNIO + BoringSSL), not URLSession: on Linux
// URLSession is libcurl, which a copied binary cannot bring along, and the release binary must run on a bare system.

/// A request to send.
public struct HTTPRequest: Sendable {
    public var url: URL
    public var method: String
    public private(set) var headers: [(name: String, value: String)] = []
    public var body: Data?
    /// Whole-exchange limit in seconds (nil: none; the session's idle read timeout still applies).
    public var timeout: TimeInterval?

    public init(url: URL, method: String = "GET") {
        self.url = url
        self.method = method
    }

    /// Sets (or with nil removes) a header, replacing any of the same name (case-insensitive).
    public mutating func setValue(_ value: String?, forHTTPHeaderField name: String) {
        headers.removeAll { $0.name.caseInsensitiveCompare(name) == .orderedSame }
        if let value { headers.append((name, value)) }
    }

    public func value(forHTTPHeaderField name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

/// A response's status line and headers; `url` is the address that answered (after any redirects).
public struct HTTPResponse: Sendable {
    public let statusCode: Int
    public let url: URL
    public let headers: [(name: String, value: String)]

    public func value(forHTTPHeaderField name: String) -> String? {
        headers.first { $0.name.caseInsensitiveCompare(name) == .orderedSame }?.value
    }
}

public struct HTTPTransportError: LocalizedError, CustomStringConvertible, Sendable {
    public let description: String
    public var errorDescription: String? { description }
    init(_ description: String) { self.description = description }
}

/// Sends requests with streamed bodies. Redirects are followed here (not by the library) so that credentials
/// never go to another host, and so that a caller can ask for the redirect itself instead.
public final class HTTPSession: Sendable {
    private let direct: HTTPClient
    private let proxied: HTTPClient?
    private let noProxy: [String]

    /// `timeout`: seconds without a byte read before a request fails. Proxies come from HTTPS_PROXY / HTTP_PROXY
    /// (and their lower-case forms), skipped for loopback and the hosts in NO_PROXY, as curl does.
    public init(timeout: TimeInterval = 60, maxConnectionsPerHost: Int = 8,
                environment: [String: String] = ProcessInfo.processInfo.environment) {
        func configuration(proxy: HTTPClient.Configuration.Proxy?) -> HTTPClient.Configuration {
            var c = HTTPClient.Configuration(
                redirectConfiguration: .disallow,
                timeout: .init(connect: .seconds(Int64(min(timeout, 30).rounded(.up))), read: .milliseconds(Int64(timeout * 1000))),
                proxy: proxy, decompression: .disabled)
            c.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, maxConnectionsPerHost))
            // a refused connection fails the request at once (the client would otherwise retry it until the
            // connect timeout, 30 s); the callers (Hub downloads, the judge) retry with their own back-off
            c.connectionPool.retryConnectionEstablishment = false
            return c
        }
        direct = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration(proxy: nil))
        let proxyURL = ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"].lazy
            .compactMap { environment[$0] }.first { !$0.isEmpty }
            .flatMap { URL(string: $0.contains("://") ? $0 : "http://" + $0) }
        if let p = proxyURL, let host = p.host {
            proxied = HTTPClient(eventLoopGroupProvider: .singleton,
                                 configuration: configuration(proxy: .server(host: host, port: p.port ?? 80)))
        } else {
            proxied = nil
        }
        noProxy = (environment["NO_PROXY"] ?? environment["no_proxy"] ?? "")
            .split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
    }

    deinit {
        // Non-blocking: a deinit may run on one of the event loop's threads.
        direct.shutdown { _ in }
        proxied?.shutdown { _ in }
    }

    private func client(for url: URL) -> HTTPClient {
        guard let proxied, let host = url.host?.lowercased() else { return direct }
        if host == "localhost" || host.hasPrefix("127.") || host == "::1" || host == "[::1]" { return direct }
        for rule in noProxy {
            if rule == "*" { return direct }
            let r = rule.hasPrefix(".") ? String(rule.dropFirst()) : rule
            if host == r || host.hasSuffix("." + r) { return direct }
        }
        return proxied
    }

    /// Sends `request`. With `followRedirects`, 301/302/303/307/308 answers are followed (at most 10), dropping
    /// `Authorization` when the host changes. `onResponse` sees the final status and headers; returning false skips
    /// the body. The body goes to `onData` chunk by chunk as it arrives.
    @discardableResult
    public func send(_ request: HTTPRequest, followRedirects: Bool,
                     onResponse: (HTTPResponse) -> Bool = { _ in true },
                     onData: (Data) throws -> Void) async throws -> HTTPResponse {
        var current = request
        for _ in 0...10 {
            var r = HTTPClientRequest(url: current.url.absoluteString)
            r.method = HTTPMethod(rawValue: current.method)
            for h in current.headers { r.headers.add(name: h.name, value: h.value) }
            if let body = current.body { r.body = .bytes(ByteBuffer(bytes: body)) }
            let deadline = current.timeout.map { NIODeadline.now() + .milliseconds(Int64($0 * 1000)) } ?? .distantFuture
            let response: HTTPClientResponse
            do {
                response = try await client(for: current.url).execute(r, deadline: deadline)
            } catch {
                if Task.isCancelled { throw CancellationError() }
                throw HTTPTransportError("\(current.method) \(current.url.absoluteString): \(Self.describe(error))")
            }
            let head = HTTPResponse(statusCode: Int(response.status.code), url: current.url,
                                    headers: response.headers.map { ($0.name, $0.value) })
            if followRedirects, [301, 302, 303, 307, 308].contains(head.statusCode),
               let location = head.value(forHTTPHeaderField: "Location"),
               let next = URL(string: location, relativeTo: current.url)?.absoluteURL {
                if next.host != current.url.host { current.setValue(nil, forHTTPHeaderField: "Authorization") }
                if head.statusCode == 303 { current.method = "GET"; current.body = nil }
                current.url = next
                continue
            }
            guard onResponse(head) else { return head }
            do {
                for try await chunk in response.body { try onData(Data(chunk.readableBytesView)) }
            } catch let e as HTTPClientError {
                if Task.isCancelled { throw CancellationError() }
                throw HTTPTransportError("\(current.method) \(current.url.absoluteString): \(Self.describe(e))")
            }
            return head
        }
        throw HTTPTransportError("\(request.url.absoluteString): more than 10 redirects")
    }

    /// Sends `request` and collects the whole body (small API answers, HEAD).
    public func fetch(_ request: HTTPRequest, followRedirects: Bool) async throws -> (HTTPResponse, Data) {
        var data = Data()
        let response = try await send(request, followRedirects: followRedirects, onData: { data.append($0) })
        return (response, data)
    }

    private static func describe(_ error: Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout: return "connection timed out"
            case .readTimeout: return "no data within the read timeout"
            case .deadlineExceeded: return "timed out"
            case .remoteConnectionClosed: return "the server closed the connection"
            case .cancelled: return "cancelled"
            default: return "\(e)"
            }
        }
        return "\(error)"
    }
}
