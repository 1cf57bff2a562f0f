import Foundation
import Hummingbird

/// Requires `Authorization: Bearer <key>` on /api and /v1 when a key is configured. The key is never logged.
struct AuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let apiKey: String?

    /// Judged on the first non-empty path component, as the router matches: "//api/health" reaches /api/health.
    static func isProtected(_ path: String) -> Bool {
        guard let first = path.split(separator: "/", omittingEmptySubsequences: true).first(where: { $0 != "." }) else { return false }
        let name = (String(first).removingPercentEncoding ?? String(first)).lowercased()
        return name == "api" || name == "v1"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let key = apiKey, !key.isEmpty, AuthMiddleware.isProtected(request.uri.path) else {
            return try await next(request, context)
        }
        let header = request.headers[.authorization] ?? ""
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), constantTimeEqual(Array(header.utf8.dropFirst(prefix.utf8.count)), Array(key.utf8)) else {
            throw APIError(.unauthorized, header.isEmpty ? "missing Authorization: Bearer <api key>" : "invalid API key",
                           headers: [.wwwAuthenticate: "Bearer"])
        }
        return try await next(request, context)
    }

    /// Compares without an early exit so response time does not reveal how much of the key matched.
    func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) {
            diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0)
        }
        return diff == 0
    }
}

/// Serves the dashboard from files read once at start-up into memory: only those exact paths can be
/// served, so no request path can reach outside the folder.
struct StaticFilesMiddleware<Context: RequestContext>: RouterMiddleware {
    struct File: Sendable { let data: Data; let contentType: String }
    let files: [String: File]

    /// Reads every regular file under `root` (no hidden files, no links leaving the folder, 64 MiB in all at most).
    static func load(root: URL?) -> [String: File] {
        guard let root else { return [:] }
        let base = root.resolvingSymlinksInPath().standardizedFileURL
        let basePath = base.path.hasSuffix("/") ? base.path : base.path + "/"
        guard let e = FileManager.default.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey],
                                                     options: [.skipsHiddenFiles]) else { return [:] }
        var out: [String: File] = [:]
        var total = 0
        for case let url as URL in e {
            let real = url.resolvingSymlinksInPath().standardizedFileURL
            guard real.path.hasPrefix(basePath),
                  (try? real.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true,
                  let data = try? Data(contentsOf: real) else { continue }
            total += data.count
            if total > 64 << 20 { break }
            let rel = String(real.path.dropFirst(basePath.count))
            out["/" + rel] = File(data: data, contentType: contentType(for: real.pathExtension))
        }
        return out
    }

    static func contentType(for ext: String) -> String {
        switch ext.lowercased() {
        case "html", "htm": return "text/html; charset=utf-8"
        case "js", "mjs": return "text/javascript; charset=utf-8"
        case "css": return "text/css; charset=utf-8"
        case "json", "map": return "application/json; charset=utf-8"
        case "svg": return "image/svg+xml"
        case "png": return "image/png"
        case "ico": return "image/x-icon"
        case "woff2": return "font/woff2"
        case "txt", "md": return "text/plain; charset=utf-8"
        default: return "application/octet-stream"
        }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .get || request.method == .head, !AuthMiddleware<Context>.isProtected(request.uri.path) else {
            return try await next(request, context)
        }
        let path = request.uri.path == "/" ? "/index.html" : request.uri.path
        guard let f = files[path] else { return try await next(request, context) }
        var headers: HTTPFields = [.contentType: f.contentType, .cacheControl: "no-cache"]
        headers[HTTPFields.Element.Name("X-Content-Type-Options")!] = "nosniff"
        headers[.contentLength] = String(f.data.count)
        let body = request.method == .head ? ResponseBody() : ResponseBody(byteBuffer: ByteBuffer(bytes: f.data))
        return Response(status: .ok, headers: headers, body: body)
    }
}
