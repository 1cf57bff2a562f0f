import Foundation

/// OLMo-2 (AI2's fully open models, 1B-32B): the Llama block with its norms moved to the outputs. Attention and the
/// MLP read the residual unnormalised; what each returns is RMS-normalised (post_attention_layernorm,
/// post_feedforward_layernorm) before it is added back; queries and keys are RMS-normalised over all heads of a token
/// (q_norm of qDim, k_norm of kvDim), before RoPE. Untied, no biases.
///
/// OLMo-3 is the same block with a sliding window on three layers of every four (`layer_types`) and RoPE per layer
/// type: the sliding layers turn unscaled, the full-attention ones with the config's scaling (YaRN for the long-context
/// checkpoints). llama.cpp writes both as `olmo2`.
enum OLMo2Architecture: Architecture {
    static let hfModelTypes = ["olmo2", "olmo3"]
    static let ggufArchitectures = ["olmo2"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        let olmo3 = j.optString("model_type") == "olmo3"
        var c = try baseConfig(j, architecture: olmo3 ? "olmo3" : "olmo2")   // the full-attention RoPE entry
        try requireSiLU(j)
        if j.optBool("attention_bias") == true { throw ModelError("\(j.source): unsupported attention_bias true for olmo") }
        c.norms = .post
        c.qkNorm = true
        c.qkNormAcrossHeads = true
        if olmo3 {
            Gemma2Architecture.readSlidingLayers(j, into: &c) { ($0 + 1) % 4 != 0 }   // transformers' default pattern
            let theta = try Gemma2Architecture.slidingRopeTheta(j, otherwise: j.optDouble("rope_theta") ?? 500_000)
            if c.slidingWindow != nil { c.slidingRopeTheta = theta }
        }
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "olmo2")
        c.norms = .post
        c.qkNorm = true
        c.qkNormAcrossHeads = true
        // OLMo-3, as llama.cpp reads it: a window makes every 4th layer full unless the file lists them; the sliding
        // layers turn with rope.freq_base_swa (else the base), unscaled
        try g.readSlidingWindow(&c, every: 4, defaultBase: c.ropeTheta)
        if c.slidingWindow != nil { c.architecture = "olmo3" }
        return c
    }
}
