import Foundation
import PersonaTensor

/// Sampling settings. `temperature == 0` is greedy (argmax, lowest id on ties).
public struct SamplingParameters: Sendable, Equatable {
    public var temperature: Float = 0
    public var topK: Int = 0            // 0 = off
    public var topP: Float = 1          // 1 = off
    public var minP: Float = 0          // 0 = off
    public var repetitionPenalty: Float = 1  // 1 = off (HF/CTRL style: divide positive logits, multiply negative)
    /// OpenAI's penalties: logit[j] -= count[j] * frequencyPenalty + (count[j] > 0 ? presencePenalty : 0), count[j]
    /// being how often j was generated so far (the prompt does not count). 0 = off; -2...2.
    public var frequencyPenalty: Float = 0
    public var presencePenalty: Float = 0
    /// OpenAI's logit_bias: added to a token's logit before sampling (-100...100; 100 all but forces it).
    public var logitBias: [Int: Float] = [:]
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0, repetitionPenalty: Float = 1,
                frequencyPenalty: Float = 0, presencePenalty: Float = 0, logitBias: [Int: Float] = [:], seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.frequencyPenalty = frequencyPenalty
        self.presencePenalty = presencePenalty
        self.logitBias = logitBias
        self.seed = seed
    }

    /// Errors name the offending parameter.
    public func validate() throws {
        if !(temperature >= 0 && temperature.isFinite) { throw GenerationError("temperature must be >= 0, got \(temperature)") }
        if topK < 0 { throw GenerationError("top-k must be >= 0, got \(topK)") }
        if !(topP > 0 && topP <= 1) { throw GenerationError("top-p must be in (0, 1], got \(topP)") }
        if !(minP >= 0 && minP < 1) { throw GenerationError("min-p must be in [0, 1), got \(minP)") }
        if !(repetitionPenalty > 0 && repetitionPenalty.isFinite) { throw GenerationError("repetition penalty must be > 0, got \(repetitionPenalty)") }
        if !(frequencyPenalty >= -2 && frequencyPenalty <= 2) { throw GenerationError("frequency penalty must be in [-2, 2], got \(frequencyPenalty)") }
        if !(presencePenalty >= -2 && presencePenalty <= 2) { throw GenerationError("presence penalty must be in [-2, 2], got \(presencePenalty)") }
        for (id, b) in logitBias.sorted(by: { $0.key < $1.key }) {
            if id < 0 { throw GenerationError("logit bias: token id \(id) is negative") }
            if !(b >= -100 && b <= 100) { throw GenerationError("logit bias for token \(id) must be in [-100, 100], got \(b)") }
        }
    }
}

public struct GenerationError: Error, CustomStringConvertible, LocalizedError {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }
}

