import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `serve`'s check that it can listen on --host:--port, made before the run store is created or filled. The
/// server's own bind comes later and reported a taken port as "bind(descriptor:ptr:bytes:): Address already in
/// use) (errno: 98)", after the dashboard's address had been printed as if it were up.
enum PortCheck {
    /// Binds a TCP socket to host:port (SO_REUSEADDR, as the server's own socket) and closes it; throws a
    /// ValidationError naming the option when that fails.
    static func requireFree(host: String, port: Int) throws {
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(host, String(port), &hints, &list)
        guard rc == 0, let first = list else {
            throw ValidationError("--host \(host): not an address of this machine (\(String(cString: gai_strerror(rc))))")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return }   // no socket to test with: let the server report what it finds
        defer { close(fd) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) != 0 else { return }
        let code = errno
        switch code {
        case EADDRINUSE:
            throw ValidationError("--port \(port): \(host):\(port) is already in use (another persona serve?); choose another --port")
        case EACCES:
            throw ValidationError("--port \(port): not allowed to listen on \(host):\(port) (ports below 1024 need privileges); choose another --port")
        case EADDRNOTAVAIL:
            throw ValidationError("--host \(host): not an address of this machine")
        default:
            throw ValidationError("--port \(port): cannot listen on \(host):\(port) (\(String(cString: strerror(code))))")
        }
    }
}
