import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Read-only memory map of a whole file (mmap PROT_READ, MAP_PRIVATE); unmapped in deinit.
///
/// Parsers only ever read through `bytes` with explicit bounds checks. (If another process truncates
/// the file while it is mapped the OS raises SIGBUS; that cannot be defended against from here.)
public final class MappedFile: @unchecked Sendable {
    public let url: URL
    public let bytes: UnsafeRawBufferPointer
    private let mapped: Bool
    private let allocated: Bool

    /// Maps `url`. Throws a `FormatError` naming the path if it is not a regular file or cannot be opened or mapped.
    /// An empty file is allowed (`bytes.count == 0`).
    public init(url: URL) throws {
        self.url = url
        let path = url.path
        // stat before open: opening a FIFO read-only would block.
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw FormatError(file: path, "cannot open (\(String(cString: strerror(errno))))")
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw FormatError(file: path, "not a regular file")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw FormatError(file: path, "cannot open (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size >= 0,
              let size = Int(exactly: st.st_size) else {
            throw FormatError(file: path, "cannot stat or not a regular file")
        }
        if size == 0 {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            mapped = false
            allocated = false
            return
        }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw FormatError(file: path, "cannot mmap \(size) bytes (\(String(cString: strerror(errno))))")
        }
        bytes = UnsafeRawBufferPointer(start: UnsafeRawPointer(p), count: size)
        mapped = true
        allocated = false
    }

    /// An in-memory copy of `contents` standing in for a file named `url` (parsers and fuzz tests use it
    /// without touching the disk).
    init(url: URL, contents: [UInt8]) {
        self.url = url
        mapped = false
        if contents.isEmpty {
            bytes = UnsafeRawBufferPointer(start: nil, count: 0)
            allocated = false
            return
        }
        let p = UnsafeMutableRawPointer.allocate(byteCount: contents.count, alignment: 64)
        contents.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: contents.count) }
        bytes = UnsafeRawBufferPointer(start: p, count: contents.count)
        allocated = true
    }

    deinit {
        if mapped, let base = bytes.baseAddress {
            munmap(UnsafeMutableRawPointer(mutating: base), bytes.count)
        } else if allocated, let base = bytes.baseAddress {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// File name used in error messages.
    var displayName: String { url.path }
}
