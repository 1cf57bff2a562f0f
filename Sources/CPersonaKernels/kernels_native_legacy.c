// Native-precision products for ggml's legacy 32-element quant types, computed as llama.cpp computes them:
// q4_0, q5_0, iq4_nl against q8_0 activations (ggml's quantize_row_q8_0_ref) and q4_1, q5_1 against q8_1
// activations (quantize_row_q8_1_ref: also s = f16(d * sum(q)) with the f32 d). Per block an exact integer dot of
// the weight codes with the activation's q, times the f16 scales, summed in f32 (ggml_vec_dot_q4_0_q8_0,
// _q4_1_q8_1: sumi * d_w * d_x + m_w * s_x, _q5_0_q8_0, _q5_1_q8_1, _iq4_nl_q8_0). Every level forms the same exact
// per-block integer sums and the same per-block products; only the order of the f32 sums differs.
//
// Prepared activations, per token (stride pk_native_legacy_x_stride): a 320-byte record per group of 8 blocks (the
// last group zero-padded). Block i of a group sits at position pos = (i & 1) * 4 + i / 2, i.e. the scales run
// blocks 0, 2, 4, 6, 1, 3, 5, 7: the order in which the kernels' horizontal integer adds leave the 8 block sums.
//   float dx[8]  at 0   : ggml's f16 scale of each q8 block, as f32
//   aux[8]       at 32  : q8_0 types: int32 c = -off * sum(q), off = 8 (q4_0), 16 (q5_0), 128 (iq4_nl): the
//                         kernels use the weights as unsigned codes (level + off), and sum((u - off) q) = sum(u q) + c;
//                         q8_1 types: float s (ggml's f16 s as f32)
//   int8 q[256]  at 64  : per pair of blocks A = 2k, B = 2k + 1, 64 bytes at 64 + 64k: A[0..15] | B[0..15] |
//                         A[16..31] | B[16..31]. A weight block's 16 nibble bytes hold elements 0..15 (low nibbles) and
//                         16..31 (high nibbles), so A's and B's bytes in one 256-bit register line up with 32 bytes
//                         of q.
#include "pk_internal.h"
#include "pk_x86.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define GREC 320   // bytes of one group record (8 blocks)

static inline int is_q81(int t) { return t == PK_Q4_1 || t == PK_Q5_1; }
static inline int weight_offset(int t) { return t == PK_Q4_0 ? 8 : t == PK_Q5_0 ? 16 : 128; }

size_t pk_native_legacy_x_stride(int dtype, int64_t cols) {
    if (dtype != PK_Q4_0 && dtype != PK_Q4_1 && dtype != PK_Q5_0 && dtype != PK_Q5_1 && dtype != PK_IQ4_NL) return 0;
    if (cols <= 0 || cols % 32) return 0;
    return (size_t)((cols / 32 + 7) / 8) * GREC;
}

// MARK: activations (portable: identical bits at every level)

// Where block b's scale / aux word and its element j's q sit in a prepared token.
static inline size_t x_pos(int64_t b) { return (size_t)(b / 8) * GREC + 4 * (size_t)((b & 1) * 4 + (b & 7) / 2); }
static inline size_t x_q(int64_t b, int j) {
    return (size_t)(b / 8) * GREC + 64 + 64 * (size_t)((b & 7) / 2) + (j < 16 ? 0 : 32) + 16 * (size_t)(b & 1) + (size_t)(j & 15);
}

// roundf (half away from zero), NaN to 0, clamped to [-127, 127]; a NaN activation makes the block's d NaN instead.
// Written with a truncating conversion (|v| < 127, so v - trunc(v) is exact) because roundf is a library call on
// baseline x86-64: it took 1.4% of a native decode step.
static inline int8_t q8_round(float v) {
    if (v != v) return 0;
    float a = fabsf(v);
    if (a >= 127.0f) return v > 0 ? 127 : -127;
    int32_t i = (int32_t)a;
    int32_t r = i + ((a - (float)i) >= 0.5f);
    return (int8_t)(v < 0 ? -r : r);
}

// Block b's scale and aux word: dh = ggml's f16 d as f32; q8_1 types: s = f16(sum * d) as f32, else the offset
// correction -off * sum. Each level rounds to f16 with its own instruction (the same bits) and passes them here.
static inline void put_block_scales(int dtype, uint8_t *out, int64_t b, float dh, float s, int32_t sum) {
    memcpy(out + x_pos(b), &dh, 4);
    if (is_q81(dtype)) {
        memcpy(out + x_pos(b) + 32, &s, 4);
    } else {
        const int32_t c = -weight_offset(dtype) * sum;
        memcpy(out + x_pos(b) + 32, &c, 4);
    }
}

static void legacy_prepare_scalar(int dtype, const float *x, int64_t cols, uint8_t *out, size_t xs) {
    memset(out, 0, xs);
    const int64_t nb = cols / 32;
    const int q81 = is_q81(dtype);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * 32;
        float amax = 0;
        int nan = 0;
        for (int i = 0; i < 32; i++) { float v = fabsf(xb[i]); if (v > amax) amax = v; if (v != v) nan = 1; }
        float d = nan ? NAN : amax / 127.0f;
        float id = d != 0 ? 1.0f / d : 0.0f;
        float dh = pk_f16_to_f32(pk_f32_to_f16(d));   // ggml stores d as f16
        int32_t sum = 0;
        for (int i = 0; i < 32; i++) {
            int8_t v = q8_round(xb[i] * id);
            out[x_q(b, i)] = (uint8_t)v;
            sum += v;
        }
        // ggml: s = f16(sum * d), the f32 d
        put_block_scales(dtype, out, b, dh, q81 ? pk_f16_to_f32(pk_f32_to_f16((float)sum * d)) : 0, sum);
    }
}

// MARK: portable products (the reference: ggml's generic vec_dot formulas)

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline float f16p(const uint8_t *p) { return pk_f16_to_f32(rd16(p)); }

static inline int xq_at(const uint8_t *xt, int64_t b, int i) { return (int8_t)xt[x_q(b, i)]; }
static inline float xd_at(const uint8_t *xt, int64_t b) { float v; memcpy(&v, xt + x_pos(b), 4); return v; }
static inline float xs_at(const uint8_t *xt, int64_t b) { float v; memcpy(&v, xt + x_pos(b) + 32, 4); return v; }

