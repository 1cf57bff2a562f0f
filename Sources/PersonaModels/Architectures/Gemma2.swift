/// Gemma-2: Gemma plus sandwich norms (post-attention and post-feed-forward), attention and final
/// logit soft-capping, query_pre_attn_scalar, and a sliding window on alternating layers.
enum Gemma2Architecture: Architecture {
    static let hfModelTypes = ["gemma2"]
    static let ggufArchitectures = ["gemma2"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try GemmaArchitecture.config(hf: j)
        c.architecture = "gemma2"
        c.sandwichNorms = true
        c.attnLogitSoftcap = j.optDouble("attn_logit_softcapping").map(Float.init)
        c.finalLogitSoftcap = j.optDouble("final_logit_softcapping").map(Float.init)
        if let s = j.optDouble("query_pre_attn_scalar") { c.attnScale = Float(1 / s.squareRoot()) }
        c.slidingWindow = j.optInt("sliding_window")
        if let types = j.dict["layer_types"] as? [String] {
            c.slidingLayers = types.map { $0 == "sliding_attention" }
        } else {
            // Reference default: even layers (0, 2, ...) slide.
            c.slidingLayers = (0..<c.numLayers).map { $0 % 2 == 0 }
        }
        if c.slidingWindow == nil { c.slidingLayers = Array(repeating: false, count: c.numLayers) }
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try GemmaArchitecture.config(gguf: g)
        c.architecture = "gemma2"
        c.sandwichNorms = true
        c.attnLogitSoftcap = g.optDouble("attn_logit_softcapping").map(Float.init)
        c.finalLogitSoftcap = g.optDouble("final_logit_softcapping").map(Float.init)
        c.slidingWindow = g.optInt("attention.sliding_window")
        c.slidingLayers = (0..<c.numLayers).map { c.slidingWindow != nil && $0 % 2 == 0 }
        // GGUF has no query_pre_attn_scalar; llama.cpp infers it from the size as gemma_pytorch's configs give it:
        // hidden / heads for the 27B model (46 blocks: 4608 / 32 = 144, head_dim 128), head_dim for the others.
        if c.numLayers == 46 { c.attnScale = 1 / (Float(c.hiddenSize) / Float(c.numHeads)).rounded(.down).squareRoot() }
        return c
    }
}
