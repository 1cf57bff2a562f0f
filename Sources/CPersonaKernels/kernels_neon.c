// NEON kernels for aarch64 (Apple Silicon, arm64 Linux). Advanced SIMD is part of baseline ARMv8-A, so this
// level needs no run-time check; the optional dot-product path (native q8_0) is chosen at compile time only.
// Same numerics as the x86 levels: activations stay f32, sums differ from exact only by f32 rounding in their
// order, exp is the same Cephes polynomial.
#include "pk_internal.h"
#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>
#include <math.h>

// One f16 scale to f32 (fcvt; __fp16 is always available on aarch64).

static inline float32x4_t bf16x4(const uint16_t *p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
static inline float32x4_t f16x4(const uint16_t *p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
static inline float32x4_t f32x4(const float *p) { return vld1q_f32(p); }
static inline float conv_f32(float v) { return v; }

// MARK: dot, axpy, read_sum

static float dot_neon(const float *a, const float *b, int64_t n) {
    float32x4_t s0 = vdupq_n_f32(0), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
        s1 = vfmaq_f32(s1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
        s2 = vfmaq_f32(s2, vld1q_f32(a + i + 8), vld1q_f32(b + i + 8));
        s3 = vfmaq_f32(s3, vld1q_f32(a + i + 12), vld1q_f32(b + i + 12));
        s4 = vfmaq_f32(s4, vld1q_f32(a + i + 16), vld1q_f32(b + i + 16));
        s5 = vfmaq_f32(s5, vld1q_f32(a + i + 20), vld1q_f32(b + i + 20));
        s6 = vfmaq_f32(s6, vld1q_f32(a + i + 24), vld1q_f32(b + i + 24));
        s7 = vfmaq_f32(s7, vld1q_f32(a + i + 28), vld1q_f32(b + i + 28));
    }
    for (; i + 4 <= n; i += 4) s0 = vfmaq_f32(s0, vld1q_f32(a + i), vld1q_f32(b + i));
    float t = 0;
    for (; i < n; i++) t += a[i] * b[i];
    float32x4_t s = vaddq_f32(vaddq_f32(vaddq_f32(s0, s1), vaddq_f32(s2, s3)), vaddq_f32(vaddq_f32(s4, s5), vaddq_f32(s6, s7)));
    return vaddvq_f32(s) + t;
}

static void axpy_neon(float a, const float *x, float *y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
        vst1q_f32(y + i + 4, vfmaq_n_f32(vld1q_f32(y + i + 4), vld1q_f32(x + i + 4), a));
        vst1q_f32(y + i + 8, vfmaq_n_f32(vld1q_f32(y + i + 8), vld1q_f32(x + i + 8), a));
        vst1q_f32(y + i + 12, vfmaq_n_f32(vld1q_f32(y + i + 12), vld1q_f32(x + i + 12), a));
    }
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
    for (; i < n; i++) y[i] += a * x[i];
}

// Exact 64-bit sum (as the scalar level): uadalp widens each pair of words into 64-bit lanes at no extra cost.
static uint64_t read_sum_neon(const void *p, size_t bytes) {
    const uint32_t *u = (const uint32_t *)p;
    size_t n = bytes / 4, i = 0;
    uint64x2_t s0 = vdupq_n_u64(0), s1 = s0, s2 = s0, s3 = s0;
    for (; i + 16 <= n; i += 16) {
        s0 = vpadalq_u32(s0, vld1q_u32(u + i));
        s1 = vpadalq_u32(s1, vld1q_u32(u + i + 4));
        s2 = vpadalq_u32(s2, vld1q_u32(u + i + 8));
        s3 = vpadalq_u32(s3, vld1q_u32(u + i + 12));
    }
    uint64_t t = vaddvq_u64(vaddq_u64(vaddq_u64(s0, s1), vaddq_u64(s2, s3)));
    for (; i < n; i++) t += u[i];
    return t;
}

// MARK: conversions

static void dequant_f16_neon(const void *row, int64_t cols, float *out) {
    const uint16_t *h = (const uint16_t *)row;
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8) {
        float16x8_t v = vreinterpretq_f16_u16(vld1q_u16(h + i));
        vst1q_f32(out + i, vcvt_f32_f16(vget_low_f16(v)));
        vst1q_f32(out + i + 4, vcvt_high_f32_f16(v));
    }
    for (; i + 4 <= cols; i += 4) vst1q_f32(out + i, f16x4(h + i));
    for (; i < cols; i++) out[i] = pk_f16_to_f32(h[i]);
}

static void dequant_bf16_neon(const void *row, int64_t cols, float *out) {
    const uint16_t *h = (const uint16_t *)row;
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8) {
        uint16x8_t v = vld1q_u16(h + i);
        vst1q_f32(out + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16)));
        vst1q_f32(out + i + 4, vreinterpretq_f32_u32(vshll_high_n_u16(v, 16)));
    }
    for (; i + 4 <= cols; i += 4) vst1q_f32(out + i, bf16x4(h + i));
    for (; i < cols; i++) out[i] = pk_bf16_to_f32(h[i]);
}

// 16 int8 -> 4 x 4 f32 (exact).
#define I8X16_TO_F32(v, f0, f1, f2, f3) do {                                         \
        int16x8_t lo_ = vmovl_s8(vget_low_s8(v)), hi_ = vmovl_high_s8(v);             \
        f0 = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo_)));                             \
        f1 = vcvtq_f32_s32(vmovl_high_s16(lo_));                                      \
        f2 = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi_)));                             \
        f3 = vcvtq_f32_s32(vmovl_high_s16(hi_));                                      \
    } while (0)

static void dequant_q8_0_neon(const void *row, int64_t cols, float *out) {
    const uint8_t *p = (const uint8_t *)row;
    for (int64_t b = 0; b < cols / 32; b++, p += 34) {
        float d = pk_f16_at_neon(p);
        for (int h = 0; h < 2; h++) {
            float32x4_t f0, f1, f2, f3;
            I8X16_TO_F32(vld1q_s8((const int8_t *)(p + 2 + 16 * h)), f0, f1, f2, f3);
            float *o = out + b * 32 + 16 * h;
            vst1q_f32(o, vmulq_n_f32(f0, d));
            vst1q_f32(o + 4, vmulq_n_f32(f1, d));
            vst1q_f32(o + 8, vmulq_n_f32(f2, d));
            vst1q_f32(o + 12, vmulq_n_f32(f3, d));
        }
    }
}

// The other quantised types, each value with the portable code's (pk_dequant_row_scalar's) f32 operations in its
// order: the codes are small integers (exact in f32), then d * q, d * q + m or d1 * q - m1 with the per-sub-block
// products d * sc / dmin * m rounded first, as there; separate multiplies and adds (no FMA: -ffp-contract=off, and
// intrinsics are never fused), so every row equals the portable one, and gguf-py's, bit for bit.

// 16 uint8 -> 4 x 4 f32 (exact).
#define U8X16_TO_F32(v, f) do {                                                      \
        uint16x8_t lo_ = vmovl_u8(vget_low_u8(v)), hi_ = vmovl_high_u8(v);            \
        f[0] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(lo_)));                           \
        f[1] = vcvtq_f32_u32(vmovl_high_u16(lo_));                                    \
        f[2] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(hi_)));                           \
        f[3] = vcvtq_f32_u32(vmovl_high_u16(hi_));                                    \
    } while (0)