static float legacy_dot_scalar(int ty, const uint8_t *w, const uint8_t *xt, int64_t nb) {
    float sumf = 0;
    for (int64_t b = 0; b < nb; b++) {
        int32_t sumi = 0;
        float dw, m = 0;
        switch (ty) {
        case PK_Q4_0: case PK_IQ4_NL: {
            const uint8_t *blk = w + b * 18, *qs = blk + 2;
            dw = f16p(blk);
            for (int j = 0; j < 16; j++) {
                int v0 = ty == PK_Q4_0 ? (qs[j] & 0xF) - 8 : pk_iq4nl_values[qs[j] & 0xF];
                int v1 = ty == PK_Q4_0 ? (qs[j] >> 4) - 8 : pk_iq4nl_values[qs[j] >> 4];
                sumi += v0 * xq_at(xt, b, j) + v1 * xq_at(xt, b, j + 16);
            }
            break;
        }
        case PK_Q4_1: {
            const uint8_t *blk = w + b * 20, *qs = blk + 4;
            dw = f16p(blk); m = f16p(blk + 2);
            for (int j = 0; j < 16; j++) sumi += (qs[j] & 0xF) * xq_at(xt, b, j) + (qs[j] >> 4) * xq_at(xt, b, j + 16);
            break;
        }
        default: {   // q5_0 { d, qh, qs }, q5_1 { d, m, qh, qs }: bit j of qh is element j's fifth bit
            const int one = ty == PK_Q5_1;
            const uint8_t *blk = w + b * (one ? 24 : 22), *qs = blk + (one ? 8 : 6);
            uint32_t qh; memcpy(&qh, blk + (one ? 4 : 2), 4);
            dw = f16p(blk); m = one ? f16p(blk + 2) : 0;
            for (int j = 0; j < 16; j++) {
                int v0 = (qs[j] & 0xF) | (int)((qh >> j) & 1) << 4, v1 = (qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
                if (!one) { v0 -= 16; v1 -= 16; }
                sumi += v0 * xq_at(xt, b, j) + v1 * xq_at(xt, b, j + 16);
            }
        }
        }
        sumf += (float)sumi * (dw * xd_at(xt, b));
        if (is_q81(ty)) sumf += m * xs_at(xt, b);
    }
    return sumf;
}

static void legacy_scalar(int ty, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                          float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = legacy_dot_scalar(ty, W + (size_t)r * rb, xn + (size_t)t * xs, cols / 32);
}

// MARK: x86

#if defined(__x86_64__)
#define TQ __attribute__((target("avx2,fma,f16c")))
#define TV __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
#define INL inline __attribute__((always_inline))

// The activations as legacy_prepare_scalar writes them, the same bits (pk_q8_block32: the same f32 operations, and
// F16C's conversion rounds to nearest even as pk_f32_to_f16 does): one AVX2 pass per block instead of a branchy
// rounding and a scattered store per element, which had made it ~18% of a batched native step on SmolLM2-135M.
TQ static void legacy_prepare_avx2(int dtype, const float *x, int64_t cols, uint8_t *out, size_t xs) {
    memset(out, 0, xs);
    const int64_t nb = cols / 32;
    const int q81 = is_q81(dtype);
    for (int64_t b = 0; b < nb; b++) {
        float d;
        int32_t sum;
        const __m256i q = pk_q8_block32(x + b * 32, &d, &sum);
        _mm_storeu_si128((__m128i *)(out + x_q(b, 0)), _mm256_castsi256_si128(q));
        _mm_storeu_si128((__m128i *)(out + x_q(b, 16)), _mm256_extracti128_si256(q, 1));
        put_block_scales(dtype, out, b, pk_f16_round(d), q81 ? pk_f16_round((float)sum * d) : 0, sum);
    }
}

static inline int64_t block_bytes(int ty) { return ty == PK_Q4_1 ? 20 : ty == PK_Q5_0 ? 22 : ty == PK_Q5_1 ? 24 : 18; }
static inline int64_t qs_at(int ty) { return ty == PK_Q4_1 ? 4 : ty == PK_Q5_0 ? 6 : ty == PK_Q5_1 ? 8 : 2; }
static inline int64_t qh_at(int ty) { return ty == PK_Q5_1 ? 4 : 2; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// MARK: T == 1 (and T > 1 at AVX2)
// One weight row at a time (one sequential stream per thread). A pair of blocks runs in one 256-bit register: codes
// of A's and B's elements 0..15, then of 16..31, against 32 + 32 bytes of q (4 int32 lanes per block).

// Nibble codes of a pair: lo = A's elements 0..15 | B's 0..15, hi = their elements 16..31.
TQ static INL void split_nibbles(__m256i w, __m256i *lo, __m256i *hi) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    *lo = _mm256_and_si256(w, m4);
    *hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
}
TQ static INL __m256i load2x128(const uint8_t *a, const uint8_t *b) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)a)), _mm_loadu_si128((const __m128i *)b), 1);
}

// 0x10 in byte i where bit i of `bits` is set (AVX2 has no mask-to-vector move).
TQ static INL __m256i bit16_avx2(uint32_t bits) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i sel = _mm256_set1_epi64x((int64_t)0x8040201008040201ULL);
    __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int32_t)bits), spread), sel);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, sel), _mm256_set1_epi8(0x10));
}
// Fifth bits of a pair in lo / hi order: A's bits 0..15 | B's 0..15, and bits 16..31 of each.
static inline uint32_t q5_lo(uint32_t ha, uint32_t hb) { return (ha & 0xFFFF) | hb << 16; }
static inline uint32_t q5_hi(uint32_t ha, uint32_t hb) { return ha >> 16 | (hb & 0xFFFF0000u); }

// iq4_nl levels + 128 as unsigned codes (the VNNI forms; the aux correction takes the 128 back off).
#define IQ4_LUT_U8 1, 24, 45, 63, 79, 93, 106, 118, (char)129, (char)141, (char)153, (char)166, (char)181, (char)197, (char)217, (char)241

