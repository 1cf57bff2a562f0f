/// Qwen3: the Llama block with per-head RMSNorm on queries and keys (before RoPE), no QKV bias.
enum Qwen3Architecture: Architecture {
    static let hfModelTypes = ["qwen3"]
    static let ggufArchitectures = ["qwen3"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "qwen3")
        try requireSiLU(j)
        c.qkNorm = true
        c.attentionBias = j.optBool("attention_bias") ?? false
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "qwen3")
        c.qkNorm = true
        return c
    }
}
