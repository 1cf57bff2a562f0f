import CPersonaKernels
import Foundation
import PersonaFormats
import PersonaTensor

/// Random weights of a real model's shape, for benchmarks: speed does not depend on the values.
extension TransformerModel {
    /// A model of `config`'s shapes whose matrices are stored as `dtype`, filled with deterministic random values
    /// (uniform, std 0.02; norms 1; small biases) from `seed`. Generation is spread over `pool`.
    public static func synthetic(config c: ModelConfig, dtype: DType, seed: UInt64, pool: ThreadPool = .shared) throws -> TransformerModel {
        try synthetic(config: c, types: SyntheticTypes(dtype), seed: seed, pool: pool)
    }

    /// The same with the per-matrix types of `types` (one type, or a llama.cpp mix such as q4_k_m). f32 / f16 / bf16
    /// and the types `pk_quantize_row` writes hold the random values (rounded / quantised as llama.cpp would); the
    /// other quantised types (K- and IQ-types) hold random blocks with fixed, small scales: speed does not depend on
    /// the values, and the model stays finite.
    public static func synthetic(config c: ModelConfig, types: SyntheticTypes, seed: UInt64, pool: ThreadPool = .shared) throws -> TransformerModel {
        try c.validate(source: "synthetic \(c.architecture)")
        var next: UInt64 = 0
        func matrix(_ rows: Int, _ cols: Int, _ role: SyntheticTypes.Role, _ layer: Int = -1) throws -> WeightMatrix {
            next += 1
            let dtype = types.type(role, layer: layer, layers: c.numLayers, cols: cols, gqa: c.numHeads / max(1, c.numKVHeads))
            return try randomMatrix(rows: rows, cols: cols, dtype: dtype, seed: seed &+ next &* 0x9E3779B97F4A7C15, pool: pool)
        }
        func vector(_ n: Int, around center: Float, spread: Float) -> [Float] {
            next += 1
            var rng = SplitMix(seed &+ next &* 0x9E3779B97F4A7C15)
            return (0..<n).map { _ in center + spread * (rng.uniform() * 2 - 1) }
        }
        let D = c.hiddenSize, F = c.intermediateSize
        let one = 1 - c.normOffset   // stored norm weight whose effective scale is 1
        var layers: [LayerWeights] = []
        for i in 0..<c.numLayers {
            layers.append(LayerWeights(
                attnNorm: c.norms == .post ? nil : vector(D, around: one, spread: 0),
                wq: try matrix(c.qDim, D, .attnQ, i), wk: try matrix(c.kvDim, D, .attnK, i), wv: try matrix(c.kvDim, D, .attnV, i),
                wo: try matrix(D, c.qDim, .attnOutput, i),
                bq: c.attentionBias ? vector(c.qDim, around: 0, spread: 0.02) : nil,
                bk: c.attentionBias ? vector(c.kvDim, around: 0, spread: 0.02) : nil,
                bv: c.attentionBias ? vector(c.kvDim, around: 0, spread: 0.02) : nil,
                qNorm: c.qkNorm ? vector(c.qkNormAcrossHeads ? c.qDim : c.headDim, around: one, spread: 0) : nil,
                kNorm: c.qkNorm ? vector(c.qkNormAcrossHeads ? c.kvDim : c.headDim, around: one, spread: 0) : nil,
                postAttnNorm: c.norms == .pre ? nil : vector(D, around: one, spread: 0),
                ffnNorm: c.norms == .post ? nil : vector(D, around: one, spread: 0),
                postFFNorm: c.norms == .pre ? nil : vector(D, around: one, spread: 0),
                gate: try matrix(F, D, .ffnGate, i), up: try matrix(F, D, .ffnUp, i), down: try matrix(D, F, .ffnDown, i)))
        }
        let embed = try matrix(c.vocabSize, D, c.tieWordEmbeddings ? .output : .tokenEmbedding)
        let lmHead = c.tieWordEmbeddings ? embed : try matrix(c.vocabSize, D, .output)
        let weights = ModelWeights(embed: embed, layers: layers, finalNorm: vector(D, around: one, spread: 0),
                                   lmHead: lmHead, ropeFreqFactors: nil)
        return TransformerModel(config: c, weights: weights)
    }

