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
    /// The sliding-window layers' own frequencies (`ModelConfig.slidingRopeTheta`), nil when they share `invFreq`.
    let slidingInvFreq: [Float]?
    private var ws: Workspace
    /// How matrix products treat activations (`.exact`: f32, the default; `.native`: llama.cpp-style int8 / bf16).
    /// A change made while a forward pass runs (on another thread) waits for it: a pass uses one precision.
    public var precision: MatmulPrecision {
        get { lock.lock(); defer { lock.unlock() }; return requestedPrecision }
        set { lock.lock(); requestedPrecision = newValue; lock.unlock() }
    }
    private var requestedPrecision: MatmulPrecision = .exact
    /// The precision of the pass in flight, read once when it starts (under the lock).
    private var passPrecision: MatmulPrecision = .exact
    private let lock = NSLock()

    init(config: ModelConfig, weights: ModelWeights) {
        self.config = config
        self.weights = weights
        self.invFreq = TransformerModel.ropeInverseFrequencies(config, factors: weights.ropeFreqFactors ?? config.longRope?.shortFactors.map(Float.init))
        self.slidingInvFreq = config.slidingRopeTheta.map { theta in
            var plain = config
            (plain.ropeTheta, plain.ropeScaling, plain.ropeLinearFactor, plain.yarn) = (theta, nil, 1, nil)
            return TransformerModel.ropeInverseFrequencies(plain, factors: nil)
        }
        self.ws = Workspace(config: config, tokens: 1, contextCapacity: 1)
    }

    deinit { ws.release() }

    /// How the caches `makeCache` makes store keys and values: `.f32` (the default) or `.f16`, as llama.cpp's.
    /// A cache keeps the type it was made with.
    public var kvCacheType: KVCacheType {
        get { lock.lock(); defer { lock.unlock() }; return requestedCacheType }
        set { lock.lock(); requestedCacheType = newValue; lock.unlock() }
    }
    private var requestedCacheType: KVCacheType = .f32

    public func makeCache(capacity: Int? = nil) -> KVCache {
        KVCache(numLayers: config.numLayers, kvDim: config.kvDim, capacity: min(capacity ?? config.maxPositions, config.maxPositions),
                type: kvCacheType)
    }

    /// Runs `tokens` at positions cache.count ..< cache.count + tokens.count, appending to the cache.
    /// Returns logits (`[T, vocab]` for .all, `[vocab]` for .last) in the model's buffer: valid until the next pass,
    /// which may come from another thread once this returns. A caller that shares the model reads the logits in
    /// `forward(batch:logits:body:)` instead, under the model's lock.
    @discardableResult
    public func forward(_ tokens: [Int], cache: KVCache, hooks: HookSet = HookSet(), logits mode: LogitsMode = .last) throws -> UnsafeBufferPointer<Float> {
        // one sequence on the stack: the decode step stays free of allocations
        let one = BatchSequence(tokens: tokens, cache: cache, hooks: hooks)
        lock.lock()
        defer { lock.unlock() }
        return try withUnsafePointer(to: one) { try run(UnsafeBufferPointer(start: $0, count: 1), logits: mode) }
    }

    /// `forward(batch:logits:)` with the logits read by `body` before any other pass can start: the model's lock
    /// is held until `body` returns, so `body` must not run the model itself.
    public func forward<R>(batch: [BatchSequence], logits mode: LogitsMode = .last,
                           body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        try checkBatch(batch)
        lock.lock()
        defer { lock.unlock() }
        return try body(try batch.withUnsafeBufferPointer { try run($0, logits: mode) })
    }

    /// Runs several independent sequences in one pass: each appends its tokens to its own cache (at its own
    /// positions) and sees its own hooks, while the matrix products read every weight once for all of them.
    /// This is what makes generating many samples at once cheaper than one after another: a decode step of B
    /// sequences costs about one weight read instead of B.
    /// Returns logits in a buffer valid until the next call: `.last` gives `[B, vocab]` (the last token of each
    /// sequence, in order); `.all` gives every token's row, sequences one after another.
    @discardableResult
    public func forward(batch: [BatchSequence], logits mode: LogitsMode = .last) throws -> UnsafeBufferPointer<Float> {
        try checkBatch(batch)
        lock.lock()
        defer { lock.unlock() }
        return try batch.withUnsafeBufferPointer { try run($0, logits: mode) }
    }

    private func checkBatch(_ batch: [BatchSequence]) throws {
        guard !batch.isEmpty else { throw ModelError("forward: empty batch") }
        for i in batch.indices {
            for j in batch.indices where j > i && batch[i].cache === batch[j].cache {
                throw ModelError("forward: sequences \(i) and \(j) of the batch share one KV cache; each needs its own")
            }
        }
    }

    /// One pass; the caller holds `lock`.
    private func run(_ seqs: UnsafeBufferPointer<BatchSequence>, logits mode: LogitsMode) throws -> UnsafeBufferPointer<Float> {
        passPrecision = requestedPrecision
        let c = config, D = c.hiddenSize, B = seqs.count
        var T = 0, capacity = 0
        for (b, s) in seqs.enumerated() {
            let which = B > 1 ? "sequence \(b): " : ""
            guard !s.tokens.isEmpty else { throw ModelError("forward: \(which)no tokens") }
            guard s.cache.numLayers == c.numLayers, s.cache.kvDim == c.kvDim else {
                throw ModelError("forward: \(which)the KV cache was made for another model (\(s.cache.numLayers) layers x \(s.cache.kvDim), this one has \(c.numLayers) x \(c.kvDim))")
            }
            let p0 = s.cache.count, n = s.tokens.count
            guard p0 + n <= s.cache.capacity else {
                throw ModelError("\(which)context length exceeded: \(p0 + n) positions needed, the cache holds \(s.cache.capacity) (model maximum \(c.maxPositions))")
            }
            for (i, id) in s.tokens.enumerated() where id < 0 || id >= c.vocabSize {
                throw ModelError("\(which)token id \(id) at index \(i) is outside the vocabulary (0..<\(c.vocabSize))")
            }
            T += n
            capacity = max(capacity, s.cache.capacity)
        }
        ws.ensure(tokens: T, contextCapacity: capacity)
        ws.ensureLogits(rows: mode == .all ? T : B)
        let x = ws.x, h = ws.h

        // token embeddings (Gemma scales them by sqrt(hidden)), plus GPT-2's learned positions: hook_embed sees the
        // stream's start, HF's hidden_states[0]
        var row = 0
        for s in seqs {
            for (t, id) in s.tokens.enumerated() {
                weights.embed.dequantizeRow(id, into: x + row * D)
                if c.embedScale != 1 { for i in 0..<D { x[row * D + i] *= c.embedScale } }
                if let pe = weights.positions {   // positions < maxPositions: the cache holds no more
                    pe.dequantizeRow(s.cache.count + t, into: h)
                    Ops.add(x + row * D, h, count: D)
                }
                row += 1
            }
        }
        eachSequence(seqs, x) { s, p, n in s.hooks.apply(.embed, p, start: s.cache.count, count: n, dim: D) }
        try checkFinite(seqs, x) { "hook_embed" }
        ropeTables(seqs)

        for l in 0..<c.numLayers {
            let w = weights.layers[l]
            eachSequence(seqs, x) { s, p, n in s.hooks.apply(.residPre(l), p, start: s.cache.count, count: n, dim: D) }

            // attention (on the residual itself when the block normalises only outputs)
            if let n = w.attnNorm { norm(x, n, w.attnNormBias, T: T, out: h) }
            attention(layer: l, w: w, input: w.attnNorm == nil ? x : h, seqs: seqs, count: T, out: ws.attnOut)
            if let pn = w.postAttnNorm { norm(ws.attnOut, pn, T: T, out: ws.attnOut) }
            if c.residualScale != 1 { for i in 0..<(T * D) { ws.attnOut[i] *= c.residualScale } }
            eachSequence(seqs, ws.attnOut) { s, p, n in s.hooks.apply(.attnOut(l), p, start: s.cache.count, count: n, dim: D) }
            // GPT-NeoX's parallel block: the MLP's norm reads the block's input, before attention's output joins it
            // (h, attention's input, is free again)
            if c.parallelResidual, let n = w.ffnNorm { norm(x, n, w.ffnNormBias, T: T, out: h) }
            Ops.add(x, ws.attnOut, count: T * D)  // residual connection
            eachSequence(seqs, x) { s, p, n in s.hooks.apply(.residMid(l), p, start: s.cache.count, count: n, dim: D) }

            // feed-forward: down(act(gate h) * up h), on the attention's own input in a parallel block
            if !c.parallelResidual, let n = w.ffnNorm { norm(x, n, w.ffnNormBias, T: T, out: h) }
            let mlpIn = c.parallelBlock || c.parallelResidual || w.ffnNorm != nil ? h : x
            if w.experts != nil {
                mixture(w: w, input: mlpIn, count: T, out: ws.mlpOut)
            } else {
                mlp(w: w, input: mlpIn, count: T, out: ws.mlpOut)
            }
            if let pn = w.postFFNorm { norm(ws.mlpOut, pn, T: T, out: ws.mlpOut) }
            if c.residualScale != 1 { for i in 0..<(T * D) { ws.mlpOut[i] *= c.residualScale } }
            eachSequence(seqs, ws.mlpOut) { s, p, n in s.hooks.apply(.mlpOut(l), p, start: s.cache.count, count: n, dim: D) }
            Ops.add(x, ws.mlpOut, count: T * D)   // residual connection
            eachSequence(seqs, x) { s, p, n in s.hooks.apply(.residPost(l), p, start: s.cache.count, count: n, dim: D) }
            // NaN/Inf from a bad weight or an overflowing intervention would otherwise flow silently into scores
            try checkFinite(seqs, x) { "blocks.\(l).hook_resid_post" }
        }
        for s in seqs { s.cache.count += s.tokens.count }

        // final norm (hooks see positions already counted into the caches: subtract this pass's tokens)
        norm(x, weights.finalNorm, weights.finalNormBias, T: T, out: h)
        eachSequence(seqs, h) { s, p, n in s.hooks.apply(.lnFinal, p, start: s.cache.count - n, count: n, dim: D) }
        try checkFinite(seqs, h, committed: true) { "ln_final.hook_normalized" }

        switch mode {
        case .none:
            return UnsafeBufferPointer(start: ws.logits, count: 0)
        case .last:
            var last = h + (T - 1) * D
            if B > 1 {
                // gather each sequence's last row (attnOut is free by now) so the head reads its weights once
                var end = 0
                for (b, s) in seqs.enumerated() {
                    end += s.tokens.count
                    (ws.attnOut + b * D).update(from: h + (end - 1) * D, count: D)
                }
                last = ws.attnOut
            }
            Ops.matmul(weights.lmHead, last, T: B, ws.logits, precision: passPrecision)
            finishLogits(ws.logits, count: B * c.vocabSize)
            for (b, s) in seqs.enumerated() {
                try checkFinite(ws.logits + b * c.vocabSize, count: 1, dim: c.vocabSize, start: s.cache.count - 1,
                                sequence: B > 1 ? b : nil) { "the logits (final norm or lm_head)" }
            }
            return UnsafeBufferPointer(start: ws.logits, count: B * c.vocabSize)
        case .all:
            Ops.matmul(weights.lmHead, h, T: T, ws.logits, precision: passPrecision)
            finishLogits(ws.logits, count: T * c.vocabSize)
            var row = 0
            for (b, s) in seqs.enumerated() {
                let n = s.tokens.count
                try checkFinite(ws.logits + row * c.vocabSize, count: n, dim: c.vocabSize, start: s.cache.count - n,
                                sequence: B > 1 ? b : nil) { "the logits (final norm or lm_head)" }
                row += n
            }
            return UnsafeBufferPointer(start: ws.logits, count: T * c.vocabSize)
        }
    }

    /// A residual-stream norm over rows of hiddenSize: RMSNorm (times offset + w), or a LayerNorm (Cohere's without
    /// bias, GPT-2's and GPT-NeoX's with).
    @inline(__always)
    private func norm(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ bias: [Float]? = nil, T: Int, out: UnsafeMutablePointer<Float>) {
        let c = config
        if c.layerNorm {
            Ops.layerNorm(x, weight: w, offset: c.normOffset, eps: c.rmsNormEps, n: c.hiddenSize, T: T, out: out)
            if let bias { Ops.addBias(out, bias, n: c.hiddenSize, T: T) }
        } else {
            Ops.rmsNorm(x, weight: w, offset: c.normOffset, eps: c.rmsNormEps, n: c.hiddenSize, T: T, out: out)
        }
    }

    /// Calls `body` with each sequence and its rows of `x` (pointer, count), in batch order.
    @inline(__always)
    private func eachSequence(_ seqs: UnsafeBufferPointer<BatchSequence>, _ x: UnsafeMutablePointer<Float>,
                              _ body: (BatchSequence, UnsafeMutablePointer<Float>, Int) throws -> Void) rethrows {
        var row = 0
        for s in seqs {
            try body(s, x + row * config.hiddenSize, s.tokens.count)
            row += s.tokens.count
        }
    }

    /// checkFinite over every sequence's rows; positions start at the cache count (or before it once `committed`).
    @inline(__always)
    private func checkFinite(_ seqs: UnsafeBufferPointer<BatchSequence>, _ x: UnsafeMutablePointer<Float>, committed: Bool = false,
                             point: () -> String) throws {
        var row = 0
        for (b, s) in seqs.enumerated() {
            let n = s.tokens.count
            try checkFinite(x + row * config.hiddenSize, count: n, dim: config.hiddenSize,
                            start: s.cache.count - (committed ? n : 0), sequence: seqs.count > 1 ? b : nil, point: point)
            row += n
        }
    }

    /// Throws if any of the T rows holds NaN or +-Inf (one integer pass over T * D floats, ~0.1% of a decode step).
    @inline(__always)
    private func checkFinite(_ x: UnsafeMutablePointer<Float>, count T: Int, dim D: Int, start p0: Int, sequence: Int? = nil,
                             point: () -> String) throws {
        let i = Int(pk_first_nonfinite(x, Int64(T * D)))
        guard i >= 0 else { return }
        let seq = sequence.map { " of sequence \($0)" } ?? ""
        throw ModelError("non-finite activation (NaN/Inf) in \(point()) at position \(p0 + i / D)\(seq): value \(x[i]) at index \(i % D)"
                         + " (a NaN/Inf or overflowing weight there, or an intervention at that point that overflowed)")
    }

    /// Phi-2's head bias, Granite's logit scaling, then Gemma-2's soft-capping (no model has two of them).
    private func finishLogits(_ p: UnsafeMutablePointer<Float>, count: Int) {
        if let b = weights.lmHeadBias { Ops.addBias(p, b, n: config.vocabSize, T: count / config.vocabSize) }
        if config.logitScale != 1 { for i in 0..<count { p[i] /= config.logitScale } }
        guard let cap = config.finalLogitSoftcap else { return }
        for i in 0..<count { p[i] = Foundation.tanh(p[i] / cap) * cap }
    }

    // MARK: attention

    private func attention(layer l: Int, w: LayerWeights, input h: UnsafeMutablePointer<Float>,
                           seqs: UnsafeBufferPointer<BatchSequence>, count T: Int, out: UnsafeMutablePointer<Float>) {
        let c = config, hd = c.headDim, qDim = c.qDim, kvDim = c.kvDim
        let q = ws.q, k = ws.k, v = ws.v
        Ops.matmul(w.wq, q, w.wk, k, w.wv, v, x: h, T: T, precision: passPrecision)   // one hand-off when one type
        if let b = w.bq { Ops.addBias(q, b, n: qDim, T: T) }
        if let b = w.bk { Ops.addBias(k, b, n: kvDim, T: T) }
        if let b = w.bv { Ops.addBias(v, b, n: kvDim, T: T) }
        if let clip = c.clipQKV {   // OLMo-1
            for i in 0..<(T * qDim) { q[i] = min(max(q[i], -clip), clip) }
            for i in 0..<(T * kvDim) { k[i] = min(max(k[i], -clip), clip); v[i] = min(max(v[i], -clip), clip) }
        }
        if let qn = w.qNorm, let kn = w.kNorm, c.qkNormAcrossHeads {
            // RMSNorm over all of a token's queries, and over its keys (OLMo-2), before RoPE
            Ops.rmsNorm(q, weight: qn, offset: c.normOffset, eps: c.rmsNormEps, n: qDim, T: T, out: q)
            Ops.rmsNorm(k, weight: kn, offset: c.normOffset, eps: c.rmsNormEps, n: kvDim, T: T, out: k)
        } else if let qn = w.qNorm, let kn = w.kNorm {
            // per-head RMSNorm (Qwen3), before RoPE
            Ops.rmsNorm(q, weight: qn, offset: c.normOffset, eps: c.rmsNormEps, n: hd, T: T * c.numHeads, out: q)
            Ops.rmsNorm(k, weight: kn, offset: c.normOffset, eps: c.rmsNormEps, n: hd, T: T * c.numKVHeads, out: k)
        }
        if c.noRopeLayers.isEmpty || !c.noRopeLayers[l] {   // SmolLM3's NoPE layers attend without positions
            let local = slidingInvFreq != nil && c.slidingLayers[l]
            applyRope(q, heads: c.numHeads, count: T, local: local)
            applyRope(k, heads: c.numKVHeads, count: T, local: local)
        }
        if let temperature = c.queryTemperature {   // Ministral 3: queries warmed by position past the original context
            var row = 0
            for s in seqs {
                for t in 0..<s.tokens.count {
                    let f = temperature.scale(position: s.cache.count + t)
                    if f != 1 { for i in 0..<qDim { q[row * qDim + i] *= f } }
                    row += 1
                }
            }
        }

        let group = c.numHeads / c.numKVHeads
        let window = c.slidingLayers[l] ? c.slidingWindow : nil
        let scale = c.attnScale, softcap = c.attnLogitSoftcap
        let ctxOut = ws.ctx
        var row = 0, queued = 0
        for s in seqs {
            // append to this sequence's cache, then attend over it
            let p0 = s.cache.count, n = s.tokens.count
            let cache = s.cache
            let kc = cache.keys[l], vc = cache.values[l]
            cache.write(kc, at: p0 * kvDim, from: k + row * kvDim, count: n * kvDim)
            cache.write(vc, at: p0 * kvDim, from: v + row * kvDim, count: n * kvDim)
            let lastLo = window.map { max(0, p0 + n - $0) } ?? 0
            let chunks = min(Workspace.attentionChunks, (p0 + n - lastLo) / 256, 2 * ThreadPool.shared.threads)
            if n == 1, chunks >= 2 {
                // a long context: by position chunk over the threads, all heads of a chunk together
                decodeAttention(q: q + row * qDim, kc: cache.element(kc, lastLo * kvDim), vc: cache.element(vc, lastLo * kvDim),
                                kv: cache.type, count: p0 + 1 - lastLo, chunks: chunks, out: ctxOut + row * qDim)
                row += n
                continue
            }
            if n == 1, p0 + 1 - lastLo <= StepAttentionJob.maxPositions {
                // a decode step's token (one sequence or many): its heads join every sequence's in one loop, below
                ws.queries[queued] = SequenceQuery(q: q + row * qDim, kc: cache.element(kc, lastLo * kvDim),
                                                   vc: cache.element(vc, lastLo * kvDim), kv: cache.type, out: ctxOut + row * qDim,
                                                   count: p0 + 1 - lastLo)
                queued += 1
                row += n
                continue
            }
            // a prompt's tokens: one task per (KV head, run of positions), the latest runs (the most rows) first;
            // the job travels by pointer so nothing is allocated
            let spanLength = AttentionJob.spanLength(positions: n, kvHeads: c.numKVHeads, group: group,
                                                     threads: ThreadPool.shared.threads)
            let spans = (n + spanLength - 1) / spanLength
            var job = AttentionJob(q: q + row * qDim, kc: kc, vc: vc, kv: cache.type, out: ctxOut + row * qDim, T: n, p0: p0,
                                   qDim: qDim,
                                   kvDim: kvDim, hd: hd, group: group, kvHeads: c.numKVHeads, span: spanLength, spans: spans,
                                   window: window ?? 0, scale: scale, softcap: softcap ?? 0)
            withUnsafeMutablePointer(to: &job) { p in
                ThreadPool.shared.parallelFor(c.numKVHeads * spans, context: UnsafeMutableRawPointer(p)) { ctx, i in
                    ctx!.assumingMemoryBound(to: AttentionJob.self).pointee.run(Int(i))
                }
            }
            row += n
        }
        if queued > 0 {
            // every (sequence, KV head's query heads) of the step as one task list: one hand-off per layer however
            // many sequences decode, each K / V row read once per task, and enough tasks for the threads to share
            let (part, parts) = StepAttentionJob.parts(sequences: queued, kvHeads: c.numKVHeads, group: group,
                                                       threads: ThreadPool.shared.threads)
            var job = StepAttentionJob(queries: ws.queries, kvHeads: c.numKVHeads, group: group, part: part, parts: parts,
                                       kvDim: kvDim, hd: hd, scale: scale, softcap: softcap ?? 0)
            withUnsafeMutablePointer(to: &job) { p in
                ThreadPool.shared.parallelFor(queued * c.numKVHeads * parts, context: UnsafeMutableRawPointer(p)) { ctx, i in
                    ctx!.assumingMemoryBound(to: StepAttentionJob.self).pointee.run(Int(i))
                }
            }
        }
        if let sinks = w.sinks { applySinks(sinks, layer: l, seqs: seqs) }
        Ops.matmul(w.wo, ctxOut, T: T, out, precision: passPrecision)
        if let b = w.bo { Ops.addBias(out, b, n: c.hiddenSize, T: T) }
    }

    /// gpt-oss's attention sinks, on the attention's normalised outputs (ws.ctx): with a sink logit s beside the
    /// scores, the softmax's denominator gains exp(s), so each head's output is scaled by 1 / (1 + exp(s - lse)), lse
    /// the log-sum-exp of its scores (pk_attention_lse: the scores again, an extra pass over the keys).
    private func applySinks(_ sinks: [Float], layer l: Int, seqs: UnsafeBufferPointer<BatchSequence>) {
        let c = config, hd = c.headDim, qDim = c.qDim, kvDim = c.kvDim, group = c.numHeads / c.numKVHeads
        let window = c.slidingLayers[l] ? c.slidingWindow : nil
        var row = 0
        for s in seqs {
            let kc = s.cache.keys[l]
            for t in 0..<s.tokens.count {
                let pos = s.cache.count + t, lo = window.map { max(0, pos + 1 - $0) } ?? 0
                for h in 0..<c.numHeads {
                    let lse = pk_attention_lse(ws.q + row * qDim + h * hd, s.cache.element(kc, lo * kvDim + (h / group) * hd),
                                               Int64(kvDim), s.cache.type.kernelCode, Int64(pos + 1 - lo), Int64(hd),
                                               c.attnScale, c.attnLogitSoftcap ?? 0)
                    let f = 1 / (1 + Foundation.exp(sinks[h] - lse)), o = ws.ctx + row * qDim + h * hd
                    for i in 0..<hd { o[i] *= f }
                }
                row += 1
            }
        }
    }

    /// One query position over `count` cached positions from `lo`, in `chunks` position ranges run as tasks, each
    /// reading its K / V rows once for every head (pk_attention_partial), then merged (pk_attention_merge). A long
    /// context is bound by reading the cache: per head, a head's slice of each row is a strided stream a core reads
    /// at a fraction of its bandwidth, and one head per task leaves the rows of a KV head to be read `group` times.
    /// `kc`, `vc`: the cache's rows from the first attended position.
    private func decodeAttention(q: UnsafeMutablePointer<Float>, kc: UnsafeMutableRawPointer, vc: UnsafeMutableRawPointer,
                                 kv: KVCacheType, count: Int, chunks: Int, out: UnsafeMutablePointer<Float>) {
        let c = config, H = c.numHeads, hd = c.headDim
        let m = ws.attPartial, l = m + Workspace.attentionChunks * H, o = l + Workspace.attentionChunks * H
        var job = DecodeAttentionJob(q: q, kc: kc, vc: vc, scores: ws.att, m: m, l: l, o: o, count: count, chunks: chunks,
                                     heads: H, group: H / c.numKVHeads, kvDim: c.kvDim, hd: hd, kv: kv,
                                     attStride: ws.contextCapacity, scale: c.attnScale,
                                     softcap: c.attnLogitSoftcap ?? 0)
        withUnsafeMutablePointer(to: &job) { p in
            ThreadPool.shared.parallelFor(chunks, context: UnsafeMutableRawPointer(p)) { ctx, chunk in
                let j = ctx!.assumingMemoryBound(to: DecodeAttentionJob.self).pointee
                let chunk = Int(chunk), per = (j.count + j.chunks - 1) / j.chunks
                let a = chunk * per, b = min(j.count, a + per)
                pk_attention_partial(j.q, Int64(j.heads), Int64(j.group), j.kc + a * j.kvDim * j.kv.elementSize,
                                     j.vc + a * j.kvDim * j.kv.elementSize, Int64(j.kvDim), j.kv.kernelCode, Int64(b - a), Int64(j.hd),
                                     j.scale, j.softcap, j.scores + a, Int64(j.attStride), j.m + chunk * j.heads, j.l + chunk * j.heads, j.o + chunk * j.heads * j.hd)
            }
        }
        pk_attention_merge(Int64(chunks), Int64(H), Int64(hd), m, l, o, out)
    }

    // MARK: MLP

    private func mlp(w: LayerWeights, input h: UnsafeMutablePointer<Float>, count T: Int, out: UnsafeMutablePointer<Float>) {
        let F = config.intermediateSize
        let g = ws.gate, u = ws.up
        if config.gatedMLP {
            Ops.matmul(w.gate, g, w.up, u, x: h, T: T, precision: passPrecision)
        } else {
            // GPT-2 / GPT-NeoX: down(act(up h + b) ) + b, the activation alone in gate's buffer
            Ops.matmul(w.up, h, T: T, g, precision: passPrecision)
            if let b = w.bUp { Ops.addBias(g, b, n: F, T: T) }
        }
        activate(count: T * F)
        Ops.matmul(w.down, g, T: T, out, precision: passPrecision)
        if let b = w.bDown { Ops.addBias(out, b, n: config.hiddenSize, T: T) }
    }

    /// A mixture-of-experts MLP: route each token to its experts, run each chosen expert once on the rows that chose
    /// it (gathered), and add its outputs back weighted, in ascending expert order as transformers does. Nothing is
    /// allocated: the routing tables live in the workspace.
    private func mixture(w: LayerWeights, input h: UnsafeMutablePointer<Float>, count T: Int, out: UnsafeMutablePointer<Float>) {
        let moe = config.moe!, E = moe.experts, K = moe.perToken, D = config.hiddenSize, Fe = moe.intermediateSize
        let logits = ws.moeLogits, chosen = ws.moeChosen, weight = ws.moeWeight, counts = ws.moeCounts, order = ws.moeOrder
        Ops.matmul(w.router!, h, T: T, logits, precision: passPrecision)
        if let b = w.routerBias { Ops.addBias(logits, b, n: E, T: T) }
        for e in 0...E { counts[e] = 0 }
        for t in 0..<T {
            // softmax over the experts (f32, as the reference), then the K most probable, largest first
            let p = logits + t * E
            var mx = -Float.infinity
            for e in 0..<E { mx = max(mx, p[e]) }
            var sum: Float = 0
            for e in 0..<E { p[e] = Foundation.exp(p[e] - mx); sum += p[e] }
            var picked: Float = 0
            for j in 0..<K {
                var best = -1
                for e in 0..<E where p[e] >= 0 && (best < 0 || p[e] > p[best]) { best = e }
                chosen[t * K + j] = Int32(best)
                weight[t * K + j] = p[best] / sum
                picked += p[best] / sum
                p[best] = -1   // taken
                counts[best + 1] += 1
            }
            if moe.normalizeTopK { for j in 0..<K { weight[t * K + j] /= picked } }
        }
        // rows grouped by expert (a counting sort): order holds t * K + j
        for e in 0..<E { counts[e + 1] += counts[e] }
        for e in 0..<E { ws.moeFill[e] = counts[e] }
        for i in 0..<(T * K) {
            let e = Int(chosen[i])
            order[Int(ws.moeFill[e])] = Int32(i)
            ws.moeFill[e] += 1
        }
        out.update(repeating: 0, count: T * D)
        let xin = ws.moeIn, xout = ws.moeOut
        for e in 0..<E {
            let lo = Int(counts[e]), n = Int(counts[e + 1]) - lo
            guard n > 0, let ex = w.experts?[e] else { continue }
            for r in 0..<n { (xin + r * D).update(from: h + Int(order[lo + r]) / K * D, count: D) }
            Ops.matmul(ex.gate, ws.gate, ex.up, ws.up, x: xin, T: n, precision: passPrecision)
            if let b = ex.gateBias { Ops.addBias(ws.gate, b, n: Fe, T: n) }
            if let b = ex.upBias { Ops.addBias(ws.up, b, n: Fe, T: n) }
            activate(count: n * Fe)
            Ops.matmul(ex.down, ws.gate, T: n, xout, precision: passPrecision)
            if let b = ex.downBias { Ops.addBias(xout, b, n: D, T: n) }
            for r in 0..<n {
                let i = Int(order[lo + r]), dst = out + i / K * D, src = xout + r * D, a = weight[i]
                for d in 0..<D { dst[d] += a * src[d] }
            }
        }
        if let sh = w.shared, let sg = w.sharedGate, let Fs = moe.sharedIntermediateSize {
            // Qwen2-MoE's shared expert on every row, weighted by sigmoid(gate . x), added after the routed ones
            Ops.matmul(sh.gate, ws.gate, sh.up, ws.up, x: h, T: T, precision: passPrecision)
            activate(count: T * Fs)
            Ops.matmul(sh.down, ws.gate, T: T, xout, precision: passPrecision)
            for t in 0..<T {
                var z: Float = 0
                for d in 0..<D { z += sg[d] * h[t * D + d] }
                let a = 1 / (1 + Foundation.exp(-z)), dst = out + t * D, src = xout + t * D
                for d in 0..<D { dst[d] += a * src[d] }
            }
        }
    }

    /// ws.gate[i] = act(ws.gate[i]) * ws.up[i] for i < n: SIMD kernels, in 16-aligned chunks over the pool.
    private func activate(count n: Int) {
        let g = ws.gate, u = ws.up
        let chunk = 8192
        var job = ActivationJob(g: g, u: u, n: n, chunk: chunk, activation: config.activation, gated: config.gatedMLP,
                                alpha: config.swigluAlpha, limit: config.swigluLimit)
        withUnsafeMutablePointer(to: &job) { p in
            ThreadPool.shared.parallelFor((n + chunk - 1) / chunk, context: UnsafeMutableRawPointer(p)) { ctx, c in
                let j = ctx!.assumingMemoryBound(to: ActivationJob.self).pointee
                let i0 = Int(c) * j.chunk, m = min(j.chunk, j.n - i0)
                switch j.activation {
                case _ where !j.gated:   // GPT-2 / GPT-NeoX: act(g) alone
                    switch j.activation {
                    case .silu: for i in i0..<(i0 + m) { j.g[i] = Ops.silu(j.g[i]) }
                    case .geluTanh: for i in i0..<(i0 + m) { j.g[i] = Ops.geluTanh(j.g[i]) }
                    case .gelu: for i in i0..<(i0 + m) { j.g[i] = Ops.gelu(j.g[i]) }
                    case .reluSquared: for i in i0..<(i0 + m) { let r = max(j.g[i], 0); j.g[i] = r * r }
                    case .swigluOAI: break   // gated only: ModelConfig.validate refuses it on a plain MLP
                    }
                case .silu: pk_silu_mul(j.g + i0, j.u + i0, Int64(m))
                case .geluTanh: pk_gelu_tanh_mul(j.g + i0, j.u + i0, Int64(m))
                case .gelu: for i in i0..<(i0 + m) { j.g[i] = Ops.gelu(j.g[i]) * j.u[i] }
                case .reluSquared: for i in i0..<(i0 + m) { let r = max(j.g[i], 0); j.g[i] = r * r * j.u[i] }
                case .swigluOAI:   // gpt-oss: gate sigmoid(alpha gate) (up + 1), both clamped
                    for i in i0..<(i0 + m) {
                        let g = min(j.g[i], j.limit), u = min(max(j.u[i], -j.limit), j.limit)
                        j.g[i] = g / (1 + Foundation.exp(-j.alpha * g)) * (u + 1)
                    }
                }
            }
        }
    }

    // MARK: RoPE

    static func ropeInverseFrequencies(_ c: ModelConfig, factors: [Float]?) -> [Float] {
        let half = c.ropeDim / 2
        var inv = (0..<half).map { i -> Float in
            1 / Float(pow(c.ropeTheta, Double(2 * i) / Double(c.ropeDim)))
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
        if let y = c.yarn {
            // transformers' _compute_yarn_parameters: interpolated * (1 - share) + extrapolated * share, in f32
            let share = y.extrapolationShare(dim: c.ropeDim, base: c.ropeTheta)
            inv = zip(inv, share).map { f, s in f / Float(y.factor) * (1 - Float(s)) + f * Float(s) }
        }
        if let factors, factors.count == half {
            inv = zip(inv, factors).map { $0 / $1 }
        }
        if c.ropeLinearFactor != 1 { inv = inv.map { $0 / Float(c.ropeLinearFactor) } }
        return inv
    }

    /// cos/sin for every row of the pass, each at its own sequence's position (and the sliding layers' own, if any).
    private func ropeTables(_ seqs: UnsafeBufferPointer<BatchSequence>) {
        let half = config.ropeDim / 2
        func fill(_ freq: [Float], _ cos: UnsafeMutablePointer<Float>, _ sin: UnsafeMutablePointer<Float>, scale: Float) {
            var row = 0
            for s in seqs {
                for t in 0..<s.tokens.count {
                    let pos = Float(s.cache.count + t)
                    for i in 0..<half {   // LongRoPE's attention factor scales cos and sin (so q and k); else 1, exact
                        let a = pos * freq[i]
                        cos[row * half + i] = Foundation.cos(a) * scale
                        sin[row * half + i] = Foundation.sin(a) * scale
                    }
                    row += 1
                }
            }
        }
        fill(invFreq, ws.cos, ws.sin, scale: Float(config.longRope?.attentionFactor ?? config.yarn?.attentionFactor ?? 1))
        if let local = slidingInvFreq { fill(local, ws.cosLocal, ws.sinLocal, scale: 1) }
    }

    /// Turns the first ropeDim dimensions of each head (all of it unless partial rotary); the rest pass through.
    private func applyRope(_ x: UnsafeMutablePointer<Float>, heads: Int, count T: Int, local: Bool) {
        let hd = config.headDim, half = config.ropeDim / 2
        let interleaved = config.ropeStyle == .interleaved
        let (cos, sin) = local ? (ws.cosLocal, ws.sinLocal) : (ws.cos, ws.sin)
        for t in 0..<T {
            let cs = cos + t * half, sn = sin + t * half
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

/// One sequence of a batched forward pass: its new tokens, its own KV cache and its own hooks.
public struct BatchSequence: @unchecked Sendable {
    public var tokens: [Int]
    public var cache: KVCache
    public var hooks: HookSet
    public init(tokens: [Int], cache: KVCache, hooks: HookSet = HookSet()) {
        self.tokens = tokens
        self.cache = cache
        self.hooks = hooks
    }
}

/// What an attention task needs (passed by pointer to the pool: no closure context to allocate).
private struct AttentionJob {
    var q: UnsafeMutablePointer<Float>
    var kc, vc: UnsafeMutableRawPointer   // the layer's cache rows from position 0
    var kv: KVCacheType
    var out: UnsafeMutablePointer<Float>
    var T, p0, qDim, kvDim, hd, group, kvHeads, span, spans, window: Int   // window 0: none
    var scale, softcap: Float                                            // softcap 0: none

    /// Task i: KV head i % kvHeads, positions of run spans - 1 - i / kvHeads, its query heads together
    /// (pk_attention_causal: each query the bits of pk_attention_head over its rows, as a decode step's).
    func run(_ i: Int) {
        let kvh = i % kvHeads, t0 = (spans - 1 - i / kvHeads) * span, t1 = min(T, t0 + span)
        let h0 = kvh * group
        let qt = q + t0 * qDim + h0 * hd, ot = out + t0 * qDim + h0 * hd
        let es = kv.elementSize
        if pk_attention_causal(qt, Int64(qDim), Int64(t1 - t0), Int64(group), kc + kvh * hd * es, Int64(kvDim),
                               vc + kvh * hd * es, Int64(kvDim), kv.kernelCode, Int64(p0 + t0 + 1), Int64(window), Int64(hd),
                               scale, softcap, ot, Int64(qDim)) == 0 {
            return
        }
        // no scratch for the scores (out of memory): head by head, the same bits, through one row allocated here
        let rows = p0 + t1
        withUnsafeTemporaryAllocation(of: Float.self, capacity: rows) { s in
            for t in t0..<t1 {
                let pos = p0 + t, lo = window > 0 ? max(0, pos - window + 1) : 0
                for h in h0..<(h0 + group) {
                    pk_attention_head(q + t * qDim + h * hd, kc + (lo * kvDim + kvh * hd) * es, Int64(kvDim),
                                      vc + (lo * kvDim + kvh * hd) * es, Int64(kvDim), kv.kernelCode, Int64(pos - lo + 1),
                                      Int64(hd), scale, softcap, s.baseAddress!, out + t * qDim + h * hd)
                }
            }
        }
    }

    /// Positions per task: whole blocks of the kernel's multi-query loop (PK_ATTENTION_GROUP_MAX / group positions),
    /// up to 64, and small enough that the threads get about 4 tasks each.
    static func spanLength(positions: Int, kvHeads: Int, group: Int, threads: Int) -> Int {
        let block = max(1, Int(PK_ATTENTION_GROUP_MAX) / group)
        let wanted = min(64, (positions * kvHeads + 4 * threads - 1) / (4 * threads))
        return max(block, (wanted + block - 1) / block * block)
    }
}

/// A decoding sequence's one query for the shared head loop of a decode step: keys and values from its first
/// attended position (after a sliding window's start), `count` positions.
struct SequenceQuery {
    var q: UnsafeMutablePointer<Float>
    var kc, vc: UnsafeMutableRawPointer
    var kv: KVCacheType
    var out: UnsafeMutablePointer<Float>
    var count: Int
}

private struct StepAttentionJob {
    /// Contexts up to this many positions go through the shared loop (longer ones are chunked by position): the
    /// scores of one task's heads then fit a stack buffer, so the tasks of different sequences need no shared scratch.
    static let maxPositions = 512
    var queries: UnsafeMutablePointer<SequenceQuery>
    /// Each KV head's `group` query heads are split into `parts` tasks of up to `part` heads.
    var kvHeads, group, part, parts, kvDim, hd: Int
    var scale, softcap: Float

    /// Task i: part i % parts of KV head (i / parts) % kvHeads of sequence i / (parts kvHeads), its query heads
    /// together (pk_attention_group: the K / V rows read once for them, each head's result the bits of
    /// pk_attention_head's, the prompt's head loop).
    func run(_ i: Int) {
        let perSequence = kvHeads * parts
        let s = queries[i / perSequence], kvh = (i % perSequence) / parts, p = i % parts
        let first = kvh * group + p * part, count = min(part, group - p * part)   // >= 1: parts = ceil(group / part)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: Int(PK_ATTENTION_GROUP_MAX) * Self.maxPositions) { scores in
            let es = s.kv.elementSize
            pk_attention_group(s.q + first * hd, Int64(count), s.kc + kvh * hd * es, Int64(kvDim), s.vc + kvh * hd * es,
                               Int64(kvDim), s.kv.kernelCode, Int64(s.count), Int64(hd), scale, softcap, scores.baseAddress!, Int64(Self.maxPositions),
                               s.out + first * hd)
        }
    }

    /// Whole groups (up to PK_ATTENTION_GROUP_MAX heads) when the step has enough of them to share among the
    /// threads, else smaller parts: one sequence of SmolLM2 (3 KV heads of 3) on 2 threads runs its 9 heads as 9 tasks.
    static func parts(sequences: Int, kvHeads: Int, group: Int, threads: Int) -> (part: Int, parts: Int) {
        var parts = (group + Int(PK_ATTENTION_GROUP_MAX) - 1) / Int(PK_ATTENTION_GROUP_MAX)
        while parts < group, sequences * kvHeads * parts < 4 * threads { parts += 1 }
        let part = (group + parts - 1) / parts
        return (part, (group + part - 1) / part)
    }
}

private struct DecodeAttentionJob {
    var q: UnsafeMutablePointer<Float>
    var kc, vc: UnsafeMutableRawPointer
    var scores, m, l, o: UnsafeMutablePointer<Float>
    var count, chunks, heads, group, kvDim, hd: Int
    var kv: KVCacheType
    var attStride: Int
    var scale, softcap: Float                                    // softcap 0: none
}

private struct ActivationJob {
    var g, u: UnsafeMutablePointer<Float>
    var n, chunk: Int
    var activation: Activation
    var gated: Bool
    var alpha, limit: Float
}

/// Scratch buffers of one forward pass, grown only when a longer batch or context arrives.
struct Workspace {
    let config: ModelConfig
    private(set) var tokens = 0
    private(set) var contextCapacity = 0
    private var storage: UnsafeMutablePointer<Float>? = nil
    var x, h, q, k, v, ctx, attnOut, mlpOut, gate, up, logits, att, cos, sin, attPartial: UnsafeMutablePointer<Float>
    /// A mixture of experts' routing (`ModelConfig.moe`; empty otherwise): router logits [T, E], chosen weights
    /// [T, K], the gathered rows of one expert and its outputs [T, D]; chosen experts and the rows grouped by expert
    /// [T, K], and per-expert counts (E + 1) and fill positions (E).
    var moeLogits, moeWeight, moeIn, moeOut: UnsafeMutablePointer<Float>
    var moeChosen = UnsafeMutablePointer<Int32>.allocate(capacity: 1), moeOrder = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    var moeCounts = UnsafeMutablePointer<Int32>.allocate(capacity: 1), moeFill = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    /// The sliding layers' RoPE tables (`ModelConfig.slidingRopeTheta`; empty otherwise).
    var cosLocal, sinLocal: UnsafeMutablePointer<Float>
    /// One entry per token of the pass (a batched step has a token per sequence): the shared attention loop's queries.
    var queries = UnsafeMutablePointer<SequenceQuery>.allocate(capacity: 1)
    /// The most position chunks one decode step's attention is split into (`attPartial` holds their partials).
    static let attentionChunks = 16

    init(config: ModelConfig, tokens: Int, contextCapacity: Int) {
        self.config = config
        let dummy = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        (x, h, q, k, v, ctx, attnOut, mlpOut, gate, up, logits, att, cos, sin, attPartial) =
            (dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy, dummy)
        (cosLocal, sinLocal) = (dummy, dummy)
        (moeLogits, moeWeight, moeIn, moeOut) = (dummy, dummy, dummy, dummy)
        storage = dummy
        ensure(tokens: tokens, contextCapacity: contextCapacity)
        ensureLogits(rows: 1)
    }

    /// Frees the buffers (the owning model's deinit; the workspace is not used afterwards).
    mutating func release() {
        storage?.deallocate()
        storage = nil
        queries.deallocate()
        for p in [moeChosen, moeOrder, moeCounts, moeFill] { p.deallocate() }
        logits.deallocate()
        logitRows = 0
    }

    /// Logits are sized by the rows asked for (all tokens, or one per sequence), not by the tokens of the pass:
    /// a long prompt or a batched prefill needs no `[T, vocab]` buffer unless all logits are wanted.
    /// A buffer left large by an all-positions pass (prompt scoring, a trace) is given back when a later pass
    /// needs far less, so that one long scored prompt does not hold hundreds of MB in a server for good.
    mutating func ensureLogits(rows: Int) {
        let large = logitRows * config.vocabSize * MemoryLayout<Float>.size > 64 << 20
        if rows <= logitRows && !(large && rows * 4 < logitRows) { return }
        if logitRows > 0 { logits.deallocate() }
        logits = UnsafeMutablePointer<Float>.allocate(capacity: rows * config.vocabSize)
        logitRows = rows
    }
    private(set) var logitRows = 0

    mutating func ensure(tokens T: Int, contextCapacity C: Int) {
        if T <= tokens && C <= contextCapacity { return }
        let T = max(T, tokens), C = max(C, contextCapacity)
        let c = config
        // gate / up: the dense MLP's, an expert's or the shared expert's
        let ffn = max(c.intermediateSize, c.moe?.intermediateSize ?? 0, c.moe?.sharedIntermediateSize ?? 0)
        let sizes = [T * c.hiddenSize, T * c.hiddenSize, T * c.qDim, T * c.kvDim, T * c.kvDim, T * c.qDim,
                     T * c.hiddenSize, T * c.hiddenSize, T * ffn, T * ffn,
                     16, c.numHeads * C, T * c.headDim / 2, T * c.headDim / 2,
                     Workspace.attentionChunks * c.numHeads * (c.headDim + 2)]
            + Array(repeating: c.slidingRopeTheta == nil ? 0 : T * c.headDim / 2, count: 2)
            + (c.moe.map { m in [T * m.experts, T * m.perToken, T * c.hiddenSize, T * c.hiddenSize] } ?? [0, 0, 0, 0])
        // 16-float alignment per buffer
        let padded = sizes.map { ($0 + 15) / 16 * 16 }
        storage?.deallocate()
        let base = UnsafeMutablePointer<Float>.allocate(capacity: padded.reduce(0, +))
        var ptrs: [UnsafeMutablePointer<Float>] = []
        var off = 0
        for s in padded { ptrs.append(base + off); off += s }
        (x, h, q, k, v, ctx, attnOut, mlpOut, gate, up) = (ptrs[0], ptrs[1], ptrs[2], ptrs[3], ptrs[4], ptrs[5], ptrs[6], ptrs[7], ptrs[8], ptrs[9])
        (att, cos, sin, attPartial) = (ptrs[11], ptrs[12], ptrs[13], ptrs[14])
        (cosLocal, sinLocal) = (ptrs[15], ptrs[16])
        (moeLogits, moeWeight, moeIn, moeOut) = (ptrs[17], ptrs[18], ptrs[19], ptrs[20])
        storage = base
        if T > tokens {
            queries.deallocate()
            queries = UnsafeMutablePointer<SequenceQuery>.allocate(capacity: T)
            if let m = c.moe {
                for p in [moeChosen, moeOrder, moeCounts, moeFill] { p.deallocate() }
                (moeChosen, moeOrder) = (.allocate(capacity: T * m.perToken), .allocate(capacity: T * m.perToken))
                (moeCounts, moeFill) = (.allocate(capacity: m.experts + 1), .allocate(capacity: m.experts))
            }
        }
        tokens = T
        contextCapacity = C
    }
}
