// Native precision of the K-quant family (q2_K, q3_K, q4_K, q5_K, q6_K) and iq4_xs, as llama.cpp computes them:
// each token is quantised to ggml's block_q8_K (per 256 values: f32 d, 256 int8, 16 int16 sums of 16), and a row
// is dotted with ggml_vec_dot_<type>_q8_K's arithmetic: exact integer sums per super-block (sub-block scales and
// mins applied in integers), then f32 d_w * d_x times those sums, accumulated in f32. Every level computes the
// same integers per super-block, reduced to one int32 per super-block before any f32 arithmetic, and then the same
// f32 operations in the same order (no FMA): every level returns identical bits. The lattice types (IQ2_XXS ..
// IQ1_M) use the same prepared tokens; their dot products are in kernels_iq.c beside their block decoders.
//
// Prepared token (pk_native_k_x_stride bytes, a multiple of 64; nb = cols / 256 super-blocks):
//   int8  q[cols]                  at 0            (64-byte aligned when the buffer is; loads are unaligned-safe)
//   float d[nb]                    at cols
//   int16 bsums[nb][16]            at cols + round32(4 nb)   (sum of each 16 q's)
//
// Levels: portable code for all six types (the reference, used at "scalar"); NEON (sdot with the dot-product
// extension, else vmull + vpadal) at "neon"; AVX2 (maddubs / madd) at "avx2" / "avx512"; AVX-512 VNNI (vpdpbusd /
// vpdpwssd, 256-bit vectors: Zen 4 runs 512-bit ones as two halves and the 256-bit streaming loops were faster, see
// kernels_x86.c) at "avx512vnni" / "avx512bf16".
// T == 1 streams the rows once (VNNI q4_K / q5_K: 4 rows at a time in 512-bit vectors, their per-block sums
// reduced together and the f32 epilogue of the 4 rows in one vector, see nk_q45_rows4z; otherwise one row at a
// time); small T > 1 decodes each row's super-blocks once per 4 tokens and keeps a 4-token slice in L1 while a
// group of 4 rows passes over it; larger T decodes tiles of 16 rows (VNNI) or 8 rows (AVX2) and runs every token
// against them (see "T > 1 with VNNI: 16-row tiles" and "T > 1 with AVX2: 8-row tiles").
// q2_K / q3_K (Zen 4, 2 cores shared with other work, one thread, same run): T == 1 (8192 x 2048 and 2048 x 8192)
// portable 2.2 GB/s, AVX2 11.4-11.9 (q2_K) / 12.4-12.8 (q3_K), VNNI 12.9-13.4 / 13.9-14.5; T = 128 (2048 x 2048)
// portable 13 / 10 GOPS, AVX2 72 / 58, VNNI tiles 314 / 308.
//
// iq4_xs: ggml's generic C code multiplies each sub-block sum by the f32 d * (ls - 32); here (as in ggml's SIMD
// code) (ls - 32) is applied in integers and d once per super-block, so all levels share one integer per block.
#include "pk_internal.h"
#include "pk_x86.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

enum { NK_QK = 256 };

static inline int64_t nk_round(int64_t n, int64_t a) { return (n + a - 1) & ~(a - 1); }
static inline int64_t nk_bsum_off(int64_t cols) { return pk_q8k_bsum_off(cols); }

// The lattice types IQ2_XXS .. IQ1_M (their dot products and block decoding are in kernels_iq.c)
#define NK_LAT(dtype) PK_IS_LATTICE(dtype)

static int nk_handles(int dtype) {
    return dtype == PK_Q2_K || dtype == PK_Q3_K || dtype == PK_Q4_K || dtype == PK_Q5_K || dtype == PK_Q6_K ||
           dtype == PK_IQ4_XS || NK_LAT(dtype);
}

size_t pk_native_k_x_stride(int dtype, int64_t cols) {
    if (!nk_handles(dtype) || cols <= 0 || cols % NK_QK) return 0;
    return (size_t)nk_round(nk_bsum_off(cols) + cols / NK_QK * 32, 64);
}

static inline uint16_t nk_rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

// The f32 epilogue of one super-block for the portable and NEON code (the x86 vector code does the same operations
// in the same order): s + (d_w d_x) isum, and for q4_K / q5_K minus (dmin_w d_x) imin. Separate statements, so
// nothing is fused into an FMA and every level returns the same bits.
static inline float nk_fold(float s, const uint8_t *dw, float dx, int isum) {
    const float d = pk_f16_to_f32(nk_rd16(dw)) * dx, p = d * (float)isum;
    return s + p;
}
static inline float nk_fold_min(float s, const uint8_t *w, float dx, int isum, int imin) {
    const float d = pk_f16_to_f32(nk_rd16(w)) * dx;
    const float dmin = pk_f16_to_f32(nk_rd16(w + 2)) * dx;
    const float p = d * (float)isum, pm = dmin * (float)imin;
    s += p;
    return s - pm;
}

// q2_K's epilogue (ggml's generic order): s + (dall isum - dmin summs)
static inline float nk_fold_q2(float s, const uint8_t *w, float dx, int isum, int summs) {
    const float dall = dx * pk_f16_to_f32(nk_rd16(w + 80));
    const float dmin = dx * pk_f16_to_f32(nk_rd16(w + 82));
    const float p = dall * (float)isum, m = dmin * (float)summs;
    return s + (p - m);
}

// MARK: activations -> block_q8_K (ggml's quantize_row_q8_K_ref)

// ggml's nearest_int: adding 1.5 * 2^23 rounds to an integer (ties to even) in the low mantissa bits. Kept as its
// own statement so the compiler cannot fuse the multiply before it into an FMA.
static inline int nk_nearest_int(float v) {
    volatile float t = v + 12582912.f;   // volatile: no contraction with the caller's product, no reassociation
    int32_t i; float tv = t;
    memcpy(&i, &tv, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// An all-zero super-block: d = 0 and zero q and sums (ggml leaves the sums unset; zero is what any use needs).
static inline void nk_zero_block(float *d, int8_t *qb, int16_t *bs, int64_t b) {
    d[b] = 0;
    memset(qb, 0, NK_QK);
    memset(bs + b * 16, 0, 32);
}

static void nk_prepare_scalar(const float *x, int64_t cols, uint8_t *out) {
    const int64_t nb = cols / NK_QK;
    int8_t *q = (int8_t *)out;
    float *d = (float *)(out + cols);
    int16_t *bs = (int16_t *)(out + nk_bsum_off(cols));
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * NK_QK;
        int8_t *qb = q + b * NK_QK;
        // the signed value of the first element of largest magnitude (NaN never compares greater)
        float max = 0, amax = 0;
        for (int j = 0; j < NK_QK; j++) {
            float ax = fabsf(xb[j]);
            if (ax > amax) { amax = ax; max = xb[j]; }
        }
        if (!amax) { nk_zero_block(d, qb, bs, b); continue; }
        const float iscale = -127.f / max;
        for (int j = 0; j < NK_QK; j++) {
            float p = iscale * xb[j];
            int v = nk_nearest_int(p);
            qb[j] = (int8_t)(v < 127 ? v : 127);   // ggml: MIN(127, v) stored to int8
        }
        for (int j = 0; j < 16; j++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += qb[j * 16 + i];
            bs[b * 16 + j] = (int16_t)s;
        }
        d[b] = 1 / iscale;
    }
}

// MARK: portable dot products (one row, one token)

typedef struct { const int8_t *q; const float *d; const int16_t *bs; } nk_tok;
static inline nk_tok nk_token(const uint8_t *xt, int64_t cols) {
    nk_tok t = { (const int8_t *)xt, (const float *)(xt + cols), (const int16_t *)(xt + nk_bsum_off(cols)) };
    return t;
}

// q4_K / q5_K 6-bit scales and mins of the 8 sub-blocks (ggml's get_scale_min_k4)
static inline void nk_scale_min_k4(const uint8_t *s, uint8_t *sc, uint8_t *mn) {
    for (int j = 0; j < 8; j++) pk_scale_min_k4(j, s, sc + j, mn + j);
}

// Portable kernels decode a super-block to 256 int8 weights first (as ggml's generic code does) so that the
// integer dot products below are plain loops the compiler vectorises (SSE2 / NEON).
// t[j] = sum of the 16 products of sub-block j (exact: |t| < 16 * 128 * 128).
static inline void nk_dot16(const int8_t *a, const int8_t *q8, int32_t t[16]) {
    for (int j = 0; j < 16; j++) {
        int32_t s = 0;
        for (int i = 0; i < 16; i++) s += (int32_t)a[16 * j + i] * q8[16 * j + i];
        t[j] = s;
    }
}

// q2_K block: { uint8 scales[16] (low 4 bits scale, high 4 bits min); uint8 qs[64]; f16 d; f16 dmin }:
// value 128 g + 32 k + l is bits 2k of qs[32 g + l]
static float q2k_dot_scalar(const uint8_t *w, nk_tok x, int64_t nb) {
    float s = 0;
    int8_t a[NK_QK];
    int32_t t[16];
    for (int64_t b = 0; b < nb; b++, w += 84) {
        const uint8_t *sc = w, *q2 = w + 16;
        for (int g = 0; g < 2; g++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++) a[128 * g + 32 * k + l] = (int8_t)((q2[32 * g + l] >> (2 * k)) & 3);
        nk_dot16(a, x.q + b * NK_QK, t);
        int summs = 0, isum = 0;
        for (int j = 0; j < 16; j++) { summs += x.bs[b * 16 + j] * (sc[j] >> 4); isum += (sc[j] & 0xF) * t[j]; }
        s = nk_fold_q2(s, w, x.d[b], isum, summs);
    }
    return s;
}

// q3_K block: { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; f16 d }: value 128 g + 32 k + l is bits 2k of
// qs[32 g + l] minus 4 if bit 4g + k of hmask[l] is clear; 16 6-bit scales stored + 32
static float q3k_dot_scalar(const uint8_t *w, nk_tok x, int64_t nb) {
    float s = 0;
    int8_t a[NK_QK];
    int32_t t[16];
    for (int64_t b = 0; b < nb; b++, w += 110) {
        const uint8_t *hm = w, *q3 = w + 32, *sc = w + 96;
        for (int g = 0; g < 2; g++)
            for (int k = 0; k < 4; k++)
                for (int l = 0; l < 32; l++)
                    a[128 * g + 32 * k + l] = (int8_t)(((q3[32 * g + l] >> (2 * k)) & 3) - (((hm[l] >> (4 * g + k)) & 1) ? 0 : 4));
        nk_dot16(a, x.q + b * NK_QK, t);
        int isum = 0;
        for (int j = 0; j < 16; j++) isum += pk_q3k_scale(sc, j) * t[j];
        s = nk_fold(s, w + 108, x.d[b], isum);
    }
    return s;
}

// q4_K block: { f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128] }; q5_K adds uint8 qh[32] before qs (fifth bit of
// sub-block j in bit j). Sub-block j (32 values): nibble j % 2 of qs[32 (j / 2) + l].
static float q45k_dot_scalar(const uint8_t *w, nk_tok x, int64_t nb, int five) {
    const size_t bb = five ? 176 : 144;
    float s = 0;
    int8_t a[NK_QK];
    int32_t t[16];
    for (int64_t b = 0; b < nb; b++, w += bb) {
        const uint8_t *qh = w + 16, *q = w + (five ? 48 : 16);
        for (int jj = 0; jj < 4; jj++)
            for (int l = 0; l < 32; l++) {
                a[64 * jj + l] = (int8_t)(q[32 * jj + l] & 0xF);
                a[64 * jj + 32 + l] = (int8_t)(q[32 * jj + l] >> 4);
            }
        if (five)
            for (int j = 0; j < 8; j++)
                for (int l = 0; l < 32; l++) a[32 * j + l] |= (int8_t)(((qh[l] >> j) & 1) << 4);
        nk_dot16(a, x.q + b * NK_QK, t);
        uint8_t sc[8], mn[8];
        nk_scale_min_k4(w + 4, sc, mn);
        int isum = 0, imin = 0;
        for (int j = 0; j < 16; j++) { imin += x.bs[b * 16 + j] * mn[j / 2]; isum += sc[j / 2] * t[j]; }
        s = nk_fold_min(s, w, x.d[b], isum, imin);
    }
    return s;
}

// q6_K block: { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d }: in half h, value 32 g + l of
// (low nibble (g < 2) or high nibble of ql[64 h + 32 (g % 2) + l]) | (bits 2g of qh[32 h + l]) << 4, minus 32
static float q6k_dot_scalar(const uint8_t *w, nk_tok x, int64_t nb) {
    float s = 0;
    int8_t a[NK_QK];
    int32_t t[16];
    for (int64_t b = 0; b < nb; b++, w += 210) {
        const int8_t *sc = (const int8_t *)(w + 192);
        for (int h = 0; h < 2; h++)
            for (int g = 0; g < 4; g++)
                for (int l = 0; l < 32; l++) {
                    const uint8_t *ql = w + 64 * h, *qh = w + 128 + 32 * h;
                    int lo = (ql[l + 32 * (g & 1)] >> (4 * (g >> 1))) & 0xF;
                    a[128 * h + 32 * g + l] = (int8_t)((lo | ((qh[l] >> (2 * g)) & 3) << 4) - 32);
                }
        nk_dot16(a, x.q + b * NK_QK, t);
        int isum = 0;
        for (int j = 0; j < 16; j++) isum += sc[j] * t[j];
        s = nk_fold(s, w + 208, x.d[b], isum);
    }
    return s;
}

// iq4_xs block: { f16 d; uint16 scales_h; uint8 scales_l[4]; uint8 qs[128] }: sub-block j (32 values) has the
// 6-bit scale ls (minus 32); value e < 16 is the low nibble of qs[16 j + e], e >= 16 the high nibble of qs[16 j + e - 16],
// each an index into the iq4_nl table
static float iq4xs_dot_scalar(const uint8_t *w, nk_tok x, int64_t nb) {
    float s = 0;
    int8_t a[NK_QK];
    int32_t t[16];
    for (int64_t b = 0; b < nb; b++, w += 136) {
        const uint8_t *q = w + 8;
        for (int j = 0; j < 8; j++)
            for (int e = 0; e < 16; e++) {
                a[32 * j + e] = pk_iq4nl_values[q[16 * j + e] & 0xF];
                a[32 * j + e + 16] = pk_iq4nl_values[q[16 * j + e] >> 4];
            }
        nk_dot16(a, x.q + b * NK_QK, t);
        int isum = 0;
        for (int j = 0; j < 8; j++) isum += pk_iq4xs_scale(w, j) * (t[2 * j] + t[2 * j + 1]);
        s = nk_fold(s, w, x.d[b], isum);
    }
    return s;
}

static float nk_dot_scalar(int dtype, const uint8_t *w, nk_tok x, int64_t nb) {
    switch (dtype) {
    case PK_Q2_K: return q2k_dot_scalar(w, x, nb);
    case PK_Q3_K: return q3k_dot_scalar(w, x, nb);
    case PK_Q4_K: return q45k_dot_scalar(w, x, nb, 0);
    case PK_Q5_K: return q45k_dot_scalar(w, x, nb, 1);
    case PK_Q6_K: return q6k_dot_scalar(w, x, nb);
    case PK_IQ4_XS: return iq4xs_dot_scalar(w, x, nb);
    }
    return NAN;
}

static void nk_matmul_scalar(int dtype, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs,
                             int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t nb = cols / NK_QK;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = 0; t < T; t++)
            Y[t * ldy + r] = nk_dot_scalar(dtype, W + (size_t)r * rb, nk_token(xn + (size_t)t * xs, cols), nb);
}

// MARK: x86

#if defined(__x86_64__)
#define TA __attribute__((target("avx2,fma,f16c")))
#define TV __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))

// Two consecutive f16 (d, dmin) times the token's d, as [d d_x, dmin d_x, ...]. A vector conversion from a load:
// _cvtsh_ss would insert into a live register and chain the blocks (see kernels_native.c's scale8).
TA static inline __m128 nk_dd2(const uint8_t *p, const float *dx) {
    int32_t v; memcpy(&v, p, 4);
    return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(v)), _mm_broadcast_ss(dx));
}

// Sum of the 8 int32 lanes (exact: every per-block sum fits in int32, see the bounds above each kernel).
TA static inline int32_t nk_hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

// 8 activations times iscale rounded as nk_nearest_int (the same two f32 operations, then the same bit trick, so
// NaN lanes give what the portable code gives too), capped at 127 as ggml does.
TA static inline __m256i nk_nearest8(__m256 iv, const float *x) {
    const __m256 t = _mm256_add_ps(_mm256_mul_ps(iv, _mm256_loadu_ps(x)), _mm256_set1_ps(12582912.f));
    const __m256i i = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(t), _mm256_set1_epi32(0x007fffff)),
                                       _mm256_set1_epi32(0x00400000));
    return _mm256_min_epi32(i, _mm256_set1_epi32(127));
}

