import Foundation

/// Gemma-2: Gemma plus sandwich norms (post-attention and post-feed-forward), attention and final
/// logit soft-capping, query_pre_attn_scalar, and a sliding window on alternating layers.
enum Gemma2Architecture: Architecture {
    static let hfModelTypes = ["gemma2"]
    static let ggufArchitectures = ["gemma2"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try GemmaArchitecture.config(hf: j)
        c.architecture = "gemma2"
        c.norms = .sandwich
        c.attnLogitSoftcap = j.optDouble("attn_logit_softcapping").map(Float.init)
        c.finalLogitSoftcap = j.optDouble("final_logit_softcapping").map(Float.init)
        if let s = j.optDouble("query_pre_attn_scalar") { c.attnScale = Float(1 / s.squareRoot()) }
        // Reference default: even layers (0, 2, ...) slide.
        readSlidingLayers(j, into: &c) { $0 % 2 == 0 }
        return c
    }

    /// `sliding_window` and which layers use it: `layer_types`, else `byDefault(layer)`; none without a window.
    static func readSlidingLayers(_ j: JSONConfig, into c: inout ModelConfig, byDefault: (Int) -> Bool) {
        c.slidingWindow = j.optInt("sliding_window")
        if let types = j.dict["layer_types"] as? [String] {
            c.slidingLayers = types.map { $0 == "sliding_attention" }
        } else {
            c.slidingLayers = (0..<c.numLayers).map(byDefault)
        }
        if c.slidingWindow == nil { c.slidingLayers = Array(repeating: false, count: c.numLayers) }
    }

    /// The sliding layers' unscaled RoPE base (Gemma-3, OLMo-3): rope_parameters.sliding_attention's, else `otherwise`
    /// (the older configs' key); a scaling of the sliding layers is not something this engine runs, so it is refused.
    static func slidingRopeTheta(_ j: JSONConfig, otherwise: Double) throws -> Double {
        let local = j.optDict("rope_parameters")?["sliding_attention"] as? [String: Any]
        if let type = local?["rope_type"] as? String, type != "default" {
            throw ModelError("\(j.source): unsupported rope_parameters.sliding_attention.rope_type '\(type)' (supported: default)")
        }
        return (local?["rope_theta"] as? NSNumber)?.doubleValue ?? otherwise
    }

    /// The attention scale llama.cpp assumes for a gemma2 / gemma3 GGUF, which has no query_pre_attn_scalar key: it
    /// infers it from the size as gemma_pytorch's configs give it, 1 / sqrt(hidden / heads) for the 27B model
    /// (`largeModelLayers` blocks: 46 for Gemma-2, 62 for Gemma-3), 1 / sqrt(head_dim) for the others.
    static func llamaCppAttnScale(_ c: ModelConfig, largeModelLayers: Int) -> Float {
        c.numLayers == largeModelLayers ? 1 / Float(c.hiddenSize / c.numHeads).squareRoot() : 1 / Float(c.headDim).squareRoot()
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try GemmaArchitecture.config(gguf: g)
        c.architecture = "gemma2"
        c.norms = .sandwich
        c.attnLogitSoftcap = g.optDouble("attn_logit_softcapping").map(Float.init)
        c.finalLogitSoftcap = g.optDouble("final_logit_softcapping").map(Float.init)
        c.slidingWindow = g.optInt("attention.sliding_window")
        c.slidingLayers = (0..<c.numLayers).map { c.slidingWindow != nil && $0 % 2 == 0 }
        // GGUF has no query_pre_attn_scalar (27B: 4608 / 32 = 144, head_dim 128)
        c.attnScale = llamaCppAttnScale(c, largeModelLayers: 46)
        return c
    }
}
