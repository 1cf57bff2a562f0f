import Foundation
import Hummingbird
import PersonaRuns

/// An error answered as `{"error": {"message": ..., "type": ...}}` (the OpenAI error shape).
public struct APIError: Error, HTTPResponseError, Sendable, CustomStringConvertible {
    public var status: HTTPResponse.Status
    public var message: String
    public var type: String
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, _ message: String, type: String? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.type = type ?? APIError.defaultType(status)
        self.headers = headers
    }

    public var description: String { "\(status.code) \(type): \(message)" }

    static func defaultType(_ s: HTTPResponse.Status) -> String {
        switch s.code {
        case 400, 405, 415, 422: return "invalid_request_error"
        case 401, 403: return "authentication_error"
        case 404: return "not_found_error"
        case 413: return "request_too_large"
        case 429: return "rate_limit_error"
        case 503: return "service_unavailable"
        default: return "server_error"
        }
    }

    static func badRequest(_ m: String) -> APIError { APIError(.badRequest, m) }

    /// What a stream's error event says when generation fails part way: an APIError's own message and type (a
    /// request the model cannot run is the client's error), anything else as a server error.
    static func streamFailure(_ error: Error) -> (message: String, type: String) {
        if let e = error as? APIError { return ("generation failed: " + e.message, e.type) }
        return ("generation failed: \(error)", "server_error")
    }
    static func notFound(_ m: String) -> APIError { APIError(.notFound, m) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        let body = JSONValue.object(["error": .object(["message": .string(message), "type": .string(type)])])
        var r = try jsonResponse(body, status: status)
        for f in headers { r.headers.append(f) }
        return r
    }
}

/// Encodes a value as a JSON response.
func jsonResponse<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, sortedKeys: Bool = true) throws -> Response {
    let e = JSONEncoder()
    e.outputFormatting = sortedKeys ? [.sortedKeys, .withoutEscapingSlashes] : [.withoutEscapingSlashes]
    let data = try e.encode(value)
    return Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
                    body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

/// Turns every error into the JSON error shape, so clients never get an HTML or empty body.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            throw e
        } catch let e as HTTPResponseError where e.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "request body is larger than the server's limit")
        } catch let e as HTTPResponseError {
            if e.status == .notFound { throw APIError(.notFound, "no route for \(request.method) \(request.uri.path)") }
            throw APIError(e.status, "\(e.status.reasonPhrase)")
        } catch is CancellationError {
            throw APIError(.serviceUnavailable, "request cancelled")
        } catch {
            context.logger.error("unhandled error on \(request.method) \(request.uri.path): \(error)")
            throw APIError(.internalServerError, "internal error")
        }
    }
}
