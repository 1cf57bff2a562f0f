import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Hub-shaped HTTP/1.1 server on a loopback POSIX socket (one request per connection):
/// `GET /api/models/{id}/revision/{rev}`, `HEAD|GET /{id}/resolve/{rev}/{file}` (LFS files answer
/// 302 to `http://localhost:{port}/cdn/{sha256}`, another host name like the Hub's CDN, with X-Linked-Etag/X-Linked-Size, small files 200 with a git-sha1 ETag),
/// and `GET /cdn/{sha256}` with Range (206). Hashes come from `sha256sum` and `git hash-object`,
/// not from the code under test.
final class FakeHub: @unchecked Sendable {
    struct File {
        var name: String
        var data: Data
        var sha256: String
        var gitSHA1: String
        var isLFS: Bool
    }
    struct Repo {
        var commit: String
        var branches: [String: String]
        var files: [String: File]
        var gated = false
    }
    struct Request {
        var method: String
        var path: String
        var headers: [String: String]
    }

    private let lock = NSLock()
    private var listenFD: Int32 = -1
    private(set) var port: UInt16 = 0
    private var _repos: [String: Repo] = [:]
    private var _requests: [Request] = []
    private var _cutOnce: [String: Int] = [:]   // file name -> bytes sent before closing, first GET only
    private var _corrupt: Set<String> = []       // file names served with one byte flipped
    var token = "hf_testtoken"
    /// Seconds the storage host waits before each body (to observe parallel downloads).
    var cdnDelay: Double = 0
    private var cdnActive = 0
    private(set) var cdnMaxActive = 0

    var endpoint: URL { URL(string: "http://127.0.0.1:\(port)")! }
    var requests: [Request] { lock.lock(); defer { lock.unlock() }; return _requests }

    func addRepo(_ id: String, _ repo: Repo) { lock.lock(); _repos[id] = repo; lock.unlock() }
    func cutFirstDownload(of file: String, after bytes: Int) { lock.lock(); _cutOnce[file] = bytes; lock.unlock() }
    func corrupt(_ file: String) { lock.lock(); _corrupt.insert(file); lock.unlock() }

    /// Files of a folder on disk, with independent hashes; `.safetensors`/`.gguf` are LFS as on the Hub.
    static func files(in folder: URL, names: [String]) throws -> [String: File] {
        var out: [String: File] = [:]
        for n in names {
            let url = folder.appendingPathComponent(n)
            let data = try Data(contentsOf: url)
            out[n] = File(name: n, data: data, sha256: try sha256sum(url), gitSHA1: try gitHashObject(url),
                          isLFS: n.hasSuffix(".safetensors") || n.hasSuffix(".gguf"))
        }
        return out
    }

