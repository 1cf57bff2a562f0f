import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A write that failed, said in one line: the option, the path and the system's reason.
struct OutputError: Error, CustomStringConvertible {
    let description: String
}

/// Output files of long commands: checked before the work starts (a read-only or missing folder should not cost
/// minutes of generation first), written atomically, with errors that name the option, the path and the reason.
enum OutputFile {
    /// Throws unless a new file can be created beside `path` (a probe file is created and removed).
    static func checkWritable(_ path: String, option: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else {
            throw OutputError(description: "\(option) \(path): folder \(dir.path) does not exist")
        }
        try checkFolderWritable(dir, option: "\(option) \(path)")
    }

    /// Throws unless a new file can be created in `dir`.
    static func checkFolderWritable(_ dir: URL, option: String) throws {
        let probe = dir.appendingPathComponent(".persona-write-probe-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        let fd = open(probe.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw OutputError(description: "\(option): cannot create files in \(dir.path) (\(String(cString: strerror(errno))))")
        }
        close(fd)
        unlink(probe.path)
    }

    /// Writes `data` to `path` atomically (temporary sibling, then rename).
    static func write(_ data: Data, to path: String, option: String) throws {
        do {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
        } catch {
            throw OutputError(description: "\(option) \(path): cannot write \(data.count) bytes (\(reason(error)))")
        }
    }

    /// The POSIX reason under a Foundation error ("No space left on device", "Read-only file system").
    static func reason(_ error: Error) -> String {
        let ns = error as NSError
        if let u = ns.userInfo[NSUnderlyingErrorKey] as? NSError, u.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(u.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        if ns.domain == NSCocoaErrorDomain {   // Linux Foundation often gives no underlying POSIX error
            switch ns.code {
            case NSFileWriteVolumeReadOnlyError: return String(cString: strerror(EROFS))
            case NSFileWriteOutOfSpaceError: return String(cString: strerror(ENOSPC))
            case NSFileWriteNoPermissionError: return String(cString: strerror(EACCES))
            default: break
            }
        }
        let text = ns.localizedDescription
        let generic = "The operation could not be completed. "
        return text.hasPrefix(generic) ? String(text.dropFirst(generic.count)) : text
    }
}

/// The bytes of an input file; "-" is standard input. Pipes, FIFOs and /dev/stdin are read to their end
/// (Foundation's Data(contentsOf:) refuses files whose size it cannot stat).
func readInput(_ path: String) throws -> Data {
    if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
    var st = stat()
    if stat(path, &st) == 0, (st.st_mode & S_IFMT) != S_IFREG {
        guard let h = FileHandle(forReadingAtPath: path) else {
            throw CocoaError(.fileReadNoPermission, userInfo: [NSFilePathErrorKey: path])
        }
        defer { try? h.close() }
        return h.readDataToEndOfFile()
    }
    return try Data(contentsOf: URL(fileURLWithPath: path))
}
