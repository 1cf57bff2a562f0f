import Foundation

/// Gemma-3 (text): Gemma-2's sandwich norms and query_pre_attn_scalar, plus per-head q/k RMSNorm ((1 + w), before
/// RoPE), no soft-capping by default, five sliding-window layers to one full-attention layer, and RoPE per layer
/// type: the sliding layers turn with base 1e4 and no scaling, the full-attention layers with `rope_theta` (1e6)
/// and its scaling (linear 8 for the 4B-27B checkpoints).
///
/// The multimodal checkpoints (Gemma3ForConditionalGeneration, 4B and up) are read as their language model: the
/// config's `text_config` (JSONConfig), the tensors under `language_model.model.` (ModelLoader); the vision tower is
/// not used.
enum Gemma3Architecture: Architecture {
    /// `gemma3` is the multimodal wrapper, when its text_config does not name its own model_type.
    static let hfModelTypes = ["gemma3_text", "gemma3"]
    static let ggufArchitectures = ["gemma3"]

    /// Gemma3TextConfig's defaults (transformers), which the Hub's multimodal configs rely on: their text_config
    /// names only hidden_size, intermediate_size, num_hidden_layers, rope_scaling and sliding_window.
    static let textDefaults: [String: Any] = [
        "vocab_size": 262_208, "hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256, "max_position_embeddings": 131_072,
        "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0, "query_pre_attn_scalar": 256, "sliding_window": 4096,
        "tie_word_embeddings": true, "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
    ]

    static func config(hf given: JSONConfig) throws -> ModelConfig {
        let j = JSONConfig(dict: textDefaults.merging(given.dict) { _, own in own }, source: given.source)
        if j.optBool("use_bidirectional_attention") == true {
            throw ModelError("\(j.source): use_bidirectional_attention is set (an embedding model such as EmbeddingGemma): only causal language models are supported")
        }
        var c = try GemmaArchitecture.config(hf: j)   // the full-attention RoPE entry, as readRope takes it
        c.architecture = "gemma3"
        c.norms = .sandwich
        c.qkNorm = true
        c.attnLogitSoftcap = j.optDouble("attn_logit_softcapping").map(Float.init)
        c.finalLogitSoftcap = j.optDouble("final_logit_softcapping").map(Float.init)
        c.attnScale = Float(1 / (j.optDouble("query_pre_attn_scalar") ?? 256).squareRoot())
        // the reference's default: every sliding_window_pattern-th layer attends fully
        let pattern = j.optInt("sliding_window_pattern") ?? j.optInt("_sliding_window_pattern") ?? 6
        guard pattern > 0 else { throw ModelError("\(j.source): invalid config: sliding_window_pattern \(pattern)") }
        Gemma2Architecture.readSlidingLayers(j, into: &c) { ($0 + 1) % pattern != 0 }
        // the sliding layers' RoPE: rope_parameters.sliding_attention, or the older rope_local_base_freq
        c.slidingRopeTheta = try Gemma2Architecture.slidingRopeTheta(j, otherwise: j.optDouble("rope_local_base_freq") ?? 10000)
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try GemmaArchitecture.config(gguf: g)
        c.architecture = "gemma3"
        c.norms = .sandwich
        c.qkNorm = true
        // as llama.cpp reads a gemma3 file: no window (or 0) means none; the pattern is a per-layer list, or every
        // n-th layer full (n from the file, else 6; 0: every layer slides); the sliding layers turn with
        // rope.freq_base_swa (else 1e4), unscaled; the final soft-cap when the file has one
        try g.readSlidingWindow(&c, every: 6, defaultBase: 10000)
        if let cap = g.optDouble("final_logit_softcapping"), cap != 0 { c.finalLogitSoftcap = Float(cap) }
        c.attnScale = Gemma2Architecture.llamaCppAttnScale(c, largeModelLayers: 62)   // no query_pre_attn_scalar key
        return c
    }
}