/// xoshiro256** seeded through SplitMix64: fast, reproducible across platforms.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var z = seed
        func splitmix() -> UInt64 {
            z &+= 0x9E3779B97F4A7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58476D1CE4E5B9
            x = (x ^ (x >> 27)) &* 0x94D049BB133111EB
            return x ^ (x >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}

/// Picks the next token from logits. Keeps its scratch buffers so sampling allocates nothing per step.
public struct Sampler {
    public let parameters: SamplingParameters
    private var rng: SeededRandom
    private var indices: [Int32] = []
    private var probs: [Float] = []
    private var seen: [Bool] = []
    private var counts: [Int32] = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        rng = SeededRandom(seed: parameters.seed)
    }

    /// `logits` is modified in place (bias, penalties, temperature). `history` is used by the repetition penalty;
    /// its entries from `promptLength` on (the generated ones) by the frequency and presence penalties.
    public mutating func sample(_ logits: UnsafeMutableBufferPointer<Float>, history: [Int], promptLength: Int = 0) -> Int {
        let p = parameters
        let n = logits.count
        for (id, b) in p.logitBias where id >= 0 && id < n { logits[id] += b }
        if p.repetitionPenalty != 1 {
            // each id once, however often it occurs (a reused mask instead of a Set per step)
            if seen.count != n { seen = [Bool](repeating: false, count: n) }
            for id in history where id >= 0 && id < n && !seen[id] {
                seen[id] = true
                let l = logits[id]
                logits[id] = l > 0 ? l / p.repetitionPenalty : l * p.repetitionPenalty
            }
            for id in history where id >= 0 && id < n { seen[id] = false }
        }
        if p.frequencyPenalty != 0 || p.presencePenalty != 0 {
            if counts.count != n { counts = [Int32](repeating: 0, count: n) }
            let generated = history[min(max(0, promptLength), history.count)...]
            for id in generated where id >= 0 && id < n { counts[id] += 1 }
            for id in generated where id >= 0 && id < n && counts[id] > 0 {
                logits[id] -= Float(counts[id]) * p.frequencyPenalty + p.presencePenalty
                counts[id] = 0
            }
        }
        if p.temperature == 0 { return Sampler.argmax(UnsafeBufferPointer(logits)) }
        if probs.count != n { probs = [Float](repeating: 0, count: n) }

        if p.topK == 0 && p.topP >= 1 {
            // No ordering needed (temperature, optionally min-p): one pass over the vocabulary.
            var maxL = -Float.infinity
            for v in logits where v > maxL { maxL = v }
            // p(max) is exp(0) = 1 here, so min-p compares the weights directly
            let total = probs.withUnsafeMutableBufferPointer {
                Ops.softmaxWeights(logits.baseAddress!, count: n, shift: maxL, temperature: p.temperature, cut: p.minP, out: $0.baseAddress!)
            }
            let r = rng.nextUnit() * total
            var acc: Double = 0
            var last = 0
            for i in 0..<n where probs[i] > 0 {
                acc += Double(probs[i])
                last = i
                if r < acc { return i }
            }
            return last
        }

        // Candidates in order (logit descending, id ascending), found by partial selection: sorting the whole
        // vocabulary each step (49k-152k ids) cost more than the rest of sampling.
        if indices.count != n { indices = (0..<Int32(n)).map { $0 } }
        for i in 0..<n { indices[i] = Int32(i) }
        let before = { (a: Int32, b: Int32) -> Bool in logits[Int(a)] > logits[Int(b)] || (logits[Int(a)] == logits[Int(b)] && a < b) }
        var count: Int
        var sum: Double = 0
        if p.topK > 0 && p.topK < n || p.topP >= 1 {
            // top-k: the k first ids, sorted; softmax at temperature over them
            let k = p.topK > 0 ? min(p.topK, n) : n
            indices.withUnsafeMutableBufferPointer { idx in
                Sampler.selectFirst(k, idx, before)
                idx[0..<k].sort(by: before)
            }
            let maxL = logits[Int(indices[0])]
            for i in 0..<k {
                let e = Ops.softmaxWeight(logits[Int(indices[i])], shift: maxL, temperature: p.temperature)
                probs[i] = e
                sum += Double(e)
            }
            count = k
            // min-p: drop tokens below minP * p(max)
            if p.minP > 0 {
                let cut = Float(Double(probs[0]) / sum) * p.minP
                var c = 0
                while c < count, Float(Double(probs[c]) / sum) >= cut { c += 1 }
                count = max(1, c)
            }
        } else {
            // top-p over the whole vocabulary: weights in id order (p(max) has weight 1); min-p keeps weights >= minP.
            // The nucleus lies among weights >= (1 - topP) * total / n: the others together hold less than
            // (1 - topP) of the mass, so only those candidates are sorted.
            var maxL = -Float.infinity
            for v in logits where v > maxL { maxL = v }
            sum = probs.withUnsafeMutableBufferPointer {
                Ops.softmaxWeights(logits.baseAddress!, count: n, shift: maxL, temperature: p.temperature, cut: p.minP, out: $0.baseAddress!)
            }
            let eps = Float((1 - Double(p.topP)) * sum / Double(n))
            count = 0
            for i in 0..<n where probs[i] > 0 && probs[i] >= eps { indices[count] = Int32(i); count += 1 }
            let m = count
            indices.withUnsafeMutableBufferPointer { idx in idx[0..<m].sort(by: before) }
            for i in 0..<count { probs[i] = Ops.softmaxWeight(logits[Int(indices[i])], shift: maxL, temperature: p.temperature) }
        }
        // top-p: smallest prefix whose mass reaches topP
        if p.topP < 1 {
            var acc: Double = 0
            var c = 0
            var total = sum
            if p.topK > 0 && p.topK < n { total = 0; for i in 0..<count { total += Double(probs[i]) } }
            while c < count {
                acc += Double(probs[c]) / total
                c += 1
                if acc >= Double(p.topP) { break }
            }
            count = max(1, c)
        }
        var total: Double = 0
        for i in 0..<count { total += Double(probs[i]) }
        let r = rng.nextUnit() * total
        var acc: Double = 0
        for i in 0..<count {
            acc += Double(probs[i])
            if r < acc { return Int(indices[i]) }
        }
        return Int(indices[count - 1])
    }

    /// Reorders `idx` so that its first `k` entries are the `k` that come first under `before` (a strict total
    /// order), in no particular order among themselves: quickselect, linear on average.
    static func selectFirst(_ k: Int, _ idx: UnsafeMutableBufferPointer<Int32>, _ before: (Int32, Int32) -> Bool) {
        guard k > 0, k < idx.count else { return }
        var lo = 0, hi = idx.count - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            // median of three as the pivot
            if before(idx[mid], idx[lo]) { idx.swapAt(mid, lo) }
            if before(idx[hi], idx[lo]) { idx.swapAt(hi, lo) }
            if before(idx[hi], idx[mid]) { idx.swapAt(hi, mid) }
            let pivot = idx[mid]
            var i = lo, j = hi
            while i <= j {
                while before(idx[i], pivot) { i += 1 }
                while before(pivot, idx[j]) { j -= 1 }
                if i <= j { idx.swapAt(i, j); i += 1; j -= 1 }
            }
            if k - 1 <= j { hi = j } else if k - 1 >= i { lo = i } else { return }
        }
    }

    public static func argmax(_ x: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        var bv = -Float.infinity
        for i in 0..<x.count where x[i] > bv { bv = x[i]; best = i }
        return best
    }
}
