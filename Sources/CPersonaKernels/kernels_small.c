// Small batches (2 <= T <= 8 inputs, e.g. a decode step of several sequences): each weight row is converted
// once per 8 columns in registers and used for all T inputs, which stay in L1/L2. The tile GEMM instead writes
// converted tiles to memory and reads them back, which costs more than the FMAs until T reaches ~12: on a
// Qwen2.5-0.5B shape (bf16, 2 threads) a step of 2 sequences took 2.3x a single one through the GEMM.
#include "pk_internal.h"
#include "include/kernels_small.h"
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>

#include "pk_x86.h"
#define TS T256
TS static inline __m256 ld_f32(const float *p) { return _mm256_loadu_ps(p); }
static inline float cv_f32(float v) { return v; }

// NT inputs, U independent accumulators per input (U = 2 keeps enough FMA chains in flight when NT is small).
#define SMALL_DENSE(NAME, NT, U, ELEM_T, LOAD, CONV)                                                           \
TS static void NAME(const uint8_t *W, size_t rb, int64_t cols, const float *X, int64_t ldx,                    \
                    float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                           \
    const int64_t step = 8 * U, cv = cols / step * step;                                                       \
    for (int64_t r = r0; r < r1; r++) {                                                                        \
        const ELEM_T *w = (const ELEM_T *)(W + (size_t)r * rb);                                                \
        __m256 acc[NT][U];                                                                                     \
        for (int t = 0; t < NT; t++) for (int u = 0; u < U; u++) acc[t][u] = _mm256_setzero_ps();              \
        for (int64_t c = 0; c < cv; c += step) {                                                               \
            for (int u = 0; u < U; u++) {                                                                      \
                __m256 wv = LOAD(w + c + 8 * u);                                                               \
                for (int t = 0; t < NT; t++)                                                                   \
                    acc[t][u] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(X + t * ldx + c + 8 * u), acc[t][u]);      \
            }                                                                                                  \
        }                                                                                                      \
        for (int t = 0; t < NT; t++) {                                                                         \
            __m256 a = acc[t][0];                                                                              \
            for (int u = 1; u < U; u++) a = _mm256_add_ps(a, acc[t][u]);                                       \
            float s = hsum256(a);                                                                                \
            for (int64_t c = cv; c < cols; c++) s += CONV(w[c]) * X[t * ldx + c];                              \
            Y[t * ldy + r] = s;                                                                                \
        }                                                                                                      \
    }                                                                                                          \
}

// The blocked types, 32 weights (34 / 18 / 20 bytes) a block, converted to 4 vectors of elements 0-7, 8-15, 16-23,
// 24-31 as the GEMM converts them (pk_q8_0_block, pk_q4_*_block: pk_x86.h).

#define SMALL_B32(NAME, NT, U, TYPE, BYTES)                                                                    \
TS static void NAME(const uint8_t *W, size_t rb, int64_t cols, const float *X, int64_t ldx,                    \
                    float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                           \
    const int64_t nb = cols / 32;                                                                              \
    for (int64_t r = r0; r < r1; r++) {                                                                        \
        const uint8_t *p = W + (size_t)r * rb;                                                                 \
        __m256 acc[NT][U];                                                                                     \
        for (int t = 0; t < NT; t++) for (int u = 0; u < U; u++) acc[t][u] = _mm256_setzero_ps();              \
        for (int64_t b = 0; b < nb; b++, p += BYTES) {                                                         \
            __m256 w[4];                                                                                       \
            pk_##TYPE##_block(p, w);                                                                                \
            for (int k = 0; k < 4; k++) {                                                                      \
                const int u = k % U;                                                                           \
                for (int t = 0; t < NT; t++)                                                                   \
                    acc[t][u] = _mm256_fmadd_ps(w[k], _mm256_loadu_ps(X + t * ldx + b * 32 + 8 * k), acc[t][u]); \
            }                                                                                                  \
        }                                                                                                      \
        for (int t = 0; t < NT; t++) {                                                                         \
            __m256 a = acc[t][0];                                                                              \
            for (int u = 1; u < U; u++) a = _mm256_add_ps(a, acc[t][u]);                                       \
            Y[t * ldy + r] = hsum256(a);                                                                       \
        }                                                                                                      \
    }                                                                                                          \
}

