import Foundation

/// Ministral 3 (3B / 8B / 14B, text model of the Hub's Mistral3ForConditionalGeneration folders): Mistral's block with
/// YaRN (factor 16 over 16384 positions) and a Llama-4-style query temperature past the original context
/// (`llama_4_scaling_beta`). GGUF `mistral3` as llama.cpp reads it: Q/K permuted (Llama's converter), the yarn betas
/// and `yarn_log_multiplier` (mscale_all_dim) read, the temperature from `attention.temperature_scale`.
enum Ministral3Architecture: Architecture {
    static let hfModelTypes = ["ministral3"]
    static let ggufArchitectures = ["mistral3"]

    static func config(hf j: JSONConfig) throws -> ModelConfig {
        var c = try MistralArchitecture.config(hf: j)
        c.architecture = "ministral3"
        let rope = j.optDict("rope_parameters") ?? j.optDict("rope_scaling") ?? [:]
        if let beta = (rope["llama_4_scaling_beta"] as? NSNumber)?.doubleValue, beta != 0 {
            guard beta.isFinite, let orig = c.yarn?.originalMaxPositions ?? (rope["original_max_position_embeddings"] as? NSNumber)?.intValue, orig > 0 else {
                throw ModelError("\(j.source): llama_4_scaling_beta needs rope_parameters.original_max_position_embeddings")
            }
            c.queryTemperature = QueryTemperature(beta: beta, originalMaxPositions: orig)
        }
        return c
    }

    static func config(gguf g: GGUFConfig) throws -> ModelConfig {
        // yarn read here, as llama.cpp reads it for mistral3 (the shared reader refuses yarn_* keys llama.cpp ignores)
        var plain = g
        plain.yarnKeysRead = true
        var c = try plain.base(architecture: "ministral3")
        c.ropeStyle = .interleaved   // permuted as Llama's
        if let beta = g.optDouble("attention.temperature_scale"), beta != 0 {
            guard let orig = c.yarn?.originalMaxPositions ?? g.optInt("rope.scaling.original_context_length"), orig > 0 else {
                throw ModelError("\(g.source): \(g.arch).attention.temperature_scale needs \(g.arch).rope.scaling.original_context_length (llama.cpp refuses it too)")
            }
            c.queryTemperature = QueryTemperature(beta: beta, originalMaxPositions: orig)
        }
        return c
    }
}
