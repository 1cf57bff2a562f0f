import Foundation

/// Nemotron (Nemotron-Mini-4B, Minitron-4B / 8B, Nemotron-4): LayerNorm1P (times 1 + w, with bias), RoPE on the first
/// `partial_rotary_factor` of each head (half, rotate_half pairs), a plain squared-ReLU MLP (up / down), biases where
/// `attention_bias` / `mlp_bias`, untied. llama.cpp's converter stores the norms as 1 + w, as our export does.
enum NemotronArchitecture: Architecture {
    static let hfModelTypes = ["nemotron"]
    static let ggufArchitectures = ["nemotron"]

    static func config(hf given: JSONConfig) throws -> ModelConfig {
        let j = given.withPartialRotary(default: 0.5)   // transformers' NemotronConfig default
        var c = try baseConfig(j, architecture: "nemotron")
        c.rmsNormEps = Float(j.optDouble("norm_eps") ?? 1e-5)
        c.activation = try GPT2Architecture.activation(j.optString("hidden_act") ?? "relu2", source: j.source)
        (c.layerNorm, c.normBias, c.normOffset, c.gatedMLP) = (true, true, 1, false)
        let attention = j.optBool("attention_bias") ?? false
        (c.attentionBias, c.attnOutputBias) = (attention, attention)
        c.mlpBias = j.optBool("mlp_bias") ?? false
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "nemotron")   // rope.dimension_count: the rotated part
        c.rmsNormEps = Float(g.optDouble("attention.layer_norm_epsilon") ?? 1e-5)
        c.activation = .reluSquared
        (c.layerNorm, c.normBias, c.gatedMLP) = (true, true, false)   // norms stored as 1 + w
        g.readOptionalBiases(&c, mlp: true)
        return c
    }
}
