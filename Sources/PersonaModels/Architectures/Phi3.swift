import Foundation

/// Phi-3 (mini / medium, 4k context): the Llama block with the query, key and value projections in one matrix
/// (`qkv_proj`, rows q | k | v) and the gate and up projections in one (`gate_up_proj`, rows gate | up), read as row
/// ranges of the stored tensors (no copy). A sliding window, when the config has one, covers every layer.
/// LongRoPE (the 128k variants, Phi-3.5) and partial rotary (Phi-4-mini) are refused by name.
enum Phi3Architecture: Architecture {
    static let hfModelTypes = ["phi3"]
    static let ggufArchitectures = ["phi3"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "phi3")   // longrope / su scaling is refused by readRope
        try requireSiLU(j)
        c.fusedProjections = true
        if j.optBool("attention_bias") == true { throw ModelError("\(j.source): unsupported attention_bias true for phi3") }
        let partial = ["rope_parameters", "rope_scaling"].lazy.compactMap { (j.optDict($0)?["partial_rotary_factor"] as? NSNumber)?.doubleValue }.first
            ?? j.optDouble("partial_rotary_factor") ?? 1
        guard partial == 1 else {
            throw ModelError("\(j.source): unsupported partial_rotary_factor \(partial) (RoPE on part of each head); only 1 is supported")
        }
        if let w = j.optInt("sliding_window"), w > 0 {
            c.slidingWindow = w
            c.slidingLayers = Array(repeating: true, count: c.numLayers)
        }
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "phi3")
        c.fusedProjections = true
        // llama.cpp reads phi3.attention.sliding_window but runs without it ("Phi SWA is currently disabled"), and
        // keeps LongRoPE in rope_factors_long / rope_factors_short tensors, which we refuse rather than ignore
        if g.file.tensor("rope_factors_long.weight") != nil || g.file.tensor("rope_factors_short.weight") != nil {
            throw ModelError("\(g.source): unsupported LongRoPE (rope_factors_long / rope_factors_short tensors)")
        }
        return c
    }
}