    static func randomMatrix(rows: Int, cols: Int, dtype: DType, seed: UInt64, pool: ThreadPool) throws -> WeightMatrix {
        guard let rb = dtype.rowBytes(cols) else {
            throw ModelError("synthetic weights: \(cols) columns is not a multiple of \(dtype.rawValue)'s block size \(dtype.blockSize)")
        }
        let storage = OwnedBytes(count: rb * rows)
        let amplitude: Float = 0.02 * Float(3).squareRoot()   // uniform(-a, a) has std 0.02
        let chunk = 256
        pool.parallelFor((rows + chunk - 1) / chunk) { ci in
            let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
            defer { row.deallocate() }
            for r in (ci * chunk)..<min(rows, (ci + 1) * chunk) {
                var rng = SplitMix(seed ^ UInt64(r) &* 0xD1B54A32D192ED03)
                for i in 0..<cols { row[i] = amplitude * (rng.uniform() * 2 - 1) }
                let dst = storage.pointer + r * rb
                switch dtype {
                case .f32: dst.copyMemory(from: row, byteCount: rb)
                case .f16: let d = dst.assumingMemoryBound(to: UInt16.self); for i in 0..<cols { d[i] = Float16(row[i]).bitPattern }
                case .bf16: let d = dst.assumingMemoryBound(to: UInt16.self); for i in 0..<cols { d[i] = pk_f32_to_bf16(row[i]) }
                case _ where dtype != .q6_k && pk_quantize_supported(dtype.kernelCode) != 0:
                    _ = pk_quantize_row(dtype.kernelCode, row, Int64(cols), dst)
                default: randomBlocks(dst, bytes: rb, dtype: dtype, rng: &rng)
                }
            }
        }
        return WeightMatrix(data: UnsafeRawPointer(storage.pointer), dtype: dtype, rows: rows, cols: cols, owner: storage)
    }

    /// Random block bytes with every scale field set to a small value (so weights are ~0.02 in size).
    static func randomBlocks(_ dst: UnsafeMutableRawPointer, bytes: Int, dtype: DType, rng: inout SplitMix) {
        var i = 0
        while i + 8 <= bytes { dst.storeBytes(of: rng.next(), toByteOffset: i, as: UInt64.self); i += 8 }
        while i < bytes { dst.storeBytes(of: UInt8(truncatingIfNeeded: rng.next()), toByteOffset: i, as: UInt8.self); i += 1 }
        // (offsets of the f16 scale fields in a block, their value): ggml-common.h's block layouts
        let fields: ([Int], Float)
        switch dtype {
        case .q2_k: fields = ([80, 82], 1.6e-3)
        case .q3_k: fields = ([108], 6e-4)
        case .q4_k, .q5_k: fields = ([0, 2], 8e-5)
        case .q6_k: fields = ([208], 2e-5)
        case .iq4_nl: fields = ([0], 3e-4)
        case .iq4_xs: fields = ([0], 2e-5)
        case .iq2_xxs, .iq2_xs, .iq2_s: fields = ([0], 1e-4)
        case .iq3_xxs, .iq3_s: fields = ([0], 5e-5)
        case .iq1_s, .iq1_m: fields = ([0], 1e-3)
        default: fields = ([0], 1e-3)
        }
        let h = pk_f32_to_f16(fields.1)
        for b in stride(from: 0, to: bytes, by: dtype.blockBytes) {
            if dtype == .mxfp4 {   // its one scale byte, E8M0: 2^(e - 128) * up to 12 ~ 0.02
                dst.storeBytes(of: UInt8(121), toByteOffset: b, as: UInt8.self)
                continue
            }
            if dtype == .iq1_m {
                // IQ1_M keeps its f16 scale in the top nibbles of its four 16-bit scale words (bytes 48-55)
                for w in 0..<4 {
                    let o = b + 48 + 2 * w + 1   // the word's high byte: its top nibble is d's nibble w
                    let hi = (dst.load(fromByteOffset: o, as: UInt8.self) & 0x0F) | UInt8(truncatingIfNeeded: ((h >> (4 * w)) & 0xF) << 4)
                    dst.storeBytes(of: hi, toByteOffset: o, as: UInt8.self)
                }
                continue
            }
            for o in fields.0 { dst.storeBytes(of: h, toByteOffset: b + o, as: UInt16.self) }
        }
    }

    /// Bytes of weights one decode step reads: every block matrix and the output head (embedding rows are
    /// gathered, not streamed).
    public var weightBytesPerToken: Int {
        weights.layers.reduce(0) { s, l in
            s + l.wq.byteCount + l.wk.byteCount + l.wv.byteCount + l.wo.byteCount + l.gate.byteCount + l.up.byteCount + l.down.byteCount
        } + weights.lmHead.byteCount
    }

    /// Bytes of all weight matrices held (a tied output head counted once).
    public var weightBytesTotal: Int {
        weightBytesPerToken - weights.lmHead.byteCount + weights.embed.byteCount
            + (config.tieWordEmbeddings ? 0 : weights.lmHead.byteCount)
    }