// VNNI: codes of a pair (from whatever loads) -> integer lane sums, starting from acc.
TV static INL __m256i codes_isum_vnni(int ty, __m256i w, uint32_t ha, uint32_t hb, const uint8_t *G, int k, __m256i acc) {
    __m256i lo, hi;
    split_nibbles(w, &lo, &hi);
    if (ty == PK_IQ4_NL) {
        const __m256i lut = _mm256_setr_epi8(IQ4_LUT_U8, IQ4_LUT_U8);
        lo = _mm256_shuffle_epi8(lut, lo); hi = _mm256_shuffle_epi8(lut, hi);
    }
    if (ty == PK_Q5_0 || ty == PK_Q5_1) {
        const __m256i b4 = _mm256_set1_epi8(0x10);
        lo = _mm256_mask_add_epi8(lo, (__mmask32)q5_lo(ha, hb), lo, b4);
        hi = _mm256_mask_add_epi8(hi, (__mmask32)q5_hi(ha, hb), hi, b4);
    }
    acc = _mm256_dpbusd_epi32(acc, lo, _mm256_loadu_si256((const __m256i *)(G + 64 + 64 * k)));
    return _mm256_dpbusd_epi32(acc, hi, _mm256_loadu_si256((const __m256i *)(G + 96 + 64 * k)));
}
// AVX2, groups of 8 blocks against nt <= 4 tokens: a group's codes are unpacked once per row and token group, the
// 8 f16 scales gathered once; per token the pairs' lane sums go through three horizontal adds to the 8 exact block
// sums (record order), one convert, one scale multiply, one FMA. n < 8: a last, partial group (a lone block runs as
// a pair with itself, whose x half is zero; absent pairs add 0).
#define NT_AVX2 4
TQ static INL void group_avx2(int ty, const uint8_t *p, int n, const uint8_t *G0, size_t xs, int nt, __m256 *acc) {
    const int64_t bs = block_bytes(ty);
    __m256i lo[4], hi[4];
    for (int k = 0; k < 4; k++) {
        if (2 * k >= n) { lo[k] = hi[k] = _mm256_setzero_si256(); continue; }
        const uint8_t *pa = p + 2 * k * bs, *pb = 2 * k + 1 < n ? pa + bs : pa;
        split_nibbles(load2x128(pa + qs_at(ty), pb + qs_at(ty)), &lo[k], &hi[k]);
        if (ty == PK_IQ4_NL) {
            const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pk_iq4nl_values));
            lo[k] = _mm256_shuffle_epi8(lut, lo[k]); hi[k] = _mm256_shuffle_epi8(lut, hi[k]);
        }
        if (ty == PK_Q5_0 || ty == PK_Q5_1) {
            uint32_t ha = rd32(pa + qh_at(ty)), hb = rd32(pb + qh_at(ty));
            lo[k] = _mm256_or_si256(lo[k], bit16_avx2(q5_lo(ha, hb)));
            hi[k] = _mm256_or_si256(hi[k], bit16_avx2(q5_hi(ha, hb)));
        }
    }
    // the f16 words in record order, by word inserts (building them in memory stalled on store forwarding)
#define W16(i, o) (i < n ? (short)rd16(p + i * bs + o) : (short)0)
    const __m256 dw = _mm256_cvtph_ps(_mm_setr_epi16(W16(0, 0), W16(2, 0), W16(4, 0), W16(6, 0), W16(1, 0), W16(3, 0), W16(5, 0), W16(7, 0)));
    const __m256 mw = is_q81(ty) ? _mm256_cvtph_ps(_mm_setr_epi16(W16(0, 2), W16(2, 2), W16(4, 2), W16(6, 2), W16(1, 2), W16(3, 2), W16(5, 2), W16(7, 2))) : dw;
#undef W16
    const __m256i one = _mm256_set1_epi16(1);
    for (int j = 0; j < nt; j++) {
        const uint8_t *G = G0 + (size_t)j * xs;
        __m256i v[4];
        for (int k = 0; k < 4; k++) {
            const __m256i xl = _mm256_loadu_si256((const __m256i *)(G + 64 + 64 * k)), xh = _mm256_loadu_si256((const __m256i *)(G + 96 + 64 * k));
            if (ty == PK_IQ4_NL) {   // signed levels: ggml's sign trick; one pair sum (<= 32258) fits int16, two do not
                __m256i p0 = _mm256_maddubs_epi16(_mm256_sign_epi8(lo[k], lo[k]), _mm256_sign_epi8(xl, lo[k]));
                __m256i p1 = _mm256_maddubs_epi16(_mm256_sign_epi8(hi[k], hi[k]), _mm256_sign_epi8(xh, hi[k]));
                v[k] = _mm256_add_epi32(_mm256_madd_epi16(p0, one), _mm256_madd_epi16(p1, one));
            } else {   // codes <= 31, |x| <= 127: 4 products per int16 lane stay below 2^15
                v[k] = _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(lo[k], xl), _mm256_maddubs_epi16(hi[k], xh)), one);
            }
        }
        __m256i sums = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
        if (!is_q81(ty) && ty != PK_IQ4_NL) sums = _mm256_add_epi32(sums, _mm256_loadu_si256((const __m256i *)(G + 32)));
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(dw, _mm256_loadu_ps((const float *)G)), acc[j]);
        if (is_q81(ty)) acc[j] = _mm256_fmadd_ps(mw, _mm256_loadu_ps((const float *)(G + 32)), acc[j]);
    }
}

// Rows one at a time; each row against up to 4 tokens per pass, while it is in L1. Whole groups with a constant
// n, so that none of group_avx2's partial-group tests is left in the loop, and at T == 1 the tail's n constant too
// and the sum in a register (q4_0, T = 1, one core, GOPS: 4864 x 896 53 -> 85, 896 x 4864 65 -> 103).
#define ROWS_AVX2(NAME, TY)                                                                                   \
TQ static void NAME(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,      \
                    float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                          \
    const int64_t nb = cols / 32, bs = block_bytes(TY);                                                       \
    for (int64_t r = r0; r < r1; r++) {                                                                       \
        const uint8_t *w = W + (size_t)r * rb;                                                                \
        if (T == 1) {                                                                                         \
            __m256 acc = _mm256_setzero_ps();                                                                 \
            int64_t b = 0;                                                                                    \
            for (; b + 8 <= nb; b += 8) group_avx2(TY, w + b * bs, 8, xn + (b / 8) * GREC, xs, 1, &acc);      \
            const uint8_t *p = w + b * bs, *G = xn + (b / 8) * GREC;                                          \
            switch (nb - b) {                                                                                 \
            case 1: group_avx2(TY, p, 1, G, xs, 1, &acc); break;                                              \
            case 2: group_avx2(TY, p, 2, G, xs, 1, &acc); break;                                              \
            case 3: group_avx2(TY, p, 3, G, xs, 1, &acc); break;                                              \
            case 4: group_avx2(TY, p, 4, G, xs, 1, &acc); break;                                              \
            case 5: group_avx2(TY, p, 5, G, xs, 1, &acc); break;                                              \
            case 6: group_avx2(TY, p, 6, G, xs, 1, &acc); break;                                              \
            case 7: group_avx2(TY, p, 7, G, xs, 1, &acc); break;                                              \
            }                                                                                                 \
            Y[r] = hsum256(acc);                                                                                \
            continue;                                                                                         \
        }                                                                                                     \
        for (int64_t t = 0; t < T; t += NT_AVX2) {                                                            \
            const int nt = T - t < NT_AVX2 ? (int)(T - t) : NT_AVX2;                                          \
            const uint8_t *x = xn + (size_t)t * xs;                                                           \
            __m256 acc[NT_AVX2];                                                                              \
            for (int j = 0; j < NT_AVX2; j++) acc[j] = _mm256_setzero_ps();                                   \
            int64_t b = 0;                                                                                    \
            for (; b + 8 <= nb; b += 8) group_avx2(TY, w + b * bs, 8, x + (b / 8) * GREC, xs, nt, acc);      \
            if (b < nb) group_avx2(TY, w + b * bs, (int)(nb - b), x + (b / 8) * GREC, xs, nt, acc);           \
            for (int j = 0; j < nt; j++) Y[(t + j) * ldy + r] = hsum256(acc[j]);                                \
        }                                                                                                     \
    }                                                                                                         \
}
ROWS_AVX2(rows_q4_0_avx2, PK_Q4_0) ROWS_AVX2(rows_q4_1_avx2, PK_Q4_1) ROWS_AVX2(rows_q5_0_avx2, PK_Q5_0)
ROWS_AVX2(rows_q5_1_avx2, PK_Q5_1) ROWS_AVX2(rows_iq4_nl_avx2, PK_IQ4_NL)

