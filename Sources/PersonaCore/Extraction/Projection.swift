import Foundation
import PersonaModels

/// (h_t . v) / ||v|| of one vector row against a hidden-state row stored [T, D]; 0 when the vector row is zero.
struct RowProjector {
    let v: [Float]
    let norm: Double

    init(_ v: [Float]) {
        self.v = v
        norm = Double(v.reduce(0) { $0 + $1 * $1 }).squareRoot()
    }

    func callAsFunction(_ h: [Float], _ t: Int) -> Double {
        guard norm > 0 else { return 0 }
        var dot = 0.0
        for i in v.indices { dot += Double(h[t * v.count + i]) * Double(v[i]) }
        return dot / norm
    }

    /// The mean over `positions`; 0 when it is empty.
    func mean(_ h: [Float], _ positions: Range<Int>) -> Double {
        positions.isEmpty ? 0 : positions.reduce(0.0) { $0 + self(h, $1) } / Double(positions.count)
    }
}

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
        let h = try HiddenStateTrace.run(model: loaded.model, tokens: ids).hiddenStates[row]
        let project = RowProjector(vector.rows[row])
        let last = project(h, pl - 1)
        guard ids.count > pl else { return (nil, last) }
        return (project.mean(h, pl..<ids.count), last)
    }
}
