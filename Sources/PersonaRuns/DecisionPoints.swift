import Foundation

/// Tokens where a trait curve turns. See docs/decision-points.md for the algorithm and its parameters.
public enum DecisionPoints {
    /// Method name of the automatic detector in `DecisionPoint.method`.
    public static let automaticMethod = "cusum"
    /// Method name of the per-token project's rule.
    public static let perTokenMethod = "pertoken-rule"

    /// Tuning of the automatic detector. Thresholds are in units of the robust noise scale `sigma`.
    public struct Parameters: Sendable, Equatable {
        /// A sample further than this from its local median is part of a spike.
        public var spikeThreshold: Double
        /// Hampel window half-width: excursions of at most this many samples count as spikes.
        public var spikeHalfWidth: Int
        /// Binary segmentation splits where the standardized CUSUM statistic exceeds this.
        public var splitThreshold: Double
        /// A level change must move the segment mean by at least this much.
        public var minShift: Double
        /// Fewest samples on either side of a level change.
        public var minSegment: Int
        /// Lower bound of `sigma`, relative to max(1, max |x|), so a noise-free curve still has a scale.
        public var minRelativeScale: Double
        /// Cap on the number of level changes reported per curve.
        public var maxChanges: Int

        public init(spikeThreshold: Double = 5, spikeHalfWidth: Int = 3, splitThreshold: Double = 4.5,
                    minShift: Double = 1, minSegment: Int = 3, minRelativeScale: Double = 1e-9, maxChanges: Int = 64) {
            self.spikeThreshold = spikeThreshold
            self.spikeHalfWidth = spikeHalfWidth
            self.splitThreshold = splitThreshold
            self.minShift = minShift
            self.minSegment = minSegment
            self.minRelativeScale = minRelativeScale
            self.maxChanges = maxChanges
        }
    }

    // MARK: the per-token project's rule

    /// The per-token project's decision point: the first `i >= 3` with `x[i] > mean(x[0:3]) + std(x[0:3])`
    /// (population std, numpy's default). nil when no token qualifies or the curve is shorter than 4.
    public static func perTokenRule(_ x: [Double]) -> Int? {
        guard x.count >= 4 else { return nil }
        let head = Array(x[0..<3])
        let m = RunStats.mean(head), s = RunStats.std(head, mean: m)
        for i in 3..<x.count where x[i] > m + s { return i }
        return nil
    }

    /// `perTokenRule` as a `DecisionPoint` (kind rise, score `(x[i] - mean) / std`, or `x[i] - mean` when std is 0).
    public static func perTokenRuleDecision(_ x: [Double]) -> DecisionPoint? {
        guard let i = perTokenRule(x) else { return nil }
        let head = Array(x[0..<3])
        let m = RunStats.mean(head), s = RunStats.std(head, mean: m)
        return DecisionPoint(index: i, kind: .rise, method: perTokenMethod, score: s > 0 ? (x[i] - m) / s : x[i] - m)
    }

    /// The per-token project's spikes: every index with `x[i] > mean(x) + std(x)`.
    public static func perTokenSpikes(_ x: [Double]) -> [Int] {
        let m = RunStats.mean(x), s = RunStats.std(x, mean: m)
        return x.indices.filter { x[$0] > m + s }
    }

    // MARK: automatic detector

    /// Robust noise scale of a curve: `1.4826 * MAD(diff(x)) / sqrt(2)` (differences cancel slow level
    /// changes; the MAD ignores the few large differences that steps and spikes make). Falls back to the
    /// mean absolute deviation of the differences when the MAD is 0, and never goes below the relative floor.
    public static func noiseScale(_ x: [Double], parameters p: Parameters = .init()) -> Double {
        let floor = p.minRelativeScale * Swift.max(1, x.map(abs).max() ?? 0)
        guard x.count >= 3 else { return floor }
        var d: [Double] = []
        d.reserveCapacity(x.count - 1)
        for i in 1..<x.count { d.append(x[i] - x[i - 1]) }
        let med = median(d)
        let mad = median(d.map { abs($0 - med) })
        var sigma = 1.4826 * mad / 2.0.squareRoot()
        if !(sigma > 0) {
            // More than half the differences are equal (quantised or periodic data): fall back to the mean
            // absolute deviation (sqrt(pi/2) makes it a std for Gaussian data), less swayed by spikes than the std.
            let meanAbs = d.reduce(0) { $0 + abs($1 - med) } / Double(d.count)
            sigma = (Double.pi / 2).squareRoot() * meanAbs / 2.0.squareRoot()
        }
        return sigma.isFinite ? Swift.max(sigma, floor) : floor
    }

