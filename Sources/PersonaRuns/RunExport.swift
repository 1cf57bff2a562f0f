import Foundation

/// Writes runs in other shapes: the per-token project's result list, and CSV.
public enum RunExport {
    /// Window of the running-average column added when a run has none (the per-token project's default, 10).
    public static let defaultRunningWindow = 10

    /// One entry in the per-token project's shape:
    /// `{prompt, response, tokens, projections, metadata{num_tokens, layer, personas, max_new_tokens, ...}, <trait>_running_avg_N}`.
    /// Keys it does not know are kept, so an imported file exports back to its original content.
    public static func perTokenEntry(_ run: RunDocument) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        for (k, v) in run.extras { out[k] = v }
        out["prompt"] = .string(run.prompt)
        out["response"] = .string(run.response)
        out["tokens"] = .array(run.tokens.map { .string($0) })
        var proj: [String: JSONValue] = [:]
        for (t, xs) in run.traitScores { proj[t] = .array(xs.map { .number($0) }) }
        out["projections"] = .object(proj)
        var meta = run.metadata
        meta["num_tokens"] = .number(Double(run.tokens.count))
        meta["personas"] = meta["personas"] ?? .array(run.traitNames.map { .string($0) })
        if meta["layer"] == nil, let l = run.traitNames.compactMap({ run.layers?[$0] }).first { meta["layer"] = .number(Double(l)) }
        if meta["max_new_tokens"] == nil {
            meta["max_new_tokens"] = .number(Double(run.tokens.count))
        }
        // Imported entries keep their own convention; ours says which state each score describes.
        meta["convention"] = meta["convention"] ?? .string(RunDocument.ownConvention)
        meta["run_id"] = .string(run.id)
        out["metadata"] = .object(meta)
        for t in run.traitNames {
            let hasAny = out.keys.contains { $0.hasPrefix("\(t)_running_avg_") }
            if !hasAny, let xs = run.traitScores[t] {
                out["\(t)_running_avg_\(defaultRunningWindow)"] = .array(
                    RunStats.runningAverage(xs, window: defaultRunningWindow).map { .number($0) })
            }
        }
        return out
    }

    /// A JSON list of entries in the per-token project's shape, loadable by its dashboard.
    public static func perTokenProject(_ runs: [RunDocument], pretty: Bool = true) throws -> Data {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return try e.encode(runs.map { JSONValue.object(perTokenEntry($0)) })
    }

    /// One row per response token: `index,token,token_id,logprob,<trait>...` (traits sorted; RFC 4180 quoting).
    public static func csv(_ run: RunDocument) -> String {
        let traits = run.traitNames
        var lines = [(["index", "token", "token_id", "logprob"] + traits).map(csvField).joined(separator: ",")]
        for i in run.tokens.indices {
            var row = [String(i), csvField(run.tokens[i])]
            row.append(run.tokenIds.flatMap { i < $0.count ? String($0[i]) : nil } ?? "")
            row.append(run.logprobs.flatMap { i < $0.count ? number($0[i]) : nil } ?? "")
            for t in traits {
                let xs = run.traitScores[t] ?? []
                row.append(i < xs.count ? number(xs[i]) : "")
            }
            lines.append(row.joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    static func number(_ x: Double) -> String { x.isFinite ? "\(x)" : "" }

    /// `csvQuoted`, with spreadsheet formulas neutralised (a token may start with "=").
    static func csvField(_ s: String) -> String {
        var v = s
        if let f = v.unicodeScalars.first, "=+-@".unicodeScalars.contains(f), Double(v) == nil { v = "'" + v }
        return csvQuoted(v)
    }

    /// An RFC 4180 field: quoted, quotes doubled, when it holds a comma, quote or line break. Scalar by scalar:
    /// "\r\n", or a quote with a combining mark after it, is one Character that equals none of them.
    public static func csvQuoted(_ s: String) -> String {
        if s.unicodeScalars.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) {
            return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"", options: .literal) + "\""
        }
        return s
    }
}
