import Foundation
import PersonaModels

/// persona_vectors' cal_projection: projections of existing (prompt, answer) texts onto one vector row.
public enum TextProjection {
    /// Token ids of prompt + answer and the prompt length, tokenised as persona_vectors does (no special tokens
    /// added; the prompt text is expected to hold the chat template). BOS is prepended once when the tokenizer
    /// uses one and the text did not already start with it (raw prompts of template-less models).
    public static func tokens(prompt: String, answer: String, loaded: LoadedModel) -> (ids: [Int], promptLength: Int) {
        let tok = loaded.tokenizer.tokenizer
        var p = tok.encode(prompt, addSpecialTokens: false)
        var full = tok.encode(prompt + answer, addSpecialTokens: false)
        if tok.addBosToken, let bos = tok.bosTokenId, full.first != bos {
            p.insert(bos, at: 0)
            full.insert(bos, at: 0)
        }
        return (full, min(p.count, full.count))
    }

    /// (response-average projection, last-prompt-token projection) of one text at `row`: (h . v) / ||v||.
    /// The response value is nil when the answer adds no tokens.
    public static func project(prompt: String, answer: String, loaded: LoadedModel, vector: TraitVector, row: Int)
        throws -> (responseAvg: Double?, promptLast: Double) {
        guard row >= 0, row < vector.rows.count else {
            throw VectorError("row \(row) is outside the vector's rows 0...\(vector.rows.count - 1)")
        }
        try vector.check(against: loaded.config)
        let (ids, pl) = tokens(prompt: prompt, answer: answer, loaded: loaded)
        guard pl > 0 else { throw VectorError("the prompt is empty after tokenisation") }
        guard ids.count <= loaded.config.maxPositions else {
            throw VectorError("text has \(ids.count) tokens, more than the model's context (\(loaded.config.maxPositions))")
        }
        let trace = try HiddenStateTrace.run(model: loaded.model, tokens: ids)
        let h = trace.hiddenStates[row]
        let v = vector.rows[row]
        let D = v.count
        let norm = Double(v.reduce(0) { $0 + $1 * $1 }).squareRoot()
        func proj(_ t: Int) -> Double {
            var dot = 0.0
            for i in 0..<D { dot += Double(h[t * D + i]) * Double(v[i]) }
            return norm > 0 ? dot / norm : 0
        }
        let last = proj(pl - 1)
        guard ids.count > pl else { return (nil, last) }
        let resp = (pl..<ids.count).reduce(0.0) { $0 + proj($1) } / Double(ids.count - pl)
        return (resp, last)
    }
}
