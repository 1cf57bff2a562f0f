import Foundation

/// GPT-NeoX (Pythia, GPT-NeoX-20B): GPT-2's block (LayerNorms with biases, fused q / k / v, every projection with a
/// bias, a plain GELU MLP) with RoPE on the first `rotary_pct` of each head (a quarter in Pythia, rotate_half pairs)
/// and, by default, a parallel block: x + attn(ln1(x)) + mlp(ln2(x)). Untied. Its checkpoints read through
/// ClassicTensors (q / k / v regrouped from per-head blocks).
enum GPTNeoXArchitecture: Architecture {
    static let hfModelTypes = ["gpt_neox"]
    static let ggufArchitectures = ["gptneox"]

    static func config(hf given: JSONConfig) throws -> ModelConfig {
        // Pythia's configs name rotary_pct and rotary_emb_base; transformers 5 keeps them in rope_parameters
        var d = given.dict
        let rope = d["rope_parameters"] as? [String: Any] ?? d["rope_scaling"] as? [String: Any] ?? [:]
        if rope["rope_theta"] == nil, d["rope_theta"] == nil { d["rope_theta"] = d["rotary_emb_base"] ?? 10000 }
        let j = JSONConfig(dict: d, source: given.source)
            .withPartialRotary(default: (d["rotary_pct"] as? NSNumber)?.doubleValue ?? 0.25)
        var c = try baseConfig(j, architecture: "gpt_neox")
        if j.optBool("attention_bias") == false { throw ModelError("\(j.source): unsupported attention_bias false for gpt_neox") }
        c.rmsNormEps = Float(j.optDouble("layer_norm_eps") ?? 1e-5)
        c.activation = try GPT2Architecture.activation(j.optString("hidden_act") ?? "gelu", source: j.source)
        GPT2Architecture.classicBlock(&c)
        c.parallelResidual = j.optBool("use_parallel_residual") ?? true
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "gpt_neox")   // rope.dimension_count: the rotated part
        c.rmsNormEps = Float(g.optDouble("attention.layer_norm_epsilon") ?? 1e-5)
        // Pythia's exact GELU, as transformers runs these files (llama.cpp's ggml_gelu is the tanh approximation)
        c.activation = .gelu
        GPT2Architecture.classicBlock(&c)
        guard let parallel = g.file.metadata["gptneox.use_parallel_residual"]?.bool else {
            throw ModelError("\(g.source): missing metadata 'gptneox.use_parallel_residual'")
        }
        c.parallelResidual = parallel
        return c
    }
}
