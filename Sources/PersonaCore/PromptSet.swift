import Foundation
import PersonaRuns

/// A prompt from a prompt-set file, with where it came from.
public struct PromptItem: Sendable, Equatable {
    public var prompt: String
    /// Grouping labels from the file (e.g. ["refusal", "high"] for the per-token project's teaching set).
    public var tags: [String]
    public init(prompt: String, tags: [String] = []) { self.prompt = prompt; self.tags = tags }
}

/// Reads prompt sets: the per-token project's JSON shapes (a list of strings or objects; an object of
/// trait -> list; trait -> {category -> list}), JSONL (a string or an object per line), CSV (a
/// `prompt`, `question` or `text` column) and plain text (`.txt`: one prompt per non-blank line).
public enum PromptSet {
    static let textKeys = ["prompt", "question", "text", "input"]

    public static func load(_ url: URL) throws -> [PromptItem] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw VectorError("\(url.path): cannot read prompt set (\(error.localizedDescription))") }
        let items: [PromptItem]
        switch url.pathExtension.lowercased() {
        case "jsonl", "ndjson":
            items = try jsonLines(data, source: url.path)
        case "csv":
            items = try csv(data, source: url.path)
        case "txt":
            guard let text = String(data: data, encoding: .utf8) else { throw VectorError("\(url.path): not UTF-8") }
            items = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }.map { PromptItem(prompt: $0) }
        default:
            guard let obj = try? JSONSerialization.jsonObject(with: data) else {
                throw VectorError("\(url.path): not valid JSON (name the file .jsonl, .csv or .txt, one prompt per line, for those formats)")
            }
            items = try flatten(obj, tags: [], source: url.path)
        }
        if items.isEmpty { throw VectorError("\(url.path): no prompts found") }
        return items
    }

    static func flatten(_ obj: Any, tags: [String], source: String) throws -> [PromptItem] {
        if let s = obj as? String { return [PromptItem(prompt: s, tags: tags)] }
        if let list = obj as? [Any] { return try list.flatMap { try flatten($0, tags: tags, source: source) } }
        if let d = obj as? [String: Any] {
            for k in textKeys { if let s = d[k] as? String { return [PromptItem(prompt: s, tags: tags)] } }
            return try d.keys.sorted().flatMap { try flatten(d[$0]!, tags: tags + [$0], source: source) }
        }
        throw VectorError("\(source): unexpected value in prompt set at \(tags.joined(separator: "."))")
    }

    static func jsonLines(_ data: Data, source: String) throws -> [PromptItem] {
        guard let text = String(data: data, encoding: .utf8) else { throw VectorError("\(source): not UTF-8") }
        var out: [PromptItem] = []
        for (n, line) in fileLines(text).enumerated() {
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(t.utf8), options: [.fragmentsAllowed]) else {
                throw VectorError("\(source): line \(n + 1) is not valid JSON")
            }
            out += try flatten(obj, tags: [], source: "\(source) line \(n + 1)")
        }
        return out
    }

    static func csv(_ data: Data, source: String) throws -> [PromptItem] {
        guard let text = String(data: data, encoding: .utf8) else { throw VectorError("\(source): not UTF-8") }
        let rows = CSV.parse(text)
        guard let header = rows.first else { return [] }
        guard let col = textKeys.compactMap({ k in header.firstIndex { $0.lowercased() == k } }).first else {
            throw VectorError("\(source): no prompt, question or text column in the CSV header")
        }
        return rows.dropFirst().compactMap { r in col < r.count && !r[col].isEmpty ? PromptItem(prompt: r[col]) : nil }
    }
}

/// RFC 4180 CSV: quoted fields with doubled quotes and embedded newlines.
public enum CSV {
    public static func parse(_ text: String) -> [[String]] {
        var rows: [[String]] = []
        var row: [String] = []
        var field = ""
        var quoted = false
        var it = Array(text.unicodeScalars)[...]
        while let c = it.popFirst() {
            if quoted {
                if c == "\"" {
                    if it.first == "\"" { field.unicodeScalars.append("\""); it.removeFirst() } else { quoted = false }
                } else { field.unicodeScalars.append(c) }
            } else if c == "\"" {
                quoted = true
            } else if c == "," {
                row.append(field); field = ""
            } else if c == "\n" || c == "\r" {
                if c == "\r", it.first == "\n" { it.removeFirst() }
                row.append(field); field = ""
                rows.append(row); row = []
            } else {
                field.unicodeScalars.append(c)
            }
        }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }

    /// Quotes a field when needed (RFC 4180).
    public static func escape(_ s: String) -> String { RunExport.csvQuoted(s) }
}

/// A text file's lines as Python iterates them: split at "\n", with the "\r" of a Windows line end dropped. Not
/// `String.split(separator: "\n")`: "\r\n" is one Character there, so a Windows JSONL file read as one line.
/// Nor `isNewline`, which also splits at U+2028 / U+0085, which JSON strings may hold unescaped.
public func fileLines(_ text: String) -> [String] {
    text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { line in
        var s = String.UnicodeScalarView(line)
        if s.last == "\r" { s.removeLast() }
        return String(s)
    }
}
