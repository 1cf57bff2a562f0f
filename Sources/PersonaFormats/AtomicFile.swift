import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes a file by streaming into a temporary sibling, fsync, then rename(2): readers never see a partial file.
struct AtomicFileWriter {
    let url: URL
    private let tmpPath: String
    private var fd: Int32
    private(set) var written = 0

    init(url: URL) throws {
        self.url = url
        tmpPath = url.path + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        fd = open(tmpPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw FormatError(file: url.path, "cannot create temporary file (\(String(cString: strerror(errno))))")
        }
    }

    mutating func write(_ p: UnsafeRawBufferPointer) throws {
        guard var base = p.baseAddress else { return }
        var left = p.count
        while left > 0 {
            let n = Glibc_write(fd, base, left)
            if n < 0 {
                if errno == EINTR { continue }
                let msg = String(cString: strerror(errno))
                abort_()
                throw FormatError(file: url.path, "write failed (\(msg))")
            }
            base += n
            left -= n
            written += n
        }
    }

    mutating func write(_ d: Data) throws { try d.withUnsafeBytes { try write($0) } }
    mutating func write(_ b: [UInt8]) throws { try b.withUnsafeBytes { try write($0) } }

    mutating func pad(to align: Int) throws {
        let r = written % align
        if r != 0 { try write([UInt8](repeating: 0, count: align - r)) }
    }

    /// Flushes and renames over the destination.
    mutating func commit() throws {
        if fsync(fd) != 0 {
            let msg = String(cString: strerror(errno))
            abort_()
            throw FormatError(file: url.path, "fsync failed (\(msg))")
        }
        close(fd)
        fd = -1
        if rename(tmpPath, url.path) != 0 {
            let msg = String(cString: strerror(errno))
            unlink(tmpPath)
            throw FormatError(file: url.path, "rename failed (\(msg))")
        }
    }

    /// Removes the temporary file (after an error).
    mutating func abort_() {
        if fd >= 0 { close(fd); fd = -1 }
        unlink(tmpPath)
    }
}

private func Glibc_write(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Darwin)
    return Darwin.write(fd, p, n)
    #elseif canImport(Musl)
    return Musl.write(fd, p, n)
    #else
    return Glibc.write(fd, p, n)
    #endif
}
