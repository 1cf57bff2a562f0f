import Foundation
import PersonaModels

/// The three per-sample averages of persona_vectors.
public enum AverageMethod: String, CaseIterable, Sendable, Codable {
    /// Mean over the response positions [prompt_len, end).
    case responseAvg = "response_avg"
    /// Mean over the prompt positions [0, prompt_len).
    case promptAvg = "prompt_avg"
    /// The last prompt position, prompt_len - 1.
    case promptLast = "prompt_last"
}

/// Sufficient statistics of a mean difference: for each side (positive / negative) and method, the sum of
/// per-sample averages for every hidden-state row, and the sample count. Shards merge exactly by adding.
///
/// Exactness: each sample's average is rounded to a multiple of 2^-24 (`quantize`) before it is added. Sums of such
/// numbers are exact in f64 while they stay below 2^29 in magnitude, so addition order does not matter: N shards
/// merged give the same bits as one process, whatever the split. The rounding (at most 3e-8 per average) is
/// below f32 resolution for the values hidden states take.
public struct ActivationSums: Codable, Sendable, Equatable {
    /// The grid sample averages are rounded to.
    public static let quantum = 0x1p-24
    /// Below this magnitude sums of quantized averages are exact in f64.
    public static let exactLimit = 0x1p29
    @inline(__always) public static func quantize(_ x: Double) -> Double { (x * 0x1p24).rounded() * 0x1p-24 }

    public var numRows: Int
    public var hiddenSize: Int
    /// sums[side][method] = [rows * hidden], each a sum of quantized per-sample averages.
    public var positive: [String: [Double]]
    public var negative: [String: [Double]]
    public var positiveCount: Int
    public var negativeCount: Int

    public init(numRows: Int, hiddenSize: Int) {
        self.numRows = numRows
        self.hiddenSize = hiddenSize
        let zero = [Double](repeating: 0, count: numRows * hiddenSize)
        positive = Dictionary(uniqueKeysWithValues: AverageMethod.allCases.map { ($0.rawValue, zero) })
        negative = positive
        positiveCount = 0
        negativeCount = 0
    }

    /// Adds one sample from its hidden states (HF rows, each [T, hidden] flattened) and prompt length.
    /// Samples with an empty response or prompt are rejected with an error.
    public mutating func add(hiddenStates: [[Float]], promptLength: Int, positive isPositive: Bool) throws {
        guard hiddenStates.count == numRows else { throw VectorError("sample has \(hiddenStates.count) hidden-state rows, expected \(numRows)") }
        let T = (hiddenStates.first?.count ?? 0) / hiddenSize
        guard promptLength > 0, promptLength < T else {
            throw VectorError("sample needs a prompt and a response: prompt length \(promptLength), total \(T) tokens")
        }
        let D = hiddenSize
        var target = isPositive ? positive : negative
        var mean = [Double](repeating: 0, count: D)
        for (r, h) in hiddenStates.enumerated() {
            func addMean(_ method: AverageMethod, _ range: Range<Int>) {
                let inv = 1 / Double(range.count)
                for i in 0..<D { mean[i] = 0 }
                for t in range { for i in 0..<D { mean[i] += Double(h[t * D + i]) * inv } }
                target[method.rawValue]!.withUnsafeMutableBufferPointer { s in
                    for i in 0..<D { s[r * D + i] += Self.quantize(mean[i]) }
                }
            }
            addMean(.responseAvg, promptLength..<T)
            addMean(.promptAvg, 0..<promptLength)
            addMean(.promptLast, (promptLength - 1)..<promptLength)
        }
        if isPositive { positive = target; positiveCount += 1 } else { negative = target; negativeCount += 1 }
    }