    /// How many matrices (block matrices and the output head) of each type, most common first: "q5_0 x 96, q6_k x 30".
    public var weightTypeCounts: String {
        var n: [DType: Int] = [:]
        for l in weights.layers { for m in [l.wq, l.wk, l.wv, l.wo, l.gate, l.up, l.down] { n[m.dtype, default: 0] += 1 } }
        n[weights.lmHead.dtype, default: 0] += 1
        return n.sorted { ($0.value, $1.key.rawValue) > ($1.value, $0.key.rawValue) }.map { "\($0.key.rawValue) x \($0.value)" }.joined(separator: ", ")
    }

    /// Storage type of the block matrices.
    public var weightType: DType { weights.layers.first?.wq.dtype ?? weights.embed.dtype }

    /// Writes the weights as a GGUF file llama.cpp can load (llama / qwen2 architectures; no tokenizer:
    /// `tokenizer.ggml.model = "none"`, so feed token ids). Matrices keep their stored bytes; norms and biases are F32.
    public func writeBenchmarkGGUF(to url: URL) throws { try writeGGUF(to: url) }

    /// Writes the weights, in their stored types, as a GGUF with llama.cpp's tensor names and metadata, as its
    /// converter (convert_hf_to_gguf.py) writes them: llama and mistral -> `llama`, qwen2, qwen3, gemma, gemma2, gemma3,
    /// smollm3, phi3 (fused attn_qkv and gate|up ffn_up), olmo2 and olmo3 -> `olmo2`, granite, glm4 (gate|up ffn_up),
    /// cohere -> `command-r`, cohere2, ernie4_5, exaone4, gpt2, gpt_neox -> `gptneox` (fused attn_qkv), phi -> `phi2`, stablelm, olmo (no norm weights), starcoder2, nemotron (norms as 1 + w), arcee, seed_oss. Q/K rows are permuted for the `llama`, `smollm3`, `granite`, `olmo` and `arcee` architectures when the model uses HF's rotate_half RoPE, so that
    /// llama.cpp's interleaved RoPE computes the same thing; Llama-3 RoPE scaling becomes the `rope_freqs` tensor;
    /// Gemma's norm weights are stored as (1 + w), in f32. What a GGUF cannot say is refused with the reason (a
    /// Gemma-2 query_pre_attn_scalar or sliding-window layout other than the ones llama.cpp infers), or, where
    /// llama.cpp's own files drop it too, returned as a caveat (a Mistral / Qwen2 sliding window).
    /// `tokenizer`: `tokenizer.*` metadata to embed (GGUFTokenizerExport); nil writes `tokenizer.ggml.model = "none"`.
    /// Returns the caveats (see `ggufContent`).
    @discardableResult
    public func writeGGUF(to url: URL, name: String = "persona-bench-synthetic", tokenizer: [(String, GGUFValue)]? = nil) throws -> [String] {
        let (content, caveats) = try ggufContent(name: name, tokenizer: tokenizer)
        try content.write(to: url)
        return caveats
    }

