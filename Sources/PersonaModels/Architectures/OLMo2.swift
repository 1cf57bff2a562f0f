import Foundation

/// OLMo-2 (AI2's fully open models, 1B-32B): the Llama block with its norms moved to the outputs. Attention and the
/// MLP read the residual unnormalised; what each returns is RMS-normalised (post_attention_layernorm,
/// post_feedforward_layernorm) before it is added back; queries and keys are RMS-normalised over all heads of a token
/// (q_norm of qDim, k_norm of kvDim), before RoPE. Untied, no biases.
enum OLMo2Architecture: Architecture {
    static let hfModelTypes = ["olmo2"]
    static let ggufArchitectures = ["olmo2"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "olmo2")
        try requireSiLU(j)
        if j.optBool("attention_bias") == true { throw ModelError("\(j.source): unsupported attention_bias true for olmo2") }
        c.norms = .post
        c.qkNorm = true
        c.qkNormAcrossHeads = true
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "olmo2")
        // an OLMo-3 file (written as olmo2 with a window on 3 of every 4 layers) is not this model
        if let w = g.optInt("attention.sliding_window"), w > 0 {
            throw ModelError("\(g.source): unsupported metadata: olmo2.attention.sliding_window \(w) (OLMo-3's sliding layers)")
        }
        c.norms = .post
        c.qkNorm = true
        c.qkNormAcrossHeads = true
        return c
    }
}
