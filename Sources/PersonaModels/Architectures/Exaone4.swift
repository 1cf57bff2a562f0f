import Foundation

/// EXAONE 4.0 (LG AI Research; 1.2B and 32B): OLMo-2's post norms (what attention and the MLP add is normalised; no
/// pre-norms) with Qwen3's per-head q / k norms. With a sliding window (the 32B), three layers of every four slide
/// and the full-attention ones use no RoPE at all; without one (the 1.2B) every layer turns. llama.cpp reads a window
/// only in a 64-layer exaone4 file (its 32B rule), and so does our GGUF reader.
enum Exaone4Architecture: Architecture {
    static let hfModelTypes = ["exaone4"]
    static let ggufArchitectures = ["exaone4"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try baseConfig(j, architecture: "exaone4")
        try requireSiLU(j)
        c.norms = .post
        c.qkNorm = true
        // layer_types, else sliding_window_pattern: every n-th layer full, or a string such as "LLLG"
        var pattern: (Int) -> Bool = { ($0 + 1) % 4 != 0 }
        if let n = j.optInt("sliding_window_pattern") {
            guard n >= 0 else { throw ModelError("\(j.source): invalid config: sliding_window_pattern \(n)") }
            pattern = { n == 0 ? false : ($0 + 1) % n != 0 }
        } else if let s = j.optString("sliding_window_pattern") {
            let marks = Array(s)
            guard !marks.isEmpty, marks.allSatisfy({ $0 == "L" || $0 == "G" }) else {
                throw ModelError("\(j.source): invalid config: sliding_window_pattern '\(s)' (L and G)")
            }
            pattern = { marks[$0 % marks.count] == "L" }
        }
        Gemma2Architecture.readSlidingLayers(j, into: &c, byDefault: pattern)
        if c.slidingWindow != nil { c.noRopeLayers = c.slidingLayers.map { !$0 } }   // only the sliding layers turn
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        var c = try g.base(architecture: "exaone4")
        c.norms = .post
        c.qkNorm = true
        if c.numLayers == 64 {   // llama.cpp: a window of 4096 unless the file says otherwise, every 4th layer full
            try g.readSlidingWindow(&c, every: 4, defaultBase: c.ropeTheta, defaultWindow: 4096, onlySlidingLayersTurn: true)
        }
        return c
    }
}
