import Foundation
import PersonaFormats

/// Phi-3 / Phi-3.5: the Llama block with the query, key and value projections in one matrix (`qkv_proj`, rows
/// q | k | v) and the gate and up projections in one (`gate_up_proj`, rows gate | up), read as row ranges of the
/// stored tensors (no copy). A sliding window, when the config has one, covers every layer. LongRoPE (Phi-3.5, the
/// 128k variants) runs with its short factors, up to the original context (see `LongRope`). Phi-4-mini turns only
/// the first 3/4 of each head (`partial_rotary_factor`, `ModelConfig.partialRotaryDim`).
enum Phi3Architecture: Architecture {
    static let hfModelTypes = ["phi3"]
    static let ggufArchitectures = ["phi3"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "phi3")   // longrope / su scaling: readRope
        try requireSiLU(j)
        c.fusedProjections = true
        c.fusedGateUp = true
        if j.optBool("attention_bias") == true { throw ModelError("\(j.source): unsupported attention_bias true for phi3") }
        readSlidingWindowOnEveryLayer(j, into: &c)
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "phi3")
        c.fusedProjections = true
        c.fusedGateUp = true
        // llama.cpp reads phi3.attention.sliding_window but runs without it ("Phi SWA is currently disabled")
        // LongRoPE: the factors as tensors, the multiplier and the original context as keys (its converter's layout)
        let (long, short) = (g.file.tensor("rope_factors_long.weight"), g.file.tensor("rope_factors_short.weight"))
        if long != nil || short != nil {
            guard let long, let short else { throw ModelError("\(g.source): LongRoPE needs both rope_factors_long and rope_factors_short") }
            guard let orig = g.optInt("rope.scaling.original_context_length"), orig > 0 else {
                throw ModelError("\(g.source): LongRoPE needs metadata 'phi3.rope.scaling.original_context_length'")
            }
            func factors(_ t: TensorInfo, _ name: String) throws -> [Double] {
                guard t.dtype == .f32, t.shape == [c.ropeDim / 2] else {
                    throw ModelError("\(g.source): tensor '\(name)' must be F32 [\(c.ropeDim / 2)], not \(t.dtype) \(t.shape)")
                }
                return UnsafeBufferPointer(start: t.data.assumingMemoryBound(to: Float.self), count: c.ropeDim / 2).map(Double.init)
            }
            c.longRope = LongRope(shortFactors: try factors(short, "rope_factors_short.weight"),
                                  longFactors: try factors(long, "rope_factors_long.weight"),
                                  attentionFactor: g.optDouble("rope.scaling.attn_factor") ?? 1, originalMaxPositions: orig,
                                  fullMaxPositions: c.maxPositions)
            c.maxPositions = min(c.maxPositions, orig)
        }
        return c
    }
}