// o[0..15] = d * codes (signed or unsigned bytes), d * codes + m, or d * codes - m
static inline void st16_mul_s8(float *o, int8x16_t v, float d) {
    float32x4_t f[4];
    I8X16_TO_F32(v, f[0], f[1], f[2], f[3]);
    for (int k = 0; k < 4; k++) vst1q_f32(o + 4 * k, vmulq_n_f32(f[k], d));
}
static inline void st16_mul_add_u8(float *o, uint8x16_t v, float d, float m) {
    float32x4_t f[4];
    U8X16_TO_F32(v, f);
    for (int k = 0; k < 4; k++) vst1q_f32(o + 4 * k, vaddq_f32(vmulq_n_f32(f[k], d), vdupq_n_f32(m)));
}
static inline void st16_mul_sub_u8(float *o, uint8x16_t v, float d, float m) {
    float32x4_t f[4];
    U8X16_TO_F32(v, f);
    for (int k = 0; k < 4; k++) vst1q_f32(o + 4 * k, vsubq_f32(vmulq_n_f32(f[k], d), vdupq_n_f32(m)));
}

// q4_0, q4_1, q5_0, q5_1, iq4_nl: elements 0..15 from the low nibbles, 16..31 from the high
static inline void dequant_legacy_neon(int ty, const void *row, int64_t cols, float *out) {
    const size_t bs = ty == PK_Q4_1 ? 20 : ty == PK_Q5_0 ? 22 : ty == PK_Q5_1 ? 24 : 18;
    const uint8_t *p = (const uint8_t *)row;
    for (int64_t b = 0; b < cols / 32; b++, p += bs, out += 32) {
        const float d = pk_f16_at_neon(p);
        int8x16_t a0, a1;
        pk_legacy_levels_neon(ty, p, &a0, &a1);
        if (ty == PK_Q4_1 || ty == PK_Q5_1) {   // codes 0..31: the same bytes read unsigned
            const float m = pk_f16_at_neon(p + 2);
            st16_mul_add_u8(out, vreinterpretq_u8_s8(a0), d, m); st16_mul_add_u8(out + 16, vreinterpretq_u8_s8(a1), d, m);
        } else {
            st16_mul_s8(out, a0, d); st16_mul_s8(out + 16, a1, d);
        }
    }
}
static void dequant_q4_0_neon(const void *r, int64_t c, float *o) { dequant_legacy_neon(PK_Q4_0, r, c, o); }
static void dequant_q4_1_neon(const void *r, int64_t c, float *o) { dequant_legacy_neon(PK_Q4_1, r, c, o); }
static void dequant_q5_0_neon(const void *r, int64_t c, float *o) { dequant_legacy_neon(PK_Q5_0, r, c, o); }
static void dequant_q5_1_neon(const void *r, int64_t c, float *o) { dequant_legacy_neon(PK_Q5_1, r, c, o); }
static void dequant_iq4_nl_neon(const void *r, int64_t c, float *o) { dequant_legacy_neon(PK_IQ4_NL, r, c, o); }

// q4_K / q5_K: sub-block sub (32 values) is nibble sub % 2 of q[32 (sub / 2) ..] (q5_K: bit sub of qh[l] on top),
// d1 * v - m1 with d1 = d * sc, m1 = dmin * m
static inline void dequant_k45_neon(int five, const void *row, int64_t cols, float *out) {
    const size_t bb = five ? 176 : 144;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), one = vdupq_n_u8(1);
    const uint8_t *p = (const uint8_t *)row;
    for (int64_t b = 0; b < cols / 256; b++, p += bb, out += 256) {
        const float d = pk_f16_at_neon(p), dmin = pk_f16_at_neon(p + 2);
        const uint8_t *q = p + (five ? 48 : 16), *qh = p + 16;
        for (int sub = 0; sub < 8; sub++) {
            uint8_t sc, m;
            pk_scale_min_k4(sub, p + 4, &sc, &m);
            const float d1 = d * sc, m1 = dmin * m;
            for (int h = 0; h < 2; h++) {
                const uint8x16_t r = vld1q_u8(q + 32 * (sub / 2) + 16 * h);
                uint8x16_t v = sub & 1 ? vshrq_n_u8(r, 4) : vandq_u8(r, m4);
                if (five) {
                    const uint8x16_t hb = vandq_u8(vshlq_u8(vld1q_u8(qh + 16 * h), vdupq_n_s8((int8_t)-sub)), one);
                    v = vorrq_u8(v, vshlq_n_u8(hb, 4));
                }
                st16_mul_sub_u8(out + 32 * sub + 16 * h, v, d1, m1);
            }
        }
    }
}
static void dequant_q4_K_neon(const void *r, int64_t c, float *o) { dequant_k45_neon(0, r, c, o); }
static void dequant_q5_K_neon(const void *r, int64_t c, float *o) { dequant_k45_neon(1, r, c, o); }

// q6_K: y[l + 32 k] = d * sc[is + 2 k] * q (the product d * sc rounded first, as there), q = (ql nibble | 2 qh
// bits << 4) - 32, is = l / 16, per half of 128
static void dequant_q6_K_neon(const void *row, int64_t cols, float *out) {
    const uint8_t *p = (const uint8_t *)row;
    for (int64_t b = 0; b < cols / 256; b++, p += 210) {
        const float d = pk_f16_at_neon(p + 208);
        const int8_t *sc = (const int8_t *)(p + 192);
        for (int n = 0; n < 2; n++) {
            const uint8_t *ql = p + 64 * n, *qh = p + 128 + 32 * n;
            float *y = out + b * 256 + 128 * n;
            for (int h = 0; h < 2; h++) {   // l = 16 h .. 16 h + 15, is = h
                const uint8x16_t l0 = vld1q_u8(ql + 16 * h), l1 = vld1q_u8(ql + 32 + 16 * h), hh = vld1q_u8(qh + 16 * h);
                for (int k = 0; k < 4; k++)
                    st16_mul_s8(y + 32 * k + 16 * h, pk_q6_levels_neon(l0, l1, hh, k), d * sc[8 * n + h + 2 * k]);
            }
        }
    }
}

// q2_K: element 128 g + 32 s + l is bits 2 s of q[32 g + l], sub-block 8 g + 2 s + l / 16: dl * q - ml,
// dl = d * (sc & 15), ml = dmin * (sc >> 4)
static void dequant_q2_K_neon(const void *row, int64_t cols, float *out) {
    const uint8x16_t m3 = vdupq_n_u8(3);
    const uint8_t *p = (const uint8_t *)row;
    for (int64_t b = 0; b < cols / 256; b++, p += 84, out += 256) {
        const float d = pk_f16_at_neon(p + 80), dmin = pk_f16_at_neon(p + 82);
        for (int g = 0; g < 2; g++)
            for (int s = 0; s < 4; s++)
                for (int h = 0; h < 2; h++) {
                    const int sub = 8 * g + 2 * s + h;
                    const uint8x16_t v = vandq_u8(vshlq_u8(vld1q_u8(p + 16 + 32 * g + 16 * h), vdupq_n_s8((int8_t)(-2 * s))), m3);
                    const float dl = d * (float)(p[sub] & 0xF), ml = dmin * (float)(p[sub] >> 4);
                    st16_mul_sub_u8(out + 128 * g + 32 * s + 16 * h, v, dl, ml);
                }
    }
}

