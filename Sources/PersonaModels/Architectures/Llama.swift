/// Llama 2 / 3 / 3.x, SmolLM, TinyLlama: pre-norm blocks, SwiGLU MLP, RoPE (optionally Llama-3 scaled).
enum LlamaArchitecture: Architecture {
    static let hfModelTypes = ["llama"]
    static let ggufArchitectures = ["llama"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "llama")
        try requireSiLU(j)
        let bias = j.optBool("attention_bias") ?? false   // transformers: on q, k, v and o
        (c.attentionBias, c.attnOutputBias) = (bias, bias)
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "llama")
        // llama.cpp's converter permutes Q/K rows so that interleaved RoPE reproduces HF's rotate_half.
        c.ropeStyle = .interleaved
        return c
    }
}

/// Mistral: the Llama block with an optional sliding window on every layer.
enum MistralArchitecture: Architecture {
    static let hfModelTypes = ["mistral"]
    static let ggufArchitectures: [String] = []

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "mistral")
        try requireSiLU(j)
        readSlidingWindowOnEveryLayer(j, into: &c)
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig { try LlamaArchitecture.config(gguf: g) }
}
