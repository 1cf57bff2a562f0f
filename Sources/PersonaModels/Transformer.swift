import CPersonaKernels
import Foundation
import PersonaFormats
import PersonaTensor

/// Which logits a forward pass computes.
public enum LogitsMode: Sendable { case none, last, all }

/// A decoder-only transformer: Llama, Mistral, Qwen2/3, Gemma, Gemma-2 share this forward pass;
/// their differences are switches in `ModelConfig` set by the architecture files.
///
/// Not reentrant: one forward at a time per model (it owns its scratch buffers).
public final class TransformerModel: @unchecked Sendable {
    public let config: ModelConfig
    let weights: ModelWeights
    let invFreq: [Float]
    private var ws: Workspace
    /// How matrix products treat activations (`.exact`: f32, the default; `.native`: llama.cpp-style int8 / bf16).
    public var precision: MatmulPrecision = .exact
    private let lock = NSLock()

    init(config: ModelConfig, weights: ModelWeights) {
        self.config = config
        self.weights = weights
        self.invFreq = TransformerModel.ropeInverseFrequencies(config, factors: weights.ropeFreqFactors)
        self.ws = Workspace(config: config, tokens: 1, contextCapacity: 1)
    }

    public func makeCache(capacity: Int? = nil) -> KVCache {
        KVCache(numLayers: config.numLayers, kvDim: config.kvDim, capacity: min(capacity ?? config.maxPositions, config.maxPositions))
    }

    /// Runs `tokens` at positions cache.count ..< cache.count + tokens.count, appending to the cache.
    /// Returns logits (`[T, vocab]` for .all, `[vocab]` for .last) in a buffer valid until the next call.
    @discardableResult
    public func forward(_ tokens: [Int], cache: KVCache, hooks: HookSet = HookSet(), logits mode: LogitsMode = .last) throws -> UnsafeBufferPointer<Float> {
        lock.lock()
        defer { lock.unlock() }
        let c = config, T = tokens.count, D = c.hiddenSize
        guard T > 0 else { throw ModelError("forward: no tokens") }
        let p0 = cache.count
        guard p0 + T <= cache.capacity else {
            throw ModelError("context length exceeded: \(p0 + T) positions needed, the cache holds \(cache.capacity) (model maximum \(c.maxPositions))")
        }
        for (i, id) in tokens.enumerated() where id < 0 || id >= c.vocabSize {
            throw ModelError("token id \(id) at index \(i) is outside the vocabulary (0..<\(c.vocabSize))")
        }
        ws.ensure(tokens: T, contextCapacity: cache.capacity)
        let x = ws.x, h = ws.h

        // token embeddings (Gemma scales them by sqrt(hidden))
        for (t, id) in tokens.enumerated() {
            weights.embed.dequantizeRow(id, into: x + t * D)
            if c.embedScale != 1 { for i in 0..<D { x[t * D + i] *= c.embedScale } }
        }
        hooks.apply(.embed, x, start: p0, count: T, dim: D)
        try checkFinite(x, count: T, dim: D, start: p0) { "hook_embed" }
        ropeTables(start: p0, count: T)

        for l in 0..<c.numLayers {
            let w = weights.layers[l]
            hooks.apply(.residPre(l), x, start: p0, count: T, dim: D)

            // attention
            Ops.rmsNorm(x, weight: w.attnNorm, offset: c.normOffset, eps: c.rmsNormEps, n: D, T: T, out: h)
            attention(layer: l, w: w, input: h, cache: cache, start: p0, count: T, out: ws.attnOut)
            if let pn = w.postAttnNorm {
                Ops.rmsNorm(ws.attnOut, weight: pn, offset: c.normOffset, eps: c.rmsNormEps, n: D, T: T, out: ws.attnOut)
            }
            hooks.apply(.attnOut(l), ws.attnOut, start: p0, count: T, dim: D)
            Ops.add(x, ws.attnOut, count: T * D)  // residual connection
            hooks.apply(.residMid(l), x, start: p0, count: T, dim: D)

            // feed-forward: down(act(gate h) * up h)
            Ops.rmsNorm(x, weight: w.ffnNorm, offset: c.normOffset, eps: c.rmsNormEps, n: D, T: T, out: h)
            mlp(w: w, input: h, count: T, out: ws.mlpOut)
            if let pn = w.postFFNorm {
                Ops.rmsNorm(ws.mlpOut, weight: pn, offset: c.normOffset, eps: c.rmsNormEps, n: D, T: T, out: ws.mlpOut)
            }
            hooks.apply(.mlpOut(l), ws.mlpOut, start: p0, count: T, dim: D)
            Ops.add(x, ws.mlpOut, count: T * D)   // residual connection
            hooks.apply(.residPost(l), x, start: p0, count: T, dim: D)
            // NaN/Inf from a bad weight or an overflowing intervention would otherwise flow silently into scores
            try checkFinite(x, count: T, dim: D, start: p0) { "blocks.\(l).hook_resid_post" }
        }
        cache.count = p0 + T

        // final norm
        Ops.rmsNorm(x, weight: weights.finalNorm, offset: c.normOffset, eps: c.rmsNormEps, n: D, T: T, out: h)
        hooks.apply(.lnFinal, h, start: p0, count: T, dim: D)
        try checkFinite(h, count: T, dim: D, start: p0) { "ln_final.hook_normalized" }

        switch mode {
        case .none:
            return UnsafeBufferPointer(start: ws.logits, count: 0)
        case .last:
            Ops.matmul(weights.lmHead, h + (T - 1) * D, T: 1, ws.logits, precision: precision)
            softcapLogits(ws.logits, count: c.vocabSize)
            try checkFinite(ws.logits, count: 1, dim: c.vocabSize, start: p0 + T - 1) { "the logits (final norm or lm_head)" }
            return UnsafeBufferPointer(start: ws.logits, count: c.vocabSize)
        case .all:
            Ops.matmul(weights.lmHead, h, T: T, ws.logits, precision: precision)
            softcapLogits(ws.logits, count: T * c.vocabSize)
            try checkFinite(ws.logits, count: T, dim: c.vocabSize, start: p0) { "the logits (final norm or lm_head)" }
            return UnsafeBufferPointer(start: ws.logits, count: T * c.vocabSize)
        }
    }