// ggml's quantize_row_q8_K_ref as nk_prepare_scalar computes it, the same bytes: the first element of largest
// magnitude found with vector compares, then 32 values per step. The portable loop (a compare, a branch and a
// rounding per element) was 4-8% of a native decode step and more of a batched one.
TA static void nk_prepare_avx2(const float *x, int64_t cols, uint8_t *out) {
    const int64_t nb = cols / NK_QK;
    int8_t *q = (int8_t *)out;
    float *d = (float *)(out + cols);
    int16_t *bs = (int16_t *)(out + nk_bsum_off(cols));
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * NK_QK;
        int8_t *qb = q + b * NK_QK;
        __m256 mx = _mm256_setzero_ps();
        for (int j = 0; j < NK_QK; j += 8) {   // NaN lanes to 0: the portable compare never takes a NaN
            const __m256 v = _mm256_loadu_ps(xb + j);
            mx = _mm256_max_ps(mx, _mm256_and_ps(_mm256_andnot_ps(sign, v), _mm256_cmp_ps(v, v, _CMP_ORD_Q)));
        }
        const float amax = hmax256(mx);
        if (!amax) { nk_zero_block(d, qb, bs, b); continue; }
        float max = 0;
        const __m256 am = _mm256_set1_ps(amax);
        for (int j = 0; j < NK_QK; j += 8) {
            const int m = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(xb + j)), am, _CMP_EQ_OQ));
            if (m) { max = xb[j + __builtin_ctz((unsigned)m)]; break; }
        }
        const float iscale = -127.f / max;
        const __m256 iv = _mm256_set1_ps(iscale);
        for (int j = 0; j < NK_QK; j += 32) {
            const __m256i i0 = nk_nearest8(iv, xb + j), i1 = nk_nearest8(iv, xb + j + 8);
            const __m256i i2 = nk_nearest8(iv, xb + j + 16), i3 = nk_nearest8(iv, xb + j + 24);
            // every value is in [-127, 127], so the saturating packs keep them
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
            _mm256_storeu_si256((__m256i *)(qb + j), _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
            bs[b * 16 + j / 16] = (int16_t)nk_hsum_i32(_mm256_add_epi32(i0, i1));
            bs[b * 16 + j / 16 + 1] = (int16_t)nk_hsum_i32(_mm256_add_epi32(i2, i3));
        }
        d[b] = 1 / iscale;
    }
}
// f16 at p times the token's d, as the portable code computes it
TA static inline float nk_dmul(const uint8_t *p, const float *dx) {
    return _mm_cvtss_f32(_mm_mul_ss(_mm_cvtph_ps(_mm_cvtsi32_si128(nk_rd16(p))), _mm_load_ss(dx)));
}

// Scale multiply-accumulate: acc + (p16 pairs) * (s16 pairs), int16 products summed in int32 lanes.
TA static inline __m256i nk_sacc_avx2(__m256i acc, __m256i p, __m256i s) { return _mm256_add_epi32(acc, _mm256_madd_epi16(p, s)); }

// Fifth bit of q5_K sub-block `sub` (bit `sub` of each qh byte) moved to 0x10 and or-ed into the nibbles.
TA static inline __m256i nk_q5hi_avx2(__m256i v, __m256i qh, int sub) {
    __m256i h = _mm256_srl_epi16(qh, _mm_cvtsi32_si128(sub));
    return _mm256_or_si256(v, _mm256_and_si256(_mm256_slli_epi16(h, 4), _mm256_set1_epi8(0x10)));
}
TV static inline __m256i nk_q5hi_vnni(__m256i v, __m256i qh, int sub) {
    __mmask32 k = _mm256_test_epi8_mask(qh, _mm256_set1_epi8((char)(1 << sub)));
    return _mm256_mask_add_epi8(v, k, v, _mm256_set1_epi8(0x10));
}
TA static inline __m256i nk_q5hi_none(__m256i v, __m256i qh, int sub) { (void)qh; (void)sub; return v; }

// pshufb masks that broadcast int16 number k of each 128-bit lane to the whole lane
static const uint8_t nk_bcast16[8][32] __attribute__((aligned(32))) = {
#define NK_B(k) { 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, \
                  2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1, 2*k, 2*k+1 }
    NK_B(0), NK_B(1), NK_B(2), NK_B(3), NK_B(4), NK_B(5), NK_B(6), NK_B(7)
#undef NK_B
};
// q6_K: int16 number 2g in the low lane, 2g + 1 in the high lane (the two sub-blocks of 16 of a 32-value group)
static const uint8_t nk_pair16[4][32] __attribute__((aligned(32))) = {
#define NK_P(g) { 4*g, 4*g+1, 4*g, 4*g+1, 4*g, 4*g+1, 4*g, 4*g+1, 4*g, 4*g+1, 4*g, 4*g+1, 4*g, 4*g+1, 4*g, 4*g+1, \
                  4*g+2, 4*g+3, 4*g+2, 4*g+3, 4*g+2, 4*g+3, 4*g+2, 4*g+3, 4*g+2, 4*g+3, 4*g+2, 4*g+3, 4*g+2, 4*g+3, 4*g+2, 4*g+3 }
    NK_P(0), NK_P(1), NK_P(2), NK_P(3)
#undef NK_P
};

// q4_K scales / mins of one block (ggml's kmask arithmetic on the 12 bytes a0 a1 a2, in vector registers: built
// from general registers, the compiler inserted them into the f32 accumulator's register and chained every block
// to the previous one). Bytes 0-7 of the result are the 8 scales, 8-15 the 8 mins:
//   [a0 & 0x3f.., (a2 & 0x0f..) | (a0 >> 6 & 3..) << 4, a1 & 0x3f.., (a2 >> 4 & 0x0f..) | (a1 >> 6 & 3..) << 4]
TA static inline __m128i nk_k4_unpack(const uint8_t *s) {
    const __m128i v = _mm_loadu_si128((const __m128i *)s);   // 12 bytes used; the block's qs follow
    const __m128i lo = _mm_and_si128(_mm_srlv_epi32(_mm_shuffle_epi32(v, 0x98), _mm_setr_epi32(0, 0, 0, 4)),
                                     _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    const __m128i hi = _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(v, 0x50), 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
    return _mm_or_si128(lo, hi);
}

// q4_K / q5_K, one row against one token. Per 32-value sub-block: maddubs (nibble <= 31 times |x| <= 127, pair
// sums < 2^15) then the int16 scale, into int32 lanes; the mins: bsums times the sub-block's min, pairwise.
#define NK_Q45(NAME, TGT, SACC, HI, FIVE)                                                                      \
TGT static float NAME(const uint8_t *w, nk_tok x, int64_t nb) {                                               \
    const size_t bb = FIVE ? 176 : 144;                                                                       \
    const __m256i m4 = _mm256_set1_epi8(0x0F);                                                                \
    float acc = 0;                                                                                            \
    for (int64_t b = 0; b < nb; b++, w += bb) {                                                               \
        const __m128i sm = nk_k4_unpack(w + 4);                                                               \
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));                                \
        const __m256i mn = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));   /* m0 m0 m1 m1 ... m7 m7 */       \
        const __m256i mi = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(x.bs + b * 16)), mn);       \
        const uint8_t *q = w + (FIVE ? 48 : 16);                                                              \
        const int8_t *q8 = x.q + b * NK_QK;                                                                   \
        const __m256i qh = FIVE ? _mm256_loadu_si256((const __m256i *)(w + 16)) : _mm256_setzero_si256();    \
        __m256i s0 = _mm256_setzero_si256(), s1 = s0;                                                         \
        for (int j = 0; j < 4; j++) {                                                                         \
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(q + 32 * j));                             \
            __m256i lo = _mm256_and_si256(qb, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);       \
            lo = HI(lo, qh, 2 * j); hi = HI(hi, qh, 2 * j + 1);                                               \
            const __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j)));   \
            const __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32))); \
            s0 = SACC(s0, pl, _mm256_shuffle_epi8(sc, _mm256_load_si256((const __m256i *)nk_bcast16[2 * j])));   \
            s1 = SACC(s1, ph, _mm256_shuffle_epi8(sc, _mm256_load_si256((const __m256i *)nk_bcast16[2 * j + 1]))); \
        }                                                                                                     \
        /* both sums reduced together: [isum, imin] as f32, times [d d_x, dmin d_x] */                       \
        const __m256i si = _mm256_add_epi32(s0, s1);                                                          \
        __m128i h = _mm_hadd_epi32(_mm_add_epi32(_mm256_castsi256_si128(si), _mm256_extracti128_si256(si, 1)), \
                                   _mm_add_epi32(_mm256_castsi256_si128(mi), _mm256_extracti128_si256(mi, 1))); \
        h = _mm_hadd_epi32(h, h);                                                                             \
        const __m128 t = _mm_mul_ps(_mm_cvtepi32_ps(h), nk_dd2(w, x.d + b));                                  \
        acc += _mm_cvtss_f32(t);                                                                              \
        acc -= _mm_cvtss_f32(_mm_movehdup_ps(t));                                                             \
    }                                                                                                         \
    return acc;                                                                                               \
}
NK_Q45(q4k_dot_avx2, TA, nk_sacc_avx2, nk_q5hi_none, 0)
NK_Q45(q5k_dot_avx2, TA, nk_sacc_avx2, nk_q5hi_avx2, 1)

// q6_K: the 6-bit values unsigned (q + 32 <= 63, so maddubs pair sums < 2^15) with int16 scales per 16 values
// (low 128-bit lane one sub-block, high lane the next), then - 32 * sum(scale * bsum) for the offset.
#define NK_Q6(NAME, TGT, SACC)                                                                                 \
TGT static float NAME(const uint8_t *w, nk_tok x, int64_t nb) {                                               \
    float acc = 0;                                                                                            \
    for (int64_t b = 0; b < nb; b++, w += 210) {                                                              \
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)(w + 192));                                      \
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);                                                       \
        const __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(x.bs + b * 16)), sc16);   \
        const int8_t *q8 = x.q + b * NK_QK;                                                                   \
        __m256i s0 = _mm256_setzero_si256(), s1 = s0;                                                         \
        for (int h = 0; h < 2; h++) {                                                                         \
            const __m256i sch = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16((h ? _mm_srli_si128(sc8, 8) : sc8)));   \
            __m256i u[4];                                                                                     \
            pk_q6_codes_avx2(w, h, u);                                                                        \
            const int8_t *xq = q8 + 128 * h;                                                                  \
            const __m256i p0 = _mm256_maddubs_epi16(u[0], _mm256_loadu_si256((const __m256i *)(xq)));            \
            const __m256i p1 = _mm256_maddubs_epi16(u[1], _mm256_loadu_si256((const __m256i *)(xq + 32)));       \
            const __m256i p2 = _mm256_maddubs_epi16(u[2], _mm256_loadu_si256((const __m256i *)(xq + 64)));       \
            const __m256i p3 = _mm256_maddubs_epi16(u[3], _mm256_loadu_si256((const __m256i *)(xq + 96)));       \
            s0 = SACC(s0, p0, _mm256_shuffle_epi8(sch, _mm256_load_si256((const __m256i *)nk_pair16[0])));    \
            s1 = SACC(s1, p1, _mm256_shuffle_epi8(sch, _mm256_load_si256((const __m256i *)nk_pair16[1])));    \
            s0 = SACC(s0, p2, _mm256_shuffle_epi8(sch, _mm256_load_si256((const __m256i *)nk_pair16[2])));    \
            s1 = SACC(s1, p3, _mm256_shuffle_epi8(sch, _mm256_load_si256((const __m256i *)nk_pair16[3])));    \
        }                                                                                                     \
        const __m256i isum = _mm256_sub_epi32(_mm256_add_epi32(s0, s1), _mm256_slli_epi32(off, 5));           \
        const float p = nk_dmul(w + 208, x.d + b) * (float)nk_hsum_i32(isum);                                 \
        acc += p;   /* its own statement: never contracted into an FMA, as in the portable code */           \
    }                                                                                                         \
    return acc;                                                                                               \
}
NK_Q6(q6k_dot_avx2, TA, nk_sacc_avx2)

// VNNI, q4_K / q5_K / q6_K: vpdpbusd gives, per 32 values, 8 int32 lanes of 4 products each; with unsigned
// weights <= 63 and |x| <= 127 a lane is below 4 * 63 * 127 < 2^15, so packssdw packs two such results to int16
// exactly and one vpdpwssd applies both sub-blocks' scales (about half the work of maddubs + madd per 32 values).
// packssdw interleaves per 128-bit lane: int16 0-3 from the first, 4-7 from the second. nk_pack16[k] gives the
// matching scale vector from 8 int16 scales in both lanes: number (2k, 2k + 1) of q4_K's sub-blocks for the pair
// (2k, 2k + 1); q6_K uses nk_pack6 (below).
static const uint8_t nk_pack16[4][32] __attribute__((aligned(32))) = {
#define NK_Q(k) { 4*k, 4*k+1, 4*k, 4*k+1, 4*k, 4*k+1, 4*k, 4*k+1, 4*k+2, 4*k+3, 4*k+2, 4*k+3, 4*k+2, 4*k+3, 4*k+2, 4*k+3, \
                  4*k, 4*k+1, 4*k, 4*k+1, 4*k, 4*k+1, 4*k, 4*k+1, 4*k+2, 4*k+3, 4*k+2, 4*k+3, 4*k+2, 4*k+3, 4*k+2, 4*k+3 }
    NK_Q(0), NK_Q(1), NK_Q(2), NK_Q(3)
#undef NK_Q
};

// Up to NK_MT tokens per pass over a row (prefill): the weights of a super-block are decoded once into registers
// and every token runs against them; each token's f32 arithmetic is the single-token sequence, so the bits do not
// depend on T. `nt` is a constant in every inlined copy (see NK_MT_ENTRY).
#define NK_MT 4
#define NK_INL __attribute__((always_inline)) inline

// [sum of si's lanes, sum of mi's lanes, same, same] as floats (exact int32 sums, converted as the portable
// code's (float) casts round them)
TA static inline __m128 nk_sums2(__m256i si, __m256i mi) {
    __m128i h = _mm_hadd_epi32(_mm_add_epi32(_mm256_castsi256_si128(si), _mm256_extracti128_si256(si, 1)),
                               _mm_add_epi32(_mm256_castsi256_si128(mi), _mm256_extracti128_si256(mi, 1)));
    return _mm_cvtepi32_ps(_mm_hadd_epi32(h, h));
}

// the per-token tail of q4_K / q5_K: integer sums reduced, times [d d_x, dmin d_x], added to acc in order
TV static NK_INL float nk_q45_finish(float acc, __m256i si, __m256i mi, __m128 dw, const float *dx) {
    const __m128 t = _mm_mul_ps(nk_sums2(si, mi), _mm_mul_ps(dw, _mm_broadcast_ss(dx)));
    acc += _mm_cvtss_f32(t);
    acc -= _mm_cvtss_f32(_mm_movehdup_ps(t));
    return acc;
}

TV static NK_INL void nk_q45_vnni(const uint8_t *w, const nk_tok *x, const int nt, int64_t nb, float *out, const int five) {
    const size_t bb = five ? 176 : 144;
    const __m256i m4 = _mm256_set1_epi8(0x0F), z = _mm256_setzero_si256();
    float acc[NK_MT] = {0};
    for (int64_t b = 0; b < nb; b++, w += bb) {
        const __m128i sm = nk_k4_unpack(w + 4);
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
        const __m256i mn = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));   // m0 m0 m1 m1 ... m7 m7
        const uint8_t *q = w + (five ? 48 : 16);
        const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(w + 16)) : z;
        __m256i lo[4], hi[4], sv[4];
        for (int j = 0; j < 4; j++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(q + 32 * j));
            lo[j] = _mm256_and_si256(qb, m4);
            hi[j] = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
            if (five) { lo[j] = nk_q5hi_vnni(lo[j], qh, 2 * j); hi[j] = nk_q5hi_vnni(hi[j], qh, 2 * j + 1); }
            sv[j] = _mm256_shuffle_epi8(sc, _mm256_load_si256((const __m256i *)nk_pack16[j]));
        }
        int32_t dm; memcpy(&dm, w, 4);
        const __m128 dw = _mm_cvtph_ps(_mm_cvtsi32_si128(dm));   // [d, dmin]
        for (int k = 0; k < nt; k++) {
            const int8_t *q8 = x[k].q + b * NK_QK;
            const __m256i mi = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(x[k].bs + b * 16)), mn);
            __m256i s0 = z, s1 = z;
            for (int j = 0; j < 4; j++) {
                const __m256i rl = _mm256_dpbusd_epi32(z, lo[j], _mm256_loadu_si256((const __m256i *)(q8 + 64 * j)));
                const __m256i rh = _mm256_dpbusd_epi32(z, hi[j], _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32)));
                if (j & 1) s1 = _mm256_dpwssd_epi32(s1, _mm256_packs_epi32(rl, rh), sv[j]);
                else s0 = _mm256_dpwssd_epi32(s0, _mm256_packs_epi32(rl, rh), sv[j]);
            }
            acc[k] = nk_q45_finish(acc[k], _mm256_add_epi32(s0, s1), mi, dw, x[k].d + b);
        }
    }
    for (int k = 0; k < nt; k++) out[k] = acc[k];
}

