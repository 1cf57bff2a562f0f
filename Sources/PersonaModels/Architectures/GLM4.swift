import Foundation

/// GLM-4 (GLM-4-9B / 32B-0414, GLM-Z1): Gemma-2's sandwich of norms (input, after attention, before and after the
/// MLP; plain weights), q / k / v with biases, gate and up in one matrix, and RoPE on the first half of each head
/// (`partial_rotary_factor`, 0.5 by default) with interleaved pairs (2i, 2i + 1), as transformers' Glm4 rotates them
/// and as llama.cpp's glm4 does (no permutation).
enum GLM4Architecture: Architecture {
    static let hfModelTypes = ["glm4"]
    static let ggufArchitectures = ["glm4"]

    static func config(hf given: JSONConfig) throws -> ModelConfig {
        let j = given.withPartialRotary(default: 0.5)   // transformers' Glm4Config default
        var c = try baseConfig(j, architecture: "glm4")
        try requireSiLU(j)
        c.attentionBias = j.optBool("attention_bias") ?? true
        c.norms = .sandwich
        c.fusedGateUp = true
        c.ropeStyle = .interleaved
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "glm4")   // rope.dimension_count: the rotated half
        if g.file.metadata["glm4.rope.dimension_sections"] != nil {
            throw ModelError("\(g.source): unsupported metadata: glm4.rope.dimension_sections (M-RoPE, GLM-4.1V's vision model)")
        }
        if let n = g.optInt("nextn_predict_layers"), n > 0 {
            throw ModelError("\(g.source): unsupported metadata: glm4.nextn_predict_layers \(n) (multi-token prediction layers)")
        }
        c.attentionBias = g.file.tensor("blk.0.attn_q.bias") != nil
        c.norms = .sandwich
        c.fusedGateUp = true
        c.ropeStyle = .interleaved
        return c
    }
}
