import Foundation

/// Summary statistics of trait curves (numpy conventions: population std, `ddof=0`).
public enum RunStats {
    /// mean/std/min/max of a series, or nil when it is empty.
    public static func summary(_ x: [Double]) -> TraitStats? {
        guard let lo = x.min(), let hi = x.max() else { return nil }
        let m = mean(x)
        return TraitStats(mean: m, std: std(x, mean: m), min: lo, max: hi)
    }

    /// Arithmetic mean (0 for an empty series).
    public static func mean(_ x: [Double]) -> Double {
        x.isEmpty ? 0 : x.reduce(0, +) / Double(x.count)
    }

    /// Population standard deviation (numpy's `np.std` default, ddof=0).
    public static func std(_ x: [Double], mean m: Double? = nil) -> Double {
        guard !x.isEmpty else { return 0 }
        let mu = m ?? mean(x)
        var s = 0.0
        for v in x { s += (v - mu) * (v - mu) }
        return (s / Double(x.count)).squareRoot()
    }

    /// The per-token project's spikiness, std/|mean|; nil when the mean is 0. It called a curve "spiky" above 0.5.
    public static func spikiness(_ x: [Double]) -> Double? {
        let m = mean(x)
        guard !x.isEmpty, m != 0 else { return nil }
        return std(x, mean: m) / abs(m)
    }

    /// Trailing running average: `out[i] = mean(x[max(0, i-window+1) ... i])`; the window grows at the
    /// start, as in the per-token project's `<trait>_running_avg_N` columns.
    public static func runningAverage(_ x: [Double], window: Int) -> [Double] {
        let w = Swift.max(1, window)
        var out: [Double] = []
        out.reserveCapacity(x.count)
        for i in x.indices {
            let lo = Swift.max(0, i - w + 1)
            var s = 0.0
            for j in lo...i { s += x[j] }  // summed afresh per window so no drift accumulates
            out.append(s / Double(i - lo + 1))
        }
        return out
    }

    /// Pearson correlation of two equal-length series; nil when undefined (length < 2 or a constant series).
    public static func pearson(_ a: [Double], _ b: [Double]) -> Double? {
        guard a.count == b.count, a.count >= 2 else { return nil }
        let ma = mean(a), mb = mean(b)
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in a.indices {
            let da = a[i] - ma, db = b[i] - mb
            sab += da * db; saa += da * da; sbb += db * db
        }
        guard saa > 0, sbb > 0 else { return nil }
        return Swift.max(-1, Swift.min(1, sab / (saa * sbb).squareRoot()))
    }

    /// Correlation matrix across traits (sorted by name). Undefined entries (a constant curve, or curves of
    /// different lengths) are written as 0; the diagonal is always 1.
    public static func correlationMatrix(_ scores: [String: [Double]]) -> Correlations {
        let names = scores.keys.sorted()
        var m = Array(repeating: Array(repeating: 0.0, count: names.count), count: names.count)
        for i in names.indices {
            m[i][i] = 1
            for j in names.indices where j > i {
                let r = pearson(scores[names[i]] ?? [], scores[names[j]] ?? []) ?? 0
                m[i][j] = r; m[j][i] = r
            }
        }
        return Correlations(traits: names, matrix: m)
    }

    /// A pair of traits that move together (or against each other) within one run.
    public struct Cascade: Sendable, Equatable, Codable {
        public var a: String
        public var b: String
        public var r: Double
    }

    /// Trait pairs with |r| above `threshold` (the per-token project's "trait cascades" used 0.3).
    public static func cascades(_ c: Correlations, threshold: Double = 0.3) -> [Cascade] {
        var out: [Cascade] = []
        for i in c.traits.indices {
            for j in c.traits.indices where j > i && i < c.matrix.count && j < c.matrix[i].count {
                let r = c.matrix[i][j]
                if abs(r) > threshold { out.append(Cascade(a: c.traits[i], b: c.traits[j], r: r)) }
            }
        }
        return out
    }
}

extension RunDocument {
    /// Fills `stats`, `correlations` and `decision_points` (automatic detector plus the per-token rule) from `trait_scores`.
    public mutating func computeAnalysis(parameters: DecisionPoints.Parameters = .init()) {
        var st: [String: TraitStats] = [:]
        var dps: [String: [DecisionPoint]] = [:]
        for (trait, xs) in traitScores {
            if let s = RunStats.summary(xs) { st[trait] = s }
            var list = DecisionPoints.detect(xs, parameters: parameters)
            if let d = DecisionPoints.perTokenRuleDecision(xs) { list.append(d) }
            dps[trait] = list.sorted { ($0.index, $0.method) < ($1.index, $1.method) }
        }
        stats = st
        decisionPoints = dps
        correlations = traitScores.count >= 1 ? RunStats.correlationMatrix(traitScores) : nil
    }

    /// Returns a copy with `computeAnalysis()` applied.
    public func withAnalysis(parameters: DecisionPoints.Parameters = .init()) -> RunDocument {
        var r = self
        r.computeAnalysis(parameters: parameters)
        return r
    }
}