    /// Automatic decision points of one curve: spikes (short excursions, Hampel filter) and level changes
    /// (binary segmentation with the standardized CUSUM statistic on the de-spiked curve), sorted by index.
    /// Non-finite input yields no points.
    public static func detect(_ x: [Double], parameters p: Parameters = .init()) -> [DecisionPoint] {
        let n = x.count
        guard n >= 3, x.allSatisfy({ $0.isFinite }) else { return [] }
        let sigma = noiseScale(x, parameters: p)

        // 1. Spikes: samples far from the median of a (2k+1)-window, which tolerates k outliers.
        let k = Swift.max(1, p.spikeHalfWidth)
        let width = Swift.min(n, 2 * k + 1)
        var cleaned = x
        var z = Array(repeating: 0.0, count: n)
        var flagged = Array(repeating: false, count: n)
        for i in 0..<n {
            // Keep the window full-size at the edges by shifting it inwards.
            let lo = Swift.min(Swift.max(0, i - k), n - width)
            let m = median(Array(x[lo..<(lo + width)]))
            z[i] = (x[i] - m) / sigma
            if abs(z[i]) > p.spikeThreshold { flagged[i] = true; cleaned[i] = m }
        }
        var points: [DecisionPoint] = []
        var i = 0
        while i < n {
            guard flagged[i] else { i += 1; continue }
            var j = i, best = i
            while j + 1 < n, flagged[j + 1], (z[j + 1] > 0) == (z[i] > 0) {
                j += 1
                if abs(z[j]) > abs(z[best]) { best = j }
            }
            points.append(DecisionPoint(index: best, kind: .spike, method: automaticMethod, score: z[best]))
            i = j + 1
        }

        // 2. Level changes on the cleaned curve.
        var prefix = [0.0]
        prefix.reserveCapacity(n + 1)
        for v in cleaned { prefix.append(prefix[prefix.count - 1] + v) }
        func segMean(_ a: Int, _ b: Int) -> Double { (prefix[b] - prefix[a]) / Double(b - a) }
        let minSeg = Swift.max(1, p.minSegment)
        var cuts: [Int] = []
        var stack: [(Int, Int)] = [(0, n)]
        while let seg = stack.popLast(), cuts.count < p.maxChanges {
            let (lo, hi) = seg
            let m = hi - lo
            guard m >= 2 * minSeg else { continue }
            var bestT = 0.0, bestCut = -1, bestShift = 0.0
            for t in (lo + minSeg)...(hi - minSeg) {
                let n1 = Double(t - lo), n2 = Double(hi - t)
                let shift = (segMean(t, hi) - segMean(lo, t)) / sigma
                let stat = (n1 * n2 / Double(m)).squareRoot() * abs(shift)
                if stat > bestT { bestT = stat; bestCut = t; bestShift = shift }
            }
            if bestCut >= 0, bestT > p.splitThreshold, abs(bestShift) >= p.minShift {
                cuts.append(bestCut)
                stack.append((lo, bestCut))
                stack.append((bestCut, hi))
            }
        }
        cuts.sort()
        // Score each change by the means of its final neighbouring segments.
        let bounds = [0] + cuts + [n]
        for c in 0..<cuts.count {
            let shift = (segMean(bounds[c + 1], bounds[c + 2]) - segMean(bounds[c], bounds[c + 1])) / sigma
            guard abs(shift) >= p.minShift else { continue }
            points.append(DecisionPoint(index: cuts[c], kind: shift > 0 ? .rise : .fall, method: automaticMethod, score: shift))
        }
        return points.sorted { $0.index < $1.index }
    }

    static func median(_ v: [Double]) -> Double {
        guard !v.isEmpty else { return 0 }
        let s = v.sorted()
        let h = s.count / 2
        return s.count % 2 == 1 ? s[h] : (s[h - 1] + s[h]) / 2
    }
}