// VNNI, groups of 8 blocks: each pair from two 32-byte loads that end exactly at its end (L1 = p[0, 32),
// L2 = p[2 bs - 32, 2 bs), bs = 18..24 bytes); one word permute gathers A's 16 code bytes (L1) and B's (L2 words
// 8..15). Three horizontal adds turn the 4 pairs' lane sums into the 8 exact block sums (blocks 0 2 4 6 1 3 5 7, the
// record's order), and two more word permutes gather the 8 f16 scales (and mins) in that order from the L1s, so a
// group costs one convert, one scale multiply and one FMA (measured, one core, q4_0, 896 columns in cache:
// 28.6 GB/s; 23 GB/s when each pair's 4-lane sums were scaled apart, as ggml's AVX2 code does).
// Blocks [b, b + n) of a row, n <= 8, whole pairs first. In a last, partial group a lone block's pair takes its
// bytes by a masked load (nothing past the row is touched) and its codes twice, and absent pairs add 0 (their q, d_x
// and aux are 0 in the record, their d_w words 0).
TV static INL __m256 group_vnni(int ty, const uint8_t *p, const uint8_t *G, int n, __m256 acc, __m256 *accm) {
    const int bs = (int)block_bytes(ty), a = (int)qs_at(ty) / 2, hb = bs / 2;
    const __m256i iq = _mm256_setr_epi16(a, a + 1, a + 2, a + 3, a + 4, a + 5, a + 6, a + 7, 24, 25, 26, 27, 28, 29, 30, 31);
    // words of (L1 of pair 0, of pair 1) and (of pair 2, of pair 3): d at word 0 (A) and hb (B), m after each
    const __m256i i01 = _mm256_setr_epi16(0, 16, 0, 0, hb, 16 + hb, 0, 0, 1, 17, 0, 0, hb + 1, 17 + hb, 0, 0);
    const __m256i i23 = _mm256_setr_epi16(0, 0, 0, 16, 0, 0, hb, 16 + hb, 0, 0, 1, 17, 0, 0, hb + 1, 17 + hb);
    __m256i l1[4], v[4];
    for (int k = 0; k < 4; k++) {
        const uint8_t *pk = p + 2 * k * bs;
        uint32_t ha = 0, hb2 = 0;
        __m256i codes;
        if (2 * k + 2 <= n) {
            l1[k] = _mm256_loadu_si256((const __m256i *)pk);
            codes = _mm256_permutex2var_epi16(l1[k], iq, _mm256_loadu_si256((const __m256i *)(pk + 2 * bs - 32)));
            if (ty == PK_Q5_0 || ty == PK_Q5_1) { ha = rd32(pk + qh_at(ty)); hb2 = rd32(pk + bs + qh_at(ty)); }
        } else if (2 * k + 1 == n) {
            l1[k] = _mm256_maskz_loadu_epi8((__mmask32)((1u << bs) - 1u), pk);
            codes = load2x128(pk + qs_at(ty), pk + qs_at(ty));
            if (ty == PK_Q5_0 || ty == PK_Q5_1) { ha = rd32(pk + qh_at(ty)); hb2 = ha; }
        } else {
            l1[k] = v[k] = _mm256_setzero_si256();
            continue;
        }
        v[k] = codes_isum_vnni(ty, codes, ha, hb2, G, k, _mm256_setzero_si256());
    }
    __m256i sums = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    if (!is_q81(ty)) sums = _mm256_add_epi32(sums, _mm256_loadu_si256((const __m256i *)(G + 32)));
    __m256i dm = _mm256_blend_epi32(_mm256_permutex2var_epi16(l1[0], i01, l1[1]), _mm256_permutex2var_epi16(l1[2], i23, l1[3]), 0xAA);
    __m256 s = _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(dm)), _mm256_loadu_ps((const float *)G));
    if (is_q81(ty)) *accm = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(dm, 1)), _mm256_loadu_ps((const float *)(G + 32)), *accm);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), s, acc);
}

TV static INL float row_dot_vnni(int ty, const uint8_t *w, const uint8_t *xt, int64_t nb) {
    const int64_t bs = block_bytes(ty);
    __m256 acc = _mm256_setzero_ps(), accm = acc;
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8) acc = group_vnni(ty, w + b * bs, xt + (b / 8) * GREC, 8, acc, &accm);
    if (b < nb) acc = group_vnni(ty, w + b * bs, xt + (b / 8) * GREC, (int)(nb - b), acc, &accm);
    return hsum256(is_q81(ty) ? _mm256_add_ps(acc, accm) : acc);
}

