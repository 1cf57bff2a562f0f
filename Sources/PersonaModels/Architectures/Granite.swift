import Foundation

/// IBM Granite 3.x (dense): the Llama block with four multipliers (muP): embeddings times `embedding_multiplier`,
/// attention scores times `attention_multiplier` (in place of 1 / sqrt(head_dim)), what attention and the MLP add to
/// the residual times `residual_multiplier`, and logits divided by `logits_scaling`.
enum GraniteArchitecture: Architecture {
    static let hfModelTypes = ["granite", "granitemoe"]
    static let ggufArchitectures = ["granite", "granitemoe"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        let moe = j.optString("model_type") == "granitemoe"
        var c = try baseConfig(j, architecture: moe ? "granitemoe" : "granite")
        if moe {
            // GraniteMoE (granite-3.x-1b-a400m, 3b-a800m): every MLP a mixture of experts of intermediate_size, the
            // top-k router logits softmaxed among themselves (= renormalised)
            c.moe = MixtureOfExperts(experts: try j.int("num_local_experts"), perToken: try j.int("num_experts_per_tok"),
                                     intermediateSize: c.intermediateSize, normalizeTopK: true,
                                     layers: Array(repeating: true, count: c.numLayers))
        }
        try requireSiLU(j)
        c.attentionBias = j.optBool("attention_bias") ?? false
        func multiplier(_ key: String) throws -> Float {
            let v = j.optDouble(key) ?? 1   // Granite's config defaults
            guard v.isFinite, v > 0 else { throw ModelError("\(j.source): invalid config: \(key) \(v) (must be positive)") }
            return Float(v)
        }
        c.embedScale = try multiplier("embedding_multiplier")
        c.attnScale = try multiplier("attention_multiplier")
        c.residualScale = try multiplier("residual_multiplier")
        c.logitScale = try multiplier("logits_scaling")
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: g.arch)   // granitemoe: the mixture from expert_* keys, renormalised
        if g.arch == "granitemoe", c.moe == nil { throw ModelError("\(g.source): missing metadata 'granitemoe.expert_count'") }
        if g.arch == "granitemoe", g.optInt("expert_shared_feed_forward_length") ?? 0 > 0 {
            throw ModelError("\(g.source): unsupported metadata: granitemoe.expert_shared_feed_forward_length (GraniteMoeShared's shared expert)")
        }
        c.ropeStyle = .interleaved   // its converter permutes Q/K as for llama
        // as llama.cpp reads them: a missing (or 0) scale is none, the attention one 1 / sqrt(head_dim)
        func scale(_ key: String) throws -> Float? {
            guard let v = g.optDouble(key), v != 0 else { return nil }
            guard v.isFinite, v > 0 else { throw ModelError("\(g.source): invalid metadata: \(g.arch).\(key) \(v)") }
            return Float(v)
        }
        c.embedScale = try scale("embedding_scale") ?? 1
        if let a = try scale("attention.scale") { c.attnScale = a }
        c.residualScale = try scale("residual_scale") ?? 1
        guard let logit = try scale("logit_scale") else {
            throw ModelError("\(g.source): missing metadata '\(g.arch).logit_scale'")   // llama.cpp requires it too
        }
        c.logitScale = logit
        return c
    }
}