// One entry per kernel: nt dispatched to constant-nt inlined copies.
#define NK_MT_ENTRY(NAME, BODY, ...)                                                                           \
TV static void NAME(const uint8_t *w, const nk_tok *x, int nt, int64_t nb, float *out) {                      \
    switch (nt) {                                                                                             \
    case 1: BODY(w, x, 1, nb, out, ##__VA_ARGS__); break;                                                     \
    case 2: BODY(w, x, 2, nb, out, ##__VA_ARGS__); break;                                                     \
    case 3: BODY(w, x, 3, nb, out, ##__VA_ARGS__); break;                                                     \
    default: BODY(w, x, 4, nb, out, ##__VA_ARGS__); break;                                                    \
    }                                                                                                         \
}
// zmm variant: activations re-laid per call (xr, see nk_relayout) so that the low nibbles of 64 bytes of qs
// (sub-blocks 4k, 4k + 2) and the high nibbles (4k + 1, 4k + 3) each meet one contiguous 64-byte load.
static const uint16_t nk_zsc_idx[2][32] __attribute__((aligned(64))) = {
#define NK_Z(k) { 4*k, 4*k, 4*k, 4*k, 4*k+1, 4*k+1, 4*k+1, 4*k+1, 4*k, 4*k, 4*k, 4*k, 4*k+1, 4*k+1, 4*k+1, 4*k+1, \
                  4*k+2, 4*k+2, 4*k+2, 4*k+2, 4*k+3, 4*k+3, 4*k+3, 4*k+3, 4*k+2, 4*k+2, 4*k+2, 4*k+2, 4*k+3, 4*k+3, 4*k+3, 4*k+3 }
    NK_Z(0), NK_Z(1)
#undef NK_Z
};
// q4_K scales / mins of two blocks at once (nk_k4_unpack per 128-bit lane)
TV static inline __m256i nk_k4_unpack2(const uint8_t *s0, const uint8_t *s1) {
    const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)s0)),
                                              _mm_loadu_si128((const __m128i *)s1), 1);
    const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_shuffle_epi32(v, 0x98), _mm256_setr_epi32(0, 0, 0, 4, 0, 0, 0, 4)),
                                        _mm256_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi32(_mm256_shuffle_epi32(v, 0x50), 2),
                                        _mm256_setr_epi32(0, 0x30303030, 0, 0x30303030, 0, 0x30303030, 0, 0x30303030));
    return _mm256_or_si256(lo, hi);
}
static const uint16_t nk_zmn_idx2[32] __attribute__((aligned(64))) = {
    8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15, 24, 24, 25, 25, 26, 26, 27, 27, 28, 28, 29, 29, 30, 30, 31, 31 };
// one row's block against the re-laid token: the scaled sums in 16 int32 lanes
TV static NK_INL __m512i nk_q45_zrow(const uint8_t *wr, const int8_t *q8, __m512i sm16, __m512i i0, __m512i i1, const int five) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), z = _mm512_setzero_si512();
    const uint8_t *q = wr + (five ? 48 : 16);
    __m512i qh = z;
    if (five) qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(wr + 16)));
    __m512i s = z;
    for (int k = 0; k < 2; k++) {
        const __m512i qb = _mm512_loadu_si512(q + 64 * k);
        __m512i lo = _mm512_and_si512(qb, m4), hi = _mm512_and_si512(_mm512_srli_epi16(qb, 4), m4);
        if (five) {
            const int bl = 4 * k;
            const __m512i tl = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << bl)), _mm256_set1_epi8((char)(1 << (bl + 2))), 1);
            const __m512i th = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (bl + 1))), _mm256_set1_epi8((char)(1 << (bl + 3))), 1);
            lo = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(qh, tl), lo, _mm512_set1_epi8(0x10));
            hi = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(qh, th), hi, _mm512_set1_epi8(0x10));
        }
        const __m512i rl = _mm512_dpbusd_epi32(z, lo, _mm512_loadu_si512(q8 + 128 * k));
        const __m512i rh = _mm512_dpbusd_epi32(z, hi, _mm512_loadu_si512(q8 + 128 * k + 64));
        s = _mm512_dpwssd_epi32(s, _mm512_packs_epi32(rl, rh), _mm512_permutexvar_epi16(k ? i1 : i0, sm16));
    }
    return s;
}
TV static NK_INL void nk_q45_rows4z(const uint8_t *w, size_t rb, const int8_t *xr, const nk_tok *x, int64_t nb, float *out, const int five) {
    const size_t bb = five ? 176 : 144;
    const __m512i si0 = _mm512_load_si512(nk_zsc_idx[0]), si1 = _mm512_load_si512(nk_zsc_idx[1]);
    const __m512i sj0 = _mm512_add_epi16(si0, _mm512_set1_epi16(16)), sj1 = _mm512_add_epi16(si1, _mm512_set1_epi16(16));
    const __m512i mni = _mm512_load_si512(nk_zmn_idx2);
    __m256 acc = _mm256_setzero_ps();
    // the 4 rows are 4 short streams the hardware prefetchers hardly follow: the next group (the next 4 rb bytes)
    // is prefetched in address order, 4 bb bytes per block
    // (into L1 while the group is small, else into L2: 4 rb bytes ahead would push the current rows out of L1)
    const uint8_t *pf = w + 4 * rb;
    const int l1 = 4 * rb <= 8192;
    for (int64_t b = 0; b < nb; b++, w += bb, pf += 4 * bb) {
        if (l1) for (int i = 0; i < (int)(4 * bb); i += 64) _mm_prefetch((const char *)(pf + i), _MM_HINT_T0);
        else for (int i = 0; i < (int)(4 * bb); i += 64) _mm_prefetch((const char *)(pf + i), _MM_HINT_T1);
        const int8_t *q8 = xr + b * NK_QK;
        const __m512i bs = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->bs + b * 16)));
        __m512i L[2];
        for (int p = 0; p < 2; p++) {
            const uint8_t *wa = w + (2 * p) * rb, *wb = wa + rb;
            const __m512i sm16 = _mm512_cvtepu8_epi16(nk_k4_unpack2(wa + 4, wb + 4));   // [sA mA | sB mB] int16
            const __m512i M = _mm512_madd_epi16(bs, _mm512_permutexvar_epi16(mni, sm16));
            const __m512i SA = nk_q45_zrow(wa, q8, sm16, si0, si1, five), SB = nk_q45_zrow(wb, q8, sm16, sj0, sj1, five);
            const __m512i S = _mm512_add_epi32(_mm512_mask_blend_epi32(0xFF00, SA, SB), _mm512_shuffle_i64x2(SA, SB, 0x4E));
            const __m512i X = _mm512_mask_blend_epi32(0xAAAA, S, M), Y = _mm512_mask_blend_epi32(0xAAAA, M, S);
            L[p] = _mm512_add_epi32(X, _mm512_shuffle_epi32(Y, 0xB1));   // [S M S M] partial per 128 bits
        }
        const __m512i X2 = _mm512_mask_blend_epi32(0xCCCC, L[0], L[1]), Y2 = _mm512_mask_blend_epi32(0xCCCC, L[1], L[0]);
        const __m512i L2 = _mm512_add_epi32(X2, _mm512_shuffle_epi32(Y2, 0x4E));   // 128-bit lanes: [SA MA SC MC] x2, [SB MB SD MD] x2
        const __m512i H = _mm512_shuffle_i64x2(L2, L2, 0xD8);
        const __m256i R = _mm256_add_epi32(_mm512_castsi512_si256(H), _mm512_extracti64x4_epi64(H, 1));
        int32_t d4[4];
        for (int r = 0; r < 4; r++) memcpy(&d4[r], w + r * rb, 4);   // f16 d, dmin of each row
        const __m128i dA = _mm_cvtsi32_si128(d4[0]), dB = _mm_cvtsi32_si128(d4[1]);
        const __m128i dC = _mm_cvtsi32_si128(d4[2]), dD = _mm_cvtsi32_si128(d4[3]);
        const __m128i dw16 = _mm_unpacklo_epi64(_mm_unpacklo_epi32(dA, dC), _mm_unpacklo_epi32(dB, dD));
        const __m256 dw = _mm256_mul_ps(_mm256_cvtph_ps(dw16), _mm256_broadcast_ss(x->d + b));
        const __m256 t = _mm256_mul_ps(_mm256_cvtepi32_ps(R), dw);
        acc = _mm256_mask_add_ps(acc, 0x55, acc, t);
        acc = _mm256_mask_sub_ps(acc, 0x55, acc, _mm256_movehdup_ps(t));
    }
    float a[8];
    _mm256_storeu_ps(a, acc);
    out[0] = a[0]; out[1] = a[4]; out[2] = a[2]; out[3] = a[6];
}
static void nk_relayout(const int8_t *q, int64_t cols, int8_t *xr) {
    for (int64_t o = 0; o < cols; o += 128) {
        memcpy(xr + o, q + o, 32); memcpy(xr + o + 32, q + o + 64, 32);
        memcpy(xr + o + 64, q + o + 32, 32); memcpy(xr + o + 96, q + o + 96, 32);
    }
}
TV static void q4k_rows4z_vnni(const uint8_t *w, size_t rb, const int8_t *xr, const nk_tok *x, int64_t nb, float *out) { nk_q45_rows4z(w, rb, xr, x, nb, out, 0); }
TV static void q5k_rows4z_vnni(const uint8_t *w, size_t rb, const int8_t *xr, const nk_tok *x, int64_t nb, float *out) { nk_q45_rows4z(w, rb, xr, x, nb, out, 1); }

NK_MT_ENTRY(q4k_mt_vnni, nk_q45_vnni, 0)
NK_MT_ENTRY(q5k_mt_vnni, nk_q45_vnni, 1)

// q6_K pairs groups (g, g + 1) of 32 values: lanes 0-3 of a group are its first sub-block of 16, lanes 4-7 the
// second, so after packssdw the low 128 bits want scales (2g, 2g + 2), the high ones (2g + 1, 2g + 3).
static const uint8_t nk_pack6[2][32] __attribute__((aligned(32))) = {
#define NK_S(g) { 4*g, 4*g+1, 4*g, 4*g+1, 4*g, 4*g+1, 4*g, 4*g+1, 4*g+4, 4*g+5, 4*g+4, 4*g+5, 4*g+4, 4*g+5, 4*g+4, 4*g+5, \
                  4*g+2, 4*g+3, 4*g+2, 4*g+3, 4*g+2, 4*g+3, 4*g+2, 4*g+3, 4*g+6, 4*g+7, 4*g+6, 4*g+7, 4*g+6, 4*g+7, 4*g+6, 4*g+7 }
    NK_S(0), NK_S(2)
#undef NK_S
};

TV static NK_INL void nk_q6_vnni(const uint8_t *w, const nk_tok *x, const int nt, int64_t nb, float *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30), z = _mm256_setzero_si256();
    float acc[NK_MT] = {0};
    for (int64_t b = 0; b < nb; b++, w += 210) {
        const __m128i sc8 = _mm_loadu_si128((const __m128i *)(w + 192));
        const __m256i sc16 = _mm256_cvtepi8_epi16(sc8);
        __m256i u[8], sv[4];
        for (int h = 0; h < 2; h++) {
            const __m256i sch = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(h ? _mm_srli_si128(sc8, 8) : sc8));
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(w + 64 * h));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(w + 64 * h + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * h));
            // (low nibble & 0x0F) | (2 bits at 0x30): one vpternlogd each (select by the 0x0F mask)
            u[4 * h + 0] = _mm256_ternarylogic_epi32(l0, _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30), m4, 0xE4);
            u[4 * h + 1] = _mm256_ternarylogic_epi32(l1, _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30), m4, 0xE4);
            u[4 * h + 2] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(l0, 4), _mm256_and_si256(qh, m30), m4, 0xE4);
            u[4 * h + 3] = _mm256_ternarylogic_epi32(_mm256_srli_epi16(l1, 4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30), m4, 0xE4);
            sv[2 * h + 0] = _mm256_shuffle_epi8(sch, _mm256_load_si256((const __m256i *)nk_pack6[0]));
            sv[2 * h + 1] = _mm256_shuffle_epi8(sch, _mm256_load_si256((const __m256i *)nk_pack6[1]));
        }
        const float dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(nk_rd16(w + 208))));
        for (int k = 0; k < nt; k++) {
            const int8_t *q8 = x[k].q + b * NK_QK;
            const __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(x[k].bs + b * 16)), sc16);
            __m256i s0 = z, s1 = z;
            for (int g = 0; g < 8; g += 2) {
                const __m256i r0 = _mm256_dpbusd_epi32(z, u[g], _mm256_loadu_si256((const __m256i *)(q8 + 32 * g)));
                const __m256i r1 = _mm256_dpbusd_epi32(z, u[g + 1], _mm256_loadu_si256((const __m256i *)(q8 + 32 * g + 32)));
                if (g & 2) s1 = _mm256_dpwssd_epi32(s1, _mm256_packs_epi32(r0, r1), sv[g / 2]);
                else s0 = _mm256_dpwssd_epi32(s0, _mm256_packs_epi32(r0, r1), sv[g / 2]);
            }
            const __m256i isum = _mm256_sub_epi32(_mm256_add_epi32(s0, s1), _mm256_slli_epi32(off, 5));
            const float d = dw * x[k].d[b], p = d * (float)nk_hsum_i32(isum);
            acc[k] += p;
        }
    }
    for (int k = 0; k < nt; k++) out[k] = acc[k];
}
NK_MT_ENTRY(q6k_mt_vnni, nk_q6_vnni)

// iq4_xs scales (ls - 32) of the 8 sub-blocks as int32 lanes: nibble j of scales_l | bits 2j, 2j+1 of scales_h << 4
TA static inline __m256i nk_iq4xs_scales(const uint8_t *w) {
    int32_t l, h;
    memcpy(&l, w + 4, 4);
    memcpy(&h, w, 4);   // d | scales_h << 16
    const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(l), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                        _mm256_set1_epi32(0xF));
    const __m256i hi = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(h), _mm256_setr_epi32(16, 18, 20, 22, 24, 26, 28, 30)),
                                        _mm256_set1_epi32(3));
    return _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), _mm256_set1_epi32(32));
}

// iq4_xs, AVX2: 32 bytes of qs are two sub-blocks (one per 128-bit lane); the tokens' values are regrouped to match
// (low nibbles: values 0-15 of each sub-block, high nibbles: 16-31). Signed table values times x through ggml's
// sign trick (|v| <= 127: maddubs pair sums <= 2 * 127 * 127 < 2^15), then the int16 scales per lane.
TA static float iq4xs_dot_avx2(const uint8_t *w, nk_tok x, int64_t nb) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pk_iq4nl_values));
    float acc = 0;
    for (int64_t b = 0; b < nb; b++, w += 136) {
        // int16 scales: lane j of sv holds (s_j, s_j); perm picks j for the low 128 bits, j + 1 for the high ones
        const __m256i s32 = nk_iq4xs_scales(w);
        const __m256i sp = _mm256_or_si256(_mm256_and_si256(s32, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(s32, 16));
        const int8_t *q8 = x.q + b * NK_QK;
        __m256i s0 = _mm256_setzero_si256(), s1 = s0;
        for (int j = 0; j < 8; j += 2) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(w + 8 + 16 * j));
            const __m256i x0 = _mm256_loadu_si256((const __m256i *)(q8 + 32 * j));
            const __m256i x1 = _mm256_loadu_si256((const __m256i *)(q8 + 32 * j + 32));
            const __m256i xl = _mm256_permute2x128_si256(x0, x1, 0x20), xh = _mm256_permute2x128_si256(x0, x1, 0x31);
            const __m256i vl = _mm256_shuffle_epi8(tbl, _mm256_and_si256(qb, m4));
            const __m256i vh = _mm256_shuffle_epi8(tbl, _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4));
            const __m256i pl = _mm256_maddubs_epi16(_mm256_sign_epi8(vl, vl), _mm256_sign_epi8(xl, vl));
            const __m256i ph = _mm256_maddubs_epi16(_mm256_sign_epi8(vh, vh), _mm256_sign_epi8(xh, vh));
            const __m256i sv = _mm256_permutevar8x32_epi32(sp, _mm256_setr_epi32(j, j, j, j, j + 1, j + 1, j + 1, j + 1));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(pl, sv));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(ph, sv));
        }
        const float p = nk_dmul(w, x.d + b) * (float)nk_hsum_i32(_mm256_add_epi32(s0, s1));
        acc += p;
    }
    return acc;
}