    static func run(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: out, as: UTF8.self)
    }

    static func sha256sum(_ url: URL) throws -> String {
        String(try run("sha256sum", [url.path]).prefix(64))
    }

    static func gitHashObject(_ url: URL) throws -> String {
        try run("git", ["hash-object", "--no-filters", url.path]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    // MARK: socket server

    func start() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw NSError(domain: "FakeHub", code: 1) }
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
        }
        guard ok, listen(fd, 64) == 0 else { close(fd); throw NSError(domain: "FakeHub", code: 2) }
        port = UInt16(bigEndian: addr.sin_port)
        listenFD = fd
        let t = Thread { [self] in
            while true {
                let c = accept(fd, nil, nil)
                if c < 0 { if errno == EINTR { continue }; return }
                let th = Thread { self.handle(c) }
                th.start()
            }
        }
        t.start()
    }

    func stop() {
        if listenFD >= 0 { shutdown(listenFD, Int32(SHUT_RDWR)); close(listenFD); listenFD = -1 }
    }

    private func handle(_ c: Int32) {
        defer { close(c) }
        var buf = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !(buf.count >= 4 && buf.suffix(4) == [13, 10, 13, 10]) {
            let n = recv(c, &chunk, chunk.count, 0)
            if n <= 0 { return }
            buf += chunk[0..<n]
            if buf.count > 65536 { return }
        }
        let text = String(decoding: buf, as: UTF8.self)
        let lines = text.components(separatedBy: "\r\n")
        let first = lines[0].split(separator: " ")
        guard first.count >= 2 else { return }
        var headers: [String: String] = [:]
        for l in lines.dropFirst() {
            guard let colon = l.firstIndex(of: ":") else { continue }
            headers[l[..<colon].lowercased()] = l[l.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let req = Request(method: String(first[0]), path: String(first[1]), headers: headers)
        lock.lock(); _requests.append(req); lock.unlock()
        route(req, c)
    }

    private func send(_ c: Int32, status: Int, headers: [String: String], body: Data, head: Bool = false, cutAfter: Int? = nil) {
        let reason = [200: "OK", 206: "Partial Content", 302: "Found", 401: "Unauthorized", 404: "Not Found", 416: "Range Not Satisfiable"][status] ?? "Status"
        var h = "HTTP/1.1 \(status) \(reason)\r\n"
        var all = headers
        if all["Content-Length"] == nil { all["Content-Length"] = "\(body.count)" }
        all["Connection"] = "close"
        for (k, v) in all.sorted(by: { $0.key < $1.key }) { h += "\(k): \(v)\r\n" }
        h += "\r\n"
        var out = Data(h.utf8)
        if !head { out += cutAfter.map { body.prefix($0) } ?? body }
        out.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Foundation.send(c, raw.baseAddress! + off, raw.count - off, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                off += n
            }
        }
        if cutAfter != nil { shutdown(c, Int32(SHUT_RDWR)) }
    }

    private func json(_ c: Int32, _ status: Int, _ obj: Any, headers: [String: String] = [:]) {
        let data = try! JSONSerialization.data(withJSONObject: obj)
        var h = headers
        h["Content-Type"] = "application/json"
        send(c, status: status, headers: h, body: data)
    }

    private func route(_ r: Request, _ c: Int32) {
        let pathOnly = String(r.path.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)[0])
        let parts = pathOnly.split(separator: "/").map { String($0).removingPercentEncoding ?? String($0) }
        lock.lock()
        let repos = _repos
        lock.unlock()
        let authorized = r.headers["authorization"] == "Bearer \(token)"

        // /api/models/{org}/{name}/revision/{rev}
        if parts.count == 6, parts[0] == "api", parts[1] == "models", parts[4] == "revision" {
            let id = parts[2] + "/" + parts[3]
            guard let repo = repos[id] else {
                return json(c, 404, ["error": "Repository not found"], headers: ["X-Error-Code": "RepoNotFound"])
            }
            guard let commit = repo.branches[parts[5]] ?? (repo.commit == parts[5] ? repo.commit : nil) else {
                return json(c, 404, ["error": "Invalid rev id"], headers: ["X-Error-Code": "RevisionNotFound"])
            }
            let siblings: [[String: Any]] = repo.files.values.sorted { $0.name < $1.name }.map { f in
                var s: [String: Any] = ["rfilename": f.name, "size": f.data.count, "blobId": f.gitSHA1]
                if f.isLFS { s["lfs"] = ["sha256": f.sha256, "size": f.data.count, "pointerSize": 134] }
                return s
            }
            return json(c, 200, ["id": id, "sha": commit, "gated": repo.gated, "siblings": siblings])
        }
        // /{org}/{name}/resolve/{rev}/{file...}
        if parts.count >= 5, parts[2] == "resolve" {
            let id = parts[0] + "/" + parts[1]
            let fileName = parts[4...].joined(separator: "/")
            guard let repo = repos[id] else {
                return send(c, status: 404, headers: ["X-Error-Code": "RepoNotFound"], body: Data("Repository not found".utf8), head: r.method == "HEAD")
            }
            if repo.gated && !authorized {
                return send(c, status: 401, headers: ["X-Error-Code": "GatedRepo", "X-Error-Message": "Access to model \(id) is restricted."],
                            body: Data("Access restricted".utf8), head: r.method == "HEAD")
            }
            guard let commit = repo.branches[parts[3]] ?? (repo.commit == parts[3] ? repo.commit : nil) else {
                return send(c, status: 404, headers: ["X-Error-Code": "RevisionNotFound"], body: Data(), head: r.method == "HEAD")
            }
            guard let f = repo.files[fileName] else {
                return send(c, status: 404, headers: ["X-Error-Code": "EntryNotFound"], body: Data(), head: r.method == "HEAD")
            }
            if f.isLFS {
                return send(c, status: 302, headers: [
                    "Location": "http://localhost:\(port)/cdn/\(f.sha256)?name=\(fileName)",
                    "X-Linked-Etag": "\"\(f.sha256)\"", "X-Linked-Size": "\(f.data.count)",
                    "X-Repo-Commit": commit, "ETag": "\"\(f.gitSHA1)\"",
                ], body: Data(), head: r.method == "HEAD")
            }
            return send(c, status: 200, headers: ["ETag": "\"\(f.gitSHA1)\"", "X-Repo-Commit": commit],
                        body: f.data, head: r.method == "HEAD")
        }
        // /cdn/{sha256}: the storage host; no auth, Range supported.
        if parts.count == 2, parts[0] == "cdn" {
            guard let f = repos.values.lazy.flatMap({ $0.files.values }).first(where: { $0.sha256 == parts[1] }) else {
                return send(c, status: 404, headers: [:], body: Data())
            }
            lock.lock()
            cdnActive += 1
            cdnMaxActive = max(cdnMaxActive, cdnActive)
            lock.unlock()
            if cdnDelay > 0 { Thread.sleep(forTimeInterval: cdnDelay) }
            defer { lock.lock(); cdnActive -= 1; lock.unlock() }
            lock.lock()
            let cut = _cutOnce.removeValue(forKey: f.name)
            var body = f.data
            if _corrupt.contains(f.name), !body.isEmpty { body[body.count / 2] ^= 0xff }
            lock.unlock()
            if let range = r.headers["range"], range.hasPrefix("bytes="), range.hasSuffix("-"),
               let start = Int(range.dropFirst(6).dropLast()) {
                guard start < body.count else {
                    return send(c, status: 416, headers: ["Content-Range": "bytes */\(body.count)"], body: Data())
                }
                return send(c, status: 206, headers: ["Content-Range": "bytes \(start)-\(body.count - 1)/\(body.count)"],
                            body: body.subdata(in: start..<body.count), head: r.method == "HEAD", cutAfter: cut)
            }
            return send(c, status: 200, headers: ["Accept-Ranges": "bytes"], body: body, head: r.method == "HEAD", cutAfter: cut)
        }
        send(c, status: 404, headers: [:], body: Data("no route".utf8))
    }
}
