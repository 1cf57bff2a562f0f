import ArgumentParser
import Foundation
import PersonaHub

struct Pull: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a model from the Hugging Face Hub into the shared cache (then use --model ORG/NAME).",
        discussion: """
        Fetches config, tokenizer files and safetensors weights (or one GGUF) into the Hugging Face cache \
        (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub) in huggingface_hub's layout, so \
        Python tools share it. HF_ENDPOINT picks the server; HF_TOKEN or the huggingface-cli login token \
        opens gated models. Interrupted downloads resume when the command is run again. Prints the snapshot \
        folder on standard output.
        """)

    @Argument(help: "Model id: org/name (org/name@revision also works).") var id: String
    @Option(help: "Branch, tag or commit (default main).") var revision: String?
    @Option(name: .customLong("include"), help: "Only files matching this glob (repeatable), e.g. '*.json'.") var include: [String] = []
    @Option(help: "The GGUF file to fetch from a repository with several.") var gguf: String?
    @Option(help: "Files downloaded at once.") var jobs: Int = 4
    @Flag(help: "No progress bar.") var quiet = false

    func validate() throws {
        if jobs < 1 || jobs > 32 { throw ValidationError("--jobs must be between 1 and 32") }
    }

    func run() async throws {
        var repo = id
        var rev = revision ?? "main"
        if let at = id.firstIndex(of: "@") {
            if revision != nil { throw ValidationError("give the revision either as \(id) or with --revision, not both") }
            repo = String(id[..<at])
            rev = String(id[id.index(after: at)...])
        }
        guard let parsed = HubID(parsing: repo), parsed.file == nil, !rev.isEmpty else {
            throw ValidationError("\(id): not a Hugging Face model id (org/name[@revision]); to pick one GGUF use --gguf FILE")
        }
        let env = HubEnvironment.fromEnvironment()
        let client = HubClient(environment: env, maxConcurrentDownloads: jobs)
        let bar = PullProgressBar(enabled: !quiet && (isatty(STDERR_FILENO) != 0 || ProcessInfo.processInfo.environment["PERSONA_PROGRESS"] != nil))
        let result = try await client.pull(repo: parsed.repo, revision: rev, include: include, gguf: gguf) { bar.update($0) }
        bar.finish()
        note("\(parsed.repo)@\(rev): commit \(result.commit), \(result.files.count) files, \(PullProgressBar.bytes(result.downloadedBytes)) downloaded")
        print(result.snapshot.path)
    }
}

/// One progress line on stderr: bar, percent, bytes, speed, ETA, current files. Redrawn at most 10 times a second.
final class PullProgressBar: @unchecked Sendable {
    private let enabled: Bool
    private let lock = NSLock()
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var last: HubProgress?
    private var lastDrawn = true

    init(enabled: Bool) { self.enabled = enabled }

    func update(_ p: HubProgress) {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        last = p
        let now = Date()
        if now.timeIntervalSince(lastDraw) < 0.1 && p.filesDone < p.filesTotal { lastDrawn = false; return }
        lastDraw = now
        lastDrawn = true
        draw(p, now: now)
    }

    func finish() {
        guard enabled else { return }
        lock.lock(); defer { lock.unlock() }
        if let p = last, !lastDrawn { draw(p, now: Date()) }
        if last != nil { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    private func draw(_ p: HubProgress, now: Date) {
        let frac = p.totalBytes > 0 ? min(1, Double(p.completedBytes) / Double(p.totalBytes)) : 0
        let width = 24
        let filled = Int(frac * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let elapsed = max(0.001, now.timeIntervalSince(start))
        let speed = Double(p.receivedBytes) / elapsed
        let remaining = Double(max(0, p.totalBytes - p.completedBytes))
        let eta = speed > 0 ? PullProgressBar.clock(remaining / speed) : "--:--"
        let files = p.active.prefix(2).joined(separator: ", ") + (p.active.count > 2 ? " +\(p.active.count - 2)" : "")
        let line = String(format: "[%@] %3d%%  %@ / %@  %@/s  ETA %@  (%d/%d) %@", bar, Int(frac * 100),
                          PullProgressBar.bytes(p.completedBytes), PullProgressBar.bytes(p.totalBytes),
                          PullProgressBar.bytes(Int64(speed)), eta, p.filesDone, p.filesTotal, files)
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + line).utf8))
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KB", "MB", "GB", "TB"]
        var v = Double(n), i = 0
        while v >= 1000 && i < units.count - 1 { v /= 1000; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
    }

    static func clock(_ s: Double) -> String {
        guard s.isFinite else { return "--:--" }
        let t = Int(s.rounded())
        return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
    }
}