#define ALL_T(M, P, ...) M(P##2, 2, 2, __VA_ARGS__) M(P##3, 3, 2, __VA_ARGS__) M(P##4, 4, 2, __VA_ARGS__)     \
    M(P##5, 5, 1, __VA_ARGS__) M(P##6, 6, 1, __VA_ARGS__) M(P##7, 7, 1, __VA_ARGS__) M(P##8, 8, 1, __VA_ARGS__)
ALL_T(SMALL_DENSE, small_f32_, float, ld_f32, cv_f32)
ALL_T(SMALL_DENSE, small_bf16_, uint16_t, bf16x8, pk_bf16_to_f32)
ALL_T(SMALL_DENSE, small_f16_, uint16_t, f16x8, pk_f16_to_f32)
ALL_T(SMALL_B32, small_q8_0_, q8_0, 34)
ALL_T(SMALL_B32, small_q4_0_, q4_0, 18)
ALL_T(SMALL_B32, small_q4_1_, q4_1, 20)

#endif

#if defined(__aarch64__)
#include <arm_neon.h>
// The same loops in 4-float vectors: a dense row 16 columns (4 vectors) a step, a block of 32 as 8 vectors,
// converted as the NEON dequantisation converts them (q4_1: d * q rounded, then + m).
static inline float32x4_t nl_f32(const float *p) { return vld1q_f32(p); }
static inline float32x4_t nl_f16(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline float32x4_t nl_bf16(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
static inline float nc_f32(float v) { return v; }

#define NSMALL_DENSE(NAME, NT, ELEM_T, LOAD, CONV)                                                             \
static void NAME(const uint8_t *W, size_t rb, int64_t cols, const float *X, int64_t ldx,                       \
                 float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                              \
    const int64_t cv = cols / 16 * 16;                                                                         \
    for (int64_t r = r0; r < r1; r++) {                                                                        \
        const ELEM_T *w = (const ELEM_T *)(W + (size_t)r * rb);                                                \
        float32x4_t acc[NT][2];                                                                                \
        for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = vdupq_n_f32(0);                                   \
        for (int64_t c = 0; c < cv; c += 16)                                                                   \
            for (int k = 0; k < 4; k++) {                                                                      \
                const float32x4_t wv = LOAD(w + c + 4 * k);                                                    \
                for (int t = 0; t < NT; t++)                                                                   \
                    acc[t][k & 1] = vfmaq_f32(acc[t][k & 1], wv, vld1q_f32(X + t * ldx + c + 4 * k));          \
            }                                                                                                  \
        for (int t = 0; t < NT; t++) {                                                                         \
            float s = vaddvq_f32(vaddq_f32(acc[t][0], acc[t][1]));                                             \
            for (int64_t c = cv; c < cols; c++) s += CONV(w[c]) * X[t * ldx + c];                              \
            Y[t * ldy + r] = s;                                                                                \
        }                                                                                                      \
    }                                                                                                          \
}

// 32 weights of a block as 8 vectors in element order (q4: low nibbles are elements 0-15, high ones 16-31)
static inline void nb_int8(int8x16_t a, int8x16_t b, float32x4_t d, float32x4_t w[8]) {
    const int16x8_t h[4] = {vmovl_s8(vget_low_s8(a)), vmovl_s8(vget_high_s8(a)), vmovl_s8(vget_low_s8(b)), vmovl_s8(vget_high_s8(b))};
    for (int k = 0; k < 4; k++) {
        w[2 * k] = vmulq_f32(d, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h[k]))));
        w[2 * k + 1] = vmulq_f32(d, vcvtq_f32_s32(vmovl_s16(vget_high_s16(h[k]))));
    }
}
static inline void nb_q8_0(const uint8_t *p, float32x4_t w[8]) {
    nb_int8(vld1q_s8((const int8_t *)(p + 2)), vld1q_s8((const int8_t *)(p + 18)), vdupq_n_f32(pk_f16_at_neon(p)), w);
}
static inline void nb_q4_0(const uint8_t *p, float32x4_t w[8]) {   // d * (q - 8): the difference is exact
    int8x16_t a0, a1;
    pk_legacy_levels_neon(PK_Q4_0, p, &a0, &a1);
    nb_int8(a0, a1, vdupq_n_f32(pk_f16_at_neon(p)), w);
}
static inline void nb_q4_1(const uint8_t *p, float32x4_t w[8]) {
    int8x16_t a0, a1;
    pk_legacy_levels_neon(PK_Q4_1, p, &a0, &a1);   // codes 0..15
    nb_int8(a0, a1, vdupq_n_f32(pk_f16_at_neon(p)), w);
    const float32x4_t m = vdupq_n_f32(pk_f16_at_neon(p + 2));
    for (int k = 0; k < 8; k++) w[k] = vaddq_f32(w[k], m);
}