    /// Throws if any of the T rows holds NaN or +-Inf (one integer pass over T * D floats, ~0.1% of a decode step).
    @inline(__always)
    private func checkFinite(_ x: UnsafeMutablePointer<Float>, count T: Int, dim D: Int, start p0: Int, point: () -> String) throws {
        let i = Int(pk_first_nonfinite(x, Int64(T * D)))
        guard i >= 0 else { return }
        throw ModelError("non-finite activation (NaN/Inf) in \(point()) at position \(p0 + i / D): value \(x[i]) at index \(i % D)"
                         + " (a NaN/Inf or overflowing weight there, or an intervention at that point that overflowed)")
    }

    private func softcapLogits(_ p: UnsafeMutablePointer<Float>, count: Int) {
        guard let cap = config.finalLogitSoftcap else { return }
        for i in 0..<count { p[i] = Foundation.tanh(p[i] / cap) * cap }
    }

    // MARK: attention

    private func attention(layer l: Int, w: LayerWeights, input h: UnsafeMutablePointer<Float>, cache: KVCache,
                           start p0: Int, count T: Int, out: UnsafeMutablePointer<Float>) {
        let c = config, hd = c.headDim, qDim = c.qDim, kvDim = c.kvDim
        let q = ws.q, k = ws.k, v = ws.v
        Ops.matmul(w.wq, h, T: T, q, precision: precision)
        Ops.matmul(w.wk, h, T: T, k, precision: precision)
        Ops.matmul(w.wv, h, T: T, v, precision: precision)
        if let b = w.bq { Ops.addBias(q, b, n: qDim, T: T) }
        if let b = w.bk { Ops.addBias(k, b, n: kvDim, T: T) }
        if let b = w.bv { Ops.addBias(v, b, n: kvDim, T: T) }
        if let qn = w.qNorm, let kn = w.kNorm {
            // per-head RMSNorm (Qwen3), before RoPE
            Ops.rmsNorm(q, weight: qn, offset: c.normOffset, eps: c.rmsNormEps, n: hd, T: T * c.numHeads, out: q)
            Ops.rmsNorm(k, weight: kn, offset: c.normOffset, eps: c.rmsNormEps, n: hd, T: T * c.numKVHeads, out: k)
        }
        applyRope(q, heads: c.numHeads, count: T)
        applyRope(k, heads: c.numKVHeads, count: T)

        // append to the cache
        let kc = cache.keys[l], vc = cache.values[l]
        (kc + p0 * kvDim).update(from: k, count: T * kvDim)
        (vc + p0 * kvDim).update(from: v, count: T * kvDim)

        let group = c.numHeads / c.numKVHeads
        let window = c.slidingLayers[l] ? c.slidingWindow : nil
        let scale = c.attnScale, softcap = c.attnLogitSoftcap
        let att = ws.att, attStride = ws.contextCapacity, ctxOut = ws.ctx
        // one task per head; the job travels by pointer so the decode step allocates nothing
        var job = AttentionJob(q: q, kc: kc, vc: vc, scores: att, out: ctxOut, attStride: attStride, T: T, p0: p0,
                               qDim: qDim, kvDim: kvDim, hd: hd, group: group, window: window ?? 0,
                               scale: scale, softcap: softcap ?? 0)
        withUnsafeMutablePointer(to: &job) { p in
            ThreadPool.shared.parallelFor(c.numHeads, context: UnsafeMutableRawPointer(p)) { ctx, head in
                let j = ctx!.assumingMemoryBound(to: AttentionJob.self).pointee
                let head = Int(head), kvh = head / j.group
                for t in 0..<j.T {
                    let pos = j.p0 + t
                    let lo = j.window > 0 ? max(0, pos - j.window + 1) : 0
                    // scores, softmax and the weighted sum of values over positions lo...pos (C kernel, SIMD dots)
                    pk_attention_head(j.q + t * j.qDim + head * j.hd, j.kc + lo * j.kvDim + kvh * j.hd, Int64(j.kvDim),
                                      j.vc + lo * j.kvDim + kvh * j.hd, Int64(j.kvDim), Int64(pos - lo + 1), Int64(j.hd),
                                      j.scale, j.softcap, j.scores + head * j.attStride, j.out + t * j.qDim + head * j.hd)
                }
            }
        }
        Ops.matmul(w.wo, ctxOut, T: T, out, precision: precision)
    }