// q3_K: element 128 g + 32 s + l: ql = bits 2 s of q[32 g + l], minus 4 where bit 4 g + s of hm[l] is clear;
// dl * v with dl = d * (6-bit scale - 32) of sub-block 8 g + 2 s + l / 16
static void dequant_q3_K_neon(const void *row, int64_t cols, float *out) {
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    const uint8_t *p = (const uint8_t *)row;
    for (int64_t b = 0; b < cols / 256; b++, p += 110, out += 256) {
        const uint8_t *hm = p, *q = p + 32, *sc = p + 96;
        const float d = pk_f16_at_neon(p + 108);
        for (int g = 0; g < 2; g++)
            for (int s = 0; s < 4; s++)
                for (int h = 0; h < 2; h++) {
                    const int sub = 8 * g + 2 * s + h;
                    const float dl = d * (float)pk_q3k_scale(sc, sub);
                    const uint8x16_t ql = vandq_u8(vshlq_u8(vld1q_u8(q + 32 * g + 16 * h), vdupq_n_s8((int8_t)(-2 * s))), m3);
                    const uint8x16_t set = vtstq_u8(vld1q_u8(hm + 16 * h), vdupq_n_u8((uint8_t)(1u << (4 * g + s))));
                    st16_mul_s8(out + 128 * g + 32 * s + 16 * h, vreinterpretq_s8_u8(vsubq_u8(ql, vbicq_u8(four, set))), dl);
                }
    }
}

// iq4_xs: sub-block sub's 16 bytes, low nibbles elements 0..15, high 16..31, levels by the iq4_nl table; dl * level,
// dl = d * (ls - 32)
static void dequant_iq4_xs_neon(const void *row, int64_t cols, float *out) {
    const int8x16_t lut = vld1q_s8(pk_iq4nl_values);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    const uint8_t *p = (const uint8_t *)row;
    for (int64_t b = 0; b < cols / 256; b++, p += 136, out += 256) {
        const float d = pk_f16_at_neon(p);
        for (int sub = 0; sub < 8; sub++) {
            const float dl = d * (float)pk_iq4xs_scale(p, sub);
            const uint8x16_t r = vld1q_u8(p + 8 + 16 * sub);
            st16_mul_s8(out + 32 * sub, vqtbl1q_s8(lut, vandq_u8(r, m4)), dl);
            st16_mul_s8(out + 32 * sub + 16, vqtbl1q_s8(lut, vshrq_n_u8(r, 4)), dl);
        }
    }
}

// MARK: matrix-vector

// One row at a time (one sequential stream per thread, as on x86); 8 accumulators of 4 lanes cover the FMA
// latency of wide cores (Apple's have 4 FMA pipes). Tails shorter than 4 are finished in scalar code.
#define MATVEC_NEON(NAME, ELEM_T, LOAD, CONV)                                                                  \
static void NAME(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) { \
    for (int64_t r = r0; r < r1; r++) {                                                                        \
        const ELEM_T *w = (const ELEM_T *)(W + (size_t)r * rb);                                                \
        float32x4_t a0 = vdupq_n_f32(0), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;        \
        int64_t c = 0;                                                                                         \
        for (; c + 32 <= cols; c += 32) {                                                                      \
            a0 = vfmaq_f32(a0, LOAD(w + c), vld1q_f32(x + c));                                                 \
            a1 = vfmaq_f32(a1, LOAD(w + c + 4), vld1q_f32(x + c + 4));                                         \
            a2 = vfmaq_f32(a2, LOAD(w + c + 8), vld1q_f32(x + c + 8));                                         \
            a3 = vfmaq_f32(a3, LOAD(w + c + 12), vld1q_f32(x + c + 12));                                       \
            a4 = vfmaq_f32(a4, LOAD(w + c + 16), vld1q_f32(x + c + 16));                                       \
            a5 = vfmaq_f32(a5, LOAD(w + c + 20), vld1q_f32(x + c + 20));                                       \
            a6 = vfmaq_f32(a6, LOAD(w + c + 24), vld1q_f32(x + c + 24));                                       \
            a7 = vfmaq_f32(a7, LOAD(w + c + 28), vld1q_f32(x + c + 28));                                       \
        }                                                                                                      \
        for (; c + 4 <= cols; c += 4) a0 = vfmaq_f32(a0, LOAD(w + c), vld1q_f32(x + c));                      \
        float s = vaddvq_f32(vaddq_f32(vaddq_f32(vaddq_f32(a0, a1), vaddq_f32(a2, a3)),                        \
                                       vaddq_f32(vaddq_f32(a4, a5), vaddq_f32(a6, a7))));                      \
        for (; c < cols; c++) s += CONV(w[c]) * x[c];                                                          \
        y[r] = s;                                                                                              \
    }                                                                                                          \
}

MATVEC_NEON(matvec_f32_neon, float, f32x4, conv_f32)
MATVEC_NEON(matvec_f16_neon, uint16_t, f16x4, pk_f16_to_f32)
MATVEC_NEON(matvec_bf16_neon, uint16_t, bf16x4, pk_bf16_to_f32)

// sum_i q[i] * x[i] over one 32-value block, as 4 lanes.
static inline float32x4_t q8_block_neon(const uint8_t *q, const float *x) {
    float32x4_t f0, f1, f2, f3, g0, g1, g2, g3;
    I8X16_TO_F32(vld1q_s8((const int8_t *)q), f0, f1, f2, f3);
    I8X16_TO_F32(vld1q_s8((const int8_t *)(q + 16)), g0, g1, g2, g3);
    float32x4_t s0 = vmulq_f32(f0, vld1q_f32(x)), s1 = vmulq_f32(f1, vld1q_f32(x + 4));
    s0 = vfmaq_f32(s0, f2, vld1q_f32(x + 8));
    s1 = vfmaq_f32(s1, f3, vld1q_f32(x + 12));
    s0 = vfmaq_f32(s0, g0, vld1q_f32(x + 16));
    s1 = vfmaq_f32(s1, g1, vld1q_f32(x + 20));
    s0 = vfmaq_f32(s0, g2, vld1q_f32(x + 24));
    s1 = vfmaq_f32(s1, g3, vld1q_f32(x + 28));
    return vaddq_f32(s0, s1);
}

static void matvec_q8_0_neon(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {
    int64_t nb = cols / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        float32x4_t a0 = vdupq_n_f32(0), a1 = a0;
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2, p += 68) {
            a0 = vfmaq_n_f32(a0, q8_block_neon(p + 2, x + b * 32), pk_f16_at_neon(p));
            a1 = vfmaq_n_f32(a1, q8_block_neon(p + 36, x + b * 32 + 32), pk_f16_at_neon(p + 34));
        }
        if (b < nb) a0 = vfmaq_n_f32(a0, q8_block_neon(p + 2, x + b * 32), pk_f16_at_neon(p));
        y[r] = vaddvq_f32(vaddq_f32(a0, a1));
    }
}

