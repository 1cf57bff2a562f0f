import Foundation

/// ERNIE-4.5 (dense: ERNIE-4.5-0.3B): the Llama block with RoPE in interleaved pairs (2i, 2i + 1), as transformers'
/// Ernie4_5 rotates them and llama.cpp's ernie4_5 does (no permutation); tied by default. `use_bias` (biases on every
/// linear map) is refused by name.
enum ErnieArchitecture: Architecture {
    static let hfModelTypes = ["ernie4_5"]
    static let ggufArchitectures = ["ernie4_5"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "ernie4_5")
        try requireSiLU(j)
        if j.optBool("use_bias") == true { throw ModelError("\(j.source): unsupported use_bias true for ernie4_5 (biases on every linear map)") }
        c.tieWordEmbeddings = j.optBool("tie_word_embeddings") ?? true
        c.ropeStyle = .interleaved
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "ernie4_5")
        c.ropeStyle = .interleaved
        return c
    }
}
