import Foundation

/// SmolLM3: the Llama block with no RoPE on every 4th layer ("NoPE" layers: queries and keys enter attention as
/// projected), tied embeddings by default.
enum SmolLM3Architecture: Architecture {
    static let hfModelTypes = ["smollm3"]
    static let ggufArchitectures = ["smollm3"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "smollm3")
        try requireSiLU(j)
        c.tieWordEmbeddings = j.optBool("tie_word_embeddings") ?? true
        c.attentionBias = j.optBool("attention_bias") ?? false
        // what the reference can do and this engine does not is refused by name, not run without it
        if j.optBool("mlp_bias") == true { throw ModelError("\(j.source): unsupported mlp_bias true for smollm3") }
        if j.optBool("use_sliding_window") == true { throw ModelError("\(j.source): unsupported use_sliding_window true for smollm3") }
        if let list = j.dict["no_rope_layers"] as? [Any] {
            // 1: the layer uses RoPE, 0: it does not
            let flags = list.compactMap { ($0 as? NSNumber)?.intValue }
            guard flags.count == list.count, flags.count == c.numLayers, flags.allSatisfy({ $0 == 0 || $0 == 1 }) else {
                throw ModelError("\(j.source): invalid config: no_rope_layers must be \(c.numLayers) entries of 0 or 1")
            }
            c.noRopeLayers = flags.map { $0 == 0 }
        } else {
            let interval = j.optInt("no_rope_layer_interval") ?? 4
            guard interval > 0 else { throw ModelError("\(j.source): invalid config: no_rope_layer_interval \(interval)") }
            c.noRopeLayers = (0..<c.numLayers).map { ($0 + 1) % interval == 0 }
        }
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "smollm3")
        // llama.cpp's converter writes SmolLM3 as Llama (Q/K rows permuted for interleaved RoPE), and llama.cpp
        // skips RoPE on every 4th layer, from no key
        c.ropeStyle = .interleaved
        c.noRopeLayers = (0..<c.numLayers).map { ($0 + 1) % 4 == 0 }
        return c
    }
}
