import Foundation
import PersonaModels

/// Separation of held-out pos vs neg projections for every hidden-state row of one vector.
public struct LayerReport: Codable, Sendable, Equatable {
    public struct Row: Codable, Sendable, Equatable {
        /// HF hidden-state row (0 = embeddings, l = output of block l-1).
        public var row: Int
        public var auroc: Double?
        public var cohensD: Double?
        public var norm: Double
        public var meanPositive: Double?
        public var meanNegative: Double?
    }

    public var trait: String
    public var method: String
    public var evalPositive: Int
    public var evalNegative: Int
    public var rows: [Row]
    public var recommendedRow: Int?
    /// How the recommendation was chosen, for the record.
    public var rule: String

    /// Rows within this AUROC of the best count as tied.
    public static let tieTolerance = 0.005

    /// `positive[s][r]` / `negative[s][r]`: sample s's projection at row r.
    public init(vector: TraitVector, positive: [[Double]], negative: [[Double]]) {
        trait = vector.trait
        method = vector.method
        evalPositive = positive.count
        evalNegative = negative.count
        let norms = vector.norms
        rows = norms.indices.map { r in
            let p = positive.compactMap { r < $0.count ? $0[r] : nil }, n = negative.compactMap { r < $0.count ? $0[r] : nil }
            func finite(_ x: Double) -> Double? { x.isFinite ? x : nil }
            return Row(row: r, auroc: finite(Separation.auroc(positive: p, negative: n)),
                       cohensD: finite(Separation.cohensD(positive: p, negative: n)), norm: Double(norms[r]),
                       meanPositive: p.isEmpty ? nil : p.reduce(0, +) / Double(p.count),
                       meanNegative: n.isEmpty ? nil : n.reduce(0, +) / Double(n.count))
        }
        rule = "best AUROC over rows 1...L (row 0 = embeddings excluded); rows within \(Self.tieTolerance) of the best are tied and the one nearest L/3 wins, then the larger Cohen's d"
        recommendedRow = Self.recommend(rows, numLayers: vector.numLayers)
    }

    static func recommend(_ rows: [Row], numLayers: Int) -> Int? {
        let cands = rows.filter { $0.row >= 1 && $0.auroc != nil }
        guard let best = cands.map({ $0.auroc! }).max() else { return nil }
        let target = Double(numLayers) / 3
        let tied = cands.filter { $0.auroc! >= best - tieTolerance }
        return tied.min { a, b in
            let da = abs(Double(a.row) - target), db = abs(Double(b.row) - target)
            if da != db { return da < db }
            return (a.cohensD ?? -.infinity) > (b.cohensD ?? -.infinity)
        }?.row
    }

    /// A fixed-width table.
    public var table: String {
        var s = "\(trait) \(method): held-out eval \(evalPositive) pos / \(evalNegative) neg\n"
        s += "  row   AUROC   Cohen d      norm   mean pos   mean neg\n"
        for r in rows {
            func f(_ x: Double?, _ w: Int, _ p: Int) -> String {
                guard let x else { return String(repeating: " ", count: w - 1) + "-" }
                return String(format: "%\(w).\(p)f", x)
            }
            let mark = r.row == recommendedRow ? " <- recommended" : ""
            s += String(format: "  %3d", r.row) + "  " + f(r.auroc, 6, 3) + "  " + f(r.cohensD, 8, 2) + "  " + f(r.norm, 8, 3)
                + "  " + f(r.meanPositive, 9, 3) + "  " + f(r.meanNegative, 9, 3) + mark + "\n"
        }
        return s
    }
}

/// Per-sample averages of one forward pass, for every row: response mean, prompt mean, last prompt state.
struct SampleAverages {
    var byMethod: [AverageMethod: [[Float]]]

    init(hiddenStates: [[Float]], promptLength: Int, hiddenSize D: Int) throws {
        let T = (hiddenStates.first?.count ?? 0) / D
        guard promptLength > 0, promptLength < T else {
            throw VectorError("sample needs a prompt and a response: prompt length \(promptLength), total \(T) tokens")
        }
        func mean(_ h: [Float], _ range: Range<Int>) -> [Float] {
            var acc = [Double](repeating: 0, count: D)
            for t in range { for i in 0..<D { acc[i] += Double(h[t * D + i]) } }
            return acc.map { Float($0 / Double(range.count)) }
        }
        byMethod = [
            .responseAvg: hiddenStates.map { mean($0, promptLength..<T) },
            .promptAvg: hiddenStates.map { mean($0, 0..<promptLength) },
            .promptLast: hiddenStates.map { mean($0, (promptLength - 1)..<promptLength) },
        ]
    }

    /// (x . v) / ||v|| per row (nil-safe: a zero vector row projects to 0).
    static func project(_ x: [[Float]], onto v: TraitVector) -> [Double] {
        zip(x, v.rows).map { a, b in
            var dot = 0.0, nn = 0.0
            for i in 0..<min(a.count, b.count) { dot += Double(a[i]) * Double(b[i]); nn += Double(b[i]) * Double(b[i]) }
            return nn > 0 ? dot / nn.squareRoot() : 0
        }
    }
}
