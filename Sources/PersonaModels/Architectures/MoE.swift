import Foundation

/// Qwen3-MoE (Qwen3-30B-A3B, 235B-A22B): Qwen3's attention (per-head q / k norms) with a mixture of experts in place of
/// the MLP: `num_experts` SwiGLU experts of `moe_intermediate_size`, `num_experts_per_tok` per token, their weights
/// renormalised when `norm_topk_prob`; layers in `mlp_only_layers` (or off the `decoder_sparse_step`) keep a dense MLP
/// of `intermediate_size`. llama.cpp's qwen3moe makes every layer a mixture and always renormalises.
enum Qwen3MoEArchitecture: Architecture {
    static let hfModelTypes = ["qwen3_moe"]
    static let ggufArchitectures = ["qwen3moe"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try Qwen3Architecture.config(hf: j)
        c.architecture = "qwen3_moe"
        c.moe = try qwenMixture(j, layers: c.numLayers)
        return c
    }

    /// Qwen's mixture keys (Qwen3-MoE, Qwen2-MoE): num_experts (the Hub's; transformers 5 writes num_local_experts),
    /// num_experts_per_tok, moe_intermediate_size, norm_topk_prob, and the dense layers of mlp_only_layers or off
    /// decoder_sparse_step.
    static func qwenMixture(_ j: JSONConfig, layers: Int) throws -> MixtureOfExperts {
        let experts = try j.optInt("num_experts") ?? j.int("num_local_experts"), step = j.optInt("decoder_sparse_step") ?? 1
        guard experts > 0, step > 0 else { throw ModelError("\(j.source): invalid config: num_experts \(experts), decoder_sparse_step \(step)") }
        let dense = Set(j.intList("mlp_only_layers"))
        return MixtureOfExperts(experts: experts, perToken: try j.int("num_experts_per_tok"),
                                intermediateSize: try j.int("moe_intermediate_size"),
                                normalizeTopK: j.optBool("norm_topk_prob") ?? false,
                                layers: (0..<layers).map { !dense.contains($0) && ($0 + 1) % step == 0 })
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try Qwen3Architecture.config(gguf: g)   // the mixture from expert_* keys (GGUFConfig.base)
        c.architecture = "qwen3_moe"
        guard var moe = c.moe else { throw ModelError("\(g.source): missing metadata 'qwen3moe.expert_count'") }
        if g.optInt("expert_feed_forward_length") == nil { moe.intermediateSize = c.intermediateSize / moe.perToken }   // as llama.cpp
        c.moe = moe
        return c
    }
}

/// Mixtral (8x7B, 8x22B): Mistral's block with a mixture of `num_local_experts` SwiGLU experts of `intermediate_size`,
/// `num_experts_per_tok` per token, their weights always renormalised. The Hub's files keep it under
/// block_sparse_moe (w1 gate, w3 up, w2 down); llama.cpp writes it as `llama` with ffn_*_exps.
enum MixtralArchitecture: Architecture {
    static let hfModelTypes = ["mixtral"]
    static let ggufArchitectures: [String] = []   // llama files with expert_count (LlamaArchitecture)

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try MistralArchitecture.config(hf: j)
        c.architecture = "mixtral"
        c.moe = MixtureOfExperts(experts: try j.int("num_local_experts"), perToken: try j.int("num_experts_per_tok"),
                                 intermediateSize: c.intermediateSize, normalizeTopK: true,
                                 layers: Array(repeating: true, count: c.numLayers))
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig { try LlamaArchitecture.config(gguf: g) }
}

/// OLMoE (AI2's fully open mixture, 1B-7B): the Llama block with q / k RMS-normalised over all heads of a token (as
/// OLMo-2, but with pre-norms) and a mixture of `num_experts` SwiGLU experts of `intermediate_size` on every layer,
/// `num_experts_per_tok` per token, not renormalised unless `norm_topk_prob` (llama.cpp's olmoe never is).
enum OLMoEArchitecture: Architecture {
    static let hfModelTypes = ["olmoe"]
    static let ggufArchitectures = ["olmoe"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "olmoe")
        try requireSiLU(j)
        if j.optBool("attention_bias") == true { throw ModelError("\(j.source): unsupported attention_bias true for olmoe") }
        if let clip = j.optDouble("clip_qkv") {
            throw ModelError("\(j.source): unsupported clip_qkv \(clip) (queries, keys and values clamped)")
        }
        c.qkNorm = true
        c.qkNormAcrossHeads = true
        c.moe = MixtureOfExperts(experts: try j.int("num_experts"), perToken: try j.int("num_experts_per_tok"),
                                 intermediateSize: c.intermediateSize, normalizeTopK: j.optBool("norm_topk_prob") ?? false,
                                 layers: Array(repeating: true, count: c.numLayers))
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "olmoe")
        guard var moe = c.moe else { throw ModelError("\(g.source): missing metadata 'olmoe.expert_count'") }
        moe.normalizeTopK = false   // as llama.cpp builds olmoe
        c.moe = moe
        c.qkNorm = true
        c.qkNormAcrossHeads = true
        return c
    }
}

/// Qwen2-MoE (Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B): Qwen2's attention (q / k / v biases) with Qwen3-MoE's mixture plus
/// a shared SwiGLU expert of `shared_expert_intermediate_size` on every token, weighted by sigmoid(shared_expert_gate . x).
/// llama.cpp's qwen2moe makes every layer a mixture and never renormalises.
enum Qwen2MoEArchitecture: Architecture {
    static let hfModelTypes = ["qwen2_moe"]
    static let ggufArchitectures = ["qwen2moe"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try Qwen2Architecture.config(hf: j)
        c.architecture = "qwen2_moe"
        c.attentionBias = j.optBool("qkv_bias") ?? true
        c.moe = try Qwen3MoEArchitecture.qwenMixture(j, layers: c.numLayers)
        c.moe?.sharedIntermediateSize = try j.int("shared_expert_intermediate_size")
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try Qwen2Architecture.config(gguf: g)
        c.architecture = "qwen2_moe"
        guard var moe = c.moe else { throw ModelError("\(g.source): missing metadata 'qwen2moe.expert_count'") }
        moe.normalizeTopK = false   // as llama.cpp builds qwen2moe
        moe.sharedIntermediateSize = g.optInt("expert_shared_feed_forward_length") ?? c.intermediateSize   // as llama.cpp
        c.moe = moe
        return c
    }
}