// Each row against every token while it is in L1.
#define ROWS(NAME, TGT, DOT, TY)                                                                              \
TGT static void NAME(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,     \
                     float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                         \
    for (int64_t r = r0; r < r1; r++)                                                                         \
        for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = DOT(TY, W + (size_t)r * rb, xn + (size_t)t * xs, cols / 32); \
}
typedef void (*legacy_fn)(const uint8_t *, size_t, int64_t, const uint8_t *, size_t, int64_t, float *, int64_t, int64_t, int64_t);
#define ROWS_ALL(SUF, TGT, DOT)                                                                               \
ROWS(rows_q4_0_##SUF, TGT, DOT, PK_Q4_0) ROWS(rows_q4_1_##SUF, TGT, DOT, PK_Q4_1)                             \
ROWS(rows_q5_0_##SUF, TGT, DOT, PK_Q5_0) ROWS(rows_q5_1_##SUF, TGT, DOT, PK_Q5_1)                             \
ROWS(rows_iq4_nl_##SUF, TGT, DOT, PK_IQ4_NL)                                                                  \
static legacy_fn rows_##SUF(int ty) {                                                                         \
    switch (ty) {                                                                                             \
    case PK_Q4_0: return rows_q4_0_##SUF;                                                                     \
    case PK_Q4_1: return rows_q4_1_##SUF;                                                                     \
    case PK_Q5_0: return rows_q5_0_##SUF;                                                                     \
    case PK_Q5_1: return rows_q5_1_##SUF;                                                                     \
    default: return rows_iq4_nl_##SUF;                                                                        \
    }                                                                                                         \
}
static legacy_fn rows_avx2(int ty) {
    switch (ty) {
    case PK_Q4_0: return rows_q4_0_avx2;
    case PK_Q4_1: return rows_q4_1_avx2;
    case PK_Q5_0: return rows_q5_0_avx2;
    case PK_Q5_1: return rows_q5_1_avx2;
    default: return rows_iq4_nl_avx2;
    }
}
ROWS_ALL(vnni, TV, row_dot_vnni)

// MARK: T > 1 with AVX2
// The VNNI tiles' scheme (below) with 8 rows: one ymm holds 4 codes of each of 8 rows, vpmaddubsw against 4 q of
// one token broadcast gives 8 rows x 2 pair sums, summed in int16 as far as no lane can overflow, then vpmaddwd with
// ones to int32; each packed chunk (in L1) is reused by every token. Bounds of an int16 lane, |q| <= 127: q4_0 /
// q4_1 codes <= 15, 8 groups (a block, 16 products) per int16 sum: 16 * 15 * 127 = 30480; q5_0 / q5_1 codes <= 31,
// 4 groups: 8 * 31 * 127 = 31496; iq4_nl signed levels by ggml's sign trick (|level| <= 127), one group:
// 2 * 127 * 127 = 32258. Codes are unsigned (level + off) for q4_0 / q5_0, taken back by the aux correction.
typedef struct { uint8_t q[8][32]; float d[8]; float m[8]; } lg_pack8_blk;   // 8 groups x 8 rows x 4 codes
#define LG_KB8 32                                                            // blocks per chunk (a multiple of 8): 10 KiB

// One block of one row as 32 codes in element order (iq4_nl: the signed levels).
TQ static INL __m256i row_codes_avx2(int ty, const uint8_t *blk) {
    __m128i q = _mm_loadu_si128((const __m128i *)(blk + qs_at(ty)));
    __m256i v = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1), _mm256_set1_epi8(0x0F));
    if (ty == PK_IQ4_NL) v = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pk_iq4nl_values)), v);
    if (ty == PK_Q5_0 || ty == PK_Q5_1) v = _mm256_or_si256(v, bit16_avx2(rd32(blk + qh_at(ty))));
    return v;
}

TQ static INL void lg_pack8(int ty, const uint8_t *W, size_t rb, int64_t r, int nr, int64_t b0, int nbk, lg_pack8_blk *out) {
    const int64_t bs = block_bytes(ty);
    for (int bi = 0; bi < nbk; bi++) {
        const uint8_t *p = W + (size_t)r * rb + (b0 + bi) * bs;
        __m256i z[8];
        for (int j = 0; j < 8; j++) z[j] = j < nr ? row_codes_avx2(ty, p + (size_t)j * rb) : _mm256_setzero_si256();
        pk_tile8_transpose(z, out[bi].q);
#define W16(j, o) (j < nr ? (short)rd16(p + (size_t)j * rb + o) : (short)0)
        _mm256_store_ps(out[bi].d, _mm256_cvtph_ps(_mm_setr_epi16(W16(0, 0), W16(1, 0), W16(2, 0), W16(3, 0), W16(4, 0), W16(5, 0), W16(6, 0), W16(7, 0))));
        if (is_q81(ty))
            _mm256_store_ps(out[bi].m, _mm256_cvtph_ps(_mm_setr_epi16(W16(0, 2), W16(1, 2), W16(2, 2), W16(3, 2), W16(4, 2), W16(5, 2), W16(6, 2), W16(7, 2))));
#undef W16
    }
}

