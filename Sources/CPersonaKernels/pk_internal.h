// Private to CPersonaKernels: the per-SIMD-level function table.
#ifndef PK_INTERNAL_H
#define PK_INTERNAL_H
#include "include/kernels.h"
#include <string.h>
#include <math.h>

#define PK_NTYPES 23
/* The importance-matrix lattice types (kernels_iq.c). */
#define PK_IS_LATTICE(dtype) ((dtype) >= PK_IQ2_XXS && (dtype) <= PK_IQ1_M)
/* Widest row the kernels convert at once on the stack; wider rows are processed in column chunks. */
#define PK_MAX_COLS_STACK 16384

/* kernels_iq.c: the IQ1 / IQ2 / IQ3 types widened to f32 as gguf-py does; 0 for any other type. */
int pk_iq_dequant_scalar(int dtype, const uint8_t *p, int64_t cols, float *out);
// kernels_iq.c: the lattice types' exact widening and T == 1 product at the AVX-512 (512), AVX2 (256) and NEON levels.
#define PK_IQ_EXACT(T, W) void pk_dequant_##T##_##W(const void *row, int64_t cols, float *out); \
    void pk_matvec_##T##_##W(const uint8_t *W_, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1);
#define PK_IQ_EXACT_ALL(W) PK_IQ_EXACT(iq2_xxs, W) PK_IQ_EXACT(iq2_xs, W) PK_IQ_EXACT(iq2_s, W) \
    PK_IQ_EXACT(iq3_xxs, W) PK_IQ_EXACT(iq3_s, W) PK_IQ_EXACT(iq1_s, W) PK_IQ_EXACT(iq1_m, W)
#if defined(__x86_64__)
PK_IQ_EXACT_ALL(512)
PK_IQ_EXACT_ALL(256)
#endif
#if defined(__aarch64__)
PK_IQ_EXACT_ALL(neon)
#endif

/* Converts `cols` elements (a multiple of the block size) of one row to f32. */
typedef void (*pk_dequant_fn)(const void *row, int64_t cols, float *out);
/* y[r] = W[r, :] . x for r in [r0, r1); rows are `rb` bytes apart. */
typedef void (*pk_matvec_fn)(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1);
/* Micro-kernel: for i < nr (<= 4), j < nt (<= 4): s = sum_{c<k} w[i*ldw + c] * x[j*ldx + c];
   y[j*ldy + i] = s, or += s when accumulate. */
typedef void (*pk_gemm_fn)(const float *w, int64_t ldw, int nr, const float *x, int64_t ldx, int nt,
                           int64_t k, float *y, int64_t ldy, int accumulate);

/* Native precision (kernels_native.c): Y[t*ldy + r] for t < T, r in [r0, r1), from activations that
   pk_native_prepare wrote, `xs` bytes per token. */
/* Native bf16 / f16 activations of `cols` values (pk_native_prepare): the rounded values as f32 first, then their
   16-bit form here (the decode rows, ops->native_f16 / native_bf16x, read it). */
static inline const uint16_t *pk_native_x16(const uint8_t *xn, int64_t cols) { return (const uint16_t *)(xn + (size_t)cols * 4); }

typedef void (*pk_native_fn)(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                             float *Y, int64_t ldy, int64_t r0, int64_t r1);