// iq4_xs, VNNI: table values + 128 (unsigned, <= 241) straight into vpdpbusd (two sub-blocks per 32 bytes, one per
// lane), the lane sums times the int32 scale, and the offset taken back as -128 * sum(scale * bsums).
TV static NK_INL void nk_iq4xs_vnni(const uint8_t *w, const nk_tok *x, const int nt, int64_t nb, float *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), z = _mm256_setzero_si256();
    const __m256i tbl = _mm256_xor_si256(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pk_iq4nl_values)),
                                         _mm256_set1_epi8((char)0x80));
    float acc[NK_MT] = {0};
    for (int64_t b = 0; b < nb; b++, w += 136) {
        const __m256i s32 = nk_iq4xs_scales(w);
        // offset: sub-block j's two bsums times s[j] (int16 pairs (s, s) in lane j)
        const __m256i s2 = _mm256_or_si256(_mm256_and_si256(s32, _mm256_set1_epi32(0xFFFF)), _mm256_slli_epi32(s32, 16));
        __m256i vl[4], vh[4], sv[4];
        for (int j = 0; j < 4; j++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(w + 8 + 32 * j));
            vl[j] = _mm256_shuffle_epi8(tbl, _mm256_and_si256(qb, m4));
            vh[j] = _mm256_shuffle_epi8(tbl, _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4));
            sv[j] = _mm256_permutevar8x32_epi32(s32, _mm256_setr_epi32(2 * j, 2 * j, 2 * j, 2 * j, 2 * j + 1, 2 * j + 1, 2 * j + 1, 2 * j + 1));
        }
        const float dw = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(nk_rd16(w))));
        for (int k = 0; k < nt; k++) {
            const int8_t *q8 = x[k].q + b * NK_QK;
            const __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(x[k].bs + b * 16)), s2);
            __m256i s0 = _mm256_sub_epi32(z, _mm256_slli_epi32(off, 7)), s1 = z;
            for (int j = 0; j < 4; j++) {
                const __m256i x0 = _mm256_loadu_si256((const __m256i *)(q8 + 64 * j));
                const __m256i x1 = _mm256_loadu_si256((const __m256i *)(q8 + 64 * j + 32));
                const __m256i xl = _mm256_permute2x128_si256(x0, x1, 0x20), xh = _mm256_permute2x128_si256(x0, x1, 0x31);
                const __m256i r = _mm256_dpbusd_epi32(_mm256_dpbusd_epi32(z, vl[j], xl), vh[j], xh);
                if (j & 1) s1 = _mm256_add_epi32(s1, _mm256_mullo_epi32(r, sv[j]));
                else s0 = _mm256_add_epi32(s0, _mm256_mullo_epi32(r, sv[j]));
            }
            const float d = dw * x[k].d[b], p = d * (float)nk_hsum_i32(_mm256_add_epi32(s0, s1));
            acc[k] += p;
        }
    }
    for (int k = 0; k < nt; k++) out[k] = acc[k];
}
NK_MT_ENTRY(iq4xs_mt_vnni, nk_iq4xs_vnni)

// q2_K / q3_K: 32 bytes of qs (half g) hold 4 groups of 32 values (bits 2k: values 128 g + 32 k ..), each group two
// sub-blocks of 16 (one per 128-bit lane). q3_K's values v = q - 4 (high bit clear) go in as u = q | h << 2 = v + 4
// (unsigned, <= 7) and 4 * sum(scale * bsums) is taken back, as q6_K's offset: the same integers per super-block.
// AVX2: maddubs (u <= 7, |x| <= 128: pair sums < 2^15), then the sub-block's int16 scale (nk_pair16 per group).
// 16 int8 scales of q3_K (6 bits, minus 32): low nibbles of bytes 0-7, then their high nibbles; bits 2 (j / 4) of
// byte 8 + j % 4 on top (only the block's 12 scale bytes are read: the last block of a row may end after them)
TA static inline __m128i nk_q3_scales(const uint8_t *s) {
    const __m128i a = _mm_loadl_epi64((const __m128i *)s);
    int32_t c; memcpy(&c, s + 8, 4);
    const __m128i lo = _mm_and_si128(_mm_unpacklo_epi64(a, _mm_srli_epi16(a, 4)), _mm_set1_epi8(0x0F));
    const __m128i hi = _mm_and_si128(_mm_slli_epi32(_mm_srlv_epi32(_mm_set1_epi32(c), _mm_setr_epi32(0, 2, 4, 6)), 4),
                                     _mm_set1_epi8(0x30));
    return _mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32));
}
// q2_K: 16 scales (low nibbles) and mins (high nibbles) as int16
TA static inline void nk_q2_scales(const uint8_t *s, __m256i *sc, __m256i *mn) {
    const __m128i v = _mm_loadu_si128((const __m128i *)s), m4 = _mm_set1_epi8(0x0F);
    *sc = _mm256_cvtepu8_epi16(_mm_and_si128(v, m4));
    *mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(v, 4), m4));
}
// q3_K's high bit (bit `bit` of hm) moved to 0x04 (within the byte: 2 <= bit + ... <= 7)
TA static inline __m256i nk_q3hi_avx2(__m256i hm, int bit) {
    const __m256i h = bit >= 2 ? _mm256_srl_epi16(hm, _mm_cvtsi32_si128(bit - 2)) : _mm256_sll_epi16(hm, _mm_cvtsi32_si128(2 - bit));
    return _mm256_and_si256(h, _mm256_set1_epi8(4));
}
// codes of q2_K / q3_K field group (g, k) from its 32 qs bytes qb (and q3_K's hmask hm): (qb >> 2k) & 3, plus
// q3_K's high bit at 0x04 (v + 4)
TA static inline __m256i nk_q23_codes_avx2(__m256i qb, __m256i hm, int g, int k, int three) {
    const __m256i u = _mm256_and_si256(k ? _mm256_srli_epi16(qb, 2 * k) : qb, _mm256_set1_epi8(3));
    return three ? _mm256_or_si256(u, nk_q3hi_avx2(hm, 4 * g + k)) : u;
}
// the q2_K tail: [isum, summs] reduced, times [d d_x, dmin d_x], then s + (p - m) as the portable code
TA static inline float nk_q2_finish(float acc, __m256i si, __m256i mi, __m128 dd) {
    const __m128 t = _mm_mul_ps(nk_sums2(si, mi), dd);
    const float p = _mm_cvtss_f32(t), m = _mm_cvtss_f32(_mm_movehdup_ps(t));
    return acc + (p - m);
}

// One q2_K / q3_K super-block against q8 / bs: the lane sums si (q3_K: the offset already taken back) and, for
// q2_K, the mins' lane sums mi.
TA static NK_INL void nk_q23_ints_avx2(const uint8_t *w, const int8_t *q8, const int16_t *bsp, const int three,
                                       __m256i *si, __m256i *mi) {
    const __m256i z = _mm256_setzero_si256();
    __m256i sc, mn = z, hm = z;
    if (three) { sc = _mm256_cvtepi8_epi16(nk_q3_scales(w + 96)); hm = _mm256_loadu_si256((const __m256i *)w); }
    else nk_q2_scales(w, &sc, &mn);
    const __m256i bs = _mm256_loadu_si256((const __m256i *)bsp);
    __m256i s0 = z, s1 = z;
    for (int g = 0; g < 2; g++) {
        const __m256i sch = (g ? _mm256_permute4x64_epi64(sc, 0xEE) : _mm256_permute4x64_epi64(sc, 0x44));   // scales 8 g .. 8 g + 7, both lanes
        const __m256i qb = _mm256_loadu_si256((const __m256i *)(w + (three ? 32 : 16) + 32 * g));
        for (int k = 0; k < 4; k++) {
            const __m256i p = _mm256_maddubs_epi16(nk_q23_codes_avx2(qb, hm, g, k, three), _mm256_loadu_si256((const __m256i *)(q8 + 128 * g + 32 * k)));
            const __m256i sv = _mm256_shuffle_epi8(sch, _mm256_load_si256((const __m256i *)nk_pair16[k]));
            if (k & 1) s1 = nk_sacc_avx2(s1, p, sv);
            else s0 = nk_sacc_avx2(s0, p, sv);
        }
    }
    if (three) {   // minus 4 * sum(scale * bsums): the + 4 the unsigned values carry
        *si = _mm256_sub_epi32(_mm256_add_epi32(s0, s1), _mm256_slli_epi32(_mm256_madd_epi16(bs, sc), 2));
        *mi = z;
    } else {
        *si = _mm256_add_epi32(s0, s1);
        *mi = _mm256_madd_epi16(bs, mn);
    }
}

// [sum a, sum b, sum c, sum d] of four int32 vectors as floats (exact int32 sums, converted as the portable
// code's (float) casts round them)
TA static inline __m128 nk_sums4(__m256i a, __m256i b, __m256i c, __m256i d) {
#define NK_H(v) _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1))
    return _mm_cvtepi32_ps(_mm_hadd_epi32(_mm_hadd_epi32(NK_H(a), NK_H(b)), _mm_hadd_epi32(NK_H(c), NK_H(d))));
#undef NK_H
}

// q2_K (three = 0) / q3_K (three = 1), one token, from INTS (nk_q23_ints_avx2 / _vnni); `three` is a constant in
// each copy. Super-blocks go in pairs whose integer sums are reduced together (q2_K AVX2, one core: 11.7 -> 12.6
// GB/s); the f32 epilogue stays per block, in order (the portable code's).
#define NK_Q23_DOT(NAME, TGT, INTS)                                                                           \
TGT static NK_INL float NAME(const uint8_t *w, nk_tok x, int64_t nb, const int three) {                      \
    const size_t bb = three ? 110 : 84;                                                                       \
    float acc = 0;                                                                                            \
    int64_t b = 0;                                                                                            \
    for (; b + 2 <= nb; b += 2, w += 2 * bb) {                                                                \
        __m256i si0, mi0, si1, mi1;                                                                           \
        INTS(w, x.q + b * NK_QK, x.bs + b * 16, three, &si0, &mi0);                                           \
        INTS(w + bb, x.q + (b + 1) * NK_QK, x.bs + (b + 1) * 16, three, &si1, &mi1);                          \
        const __m128 dx = _mm_setr_ps(x.d[b], x.d[b], x.d[b + 1], x.d[b + 1]);                               \
        if (three) {   /* [isum0, isum1, ..] times [d0 d_x0, d1 d_x1, ..] */                                  \
            const __m128 v = nk_sums4(si0, si1, si0, si1);                                                    \
            const __m128 dw = _mm_cvtph_ps(_mm_setr_epi16((short)nk_rd16(w + 108), (short)nk_rd16(w + bb + 108), 0, 0, 0, 0, 0, 0)); \
            const __m128 t = _mm_mul_ps(_mm_mul_ps(dw, _mm_shuffle_ps(dx, dx, 0x08)), v);                      \
            acc += _mm_cvtss_f32(t);                                                                          \
            acc += _mm_cvtss_f32(_mm_movehdup_ps(t));                                                         \
        } else {       /* [isum0, summs0, isum1, summs1] times [d0 d_x0, dmin0 d_x0, d1 d_x1, dmin1 d_x1] */    \
            int32_t d0, d1; memcpy(&d0, w + 80, 4); memcpy(&d1, w + bb + 80, 4);                              \
            const __m128 dd = _mm_mul_ps(_mm_cvtph_ps(_mm_setr_epi32(d0, d1, 0, 0)), dx);                     \
            const __m128 t = _mm_mul_ps(nk_sums4(si0, mi0, si1, mi1), dd);                                    \
            const __m128 pm = _mm_sub_ps(t, _mm_movehdup_ps(t));   /* [p0 - m0, ., p1 - m1, .] */            \
            acc += _mm_cvtss_f32(pm);                                                                         \
            acc += _mm_cvtss_f32(_mm_movehl_ps(pm, pm));                                                      \
        }                                                                                                     \
    }                                                                                                         \
    if (b < nb) {                                                                                             \
        __m256i si, mi;                                                                                       \
        INTS(w, x.q + b * NK_QK, x.bs + b * 16, three, &si, &mi);                                             \
        if (three) {                                                                                          \
            const float p = nk_dmul(w + 108, x.d + b) * (float)nk_hsum_i32(si);                               \
            acc += p;                                                                                         \
        } else                                                                                                \
            acc = nk_q2_finish(acc, si, mi, nk_dd2(w + 80, x.d + b));                                         \
    }                                                                                                         \
    return acc;                                                                                               \
}
NK_Q23_DOT(nk_q23_dot_avx2, TA, nk_q23_ints_avx2)
TA static float q2k_dot_avx2(const uint8_t *w, nk_tok x, int64_t nb) { return nk_q23_dot_avx2(w, x, nb, 0); }
TA static float q3k_dot_avx2(const uint8_t *w, nk_tok x, int64_t nb) { return nk_q23_dot_avx2(w, x, nb, 1); }