    /// Checks what a decoded file or a shard holds: every method on both sides, each sum numRows x hiddenSize
    /// finite values, counts not negative. `source` names the file in the error.
    public func validate(source: String) throws {
        guard numRows >= 1, hiddenSize >= 1, numRows <= Int.max / hiddenSize else {
            throw VectorError("\(source): statistics of shape [\(numRows), \(hiddenSize)] are not a model's")
        }
        guard positiveCount >= 0, negativeCount >= 0 else {
            throw VectorError("\(source): negative sample counts (\(positiveCount) positive, \(negativeCount) negative)")
        }
        for (side, sums) in [("positive", positive), ("negative", negative)] {
            for m in AverageMethod.allCases {
                guard let xs = sums[m.rawValue] else { throw VectorError("\(source): \(side) sums have no \(m.rawValue)") }
                guard xs.count == numRows * hiddenSize else {
                    throw VectorError("\(source): \(side) \(m.rawValue) sums hold \(xs.count) values, [\(numRows), \(hiddenSize)] needs \(numRows * hiddenSize)")
                }
                if let i = xs.firstIndex(where: { !$0.isFinite }) {
                    throw VectorError("\(source): \(side) \(m.rawValue) sums hold \(xs[i]) at \(i)")
                }
            }
            if let extra = sums.keys.first(where: { AverageMethod(rawValue: $0) == nil }) {
                throw VectorError("\(source): \(side) sums name an unknown method '\(extra)'")
            }
        }
    }

    /// Exact merge of another shard's statistics; both must pass `validate` (nothing is truncated or dropped).
    public mutating func merge(_ o: ActivationSums, source: String = "shard") throws {
        try validate(source: "merged statistics")
        try o.validate(source: source)
        guard o.numRows == numRows, o.hiddenSize == hiddenSize else {
            throw VectorError("\(source): cannot merge statistics of shape [\(o.numRows), \(o.hiddenSize)] into [\(numRows), \(hiddenSize)]")
        }
        for k in positive.keys {
            positive[k] = zip(positive[k]!, o.positive[k]!).map(+)
            negative[k] = zip(negative[k]!, o.negative[k]!).map(+)
        }
        positiveCount += o.positiveCount
        negativeCount += o.negativeCount
    }

    /// v[l] = mean_pos - mean_neg for every row, as f32 (not normalised).
    public func vector(trait: String, method: AverageMethod, model: String? = nil, positiveMeaning: String? = nil) throws -> TraitVector {
        guard positiveCount > 0, negativeCount > 0 else {
            throw VectorError("trait '\(trait)': no samples on the \(positiveCount == 0 ? "positive" : "negative") side")
        }
        let p = positive[method.rawValue]!, n = negative[method.rawValue]!
        let ip = 1 / Double(positiveCount), inn = 1 / Double(negativeCount)
        let rows = (0..<numRows).map { r in
            (0..<hiddenSize).map { i in Float(p[r * hiddenSize + i] * ip - n[r * hiddenSize + i] * inn) }
        }
        return TraitVector(trait: trait, method: method.rawValue, rows: rows, model: model, positiveMeaning: positiveMeaning,
                           samplesPositive: positiveCount, samplesNegative: negativeCount)
    }
}

/// Separation of two score sets: AUROC (probability a positive outscores a negative) and Cohen's d.
public enum Separation {
    public static func auroc(positive: [Double], negative: [Double]) -> Double {
        guard !positive.isEmpty, !negative.isEmpty else { return .nan }
        var wins = 0.0
        for p in positive { for n in negative { wins += p > n ? 1 : (p == n ? 0.5 : 0) } }
        return wins / Double(positive.count * negative.count)
    }

    public static func cohensD(positive: [Double], negative: [Double]) -> Double {
        func mv(_ x: [Double]) -> (Double, Double) {
            let m = x.reduce(0, +) / Double(x.count)
            let v = x.count > 1 ? x.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(x.count - 1) : 0
            return (m, v)
        }
        guard positive.count > 1, negative.count > 1 else { return .nan }
        let (mp, vp) = mv(positive), (mn, vn) = mv(negative)
        let pooled = ((Double(positive.count - 1) * vp + Double(negative.count - 1) * vn) / Double(positive.count + negative.count - 2)).squareRoot()
        return pooled > 0 ? (mp - mn) / pooled : .nan
    }
}

