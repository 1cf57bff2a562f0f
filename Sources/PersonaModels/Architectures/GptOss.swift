import Foundation

/// gpt-oss (20b, 120b): attention with q / k / v / o biases and a learned sink logit per head, a sliding window on
/// every other layer (layer_types), YaRN, and on every layer a mixture of experts: a router with bias, the top-k logits
/// softmaxed among themselves (the renormalised top k of the softmax), each expert a clamped SwiGLU (swiglu_alpha,
/// swiglu_limit) with biases. Its BF16 checkpoints read through ClassicTensors; the Hub's MXFP4 experts are refused.
enum GptOssArchitecture: Architecture {
    static let hfModelTypes = ["gpt_oss"]
    static let ggufArchitectures = ["gpt-oss"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        if let q = j.optDict("quantization_config"), let method = q["quant_method"] as? String {
            throw ModelError("\(j.source): unsupported quantization_config '\(method)' (gpt-oss's MXFP4 experts are not read yet: use a BF16 copy of the model, or a GGUF whose experts are not MXFP4)")
        }
        var c = try baseConfig(j, architecture: "gpt_oss")
        c.attentionBias = j.optBool("attention_bias") ?? true
        c.attnOutputBias = c.attentionBias
        c.attentionSinks = true
        Gemma2Architecture.readSlidingLayers(j, into: &c) { ($0 + 1) % 2 != 0 }
        c.moe = MixtureOfExperts(experts: try j.int("num_local_experts"), perToken: try j.int("num_experts_per_tok"),
                                 intermediateSize: c.intermediateSize, normalizeTopK: true,
                                 layers: Array(repeating: true, count: c.numLayers), routerBias: true, expertBias: true)
        try swiglu(&c, alpha: j.optDouble("swiglu_alpha") ?? 1.702, limit: j.optDouble("swiglu_limit") ?? 7, source: j.source)
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "gpt_oss")   // the mixture from expert_* keys, renormalised; yarn rounded as ggml
        guard var moe = c.moe else { throw ModelError("\(g.source): missing metadata 'gpt-oss.expert_count'") }
        (moe.routerBias, moe.expertBias) = (true, true)
        c.moe = moe
        (c.attentionBias, c.attnOutputBias, c.attentionSinks) = (true, true, true)
        guard g.optInt("attention.sliding_window") ?? 0 > 0 else { throw ModelError("\(g.source): missing metadata 'gpt-oss.attention.sliding_window'") }
        try g.readSlidingWindow(&c, every: 2, defaultBase: c.ropeTheta, onlySlidingLayersTurn: false)
        c.slidingRopeTheta = nil   // llama.cpp: the sliding layers turn as the others unless freq_base_swa says otherwise
        if let swa = g.optDouble("rope.freq_base_swa"), swa != c.ropeTheta {
            throw ModelError("\(g.source): unsupported metadata: gpt-oss.rope.freq_base_swa \(swa)")
        }
        try swiglu(&c, alpha: 1.702, limit: 7, source: g.source)   // llama.cpp's constants
        return c
    }

    static func swiglu(_ c: inout ModelConfig, alpha: Double, limit: Double, source: String) throws {
        guard alpha.isFinite, limit.isFinite, limit > 0 else { throw ModelError("\(source): invalid swiglu_alpha \(alpha) / swiglu_limit \(limit)") }
        (c.activation, c.swigluAlpha, c.swigluLimit) = (.swigluOAI, Float(alpha), Float(limit))
    }
}
