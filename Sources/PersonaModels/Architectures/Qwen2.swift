/// Qwen2 / Qwen2.5: the Llama block with biases on the Q, K and V projections.
enum Qwen2Architecture: Architecture {
    static let hfModelTypes = ["qwen2"]
    static let ggufArchitectures = ["qwen2"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "qwen2")
        try requireSiLU(j)
        c.attentionBias = true
        // Qwen2 ships use_sliding_window=false in practice; honour it when set.
        if j.optBool("use_sliding_window") == true, let w = j.optInt("sliding_window"), w > 0 {
            let maxWindowLayers = j.optInt("max_window_layers") ?? c.numLayers
            c.slidingWindow = w
            c.slidingLayers = (0..<c.numLayers).map { $0 >= maxWindowLayers }
        }
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "qwen2")
        c.attentionBias = true
        return c
    }
}
