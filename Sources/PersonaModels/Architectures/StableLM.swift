import Foundation

/// StableLM (StableLM-2 1.6B / Zephyr, StableLM-3B-4E1T): Llama's names and SwiGLU with LayerNorms with biases, RoPE on
/// the first `partial_rotary_factor` of each head (a quarter, rotate_half pairs), q / k / v biases where `use_qkv_bias`,
/// and, where `use_parallel_residual`, attention and the MLP in parallel on the one input norm.
enum StableLMArchitecture: Architecture {
    static let hfModelTypes = ["stablelm"]
    static let ggufArchitectures = ["stablelm"]

    static func config(hf given: JSONConfig) throws -> ModelConfig {
        let j = given.withPartialRotary(default: 0.25)   // transformers' StableLmConfig default
        var c = try baseConfig(j, architecture: "stablelm")
        try requireSiLU(j)
        if j.optBool("qk_layernorm") == true {
            throw ModelError("\(j.source): unsupported qk_layernorm true for stablelm (StableLM-2-12B's per-head LayerNorms)")
        }
        c.rmsNormEps = Float(j.optDouble("layer_norm_eps") ?? 1e-5)
        (c.layerNorm, c.normBias) = (true, true)
        c.attentionBias = j.optBool("use_qkv_bias") ?? false
        c.parallelBlock = j.optBool("use_parallel_residual") ?? false
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "stablelm")   // rope.dimension_count: the rotated part
        if g.file.tensor("blk.0.attn_q_norm.weight") != nil {
            throw ModelError("\(g.source): unsupported tensor 'blk.0.attn_q_norm.weight' (StableLM-2-12B's per-head LayerNorms)")
        }
        c.rmsNormEps = Float(g.optDouble("attention.layer_norm_epsilon") ?? 1e-5)
        (c.layerNorm, c.normBias) = (true, true)
        c.attentionBias = g.file.tensor("blk.0.attn_q.bias") != nil
        c.parallelBlock = g.file.tensor("blk.0.ffn_norm.weight") == nil   // llama.cpp's rule: no MLP norm, parallel
        return c
    }
}
