import Foundation
#if canImport(Glibc)
import Glibc
#endif

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
        guard ok == 0, listen(s, 16) == 0 else { throw POSIXError(.EADDRINUSE) }
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
