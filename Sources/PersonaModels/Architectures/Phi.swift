import Foundation

/// Phi-1, Phi-1.5 and Phi-2: a parallel block on one LayerNorm with bias (attention and the MLP read it, both outputs
/// join the residual), q / k / v apart with biases, RoPE on the first `partial_rotary_factor` of each head (0.4 in
/// Phi-2, rotate_half pairs), a plain gelu_new MLP with biases, and an output head with a bias. Its checkpoints read
/// through ClassicTensors (`self_attn.dense`, `mlp.fc1` / `fc2`, `final_layernorm`).
enum PhiArchitecture: Architecture {
    static let hfModelTypes = ["phi"]
    static let ggufArchitectures = ["phi2"]

    static func config(hf given: JSONConfig) throws -> ModelConfig {
        let j = given.withPartialRotary(default: 0.5)   // transformers' PhiConfig default
        var c = try baseConfig(j, architecture: "phi")
        if j.optBool("qk_layernorm") == true { throw ModelError("\(j.source): unsupported qk_layernorm true for phi") }
        c.rmsNormEps = Float(j.optDouble("layer_norm_eps") ?? 1e-5)
        c.activation = try GPT2Architecture.activation(j.optString("hidden_act") ?? "gelu_new", source: j.source)
        shared(&c)
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "phi")   // rope.dimension_count: the rotated part
        c.rmsNormEps = Float(g.optDouble("attention.layer_norm_epsilon") ?? 1e-5)
        c.activation = .geluTanh   // ggml's gelu, Phi's gelu_new
        shared(&c)
        // older files (from the original Wqkv checkpoints) keep q, k, v as one attn_qkv, as llama.cpp accepts
        c.fusedProjections = g.file.tensor("blk.0.attn_qkv.weight") != nil
        return c
    }

    private static func shared(_ c: inout ModelConfig) {
        GPT2Architecture.classicBlock(&c)
        c.fusedProjections = false
        c.parallelBlock = true
        c.headBias = true
    }
}
