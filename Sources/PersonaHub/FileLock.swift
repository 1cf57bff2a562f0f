import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An exclusive flock(2) on huggingface_hub's lock file for a blob (`<root>/.locks/models--org--name/<etag>.lock`),
/// so two pulls (persona or Python) never write the same `.incomplete` file at once.
final class FileLock {
    private var fd: Int32

    private init(fd: Int32) { self.fd = fd }

    /// Waits (polling, without blocking a thread) until the lock is ours.
    static func acquire(_ url: URL) async throws -> FileLock {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let fd = open(url.path, O_RDWR | O_CREAT, 0o664)
        guard fd >= 0 else { throw HubError(.io, "\(url.path): cannot open the lock file (errno \(errno))") }
        while flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let e = errno
            guard e == EWOULDBLOCK || e == EINTR else {
                // A file system without flock: go on unlocked, as huggingface_hub's soft fallback would.
                return FileLock(fd: fd)
            }
            do { try await Task.sleep(nanoseconds: 200_000_000) } catch { close(fd); throw error }
        }
        return FileLock(fd: fd)
    }

    func release() {
        guard fd >= 0 else { return }
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
