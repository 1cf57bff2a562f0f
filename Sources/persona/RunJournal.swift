import Foundation
import PersonaRuns
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Write-ahead journal of a batch `monitor`: one JSON line per finished prompt, fsync'd, so a run killed at any
/// point (even `kill -9`) resumes where it stopped with no lost or duplicated rows. A torn last line is dropped.
final class RunJournal {
    let url: URL
    private(set) var done: [Int: RunDocument] = [:]
    private var handle: FileHandle?

    /// Opens (or creates) the journal beside `out`; earlier entries must belong to the same prompt list.
    init(out: String, prompts: [String]) throws {
        url = URL(fileURLWithPath: out + ".partial.jsonl")
        if let data = try? Data(contentsOf: url) {
            var goodLength = 0
            var offset = 0
            for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                defer { offset += line.count + 1 }
                guard !line.isEmpty,
                      let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                      let i = obj["index"] as? Int, let p = obj["prompt"] as? String,
                      let runObj = obj["run"], let runData = try? JSONSerialization.data(withJSONObject: runObj),
                      let run = try? RunImport.load(data: runData, source: url.path).first else { break }
                guard i >= 0, i < prompts.count, prompts[i] == p else {
                    throw OutputError(description: "\(url.path): this journal belongs to a different prompt set (entry \(i)); delete it to start over")
                }
                done[i] = run
                goodLength = offset + line.count + 1
            }
            // Cut a torn last line (the process died mid-write) before appending.
            if goodLength < data.count { truncate(url.path, off_t(min(goodLength, data.count))) }
        } else {
            FileManager.default.createFile(atPath: url.path, contents: nil)
        }
        handle = try FileHandle(forWritingTo: url)
        handle?.seekToEndOfFile()
    }

    func append(index: Int, prompt: String, run: RunDocument) throws {
        let runObj = try JSONSerialization.jsonObject(with: run.jsonData(pretty: false))
        var line = try JSONSerialization.data(withJSONObject: ["index": index, "prompt": prompt, "run": runObj])
        line.append(UInt8(ascii: "\n"))
        handle?.write(line)
        if let fd = handle?.fileDescriptor { fsync(fd) }
        done[index] = run
    }

    /// Removes the journal once the output file is written.
    func finish() {
        try? handle?.close()
        try? FileManager.default.removeItem(at: url)
    }
}