// Exact q4_K / q5_K / q6_K decode without writing the dequantised row: the codes become floats in registers and meet x
// there. As the x86 exact kernels do, each sub-block's scale multiplies the sum of its code * x products once:
//   q4_K, q5_K: y = sum_s (d sc_s) sum_{i in s} q_i x_i - (dmin m_s) sum_{i in s} x_i   (sums of x per 32 per call)
//   q6_K: y = sum_j (d sc_j) sum_{i in j} (q_i - 32) x_i                            (j: 16 values)
// so y is the dequantised row times x up to f32 summation rounding in another order (d sc is rounded once, as
// in the row; the scale and min parts of q4_K / q5_K are summed apart, which run.sh's bound allows).
static inline float32x4_t dot16_u8(uint8x16_t v, const float *x) {
    float32x4_t f[4];
    U8X16_TO_F32(v, f);
    float32x4_t a = vmulq_f32(f[0], vld1q_f32(x)), b = vmulq_f32(f[1], vld1q_f32(x + 4));
    a = vfmaq_f32(a, f[2], vld1q_f32(x + 8));
    b = vfmaq_f32(b, f[3], vld1q_f32(x + 12));
    return vaddq_f32(a, b);
}
static inline float32x4_t dot16_s8(int8x16_t v, const float *x) {
    float32x4_t f0, f1, f2, f3;
    I8X16_TO_F32(v, f0, f1, f2, f3);
    float32x4_t a = vmulq_f32(f0, vld1q_f32(x)), b = vmulq_f32(f1, vld1q_f32(x + 4));
    a = vfmaq_f32(a, f2, vld1q_f32(x + 8));
    b = vfmaq_f32(b, f3, vld1q_f32(x + 12));
    return vaddq_f32(a, b);
}

// The 8 products d * sc (to ds[0..7]) and dmin * m (as two vectors) of a q4_K / q5_K block: exact (11 x 6 bits).
static inline void q4k_scales_neon(const uint8_t *p, float ds[8], float32x4_t dm[2]) {
    uint32_t u[4];
    pk_scale_min_k4_all(p + 4, u);
    uint8x16_t b;
    memcpy(&b, u, 16);
    const uint16x8_t sc = vmovl_u8(vget_low_u8(b)), mn = vmovl_high_u8(b);
    const float d = pk_f16_at_neon(p), dmin = pk_f16_at_neon(p + 2);
    vst1q_f32(ds, vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(sc))), d));
    vst1q_f32(ds + 4, vmulq_n_f32(vcvtq_f32_u32(vmovl_high_u16(sc)), d));
    dm[0] = vmulq_n_f32(vcvtq_f32_u32(vmovl_u16(vget_low_u16(mn))), dmin);
    dm[1] = vmulq_n_f32(vcvtq_f32_u32(vmovl_high_u16(mn)), dmin);
}

// The sum of x[0..31] (the sums of x per 32 values that the min terms multiply)
static inline float sum32_neon(const float *x) {
    float32x4_t a = vaddq_f32(vld1q_f32(x), vld1q_f32(x + 4));
    for (int k = 2; k < 8; k++) a = vaddq_f32(a, vld1q_f32(x + 4 * k));
    return vaddvq_f32(a);
}

// q4_K / q5_K (five: the fifth bit of value l of sub-block s is bit s of qh[l])
static inline __attribute__((always_inline)) void matvec_k45_neon(int five, const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y,
                                                                 int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256, ns = cols / 32;
    const uint8x16_t m4 = vdupq_n_u8(0x0F), one = vdupq_n_u8(1);
    const size_t bb = five ? 176 : 144;
    // sums of x per 32 values: once per call for all rows (the exact kernels' scratch slot, unused on NEON), or
    // per block for a single row, which costs the same
    float *sxs = r1 - r0 > 1 ? (float *)pk_thread_scratch_slot(PK_SCRATCH_EXACT, (size_t)ns * sizeof(float)) : NULL;
    for (int64_t s = 0; sxs && s < ns; s++) sxs[s] = sum32_neon(x + 32 * s);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        float32x4_t acc = vdupq_n_f32(0), macc = acc;
        for (int64_t b = 0; b < nb; b++, p += bb) {
            float ds[8], own[8];
            float32x4_t dm[2];
            q4k_scales_neon(p, ds, dm);
            const float *xb = x + 256 * b, *sx = sxs ? sxs + 8 * b : own;
            for (int sub = 0; !sxs && sub < 8; sub++) own[sub] = sum32_neon(xb + 32 * sub);
            macc = vfmaq_f32(vfmaq_f32(macc, dm[0], vld1q_f32(sx)), dm[1], vld1q_f32(sx + 4));
            const uint8_t *q = p + (five ? 48 : 16);
            const uint8x16_t h0 = five ? vld1q_u8(p + 16) : m4, h1 = five ? vld1q_u8(p + 32) : m4;
            for (int j = 0; j < 4; j++) {   // sub-blocks 2 j (low nibbles) and 2 j + 1 (high) of q[32 j ..]
                const uint8x16_t r0v = vld1q_u8(q + 32 * j), r1v = vld1q_u8(q + 32 * j + 16);
                uint8x16_t c[4] = { vandq_u8(r0v, m4), vandq_u8(r1v, m4), vshrq_n_u8(r0v, 4), vshrq_n_u8(r1v, 4) };
                if (five) {
                    for (int k = 0; k < 4; k++) {   // sub-block 2 j + k / 2, values 16 (k & 1) ..
                        const uint8x16_t hb = vandq_u8(vshlq_u8(k & 1 ? h1 : h0, vdupq_n_s8((int8_t)-(2 * j + k / 2))), one);
                        c[k] = vorrq_u8(c[k], vshlq_n_u8(hb, 4));
                    }
                }
                const float32x4_t lo = vaddq_f32(dot16_u8(c[0], xb + 64 * j), dot16_u8(c[1], xb + 64 * j + 16));
                const float32x4_t hi = vaddq_f32(dot16_u8(c[2], xb + 64 * j + 32), dot16_u8(c[3], xb + 64 * j + 48));
                acc = vfmaq_n_f32(acc, lo, ds[2 * j]);
                acc = vfmaq_n_f32(acc, hi, ds[2 * j + 1]);
            }
        }
        y[r] = vaddvq_f32(acc) - vaddvq_f32(macc);
    }
}

