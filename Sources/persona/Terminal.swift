import Foundation
import PersonaCore
import PersonaRuns

/// Progress on stderr: items done / total, rate, ETA, and tokens/s when tokens are counted. On a terminal one
/// line is redrawn in place; otherwise (a log file, CI) a full line is written every few seconds and at the end,
/// so long work is never silent. PERSONA_PROGRESS=0 turns it off.
final class Progress {
    let total: Int
    let label: String
    let enabled: Bool
    private let tty: Bool
    private var done = 0
    private var tokens = 0
    private let start = Date()
    private var lastDraw = Date.distantPast
    private let interval: TimeInterval

    init(total: Int, label: String, enabled: Bool = true) {
        self.total = total
        self.label = label
        tty = isatty(STDERR_FILENO) != 0
        self.enabled = enabled && total > 0 && ProcessInfo.processInfo.environment["PERSONA_PROGRESS"] != "0"
        interval = tty ? 0.1 : Double(ProcessInfo.processInfo.environment["PERSONA_PROGRESS_SECONDS"] ?? "") ?? 5
    }

    func step(_ n: Int = 1, extra: String = "") { update(done + n, extra: extra) }

    /// Counts generated tokens (shown as tokens/s).
    func addTokens(_ n: Int) {
        tokens += n
        draw(final: false)
    }

    /// Ends the line of work that stopped short of `total` (generation that stopped early): the last count, and
    /// on a terminal the line break the in-place line is still waiting for.
    func finish() {
        guard enabled, done < total else { return }
        draw(final: true)
    }

    /// Sets the count done so far (work that completes in batches reports its running total).
    func update(_ count: Int, extra: String = "") {
        guard count != done || count == 0 else { return }
        done = count
        draw(final: done >= total, extra: extra)
    }

    private func draw(final: Bool, extra: String = "") {
        guard enabled else { return }
        let now = Date()
        guard final || now.timeIntervalSince(lastDraw) >= interval else { return }
        lastDraw = now
        let el = now.timeIntervalSince(start)
        let rate = el > 0 ? Double(done) / el : 0
        // no ETA ("?") until the first item is done; tokens/s shows the work going on meanwhile
        let eta = rate > 0 ? Double(total - done) / rate : .nan
        let tps = tokens > 0 && el > 0 ? String(format: "  %.1f tok/s", Double(tokens) / el) : ""
        var line = String(format: "%d/%d %@  %.2f/s%@  elapsed %@  ETA %@ %@", done, total, label, rate, tps,
                          formatDuration(el), formatDuration(eta), extra)
        if tty {
            let width = 24
            let filled = total > 0 ? width * min(done, total) / total : 0
            line = "\r[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] " + line
            if final { line += "\n" }
        } else {
            line += "\n"
        }
        FileHandle.standardError.write(line.data(using: .utf8)!)
    }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite, s >= 0 else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%dh%02dm", t / 3600, t / 60 % 60) : String(format: "%dm%02ds", t / 60, t % 60)
}

/// Live terminal view for `monitor`: each token coloured by the first trait's score, plus a strip per trait.
final class LiveView {
    let enabled: Bool
    private var start = Date()
    private var count = 0
    private var scales: [String: Double] = [:]

    init(enabled: Bool) { self.enabled = enabled }

    func begin(prompt: String) {
        guard enabled else { return }
        start = Date()
        count = 0
        print("\u{1B}[1m\(prompt)\u{1B}[0m")
    }

    /// Blue (negative) .. red (positive) background on a 256-colour terminal.
    func colour(_ x: Double, scale: Double) -> String {
        let v = max(-1, min(1, scale > 0 ? x / scale : 0))
        let palette = [21, 27, 33, 39, 255, 214, 208, 202, 196]
        let idx = Int(((v + 1) / 2 * Double(palette.count - 1)).rounded())
        return "\u{1B}[48;5;\(palette[idx])m\u{1B}[30m"
    }

    /// A token in its colour. Its decoded text, not its display form: a character split over tokens (an emoji, a
    /// kana in a byte-level vocabulary) prints whole with the token that completes it rather than as <0xE3><0x81>.
    func token(_ t: MonitoredToken) {
        guard enabled else { return }
        count += 1
        let trait = t.scores.keys.sorted().first
        if let trait, let x = t.scores[trait] {
            scales[trait] = max(scales[trait] ?? 1e-6, abs(x))
            let text = t.event.text.replacingOccurrences(of: "\n", with: "⏎\n")
            print("\(colour(x, scale: scales[trait]!))\(text)\u{1B}[0m", terminator: "")
        } else {
            print(t.event.text, terminator: "")
        }
        fflush(stdout)
    }

    func end(_ doc: RunDocument) {
        guard enabled else { return }
        let el = Date().timeIntervalSince(start)
        print("\n")
        for trait in doc.traitNames {
            let xs = doc.traitScores[trait] ?? []
            let scale = xs.map(abs).max() ?? 1
            let strip = xs.map { colour($0, scale: scale) + " " }.joined() + "\u{1B}[0m"
            let st = doc.stats?[trait]
            print(String(format: "%-16@ %@  mean %+.3f  max %+.3f", trait as NSString, strip, st?.mean ?? 0, st?.max ?? 0))
        }
        print(String(format: "%d tokens, %.1f tok/s", count, Double(count) / max(el, 1e-9)))
    }
}
