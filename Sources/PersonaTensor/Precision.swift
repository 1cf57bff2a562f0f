/// How a matrix product treats its activations.
public enum MatmulPrecision: String, Sendable, CaseIterable {
    /// Activations stay f32 for every weight type: results equal an f32 dot product up to rounding,
    /// which is what the engine's agreement with transformers (f32 compute) relies on. The default.
    case exact
    /// Activations rounded to the weight's own compute type where the CPU has a faster dot product for it,
    /// as llama.cpp does: int8 per 32-value block for q8_0 (VNNI), bf16 for bf16 weights (AVX512-BF16).
    /// Other types, and CPUs without those instructions, compute as `.exact`.
    case native
}