static void matvec_q4_K_neon(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {
    matvec_k45_neon(0, W, rb, cols, x, y, r0, r1);
}
static void matvec_q5_K_neon(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {
    matvec_k45_neon(1, W, rb, cols, x, y, r0, r1);
}

// iq4_xs: per sub-block of 32, dl = d (ls - 32) times the sum of level * x products (levels by the iq4_nl table)
static void matvec_iq4_xs_neon(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256;
    const int8x16_t lut = vld1q_s8(pk_iq4nl_values);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0;
        for (int64_t b = 0; b < nb; b++, p += 136) {
            const float d = pk_f16_at_neon(p);
            const float *xb = x + 256 * b;
            for (int sub = 0; sub < 8; sub++) {
                const float dl = d * (float)pk_iq4xs_scale(p, sub);
                const uint8x16_t q = vld1q_u8(p + 8 + 16 * sub);
                const float32x4_t s = vaddq_f32(dot16_s8(vqtbl1q_s8(lut, vandq_u8(q, m4)), xb + 32 * sub),
                                                dot16_s8(vqtbl1q_s8(lut, vshrq_n_u8(q, 4)), xb + 32 * sub + 16));
                if (sub & 1) acc1 = vfmaq_n_f32(acc1, s, dl);
                else acc0 = vfmaq_n_f32(acc0, s, dl);
            }
        }
        y[r] = vaddvq_f32(vaddq_f32(acc0, acc1));
    }
}

// The legacy types (q4_0, q4_1, q5_0, q5_1, iq4_nl): per block of 32, d times the sum of level * x products,
// plus m times the block's sum of x for q4_1 / q5_1 (once per call; per block for a single row).
static inline __attribute__((always_inline)) void matvec_legacy_neon(int ty, const uint8_t *W, size_t rb, int64_t cols, const float *x,
                                                                     float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 32;
    const int min = ty == PK_Q4_1 || ty == PK_Q5_1;
    const size_t bs = ty == PK_Q4_1 ? 20 : ty == PK_Q5_0 ? 22 : ty == PK_Q5_1 ? 24 : 18;
    float *sxs = min && r1 - r0 > 1 ? (float *)pk_thread_scratch_slot(PK_SCRATCH_EXACT, (size_t)nb * sizeof(float)) : NULL;
    for (int64_t b = 0; sxs && b < nb; b++) sxs[b] = sum32_neon(x + 32 * b);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0;
        float mins = 0;
        for (int64_t b = 0; b < nb; b++, p += bs) {
            int8x16_t a0, a1;
            pk_legacy_levels_neon(ty, p, &a0, &a1);
            const float *xb = x + 32 * b;
            const float32x4_t s = vaddq_f32(dot16_s8(a0, xb), dot16_s8(a1, xb + 16));
            if (b & 1) acc1 = vfmaq_n_f32(acc1, s, pk_f16_at_neon(p)); else acc0 = vfmaq_n_f32(acc0, s, pk_f16_at_neon(p));
            if (min) mins += pk_f16_at_neon(p + 2) * (sxs ? sxs[b] : sum32_neon(xb));
        }
        y[r] = vaddvq_f32(vaddq_f32(acc0, acc1)) + mins;
    }
}
#define LEGACY_MATVEC_NEON(NAME, TY)                                                                           \
static void NAME(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) { \
    matvec_legacy_neon(TY, W, rb, cols, x, y, r0, r1);                                                         \
}
LEGACY_MATVEC_NEON(matvec_q4_0_neon, PK_Q4_0)
LEGACY_MATVEC_NEON(matvec_q4_1_neon, PK_Q4_1)
LEGACY_MATVEC_NEON(matvec_q5_0_neon, PK_Q5_0)
LEGACY_MATVEC_NEON(matvec_q5_1_neon, PK_Q5_1)
LEGACY_MATVEC_NEON(matvec_iq4_nl_neon, PK_IQ4_NL)

static void matvec_q6_K_neon(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0;
        for (int64_t b = 0; b < nb; b++, p += 210) {
            const float d = pk_f16_at_neon(p + 208);
            const int8_t *sc = (const int8_t *)(p + 192);
            for (int n = 0; n < 2; n++) {
                const uint8_t *ql = p + 64 * n, *qh = p + 128 + 32 * n;
                const float *xn = x + 256 * b + 128 * n;
                for (int h = 0; h < 2; h++) {   // values l = 16 h .. 16 h + 15 of each quarter k: scale 8 n + h + 2 k
                    const uint8x16_t l0 = vld1q_u8(ql + 16 * h), l1 = vld1q_u8(ql + 32 + 16 * h), hh = vld1q_u8(qh + 16 * h);
                    for (int k = 0; k < 4; k++) {
                        const float32x4_t s16 = dot16_s8(pk_q6_levels_neon(l0, l1, hh, k), xn + 32 * k + 16 * h);
                        if (k & 1) acc1 = vfmaq_n_f32(acc1, s16, d * sc[8 * n + h + 2 * k]);
                        else acc0 = vfmaq_n_f32(acc0, s16, d * sc[8 * n + h + 2 * k]);
                    }
                }
            }
        }
        y[r] = vaddvq_f32(vaddq_f32(acc0, acc1));
    }
}

// q2_K: y = sum_j dl_j sum_{i in j} q_i x_i - sum_j ml_j sum_{i in j} x_i over its 16 sub-blocks of 16 values
// (dl = d (sc & 15), ml = dmin (sc >> 4), exact products as in the row); the sums of x per 16 once per call (per
// block for a single row). Value 128 g + 32 s + l is bits 2 s of q[32 g + l], sub-block 8 g + 2 s + l / 16.
static inline float32x4_t sum16x4_neon(const float *x) {   // lane k: a partial sum of x[0..15]
    return vaddq_f32(vaddq_f32(vld1q_f32(x), vld1q_f32(x + 4)), vaddq_f32(vld1q_f32(x + 8), vld1q_f32(x + 12)));
}
static void matvec_q2_K_neon(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256, ns = cols / 16;
    const uint8x16_t m3 = vdupq_n_u8(3), m4 = vdupq_n_u8(0x0F);
    float *sxs = r1 - r0 > 1 ? (float *)pk_thread_scratch_slot(PK_SCRATCH_EXACT, (size_t)ns * sizeof(float)) : NULL;
    for (int64_t j = 0; sxs && j < ns; j++) sxs[j] = vaddvq_f32(sum16x4_neon(x + 16 * j));
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0, macc = acc0;
        for (int64_t b = 0; b < nb; b++, p += 84) {
            const float d = pk_f16_at_neon(p + 80), dmin = pk_f16_at_neon(p + 82);
            const float *xb = x + 256 * b;
            float own[16];
            const float *sx = sxs ? sxs + 16 * b : own;
            for (int j = 0; !sxs && j < 16; j++) own[j] = vaddvq_f32(sum16x4_neon(xb + 16 * j));
            // the mins: dmin (sc >> 4) for the 16 sub-blocks in order, times their sums of x
            float32x4_t mf[4];
            U8X16_TO_F32(vshrq_n_u8(vld1q_u8(p), 4), mf);
            for (int k = 0; k < 4; k++) macc = vfmaq_f32(macc, vmulq_n_f32(mf[k], dmin), vld1q_f32(sx + 4 * k));
            float dl[16];   // d (sc & 15), exact
            U8X16_TO_F32(vandq_u8(vld1q_u8(p), m4), mf);
            for (int k = 0; k < 4; k++) vst1q_f32(dl + 4 * k, vmulq_n_f32(mf[k], d));
            for (int g = 0; g < 2; g++) {
                const uint8x16_t q0 = vld1q_u8(p + 16 + 32 * g), q1 = vld1q_u8(p + 32 + 32 * g);
                for (int s = 0; s < 4; s++) {
                    const int8x16_t sh = vdupq_n_s8((int8_t)(-2 * s));
                    const int j = 8 * g + 2 * s;
                    const float32x4_t a = dot16_u8(vandq_u8(vshlq_u8(q0, sh), m3), xb + 128 * g + 32 * s);
                    const float32x4_t c = dot16_u8(vandq_u8(vshlq_u8(q1, sh), m3), xb + 128 * g + 32 * s + 16);
                    acc0 = vfmaq_n_f32(acc0, a, dl[j]);
                    acc1 = vfmaq_n_f32(acc1, c, dl[j + 1]);
                }
            }
        }
        y[r] = vaddvq_f32(vaddq_f32(acc0, acc1)) - vaddvq_f32(macc);
    }
}