    // MARK: MLP

    private func mlp(w: LayerWeights, input h: UnsafeMutablePointer<Float>, count T: Int, out: UnsafeMutablePointer<Float>) {
        let F = config.intermediateSize
        let g = ws.gate, u = ws.up
        Ops.matmul(w.gate, h, T: T, g, precision: precision)
        Ops.matmul(w.up, h, T: T, u, precision: precision)
        // act(gate) * up: SIMD kernels, in 16-aligned chunks over the pool
        let n = T * F, chunk = 8192
        var job = ActivationJob(g: g, u: u, n: n, chunk: chunk, activation: config.activation)
        withUnsafeMutablePointer(to: &job) { p in
            ThreadPool.shared.parallelFor((n + chunk - 1) / chunk, context: UnsafeMutableRawPointer(p)) { ctx, c in
                let j = ctx!.assumingMemoryBound(to: ActivationJob.self).pointee
                let i0 = Int(c) * j.chunk, m = min(j.chunk, j.n - i0)
                switch j.activation {
                case .silu: pk_silu_mul(j.g + i0, j.u + i0, Int64(m))
                case .geluTanh: pk_gelu_tanh_mul(j.g + i0, j.u + i0, Int64(m))
                case .gelu: for i in i0..<(i0 + m) { j.g[i] = Ops.gelu(j.g[i]) * j.u[i] }
                }
            }
        }
        Ops.matmul(w.down, g, T: T, out, precision: precision)
    }

    // MARK: RoPE

