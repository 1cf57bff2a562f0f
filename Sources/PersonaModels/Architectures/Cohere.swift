import Foundation

/// Cohere (Command-R, Aya-23, Aya Expanse): a parallel block (attention and the MLP both read one LayerNorm of the
/// residual, without bias, and both outputs join it), RoPE in interleaved pairs (2i, 2i + 1), tied embeddings, and
/// logits multiplied by `logit_scale`. Cohere2 (Command-R7B, Command A) adds sliding layers (3 of every 4) and no RoPE
/// at all on its full-attention layers.
enum CohereArchitecture: Architecture {
    static let hfModelTypes = ["cohere", "cohere2"]
    static let ggufArchitectures = ["command-r", "cohere2"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        let two = j.optString("model_type") == "cohere2"
        var c = try baseConfig(j, architecture: two ? "cohere2" : "cohere")
        try requireSiLU(j)
        if j.optBool("use_qk_norm") == true { throw ModelError("\(j.source): unsupported use_qk_norm true (Command R+'s per-head LayerNorms)") }
        if j.optBool("attention_bias") == true { throw ModelError("\(j.source): unsupported attention_bias true for cohere") }
        c.rmsNormEps = Float(j.optDouble("layer_norm_eps") ?? 1e-5)
        c.tieWordEmbeddings = j.optBool("tie_word_embeddings") ?? true
        c.layerNorm = true
        c.parallelBlock = true
        c.ropeStyle = .interleaved
        c.logitScale = try scale(j.optDouble("logit_scale") ?? 0.0625, source: j.source)
        if two {
            let pattern = j.optInt("sliding_window_pattern") ?? 4
            guard pattern > 0 else { throw ModelError("\(j.source): invalid config: sliding_window_pattern \(pattern)") }
            Gemma2Architecture.readSlidingLayers(j, into: &c) { ($0 + 1) % pattern != 0 }
            c.noRopeLayers = c.slidingLayers.map { !$0 }   // only the sliding layers turn
        }
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        let two = g.arch == "cohere2"
        var c = try g.base(architecture: two ? "cohere2" : "cohere")
        c.rmsNormEps = Float(g.optDouble("attention.layer_norm_epsilon") ?? 1e-5)
        c.layerNorm = true
        c.parallelBlock = true
        c.ropeStyle = .interleaved
        c.logitScale = try scale(g.optDouble("logit_scale") ?? 1, source: g.source)   // llama.cpp: none without the key
        if two {
            guard g.optInt("attention.sliding_window") ?? 0 > 0 else { throw ModelError("\(g.source): missing metadata 'cohere2.attention.sliding_window'") }
            try g.readSlidingWindow(&c, every: 4, defaultBase: c.ropeTheta, onlySlidingLayersTurn: true)
        }
        return c
    }

    /// logits x s is computed as logits / (1 / s), the one logit scale the engine has (Granite's divisor).
    static func scale(_ s: Double, source: String) throws -> Float {
        guard s.isFinite, s > 0 else { throw ModelError("\(source): invalid logit_scale \(s)") }
        return Float(1 / s)
    }
}