// The 16 products d (6-bit scale - 32) of a q3_K block (pk_q3k_scale, 16 lanes at once; exact: 11 x 6 bits). Scale
// j: low 4 bits from sc[j] (j < 8) or sc[j - 8] >> 4, high 2 from sc[8 + j % 4] >> 2 (j / 4); 12 bytes read.
static inline void q3k_scales_neon(const uint8_t *sc, float d, float dl[16]) {
    const uint8x8_t a = vld1_u8(sc);
    uint32_t h4;
    memcpy(&h4, sc + 8, 4);
    const uint8x16_t lo = vcombine_u8(vand_u8(a, vdup_n_u8(0xF)), vshr_n_u8(a, 4));
    const uint8x16_t hb = vreinterpretq_u8_u32(vdupq_n_u32(h4));   // sc[8 + j % 4] in lane j
    const int8x16_t sh = {0, 0, 0, 0, -2, -2, -2, -2, -4, -4, -4, -4, -6, -6, -6, -6};
    const uint8x16_t hi = vandq_u8(vshlq_u8(hb, sh), vdupq_n_u8(3));
    const int8x16_t v = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(lo, vshlq_n_u8(hi, 4))), vdupq_n_s8(32));
    float32x4_t f0, f1, f2, f3;
    I8X16_TO_F32(v, f0, f1, f2, f3);
    vst1q_f32(dl, vmulq_n_f32(f0, d));
    vst1q_f32(dl + 4, vmulq_n_f32(f1, d));
    vst1q_f32(dl + 8, vmulq_n_f32(f2, d));
    vst1q_f32(dl + 12, vmulq_n_f32(f3, d));
}

// q3_K: y = sum_j dl_j sum_{i in j} v_i x_i, dl = d (6-bit scale - 32), v = the 2 low bits minus 4 where the high
// bit is clear (signed -4..3, as the row's dequantisation builds it); value 128 g + 32 s + l: bits 2 s of
// q[32 g + l] and bit 4 g + s of hm[l], sub-block 8 g + 2 s + l / 16.
static void matvec_q3_K_neon(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256;
    const uint8x16_t m3 = vdupq_n_u8(3), four = vdupq_n_u8(4);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        float32x4_t acc0 = vdupq_n_f32(0), acc1 = acc0;
        for (int64_t b = 0; b < nb; b++, p += 110) {
            float dl[16];
            q3k_scales_neon(p + 96, pk_f16_at_neon(p + 108), dl);
            const float *xb = x + 256 * b;
            const uint8x16_t hm0 = vld1q_u8(p), hm1 = vld1q_u8(p + 16);
            for (int g = 0; g < 2; g++) {
                const uint8x16_t q0 = vld1q_u8(p + 32 + 32 * g), q1 = vld1q_u8(p + 48 + 32 * g);
                for (int s = 0; s < 4; s++) {
                    const int8x16_t sh = vdupq_n_s8((int8_t)(-2 * s));
                    const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << (4 * g + s)));
                    const int j = 8 * g + 2 * s;
                    const uint8x16_t v0 = vsubq_u8(vandq_u8(vshlq_u8(q0, sh), m3), vbicq_u8(four, vtstq_u8(hm0, bit)));
                    const uint8x16_t v1 = vsubq_u8(vandq_u8(vshlq_u8(q1, sh), m3), vbicq_u8(four, vtstq_u8(hm1, bit)));
                    const float32x4_t a = dot16_s8(vreinterpretq_s8_u8(v0), xb + 128 * g + 32 * s);
                    const float32x4_t c = dot16_s8(vreinterpretq_s8_u8(v1), xb + 128 * g + 32 * s + 16);
                    acc0 = vfmaq_n_f32(acc0, a, dl[j]);
                    acc1 = vfmaq_n_f32(acc1, c, dl[j + 1]);
                }
            }
        }
        y[r] = vaddvq_f32(vaddq_f32(acc0, acc1));
    }
}

// MARK: GEMM micro-kernel

// 4 x 4 register block: 16 accumulators + 8 loads of the 32 vector registers. Missing rows / inputs reuse
// row / input 0 and are not stored; the last k % 4 columns go through zero-padded copies.
static void gemm_neon(const float *w, int64_t ldw, int nr, const float *x, int64_t ldx, int nt,
                      int64_t k, float *y, int64_t ldy, int accumulate) {
    const float *wr[4], *xr[4];
    for (int i = 0; i < 4; i++) { wr[i] = w + (i < nr ? i : 0) * ldw; xr[i] = x + (i < nt ? i : 0) * ldx; }
    float32x4_t acc[4][4];
    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = vdupq_n_f32(0);
    int64_t c = 0;
    for (; c + 4 <= k; c += 4) {
        float32x4_t wv[4], xv[4];
        for (int i = 0; i < 4; i++) wv[i] = vld1q_f32(wr[i] + c);
        for (int j = 0; j < 4; j++) xv[j] = vld1q_f32(xr[j] + c);
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = vfmaq_f32(acc[i][j], wv[i], xv[j]);
    }
    if (c < k) {
        float wt[4][4] = {{0}}, xt[4][4] = {{0}};
        for (int i = 0; i < 4; i++) for (int64_t l = c; l < k; l++) { wt[i][l - c] = wr[i][l]; xt[i][l - c] = xr[i][l]; }
        float32x4_t wv[4], xv[4];
        for (int i = 0; i < 4; i++) { wv[i] = vld1q_f32(wt[i]); xv[i] = vld1q_f32(xt[i]); }
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = vfmaq_f32(acc[i][j], wv[i], xv[j]);
    }
    for (int j = 0; j < nt; j++)
        for (int i = 0; i < nr; i++) {
            float s = vaddvq_f32(acc[i][j]);
            y[j * ldy + i] = accumulate ? y[j * ldy + i] + s : s;
        }
}

// MARK: gated activations

// exp(x): x = k ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial for e^r (about 1 ulp), times 2^k built in the
// exponent bits; x clamped to [-87.34, 88] so k stays in [-126, 127] and the result a finite normal number.
// NaN passes through (fmin/fmax propagate it).
static inline float32x4_t exp_neon(float32x4_t x) {
    x = vmaxq_f32(vminq_f32(x, vdupq_n_f32(88.0f)), vdupq_n_f32(-87.3365447505531f));
    float32x4_t k = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(x, k, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, k, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(e));
}

static inline float32x4_t silu_neon(float32x4_t x) {
    return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), exp_neon(vnegq_f32(x))));
}

// x/2 (1 + tanh z) = x / (1 + e^{-2z}): the x86 levels' 1 - 2/(e^{2z} + 1) loses relative accuracy where
// 1 + tanh z cancels (x below about -3); this form keeps a few ulp everywhere, with fewer operations.
static inline float32x4_t gelu_tanh_neon(float32x4_t x) {
    float32x4_t z = vmulq_n_f32(vfmaq_f32(x, vmulq_n_f32(x, 0.044715f), vmulq_f32(x, x)), 0.7978845608028654f);
    return vdivq_f32(x, vaddq_f32(vdupq_n_f32(1.0f), exp_neon(vmulq_n_f32(z, -2.0f))));
}