    /// The GGUF `writeGGUF` writes, as content that `GGUFQuantizer` can also read directly (no intermediate file),
    /// and what it cannot carry (see `writeGGUF`). Tensor bytes are made when asked for: mapped weights as they are,
    /// permuted Q/K and f32 vectors into buffers of their own. The content keeps this model alive.
    public func ggufContent(name: String, tokenizer: [(String, GGUFValue)]?, path: String = "model") throws -> (GGUFContent, [String]) {
        let c = config
        if let m = c.moe {   // decided 2026-12-07: mixtures are read (folders and GGUF), not written
            throw ModelError("GGUF export: a mixture of experts (\(m.experts) experts) cannot be written; llama.cpp's converter makes its GGUF")
        }
        let archs = ["llama": "llama", "mistral": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma": "gemma", "gemma2": "gemma2",
                     "gemma3": "gemma3", "smollm3": "smollm3", "phi3": "phi3", "olmo2": "olmo2", "olmo3": "olmo2", "granite": "granite", "glm4": "glm4", "cohere": "command-r", "cohere2": "cohere2",
                     "ernie4_5": "ernie4_5", "exaone4": "exaone4", "gpt2": "gpt2", "gpt_neox": "gptneox", "phi": "phi2", "stablelm": "stablelm",
                     "olmo": "olmo", "starcoder2": "starcoder2", "nemotron": "nemotron", "arcee": "arcee", "seed_oss": "seed_oss",
                     "ministral3": "mistral3"]
        guard let arch = archs[c.architecture] else {
            throw ModelError("GGUF export: architecture \(c.architecture) is not supported (\(archs.keys.sorted().joined(separator: ", ")))")
        }
        var caveats: [String] = []
        if let w = c.slidingWindow, arch == "phi3" {
            caveats.append("sliding_window \(w) is written but llama.cpp runs phi3 files without it (and so does this reader, to match), so the file attends to the whole context and differs from the folder past \(w) tokens")
        } else if let w = c.slidingWindow, !arch.hasPrefix("gemma"), !["olmo2", "cohere2", "exaone4"].contains(arch) {
            caveats.append("sliding_window \(w) is not written: GGUF \(arch) has no sliding window (llama.cpp's converter drops it too), so the file attends to the whole context and differs from the folder past \(w) tokens")
        }
        if arch == "seed_oss", c.attnOutputBias {   // Seed-OSS-36B has none, and llama.cpp's seed_oss reads none
            throw ModelError("GGUF export: attention_out_bias cannot be written for seed_oss: llama.cpp's seed_oss has no attention-output bias")
        }
        // GGUF gpt2, phi2 and gptneox name no activation: their readers (ours and llama.cpp's) take the tanh GELU
        // (GPT-2's and Phi's gelu_new) and, for gptneox, ours Pythia's exact one (llama.cpp: tanh)
        // (and starcoder2's; nemotron: squared ReLU; olmo: SwiGLU)
        let named: [String: Activation] = ["gpt2": .geluTanh, "phi2": .geluTanh, "gptneox": .gelu, "starcoder2": .geluTanh,
                                           "nemotron": .reluSquared, "olmo": .silu, "arcee": .reluSquared]
        if let want = named[arch], c.activation != want {
            throw ModelError("GGUF export: this \(c.architecture) model uses the \(c.activation.rawValue) activation, which GGUF \(arch) cannot say")
        }
        if arch.hasPrefix("gemma") {
            guard c.activation == .geluTanh else {
                throw ModelError("GGUF export: this Gemma uses the \(c.activation.rawValue) activation; GGUF gemma always uses the tanh GELU")
            }
        }
        if arch == "gemma2" || arch == "gemma3" {
            // llama.cpp (and our reader) take the scale from the size alone: say so rather than write a different model
            let inferred = Gemma2Architecture.llamaCppAttnScale(c, largeModelLayers: arch == "gemma2" ? 46 : 62)
            guard abs(c.attnScale - inferred) <= 1e-6 * inferred else {
                let given = String(format: "%g", 1 / (c.attnScale * c.attnScale)), assumed = String(format: "%g", 1 / (inferred * inferred))
                throw ModelError("GGUF export: query_pre_attn_scalar \(given) cannot be written: GGUF \(arch) has no such key and llama.cpp assumes \(assumed) for this size")
            }
        }
        if arch == "gemma2" {
            let evenSlide = (0..<c.numLayers).map { c.slidingWindow != nil && $0 % 2 == 0 }
            guard c.slidingLayers == evenSlide else {
                throw ModelError("GGUF export: layer_types cannot be written: GGUF gemma2 slides on the even layers only")
            }
        }
        if let t = c.queryTemperature, arch != "mistral3" || c.yarn?.originalMaxPositions != t.originalMaxPositions {
            throw ModelError("GGUF export: a query temperature cannot be written for \(arch)\(arch == "mistral3" ? " over another context than yarn's original one (llama.cpp's floor)" : "")")
        }
        if let y = c.yarn, !y.truncate {
            throw ModelError("GGUF export: yarn with truncate false cannot be written: llama.cpp rounds the ramp's ends to whole dimensions")
        }
        if arch != "mistral3", let y = c.yarn, y.betaFast != 32 || y.betaSlow != 1 {
            throw ModelError("GGUF export: yarn with beta_fast \(y.betaFast), beta_slow \(y.betaSlow)\(y.truncate ? "" : ", truncate false") cannot be written: llama.cpp runs yarn with 32, 1 and whole-dimension ramp ends")
        }
        if arch == "exaone4", let w = c.slidingWindow, c.slidingLayers.contains(true) {
            guard c.numLayers == 64, c.noRopeLayers == c.slidingLayers.map({ !$0 }) else {
                throw ModelError("GGUF export: exaone4 with sliding_window \(w) cannot be written for \(c.numLayers) layers: llama.cpp reads a window only in a 64-layer exaone4 file")
            }
        }
        if arch == "cohere2", c.slidingWindow == nil || c.noRopeLayers != c.slidingLayers.map({ !$0 }) || c.slidingRopeTheta != nil {
            throw ModelError("GGUF export: cohere2 without a window, or turning other layers than the sliding ones, cannot be written: llama.cpp turns exactly the sliding layers")
        }
        if c.longRope != nil, arch != "phi3" {
            throw ModelError("GGUF export: LongRoPE cannot be written for \(arch): llama.cpp reads its factors for phi3 only")
        }
        if arch == "smollm3", c.noRopeLayers != (0..<c.numLayers).map({ ($0 + 1) % 4 == 0 }) {
            throw ModelError("GGUF export: no_rope_layers cannot be written: llama.cpp skips RoPE on every 4th smollm3 layer, from no key")
        }
        if arch == "gemma3" {
            guard c.attnLogitSoftcap == nil else {
                throw ModelError("GGUF export: attn_logit_softcapping cannot be written: llama.cpp applies none for gemma3")
            }
        }
        var g = GGUFContent(sourcePath: path)
        g.set("general.architecture", .string(arch))
        g.set("general.name", .string(name))
        g.set("\(arch).context_length", .uint32(UInt32(c.longRope?.fullMaxPositions ?? c.maxPositions)))
        g.set("\(arch).embedding_length", .uint32(UInt32(c.hiddenSize)))
        g.set("\(arch).feed_forward_length", .uint32(UInt32(c.intermediateSize)))
        g.set("\(arch).block_count", .uint32(UInt32(c.numLayers)))
        g.set("\(arch).attention.head_count", .uint32(UInt32(c.numHeads)))
        g.set("\(arch).attention.head_count_kv", .uint32(UInt32(c.numKVHeads)))
        g.set("\(arch).attention.key_length", .uint32(UInt32(c.headDim)))
        g.set("\(arch).attention.value_length", .uint32(UInt32(c.headDim)))
        g.set("\(arch).attention.\(c.layerNorm ? "layer_norm_epsilon" : "layer_norm_rms_epsilon")", .float32(c.rmsNormEps))
        if !c.learnedPositions {   // GPT-2 turns nothing
            g.set("\(arch).rope.dimension_count", .uint32(UInt32(c.ropeDim)))
            g.set("\(arch).rope.freq_base", .float32(Float(c.ropeTheta)))
        }
        if arch == "gptneox" { g.set("gptneox.use_parallel_residual", .bool(c.parallelResidual)) }
        if arch == "stablelm" { g.set("stablelm.use_parallel_residual", .bool(c.parallelBlock)) }   // as its converter; read from ffn_norm
        if let clip = c.clipQKV { g.set("\(arch).attention.clamp_kqv", .float32(clip)) }
        if c.ropeLinearFactor != 1 {   // as convert_hf_to_gguf.py writes rope_scaling linear
            g.set("\(arch).rope.scaling.type", .string("linear"))
            g.set("\(arch).rope.scaling.factor", .float32(Float(c.ropeLinearFactor)))
        }
        g.set("\(arch).vocab_size", .uint32(UInt32(c.vocabSize)))
        if arch == "gemma2" {
            if let v = c.attnLogitSoftcap { g.set("gemma2.attn_logit_softcapping", .float32(v)) }
            if let v = c.finalLogitSoftcap { g.set("gemma2.final_logit_softcapping", .float32(v)) }
            if let w = c.slidingWindow { g.set("gemma2.attention.sliding_window", .uint32(UInt32(w))) }
        }
        // what GGUFConfig.readSlidingWindow reads back (gemma3, olmo2 for OLMo-3, cohere2, exaone4): the window, which
        // layers slide (as a list, which llama.cpp reads before any default) and their RoPE base (always for gemma3,
        // whose reader's default is 1e4, as its converter writes it; for the others when it is not the model's own)
        if ["gemma3", "olmo2", "cohere2", "exaone4"].contains(arch), let w = c.slidingWindow, c.slidingLayers.contains(true) {
            g.set("\(arch).attention.sliding_window", .uint32(UInt32(w)))
            g.set("\(arch).attention.sliding_window_pattern", .array(c.slidingLayers.map { .bool($0) }))
            let base = c.slidingRopeTheta ?? c.ropeTheta
            if arch == "gemma3" || base != c.ropeTheta { g.set("\(arch).rope.freq_base_swa", .float32(Float(base))) }
        }
        if arch == "gemma3", let v = c.finalLogitSoftcap { g.set("gemma3.final_logit_softcapping", .float32(v)) }
        if arch == "command-r" || arch == "cohere2" {   // Cohere: logits times logit_scale, as its converter writes it
            g.set("\(arch).logit_scale", .float32(1 / c.logitScale))
        }
        if arch == "granite" {   // its four multipliers, as its converter writes them
            g.set("granite.embedding_scale", .float32(c.embedScale))
            g.set("granite.attention.scale", .float32(c.attnScale))
            g.set("granite.residual_scale", .float32(c.residualScale))
            g.set("granite.logit_scale", .float32(c.logitScale))
        }
        if arch == "phi3" { g.set("phi3.attention.sliding_window", .uint32(UInt32(c.slidingWindow ?? 0))) }   // 0: none, as its converter writes
        if let y = c.yarn {   // as its converter writes yarn; an attention factor of another value as llama.cpp's multiplier
            g.set("\(arch).rope.scaling.type", .string("yarn"))
            g.set("\(arch).rope.scaling.factor", .float32(Float(y.factor)))
            g.set("\(arch).rope.scaling.original_context_length", .uint32(UInt32(y.originalMaxPositions)))
            let standard = YarnRope.defaultAttentionFactor(y.factor)
            if arch == "mistral3" {
                // as its converter writes Ministral 3: the betas, and mscale_all_dim as yarn_log_multiplier, the one
                // value that makes llama.cpp's mscale(f, 1) / mscale(f, it) our attention factor
                g.set("mistral3.rope.scaling.yarn_beta_fast", .float32(Float(y.betaFast)))
                g.set("mistral3.rope.scaling.yarn_beta_slow", .float32(Float(y.betaSlow)))
                if y.factor > 1 {
                    g.set("mistral3.rope.scaling.yarn_log_multiplier", .float32(Float((standard / y.attentionFactor - 1) / (0.1 * Foundation.log(y.factor)))))
                }
                if let t = c.queryTemperature { g.set("mistral3.attention.temperature_scale", .float32(Float(t.beta))) }
            } else if abs(y.attentionFactor - standard) > 1e-6 * standard {
                g.set("\(arch).rope.scaling.attn_factor", .float32(Float(y.attentionFactor / standard)))
            }
        }
        if let lr = c.longRope {   // as its converter writes LongRoPE: the multiplier and original context as keys
            g.set("phi3.rope.scaling.attn_factor", .float32(Float(lr.attentionFactor)))
            g.set("phi3.rope.scaling.original_context_length", .uint32(UInt32(lr.originalMaxPositions)))
        }
        if let tokenizer { for (k, v) in tokenizer { g.set(k, v) } } else { g.set("tokenizer.ggml.model", .string("none")) }

