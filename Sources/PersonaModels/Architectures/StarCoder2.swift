import Foundation

/// StarCoder2 (3B / 7B / 15B): LayerNorms with biases, q / k / v / o with biases (`use_bias`), a plain
/// gelu_pytorch_tanh MLP (`c_fc` / `c_proj`, read through ClassicTensors) with biases, RoPE on whole heads, tied, and a
/// sliding window on every layer where the config has one.
enum StarCoder2Architecture: Architecture {
    static let hfModelTypes = ["starcoder2"]
    static let ggufArchitectures = ["starcoder2"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "starcoder2")
        c.tieWordEmbeddings = j.optBool("tie_word_embeddings") ?? true
        c.rmsNormEps = Float(j.optDouble("norm_epsilon") ?? 1e-5)
        c.activation = try GPT2Architecture.activation(j.optString("hidden_act") ?? "gelu_pytorch_tanh", source: j.source)
        (c.layerNorm, c.normBias, c.gatedMLP) = (true, true, false)
        let bias = j.optBool("use_bias") ?? true
        (c.attentionBias, c.attnOutputBias, c.mlpBias) = (bias, bias, bias)
        readSlidingWindowOnEveryLayer(j, into: &c)
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        // llama.cpp reads no sliding window for starcoder2 (its converter writes none): the whole context
        var c = try g.base(architecture: "starcoder2")
        c.rmsNormEps = Float(g.optDouble("attention.layer_norm_epsilon") ?? 1e-5)
        c.activation = .geluTanh
        (c.layerNorm, c.normBias, c.gatedMLP) = (true, true, false)
        g.readOptionalBiases(&c, mlp: true)
        return c
    }
}