// The last n % 4 values go through a zero-padded copy, so every value gets the same formula.
#define ACT_MUL_NEON(NAME, ACT)                                                                             \
static void NAME(float *g, const float *u, int64_t n) {                                                     \
    int64_t i = 0;                                                                                          \
    for (; i + 4 <= n; i += 4) vst1q_f32(g + i, vmulq_f32(ACT(vld1q_f32(g + i)), vld1q_f32(u + i)));        \
    if (i < n) {                                                                                            \
        float gt[4] = {0}, ut[4] = {0};                                                                     \
        for (int64_t l = i; l < n; l++) { gt[l - i] = g[l]; ut[l - i] = u[l]; }                             \
        vst1q_f32(gt, vmulq_f32(ACT(vld1q_f32(gt)), vld1q_f32(ut)));                                        \
        for (int64_t l = i; l < n; l++) g[l] = gt[l - i];                                                   \
    }                                                                                                       \
}
ACT_MUL_NEON(silu_mul_neon, silu_neon)
ACT_MUL_NEON(gelu_tanh_mul_neon, gelu_tanh_neon)

// MARK: attention

// The x86 levels' tile loop (attention_512_nc in kernels_x86.c) in 4-float vectors: 8 positions a tile, each
// position's product in two accumulators (16 independent FMA chains across the tile), four positions' sums
// transposed into one vector by two pairwise adds; exps 4 at a time; the weighted sum of V over 64 columns at a
// time in 16 registers. The portable loop instead makes a dot and an axpy call and an expf per position and head,
// loading and storing the output row for every position. Not yet timed on ARM hardware (checked under qemu by
// Scripts/neon, against a double reference with a rounding bound).

// lanes = sums of a, b, c, d
static inline float32x4_t hsum4x4(float32x4_t a, float32x4_t b, float32x4_t c, float32x4_t d) {
    return vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d));
}

// Elements i.. of a K / V array as f32 (an f16 cache widened exactly as it is loaded; F16 is a constant per copy).
#define KV_LOAD_NEON(F16, X, i) ((F16) ? vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(X) + (i)))) \
                                       : vld1q_f32((const float *)(X) + (i)))

// An f16 KV cache's rows (pk_f32_to_f16_row): fcvtn rounds to nearest even (the FPCR default), as pk_f32_to_f16.
static void to_f16_neon(const float *x, uint16_t *out, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(out + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; i++) out[i] = pk_f32_to_f16(x[i]);
}

static inline __attribute__((always_inline)) void attention_neon_nc(
        const int NC, const int F16, const float *q, int64_t ldq, int64_t P, int64_t H, int64_t group, const void *K,
        int64_t ldk, const void *V, int64_t ldv, int64_t n, float scale, float softcap, float *scores, int64_t lds, float *m, float *l,
        float *o, int64_t ldo, int normalise) {
    const int64_t hd = 4 * NC, N = n + P - 1;
    for (int64_t r = 0; r < P * H; r++) m[r] = -INFINITY;
    for (int64_t j = 0; j < N; j += 8) {
        for (int64_t t = j < n ? 0 : j - n + 1; t < P; t++) {
            const int mm = n + t - j < 8 ? (int)(n + t - j) : 8;
            for (int64_t h = 0; h < H; h++) {
                const int64_t r = t * H + h, kc = (h / group) * hd;
                const float *qh = q + t * ldq + h * hd;
                float32x4_t acc[8];
                for (int p = 0; p < 8; p++) {
                    const int64_t kr = kc + (j + (p < mm ? p : 0)) * ldk;   // past the end: row j again, not stored
                    float32x4_t a0 = vmulq_f32(vld1q_f32(qh), KV_LOAD_NEON(F16, K, kr)),
                                a1 = vmulq_f32(vld1q_f32(qh + 4), KV_LOAD_NEON(F16, K, kr + 4));
                    for (int c = 2; c < NC; c += 2) {
                        a0 = vfmaq_f32(a0, vld1q_f32(qh + 4 * c), KV_LOAD_NEON(F16, K, kr + 4 * c));
                        a1 = vfmaq_f32(a1, vld1q_f32(qh + 4 * c + 4), KV_LOAD_NEON(F16, K, kr + 4 * c + 4));
                    }
                    acc[p] = vaddq_f32(a0, a1);
                }
                float sc[8];
                vst1q_f32(sc, vmulq_n_f32(hsum4x4(acc[0], acc[1], acc[2], acc[3]), scale));
                vst1q_f32(sc + 4, vmulq_n_f32(hsum4x4(acc[4], acc[5], acc[6], acc[7]), scale));
                float *s = scores + r * lds + j;
                for (int p = 0; p < mm; p++) {
                    s[p] = sc[p];
                    if (sc[p] > m[r]) m[r] = sc[p];
                }
            }
        }
    }
    for (int64_t t = 0; t < P; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t r = t * H + h, nt = n + t;
            float *s = scores + r * lds;
            if (softcap > 0) m[r] = pk_softcap_scores(s, nt, softcap);
            const float32x4_t mv = vdupq_n_f32(m[r]);
            float32x4_t sum = vdupq_n_f32(0);
            int64_t j = 0;
            for (; j + 4 <= nt; j += 4) {
                const float32x4_t e = exp_neon(vsubq_f32(vld1q_f32(s + j), mv));
                vst1q_f32(s + j, e);
                sum = vaddq_f32(sum, e);
            }
            float tail = 0;
            if (j < nt) {   // the last nt % 4 through a copy padded with the max, so each weight gets the same exp
                float tp[4] = {m[r], m[r], m[r], m[r]};
                for (int64_t i = j; i < nt; i++) tp[i - j] = s[i];
                vst1q_f32(tp, exp_neon(vsubq_f32(vld1q_f32(tp), mv)));
                for (int64_t i = j; i < nt; i++) { s[i] = tp[i - j]; tail += tp[i - j]; }
            }
            l[r] = vaddvq_f32(sum) + tail;
            if (normalise) {   // the weights divided by their sum first, as the portable loop does
                const float inv = 1.0f / l[r];
                for (int64_t i = 0; i < nt; i++) s[i] *= inv;
            }
            memset(o + t * ldo + h * hd, 0, (size_t)hd * sizeof(float));
        }
    for (int64_t j = 0; j < N; j += 8) {
        for (int64_t t = j < n ? 0 : j - n + 1; t < P; t++) {
            const int mm = n + t - j < 8 ? (int)(n + t - j) : 8;
            for (int64_t h = 0; h < H; h++) {
                const float *s = scores + (t * H + h) * lds + j;
                const int64_t vc = (h / group) * hd;
                for (int c0 = 0; c0 < NC; c0 += 16) {
                    float *oh = o + t * ldo + h * hd + 4 * c0;
                    float32x4_t acc[16];
                    for (int c = 0; c < 16; c++) acc[c] = vld1q_f32(oh + 4 * c);
                    for (int p = 0; p < mm; p++) {
                        const int64_t vr = vc + (j + p) * ldv + 4 * c0;
                        for (int c = 0; c < 16; c++) acc[c] = vfmaq_n_f32(acc[c], KV_LOAD_NEON(F16, V, vr + 4 * c), s[p]);
                    }
                    for (int c = 0; c < 16; c++) vst1q_f32(oh + 4 * c, acc[c]);
                }
            }
        }
    }
}

// Head sizes 64, 128, 256, as the x86 levels (PK_ATTENTION_NC: copies for one query and for f16, pk_internal.h).
static int attention_neon(const float *q, int64_t ldq, int64_t P, int64_t H, int64_t group, const void *K, int64_t ldk,
                          const void *V, int64_t ldv, int kv, int64_t n, int64_t hd, float scale, float softcap,
                          float *scores, int64_t lds, float *m, float *l, float *o, int64_t ldo, int normalise) {
    switch (hd) {
    case 64: PK_ATTENTION_NC(attention_neon_nc, 16); return 1;
    case 128: PK_ATTENTION_NC(attention_neon_nc, 32); return 1;
    case 256: PK_ATTENTION_NC(attention_neon_nc, 64); return 1;
    default: return 0;
    }
}