// VNNI q2_K / q3_K: vpdpbusd per 32 values (u <= 7: lanes < 4 * 7 * 128 < 2^15), packssdw and vpdpwssd with the
// scales as q6_K (nk_pack6: the groups (2m, 2m + 1) of a half are sub-blocks 4m .. 4m + 3 of its 8)
TV static NK_INL void nk_q23_vnni(const uint8_t *w, const nk_tok *x, const int nt, int64_t nb, float *out, const int three) {
    const size_t bb = three ? 110 : 84;
    const __m256i m3 = _mm256_set1_epi8(3), z = _mm256_setzero_si256();
    float acc[NK_MT] = {0};
    for (int64_t b = 0; b < nb; b++, w += bb) {
        __m256i sc, mn = z, hm = z;
        if (three) { sc = _mm256_cvtepi8_epi16(nk_q3_scales(w + 96)); hm = _mm256_loadu_si256((const __m256i *)w); }
        else nk_q2_scales(w, &sc, &mn);
        __m256i u[8], sv[4];
        for (int g = 0; g < 2; g++) {
            const __m256i sch = (g ? _mm256_permute4x64_epi64(sc, 0xEE) : _mm256_permute4x64_epi64(sc, 0x44));
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(w + (three ? 32 : 16) + 32 * g));
            for (int k = 0; k < 4; k++) {
                __m256i v = _mm256_and_si256(_mm256_srl_epi16(qb, _mm_cvtsi32_si128(2 * k)), m3);
                if (three) v = _mm256_mask_add_epi8(v, _mm256_test_epi8_mask(hm, _mm256_set1_epi8((char)(1 << (4 * g + k)))), v, _mm256_set1_epi8(4));
                u[4 * g + k] = v;
            }
            sv[2 * g + 0] = _mm256_shuffle_epi8(sch, _mm256_load_si256((const __m256i *)nk_pack6[0]));
            sv[2 * g + 1] = _mm256_shuffle_epi8(sch, _mm256_load_si256((const __m256i *)nk_pack6[1]));
        }
        __m128 dw;   // q2_K [d, dmin], q3_K d
        if (three) dw = _mm_cvtph_ps(_mm_cvtsi32_si128(nk_rd16(w + 108)));
        else { int32_t dm; memcpy(&dm, w + 80, 4); dw = _mm_cvtph_ps(_mm_cvtsi32_si128(dm)); }
        for (int k = 0; k < nt; k++) {
            const int8_t *q8 = x[k].q + b * NK_QK;
            const __m256i bs = _mm256_loadu_si256((const __m256i *)(x[k].bs + b * 16));
            __m256i s0 = z, s1 = z;
            for (int g = 0; g < 8; g += 2) {
                const __m256i r0 = _mm256_dpbusd_epi32(z, u[g], _mm256_loadu_si256((const __m256i *)(q8 + 32 * g)));
                const __m256i r1 = _mm256_dpbusd_epi32(z, u[g + 1], _mm256_loadu_si256((const __m256i *)(q8 + 32 * g + 32)));
                if (g & 2) s1 = _mm256_dpwssd_epi32(s1, _mm256_packs_epi32(r0, r1), sv[g / 2]);
                else s0 = _mm256_dpwssd_epi32(s0, _mm256_packs_epi32(r0, r1), sv[g / 2]);
            }
            if (three) {
                const __m256i isum = _mm256_sub_epi32(_mm256_add_epi32(s0, s1), _mm256_slli_epi32(_mm256_madd_epi16(bs, sc), 2));
                const float d = _mm_cvtss_f32(dw) * x[k].d[b], p = d * (float)nk_hsum_i32(isum);
                acc[k] += p;
            } else
                acc[k] = nk_q2_finish(acc[k], _mm256_add_epi32(s0, s1), _mm256_madd_epi16(bs, mn),
                                      _mm_mul_ps(dw, _mm_broadcast_ss(x[k].d + b)));
        }
    }
    for (int k = 0; k < nt; k++) out[k] = acc[k];
}
// T == 1: the single-token integers of nk_q23_vnni, for NK_Q23_DOT's pairs (one core from memory: q2_K 13.3 -> 14.6 GB/s, q3_K 14.4 -> 15.1)
TV static NK_INL void nk_q23_ints_vnni(const uint8_t *w, const int8_t *q8, const int16_t *bsp, const int three,
                                       __m256i *si, __m256i *mi) {
    const __m256i m3 = _mm256_set1_epi8(3), z = _mm256_setzero_si256();
    __m256i sc, mn = z, hm = z;
    if (three) { sc = _mm256_cvtepi8_epi16(nk_q3_scales(w + 96)); hm = _mm256_loadu_si256((const __m256i *)w); }
    else nk_q2_scales(w, &sc, &mn);
    const __m256i bs = _mm256_loadu_si256((const __m256i *)bsp);
    __m256i s0 = z, s1 = z;
    for (int g = 0; g < 2; g++) {
        const __m256i sch = (g ? _mm256_permute4x64_epi64(sc, 0xEE) : _mm256_permute4x64_epi64(sc, 0x44));
        const __m256i qb = _mm256_loadu_si256((const __m256i *)(w + (three ? 32 : 16) + 32 * g));
        __m256i u[4];
        for (int k = 0; k < 4; k++) {
            u[k] = _mm256_and_si256(k ? _mm256_srli_epi16(qb, 2 * k) : qb, m3);
            if (three) u[k] = _mm256_mask_add_epi8(u[k], _mm256_test_epi8_mask(hm, _mm256_set1_epi8((char)(1 << (4 * g + k)))), u[k], _mm256_set1_epi8(4));
        }
        for (int m = 0; m < 2; m++) {
            const __m256i r0 = _mm256_dpbusd_epi32(z, u[2 * m], _mm256_loadu_si256((const __m256i *)(q8 + 128 * g + 64 * m)));
            const __m256i r1 = _mm256_dpbusd_epi32(z, u[2 * m + 1], _mm256_loadu_si256((const __m256i *)(q8 + 128 * g + 64 * m + 32)));
            const __m256i sv = _mm256_shuffle_epi8(sch, _mm256_load_si256((const __m256i *)nk_pack6[m]));
            if (m) s1 = _mm256_dpwssd_epi32(s1, _mm256_packs_epi32(r0, r1), sv);
            else s0 = _mm256_dpwssd_epi32(s0, _mm256_packs_epi32(r0, r1), sv);
        }
    }
    if (three) {
        *si = _mm256_sub_epi32(_mm256_add_epi32(s0, s1), _mm256_slli_epi32(_mm256_madd_epi16(bs, sc), 2));
        *mi = z;
    } else {
        *si = _mm256_add_epi32(s0, s1);
        *mi = _mm256_madd_epi16(bs, mn);
    }
}
NK_Q23_DOT(nk_q23_dot_vnni, TV, nk_q23_ints_vnni)
#define NK_MT_Q23(NAME, THREE)                                                                                \
TV static void NAME(const uint8_t *w, const nk_tok *x, int nt, int64_t nb, float *out) {                      \
    switch (nt) {                                                                                             \
    case 1: out[0] = nk_q23_dot_vnni(w, x[0], nb, THREE); break;                                              \
    case 2: nk_q23_vnni(w, x, 2, nb, out, THREE); break;                                                      \
    case 3: nk_q23_vnni(w, x, 3, nb, out, THREE); break;                                                      \
    default: nk_q23_vnni(w, x, 4, nb, out, THREE); break;                                                     \
    }                                                                                                         \
}
NK_MT_Q23(q2k_mt_vnni, 0)
NK_MT_Q23(q3k_mt_vnni, 1)

// AVX2: one token at a time (the weights are decoded again per token)
typedef void (*nk_mt_fn)(const uint8_t *w, const nk_tok *x, int nt, int64_t nb, float *out);
#define NK_MT_AVX2(NAME, DOT)                                                                                  \
TA static void NAME(const uint8_t *w, const nk_tok *x, int nt, int64_t nb, float *out) {                      \
    for (int k = 0; k < nt; k++) out[k] = DOT(w, x[k], nb);                                                   \
}
NK_MT_AVX2(q4k_mt_avx2, q4k_dot_avx2)
NK_MT_AVX2(q5k_mt_avx2, q5k_dot_avx2)
NK_MT_AVX2(q6k_mt_avx2, q6k_dot_avx2)
NK_MT_AVX2(iq4xs_mt_avx2, iq4xs_dot_avx2)
NK_MT_AVX2(q2k_mt_avx2, q2k_dot_avx2)
NK_MT_AVX2(q3k_mt_avx2, q3k_dot_avx2)

static nk_mt_fn nk_simd_fn(int dtype, int vnni) {
    switch (dtype) {
    case PK_Q4_K: return vnni ? q4k_mt_vnni : q4k_mt_avx2;
    case PK_Q5_K: return vnni ? q5k_mt_vnni : q5k_mt_avx2;
    case PK_Q6_K: return vnni ? q6k_mt_vnni : q6k_mt_avx2;
    case PK_IQ4_XS: return vnni ? iq4xs_mt_vnni : iq4xs_mt_avx2;
    case PK_Q2_K: return vnni ? q2k_mt_vnni : q2k_mt_avx2;
    case PK_Q3_K: return vnni ? q3k_mt_vnni : q3k_mt_avx2;
    }
    return NULL;
}

// T == 1: one row after another (one sequential weight stream per thread). T > 1: NK_RG rows at a time against
// NK_MT tokens at a time; the 4 tokens' slices (about 4.6 KiB per 4096 columns) stay in L1 while the row group
// passes over them, and each row is decoded once per 4 tokens.
#define NK_RG 4
static void nk_matmul_simd(nk_mt_fn f, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs,
                           int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t nb = cols / NK_QK;
    for (int64_t rg = r0; rg < r1; rg += NK_RG) {
        const int64_t re = rg + NK_RG < r1 ? rg + NK_RG : r1;
        for (int64_t t = 0; t < T; t += NK_MT) {
            const int nt = T - t < NK_MT ? (int)(T - t) : NK_MT;
            nk_tok x[NK_MT];
            for (int k = 0; k < nt; k++) x[k] = nk_token(xn + (size_t)(t + k) * xs, cols);
            for (int64_t r = rg; r < re; r++) {
                float out[NK_MT];
                f(W + (size_t)r * rb, x, nt, nb, out);
                for (int k = 0; k < nt; k++) Y[(t + k) * ldy + r] = out[k];
            }
        }
    }
}

// MARK: T > 1 with VNNI: 16-row tiles
// 16 weight rows are decoded per super-block to unsigned bytes and transposed so that one zmm holds 4 values of
// each of the 16 rows; vpdpbusd against 4 q of one token broadcast gives the 16 rows' partial sums at once (no
// horizontal sums), and each tile (in L1) is reused by every token (the scheme of pk_native_q8_vnni). Per token
// and sub-block the int32 sums are multiplied by the rows' integer scales (vpmulld), the q4_K / q5_K mins come
// from the token's bsums (vpdpwssd), and the unsigned offsets of q6_K (+32) and iq4_xs (+128) are taken back by
// starting each sub-block's sum at -offset * sum(q): the same exact integers per super-block as the other paths,
// then the same f32 operations per row, 16 rows per vector. q2_K / q3_K carry the sub-block scales in the tile's
// bytes (q2_K q sc <= 45, q3_K v sc + 127 with the 127 taken back as -127 sum(q)): one vpdpbusd chain per token and
// super-block, no vpmulld.
typedef struct {
    uint8_t q[64][64];    // group g: values 4g..4g+3 of the super-block, 4 bytes per row
    int32_t sc[16][16];   // scale of sub-block j per row (q4_K, q5_K, iq4_xs: 8 of 32 values; q6_K: 16 of 16)
    int32_t mn[8][16];    // q4_K / q5_K: min of sub-block j per row as the int16 pair (m, m); q2_K (m_2j, m_2j+1)
    float d[16], dm[16];  // f16 d (and dmin) as f32; rows past the end 0
} nk_tile;                // 5760 bytes
// Fewest tokens for the tiles (q4_K 4864 x 1024, one core: rows ~100 GOPS at any T, 66 at T = 5 (4 + 1); tiles
// 100 / 93 / 134 / 250 / 300 GOPS at T = 4 / 5 / 6 / 16 / 128; iq4_xs tiles already ahead at T = 3; q2_K / q3_K
// 2048 x 2048: rows 121 / 110 / 115 GOPS at T = 4 / 5 / 6, tiles 116 / 135 / 152 (q3_K 128 / 108 / 116 vs 103 /
// 121 / 137)). Settable (as
// a macro of the dtype) to test the tiles at small T.
#ifndef NK_TILE_T
#define NK_TILE_T(dtype) ((dtype) == PK_IQ4_XS || NK_LAT(dtype) ? 3 : 5)
#endif
// AVX2 (the 8-row tiles below; one core, 2048 x 2048, rows / tiles in GOP/s): T = 2 tiles lose for q5_K, q6_K,
// q2_K, iq4_xs (0.77-0.96x), T = 3 they win for all (q4_K 68 / 95, q6_K 56 / 81, iq4_xs 56 / 61), T = 128 2.3-3.6x
#ifndef NK_TILE_T_AVX2
#define NK_TILE_T_AVX2(dtype) 3
#endif
#define NK_KB 4           // super-blocks per tile chunk (23 KiB)
#define NK_TT 8           // tokens per micro-kernel call

// 16 x 16 int32 transpose: 64 bytes of 16 rows `stride` bytes apart to q[0..15] (q[k]: dword k of every row)
TV static NK_INL void nk_tr16(const uint8_t *src, size_t stride, uint8_t (*q)[64]) {
    __m512i z[16], a[16], b[16];
    for (int i = 0; i < 16; i++) z[i] = _mm512_load_si512((const __m512i *)(src + i * stride));
    for (int i = 0; i < 16; i += 2) {
        a[i] = _mm512_unpacklo_epi32(z[i], z[i + 1]);
        a[i + 1] = _mm512_unpackhi_epi32(z[i], z[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {   // b[i + c'] lane L: column 4L + c' of rows i..i+3
        b[i + 0] = _mm512_unpacklo_epi64(a[i], a[i + 2]);
        b[i + 1] = _mm512_unpackhi_epi64(a[i], a[i + 2]);
        b[i + 2] = _mm512_unpacklo_epi64(a[i + 1], a[i + 3]);
        b[i + 3] = _mm512_unpackhi_epi64(a[i + 1], a[i + 3]);
    }
    for (int k = 0; k < 4; k++) {
        const __m512i e0 = _mm512_shuffle_i32x4(b[k], b[4 + k], 0x88), e1 = _mm512_shuffle_i32x4(b[k], b[4 + k], 0xDD);
        const __m512i f0 = _mm512_shuffle_i32x4(b[8 + k], b[12 + k], 0x88), f1 = _mm512_shuffle_i32x4(b[8 + k], b[12 + k], 0xDD);
        _mm512_store_si512((__m512i *)q[k], _mm512_shuffle_i32x4(e0, f0, 0x88));
        _mm512_store_si512((__m512i *)q[4 + k], _mm512_shuffle_i32x4(e1, f1, 0x88));
        _mm512_store_si512((__m512i *)q[8 + k], _mm512_shuffle_i32x4(e0, f0, 0xDD));
        _mm512_store_si512((__m512i *)q[12 + k], _mm512_shuffle_i32x4(e1, f1, 0xDD));
    }
}

// One super-block of one row: 256 unsigned values in element order to u, scales (and mins) to s, the f16 d
// (and dmin) to h.
// The lattice types (kernels_iq.c decodes them): as q6_K, values + 64 with a scale per 16.
TV static NK_INL void nk_tile_row(int dtype, const uint8_t *w, uint8_t *u, int32_t *s, uint16_t *h) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    if (NK_LAT(dtype)) {
        pk_iq_block_u8(dtype, w, u, s, h);
    } else if (dtype == PK_Q4_K || dtype == PK_Q5_K) {
        const int five = dtype == PK_Q5_K;
        const uint8_t *q = w + (five ? 48 : 16);
        const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(w + 16)) : _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(q + 32 * j));
            __m256i lo = _mm256_and_si256(qb, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
            if (five) { lo = nk_q5hi_vnni(lo, qh, 2 * j); hi = nk_q5hi_vnni(hi, qh, 2 * j + 1); }
            _mm256_store_si256((__m256i *)(u + 64 * j), lo);
            _mm256_store_si256((__m256i *)(u + 64 * j + 32), hi);
        }
        const __m128i sm = nk_k4_unpack(w + 4);   // 8 scales, 8 mins
        _mm512_storeu_si512((__m512i *)s, _mm512_cvtepu8_epi32(sm));
        h[0] = nk_rd16(w); h[1] = nk_rd16(w + 2);
    } else if (dtype == PK_Q6_K) {
        const __m256i m30 = _mm256_set1_epi8(0x30);
        for (int hh = 0; hh < 2; hh++) {
            const __m256i l0 = _mm256_loadu_si256((const __m256i *)(w + 64 * hh));
            const __m256i l1 = _mm256_loadu_si256((const __m256i *)(w + 64 * hh + 32));
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * hh));
            uint8_t *o = u + 128 * hh;
            _mm256_store_si256((__m256i *)o, _mm256_ternarylogic_epi32(l0, _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30), m4, 0xE4));
            _mm256_store_si256((__m256i *)(o + 32), _mm256_ternarylogic_epi32(l1, _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30), m4, 0xE4));
            _mm256_store_si256((__m256i *)(o + 64), _mm256_ternarylogic_epi32(_mm256_srli_epi16(l0, 4), _mm256_and_si256(qh, m30), m4, 0xE4));
            _mm256_store_si256((__m256i *)(o + 96), _mm256_ternarylogic_epi32(_mm256_srli_epi16(l1, 4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30), m4, 0xE4));
        }
        _mm512_storeu_si512((__m512i *)s, _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(w + 192))));
        h[0] = nk_rd16(w + 208);
    } else if (dtype == PK_Q2_K || dtype == PK_Q3_K) {
        // each value times its sub-block's scale in the byte (q2_K: q sc <= 45; q3_K: v sc + 127 in [3, 255], as
        // |v sc| <= 128); q2_K's mins as int16 pairs (m_2j, m_2j+1) to s[j]
        const int three = dtype == PK_Q3_K;
        __m256i sc, mn = _mm256_setzero_si256();
        if (three) sc = _mm256_cvtepi8_epi16(nk_q3_scales(w + 96));
        else nk_q2_scales(w, &sc, &mn);
        const __m512i sc2 = _mm512_castsi256_si512(sc);
        const __m256i hm = three ? _mm256_loadu_si256((const __m256i *)w) : _mm256_setzero_si256();
        for (int g = 0; g < 2; g++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(w + (three ? 32 : 16) + 32 * g));
            for (int k = 0; k < 4; k++) {
                __m256i v = _mm256_and_si256(_mm256_srl_epi16(qb, _mm_cvtsi32_si128(2 * k)), _mm256_set1_epi8(3));
                if (three) v = _mm256_mask_sub_epi8(v, _mm256_testn_epi8_mask(hm, _mm256_set1_epi8((char)(1 << (4 * g + k)))), v, _mm256_set1_epi8(4));
                const int j = 8 * g + 2 * k;   // sub-blocks j (low 16 bytes), j + 1
                const __m512i sj = _mm512_permutexvar_epi16(_mm512_inserti64x4(_mm512_set1_epi16((short)j), _mm256_set1_epi16((short)(j + 1)), 1), sc2);
                __m512i p = _mm512_mullo_epi16(three ? _mm512_cvtepi8_epi16(v) : _mm512_cvtepu8_epi16(v), sj);
                if (three) p = _mm512_add_epi16(p, _mm512_set1_epi16(127));
                _mm256_store_si256((__m256i *)(u + 128 * g + 32 * k), _mm512_cvtepi16_epi8(p));
            }
        }
        _mm256_storeu_si256((__m256i *)s, mn);
        if (three) h[0] = nk_rd16(w + 108);
        else { h[0] = nk_rd16(w + 80); h[1] = nk_rd16(w + 82); }
    } else {   // iq4_xs: table values + 128; 32 bytes of qs are sub-blocks 2j (low 128 bits) and 2j + 1
        const __m256i tbl = _mm256_xor_si256(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pk_iq4nl_values)),
                                             _mm256_set1_epi8((char)0x80));
        for (int j = 0; j < 4; j++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(w + 8 + 32 * j));
            const __m256i vl = _mm256_shuffle_epi8(tbl, _mm256_and_si256(qb, m4));
            const __m256i vh = _mm256_shuffle_epi8(tbl, _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4));
            _mm256_store_si256((__m256i *)(u + 64 * j), _mm256_permute2x128_si256(vl, vh, 0x20));
            _mm256_store_si256((__m256i *)(u + 64 * j + 32), _mm256_permute2x128_si256(vl, vh, 0x31));
        }
        _mm256_storeu_si256((__m256i *)s, nk_iq4xs_scales(w));
        h[0] = nk_rd16(w);
    }
}

