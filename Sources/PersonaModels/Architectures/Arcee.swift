import Foundation

/// Arcee (AFM-4.5B): the Llama block with a plain squared-ReLU MLP (up / down, no gate). llama.cpp's converter permutes
/// its Q/K rows as Llama's.
enum ArceeArchitecture: Architecture {
    static let hfModelTypes = ["arcee"]
    static let ggufArchitectures = ["arcee"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "arcee")
        c.activation = try GPT2Architecture.activation(j.optString("hidden_act") ?? "relu2", source: j.source)
        c.gatedMLP = false
        let attention = j.optBool("attention_bias") ?? false
        (c.attentionBias, c.attnOutputBias) = (attention, attention)
        c.mlpBias = j.optBool("mlp_bias") ?? false
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "arcee")
        c.ropeStyle = .interleaved   // permuted as Llama's
        (c.activation, c.gatedMLP) = (.reluSquared, false)
        return c
    }
}

/// Seed-OSS (ByteDance Seed-OSS-36B): the Llama block with q / k / v biases (`attention_bias`), and an attention-output
/// bias where `attention_out_bias`. llama.cpp's seed_oss names the MLP's norm `post_attention_norm`.
enum SeedOSSArchitecture: Architecture {
    static let hfModelTypes = ["seed_oss"]
    static let ggufArchitectures = ["seed_oss"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "seed_oss")
        try requireSiLU(j)
        if j.optBool("mlp_bias") == true { throw ModelError("\(j.source): unsupported mlp_bias true for seed_oss") }
        c.attentionBias = j.optBool("attention_bias") ?? true
        c.attnOutputBias = j.optBool("attention_out_bias") ?? false
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "seed_oss")
        g.readOptionalBiases(&c, mlp: false)
        return c
    }
}