/// Accumulates what `ActivationSums.add` computes from a trace inside the forward pass instead: hooks at every
/// hidden-state row add each position's state, scaled by 1/count of its average, into the sample's own averages,
/// which are quantized and added to the running sums once the sample's last hook has run. No sequence's hidden
/// states are kept (at 8B scale a batch of traces held about 0.9 GB), only its averages. The additions happen in the
/// same order (position by position) with the same arithmetic, so the result equals `add` on the trace bit for bit.
final class ActivationAccumulator: @unchecked Sendable {
    let numRows: Int
    let hiddenSize: Int
    /// [side (0 positive, 1 negative)][method (AverageMethod.allCases order)][row * hidden]
    private let sums: UnsafeMutablePointer<Double>
    private var counts = [0, 0]

    init(numRows: Int, hiddenSize: Int) {
        self.numRows = numRows
        self.hiddenSize = hiddenSize
        let n = 2 * AverageMethod.allCases.count * numRows * hiddenSize
        sums = UnsafeMutablePointer<Double>.allocate(capacity: n)
        sums.initialize(repeating: 0, count: n)
    }

    deinit { sums.deallocate() }

    /// Hooks that add one sample of `total` tokens, the first `promptLength` of them the prompt, on one side.
    func hooks(promptLength P: Int, total T: Int, positive: Bool) throws -> HookSet {
        guard P > 0, P < T else {
            throw VectorError("sample needs a prompt and a response: prompt length \(P), total \(T) tokens")
        }
        counts[positive ? 0 : 1] += 1
        let D = hiddenSize, rows = numRows, L = numRows - 1
        let methods = AverageMethod.allCases.count
        let base = sums + (positive ? 0 : 1) * methods * rows * D
        let (response, prompt, last) = (AverageMethod.allCases.firstIndex(of: .responseAvg)!,
                                        AverageMethod.allCases.firstIndex(of: .promptAvg)!,
                                        AverageMethod.allCases.firstIndex(of: .promptLast)!)
        let invResponse = 1 / Double(T - P), invPrompt = 1 / Double(P)
        let sample = SampleAverages(count: methods * rows * D, calls: rows * T)
        return HookSet((0...L).map { r in
            Intervention(HookPoint.hiddenStateRow(r, numLayers: L)!, .custom { position, h, _ in
                func add(_ method: Int, _ scale: Double) {
                    let s = sample.values + (method * rows + r) * D
                    for i in 0..<D { s[i] += Double(h[i]) * scale }
                }
                if position >= P { add(response, invResponse) } else { add(prompt, invPrompt) }
                if position == P - 1 { add(last, 1) }
                sample.calls -= 1
                if sample.calls == 0 {
                    // The sample's last hook: its averages are complete.
                    for i in 0..<sample.count { base[i] += ActivationSums.quantize(sample.values[i]) }
                    sample.release()
                }
            })
        })
    }

    /// One sample's averages while its forward pass runs, [method][row * hidden].
    private final class SampleAverages: @unchecked Sendable {
        private(set) var values: UnsafeMutablePointer<Double>
        let count: Int
        var calls: Int
        init(count: Int, calls: Int) {
            self.count = count
            self.calls = calls
            values = .allocate(capacity: count)
            values.initialize(repeating: 0, count: count)
        }
        func release() {
            values.deallocate()
            values = .allocate(capacity: 0)
        }
        deinit { values.deallocate() }
    }

    /// The accumulated statistics.
    func statistics() -> ActivationSums {
        var out = ActivationSums(numRows: numRows, hiddenSize: hiddenSize)
        let n = numRows * hiddenSize
        for (m, method) in AverageMethod.allCases.enumerated() {
            out.positive[method.rawValue] = Array(UnsafeBufferPointer(start: sums + m * n, count: n))
            out.negative[method.rawValue] = Array(UnsafeBufferPointer(start: sums + (AverageMethod.allCases.count + m) * n, count: n))
        }
        out.positiveCount = counts[0]
        out.negativeCount = counts[1]
        return out
    }
}