// NT tokens x 8 rows over nbk packed blocks; y[j*ldy + i] (+)= sum for the first nr rows. x points at the chunk's
// first group record (b0 is a multiple of 8). Group g takes q elements 4g.. (g < 4) or 16 + 4(g - 4).. (g >= 4): at
// x_q(b, 0) + 4g, or + 32 + 4(g - 4). For q4_0 / q4_1 empty asm statements pin the codes and the broadcasts in
// registers where they are made: without them clang hoisted a block's loads ahead and spilled (896 x 896, T = 128,
// one core: 233 GOPS with, 207 without); the other types ran slower with them (q5_0 144 vs 206 GOPS).
#define PIN(TY) (TY == PK_Q4_0 || TY == PK_Q4_1)
TQ static INL __m256i bcast_q(const uint8_t *q, int g, int pin) {
    int32_t v; memcpy(&v, q + (g < 4 ? 4 * g : 16 + 4 * g), 4);
    __m256i r = _mm256_set1_epi32(v);
    if (pin) __asm__("" : "+x"(r));
    return r;
}
TQ static INL __m256i load_codes(const lg_pack8_blk *p, int g, int pin) {
    __m256i w = _mm256_load_si256((const __m256i *)p->q[g]);
    if (pin) __asm__("" : "+x"(w));
    return w;
}
#define LG_MICRO8(NT, TY, SUF)                                                                                \
TQ static void lg8_##SUF##_##NT(const lg_pack8_blk *pk, int nbk, const uint8_t *x, size_t xs,                 \
                                float *y, int64_t ldy, int nr, int accumulate) {                              \
    const __m256i one = _mm256_set1_epi16(1);                                                                 \
    __m256 f[NT];                                                                                             \
    for (int j = 0; j < NT; j++) f[j] = _mm256_setzero_ps();                                                  \
    for (int bi = 0; bi < nbk; bi++) {                                                                        \
        const lg_pack8_blk *p = pk + bi;                                                                      \
        const size_t po = x_pos(bi), qo = x_q(bi, 0);                                                         \
        __m256i a[NT];                                                                                        \
        for (int j = 0; j < NT; j++) a[j] = _mm256_setzero_si256();                                           \
        if (TY == PK_IQ4_NL) {                                                                                \
            for (int g = 0; g < 8; g++) {                                                                     \
                const __m256i w = load_codes(p, g, PIN(TY)), aw = _mm256_abs_epi8(w);                                  \
                for (int j = 0; j < NT; j++)                                                                  \
                    a[j] = _mm256_add_epi32(a[j], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(bcast_q(x + (size_t)j * xs + qo, g, PIN(TY)), w)), one)); \
            }                                                                                                 \
        } else {                                                                                              \
            const int span = TY == PK_Q5_0 || TY == PK_Q5_1 ? 4 : 8;                                          \
            for (int g0 = 0; g0 < 8; g0 += span) {                                                            \
                __m256i h[NT];                                                                                \
                for (int j = 0; j < NT; j++) h[j] = _mm256_setzero_si256();                                   \
                for (int g = g0; g < g0 + span; g++) {                                                        \
                    const __m256i w = load_codes(p, g, PIN(TY));                                                       \
                    for (int j = 0; j < NT; j++) h[j] = _mm256_add_epi16(h[j], _mm256_maddubs_epi16(w, bcast_q(x + (size_t)j * xs + qo, g, PIN(TY)))); \
                }                                                                                             \
                for (int j = 0; j < NT; j++) a[j] = _mm256_add_epi32(a[j], _mm256_madd_epi16(h[j], one));     \
            }                                                                                                 \
        }                                                                                                     \
        const __m256 dw = _mm256_load_ps(p->d);                                                               \
        for (int j = 0; j < NT; j++) {                                                                        \
            const uint8_t *xt = x + (size_t)j * xs;                                                           \
            if (TY == PK_Q4_0 || TY == PK_Q5_0) a[j] = _mm256_add_epi32(a[j], _mm256_set1_epi32((int32_t)rd32(xt + po + 32))); \
            f[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[j]), _mm256_mul_ps(dw, _mm256_broadcast_ss((const float *)(xt + po))), f[j]); \
            if (is_q81(TY)) f[j] = _mm256_fmadd_ps(_mm256_load_ps(p->m), _mm256_broadcast_ss((const float *)(xt + po + 32)), f[j]); \
        }                                                                                                     \
    }                                                                                                         \
    for (int j = 0; j < NT; j++) pk_store8_rows(y + j * ldy, f[j], nr, accumulate);                          \
}
#define NT8 4
typedef void (*lg8_fn)(const lg_pack8_blk *, int, const uint8_t *, size_t, float *, int64_t, int, int);
#define TILES8(SUF, TY)                                                                                       \
LG_MICRO8(1, TY, SUF) LG_MICRO8(2, TY, SUF) LG_MICRO8(3, TY, SUF) LG_MICRO8(4, TY, SUF)                       \
TQ static void tiles8_##SUF(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T, \
                            float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                  \
    static const lg8_fn micro[NT8] = { lg8_##SUF##_1, lg8_##SUF##_2, lg8_##SUF##_3, lg8_##SUF##_4 };          \
    const int64_t nb = cols / 32;                                                                             \
    lg_pack8_blk pk[LG_KB8] __attribute__((aligned(32)));                                                     \
    for (int64_t r = r0; r < r1; r += 8) {                                                                    \
        const int nr = r1 - r < 8 ? (int)(r1 - r) : 8;                                                        \
        for (int64_t b0 = 0; b0 < nb; b0 += LG_KB8) {                                                         \
            const int nbk = nb - b0 < LG_KB8 ? (int)(nb - b0) : LG_KB8;                                       \
            pk_prefetch_next_tile(W, rb, block_bytes(TY), nb, LG_KB8, 8, r, r1, b0);                          \
            lg_pack8(TY, W, rb, r, nr, b0, nbk, pk);                                                          \
            for (int64_t t = 0; t < T; t += NT8) {                                                            \
                const int nt = T - t < NT8 ? (int)(T - t) : NT8;                                              \
                micro[nt - 1](pk, nbk, xn + (size_t)t * xs + (size_t)(b0 / 8) * GREC, xs, Y + t * ldy + r, ldy, nr, b0 > 0); \
            }                                                                                                 \
        }                                                                                                     \
    }                                                                                                         \
}
TILES8(q4_0, PK_Q4_0) TILES8(q4_1, PK_Q4_1) TILES8(q5_0, PK_Q5_0) TILES8(q5_1, PK_Q5_1) TILES8(iq4_nl, PK_IQ4_NL)

static legacy_fn tiles_avx2(int ty) {
    switch (ty) {
    case PK_Q4_0: return tiles8_q4_0;
    case PK_Q4_1: return tiles8_q4_1;
    case PK_Q5_0: return tiles8_q5_0;
    case PK_Q5_1: return tiles8_q5_1;
    default: return tiles8_iq4_nl;
    }
}

// MARK: T > 1 with VNNI
// 16 weight rows are unpacked to unsigned byte codes (as in the T == 1 kernels) and repacked per chunk of blocks so
// that one zmm holds 4 codes of each of the 16 rows; vpdpbusd against 4 q of one token broadcast gives 16 row sums
// at once, and each packed chunk (in L1) is reused by every token (the scheme of pk_native_q8_vnni).
typedef struct { uint8_t q[8][64]; float d[16]; float m[16]; } lg_pack_blk;   // 8 groups x 16 rows x 4 codes
#define LG_KB 24                                                               // blocks per chunk: 15 KiB

// One block of one row as 32 unsigned codes in element order.
TV static INL __m256i row_codes(int ty, const uint8_t *blk) {
    __m128i q = _mm_loadu_si128((const __m128i *)(blk + qs_at(ty)));
    __m256i v = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1), _mm256_set1_epi8(0x0F));
    if (ty == PK_IQ4_NL) {
        v = _mm256_shuffle_epi8(_mm256_setr_epi8(IQ4_LUT_U8, IQ4_LUT_U8), v);
    }
    if (ty == PK_Q5_0 || ty == PK_Q5_1) v = _mm256_mask_add_epi8(v, (__mmask32)rd32(blk + qh_at(ty)), v, _mm256_set1_epi8(0x10));
    return v;
}

TV static INL void lg_pack16(int ty, const uint8_t *W, size_t rb, int64_t r, int nr, int64_t b0, int nbk, lg_pack_blk *out) {
    const int64_t bs = block_bytes(ty);
    for (int bi = 0; bi < nbk; bi++) {
        lg_pack_blk *o = out + bi;
        const int64_t off = (b0 + bi) * bs;
        __m512i z[8];
        for (int j = 0; j < 8; j++) {   // z[j] = row j (8 dwords) | row j + 8
            __m256i a = j < nr ? row_codes(ty, W + (size_t)(r + j) * rb + off) : _mm256_setzero_si256();
            __m256i b = j + 8 < nr ? row_codes(ty, W + (size_t)(r + j + 8) * rb + off) : _mm256_setzero_si256();
            z[j] = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
        }
        pk_tile16_transpose(z, o->q);
        for (int i = 0; i < 16; i++) {
            const uint8_t *blk = W + (size_t)(r + i) * rb + off;
            o->d[i] = i < nr ? _cvtsh_ss(rd16(blk)) : 0.0f;   // F16C: pk_f16_to_f32 is a call, per row and block
            o->m[i] = i < nr && is_q81(ty) ? _cvtsh_ss(rd16(blk + 2)) : 0.0f;
        }
    }
}

