import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An append-only JSON-lines file written ahead: each record is one line, flushed with fsync before the
/// next one starts, so a killed process loses at most the line in flight. On open, a torn last line
/// (no trailing newline, or not valid JSON) is cut off.
final class AppendLog<Record: Codable> {
    let url: URL
    private var fd: Int32 = -1

    init(_ url: URL) { self.url = url }
    deinit { if fd >= 0 { close(fd) } }

    /// Reads every complete record and truncates any torn tail.
    func readAll() throws -> [Record] {
        guard FileManager.default.fileExists(atPath: url.path) else { return [] }
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw VectorError("\(url.path): cannot read (\(error.localizedDescription))") }
        var records: [Record] = []
        var goodEnd = 0
        var start = data.startIndex
        let decoder = JSONDecoder()
        var lineNo = 0
        while start < data.endIndex {
            guard let nl = data[start...].firstIndex(of: 0x0A) else { break }   // torn tail without newline
            lineNo += 1
            let line = data[start..<nl]
            if !line.isEmpty {
                do { records.append(try decoder.decode(Record.self, from: line)) } catch {
                    // A bad line that is not the last one means the file was edited or corrupted: stop loudly.
                    if nl + 1 < data.endIndex {
                        throw VectorError("\(url.path): line \(lineNo) is not a valid record (\(error.localizedDescription))")
                    }
                    break
                }
            }
            goodEnd = nl + 1 - data.startIndex
            start = nl + 1
        }
        if goodEnd < data.count { truncate(url.path, off_t(goodEnd)) }
        return records
    }

    func append(_ record: Record) throws {
        if fd < 0 {
            fd = open(url.path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw VectorError("\(url.path): cannot open for appending (\(String(cString: strerror(errno))))") }
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = try enc.encode(record)
        data.append(0x0A)
        try data.withUnsafeBytes { (p: UnsafeRawBufferPointer) in
            guard var base = p.baseAddress else { return }
            var left = p.count
            while left > 0 {
                let n = write(fd, base, left)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw VectorError("\(url.path): write failed (\(String(cString: strerror(errno))))")
                }
                base += n
                left -= n
            }
        }
        guard fsync(fd) == 0 else { throw VectorError("\(url.path): fsync failed (\(String(cString: strerror(errno))))") }
    }
}

/// The write-ahead logs of a folder that job-array tasks share: each task appends to `<stem>.shard-i-of-N.jsonl`,
/// a whole run to `<stem>.jsonl`, and every reader sees all of them.
enum ShardedLogs {
    static func log<R: Codable>(_ folder: URL, _ stem: String, _ shard: Shard) -> AppendLog<R> {
        AppendLog(folder.appendingPathComponent(shard.count > 1 ? "\(stem).shard-\(shard.folderName).jsonl" : "\(stem).jsonl"))
    }

    static func readAll<R: Codable>(_ folder: URL, _ stem: String) throws -> [R] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        var out: [R] = []
        for n in names.sorted() where n == "\(stem).jsonl" || (n.hasPrefix("\(stem).shard-") && n.hasSuffix(".jsonl")) {
            out += try AppendLog<R>(folder.appendingPathComponent(n)).readAll()
        }
        return out
    }
}
