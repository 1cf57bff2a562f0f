/// Gemma: embeddings scaled by sqrt(hidden), RMSNorm as (1 + w), GeGLU MLP, tied embeddings.
enum GemmaArchitecture: Architecture {
    static let hfModelTypes = ["gemma"]
    static let ggufArchitectures = ["gemma"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "gemma")
        c.tieWordEmbeddings = j.optBool("tie_word_embeddings") ?? true
        c.normOffset = 1
        c.embedScale = Float(c.hiddenSize).squareRoot()
        c.activation = try gemmaActivation(j)
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "gemma")
        // llama.cpp's converter stores norm weights as (1 + w) already.
        c.embedScale = Float(c.hiddenSize).squareRoot()
        c.activation = .geluTanh
        return c
    }
}

/// Gemma's MLP activation: `hidden_activation` (falls back to the tanh GELU the reference uses).
func gemmaActivation(_ j: JSONConfig) throws -> Activation {
    let name = j.optString("hidden_activation") ?? j.optString("hidden_act") ?? "gelu_pytorch_tanh"
    switch name {
    case "gelu_pytorch_tanh", "gelu_new", "gelu_fast": return .geluTanh
    case "gelu": return j.optString("hidden_activation") == nil ? .geluTanh : .gelu
    case "silu", "swish": return .silu
    default: throw ModelError("\(j.source): unsupported hidden_activation '\(name)'")
    }
}