// Super-blocks b0 .. b0 + nbk of rows r .. r + nr (nr <= 16) into tiles; rows past nr are zero.
TV static NK_INL void nk_tile_pack(int dtype, const uint8_t *W, size_t rb, int64_t r, int nr, int64_t b0, int nbk, nk_tile *out) {
    const size_t bb = pk_block_bytes(dtype);
    uint8_t u[16][256] __attribute__((aligned(64)));
    int32_t s[16][16] __attribute__((aligned(64)));
    uint16_t h[2][16] __attribute__((aligned(32)));
    memset(u[nr], 0, (size_t)(16 - nr) * 256);
    memset(s, 0, sizeof s);
    memset(h, 0, sizeof h);
    for (int bi = 0; bi < nbk; bi++) {
        nk_tile *o = out + bi;
        uint16_t hr[2];
        for (int i = 0; i < nr; i++) {
            nk_tile_row(dtype, W + (size_t)(r + i) * rb + (size_t)(b0 + bi) * bb, u[i], s[i], hr);
            h[0][i] = hr[0]; h[1][i] = hr[1];
        }
        for (int c = 0; c < 4; c++) nk_tr16(u[0] + 64 * c, 256, o->q + 16 * c);
        if (dtype == PK_Q2_K || dtype == PK_Q3_K) {   // scales already in the values; q2_K's min pairs per row -> per pair
            if (dtype == PK_Q2_K) {
                int32_t m[16][16] __attribute__((aligned(64)));
                nk_tr16((const uint8_t *)s, 64, (uint8_t (*)[64])m);
                memcpy(o->mn, m, sizeof o->mn);
            }
        } else
            // scales (q4_K / q5_K: 8 scales, 8 mins) per row -> per sub-block; q4_K / q5_K mins to (m, m) pairs
            nk_tr16((const uint8_t *)s, 64, (uint8_t (*)[64])o->sc);
        if (dtype == PK_Q4_K || dtype == PK_Q5_K)
            for (int j = 0; j < 8; j++) {
                const __m512i v = _mm512_load_si512((const __m512i *)o->sc[8 + j]);
                _mm512_store_si512((__m512i *)o->mn[j], _mm512_or_si512(v, _mm512_slli_epi32(v, 16)));
            }
        _mm512_store_ps(o->d, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)h[0])));
        _mm512_store_ps(o->dm, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)h[1])));
    }
}

static inline int32_t nk_rd32(const void *p) { int32_t v; memcpy(&v, p, 4); return v; }

// nt tokens x 16 rows over nbk tiles: Y[k ldy + i] for the first nr rows, continuing the f32 sums already there
// unless `first` (each row's sum runs over the super-blocks in order, as on the other paths).
TV static NK_INL void nk_tile_micro(const int dtype, const int nt, const nk_tile *tl, int nbk, int64_t b0, const nk_tok *x,
                                    float *y, int64_t ldy, int nr, int first) {
    const int q6 = dtype == PK_Q6_K || NK_LAT(dtype), q2 = dtype == PK_Q2_K, mins = dtype == PK_Q4_K || dtype == PK_Q5_K || q2;
    const int off_shift = NK_LAT(dtype) ? 6 : 5;   // the values' offset, 64 or 32
    const int ps = q2 || dtype == PK_Q3_K;   // scales applied in the tile's values
    const int nsub = q6 ? 16 : 8, gps = q6 ? 4 : 8;   // sub-blocks, groups of 4 values per sub-block
    const __mmask16 m = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1u);
    __m512 f[NK_TT];
    for (int k = 0; k < nt; k++) f[k] = first ? _mm512_setzero_ps() : _mm512_maskz_loadu_ps(m, y + k * ldy);
    for (int bi = 0; bi < nbk; bi++) {
        const nk_tile *p = tl + bi;
        const int64_t b = b0 + bi;
        __m512i is[NK_TT], im[NK_TT];
        // q6_K / iq4_xs / lattice: -32 (-64) bs_j per sub-block of 16, -128 (bs_2j + bs_2j+1) per sub-block of 32
        // (the start of each sub-block's sum, broadcast from memory)
        int32_t off[NK_TT][16] __attribute__((aligned(64)));
        if (q6)
            for (int k = 0; k < nt; k++)
                _mm512_store_si512((__m512i *)off[k], _mm512_slli_epi32(_mm512_sub_epi32(_mm512_setzero_si512(),
                                   _mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(x[k].bs + b * 16)))), off_shift));
        else if (!mins)
            for (int k = 0; k < nt; k++)
                _mm256_store_si256((__m256i *)off[k], _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)(x[k].bs + b * 16)),
                                                                        _mm256_set1_epi16(-128)));
        if (ps) {   // q2_K / q3_K: one sum over the 64 groups; q3_K starts at -127 sum(q)
            for (int k = 0; k < nt; k++)
                is[k] = q2 ? _mm512_setzero_si512()
                           : _mm512_set1_epi32(-127 * _mm512_reduce_add_epi32(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(x[k].bs + b * 16)))));
            for (int g = 0; g < 64; g++) {
                const __m512i w = _mm512_load_si512((const __m512i *)p->q[g]);
                for (int k = 0; k < nt; k++)
                    is[k] = _mm512_dpbusd_epi32(is[k], w, _mm512_set1_epi32(nk_rd32(x[k].q + b * NK_QK + 4 * g)));
            }
        } else for (int k = 0; k < nt; k++) is[k] = _mm512_setzero_si512();
        for (int j = 0; j < (ps ? 0 : nsub); j++) {
            __m512i t[NK_TT];
            for (int k = 0; k < nt; k++) t[k] = mins ? _mm512_setzero_si512() : _mm512_set1_epi32(off[k][j]);
            for (int g = 0; g < gps; g++) {
                const __m512i w = _mm512_load_si512((const __m512i *)p->q[gps * j + g]);
                for (int k = 0; k < nt; k++)
                    t[k] = _mm512_dpbusd_epi32(t[k], w, _mm512_set1_epi32(nk_rd32(x[k].q + b * NK_QK + 4 * (gps * j + g))));
            }
            const __m512i s = _mm512_load_si512((const __m512i *)p->sc[j]);
            for (int k = 0; k < nt; k++) is[k] = _mm512_add_epi32(is[k], _mm512_mullo_epi32(t[k], s));
        }
        if (mins) {   // bsums (2j, 2j + 1) times the int16 pair (m_j, m_j) of each row (q2_K: (m_2j, m_2j+1))
            for (int k = 0; k < nt; k++) im[k] = _mm512_setzero_si512();
            for (int j = 0; j < 8; j++) {
                const __m512i mn = _mm512_load_si512((const __m512i *)p->mn[j]);
                for (int k = 0; k < nt; k++) im[k] = _mm512_dpwssd_epi32(im[k], mn, _mm512_set1_epi32(nk_rd32(x[k].bs + b * 16 + 2 * j)));
            }
        }
        const __m512 dw = _mm512_load_ps(p->d), dmw = _mm512_load_ps(p->dm);
        for (int k = 0; k < nt; k++) {
            const __m512 dx = _mm512_set1_ps(x[k].d[b]);
            const __m512 pv = _mm512_mul_ps(_mm512_mul_ps(dw, dx), _mm512_cvtepi32_ps(is[k]));
            if (q2) {   // s + (p - m), as q2k_dot_scalar
                const __m512 pm = _mm512_mul_ps(_mm512_mul_ps(dmw, dx), _mm512_cvtepi32_ps(im[k]));
                f[k] = _mm512_add_ps(f[k], _mm512_sub_ps(pv, pm));
                continue;
            }
            f[k] = _mm512_add_ps(f[k], pv);
            if (mins) {
                const __m512 pm = _mm512_mul_ps(_mm512_mul_ps(dmw, dx), _mm512_cvtepi32_ps(im[k]));
                f[k] = _mm512_sub_ps(f[k], pm);
            }
        }
    }
    for (int k = 0; k < nt; k++) _mm512_mask_storeu_ps(y + k * ldy, m, f[k]);
}

// The tile loop of both levels: ROWS-row tiles of TILE (PACK) over chunks of NK_KB super-blocks, every token against
// them, TT tokens per MICRO call (nt a constant in each inlined copy).
#define NK_TILES_LOOP(NAME, TGT, TILE, ROWS, PACK, MICRO, TT, DT)                                            \
TGT static void NAME(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,     \
                     float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                         \
    const int64_t nb = cols / NK_QK;                                                                          \
    TILE tl[NK_KB] __attribute__((aligned(64)));                                                              \
    for (int64_t r = r0; r < r1; r += ROWS) {                                                                 \
        const int nr = r1 - r < ROWS ? (int)(r1 - r) : ROWS;                                                  \
        for (int64_t b0 = 0; b0 < nb; b0 += NK_KB) {                                                          \
            const int nbk = nb - b0 < NK_KB ? (int)(nb - b0) : NK_KB;                                         \
            pk_prefetch_next_tile(W, rb, (int64_t)pk_block_bytes(DT), nb, NK_KB, ROWS, r, r1, b0);           \
            PACK(DT, W, rb, r, nr, b0, nbk, tl);                                                              \
            for (int64_t t = 0; t < T; t += TT) {                                                             \
                const int nt = T - t < TT ? (int)(T - t) : TT;                                                \
                nk_tok x[TT];                                                                                 \
                for (int k = 0; k < nt; k++) x[k] = nk_token(xn + (size_t)(t + k) * xs, cols);               \
                float *y = Y + t * ldy + r;                                                                   \
                switch (nt) {                                                                                 \
                case 1: MICRO(DT, 1, tl, nbk, b0, x, y, ldy, nr, b0 == 0); break;                             \
                case 2: MICRO(DT, 2, tl, nbk, b0, x, y, ldy, nr, b0 == 0); break;                             \
                case 3: MICRO(DT, 3, tl, nbk, b0, x, y, ldy, nr, b0 == 0); break;                             \
                case 4: MICRO(DT, 4 < TT ? 4 : TT, tl, nbk, b0, x, y, ldy, nr, b0 == 0); break;               \
                case 5: MICRO(DT, 5 < TT ? 5 : TT, tl, nbk, b0, x, y, ldy, nr, b0 == 0); break;               \
                case 6: MICRO(DT, 6 < TT ? 6 : TT, tl, nbk, b0, x, y, ldy, nr, b0 == 0); break;               \
                case 7: MICRO(DT, 7 < TT ? 7 : TT, tl, nbk, b0, x, y, ldy, nr, b0 == 0); break;               \
                default: MICRO(DT, TT, tl, nbk, b0, x, y, ldy, nr, b0 == 0); break;                           \
                }                                                                                             \
            }                                                                                                 \
        }                                                                                                     \
        if (NK_LAT(DT)) {   /* the lattice types' final 1/8 or 1/4 (kernels_iq.c) */                          \
            const float f = pk_iq_native_factor(DT);                                                          \
            for (int64_t t = 0; t < T; t++)                                                                   \
                for (int i = 0; i < nr; i++) Y[t * ldy + r + i] = f * Y[t * ldy + r + i];                     \
        }                                                                                                     \
    }                                                                                                         \
}
#define NK_TILES(NAME, DT) NK_TILES_LOOP(NAME, TV, nk_tile, 16, nk_tile_pack, nk_tile_micro, NK_TT, DT)
NK_TILES(q4k_tiles_vnni, PK_Q4_K)
NK_TILES(q5k_tiles_vnni, PK_Q5_K)
NK_TILES(q6k_tiles_vnni, PK_Q6_K)
NK_TILES(iq4xs_tiles_vnni, PK_IQ4_XS)
NK_TILES(q2k_tiles_vnni, PK_Q2_K)
NK_TILES(q3k_tiles_vnni, PK_Q3_K)
NK_TILES(iq2xxs_tiles_vnni, PK_IQ2_XXS)
NK_TILES(iq2xs_tiles_vnni, PK_IQ2_XS)
NK_TILES(iq2s_tiles_vnni, PK_IQ2_S)
NK_TILES(iq3xxs_tiles_vnni, PK_IQ3_XXS)
NK_TILES(iq3s_tiles_vnni, PK_IQ3_S)
NK_TILES(iq1s_tiles_vnni, PK_IQ1_S)
NK_TILES(iq1m_tiles_vnni, PK_IQ1_M)

typedef void (*nk_tiles_fn)(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                            float *Y, int64_t ldy, int64_t r0, int64_t r1);
static nk_tiles_fn nk_tiles_vnni(int dtype) {
    switch (dtype) {
    case PK_Q4_K: return q4k_tiles_vnni;
    case PK_Q5_K: return q5k_tiles_vnni;
    case PK_Q6_K: return q6k_tiles_vnni;
    case PK_IQ4_XS: return iq4xs_tiles_vnni;
    case PK_Q2_K: return q2k_tiles_vnni;
    case PK_Q3_K: return q3k_tiles_vnni;
    case PK_IQ2_XXS: return iq2xxs_tiles_vnni;
    case PK_IQ2_XS: return iq2xs_tiles_vnni;
    case PK_IQ2_S: return iq2s_tiles_vnni;
    case PK_IQ3_XXS: return iq3xxs_tiles_vnni;
    case PK_IQ3_S: return iq3s_tiles_vnni;
    case PK_IQ1_S: return iq1s_tiles_vnni;
    case PK_IQ1_M: return iq1m_tiles_vnni;
    }
    return NULL;
}
// MARK: T > 1 with AVX2: 8-row tiles
// The VNNI tiles' scheme at 256 bits without vpdpbusd: 8 rows per super-block decoded to bytes and transposed so
// that one ymm holds 4 values of each of the 8 rows; vpmaddubsw against 4 q of one token broadcast gives the 8 rows'
// pair sums in int16, which are summed in int16 while no lane can exceed 2^15 (|q| <= 128: q4_K codes <= 15, 8
// groups <= 8 * 2 * 15 * 128 = 30720; q5_K <= 31, 4 groups <= 31744; q6_K <= 63, 2 groups <= 32256; q2_K <= 3 and
// q3_K v + 4 <= 7, a sub-block's 4 groups <= 7168), then vpmaddwd with the rows' int16 scale pairs (s, s) gives
// int32 row sums. iq4_xs levels are signed (|v| <= 127): ggml's sign trick, one group per vpmaddwd (<= 32512).
// The lattice types as q6_K with values + 64 (<= 126): one group per vpmaddwd (<= 2 * 126 * 127 = 32004).
// Offsets (q6_K + 32, q3_K + 4, lattice + 64) and the mins of q4_K / q5_K / q2_K go through the token's bsums as int16 pairs per
// row (vpmaddwd). Each super-block gives the same exact int32 per row as every other path, then the same f32
// operations in the same order, 8 rows per vector: the same bits as the other levels.
typedef struct {
    uint8_t q[64][32];    // group g: values 4g..4g+3 of the super-block, 4 bytes per row (iq4_xs: |v|)
    int16_t sc[16][16];   // scale of sub-block j as the pair (s, s) per row (q4_K, q5_K, iq4_xs: 8 of 32 values)
    int16_t mn[8][16];    // pair j per row: q4_K / q5_K (m_j, m_j); q2_K (m_2j, m_2j+1); q6_K / q3_K (s_2j, s_2j+1)
    float d[8], dm[8];    // f16 d (and dmin) as f32; rows past the end 0
    int8_t sg[64][32];    // iq4_xs: the signed levels (sign source)
} nk_tile8;
#define NK_TT2 4          // tokens per AVX2 micro-kernel call (accumulators in registers; 6 measured no faster)

// 32 bytes of 8 rows `stride` bytes apart to q[0..7] (q[k]: dword k of every row)
TA static NK_INL void nk_tr8(const uint8_t *src, size_t stride, uint8_t (*q)[32]) {
    __m256i z[8];
    for (int i = 0; i < 8; i++) z[i] = _mm256_loadu_si256((const __m256i *)(src + i * stride));
    pk_tile8_transpose(z, q);
}