typedef struct {
    const char *name;
    float (*dot)(const float *, const float *, int64_t);
    void (*axpy)(float, const float *, float *, int64_t);
    pk_dequant_fn dequant[PK_NTYPES];   /* NULL: the portable one */
    pk_matvec_fn matvec[PK_NTYPES];     /* NULL: convert each row, then dot */
    pk_gemm_fn gemm;
    uint64_t (*read_sum)(const void *, size_t);
    void (*silu_mul)(float *g, const float *u, int64_t n);
    void (*gelu_tanh_mul)(float *g, const float *u, int64_t n);
    void (*to_f16)(const float *x, uint16_t *out, int64_t n);   /* NULL: pk_f32_to_f16 per value */
    /* the attention loop (attention_portable in kernels.c) for the head sizes it handles (returns 1), else 0;
       NULL: the portable loop */
    int (*attention)(const float *q, int64_t ldq, int64_t P, int64_t H, int64_t group, const void *K, int64_t ldk,
                     const void *V, int64_t ldv, int kv, int64_t n, int64_t hd, float scale, float softcap, float *scores,
                     int64_t lds, float *m, float *l, float *o, int64_t ldo, int normalise);
    pk_native_fn native_q8;             /* NULL: the portable one */
    pk_native_fn native_bf16;           /* NULL: bf16-rounded f32 activations through the exact kernels */
    pk_native_fn native_f16;            /* T == 1 on the f16 bits of the prepared x; NULL: the exact f16 rows */
    pk_native_fn native_bf16x;          /* without native_bf16, T == 1 on the bf16 bits of the prepared x */
    const struct pk_exact_kernel *exact[PK_NTYPES];   /* T == 1 on laid-out activations; NULL: matvec */
} pk_ops;

/* A level's attention dispatch (attention_512 / attention_256 / attention_neon) calls its tile loop FN with NC
   vectors a head: one query (pk_attention_head) gets its own inlined copy with P = H = group = 1 as constants, and
   an f16 cache (kv == PK_F16) its own copies. Expects the ops->attention parameters in scope. */
#define PK_ATTENTION_NC_CALL(FN, NC, F16)                                                                          \
    (P == 1 && H == 1 && group == 1                                                                              \
         ? FN(NC, F16, q, 0, 1, 1, 1, K, ldk, V, ldv, n, scale, softcap, scores, lds, m, l, o, 0, normalise)    \
         : FN(NC, F16, q, ldq, P, H, group, K, ldk, V, ldv, n, scale, softcap, scores, lds, m, l, o, ldo, normalise))
#define PK_ATTENTION_NC(FN, NC) (kv == PK_F16 ? PK_ATTENTION_NC_CALL(FN, NC, 1) : PK_ATTENTION_NC_CALL(FN, NC, 0))

/* The attention kernels' soft-capping of a head's n scores, softcap * tanh(s / softcap) in place (Gemma-2), after
   the tile loop found the raw maximum; returns the new maximum. */
static inline float pk_softcap_scores(float *s, int64_t n, float softcap) {
    float mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
        s[j] = tanhf(s[j] / softcap) * softcap;
        if (s[j] > mx) mx = s[j];
    }
    return mx;
}

extern const pk_ops pk_ops_scalar;
#if defined(__x86_64__)
extern const pk_ops pk_ops_avx2;
extern const pk_ops pk_ops_avx512;
int pk_x86_has_avx2(void);
int pk_x86_has_avx512(void);
int pk_x86_has_avx512vnni(void);
int pk_x86_has_avx512bf16(void);
extern const pk_ops pk_ops_avx512vnni;
extern const pk_ops pk_ops_avx512bf16;
void pk_native_q8_avx2(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                       float *Y, int64_t ldy, int64_t r0, int64_t r1);
void pk_native_q8_vnni(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                       float *Y, int64_t ldy, int64_t r0, int64_t r1);
/* kernels_x86_quant.c: AVX-512 (_512) and AVX2 (_256) dequant and matrix-vector kernels of the types kernels_x86.c has none for. */
#define PK_X86_QUANT_DECL(TYPE)                                                                              \
    void pk_dequant_##TYPE##_512(const void *row, int64_t cols, float *out);                                \
    void pk_matvec_##TYPE##_512(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1); \
    void pk_dequant_##TYPE##_256(const void *row, int64_t cols, float *out);                                \
    void pk_matvec_##TYPE##_256(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1);