        // weights without an owner of their own live as long as this model
        func raw(_ m: WeightMatrix) -> () -> GGUFContent.TensorBytes {
            { GGUFContent.TensorBytes(data: m.data, count: m.byteCount, owner: m.owner ?? self) }
        }
        let permute = ["llama", "smollm3", "granite", "olmo", "arcee", "mistral3"].contains(arch) && c.ropeStyle == .halfRotation   // llama.cpp's LlamaModel converter
        if permute, let r = c.partialRotaryDim {
            throw ModelError("GGUF export: a \(arch) model turning \(r) of \(c.headDim) dimensions cannot be written in llama.cpp's interleaved layout")
        }
        // rotate_half pairs (i, i + d/2) -> interleaved pairs (2i, 2i + 1): within each head, row j*half + i moves to 2i + j.
        // Made when the tensor is written (or quantised), so one permuted copy is held at a time.
        func qk(_ m: WeightMatrix, heads: Int) -> () -> GGUFContent.TensorBytes {
            guard permute else { return raw(m) }
            let rb = m.rowBytes, hd = c.headDim, half = hd / 2
            return {
                GGUFContent.TensorBytes(count: m.byteCount) { dst in
                    for h in 0..<heads { for i in 0..<half { for j in 0..<2 {
                        let from = h * hd + j * half + i, to = h * hd + 2 * i + j
                        dst.advanced(by: to * rb).copyMemory(from: m.data + from * rb, byteCount: rb)
                    } } }
                }
            }
        }
        // matrices of one type stacked by rows into one tensor, made when it is written
        func stacked(_ ms: [WeightMatrix]) throws -> () -> GGUFContent.TensorBytes {
            guard Set(ms.map(\.dtype)).count == 1 else {
                throw ModelError("GGUF export: the matrices of a fused tensor have different types (\(ms.map { "\($0.dtype)" }.joined(separator: ", ")))")
            }
            return {
                GGUFContent.TensorBytes(count: ms.reduce(0) { $0 + $1.byteCount }) { dst in
                    var off = 0
                    for m in ms { dst.advanced(by: off).copyMemory(from: m.data, byteCount: m.byteCount); off += m.byteCount }
                }
            }
        }
        // norm weights as the file's reader applies them: Gemma's (1 + w) stored whole, in f32 (as llama.cpp's converter)
        func norm(_ v: [Float]) -> [Float] { c.normOffset == 0 ? v : v.map { $0 + c.normOffset } }
        if let lr = c.longRope {
            try g.addTensor(name: "rope_factors_long.weight", shape: [c.ropeDim / 2], floats: lr.longFactors.map(Float.init))
            try g.addTensor(name: "rope_factors_short.weight", shape: [c.ropeDim / 2], floats: lr.shortFactors.map(Float.init))
        }
        if let s = c.ropeScaling {
            try g.addTensor(name: "rope_freqs.weight", shape: [c.ropeDim / 2], floats: Self.llama3RopeFactors(c, s))
        }
        try g.addTensor(name: "token_embd.weight", dtype: weights.embed.dtype, shape: [c.vocabSize, c.hiddenSize], make: raw(weights.embed))
        if c.normWeights {   // OLMo-1's norms have none
            try g.addTensor(name: "output_norm.weight", shape: [c.hiddenSize], floats: norm(weights.finalNorm))
        }
        if let b = weights.finalNormBias { try g.addTensor(name: "output_norm.bias", shape: [b.count], floats: b) }
        if let pe = weights.positions {   // in f32, as its converter writes it (and llama-quantize leaves it)
            try g.addTensor(name: "position_embd.weight", shape: [pe.rows, pe.cols], floats: pe.toFloatArray())
        }
        if !c.tieWordEmbeddings {
            try g.addTensor(name: "output.weight", dtype: weights.lmHead.dtype, shape: [c.vocabSize, c.hiddenSize], make: raw(weights.lmHead))
        }
        if let b = weights.lmHeadBias { try g.addTensor(name: "output.bias", shape: [b.count], floats: b) }
        for (l, w) in weights.layers.enumerated() {
            let p = "blk.\(l)."
            if let v = w.attnNorm, c.normWeights { try g.addTensor(name: p + "attn_norm.weight", shape: [v.count], floats: norm(v)) }
            if c.fusedProjections {
                // Phi-3, GPT-2, GPT-NeoX: one attn_qkv (rows q | k | v), as llama.cpp's converter keeps it
                try g.addTensor(name: p + "attn_qkv.weight", dtype: w.wq.dtype, shape: [w.wq.rows + w.wk.rows + w.wv.rows, c.hiddenSize],
                                make: try stacked([w.wq, w.wk, w.wv]))
            } else {
                try g.addTensor(name: p + "attn_q.weight", dtype: w.wq.dtype, shape: [w.wq.rows, w.wq.cols], make: qk(w.wq, heads: c.numHeads))
                try g.addTensor(name: p + "attn_k.weight", dtype: w.wk.dtype, shape: [w.wk.rows, w.wk.cols], make: qk(w.wk, heads: c.numKVHeads))
                try g.addTensor(name: p + "attn_v.weight", dtype: w.wv.dtype, shape: [w.wv.rows, w.wv.cols], make: raw(w.wv))
            }
            if c.fusedGateUp {   // Phi-3, GLM-4: one ffn_up (rows gate | up), as its converter keeps it
                try g.addTensor(name: p + "ffn_up.weight", dtype: w.gate.dtype, shape: [w.gate.rows + w.up.rows, c.hiddenSize],
                                make: try stacked([w.gate, w.up]))
            }
            let mlp = c.fusedGateUp ? [("ffn_down", w.down)]
                : c.gatedMLP ? [("ffn_gate", w.gate), ("ffn_up", w.up), ("ffn_down", w.down)] : [("ffn_up", w.up), ("ffn_down", w.down)]
            for (n, m) in [("attn_output", w.wo)] + mlp {
                try g.addTensor(name: p + n + ".weight", dtype: m.dtype, shape: [m.rows, m.cols], make: raw(m))
            }
            if c.fusedProjections, let q = w.bq, let k = w.bk, let v = w.bv {
                try g.addTensor(name: p + "attn_qkv.bias", shape: [q.count + k.count + v.count], floats: q + k + v)
            }
            for (n, b) in [("attn_output", w.bo), ("ffn_up", w.bUp), ("ffn_down", w.bDown), ("attn_norm", w.attnNormBias), ("ffn_norm", w.ffnNormBias)] {
                if let b { try g.addTensor(name: p + n + ".bias", shape: [b.count], floats: b) }
            }
            for (n, b) in [("attn_q", w.bq), ("attn_k", w.bk), ("attn_v", w.bv)] where !c.fusedProjections {
                if let b { try g.addTensor(name: p + n + ".bias", shape: [b.count], floats: b) }
            }
            for (n, v) in [("attn_q_norm", w.qNorm), ("attn_k_norm", w.kNorm)] {
                if let v { try g.addTensor(name: p + n + ".weight", shape: [v.count], floats: norm(v)) }
            }
            if let v = w.postAttnNorm { try g.addTensor(name: p + "post_attention_norm.weight", shape: [v.count], floats: norm(v)) }
            if let v = w.ffnNorm, c.normWeights {   // seed_oss: llama.cpp's name for it
                try g.addTensor(name: p + (arch == "seed_oss" ? "post_attention_norm" : "ffn_norm") + ".weight", shape: [v.count], floats: norm(v))
            }
            if let v = w.postFFNorm { try g.addTensor(name: p + "post_ffw_norm.weight", shape: [v.count], floats: norm(v)) }
        }
        return (g, caveats)
    }

    /// llama.cpp's `rope_freqs` for Llama-3 RoPE scaling (convert_hf_to_gguf.py's LlamaModel): per frequency pair, 1
    /// for short wavelengths, `factor` for long ones, 1 / ((1 - smooth) / factor + smooth) between; the reader
    /// divides each base frequency by it, which is ropeInverseFrequencies' scaling.
    static func llama3RopeFactors(_ c: ModelConfig, _ s: Llama3RopeScaling) -> [Float] {
        let lowWavelen = s.originalMaxPositions / s.lowFreqFactor, highWavelen = s.originalMaxPositions / s.highFreqFactor
        return (0..<(c.ropeDim / 2)).map { i -> Float in
            let f = 1 / Float(pow(c.ropeTheta, Double(2 * i) / Double(c.ropeDim)))
            let wavelen = 2 * Double.pi / Double(f)
            if wavelen < highWavelen { return 1 }
            if wavelen > lowWavelen { return Float(s.factor) }
            let smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
            return Float(1 / ((1 - smooth) / s.factor + smooth))
        }
    }
}