// One super-block of one row: 256 codes in element order to u (iq4_xs: |v| to u, v to sv), the int16 scales to s
// (16 for q6_K / q2_K / q3_K, else 8), the pair values to m (see nk_tile8.mn), the f16 d (and dmin) to h.
TA static NK_INL void nk_tile8_row(int dtype, const uint8_t *w, uint8_t *u, int8_t *sv, int16_t *s, int16_t *m, uint16_t *h) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    if (NK_LAT(dtype)) {   // values + 64 (kernels_iq.c decodes them), as q6_K's codes + 32 with a scale per 16
        int32_t ls[16];
        pk_iq_block_u8(dtype, w, u, ls, h);
        for (int j = 0; j < 16; j++) s[j] = m[j] = (int16_t)ls[j];
    } else if (dtype == PK_Q4_K || dtype == PK_Q5_K) {
        const int five = dtype == PK_Q5_K;
        const uint8_t *q = w + (five ? 48 : 16);
        const __m256i qh = five ? _mm256_loadu_si256((const __m256i *)(w + 16)) : _mm256_setzero_si256();
        for (int j = 0; j < 4; j++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(q + 32 * j));
            __m256i lo = _mm256_and_si256(qb, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4);
            if (five) { lo = nk_q5hi_avx2(lo, qh, 2 * j); hi = nk_q5hi_avx2(hi, qh, 2 * j + 1); }
            _mm256_store_si256((__m256i *)(u + 64 * j), lo);
            _mm256_store_si256((__m256i *)(u + 64 * j + 32), hi);
        }
        uint8_t sm[16];
        _mm_storeu_si128((__m128i *)sm, nk_k4_unpack(w + 4));   // 8 scales, 8 mins
        for (int j = 0; j < 8; j++) { s[j] = sm[j]; m[2 * j] = m[2 * j + 1] = sm[8 + j]; }
        h[0] = nk_rd16(w); h[1] = nk_rd16(w + 2);
    } else if (dtype == PK_Q6_K) {
        for (int hh = 0; hh < 2; hh++) {
            __m256i c[4];
            pk_q6_codes_avx2(w, hh, c);
            for (int i = 0; i < 4; i++) _mm256_store_si256((__m256i *)(u + 128 * hh + 32 * i), c[i]);
        }
        for (int j = 0; j < 16; j++) s[j] = m[j] = (int8_t)w[192 + j];
        h[0] = nk_rd16(w + 208);
    } else if (dtype == PK_Q2_K || dtype == PK_Q3_K) {
        const int three = dtype == PK_Q3_K;
        const __m256i hm = three ? _mm256_loadu_si256((const __m256i *)w) : _mm256_setzero_si256();
        for (int g = 0; g < 2; g++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(w + (three ? 32 : 16) + 32 * g));
            for (int k = 0; k < 4; k++) {
                _mm256_store_si256((__m256i *)(u + 128 * g + 32 * k), nk_q23_codes_avx2(qb, hm, g, k, three));
            }
        }
        if (three) {
            int8_t sc[16];
            _mm_storeu_si128((__m128i *)sc, nk_q3_scales(w + 96));
            for (int j = 0; j < 16; j++) s[j] = m[j] = sc[j];
            h[0] = nk_rd16(w + 108);
        } else {
            for (int j = 0; j < 16; j++) { s[j] = w[j] & 0xF; m[j] = w[j] >> 4; }
            h[0] = nk_rd16(w + 80); h[1] = nk_rd16(w + 82);
        }
    } else {   // iq4_xs: 16 bytes of qs per sub-block, values 0-15 from the low nibbles, 16-31 from the high ones
        const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pk_iq4nl_values));
        for (int j = 0; j < 4; j++) {
            const __m256i qb = _mm256_loadu_si256((const __m256i *)(w + 8 + 32 * j));
            const __m256i vl = _mm256_shuffle_epi8(tbl, _mm256_and_si256(qb, m4));
            const __m256i vh = _mm256_shuffle_epi8(tbl, _mm256_and_si256(_mm256_srli_epi16(qb, 4), m4));
            const __m256i a = _mm256_permute2x128_si256(vl, vh, 0x20), b = _mm256_permute2x128_si256(vl, vh, 0x31);
            _mm256_store_si256((__m256i *)(sv + 64 * j), a);
            _mm256_store_si256((__m256i *)(sv + 64 * j + 32), b);
            _mm256_store_si256((__m256i *)(u + 64 * j), _mm256_sign_epi8(a, a));
            _mm256_store_si256((__m256i *)(u + 64 * j + 32), _mm256_sign_epi8(b, b));
        }
        int32_t sc[8];
        _mm256_storeu_si256((__m256i *)sc, nk_iq4xs_scales(w));
        for (int j = 0; j < 8; j++) s[j] = (int16_t)sc[j];
        h[0] = nk_rd16(w);
    }
}

// Super-blocks b0 .. b0 + nbk of rows r .. r + nr (nr <= 8) into tiles; rows past nr are zero.
TA static NK_INL void nk_tile8_pack(int dtype, const uint8_t *W, size_t rb, int64_t r, int nr, int64_t b0, int nbk, nk_tile8 *out) {
    const size_t bb = pk_block_bytes(dtype);
    const int iq = dtype == PK_IQ4_XS;
    uint8_t u[8][256] __attribute__((aligned(32)));
    int8_t sv[8][256] __attribute__((aligned(32)));
    int16_t s[8][16], m[8][16];
    uint16_t h[2][8];
    memset(u[nr], 0, (size_t)(8 - nr) * 256);
    if (iq) memset(sv[nr], 0, (size_t)(8 - nr) * 256);
    memset(s, 0, sizeof s); memset(m, 0, sizeof m); memset(h, 0, sizeof h);
    for (int bi = 0; bi < nbk; bi++) {
        nk_tile8 *o = out + bi;
        for (int i = 0; i < nr; i++) {
            uint16_t hr[2] = {0, 0};
            nk_tile8_row(dtype, W + (size_t)(r + i) * rb + (size_t)(b0 + bi) * bb, u[i], sv[i], s[i], m[i], hr);
            h[0][i] = hr[0]; h[1][i] = hr[1];
        }
        for (int c = 0; c < 8; c++) nk_tr8(u[0] + 32 * c, 256, o->q + 8 * c);
        if (iq) for (int c = 0; c < 8; c++) nk_tr8((const uint8_t *)sv[0] + 32 * c, 256, (uint8_t (*)[32])o->sg + 8 * c);
        for (int j = 0; j < 16; j++)
            for (int i = 0; i < 8; i++) o->sc[j][2 * i] = o->sc[j][2 * i + 1] = s[i][j];
        for (int j = 0; j < 8; j++)
            for (int i = 0; i < 8; i++) { o->mn[j][2 * i] = m[i][2 * j]; o->mn[j][2 * i + 1] = m[i][2 * j + 1]; }
        _mm256_store_ps(o->d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h[0])));
        _mm256_store_ps(o->dm, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h[1])));
    }
}

// nt tokens x 8 rows over nbk tiles: Y[k ldy + i] for the first nr rows, continuing the f32 sums already there
// unless `first`.
TA static NK_INL void nk_tile8_micro(const int dtype, const int nt, const nk_tile8 *tl, int nbk, int64_t b0, const nk_tok *x,
                                     float *y, int64_t ldy, int nr, int first) {
    const int lat = NK_LAT(dtype), q6 = dtype == PK_Q6_K || lat, q2 = dtype == PK_Q2_K, q3 = dtype == PK_Q3_K, iq = dtype == PK_IQ4_XS;
    const int mins = dtype == PK_Q4_K || dtype == PK_Q5_K || q2;
    const int off_shift = lat ? 6 : 5;   // q6_K's codes carry + 32, the lattice values + 64
    const int nsub = (q6 || q2 || q3) ? 16 : 8, gps = 64 / nsub;
    // groups summed in int16 before a vpmaddwd (the bounds above)
    const int run = dtype == PK_Q4_K ? 8 : dtype == PK_Q5_K ? 4 : (iq || lat) ? 1 : q6 ? 2 : 4;
    const __m256i rm = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    __m256 f[NK_TT2];
    for (int k = 0; k < nt; k++) f[k] = first ? _mm256_setzero_ps() : _mm256_maskload_ps(y + k * ldy, rm);
    for (int bi = 0; bi < nbk; bi++) {
        const nk_tile8 *p = tl + bi;
        const int64_t b = b0 + bi;
        __m256i is[NK_TT2], im[NK_TT2];
        for (int k = 0; k < nt; k++) is[k] = _mm256_setzero_si256();
        for (int j = 0; j < nsub; j++) {
            const __m256i s = _mm256_load_si256((const __m256i *)p->sc[j]);
            for (int g0 = 0; g0 < gps; g0 += run) {
                __m256i t[NK_TT2];
                for (int g = g0; g < g0 + run; g++) {
                    const int gi = gps * j + g;
                    const __m256i w = _mm256_load_si256((const __m256i *)p->q[gi]);
                    for (int k = 0; k < nt; k++) {
                        __m256i xb = _mm256_set1_epi32(nk_rd32(x[k].q + b * NK_QK + 4 * gi));
                        if (iq) xb = _mm256_sign_epi8(xb, _mm256_load_si256((const __m256i *)p->sg[gi]));
                        const __m256i pr = _mm256_maddubs_epi16(w, xb);
                        t[k] = g == g0 ? pr : _mm256_add_epi16(t[k], pr);
                    }
                }
                for (int k = 0; k < nt; k++) is[k] = _mm256_add_epi32(is[k], _mm256_madd_epi16(t[k], s));
            }
        }
        if (mins || q6 || q3) {   // the token's bsum pairs (2j, 2j + 1) times each row's pair j
            for (int k = 0; k < nt; k++) im[k] = _mm256_setzero_si256();
            for (int j = 0; j < 8; j++) {
                const __m256i mn = _mm256_load_si256((const __m256i *)p->mn[j]);
                for (int k = 0; k < nt; k++) im[k] = _mm256_add_epi32(im[k], _mm256_madd_epi16(mn, _mm256_set1_epi32(nk_rd32(x[k].bs + b * 16 + 2 * j))));
            }
            // offsets: q6_K codes carry + 32, the lattice values + 64, q3_K + 4
            if (q6) for (int k = 0; k < nt; k++) is[k] = _mm256_sub_epi32(is[k], _mm256_slli_epi32(im[k], off_shift));
            if (q3) for (int k = 0; k < nt; k++) is[k] = _mm256_sub_epi32(is[k], _mm256_slli_epi32(im[k], 2));
        }
        const __m256 dw = _mm256_load_ps(p->d), dmw = _mm256_load_ps(p->dm);
        for (int k = 0; k < nt; k++) {
            const __m256 dx = _mm256_set1_ps(x[k].d[b]);
            const __m256 pv = _mm256_mul_ps(_mm256_mul_ps(dw, dx), _mm256_cvtepi32_ps(is[k]));
            if (q2) {   // s + (p - m), as q2k_dot_scalar
                const __m256 pm = _mm256_mul_ps(_mm256_mul_ps(dmw, dx), _mm256_cvtepi32_ps(im[k]));
                f[k] = _mm256_add_ps(f[k], _mm256_sub_ps(pv, pm));
                continue;
            }
            f[k] = _mm256_add_ps(f[k], pv);
            if (mins) {
                const __m256 pm = _mm256_mul_ps(_mm256_mul_ps(dmw, dx), _mm256_cvtepi32_ps(im[k]));
                f[k] = _mm256_sub_ps(f[k], pm);
            }
        }
    }
    for (int k = 0; k < nt; k++) pk_store8_rows(y + k * ldy, f[k], nr, 0);
}

#define NK_TILES8(NAME, DT) NK_TILES_LOOP(NAME, TA, nk_tile8, 8, nk_tile8_pack, nk_tile8_micro, NK_TT2, DT)
NK_TILES8(q4k_tiles_avx2, PK_Q4_K)
NK_TILES8(q5k_tiles_avx2, PK_Q5_K)
NK_TILES8(q6k_tiles_avx2, PK_Q6_K)
NK_TILES8(iq4xs_tiles_avx2, PK_IQ4_XS)
NK_TILES8(q2k_tiles_avx2, PK_Q2_K)
NK_TILES8(q3k_tiles_avx2, PK_Q3_K)
NK_TILES8(iq2xxs_tiles_avx2, PK_IQ2_XXS)
NK_TILES8(iq2xs_tiles_avx2, PK_IQ2_XS)
NK_TILES8(iq2s_tiles_avx2, PK_IQ2_S)
NK_TILES8(iq3xxs_tiles_avx2, PK_IQ3_XXS)
NK_TILES8(iq3s_tiles_avx2, PK_IQ3_S)
NK_TILES8(iq1s_tiles_avx2, PK_IQ1_S)
NK_TILES8(iq1m_tiles_avx2, PK_IQ1_M)

static nk_tiles_fn nk_tiles_avx2(int dtype) {
    switch (dtype) {
    case PK_Q4_K: return q4k_tiles_avx2;
    case PK_Q5_K: return q5k_tiles_avx2;
    case PK_Q6_K: return q6k_tiles_avx2;
    case PK_IQ4_XS: return iq4xs_tiles_avx2;
    case PK_Q2_K: return q2k_tiles_avx2;
    case PK_Q3_K: return q3k_tiles_avx2;
    case PK_IQ2_XXS: return iq2xxs_tiles_avx2;
    case PK_IQ2_XS: return iq2xs_tiles_avx2;
    case PK_IQ2_S: return iq2s_tiles_avx2;
    case PK_IQ3_XXS: return iq3xxs_tiles_avx2;
    case PK_IQ3_S: return iq3s_tiles_avx2;
    case PK_IQ1_S: return iq1s_tiles_avx2;
    case PK_IQ1_M: return iq1m_tiles_avx2;
    }
    return NULL;
}

#endif

// MARK: aarch64 (NEON)
// One row at a time against up to 4 tokens (T > 1 takes the tokens 4, then 2, then 1 at a time while the row is in
// L1): each super-block's codes are unpacked once and dotted with every token's q8 values. Each token's integer sums
// go through int32 lanes, scaled per sub-block with vmlaq_n_s32 (exact: the bounds of the portable kernels above
// hold lane by lane), and are reduced once to the same int32 the portable code forms; the f32 epilogue is the
// portable code's, statement for statement and token by token, so every level and every T returns the same bits.
#if defined(__aarch64__)
#include <arm_neon.h>

#define NK_NEON_INLINE static inline __attribute__((always_inline))

// ggml's quantize_row_q8_K_ref as nk_prepare_scalar computes it, the same bytes (see nk_prepare_avx2). The product
// and the sum are separate intrinsics, which gcc and clang keep as two roundings (checked in the assembly).
NK_NEON_INLINE int32x4_t nk_nearest4_neon(float32x4_t iv, const float *x) {
    const float32x4_t p = vmulq_f32(iv, vld1q_f32(x));
    const float32x4_t t = vaddq_f32(p, vdupq_n_f32(12582912.f));
    const int32x4_t i = vsubq_s32(vandq_s32(vreinterpretq_s32_f32(t), vdupq_n_s32(0x007fffff)), vdupq_n_s32(0x00400000));
    return vminq_s32(i, vdupq_n_s32(127));
}

static void nk_prepare_neon(const float *x, int64_t cols, uint8_t *out) {
    const int64_t nb = cols / NK_QK;
    int8_t *q = (int8_t *)out;
    float *d = (float *)(out + cols);
    int16_t *bs = (int16_t *)(out + nk_bsum_off(cols));
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * NK_QK;
        int8_t *qb = q + b * NK_QK;
        float32x4_t mx = vdupq_n_f32(0);
        for (int j = 0; j < NK_QK; j += 4) {   // NaN lanes to 0: the portable compare never takes a NaN
            const float32x4_t v = vld1q_f32(xb + j);
            mx = vmaxq_f32(mx, vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(vabsq_f32(v)), vceqq_f32(v, v))));
        }
        const float amax = vmaxvq_f32(mx);
        if (!amax) { nk_zero_block(d, qb, bs, b); continue; }
        float max = 0;
        for (int j = 0; j < NK_QK; j++) if (fabsf(xb[j]) == amax) { max = xb[j]; break; }
        const float iscale = -127.f / max;
        const float32x4_t iv = vdupq_n_f32(iscale);
        for (int j = 0; j < NK_QK; j += 16) {
            const int32x4_t i0 = nk_nearest4_neon(iv, xb + j), i1 = nk_nearest4_neon(iv, xb + j + 4);
            const int32x4_t i2 = nk_nearest4_neon(iv, xb + j + 8), i3 = nk_nearest4_neon(iv, xb + j + 12);
            // every value is in [-127, 127] (NaN lanes give the low bits of their payload, at most 127)
            const int16x8_t h0 = vcombine_s16(vmovn_s32(i0), vmovn_s32(i1)), h1 = vcombine_s16(vmovn_s32(i2), vmovn_s32(i3));
            vst1q_s8(qb + j, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
            bs[b * 16 + j / 16] = (int16_t)vaddvq_s32(vaddq_s32(vaddq_s32(i0, i1), vaddq_s32(i2, i3)));
        }
        d[b] = 1 / iscale;
    }
}