#define NSMALL_B32(NAME, NT, TYPE, BYTES)                                                                      \
static void NAME(const uint8_t *W, size_t rb, int64_t cols, const float *X, int64_t ldx,                       \
                 float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                              \
    const int64_t nb = cols / 32;                                                                              \
    for (int64_t r = r0; r < r1; r++) {                                                                        \
        const uint8_t *p = W + (size_t)r * rb;                                                                 \
        float32x4_t acc[NT][2];                                                                                \
        for (int t = 0; t < NT; t++) acc[t][0] = acc[t][1] = vdupq_n_f32(0);                                   \
        for (int64_t b = 0; b < nb; b++, p += BYTES) {                                                         \
            float32x4_t w[8];                                                                                  \
            nb_##TYPE(p, w);                                                                                   \
            for (int k = 0; k < 8; k++)                                                                        \
                for (int t = 0; t < NT; t++)                                                                   \
                    acc[t][k & 1] = vfmaq_f32(acc[t][k & 1], w[k], vld1q_f32(X + t * ldx + b * 32 + 4 * k));   \
        }                                                                                                      \
        for (int t = 0; t < NT; t++) Y[t * ldy + r] = vaddvq_f32(vaddq_f32(acc[t][0], acc[t][1]));             \
    }                                                                                                          \
}

#define NALL_T(M, P, ...) M(P##2, 2, __VA_ARGS__) M(P##3, 3, __VA_ARGS__) M(P##4, 4, __VA_ARGS__)              \
    M(P##5, 5, __VA_ARGS__) M(P##6, 6, __VA_ARGS__) M(P##7, 7, __VA_ARGS__) M(P##8, 8, __VA_ARGS__)
NALL_T(NSMALL_DENSE, small_f32_, float, nl_f32, nc_f32)
NALL_T(NSMALL_DENSE, small_bf16_, uint16_t, nl_bf16, pk_bf16_to_f32)
NALL_T(NSMALL_DENSE, small_f16_, uint16_t, nl_f16, pk_f16_to_f32)
NALL_T(NSMALL_B32, small_q8_0_, q8_0, 34)
NALL_T(NSMALL_B32, small_q4_0_, q4_0, 18)
NALL_T(NSMALL_B32, small_q4_1_, q4_1, 20)

#endif

#if defined(__x86_64__) || defined(__aarch64__)
typedef void (*small_fn)(const uint8_t *, size_t, int64_t, const float *, int64_t, float *, int64_t, int64_t, int64_t);
#define SMALL_ROW(P) { P##2, P##3, P##4, P##5, P##6, P##7, P##8 }
static const small_fn small_table[PK_NTYPES][7] = {   // T = 2 ... 8; a type without a row is not handled here
    [PK_F32] = SMALL_ROW(small_f32_), [PK_F16] = SMALL_ROW(small_f16_), [PK_BF16] = SMALL_ROW(small_bf16_),
    [PK_Q8_0] = SMALL_ROW(small_q8_0_), [PK_Q4_0] = SMALL_ROW(small_q4_0_), [PK_Q4_1] = SMALL_ROW(small_q4_1_),
};
#endif

int pk_matmul_rows_small(int dtype, const void *W, int64_t cols, const float *X, int64_t ldx, int64_t T,
                         float *Y, int64_t ldy, int64_t r0, int64_t r1) {
#if defined(__x86_64__) || defined(__aarch64__)
    // q4_0 / q4_1 too (SmolLM2's file: 4 sequences 1.3-1.5x one through the GEMM, whose conversion to memory cost
    // more than its FMAs); the AVX2 and AVX-512 levels both run the 256-bit loops, NEON the 128-bit ones
    if (T < 2 || T > 8 || dtype < 0 || dtype >= PK_NTYPES || !small_table[dtype][0] || r0 >= r1 || cols <= 0) return -1;
    if (cols % pk_block_elements(dtype) != 0) return -1;
    if (strcmp(pk_simd_level(), "scalar") == 0) return -1;
    small_table[dtype][T - 2]((const uint8_t *)W, pk_row_bytes(dtype, cols), cols, X, ldx, Y, ldy, r0, r1);
    return 0;
#else
    (void)dtype; (void)W; (void)cols; (void)X; (void)ldx; (void)T; (void)Y; (void)ldy; (void)r0; (void)r1;
    return -1;
#endif
}
