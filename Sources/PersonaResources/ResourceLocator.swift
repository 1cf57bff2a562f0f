import Foundation
import PersonaHash

// Where the shipped resources (trait definitions, the dashboard, example runs) are found at run time.
// Bundle.module is not used: its accessor stops the program when the bundle is missing, and a copied binary
// has no bundle beside it. Three places are tried, in order:
//  1. SwiftPM's bundle folders beside the executable (`swift build` output, or a release folder copied whole);
//  2. a ustar archive of those folders appended to the executable itself (Scripts/build_release.sh), unpacked
//     once into the user's cache folder;
//  3. the source tree the binary was built from (a development build run from anywhere).

public enum ResourceLocator {
    /// The folder `subpath` of the SwiftPM resource bundle `bundle` (e.g. "PersonaScope_PersonaCore", "traits"),
    /// or nil when no copy is found. `source` is the folder in the source tree.
    public static func folder(bundle: String, subpath: String, source: URL) -> URL? {
        var candidates: [URL] = []
        for base in [Bundle.main.bundleURL, Bundle.main.executableURL?.deletingLastPathComponent()].compactMap({ $0 }) {
            candidates.append(contentsOf: bundleLayouts(base, bundle, subpath))
        }
        if let root = embeddedRoot { candidates.append(contentsOf: bundleLayouts(root, bundle, subpath)) }
        candidates.append(source)
        return candidates.first { isDirectory($0) }
    }

    private static func bundleLayouts(_ base: URL, _ bundle: String, _ subpath: String) -> [URL] {
        [base.appendingPathComponent("\(bundle).resources/\(subpath)"),
         base.appendingPathComponent("\(bundle).bundle/Contents/Resources/\(subpath)"),
         base.appendingPathComponent("\(bundle).bundle/\(subpath)")]
    }

    private static func isDirectory(_ u: URL) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: u.path, isDirectory: &d) && d.boolValue
    }

    /// The unpacked copy of the archive appended to the executable, or nil when it has none.
    static let embeddedRoot: URL? = {
        guard let exe = Bundle.main.executableURL,
              let payload = try? EmbeddedArchive.payload(of: exe) else { return nil }
        return try? EmbeddedArchive.unpackOnce(payload)
    }()
}

/// An archive appended to an executable: `<ELF or Mach-O><ustar bytes><length: UInt64 LE><"PERSONA\0">`.
/// The loader ignores bytes after the program's segments, so the binary runs as before.
public enum EmbeddedArchive {
    static let magic = Array("PERSONA\0".utf8)

    /// The appended ustar bytes of `executable`, or nil when it carries none.
    public static func payload(of executable: URL) throws -> Data? {
        let h = try FileHandle(forReadingFrom: executable)
        defer { try? h.close() }
        let size = try h.seekToEnd()
        guard size >= 16 else { return nil }
        try h.seek(toOffset: size - 16)
        guard let trailer = try h.read(upToCount: 16), trailer.count == 16, Array(trailer.suffix(8)) == magic else { return nil }
        let length = trailer.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard length > 0, length <= size - 16 else { return nil }
        try h.seek(toOffset: size - 16 - length)
        return try h.read(upToCount: Int(length))
    }

    /// Unpacks `payload` into `<cache>/persona/resources/<sha256 prefix>` unless a complete copy is there; the
    /// folder is built under a temporary name and renamed, so concurrent first runs do not see a half copy.
    static func unpackOnce(_ payload: Data) throws -> URL {
        let env = ProcessInfo.processInfo.environment
        let cache = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? env["HOME"].map { URL(fileURLWithPath: $0).appendingPathComponent(".cache") }
            ?? FileManager.default.temporaryDirectory
        var hasher = SHA256Hasher()
        hasher.update(payload)
        let digest = hasher.hexDigest().prefix(16)
        let dest = cache.appendingPathComponent("persona/resources/\(digest)")
        let fm = FileManager.default
        if fm.fileExists(atPath: dest.path) { return dest }
        let tmp = cache.appendingPathComponent("persona/resources/.\(digest)-\(getpid())-\(UUID().uuidString)")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: true)
        do {
            try Ustar.extract(payload, into: tmp)
            try fm.moveItem(at: tmp, to: dest)
        } catch {
            try? fm.removeItem(at: tmp)
            if fm.fileExists(atPath: dest.path) { return dest }   // another process won the race
            throw error
        }
        return dest
    }
}

/// The part of POSIX ustar that `tar --format=ustar` writes for plain files and folders.
enum Ustar {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func extract(_ data: Data, into root: URL) throws {
        let bytes = [UInt8](data)
        let fm = FileManager.default
        var offset = 0
        while offset + 512 <= bytes.count {
            let header = bytes[offset ..< offset + 512]
            if header.allSatisfy({ $0 == 0 }) { break }   // end of archive
            func field(_ start: Int, _ length: Int) -> String {
                let raw = header[header.startIndex + start ..< header.startIndex + start + length]
                return String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            let name = field(0, 100), prefix = field(345, 155)
            let sizeText = field(124, 12).trimmingCharacters(in: .whitespaces)
            guard let size = Int(sizeText, radix: 8), size >= 0 else { throw Failure(description: "bad size in entry '\(name)'") }
            let path = prefix.isEmpty ? name : prefix + "/" + name
            // split at "/" scalars: "/" and a combining mark after it are one Character, one path separator
            let parts = path.unicodeScalars.split(separator: "/").map { String($0) }.filter { $0 != "." }
            guard !parts.isEmpty, !parts.contains(".."), path.unicodeScalars.first != "/" else {
                throw Failure(description: "unsafe path '\(path)' in the embedded archive")
            }
            let target = parts.reduce(root) { $0.appendingPathComponent(String($1)) }
            let type = header[header.startIndex + 156]
            let body = offset + 512
            guard body + size <= bytes.count else { throw Failure(description: "entry '\(path)' runs past the archive") }
            switch type {
            case UInt8(ascii: "5"):
                try fm.createDirectory(at: target, withIntermediateDirectories: true)
            case UInt8(ascii: "0"), 0:
                try fm.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Data(bytes[body ..< body + size]).write(to: target)
            default:
                break   // links and special files are never packed
            }
            offset = body + (size + 511) / 512 * 512
        }
    }
}
