import Foundation

/// OLMo (the first generation: OLMo-1B / 7B, -0424, -0724): the Llama block with non-parametric LayerNorms (no
/// weights, no biases, eps 1e-5) and, where `clip_qkv`, q / k / v clamped after their projections.
enum OLMoArchitecture: Architecture {
    static let hfModelTypes = ["olmo"]
    static let ggufArchitectures = ["olmo"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "olmo")
        try requireSiLU(j)
        if j.optBool("attention_bias") == true { throw ModelError("\(j.source): unsupported attention_bias true for olmo") }
        c.rmsNormEps = 1e-5   // transformers' OlmoLayerNorm: fixed
        (c.layerNorm, c.normWeights) = (true, false)
        if let clip = j.optDouble("clip_qkv") { c.clipQKV = try clipValue(clip, source: j.source) }
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "olmo")
        c.rmsNormEps = Float(g.optDouble("attention.layer_norm_epsilon") ?? 1e-5)
        (c.layerNorm, c.normWeights) = (true, false)
        c.ropeStyle = .interleaved   // its converter permutes q / k as Llama's
        if let clip = g.optDouble("attention.clamp_kqv") { c.clipQKV = try clipValue(clip, source: g.source) }
        return c
    }

    static func clipValue(_ v: Double, source: String) throws -> Float {
        guard v.isFinite, v > 0 else { throw ModelError("\(source): invalid clip_qkv \(v) (must be positive)") }
        return Float(v)
    }
}