PK_X86_QUANT_DECL(q5_0) PK_X86_QUANT_DECL(q5_1) PK_X86_QUANT_DECL(iq4_nl) PK_X86_QUANT_DECL(q2_K) PK_X86_QUANT_DECL(q3_K)
PK_X86_QUANT_DECL(q4_K) PK_X86_QUANT_DECL(q5_K) PK_X86_QUANT_DECL(q6_K) PK_X86_QUANT_DECL(iq4_xs)
PK_X86_QUANT_DECL(mxfp4)
#undef PK_X86_QUANT_DECL
void pk_native_bf16_avx512bf16(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                               float *Y, int64_t ldy, int64_t r0, int64_t r1);
#endif
#if defined(__aarch64__)
extern const pk_ops pk_ops_neon;
#endif

/* The pk_ops table in use (kernels.c). */
const pk_ops *pk_ops_current(void);
/* Whether a level name is one of the AVX-512 levels (avx512, avx512vnni, avx512bf16). */
static inline int pk_level_avx512(const char *name) { return strncmp(name, "avx512", 6) == 0; }

extern const int8_t pk_iq4nl_values[16];
/* MXFP4's 16 E2M1 values, doubled (ggml's kvalues_mxfp4), and its E8M0 scale halved to match: 2^(e - 128). */
extern const int8_t pk_mxfp4_values[16];
static inline float pk_e8m0_half(uint8_t e) {
    const uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* q4_K / q5_K: sub-block j's 6-bit scale and min from the 12 packed bytes (ggml's get_scale_min_k4). */
static inline void pk_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) { *d = q[j] & 63; *m = q[j + 4] & 63; }
    else { *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4)); *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4)); }
}

/* The same for all 8 sub-blocks at once, 32 bits at a time (as llama.cpp's SIMD code does): the bytes of u[0..1]
   are the 8 scales, those of u[2..3] the 8 mins. */
static inline void pk_scale_min_k4_all(const uint8_t *q, uint32_t u[4]) {
    memcpy(u, q, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    uint32_t mins_lo = u[1] & m6;
    u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    u[2] = mins_lo;
    u[0] &= m6;
}

/* q3_K: sub-block j's (0..15) signed 6-bit scale from the 12 packed bytes `sc` (4 low bits, then 2 high bits). */
static inline int pk_q3k_scale(const uint8_t *sc, int j) {
    const int lo = j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4, hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | hi << 4) - 32;
}

/* iq4_xs: sub-block j's (0..7) signed 6-bit scale ls - 32 from the block (scales_h at 2, scales_l at 4). */
static inline int pk_iq4xs_scale(const uint8_t *blk, int j) {
    uint16_t sh; memcpy(&sh, blk + 2, 2);
    return (((blk[4 + j / 2] >> (4 * (j % 2))) & 0xF) | ((sh >> (2 * j)) & 3) << 4) - 32;
}

#if defined(__aarch64__)
#include <arm_neon.h>
/* The f16 at p (unaligned) as f32: one fcvt instead of a call to pk_f16_to_f32. */
static inline float pk_f16_at_neon(const uint8_t *p) { __fp16 h; memcpy(&h, p, 2); return (float)h; }

/* acc + the 16 products a * b in int32 lanes, for the native kernels of kernels_native_legacy.c and
   kernels_native_k.c: sdot with the dot-product extension, else vmull + vpadal (the lanes differ by path; their sum
   does not). */
static inline int32x4_t pk_dot16_neon(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));   // |a b| <= 128 * 127: a pair fits int16
    return vpadalq_s16(acc, vmull_high_s8(a, b));
#endif
}

/* The 32 levels of a legacy block (q4_0 q - 8, q5_0 q - 16, iq4_nl's table, q4_1 / q5_1 codes 0..31) as int8:
   a0 elements 0..15 (low nibbles), a1 16..31 (high nibbles); for the native dot products (kernels_native_legacy.c)
   and the NEON dequantisation (kernels_neon.c). */
