import Foundation
import PersonaModels

/// Trait vectors from two sets of texts (e.g. happy vs sad story openings), without generation or a judge:
/// each text is run once, and the mean of its token states (after the first token, the BOS or prompt) is a sample.
/// The quick path for models without a chat template, such as stories260K.
public enum TextContrast {
    /// Separation of held-out texts at one hidden-state row.
    public struct RowReport: Codable, Sendable, Equatable {
        public var row: Int
        public var hookPoint: String
        public var auroc: Double
        /// NaN when undefined (fewer than 2 held-out texts on a side, or no spread); written "nan" in JSON, as
        /// `evaluate`'s reports write non-finite numbers.
        public var cohensD: Double
        public var norm: Double

        public init(row: Int, hookPoint: String, auroc: Double, cohensD: Double, norm: Double) {
            self.row = row; self.hookPoint = hookPoint; self.auroc = auroc; self.cohensD = cohensD; self.norm = norm
        }
    }

    /// Hidden states of BOS + text, and the prompt length (1: the BOS, or the first token).
    static func states(_ loaded: LoadedModel, _ text: String) throws -> (states: [[Float]], promptLength: Int) {
        let ids = loaded.tokenizer.tokenizer.encode(text, addSpecialTokens: true)
        guard ids.count >= 2 else { throw VectorError("text too short to score: '\(text)'") }
        let trace = try HiddenStateTrace.run(model: loaded.model, tokens: Array(ids.prefix(loaded.config.maxPositions)))
        return (trace.hiddenStates, 1)
    }

    /// Adds every text of one side to `sums` (method response_avg = mean over the text's tokens).
    public static func accumulate(_ loaded: LoadedModel, texts: [String], positive: Bool, into sums: inout ActivationSums,
                                  progress: (Int) -> Void = { _ in }) throws {
        for (i, t) in texts.enumerated() {
            let s = try states(loaded, t)
            try sums.add(hiddenStates: s.states, promptLength: s.promptLength, positive: positive)
            progress(i + 1)
        }
    }

    /// Mean projection (h . v)/||v|| over each text's tokens (after the first), for every row.
    public static func projections(_ loaded: LoadedModel, texts: [String], vector: TraitVector) throws -> [[Double]] {
        let D = loaded.config.hiddenSize
        let norms = vector.norms
        var out = Array(repeating: [Double](), count: vector.rows.count)  // [row][text]
        for t in texts {
            let s = try states(loaded, t)
            for (r, h) in s.states.enumerated() {
                let T = h.count / D
                var acc = 0.0
                for p in s.promptLength..<T {
                    var d: Float = 0
                    for i in 0..<D { d += h[p * D + i] * vector.rows[r][i] }
                    acc += Double(norms[r] > 0 ? d / norms[r] : 0)
                }
                out[r].append(acc / Double(T - s.promptLength))
            }
        }
        return out
    }

    /// Per-row separation of positive vs negative texts by projection.
    public static func report(_ loaded: LoadedModel, vector: TraitVector, positive: [String], negative: [String]) throws -> [RowReport] {
        let p = try projections(loaded, texts: positive, vector: vector)
        let n = try projections(loaded, texts: negative, vector: vector)
        let norms = vector.norms
        return (0..<vector.rows.count).map { r in
            RowReport(row: r, hookPoint: vector.hookPoint(row: r)?.name ?? "",
                      auroc: Separation.auroc(positive: p[r], negative: n[r]),
                      cohensD: Separation.cohensD(positive: p[r], negative: n[r]), norm: Double(norms[r]))
        }
    }

    /// The row with the best separation (AUROC, then effect size), preferring rows near a third of the depth on ties;
    /// rows 0 (embeddings, no context) and L (after the final norm) are skipped when the model has other rows.
    public static func recommendedRow(_ report: [RowReport], numLayers: Int) -> Int {
        let candidates = report.filter { numLayers < 3 || ($0.row > 0 && $0.row < numLayers) }
        let third = Double(numLayers) / 3
        // An undefined effect size (NaN: one held-out text a side) ranks below any defined one and ties with
        // another undefined one, so equal AUROCs then go to the row nearest a third of the depth (NaN compared
        // with < used to stop the ordering there and leave the first candidate, row 1).
        return candidates.max { a, b in
            if a.auroc != b.auroc { return a.auroc < b.auroc }
            switch (a.cohensD.isNaN, b.cohensD.isNaN) {
            case (false, false) where a.cohensD != b.cohensD: return a.cohensD < b.cohensD
            case (true, false): return true
            case (false, true): return false
            default: break
            }
            return abs(Double(a.row) - third) > abs(Double(b.row) - third)
        }?.row ?? max(1, numLayers / 3)
    }
}
