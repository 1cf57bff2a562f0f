/// How a matrix product treats its activations.
public enum MatmulPrecision: String, Sendable, CaseIterable {
    /// Activations stay f32 for every weight type: results equal an f32 dot product up to rounding,
    /// which is what the engine's agreement with transformers (f32 compute) relies on. The default.
    case exact
    /// Activations rounded to the weight's own compute type where the CPU has a faster dot product for it,
    /// as llama.cpp does: bf16 for bf16 weights (AVX512-BF16); for the quantised types ggml's activation types
    /// (int8 per 32 values: q8_0 for q8_0, q4_0, q5_0, iq4_nl; q8_1, with its block sum, for q4_1, q5_1; q8_K, one
    /// f32 scale per 256 values, for q2_K..q6_K and iq4_xs) with exact integer block sums (VNNI / AVX2).
    /// The IQ1 / IQ2 / IQ3 lattice types take q8_K too, with ggml's integer dot products over their grids.
    /// f16 weights: activations rounded to f16 (nearest even) and multiplied in f32, as ggml's f16 products do on
    /// x86 (F16C; no faster instruction on these CPUs, so this is for agreement, not speed). f32 computes as `.exact`.
    ///
    /// Numerics, the same on every CPU up to the order of f32 sums (CPUs without VNNI / AVX512-BF16 run slower
    /// code with the same rounding): q8_0 - each token's activations are quantised per 32 values exactly as
    /// ggml's `quantize_row_q8_0` (scale d = amax/127 kept as f16, q = round(x/d)), an integer dot per block
    /// times d_w * d_x, summed in f32; the activation error is at most ~0.56 d per value. bf16 - activations
    /// rounded to bf16 (nearest even, relative error <= 2^-8), products exact, summed in f32 (the AVX512-BF16
    /// instruction reads bf16 subnormals, below 2^-126, as zero). So |native - exact| <= sum |w| |x - round(x)|
    /// plus f32 rounding: for bf16, sum |w x| * 2^-8.
    case native
}