// MARK: native precision, q8_0 (activations prepared by pk_native_prepare: float d[nb] | int32 m[nb] | int8 q[cols])

// Integer dot of one 32-value block as 4 int32 lanes. Without the dot-product extension, pairs of products are
// summed in int16 lanes: |w x| <= 128 * 127 because prepared activations are clamped to [-127, 127], so a pair
// stays below 32767.
static inline int32x4_t q8n_block(int8x16_t w0, int8x16_t w1, const int8_t *x) {
    int8x16_t x0 = vld1q_s8(x), x1 = vld1q_s8(x + 16);
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), w0, x0), w1, x1);
#else
    int16x8_t p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w0), vget_low_s8(x0)), w0, x0);
    int16x8_t p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w1), vget_low_s8(x1)), w1, x1);
    return vpadalq_s16(vpaddlq_s16(p0), p1);
#endif
}

// One weight row against nt (1, 2 or 4, a constant after inlining) prepared tokens: each weight block is loaded
// once for all of them. Blocks go 4 at a time: the 4 exact integer sums side by side in one vector, converted
// and multiplied by (d_w * d_x) per block as the portable kernel does, accumulated in f32.
static inline __attribute__((always_inline)) void q8n_row(const uint8_t *w, const uint8_t *xn, size_t xs, int nt,
                                                          int64_t nb, float *out, int64_t ldo) {
    const float *dx[4];
    const int8_t *qx[4];
    for (int j = 0; j < nt; j++) { dx[j] = (const float *)(xn + (size_t)j * xs); qx[j] = (const int8_t *)(xn + (size_t)j * xs + nb * 8); }
    float32x4_t acc[4];
    float tail[4];
    for (int j = 0; j < nt; j++) { acc[j] = vdupq_n_f32(0); tail[j] = 0; }
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4) {
        const uint8_t *p = w + b * 34;
        uint16_t hs[4];
        for (int k = 0; k < 4; k++) memcpy(&hs[k], p + 34 * k, 2);
        float32x4_t dw = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(hs)));
        int32x4_t a[4][4];
        for (int k = 0; k < 4; k++) {
            int8x16_t w0 = vld1q_s8((const int8_t *)(p + 34 * k + 2)), w1 = vld1q_s8((const int8_t *)(p + 34 * k + 18));
            for (int j = 0; j < nt; j++) a[j][k] = q8n_block(w0, w1, qx[j] + (b + k) * 32);
        }
        for (int j = 0; j < nt; j++) {
            int32x4_t isum = vpaddq_s32(vpaddq_s32(a[j][0], a[j][1]), vpaddq_s32(a[j][2], a[j][3]));
            acc[j] = vfmaq_f32(acc[j], vcvtq_f32_s32(isum), vmulq_f32(dw, vld1q_f32(dx[j] + b)));
        }
    }
    for (; b < nb; b++) {
        const uint8_t *p = w + b * 34;
        float dw = pk_f16_at_neon(p);
        int8x16_t w0 = vld1q_s8((const int8_t *)(p + 2)), w1 = vld1q_s8((const int8_t *)(p + 18));
        for (int j = 0; j < nt; j++) tail[j] += (float)vaddvq_s32(q8n_block(w0, w1, qx[j] + b * 32)) * (dw * dx[j][b]);
    }
    for (int j = 0; j < nt; j++) out[j * ldo] = vaddvq_f32(acc[j]) + tail[j];
}

static void native_q8_neon(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                           float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    int64_t nb = cols / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = W + (size_t)r * rb;
        int64_t t = 0;
        for (; t + 4 <= T; t += 4) q8n_row(w, xn + (size_t)t * xs, xs, 4, nb, Y + t * ldy + r, ldy);
        if (t + 2 <= T) { q8n_row(w, xn + (size_t)t * xs, xs, 2, nb, Y + t * ldy + r, ldy); t += 2; }
        if (t < T) q8n_row(w, xn + (size_t)t * xs, xs, 1, nb, Y + t * ldy + r, ldy);
    }
}

// native_bf16 stays NULL: the BF16 extension's BFDOT does not round like IEEE f32 (and Apple M1 lacks it), so
// the bf16-rounded f32 activations go through the exact kernels above, which gives the promised products.
// kernels_iq.c
#define PK_NEON_IQ_FNS(F)                                                                                   \
    [PK_IQ2_XXS] = pk_##F##_iq2_xxs_neon, [PK_IQ2_XS] = pk_##F##_iq2_xs_neon, [PK_IQ2_S] = pk_##F##_iq2_s_neon, \
    [PK_IQ3_XXS] = pk_##F##_iq3_xxs_neon, [PK_IQ3_S] = pk_##F##_iq3_s_neon, [PK_IQ1_S] = pk_##F##_iq1_s_neon,  \
    [PK_IQ1_M] = pk_##F##_iq1_m_neon
const pk_ops pk_ops_neon = {
    .name = "neon", .dot = dot_neon, .axpy = axpy_neon, .gemm = gemm_neon, .read_sum = read_sum_neon,
    .attention = attention_neon, .to_f16 = to_f16_neon,
    .silu_mul = silu_mul_neon, .gelu_tanh_mul = gelu_tanh_mul_neon,
    .dequant = { [PK_F16] = dequant_f16_neon, [PK_BF16] = dequant_bf16_neon, [PK_Q8_0] = dequant_q8_0_neon,
                 [PK_Q4_0] = dequant_q4_0_neon, [PK_Q4_1] = dequant_q4_1_neon, [PK_Q5_0] = dequant_q5_0_neon,
                 [PK_Q5_1] = dequant_q5_1_neon, [PK_IQ4_NL] = dequant_iq4_nl_neon, [PK_Q2_K] = dequant_q2_K_neon,
                 [PK_Q3_K] = dequant_q3_K_neon, [PK_Q4_K] = dequant_q4_K_neon, [PK_Q5_K] = dequant_q5_K_neon,
                 [PK_Q6_K] = dequant_q6_K_neon, [PK_IQ4_XS] = dequant_iq4_xs_neon, PK_NEON_IQ_FNS(dequant) },
    .matvec = { [PK_F32] = matvec_f32_neon, [PK_F16] = matvec_f16_neon, [PK_BF16] = matvec_bf16_neon, [PK_Q8_0] = matvec_q8_0_neon,
                [PK_Q2_K] = matvec_q2_K_neon, [PK_Q3_K] = matvec_q3_K_neon,
                [PK_Q4_K] = matvec_q4_K_neon, [PK_Q5_K] = matvec_q5_K_neon, [PK_Q6_K] = matvec_q6_K_neon,
                [PK_Q4_0] = matvec_q4_0_neon, [PK_Q4_1] = matvec_q4_1_neon, [PK_Q5_0] = matvec_q5_0_neon,
                [PK_Q5_1] = matvec_q5_1_neon, [PK_IQ4_NL] = matvec_iq4_nl_neon, [PK_IQ4_XS] = matvec_iq4_xs_neon,
                PK_NEON_IQ_FNS(matvec) },
    .native_q8 = native_q8_neon,
};

#endif
