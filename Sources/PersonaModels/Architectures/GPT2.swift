import Foundation

/// GPT-2 (and DistilGPT-2, GPT-2 medium / large / xl): learned position embeddings added to the token embeddings, no
/// RoPE, LayerNorms with biases before attention and the MLP, q / k / v in one matrix with biases, a plain MLP
/// down(gelu(up x + b)) + b, tied embeddings. Its checkpoints read through ClassicTensors (Conv1D weights transposed).
enum GPT2Architecture: Architecture {
    static let hfModelTypes = ["gpt2"]
    static let ggufArchitectures = ["gpt2"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        func need(_ keys: String...) throws -> Int {
            for k in keys { if let v = j.optInt(k) { return v } }
            throw ModelError("\(j.source): missing or non-integer '\(keys[0])'")
        }
        let hidden = try need("n_embd", "hidden_size"), heads = try need("n_head", "num_attention_heads")
        let layers = try need("n_layer", "num_hidden_layers")
        guard heads > 0, (1 ..< 1024).contains(layers) else { throw ModelError("\(j.source): invalid config: n_head \(heads) / n_layer \(layers)") }
        for (key, bad) in [("scale_attn_by_inverse_layer_idx", true), ("scale_attn_weights", false), ("add_cross_attention", true)]
        where j.optBool(key) == bad {
            throw ModelError("\(j.source): unsupported \(key) \(bad) for gpt2")
        }
        var c = ModelConfig(architecture: "gpt2", vocabSize: try j.int("vocab_size"), hiddenSize: hidden,
                            intermediateSize: j.optInt("n_inner") ?? 4 * hidden, numLayers: layers, numHeads: heads,
                            numKVHeads: heads, headDim: hidden / heads,
                            rmsNormEps: Float(j.optDouble("layer_norm_epsilon") ?? 1e-5))
        c.maxPositions = j.optInt("n_positions") ?? j.optInt("max_position_embeddings") ?? 1024
        c.activation = try activation(j.optString("activation_function") ?? "gelu_new", source: j.source)
        c.tieWordEmbeddings = j.optBool("tie_word_embeddings") ?? true
        c.bosTokenId = j.optInt("bos_token_id")
        c.eosTokenIds = j.intList("eos_token_id")
        classic(&c)
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "gpt2")
        c.rmsNormEps = Float(g.optDouble("attention.layer_norm_epsilon") ?? 1e-5)
        c.activation = .geluTanh   // ggml's gelu, GPT-2's gelu_new
        classic(&c)
        return c
    }

    /// What GPT-2 and GPT-NeoX share: LayerNorms with biases, fused q / k / v and every projection with a bias, a
    /// plain MLP.
    static func classicBlock(_ c: inout ModelConfig) {
        (c.layerNorm, c.normBias, c.fusedProjections, c.gatedMLP) = (true, true, true, false)
        (c.attentionBias, c.attnOutputBias, c.mlpBias) = (true, true, true)
    }

    private static func classic(_ c: inout ModelConfig) {
        classicBlock(&c)
        c.learnedPositions = true
        c.noRopeLayers = Array(repeating: true, count: c.numLayers)
    }

    /// transformers' ACT2FN names of the two GELUs and squared ReLU.
    static func activation(_ name: String, source: String) throws -> Activation {
        switch name {
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": return .geluTanh
        case "gelu": return .gelu
        case "relu2": return .reluSquared
        default: throw ModelError("\(source): unsupported activation '\(name)' (supported: gelu, gelu_new, gelu_pytorch_tanh, relu2)")
        }
    }
}
