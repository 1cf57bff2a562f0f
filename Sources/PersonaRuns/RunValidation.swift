import Foundation

/// Why a run document or a file of runs was refused. The message names the field or file.
public struct RunError: Error, CustomStringConvertible, Equatable, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension RunError: LocalizedError {
    public var errorDescription: String? { message }
}

extension RunDocument {
    /// Parses `"personascope.run/N"` and returns N, or nil for any other string.
    public static func schemaVersion(_ schema: String) -> Int? {
        let prefix = "personascope.run/"
        guard schema.hasPrefix(prefix) else { return nil }
        let rest = schema.dropFirst(prefix.count)
        // Minor revisions ("1.2") share the major version's layout.
        let major = rest.split(separator: ".", maxSplits: 1).first.map(String.init) ?? ""
        guard let v = Int(major), v >= 1 else { return nil }
        return v
    }

    /// A run id: 1-200 ASCII letters, digits, '-', '_', '.' (ours are UUIDs). The API looks runs up by id in a URL
    /// path and refuses anything else there, so an imported run with another id (say "a/b") used to be listed
    /// but could never be opened, exported or deleted.
    public static func isValidID(_ id: String) -> Bool {
        !id.isEmpty && id.utf8.count <= 200 && id.utf8.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == 0x2d || b == 0x5f || b == 0x2e
        }
    }

    /// Checks the document is internally consistent; throws a `RunError` naming the first bad field.
    public func validate() throws {
        guard let v = RunDocument.schemaVersion(schema) else {
            throw RunError("schema: \"\(schema)\" is not a run document schema (expected \"\(RunDocument.currentSchema)\")")
        }
        guard v <= RunDocument.currentVersion else {
            throw RunError("schema: \"\(schema)\" is newer than this version understands (\(RunDocument.currentSchema))")
        }
        if !RunDocument.isValidID(id) {
            throw RunError("id: \"\(id.prefix(60))\" is not 1-200 ASCII letters, digits, '-', '_' or '.'")
        }
        let n = tokens.count
        if let ids = tokenIds, ids.count != n {
            throw RunError("token_ids has \(ids.count) values but tokens has \(n)")
        }
        if let p = promptTokens, let pids = promptTokenIds, p.count != pids.count {
            throw RunError("prompt_token_ids has \(pids.count) values but prompt_tokens has \(p.count)")
        }
        for (name, ids) in [("token_ids", tokenIds), ("prompt_token_ids", promptTokenIds)] {
            if let i = ids?.firstIndex(where: { $0 < 0 }) { throw RunError("\(name)[\(i)] is \(ids![i]); a token id must be >= 0") }
        }
        for (trait, xs) in traitScores.sorted(by: { $0.key < $1.key }) {
            if trait.isEmpty { throw RunError("trait_scores: empty trait name") }
            try checkSeries(xs, n, "trait_scores.\(trait)")
        }
        if let ps = promptScores {
            for (trait, xs) in ps.sorted(by: { $0.key < $1.key }) {
                if let pt = promptTokens {
                    try checkSeries(xs, pt.count, "prompt_scores.\(trait)", against: "prompt_tokens")
                } else {
                    try checkFinite(xs, "prompt_scores.\(trait)")
                }
            }
        }
        if let ls = layers {
            for (trait, l) in ls.sorted(by: { $0.key < $1.key }) where l < 0 {
                throw RunError("layers.\(trait) is \(l); a hidden-state row must be >= 0")
            }
        }
        if let pl = perLayer {
            for (trait, rows) in pl.sorted(by: { $0.key < $1.key }) {
                if let L = model?.numLayers, rows.count != L + 1 {
                    throw RunError("per_layer.\(trait) has \(rows.count) rows but the model has \(L) layers (expected \(L + 1) rows)")
                }
                for (r, xs) in rows.enumerated() { try checkSeries(xs, n, "per_layer.\(trait)[\(r)]") }
            }
        }
        if let cs = cosine {
            for (trait, xs) in cs.sorted(by: { $0.key < $1.key }) { try checkSeries(xs, n, "cosine.\(trait)") }
        }
        if let r = residNorm { try checkSeries(r, n, "resid_norm") }
        if let lp = logprobs {
            if lp.count != n { throw RunError("logprobs has \(lp.count) values but tokens has \(n)") }
            for (i, x) in lp.enumerated() where x.isNaN || x > 1e-6 {
                throw RunError("logprobs[\(i)] is \(x); a log-probability must be <= 0")
            }
        }
        if let tk = topK, tk.count != n {
            throw RunError("top_k has \(tk.count) entries but tokens has \(n)")
        }
        if let dps = decisionPoints {
            for (trait, list) in dps.sorted(by: { $0.key < $1.key }) {
                for (j, d) in list.enumerated() where d.index < 0 || d.index >= n {
                    throw RunError("decision_points.\(trait)[\(j)].index is \(d.index) but tokens has \(n)")
                }
            }
        }
        if let st = steering {
            for (j, s) in st.enumerated() {
                if !SteeringRecord.validPositions.contains(s.positions) {
                    throw RunError("steering[\(j)].positions is \"\(s.positions)\"; expected all, prompt or response")
                }
                if !SteeringRecord.validModes.contains(s.mode) {
                    throw RunError("steering[\(j)].mode is \"\(s.mode)\"; expected add or ablate")
                }
                if !s.coef.isFinite { throw RunError("steering[\(j)].coef is not a finite number") }
            }
        }
        if let c = correlations {
            let k = c.traits.count
            if c.matrix.count != k { throw RunError("correlations.matrix has \(c.matrix.count) rows but correlations.traits has \(k)") }
            for (i, row) in c.matrix.enumerated() where row.count != k {
                throw RunError("correlations.matrix[\(i)] has \(row.count) values but correlations.traits has \(k)")
            }
        }
    }

    private func checkSeries(_ xs: [Double], _ n: Int, _ name: String, against: String = "tokens") throws {
        if xs.count != n { throw RunError("\(name) has \(xs.count) values but \(against) has \(n)") }
        try checkFinite(xs, name)
    }

    private func checkFinite(_ xs: [Double], _ name: String) throws {
        if let i = xs.firstIndex(where: { !$0.isFinite }) {
            throw RunError("\(name)[\(i)] is not a finite number")
        }
    }
}