static inline void pk_legacy_levels_neon(int ty, const uint8_t *blk, int8x16_t *a0, int8x16_t *a1) {
    static const uint8_t sel[16] = { 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128 };
    const int one = ty == PK_Q5_1;
    const uint8x16_t r = vld1q_u8(blk + (ty == PK_Q4_1 ? 4 : ty == PK_Q5_0 ? 6 : one ? 8 : 2));
    uint8x16_t lo = vandq_u8(r, vdupq_n_u8(0x0F)), hi = vshrq_n_u8(r, 4);
    if (ty == PK_IQ4_NL) {
        const int8x16_t lut = vld1q_s8(pk_iq4nl_values);
        *a0 = vqtbl1q_s8(lut, lo); *a1 = vqtbl1q_s8(lut, hi);
        return;
    }
    if (ty == PK_Q5_0 || ty == PK_Q5_1) {   // bit i of qh is element i's fifth bit: 0x10 where set
        uint32_t qh; memcpy(&qh, blk + (one ? 4 : 2), 4);
        const uint8x16_t bl = vcombine_u8(vdup_n_u8((uint8_t)qh), vdup_n_u8((uint8_t)(qh >> 8)));
        const uint8x16_t bh = vcombine_u8(vdup_n_u8((uint8_t)(qh >> 16)), vdup_n_u8((uint8_t)(qh >> 24)));
        lo = vorrq_u8(lo, vandq_u8(vtstq_u8(bl, vld1q_u8(sel)), vdupq_n_u8(0x10)));
        hi = vorrq_u8(hi, vandq_u8(vtstq_u8(bh, vld1q_u8(sel)), vdupq_n_u8(0x10)));
    }
    *a0 = vreinterpretq_s8_u8(lo); *a1 = vreinterpretq_s8_u8(hi);
    if (ty == PK_Q4_0 || ty == PK_Q5_0) {
        const int8x16_t off = vdupq_n_s8(ty == PK_Q4_0 ? 8 : 16);
        *a0 = vsubq_s8(*a0, off); *a1 = vsubq_s8(*a1, off);
    }
}

/* q6_K: 16 values q - 32 as int8 from the quarter k (0..3) of a 128-value half: l0 / l1 the 16 ql bytes at ql + o /
   ql + 32 + o, hh the 16 qh bytes at qh + o; quarter k is the low (k < 2) or high nibble of l0 (k even) or l1
   (k odd) with qh bits 2k, 2k + 1 on top. For the native dot products (kernels_native_k.c) and the exact dequant /
   decode (kernels_neon.c). */
static inline int8x16_t pk_q6_levels_neon(uint8x16_t l0, uint8x16_t l1, uint8x16_t hh, int k) {
    const uint8x16_t l = k & 1 ? l1 : l0;
    const uint8x16_t lo = k >> 1 ? vshrq_n_u8(l, 4) : vandq_u8(l, vdupq_n_u8(0x0F));
    const uint8x16_t hb = vandq_u8(vshlq_u8(hh, vdupq_n_s8((int8_t)(-2 * k))), vdupq_n_u8(3));
    return vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, vshlq_n_u8(hb, 4))), vdupq_n_s8(32));
}
#endif

/* Native precision of the other quantised types, one file per family (kernels_native.c dispatches to them):
   kernels_native_legacy.c: q4_0, q5_0, iq4_nl with q8_0 activations, q4_1, q5_1 with q8_1 activations;
   kernels_native_k.c: q2_K, q3_K, q4_K, q5_K, q6_K, iq4_xs with q8_K activations (and the lattice types, whose
   dot products are in kernels_iq.c).
   x_stride: bytes one prepared token takes (a multiple of 64), 0 if the family does not handle `dtype` / `cols`.
   prepare: one token's f32 activations -> its prepared form (identical bits at every SIMD level).
   matmul: Y[t*ldy + r] for t < T, r in [r0, r1) from T prepared tokens `xs` bytes apart; W rows `rb` bytes apart. */