// NT tokens x 16 rows over nbk packed blocks; y[j*ldy + i] (+)= sum for the first nr rows. Q81: the m * s term
// instead of the integer correction.
#define LG_MICRO(NT, Q81)                                                                                     \
TV static void lg_micro_##Q81##_##NT(const lg_pack_blk *pk, int nbk, const uint8_t *x, size_t xs, int64_t b0, \
                                     float *y, int64_t ldy, int nr, int accumulate) {                         \
    __m512 f[NT];                                                                                             \
    for (int j = 0; j < NT; j++) f[j] = _mm512_setzero_ps();                                                  \
    for (int bi = 0; bi < nbk; bi++) {                                                                        \
        const lg_pack_blk *p = pk + bi;                                                                       \
        __m512i w[8];                                                                                         \
        for (int g = 0; g < 8; g++) w[g] = _mm512_load_si512((const __m512i *)p->q[g]);                       \
        __m512 dw = _mm512_load_ps(p->d), mw = Q81 ? _mm512_load_ps(p->m) : dw;                               \
        const int64_t b = b0 + bi;                                                                            \
        const size_t po = x_pos(b), qo = x_q(b, 0);                                                           \
        for (int j = 0; j < NT; j++) {                                                                        \
            const uint8_t *xt = x + (size_t)j * xs;                                                           \
            int32_t ql[4], qh4[4], c;                                                                         \
            memcpy(ql, xt + qo, 16); memcpy(qh4, xt + qo + 32, 16);                                           \
            memcpy(&c, xt + po + 32, 4);                                                                      \
            __m512i a0 = Q81 ? _mm512_setzero_si512() : _mm512_set1_epi32(c), a1 = _mm512_setzero_si512();    \
            for (int g = 0; g < 4; g++) {                                                                     \
                a0 = _mm512_dpbusd_epi32(a0, w[g], _mm512_set1_epi32(ql[g]));                                 \
                a1 = _mm512_dpbusd_epi32(a1, w[g + 4], _mm512_set1_epi32(qh4[g]));                            \
            }                                                                                                 \
            float dx; memcpy(&dx, xt + po, 4);                                                                \
            f[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1)), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), f[j]); \
            if (Q81) { float s; memcpy(&s, xt + po + 32, 4); f[j] = _mm512_fmadd_ps(mw, _mm512_set1_ps(s), f[j]); } \
        }                                                                                                     \
    }                                                                                                         \
    for (int j = 0; j < NT; j++) pk_store16_rows(y + j * ldy, f[j], nr, accumulate);                          \
}
#define LG_MICROS(Q81) LG_MICRO(1, Q81) LG_MICRO(2, Q81) LG_MICRO(3, Q81) LG_MICRO(4, Q81) LG_MICRO(5, Q81) \
                       LG_MICRO(6, Q81) LG_MICRO(7, Q81) LG_MICRO(8, Q81)
LG_MICROS(0) LG_MICROS(1)
typedef void (*lg_micro_fn)(const lg_pack_blk *, int, const uint8_t *, size_t, int64_t, float *, int64_t, int, int);
static const lg_micro_fn lg_micro[2][8] = {
    { lg_micro_0_1, lg_micro_0_2, lg_micro_0_3, lg_micro_0_4, lg_micro_0_5, lg_micro_0_6, lg_micro_0_7, lg_micro_0_8 },
    { lg_micro_1_1, lg_micro_1_2, lg_micro_1_3, lg_micro_1_4, lg_micro_1_5, lg_micro_1_6, lg_micro_1_7, lg_micro_1_8 },
};

#define TILES(NAME, TY)                                                                                       \
TV static void NAME(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,      \
                    float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                          \
    const int64_t nb = cols / 32;                                                                             \
    lg_pack_blk pk[LG_KB] __attribute__((aligned(64)));                                                       \
    for (int64_t r = r0; r < r1; r += 16) {                                                                   \
        int nr = r1 - r < 16 ? (int)(r1 - r) : 16;                                                            \
        for (int64_t b0 = 0; b0 < nb; b0 += LG_KB) {                                                          \
            int nbk = nb - b0 < LG_KB ? (int)(nb - b0) : LG_KB;                                               \
            pk_prefetch_next_tile(W, rb, block_bytes(TY), nb, LG_KB, 16, r, r1, b0);                          \
            lg_pack16(TY, W, rb, r, nr, b0, nbk, pk);                                                         \
            for (int64_t t = 0; t < T; t += 8) {                                                              \
                int nt = T - t < 8 ? (int)(T - t) : 8;                                                        \
                lg_micro[is_q81(TY)][nt - 1](pk, nbk, xn + (size_t)t * xs, xs, b0, Y + t * ldy + r, ldy, nr, b0 > 0); \
            }                                                                                                 \
        }                                                                                                     \
    }                                                                                                         \
}
TILES(tiles_q4_0, PK_Q4_0) TILES(tiles_q4_1, PK_Q4_1) TILES(tiles_q5_0, PK_Q5_0) TILES(tiles_q5_1, PK_Q5_1)
TILES(tiles_iq4_nl, PK_IQ4_NL)

static legacy_fn tiles_vnni(int ty) {
    switch (ty) {
    case PK_Q4_0: return tiles_q4_0;
    case PK_Q4_1: return tiles_q4_1;
    case PK_Q5_0: return tiles_q5_0;
    case PK_Q5_1: return tiles_q5_1;
    default: return tiles_iq4_nl;
    }
}
#endif

// MARK: aarch64 (NEON)
// One row at a time against up to 4 tokens (T > 1 takes them 4, 2, 1 at a time while the row is in L1). A block's 32 weights
// become signed int8 values (ggml's levels: q4_0 - 8, q5_0 - 16, iq4_nl table; q4_1 / q5_1 codes as they are),
// dotted with the block's q in int32 lanes and reduced once per block to the portable code's exact sumi; the f32
// epilogue per block is the portable code's.
#if defined(__aarch64__)
#include <arm_neon.h>

static inline float f16_round_neon(float v) { __fp16 h = (__fp16)v; return (float)h; }   // fcvt: to nearest even

