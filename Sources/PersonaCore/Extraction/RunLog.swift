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

/// A resumable run folder: created if absent, its settings file written on the first run and compared on every
/// later one, so a rerun resumes only what it started.
enum RunFolder {
    /// `mismatch` ends the error when the folder holds other settings. `identity` maps settings to the part
    /// that decides what the folder's logs hold; settings that differ only elsewhere (a filter applied
    /// afterwards) are adopted: the file is rewritten and the `derived` files made under the old ones are
    /// removed, so nothing stale is read as the new settings' result. Returns whether settings were adopted.
    @discardableResult
    static func open<S: Codable & Equatable>(_ folder: URL, settingsFile: String, settings: S, mismatch: String,
                                             identity: ((S) -> S)? = nil, derived: [String] = []) throws -> Bool {
        do { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw VectorError("\(folder.path): cannot create the folder (\(error.localizedDescription))")
        }
        let file = folder.appendingPathComponent(settingsFile)
        guard let data = try? Data(contentsOf: file) else {
            try ExtractionRun.writeJSON(settings, to: file)
            return false
        }
        guard let old = try? JSONDecoder().decode(S.self, from: data) else {
            throw VectorError("\(file.path): unreadable run settings; use a new --out folder")
        }
        if old == settings { return false }
        if let identity, identity(old) == identity(settings) {
            for name in derived { try? FileManager.default.removeItem(at: folder.appendingPathComponent(name)) }
            try ExtractionRun.writeJSON(settings, to: file)
            return true
        }
        let diff = differences(old, settings)
        let listed = diff.prefix(6).joined(separator: "\n  ") + (diff.count > 6 ? "\n  (\(diff.count - 6) more)" : "")
        throw VectorError("\(folder.path) holds \(mismatch); use a new --out folder or the same settings to resume."
                          + (diff.isEmpty ? "" : "\n\(settingsFile) there / this command:\n  \(listed)"))
    }

    /// The leaves where two settings' JSON differ, as "path: old / new" (long strings cut).
    static func differences<S: Encodable>(_ a: S, _ b: S) -> [String] {
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        guard let da = try? enc.encode(a), let db = try? enc.encode(b),
              let ja = try? JSONSerialization.jsonObject(with: da, options: .fragmentsAllowed),
              let jb = try? JSONSerialization.jsonObject(with: db, options: .fragmentsAllowed) else { return [] }
        var out: [String] = []
        func json(_ v: Any?) -> String {
            guard let v, !(v is NSNull) else { return "(none)" }
            guard let d = try? JSONSerialization.data(withJSONObject: v, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes]),
                  let t = String(data: d, encoding: .utf8) else { return "\(v)" }
            return t
        }
        func show(_ t: String) -> String { t.count > 48 ? String(t.prefix(45)) + "..." : t }
        func walk(_ x: Any?, _ y: Any?, _ path: String) {
            if let dx = x as? [String: Any], let dy = y as? [String: Any] {
                for k in Set(dx.keys).union(dy.keys).sorted() { walk(dx[k], dy[k], path.isEmpty ? k : "\(path).\(k)") }
            } else if let ax = x as? [Any], let ay = y as? [Any], ax.count == ay.count {
                for i in ax.indices { walk(ax[i], ay[i], "\(path)[\(i)]") }
            } else {
                let a = json(x), b = json(y)
                if a != b { out.append("\(path): \(show(a)) / \(show(b))") }
            }
        }
        walk(ja, jb, "")
        return out
    }
}

/// Judging many answers with at most `inFlight` requests open: `job` turns an item into its request, `record`
/// receives each result as it arrives (written ahead by the caller), `progress` counts them.
enum JudgingQueue {
    static func run<Item, R: Sendable>(_ todo: [Item], inFlight: Int, progress: ExtractionProgress?,
                                       job: (Item) throws -> @Sendable () async throws -> R,
                                       record: (R) throws -> Void) async throws {
        var done = 0, next = 0
        try await withThrowingTaskGroup(of: R.self) { group in
            func launch() throws {
                let work = try job(todo[next])
                next += 1
                group.addTask { try await work() }
            }
            while next < min(max(1, inFlight), todo.count) { try launch() }
            while let r = try await group.next() {
                try record(r)
                done += 1
                progress?(done, todo.count, "judgments")
                if next < todo.count { try launch() }
            }
        }
    }

    /// The trait and coherence scores of one answer, both requests in flight at once.
    static func traitAndCoherence(_ judge: any Judge, traitPrompt: String, coherencePrompt: String) async throws -> (Double?, Double?) {
        async let t = judge.score(prompt: traitPrompt)
        async let c = judge.score(prompt: coherencePrompt)
        return (try await t, try await c)
    }
}