/// Which type each matrix of a synthetic model gets: one type for all, or the per-tensor choice llama-quantize
/// makes for a file type (llama_tensor_get_type, no importance matrix): the output head in Q6_K (Q8_0 when its rows
/// are not whole blocks), more bits for some attn_v / ffn_down in the mixes, fallback types for other rows that are
/// not whole blocks.
public struct SyntheticTypes: Sendable {
    public enum Role: Sendable { case tokenEmbedding, output, attnQ, attnK, attnV, attnOutput, ffnGate, ffnUp, ffnDown }
    public let name: String
    let base: DType
    let mix: Bool

    /// One type for every matrix, as before (`persona bench --dtype bf16`).
    public init(_ dtype: DType) { name = dtype.rawValue; base = dtype; mix = false }

    /// A llama.cpp file type name: f32, f16, bf16 (every matrix in it), a quantised type (q4_0 ... q6_k, iq4_xs:
    /// what `llama-quantize` writes for that file type, i.e. the output head in Q6_K / Q8_0 and llama.cpp's
    /// fallback types for rows that are not whole blocks), a mix (q3_k_s/m/l, q4_k_m, q4_k_s, q5_k_m, q5_k_s), or
    /// `<type>_pure` (every matrix in that type, as `llama-quantize --pure`). Nil for unknown names.
    public init?(name: String) {
        let n = name.lowercased()
        switch n {
        case "q4_k_m", "q4_k_s": base = .q4_k; mix = true
        case "q5_k_m", "q5_k_s": base = .q5_k; mix = true
        case "q3_k_m", "q3_k_s", "q3_k_l": base = .q3_k; mix = true
        default:
            if n.hasSuffix("_pure"), let t = DType(rawValue: String(n.dropLast(5))) { base = t; mix = false }
            else if let t = DType(rawValue: n) { base = t; mix = ![.f32, .f16, .bf16, .mxfp4].contains(t) && !t.isLattice }
            else { return nil }
        }
        self.name = n
    }