// legacy_prepare_scalar's bytes from 8 vectors a block: vrndaq rounds half away from zero as roundf; a NaN makes
// the scale NaN (as the portable code's flag does) and converts to 0.
static void legacy_prepare_neon(int dtype, const float *x, int64_t cols, uint8_t *out, size_t xs) {
    memset(out, 0, xs);
    const int64_t nb = cols / 32;
    const int q81 = is_q81(dtype);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * 32;
        float32x4_t v[8], mx = vdupq_n_f32(0);
        uint32x4_t ord = vdupq_n_u32(0xFFFFFFFFu);
        for (int k = 0; k < 8; k++) {
            v[k] = vld1q_f32(xb + 4 * k);
            ord = vandq_u32(ord, vceqq_f32(v[k], v[k]));
            mx = vmaxq_f32(mx, vabsq_f32(v[k]));
        }
        const float d = vminvq_u32(ord) ? vmaxvq_f32(mx) / 127.0f : NAN;
        const float32x4_t id = vdupq_n_f32(d != 0 ? 1.0f / d : 0.0f);
        int32x4_t s4 = vdupq_n_s32(0);
        int8x8_t q8[4];
        for (int k = 0; k < 8; k += 2) {
            int32x4_t i[2];
            for (int h = 0; h < 2; h++) {
                float32x4_t r = vrndaq_f32(vmulq_f32(v[k + h], id));
                r = vminq_f32(vmaxq_f32(r, vdupq_n_f32(-127.0f)), vdupq_n_f32(127.0f));
                i[h] = vcvtq_s32_f32(r);   // NaN -> 0
                s4 = vaddq_s32(s4, i[h]);
            }
            q8[k / 2] = vmovn_s16(vcombine_s16(vmovn_s32(i[0]), vmovn_s32(i[1])));
        }
        vst1q_s8((int8_t *)(out + x_q(b, 0)), vcombine_s8(q8[0], q8[1]));
        vst1q_s8((int8_t *)(out + x_q(b, 16)), vcombine_s8(q8[2], q8[3]));
        const int32_t sum = vaddvq_s32(s4);
        put_block_scales(dtype, out, b, f16_round_neon(d), q81 ? f16_round_neon((float)sum * d) : 0, sum);
    }
}


// One row against nt = 1, 2 or 4 prepared tokens (a constant after inlining): each block's codes are unpacked once;
// per token the same integer sum and the same two f32 statements as the portable code.
static inline __attribute__((always_inline)) void legacy_dots_neon(int ty, const uint8_t *w, const uint8_t *const *xt, int nt,
                                                                   int64_t nb, float *out) {
    const int64_t bs = ty == PK_Q4_1 ? 20 : ty == PK_Q5_0 ? 22 : ty == PK_Q5_1 ? 24 : 18;
    float sumf[4] = {0, 0, 0, 0};
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = w + b * bs;
        int8x16_t a0, a1;
        pk_legacy_levels_neon(ty, blk, &a0, &a1);
        const float dw = pk_f16_at_neon(blk);
        for (int t = 0; t < nt; t++) {
            const uint8_t *xq = xt[t] + x_q(b, 0);   // elements 0..15 here, 16..31 at + 32
            const int32x4_t acc = pk_dot16_neon(pk_dot16_neon(vdupq_n_s32(0), a0, vld1q_s8((const int8_t *)xq)), a1, vld1q_s8((const int8_t *)(xq + 32)));
            const int32_t sumi = vaddvq_s32(acc);
            sumf[t] += (float)sumi * (dw * xd_at(xt[t], b));
            if (is_q81(ty)) sumf[t] += pk_f16_at_neon(blk + 2) * xs_at(xt[t], b);
        }
    }
    for (int t = 0; t < nt; t++) out[t] = sumf[t];
}

static void legacy_neon(int ty, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                        float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = W + (size_t)r * rb;
        for (int64_t t = 0; t < T;) {
            const int nt = T - t >= 4 ? 4 : T - t >= 2 ? 2 : 1;
            const uint8_t *xt[4];
            float o[4];
            for (int i = 0; i < nt; i++) xt[i] = xn + (size_t)(t + i) * xs;
            if (nt == 4) legacy_dots_neon(ty, w, xt, 4, cols / 32, o);
            else if (nt == 2) legacy_dots_neon(ty, w, xt, 2, cols / 32, o);
            else legacy_dots_neon(ty, w, xt, 1, cols / 32, o);
            for (int i = 0; i < nt; i++) Y[(t + i) * ldy + r] = o[i];
            t += nt;
        }
    }
}
#endif

// MARK: entry points

void pk_native_legacy_prepare(int dtype, const float *x, int64_t cols, uint8_t *out) {
    const size_t xs = pk_native_legacy_x_stride(dtype, cols);
    if (!xs) return;
#if defined(__x86_64__)
    if (strcmp(pk_ops_current()->name, "scalar") != 0) { legacy_prepare_avx2(dtype, x, cols, out, xs); return; }
#endif
#if defined(__aarch64__)
    if (strcmp(pk_ops_current()->name, "neon") == 0) { legacy_prepare_neon(dtype, x, cols, out, xs); return; }
#endif
    legacy_prepare_scalar(dtype, x, cols, out, xs);
}

void pk_native_legacy_matmul(int dtype, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                             float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    if (!pk_native_legacy_x_stride(dtype, cols) || r0 >= r1 || T <= 0) return;
#if defined(__x86_64__)
    const char *level = pk_ops_current()->name;
    if (!strcmp(level, "avx512vnni") || !strcmp(level, "avx512bf16")) {
        // a few tokens: each row against every token in L1 beats packing tiles (q4_0 4864 x 896, one core: tiles
        // 51 / 91 / 145 GOPS at T = 2 / 4 / 8, rows ~100 GOPS at any T)
        (T < 6 ? rows_vnni(dtype) : tiles_vnni(dtype))(W, rb, cols, xn, xs, T, Y, ldy, r0, r1);
        return;
    }
    if (!strcmp(level, "avx2") || !strcmp(level, "avx512")) {
        // packed 8-row tiles from where they beat rows (one core, 896 x 896, GOPS rows / tiles: q4_0 T = 3
        // 112 / 94, T = 4 124 / 128; q4_1 T = 4 110 / 99, T = 5 93 / 108; q5_0 T = 3 81 / 87; q5_1 T = 4 87 / 87;
        // iq4_nl T = 2 63 / 62, T = 3 74 / 77)
        const int tiles = T >= (dtype == PK_Q4_0 ? 4 : dtype == PK_Q4_1 || dtype == PK_Q5_1 ? 5 : 3);
        (tiles ? tiles_avx2(dtype) : rows_avx2(dtype))(W, rb, cols, xn, xs, T, Y, ldy, r0, r1);
        return;
    }
#endif
#if defined(__aarch64__)
    if (strcmp(pk_ops_current()->name, "neon") == 0) {
        legacy_neon(dtype, W, rb, cols, xn, xs, T, Y, ldy, r0, r1);
        return;
    }
#endif
    legacy_scalar(dtype, W, rb, cols, xn, xs, T, Y, ldy, r0, r1);
}