// q4_K / q5_K: sub-block j (32 values) against q8[32 j ..]; codes 0..31, sc < 64, so |sum| < 8 * 64 * 32 * 31 * 127
NK_NEON_INLINE void q45k_dots_neon(const uint8_t *w, const nk_tok *x, int nt, int64_t nb, int five, float *out) {
    const size_t bb = five ? 176 : 144;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), b4 = vdupq_n_u8(0x10);
    float s[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; b++, w += bb) {
        const uint8_t *q = w + (five ? 48 : 16);
        uint8_t sc[8], mn[8];
        nk_scale_min_k4(w + 4, sc, mn);
        uint8x16_t h0 = vdupq_n_u8(0), h1 = h0;
        if (five) { h0 = vld1q_u8(w + 16); h1 = vld1q_u8(w + 32); }
        int32x4_t acc[4];
        for (int t = 0; t < nt; t++) acc[t] = vdupq_n_s32(0);
        for (int jj = 0; jj < 4; jj++) {
            const uint8x16_t r0 = vld1q_u8(q + 32 * jj), r1 = vld1q_u8(q + 32 * jj + 16);
            uint8x16_t l0 = vandq_u8(r0, m4), l1 = vandq_u8(r1, m4), u0 = vshrq_n_u8(r0, 4), u1 = vshrq_n_u8(r1, 4);
            if (five) {   // bit j of qh[l] is the fifth bit of sub-block j's value l
                const uint8x16_t bl = vdupq_n_u8((uint8_t)(1u << (2 * jj))), bu = vdupq_n_u8((uint8_t)(2u << (2 * jj)));
                l0 = vorrq_u8(l0, vandq_u8(vtstq_u8(h0, bl), b4)); l1 = vorrq_u8(l1, vandq_u8(vtstq_u8(h1, bl), b4));
                u0 = vorrq_u8(u0, vandq_u8(vtstq_u8(h0, bu), b4)); u1 = vorrq_u8(u1, vandq_u8(vtstq_u8(h1, bu), b4));
            }
            for (int t = 0; t < nt; t++) {
                const int8_t *xq = x[t].q + b * NK_QK + 64 * jj;
                int32x4_t tl = pk_dot16_neon(vdupq_n_s32(0), vreinterpretq_s8_u8(l0), vld1q_s8(xq));
                tl = pk_dot16_neon(tl, vreinterpretq_s8_u8(l1), vld1q_s8(xq + 16));
                int32x4_t tu = pk_dot16_neon(vdupq_n_s32(0), vreinterpretq_s8_u8(u0), vld1q_s8(xq + 32));
                tu = pk_dot16_neon(tu, vreinterpretq_s8_u8(u1), vld1q_s8(xq + 48));
                acc[t] = vmlaq_n_s32(acc[t], tl, sc[2 * jj]);
                acc[t] = vmlaq_n_s32(acc[t], tu, sc[2 * jj + 1]);
            }
        }
        const int16x8_t mv = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(mn)));
        for (int t = 0; t < nt; t++) {
            const int isum = vaddvq_s32(acc[t]);
            // the mins against the bsums: 8 pairs of int16 sums
            const int16x8_t bs0 = vld1q_s16(x[t].bs + b * 16), bs1 = vld1q_s16(x[t].bs + b * 16 + 8);
            const int16x8_t ps = vpaddq_s16(bs0, bs1);   // sums of sub-blocks 0..7 (|.| <= 32 * 127)
            const int imin = vaddvq_s32(vmlal_high_s16(vmull_s16(vget_low_s16(ps), vget_low_s16(mv)), ps, mv));
            s[t] = nk_fold_min(s[t], w, x[t].d[b], isum, imin);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = s[t];
}

// q6_K: values (lo | hi << 4) - 32 in int8; 16 int8 scales, one per 16 values
NK_NEON_INLINE void q6k_dots_neon(const uint8_t *w, const nk_tok *x, int nt, int64_t nb, float *out) {
    float s[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; b++, w += 210) {
        const int8_t *sc = (const int8_t *)(w + 192);
        int32x4_t acc[4];
        for (int t = 0; t < nt; t++) acc[t] = vdupq_n_s32(0);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = w + 64 * h, *qh = w + 128 + 32 * h;
            const uint8x16_t L[4] = { vld1q_u8(ql), vld1q_u8(ql + 16), vld1q_u8(ql + 32), vld1q_u8(ql + 48) };
            const uint8x16_t H[2] = { vld1q_u8(qh), vld1q_u8(qh + 16) };
            for (int g = 0; g < 4; g++)
                for (int half = 0; half < 2; half++) {   // values 128 h + 32 g + 16 half .. + 15: sub-block 8 h + 2 g + half
                    const int8x16_t a = pk_q6_levels_neon(L[half], L[2 + half], H[half], g);
                    const int j = 8 * h + 2 * g + half;
                    for (int t = 0; t < nt; t++)
                        acc[t] = vmlaq_n_s32(acc[t], pk_dot16_neon(vdupq_n_s32(0), a, vld1q_s8(x[t].q + b * NK_QK + 16 * j)), sc[j]);
                }
        }
        for (int t = 0; t < nt; t++) s[t] = nk_fold(s[t], w + 208, x[t].d[b], vaddvq_s32(acc[t]));
    }
    for (int t = 0; t < nt; t++) out[t] = s[t];
}

// iq4_xs: sub-block j's 16 bytes give values 32 j + 0..15 (low nibbles) and + 16..31 (high), via the iq4_nl table
NK_NEON_INLINE void iq4xs_dots_neon(const uint8_t *w, const nk_tok *x, int nt, int64_t nb, float *out) {
    const int8x16_t lut = vld1q_s8(pk_iq4nl_values);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    float s[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; b++, w += 136) {
        const uint8_t *q = w + 8;
        int32x4_t acc[4];
        for (int t = 0; t < nt; t++) acc[t] = vdupq_n_s32(0);
        for (int j = 0; j < 8; j++) {
            const uint8x16_t r = vld1q_u8(q + 16 * j);
            const int8x16_t lo = vqtbl1q_s8(lut, vandq_u8(r, m4)), hi = vqtbl1q_s8(lut, vshrq_n_u8(r, 4));
            const int ls = pk_iq4xs_scale(w, j);
            for (int t = 0; t < nt; t++) {
                const int8_t *q8 = x[t].q + b * NK_QK + 32 * j;
                const int32x4_t d = pk_dot16_neon(pk_dot16_neon(vdupq_n_s32(0), lo, vld1q_s8(q8)), hi, vld1q_s8(q8 + 16));
                acc[t] = vmlaq_n_s32(acc[t], d, ls);
            }
        }
        for (int t = 0; t < nt; t++) s[t] = nk_fold(s[t], w, x[t].d[b], vaddvq_s32(acc[t]));
    }
    for (int t = 0; t < nt; t++) out[t] = s[t];
}

// q2_K: values 0..3 (bits 2k of qs[32 g + l]) against sub-block j = 8 g + 2 k + half, its 4-bit scale per 16
// values; the mins (high nibbles) against the bsums
NK_NEON_INLINE void q2k_dots_neon(const uint8_t *w, const nk_tok *x, int nt, int64_t nb, float *out) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    float s[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; b++, w += 84) {
        const uint8_t *sc = w, *q2 = w + 16;
        int32x4_t acc[4];
        for (int t = 0; t < nt; t++) acc[t] = vdupq_n_s32(0);
        for (int g = 0; g < 2; g++) {
            const uint8x16_t Q[2] = { vld1q_u8(q2 + 32 * g), vld1q_u8(q2 + 32 * g + 16) };
            for (int k = 0; k < 4; k++)
                for (int half = 0; half < 2; half++) {
                    const uint8x16_t a = vandq_u8(vshlq_u8(Q[half], vdupq_n_s8((int8_t)(-2 * k))), m3);
                    const int j = 8 * g + 2 * k + half;
                    for (int t = 0; t < nt; t++)
                        acc[t] = vmlaq_n_s32(acc[t], pk_dot16_neon(vdupq_n_s32(0), vreinterpretq_s8_u8(a), vld1q_s8(x[t].q + b * NK_QK + 16 * j)), sc[j] & 0xF);
                }
        }
        const uint8x16_t mv = vshrq_n_u8(vld1q_u8(sc), 4);
        const int16x8_t ml = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(mv))), mh = vreinterpretq_s16_u16(vmovl_high_u8(mv));
        for (int t = 0; t < nt; t++) {
            const int isum = vaddvq_s32(acc[t]);
            const int16x8_t bs0 = vld1q_s16(x[t].bs + b * 16), bs1 = vld1q_s16(x[t].bs + b * 16 + 8);
            int32x4_t m = vmull_s16(vget_low_s16(bs0), vget_low_s16(ml));
            m = vmlal_high_s16(m, bs0, ml);
            m = vmlal_s16(m, vget_low_s16(bs1), vget_low_s16(mh));
            m = vmlal_high_s16(m, bs1, mh);
            s[t] = nk_fold_q2(s[t], w, x[t].d[b], isum, vaddvq_s32(m));
        }
    }
    for (int t = 0; t < nt; t++) out[t] = s[t];
}

// q3_K: values (bits 2k of qs) - 4 where bit 4 g + k of hmask is clear, in [-4, 3]; 16 6-bit scales - 32
NK_NEON_INLINE void q3k_dots_neon(const uint8_t *w, const nk_tok *x, int nt, int64_t nb, float *out) {
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    float s[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; b++, w += 110) {
        const uint8_t *hm = w, *q3 = w + 32, *sc = w + 96;
        int sv[16];
        for (int j = 0; j < 16; j++) sv[j] = pk_q3k_scale(sc, j);
        const uint8x16_t H[2] = { vld1q_u8(hm), vld1q_u8(hm + 16) };
        int32x4_t acc[4];
        for (int t = 0; t < nt; t++) acc[t] = vdupq_n_s32(0);
        for (int g = 0; g < 2; g++) {
            const uint8x16_t Q[2] = { vld1q_u8(q3 + 32 * g), vld1q_u8(q3 + 32 * g + 16) };
            for (int k = 0; k < 4; k++)
                for (int half = 0; half < 2; half++) {
                    const uint8x16_t q = vandq_u8(vshlq_u8(Q[half], vdupq_n_s8((int8_t)(-2 * k))), m3);
                    const uint8x16_t h = vtstq_u8(H[half], vdupq_n_u8((uint8_t)(1u << (4 * g + k))));
                    const int8x16_t a = vreinterpretq_s8_u8(vsubq_u8(q, vbicq_u8(four, h)));
                    const int j = 8 * g + 2 * k + half;
                    for (int t = 0; t < nt; t++)
                        acc[t] = vmlaq_n_s32(acc[t], pk_dot16_neon(vdupq_n_s32(0), a, vld1q_s8(x[t].q + b * NK_QK + 16 * j)), sv[j]);
                }
        }
        for (int t = 0; t < nt; t++) s[t] = nk_fold(s[t], w + 108, x[t].d[b], vaddvq_s32(acc[t]));
    }
    for (int t = 0; t < nt; t++) out[t] = s[t];
}

// One row against nt = 1, 2 or 4 tokens: each kernel inlined with a constant nt.
#define NK_NEON_NT(CALL)                                                                                      \
    do { if (nt == 4) { const int n_ = 4; CALL; } else if (nt == 2) { const int n_ = 2; CALL; }               \
         else { const int n_ = 1; CALL; } } while (0)
static void nk_row_neon(int dtype, const uint8_t *w, const nk_tok *x, int nt, int64_t nb, float *out) {
    switch (dtype) {
    case PK_Q6_K: NK_NEON_NT(q6k_dots_neon(w, x, n_, nb, out)); break;
    case PK_IQ4_XS: NK_NEON_NT(iq4xs_dots_neon(w, x, n_, nb, out)); break;
    case PK_Q2_K: NK_NEON_NT(q2k_dots_neon(w, x, n_, nb, out)); break;
    case PK_Q3_K: NK_NEON_NT(q3k_dots_neon(w, x, n_, nb, out)); break;
    case PK_Q5_K: NK_NEON_NT(q45k_dots_neon(w, x, n_, nb, 1, out)); break;
    default: NK_NEON_NT(q45k_dots_neon(w, x, n_, nb, 0, out)); break;
    }
}

static int nk_neon_handles(int dtype) { return nk_handles(dtype); }

static void nk_matmul_neon(int dtype, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs,
                           int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    const int64_t nb = cols / NK_QK;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = W + (size_t)r * rb;
        for (int64_t t = 0; t < T;) {
            const int nt = T - t >= 4 ? 4 : T - t >= 2 ? 2 : 1;
            nk_tok x[4];
            float o[4];
            for (int i = 0; i < nt; i++) x[i] = nk_token(xn + (size_t)(t + i) * xs, cols);
            nk_row_neon(dtype, w, x, nt, nb, o);
            for (int i = 0; i < nt; i++) Y[(t + i) * ldy + r] = o[i];
            t += nt;
        }
    }
}
#endif

// MARK: entry points

void pk_native_k_prepare(int dtype, const float *x, int64_t cols, uint8_t *out) {
    if (!pk_native_k_x_stride(dtype, cols)) return;
#if defined(__x86_64__)
    if (strcmp(pk_ops_current()->name, "scalar") != 0) { nk_prepare_avx2(x, cols, out); return; }
#endif
#if defined(__aarch64__)
    if (strcmp(pk_ops_current()->name, "neon") == 0) { nk_prepare_neon(x, cols, out); return; }
#endif
    nk_prepare_scalar(x, cols, out);
}

void pk_native_k_matmul(int dtype, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                        float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    if (!pk_native_k_x_stride(dtype, cols) || r0 >= r1 || T <= 0) return;
#if defined(__x86_64__)
    const char *lv = pk_ops_current()->name;
    int vnni = strcmp(lv, "avx512vnni") == 0 || strcmp(lv, "avx512bf16") == 0;
    int avx2 = strcmp(lv, "avx2") == 0 || strcmp(lv, "avx512") == 0;
    if (NK_LAT(dtype)) {   // kernels_iq.c, but the tiles for several tokens
        if (vnni && T >= NK_TILE_T(dtype)) nk_tiles_vnni(dtype)(W, rb, cols, xn, xs, T, Y, ldy, r0, r1);
        else if (avx2 && T >= NK_TILE_T_AVX2(dtype)) nk_tiles_avx2(dtype)(W, rb, cols, xn, xs, T, Y, ldy, r0, r1);
        else pk_native_iq_matmul(dtype, W, rb, cols, xn, xs, T, Y, ldy, r0, r1);
        return;
    }
    if (vnni && T >= NK_TILE_T(dtype) && nk_tiles_vnni(dtype)) { nk_tiles_vnni(dtype)(W, rb, cols, xn, xs, T, Y, ldy, r0, r1); return; }
    if (vnni && T == 1 && (dtype == PK_Q4_K || dtype == PK_Q5_K)) {
        const nk_tok x = nk_token(xn, cols);
        int64_t r = r0;
        if (cols <= 65536 && r1 - r0 >= 4) {   // the re-laid token on the stack (pool threads have 4 MiB)
            int8_t xr[cols] __attribute__((aligned(64)));
            nk_relayout(x.q, cols, xr);
            for (; r + 4 <= r1; r += 4)
                (dtype == PK_Q4_K ? q4k_rows4z_vnni : q5k_rows4z_vnni)(W + (size_t)r * rb, rb, xr, &x, cols / NK_QK, Y + r);
        }
        nk_mt_fn f1 = nk_simd_fn(dtype, 1);
        for (; r < r1; r++) f1(W + (size_t)r * rb, &x, 1, cols / NK_QK, Y + r);
        return;
    }
    if (avx2 && T >= NK_TILE_T_AVX2(dtype)) { nk_tiles_avx2(dtype)(W, rb, cols, xn, xs, T, Y, ldy, r0, r1); return; }
    nk_mt_fn f = (vnni || avx2) ? nk_simd_fn(dtype, vnni) : NULL;
    if (f) { nk_matmul_simd(f, W, rb, cols, xn, xs, T, Y, ldy, r0, r1); return; }
#else
    if (NK_LAT(dtype)) { pk_native_iq_matmul(dtype, W, rb, cols, xn, xs, T, Y, ldy, r0, r1); return; }
#endif
#if defined(__aarch64__)
    if (nk_neon_handles(dtype) && strcmp(pk_ops_current()->name, "neon") == 0) {
        nk_matmul_neon(dtype, W, rb, cols, xn, xs, T, Y, ldy, r0, r1);
        return;
    }
#endif
    nk_matmul_scalar(dtype, W, rb, cols, xn, xs, T, Y, ldy, r0, r1);
}