    public static let names = "f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, iq4_nl, iq4_xs (as llama-quantize writes that file type; q3_k, q4_k, q5_k are its _M mixes), iq2_xxs, iq2_xs, iq2_s, iq3_xxs, iq3_s, iq1_s, iq1_m, mxfp4 (every matrix in that type, random blocks), q3_k_s, q3_k_m, q3_k_l, q4_k_m, q4_k_s, q5_k_m, q5_k_s, or <type>_pure (every matrix in <type>)"

    func type(_ role: Role, layer: Int, layers n: Int, cols: Int, gqa: Int) -> DType {
        guard mix else { return base }
        // the file types `persona convert --quantize` writes, by the same rules (q3_k, q4_k, q5_k: llama-quantize's
        // aliases of the _M mixes)
        guard let ft = GGUFQuantizer.FileType(name: ["q3_k", "q4_k", "q5_k"].contains(name) ? name + "_m" : name) else { return base }
        let tensor: String
        switch role {
        case .tokenEmbedding: tensor = "token_embd.weight"
        case .output: tensor = "output.weight"
        case .attnQ: tensor = "blk.\(layer).attn_q.weight"
        case .attnK: tensor = "blk.\(layer).attn_k.weight"
        case .attnV: tensor = "blk.\(layer).attn_v.weight"
        case .attnOutput: tensor = "blk.\(layer).attn_output.weight"
        case .ffnGate: tensor = "blk.\(layer).ffn_gate.weight"
        case .ffnUp: tensor = "blk.\(layer).ffn_up.weight"
        case .ffnDown: tensor = "blk.\(layer).ffn_down.weight"
        }
        return (try? GGUFQuantizer(fileType: ft).targetType(name: tensor, shape: [1, cols], stored: .f32, tiedEmbeddings: false,
                                                            layers: n, gqa: gqa, file: "synthetic")) ?? base
    }
}

/// SplitMix64: a small, fast, seedable generator for synthetic weights.
struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    @inline(__always) mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    @inline(__always) mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }
}