    static func ropeInverseFrequencies(_ c: ModelConfig, factors: [Float]?) -> [Float] {
        let half = c.headDim / 2
        var inv = (0..<half).map { i -> Float in
            1 / Float(pow(c.ropeTheta, Double(2 * i) / Double(c.headDim)))
        }
        if let s = c.ropeScaling {
            // Llama-3: long wavelengths divided by factor, short kept, smooth blend between.
            let lowWavelen = s.originalMaxPositions / s.lowFreqFactor
            let highWavelen = s.originalMaxPositions / s.highFreqFactor
            inv = inv.map { f -> Float in
                let wavelen = 2 * Double.pi / Double(f)
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return f / Float(s.factor) }
                let smooth = Float((s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor))
                return (1 - smooth) * f / Float(s.factor) + smooth * f
            }
        }
        if let factors, factors.count == half {
            inv = zip(inv, factors).map { $0 / $1 }
        }
        return inv
    }

    private func ropeTables(start: Int, count: Int) {
        let half = config.headDim / 2
        for t in 0..<count {
            let pos = Float(start + t)
            for i in 0..<half {
                let a = pos * invFreq[i]
                ws.cos[t * half + i] = Foundation.cos(a)
                ws.sin[t * half + i] = Foundation.sin(a)
            }
        }
    }

    private func applyRope(_ x: UnsafeMutablePointer<Float>, heads: Int, count T: Int) {
        let hd = config.headDim, half = hd / 2
        let interleaved = config.ropeStyle == .interleaved
        for t in 0..<T {
            let cs = ws.cos + t * half, sn = ws.sin + t * half
            for hh in 0..<heads {
                let p = x + (t * heads + hh) * hd
                for i in 0..<half {
                    let (a, b) = interleaved ? (2 * i, 2 * i + 1) : (i, i + half)
                    let x0 = p[a], x1 = p[b]
                    p[a] = x0 * cs[i] - x1 * sn[i]
                    p[b] = x1 * cs[i] + x0 * sn[i]
                }
            }
        }
    }
}

/// What an attention task needs (passed by pointer to the pool: no closure context to allocate).
private struct AttentionJob {
    var q, kc, vc, scores, out: UnsafeMutablePointer<Float>
    var attStride, T, p0, qDim, kvDim, hd, group, window: Int   // window 0: none
    var scale, softcap: Float                                    // softcap 0: none
}

private struct ActivationJob {
    var g, u: UnsafeMutablePointer<Float>
    var n, chunk: Int
    var activation: Activation
}

/// Scratch buffers of one forward pass, grown only when a longer batch or context arrives.
struct Workspace {
    let config: ModelConfig
    private(set) var tokens = 0
    private(set) var contextCapacity = 0
    private var storage: UnsafeMutablePointer<Float>? = nil
    var x, h, q, k, v, ctx, attnOut, mlpOut, gate, up, logits, att, cos, sin: UnsafeMutablePointer<Float>

    init(config: ModelConfig, tokens: Int, contextCapacity: Int) {
        self.config = config
        let dummy = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        (x, h, q, k, v, ctx, attnOut, mlpOut, gate, up, logits, att, cos, sin) =
            (dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy)
        storage = dummy
        ensure(tokens: tokens, contextCapacity: contextCapacity)
    }

    mutating func ensure(tokens T: Int, contextCapacity C: Int) {
        if T <= tokens && C <= contextCapacity { return }
        let T = max(T, tokens), C = max(C, contextCapacity)
        let c = config
        let sizes = [T * c.hiddenSize, T * c.hiddenSize, T * c.qDim, T * c.kvDim, T * c.kvDim, T * c.qDim,
                     T * c.hiddenSize, T * c.hiddenSize, T * c.intermediateSize, T * c.intermediateSize,
                     T * c.vocabSize, c.numHeads * C, T * c.headDim / 2, T * c.headDim / 2]
        // 16-float alignment per buffer
        let padded = sizes.map { ($0 + 15) / 16 * 16 }
        storage?.deallocate()
        let base = UnsafeMutablePointer<Float>.allocate(capacity: padded.reduce(0, +))
        var ptrs: [UnsafeMutablePointer<Float>] = []
        var off = 0
        for s in padded { ptrs.append(base + off); off += s }
        (x, h, q, k, v, ctx, attnOut, mlpOut, gate, up) = (ptrs[0], ptrs[1], ptrs[2], ptrs[3], ptrs[4], ptrs[5], ptrs[6], ptrs[7], ptrs[8], ptrs[9])
        (logits, att, cos, sin) = (ptrs[10], ptrs[11], ptrs[12], ptrs[13])
        storage = base
        tokens = T
        contextCapacity = C
    }
}