size_t pk_native_legacy_x_stride(int dtype, int64_t cols);
void pk_native_legacy_prepare(int dtype, const float *x, int64_t cols, uint8_t *out);
void pk_native_legacy_matmul(int dtype, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                             float *Y, int64_t ldy, int64_t r0, int64_t r1);
size_t pk_native_k_x_stride(int dtype, int64_t cols);
/* Where a prepared block_q8_K token's int16 bsums[nb][16] start (after int8 q[cols] and float d[nb]). */
static inline int64_t pk_q8k_bsum_off(int64_t cols) { return cols + ((cols / 256 * 4 + 31) & ~(int64_t)31); }
void pk_native_k_prepare(int dtype, const float *x, int64_t cols, uint8_t *out);
void pk_native_k_matmul(int dtype, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                        float *Y, int64_t ldy, int64_t r0, int64_t r1);

/* kernels_iq.c: native precision of the lattice types (IQ2_XXS .. IQ1_M) on kernels_native_k.c's block_q8_K tokens. */
/* What a row's f32 sum is multiplied by at the end: 1/8 (IQ2, IQ1), 1/4 (IQ3_XXS), 1 (IQ3_S). */
float pk_iq_native_factor(int dtype);
/* One super-block as the VNNI tiles read it: u[256] the values as bytes 64 + v (v = grid * sign; IQ1: 8 (grid +
   shift)), ls[16] each half's integer scale 2 s + 1, *dbits the f16 d. The block's share of a row's product:
   d * sum_h ls_h (sum_j u_j q_j - 64 bsum_h), times pk_iq_native_factor at the end. */
void pk_iq_block_u8(int dtype, const uint8_t *blk, uint8_t *u, int32_t *ls, uint16_t *dbits);
void pk_native_iq_matmul(int dtype, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                         float *Y, int64_t ldy, int64_t r0, int64_t r1);

/* Exact T == 1 kernels that read x in an order of their own (AVX-512; kernels_x86_exact32.c for the blocks of 32,
   kernels_x86_exactk.c for q4_K, q5_K, q6_K, iq4_xs, kernels_x86_exactk23.c for q2_K, q3_K). The activations are
   laid out once per call, so each 4-bit group of a weight row can be turned into floats in place (mask, convert)
   with no shuffle, and the per-block scales are applied to partial sums: y = sum over blocks of d * sum(q x)
   (- m * sum(x)), which equals the dequantised f32 row times x within f32 summation rounding. x_floats: floats of
   the prepared x for `cols` (a multiple of 16); prepare: x -> xp (64-byte aligned); matvec: y[r] for r in
   [r0, r1), W rows `rb` bytes apart. */
typedef struct pk_exact_kernel {
    int64_t (*x_floats)(int64_t cols);
    void (*prepare)(const float *x, int64_t cols, float *xp);
    void (*matvec)(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1);
} pk_exact_kernel;
#if defined(__x86_64__)
extern const pk_exact_kernel pk_exact512_q4_0, pk_exact512_q4_1, pk_exact512_q5_0, pk_exact512_q5_1, pk_exact512_iq4_nl,
    pk_exact512_q8_0;
extern const pk_exact_kernel pk_exact512_q4_K, pk_exact512_q5_K, pk_exact512_q6_K, pk_exact512_iq4_xs;
extern const pk_exact_kernel pk_exact512_q2_K, pk_exact512_q3_K;
/* The same on AVX2 (kernels_x86_exact256.c). */
extern const pk_exact_kernel pk_exact256_q4_0, pk_exact256_q4_1, pk_exact256_q5_0, pk_exact256_q5_1, pk_exact256_q4_K,
    pk_exact256_q5_K, pk_exact256_q6_K, pk_exact256_iq4_xs, pk_exact256_q2_K, pk_exact256_q3_K;
#endif

#endif
