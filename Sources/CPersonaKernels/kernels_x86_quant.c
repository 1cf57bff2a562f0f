// AVX-512 dequantisation and matrix-vector kernels for the GGUF types without a dedicated kernel in
// kernels_x86.c: q5_0, q5_1, iq4_nl (blocks of 32) and q2_K, q3_K, q4_K, q5_K, q6_K, iq4_xs (blocks of 256).
//
// Every weight is bit-identical to pk_dequant_row_scalar (kernels.c), i.e. to gguf-py: the same f32 products and
// differences in the same order, never fused. Most types take a block's few distinct weight values from a table:
// the 16 (or 32) values one scale / min pair can give are computed once per sub-block with the reference's
// operations (e.g. q4_K: d1 * q - m1 for q = 0..15), then each weight is one vpermps / vpermt2ps on its quant
// bits. That replaces mask, int -> float conversion, multiply and subtract per element by one shuffle, and the
// shuffles use only the low 4 (5) index bits, so neighbouring bits need no masking.
// Each type has one `<type>_block` that builds a block's weights in registers; dequant stores them, matvec
// multiplies them into x with several accumulators, one row at a time (one sequential stream per thread).
// Decode (T == 1) at the AVX-512 levels normally runs the faster kernels on laid-out x (kernels_x86_exact32.c,
// kernels_x86_exactk.c); these matvec kernels are the path when that layout's scratch cannot be allocated.
#include "pk_internal.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define TQ __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// One f16 scale broadcast to 16 lanes (vcvtph2ps keeps NaN payloads as pk_f16_to_f32 does, quieted by the
// first product, as in the reference).
TQ static inline __m512 f16_bcast16(const uint8_t *p) { return _mm512_cvtph_ps(_mm256_set1_epi16((short)rd16(p))); }

// Per-sub-block scales are stored to a small array and re-read as broadcast loads (load port); the barrier stops
// the compiler from forwarding the stored vector, which it otherwise broadcasts with two shuffles per scale,
// competing with the table lookups for the shuffle unit.
#define KEEP_IN_MEMORY(a) __asm__("" : "+m"(a))

// 16 bytes widened to 32-bit lanes: lane i holds byte i (low nibble in bits 0-3, high nibble in bits 4-7).
TQ static inline __m512i u8x16(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p)); }

TQ static inline __m512 iota16(void) {
    return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

// =====================================================================================================
// MARK: blocks of 32

// q5_0 / q5_1: nibble | fifth bit << 4 indexes a 32-entry table (two registers, vpermt2ps). The qh bits are
// the byte masks that put 0x10 into bit 4 of the 16 low-nibble and the 16 high-nibble indices.
TQ static inline void q5_index(uint32_t qh, const uint8_t *qs, __m512i *lo, __m512i *hi) {
    const __m128i b4 = _mm_set1_epi8(0x10);
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    // (0x10 ? fifth bit : nibble); the bits above 4 are left over, vpermt2ps ignores them
    *lo = _mm512_cvtepu8_epi32(_mm_ternarylogic_epi32(q, _mm_maskz_mov_epi8((__mmask16)qh, b4), b4, 0xD8));
    *hi = _mm512_cvtepu8_epi32(_mm_ternarylogic_epi32(_mm_srli_epi16(q, 4), _mm_maskz_mov_epi8((__mmask16)(qh >> 16), b4), b4, 0xD8));
}

// q5_0 { f16 d; uint32 qh; uint8 qs[16] }: w = d * (v - 16).
TQ static inline void q5_0_block(const uint8_t *blk, __m512 *w) {
    __m512 d = f16_bcast16(blk), io = iota16();
    __m512 t0 = _mm512_mul_ps(d, _mm512_sub_ps(io, _mm512_set1_ps(16.0f))), t1 = _mm512_mul_ps(d, io);
    __m512i lo, hi;
    q5_index(rd32(blk + 2), blk + 6, &lo, &hi);
    w[0] = _mm512_permutex2var_ps(t0, lo, t1);
    w[1] = _mm512_permutex2var_ps(t0, hi, t1);
}

// q5_1 { f16 d; f16 m; uint32 qh; uint8 qs[16] }: w = d * v + m, the product rounded first.
TQ static inline void q5_1_block(const uint8_t *blk, __m512 *w) {
    __m512 d = f16_bcast16(blk), m = f16_bcast16(blk + 2), io = iota16();
    __m512 t0 = _mm512_add_ps(_mm512_mul_ps(d, io), m);
    __m512 t1 = _mm512_add_ps(_mm512_mul_ps(d, _mm512_add_ps(io, _mm512_set1_ps(16.0f))), m);
    __m512i lo, hi;
    q5_index(rd32(blk + 4), blk + 8, &lo, &hi);
    w[0] = _mm512_permutex2var_ps(t0, lo, t1);
    w[1] = _mm512_permutex2var_ps(t0, hi, t1);
}

// The 16 iq4_nl levels as floats: a table lookup of them times a scale is d * level, as in the reference.
TQ static inline __m512 iq4_levels(void) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)pk_iq4nl_values)));
}

// iq4_nl { f16 d; uint8 qs[16] }: w = d * level[nibble].
TQ static inline void iq4_nl_block(const uint8_t *blk, __m512 *w) {
    __m512 t = _mm512_mul_ps(f16_bcast16(blk), iq4_levels());
    __m512i b = u8x16(blk + 2);
    w[0] = _mm512_permutexvar_ps(b, t);
    w[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), t);
}

// mxfp4 { uint8 e (E8M0); uint8 qs[16] }: w = 2^(e - 128) * value[nibble], iq4_nl's layout with its own table and
// scale; every product is exact (a power of two times a small integer), so the bits of the reference.
TQ static inline void mxfp4_block(const uint8_t *blk, __m512 *w) {
    __m512 t = _mm512_mul_ps(_mm512_set1_ps(pk_e8m0_half(blk[0])),
                             _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)pk_mxfp4_values))));
    __m512i b = u8x16(blk + 1);
    w[0] = _mm512_permutexvar_ps(b, t);
    w[1] = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), t);
}

// =====================================================================================================
// MARK: blocks of 256

// q4_K / q5_K: the 8 6-bit scales and mins packed in 12 bytes (get_scale_min_k4), unpacked 32 bits at a time
// (as llama.cpp does), then d * sc and dmin * m for all 8 sub-blocks in one multiply: out[0..7] = d * sc,
// out[8..15] = dmin * m.
TQ static inline void k4_scales(const uint8_t *blk, float *out) {
    uint32_t u[4];
    pk_scale_min_k4_all(blk + 4, u);
    __m512 sm = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)u)));
    __m512 dd = _mm512_cvtph_ps(_mm256_inserti128_si256(_mm256_set1_epi16((short)rd16(blk)),
                                                         _mm_set1_epi16((short)rd16(blk + 2)), 1));
    _mm512_store_ps(out, _mm512_mul_ps(dd, sm));
}
#define K4_SCALES(blk, dm) float dm[16] __attribute__((aligned(64))); k4_scales(blk, dm); KEEP_IN_MEMORY(dm)

// q4_K { f16 d; f16 dmin; uint8 scales[12]; uint8 qs[128] }: sub-block s (32 elements) is the low (s even) or high
// nibbles of qs[32 (s / 2) ..], w = d1 * q - m1 with d1 = d * sc, m1 = dmin * m.
TQ static inline void q4_K_block(const uint8_t *blk, __m512 *w) {
    K4_SCALES(blk, dm);
    const uint8_t *q = blk + 16;
    __m512 io = iota16();
    for (int j = 0; j < 4; j++) {
        __m512 t0 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dm[2 * j]), io), _mm512_set1_ps(dm[8 + 2 * j]));
        __m512 t1 = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dm[2 * j + 1]), io), _mm512_set1_ps(dm[9 + 2 * j]));
        __m512i b0 = u8x16(q + 32 * j), b1 = u8x16(q + 32 * j + 16);
        w[4 * j + 0] = _mm512_permutexvar_ps(b0, t0);
        w[4 * j + 1] = _mm512_permutexvar_ps(b1, t0);
        w[4 * j + 2] = _mm512_permutexvar_ps(_mm512_srli_epi32(b0, 4), t1);
        w[4 * j + 3] = _mm512_permutexvar_ps(_mm512_srli_epi32(b1, 4), t1);
    }
}

// q5_K { f16 d; f16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128] }: q4_K plus a fifth bit, bit s of qh[l]
// for element l of sub-block s. 32-entry tables (two registers, vpermt2ps); the 5-bit indices are assembled
// 32 bytes at a time (bit s of qh moved to bit 4 by a 16-bit shift, merged by one vpternlog), then widened.
TQ static inline __m256i qh_bit4(__m256i h, int s) {
    return s < 4 ? _mm256_slli_epi16(h, 4 - s) : s > 4 ? _mm256_srli_epi16(h, s - 4) : h;
}
TQ static inline __m256i with_bit4_8(__m256i a, __m256i b) {
    return _mm256_ternarylogic_epi32(a, b, _mm256_set1_epi8(0x10), 0xD8);   // (0x10 ? b : a)
}
TQ static inline void q5_K_block(const uint8_t *blk, __m512 *w) {
    K4_SCALES(blk, dm);
    const uint8_t *q = blk + 48;
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(blk + 16));
    __m512 io = iota16(), io16 = _mm512_add_ps(io, _mm512_set1_ps(16.0f));
    for (int j = 0; j < 4; j++) {
        const int s = 2 * j;
        __m512 da = _mm512_set1_ps(dm[s]), ma = _mm512_set1_ps(dm[8 + s]);
        __m512 db = _mm512_set1_ps(dm[s + 1]), mb = _mm512_set1_ps(dm[9 + s]);
        __m512 ta0 = _mm512_sub_ps(_mm512_mul_ps(da, io), ma), ta1 = _mm512_sub_ps(_mm512_mul_ps(da, io16), ma);
        __m512 tb0 = _mm512_sub_ps(_mm512_mul_ps(db, io), mb), tb1 = _mm512_sub_ps(_mm512_mul_ps(db, io16), mb);
        __m256i qs = _mm256_loadu_si256((const __m256i *)(q + 32 * j));
        // bits above 4 are left over from other fields; vpermt2ps ignores them
        __m256i ia = with_bit4_8(qs, qh_bit4(qh, s)), ib = with_bit4_8(_mm256_srli_epi16(qs, 4), qh_bit4(qh, s + 1));
        w[4 * j + 0] = _mm512_permutex2var_ps(ta0, _mm512_cvtepu8_epi32(_mm256_castsi256_si128(ia)), ta1);
        w[4 * j + 1] = _mm512_permutex2var_ps(ta0, _mm512_cvtepu8_epi32(_mm256_extracti128_si256(ia, 1)), ta1);
        w[4 * j + 2] = _mm512_permutex2var_ps(tb0, _mm512_cvtepu8_epi32(_mm256_castsi256_si128(ib)), tb1);
        w[4 * j + 3] = _mm512_permutex2var_ps(tb0, _mm512_cvtepu8_epi32(_mm256_extracti128_si256(ib, 1)), tb1);
    }
}

// q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; f16 d }: 6-bit q - 32 with one int8 scale per 16
// elements; w = (d * sc) * (q - 32), both products rounded. The 6-bit values are assembled 64 bytes at a time.
TQ static inline void q6_K_block(const uint8_t *blk, __m512 *w) {
    float ds[16] __attribute__((aligned(64)));
    __m512 d = f16_bcast16(blk + 208);
    _mm512_store_ps(ds, _mm512_mul_ps(d, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192))))));
    KEEP_IN_MEMORY(ds);
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30), k32 = _mm512_set1_epi8(32);
    for (int n = 0; n < 2; n++) {
        // half n: elements l, l + 32, l + 64, l + 96 (l < 32) from ql[l], ql[l + 32] and the 2-bit pairs of qh[l]
        __m512i L = _mm512_loadu_si512(blk + 64 * n);
        __m256i h = _mm256_loadu_si256((const __m256i *)(blk + 128 + 32 * n));
        __m512i H = _mm512_inserti64x4(_mm512_castsi256_si512(h), _mm256_srli_epi16(h, 2), 1);   // [qh | qh >> 2]
        __m512i qa = _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(L, m4), _mm512_and_si512(_mm512_slli_epi16(H, 4), m30)), k32);
        __m512i qb = _mm512_sub_epi8(_mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4), _mm512_and_si512(H, m30)), k32);
        __m512i v[2] = {qa, qb};
        for (int k = 0; k < 8; k++) {
            __m128i b = _mm512_extracti32x4_epi32(v[k / 4], 0);
            switch (k % 4) {   // constant after unrolling
            case 1: b = _mm512_extracti32x4_epi32(v[k / 4], 1); break;
            case 2: b = _mm512_extracti32x4_epi32(v[k / 4], 2); break;
            case 3: b = _mm512_extracti32x4_epi32(v[k / 4], 3); break;
            }
            w[8 * n + k] = _mm512_mul_ps(_mm512_set1_ps(ds[8 * n + k]), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b)));
        }
    }
}

// iq4_xs { f16 d; uint16 scales_h; uint8 scales_l[4]; uint8 qs[128] }: sub-block s has the 6-bit scale
// ls = low nibble of scales_l[s / 2] | 2 bits of scales_h << 4, dl = d * (ls - 32), w = dl * level[nibble];
// its 32 elements are the low then the high nibbles of qs[16 s ..].
TQ static inline void iq4_xs_block(const uint8_t *blk, __m512 *w) {
    float dl[8];
    float d = _cvtsh_ss(rd16(blk));
    uint32_t sh = rd16(blk + 2), sl = rd32(blk + 4);
    for (int s = 0; s < 8; s++) dl[s] = d * (float)((int)(((sl >> (4 * s)) & 0xF) | ((sh >> (2 * s)) & 3) << 4) - 32);
    KEEP_IN_MEMORY(dl);
    __m512 lv = iq4_levels();
    for (int s = 0; s < 8; s++) {
        __m512 t = _mm512_mul_ps(_mm512_set1_ps(dl[s]), lv);
        __m512i b = u8x16(blk + 8 + 16 * s);
        w[2 * s] = _mm512_permutexvar_ps(b, t);
        w[2 * s + 1] = _mm512_permutexvar_ps(_mm512_srli_epi32(b, 4), t);
    }
}

// q2_K { uint8 scales[16]; uint8 qs[64]; f16 d; f16 dmin }: element g*128 + s*32 + l is bits 2s..2s+1 of
// qs[32 g + l], sub-block (16 elements) i / 16 with dl = d * (sc & 15), ml = dmin * (sc >> 4); w = dl * q - ml.
// The 4 values repeat over the 16 table entries, so the bits above the index need no mask.
TQ static inline void q2_K_block(const uint8_t *blk, __m512 *w) {
    float dl[16] __attribute__((aligned(64))), ml[16] __attribute__((aligned(64)));
    __m512i sc = u8x16(blk);
    _mm512_store_ps(dl, _mm512_mul_ps(f16_bcast16(blk + 80), _mm512_cvtepi32_ps(_mm512_and_si512(sc, _mm512_set1_epi32(15)))));
    _mm512_store_ps(ml, _mm512_mul_ps(f16_bcast16(blk + 82), _mm512_cvtepi32_ps(_mm512_srli_epi32(sc, 4))));
    KEEP_IN_MEMORY(dl);
    KEEP_IN_MEMORY(ml);
    __m512 io = _mm512_setr_ps(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
    for (int g = 0; g < 2; g++) {
        __m512i b[2] = {u8x16(blk + 16 + 32 * g), u8x16(blk + 16 + 32 * g + 16)};
        for (int s = 0; s < 4; s++)
            for (int hf = 0; hf < 2; hf++) {
                int sub = g * 8 + s * 2 + hf;
                __m512 t = _mm512_sub_ps(_mm512_mul_ps(_mm512_set1_ps(dl[sub]), io), _mm512_set1_ps(ml[sub]));
                w[sub] = _mm512_permutexvar_ps(_mm512_srli_epi32(b[hf], 2 * s), t);
            }
    }
}

// q3_K { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; f16 d }: 2 low bits as q2_K, the third bit of element
// g*128 + s*32 + l is bit 4g + s of hmask[l] (set: +0, clear: -4); 16 signed 6-bit scales, dl = d * (sc - 32),
// w = dl * q. Index = low bits | hmask bit << 2 picks level index - 4 from an 8-periodic table.
TQ static inline __m512i bit_to_2(__m512i v, int j) {
    return j < 2 ? _mm512_slli_epi32(v, 2 - j) : j > 2 ? _mm512_srli_epi32(v, j - 2) : v;
}
TQ static inline void q3_K_block(const uint8_t *blk, __m512 *w) {
    float dl[16] __attribute__((aligned(64)));
    uint32_t a[4];
    memcpy(a, blk + 96, 12);
    const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t t = a[2];
    a[2] = ((a[0] >> 4) & m4) | (((t >> 4) & m2) << 4);
    a[3] = ((a[1] >> 4) & m4) | (((t >> 6) & m2) << 4);
    a[0] = (a[0] & m4) | ((t & m2) << 4);
    a[1] = (a[1] & m4) | (((t >> 2) & m2) << 4);
    __m512i sc = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)a)), _mm512_set1_epi32(32));
    _mm512_store_ps(dl, _mm512_mul_ps(f16_bcast16(blk + 108), _mm512_cvtepi32_ps(sc)));
    KEEP_IN_MEMORY(dl);
    __m512 lv = _mm512_setr_ps(-4, -3, -2, -1, 0, 1, 2, 3, -4, -3, -2, -1, 0, 1, 2, 3);
    __m512i hm[2] = {u8x16(blk), u8x16(blk + 16)};
    const __m512i sel = _mm512_set1_epi32(0x04);
    for (int g = 0; g < 2; g++) {
        __m512i b[2] = {u8x16(blk + 32 + 32 * g), u8x16(blk + 32 + 32 * g + 16)};
        for (int s = 0; s < 4; s++)
            for (int hf = 0; hf < 2; hf++) {
                int sub = g * 8 + s * 2 + hf;
                __m512 tb = _mm512_mul_ps(_mm512_set1_ps(dl[sub]), lv);
                // (0x04 ? hmask bit : low bits)
                __m512i idx = _mm512_ternarylogic_epi32(_mm512_srli_epi32(b[hf], 2 * s), bit_to_2(hm[hf], 4 * g + s), sel, 0xD8);
                w[sub] = _mm512_permutexvar_ps(idx, tb);
            }
    }
}

// =====================================================================================================
// MARK: row kernels

// Blocks of 256: 16 weight vectors per block, 4 accumulators. Blocks of 32: two blocks per step.
#define QUANT_KERNELS_512(TYPE, BS, BYTES)                                                                  \
TQ void pk_dequant_##TYPE##_512(const void *row, int64_t cols, float *out) {                                \
    const uint8_t *p = (const uint8_t *)row;                                                                \
    for (int64_t b = 0; b < cols / BS; b++, p += BYTES) {                                                   \
        __m512 w[BS / 16];                                                                                  \
        TYPE##_block(p, w);                                                                                 \
        for (int i = 0; i < BS / 16; i++) _mm512_storeu_ps(out + b * BS + 16 * i, w[i]);                    \
    }                                                                                                       \
}                                                                                                           \
TQ void pk_matvec_##TYPE##_512(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y,         \
                               int64_t r0, int64_t r1) {                                                    \
    const int64_t nb = cols / BS, step = BS == 32 ? 2 : 1;                                                  \
    for (int64_t r = r0; r < r1; r++) {                                                                     \
        const uint8_t *p = W + (size_t)r * rb;                                                              \
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()}; \
        int64_t b = 0;                                                                                      \
        for (; b + step <= nb; b += step, p += step * BYTES) {                                              \
            __m512 w[BS / 16 + 2];                                                                          \
            TYPE##_block(p, w);                                                                             \
            if (step == 2) TYPE##_block(p + BYTES, w + 2);                                                  \
            for (int i = 0; i < (step == 2 ? 4 : 16); i++)                                                  \
                acc[i & 3] = _mm512_fmadd_ps(w[i], _mm512_loadu_ps(x + b * BS + 16 * i), acc[i & 3]);       \
        }                                                                                                   \
        if (b < nb) {                                                                                       \
            __m512 w[BS / 16];                                                                              \
            TYPE##_block(p, w);                                                                             \
            for (int i = 0; i < BS / 16; i++)                                                               \
                acc[i & 3] = _mm512_fmadd_ps(w[i], _mm512_loadu_ps(x + b * BS + 16 * i), acc[i & 3]);       \
        }                                                                                                   \
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]))); \
    }                                                                                                       \
}

QUANT_KERNELS_512(q5_0, 32, 22)
QUANT_KERNELS_512(q5_1, 32, 24)
QUANT_KERNELS_512(iq4_nl, 32, 18)
QUANT_KERNELS_512(q2_K, 256, 84)
QUANT_KERNELS_512(q3_K, 256, 110)
QUANT_KERNELS_512(q4_K, 256, 144)
QUANT_KERNELS_512(q5_K, 256, 176)
QUANT_KERNELS_512(q6_K, 256, 210)
QUANT_KERNELS_512(iq4_xs, 256, 136)
QUANT_KERNELS_512(mxfp4, 32, 17)

// =====================================================================================================
// MARK: AVX2
// Without 16-entry shuffles of floats, each block is first decoded to one signed byte per element (the
// integer the reference multiplies: q, q - 32, the iq4 level, ...) and per-group f32 scales (and mins), all with
// the reference's products; then 8 elements at a time are widened, converted (exact) and scaled: w = sc * q,
// sc * q - mn or sc * q + mn, each product rounded before the add.
#define TQ2 __attribute__((target("avx2,fma,f16c")))

enum { PLAIN, MINUS, PLUS };
typedef struct {
    int8_t q[256] __attribute__((aligned(32)));
    float sc[16], mn[16];   // per group of `group` elements
} qblock;

TQ2 static inline __m256i lo4(__m256i v) { return _mm256_and_si256(v, _mm256_set1_epi8(0x0F)); }
TQ2 static inline __m256i hi4(__m256i v) { return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F)); }
TQ2 static inline __m256i ld32(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
TQ2 static inline void st32(int8_t *p, __m256i v) { _mm256_store_si256((__m256i *)p, v); }
TQ2 static inline float f16s(const uint8_t *p) { return _cvtsh_ss(rd16(p)); }

// 32 bytes: 0x10 where bit k of the 32-bit qh is set (byte k), else 0.
TQ2 static inline __m256i qh_bytes(uint32_t qh) {
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh),
                                    _mm256_setr_epi64x(0, 0x0101010101010101LL, 0x0202020202020202LL, 0x0303030303030303LL));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(0x10));
}

// iq4 levels of 32 nibbles: the 16 low then the 16 high nibbles of 16 bytes.
TQ2 static inline __m256i iq4_bytes(const uint8_t *qs) {
    __m128i q = _mm_loadu_si128((const __m128i *)qs), lv = _mm_loadu_si128((const __m128i *)pk_iq4nl_values), m = _mm_set1_epi8(0x0F);
    return _mm256_setr_m128i(_mm_shuffle_epi8(lv, _mm_and_si128(q, m)), _mm_shuffle_epi8(lv, _mm_and_si128(_mm_srli_epi16(q, 4), m)));
}

TQ2 static inline void k4_scales8(const uint8_t *blk, qblock *o) {
    uint32_t u[4];
    pk_scale_min_k4_all(blk + 4, u);
    __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)u)));
    __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(u + 2))));
    _mm256_storeu_ps(o->sc, _mm256_mul_ps(_mm256_set1_ps(f16s(blk)), sc));
    _mm256_storeu_ps(o->mn, _mm256_mul_ps(_mm256_set1_ps(f16s(blk + 2)), mn));
}

TQ2 static inline void q5_0_dec(const uint8_t *blk, qblock *o) {
    o->sc[0] = f16s(blk);
    __m128i q = _mm_loadu_si128((const __m128i *)(blk + 6));
    __m256i v = _mm256_or_si256(lo4(_mm256_setr_m128i(q, _mm_srli_epi16(q, 4))), qh_bytes(rd32(blk + 2)));
    st32(o->q, _mm256_sub_epi8(v, _mm256_set1_epi8(16)));
}
TQ2 static inline void q5_1_dec(const uint8_t *blk, qblock *o) {
    o->sc[0] = f16s(blk); o->mn[0] = f16s(blk + 2);
    __m128i q = _mm_loadu_si128((const __m128i *)(blk + 8));
    st32(o->q, _mm256_or_si256(lo4(_mm256_setr_m128i(q, _mm_srli_epi16(q, 4))), qh_bytes(rd32(blk + 4))));
}
TQ2 static inline void iq4_nl_dec(const uint8_t *blk, qblock *o) { o->sc[0] = f16s(blk); st32(o->q, iq4_bytes(blk + 2)); }
TQ2 static inline void mxfp4_dec(const uint8_t *blk, qblock *o) {
    __m128i q = _mm_loadu_si128((const __m128i *)(blk + 1)), lv = _mm_loadu_si128((const __m128i *)pk_mxfp4_values), m = _mm_set1_epi8(0x0F);
    o->sc[0] = pk_e8m0_half(blk[0]);
    st32(o->q, _mm256_setr_m128i(_mm_shuffle_epi8(lv, _mm_and_si128(q, m)), _mm_shuffle_epi8(lv, _mm_and_si128(_mm_srli_epi16(q, 4), m))));
}

TQ2 static inline void q4_K_dec(const uint8_t *blk, qblock *o) {
    k4_scales8(blk, o);
    for (int j = 0; j < 4; j++) {
        __m256i v = ld32(blk + 16 + 32 * j);
        st32(o->q + 64 * j, lo4(v));
        st32(o->q + 64 * j + 32, hi4(v));
    }
}
TQ2 static inline __m256i bit4_from(__m256i h, int s) {   // bit s of each byte moved to bit 4, the rest cleared
    __m256i v = s < 4 ? _mm256_slli_epi16(h, 4 - s) : s > 4 ? _mm256_srli_epi16(h, s - 4) : h;
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}
TQ2 static inline void q5_K_dec(const uint8_t *blk, qblock *o) {
    k4_scales8(blk, o);
    __m256i h = ld32(blk + 16);
    for (int j = 0; j < 4; j++) {
        __m256i v = ld32(blk + 48 + 32 * j);
        st32(o->q + 64 * j, _mm256_or_si256(lo4(v), bit4_from(h, 2 * j)));
        st32(o->q + 64 * j + 32, _mm256_or_si256(hi4(v), bit4_from(h, 2 * j + 1)));
    }
}
TQ2 static inline void q6_K_dec(const uint8_t *blk, qblock *o) {
    float d = f16s(blk + 208);
    __m256 sl = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 192))));
    __m256 sh = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(blk + 200))));
    _mm256_storeu_ps(o->sc, _mm256_mul_ps(_mm256_set1_ps(d), sl));
    _mm256_storeu_ps(o->sc + 8, _mm256_mul_ps(_mm256_set1_ps(d), sh));
    const __m256i m30 = _mm256_set1_epi8(0x30), k32 = _mm256_set1_epi8(32);
    for (int n = 0; n < 2; n++) {
        __m256i l0 = ld32(blk + 64 * n), l1 = ld32(blk + 64 * n + 32), h = ld32(blk + 128 + 32 * n);
        int8_t *y = o->q + 128 * n;
        st32(y, _mm256_sub_epi8(_mm256_or_si256(lo4(l0), _mm256_and_si256(_mm256_slli_epi16(h, 4), m30)), k32));
        st32(y + 32, _mm256_sub_epi8(_mm256_or_si256(lo4(l1), _mm256_and_si256(_mm256_slli_epi16(h, 2), m30)), k32));
        st32(y + 64, _mm256_sub_epi8(_mm256_or_si256(hi4(l0), _mm256_and_si256(h, m30)), k32));
        st32(y + 96, _mm256_sub_epi8(_mm256_or_si256(hi4(l1), _mm256_and_si256(_mm256_srli_epi16(h, 2), m30)), k32));
    }
}
TQ2 static inline void iq4_xs_dec(const uint8_t *blk, qblock *o) {
    float d = f16s(blk);
    uint32_t sh = rd16(blk + 2), sl = rd32(blk + 4);
    for (int s = 0; s < 8; s++) {
        o->sc[s] = d * (float)((int)(((sl >> (4 * s)) & 0xF) | ((sh >> (2 * s)) & 3) << 4) - 32);
        st32(o->q + 32 * s, iq4_bytes(blk + 8 + 16 * s));
    }
}
TQ2 static inline void q2_K_dec(const uint8_t *blk, qblock *o) {
    __m128i s8 = _mm_loadu_si128((const __m128i *)blk), m = _mm_set1_epi8(0x0F);
    __m128i lo = _mm_and_si128(s8, m), hi = _mm_and_si128(_mm_srli_epi16(s8, 4), m);
    __m256 d = _mm256_set1_ps(f16s(blk + 80)), dm = _mm256_set1_ps(f16s(blk + 82));
    _mm256_storeu_ps(o->sc, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo))));
    _mm256_storeu_ps(o->sc + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)))));
    _mm256_storeu_ps(o->mn, _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi))));
    _mm256_storeu_ps(o->mn + 8, _mm256_mul_ps(dm, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)))));
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int g = 0; g < 2; g++) {
        __m256i v = ld32(blk + 16 + 32 * g);
        st32(o->q + 128 * g, _mm256_and_si256(v, m3));
        st32(o->q + 128 * g + 32, _mm256_and_si256(_mm256_srli_epi16(v, 2), m3));
        st32(o->q + 128 * g + 64, _mm256_and_si256(_mm256_srli_epi16(v, 4), m3));
        st32(o->q + 128 * g + 96, _mm256_and_si256(_mm256_srli_epi16(v, 6), m3));
    }
}
TQ2 static inline void q3_K_dec(const uint8_t *blk, qblock *o) {
    uint32_t a[4];
    memcpy(a, blk + 96, 12);
    const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303;
    uint32_t t = a[2];
    a[2] = ((a[0] >> 4) & m4) | (((t >> 4) & m2) << 4);
    a[3] = ((a[1] >> 4) & m4) | (((t >> 6) & m2) << 4);
    a[0] = (a[0] & m4) | ((t & m2) << 4);
    a[1] = (a[1] & m4) | (((t >> 2) & m2) << 4);
    __m128i sc = _mm_sub_epi8(_mm_loadu_si128((const __m128i *)a), _mm_set1_epi8(32));
    __m256 d = _mm256_set1_ps(f16s(blk + 108));
    _mm256_storeu_ps(o->sc, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc))));
    _mm256_storeu_ps(o->sc + 8, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8)))));
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4), zero = _mm256_setzero_si256();
    __m256i hm = ld32(blk);
    for (int g = 0; g < 2; g++) {
        __m256i v = ld32(blk + 32 + 32 * g);
        for (int s = 0; s < 4; s++) {
            // minus 4 where the hmask bit is clear
            __m256i clear = _mm256_cmpeq_epi8(_mm256_and_si256(hm, _mm256_set1_epi8((char)(1 << (4 * g + s)))), zero);
            __m256i ql = _mm256_and_si256(s == 0 ? v : _mm256_srli_epi16(v, 2 * s), m3);
            st32(o->q + 128 * g + 32 * s, _mm256_sub_epi8(ql, _mm256_and_si256(clear, four)));
        }
    }
}

TQ2 static inline __m256 qb_weights(const qblock *o, int c, int group, int mode) {
    __m256 w = _mm256_mul_ps(_mm256_set1_ps(o->sc[8 * c / group]),
                             _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(o->q + 8 * c)))));
    if (mode == MINUS) w = _mm256_sub_ps(w, _mm256_set1_ps(o->mn[8 * c / group]));
    if (mode == PLUS) w = _mm256_add_ps(w, _mm256_set1_ps(o->mn[8 * c / group]));
    return w;
}

#define QUANT_KERNELS_256(TYPE, BS, BYTES, GROUP, MODE)                                                     \
TQ2 void pk_dequant_##TYPE##_256(const void *row, int64_t cols, float *out) {                               \
    const uint8_t *p = (const uint8_t *)row;                                                                \
    qblock o;                                                                                               \
    for (int64_t b = 0; b < cols / BS; b++, p += BYTES) {                                                   \
        TYPE##_dec(p, &o);                                                                                  \
        for (int c = 0; c < BS / 8; c++) _mm256_storeu_ps(out + b * BS + 8 * c, qb_weights(&o, c, GROUP, MODE)); \
    }                                                                                                       \
}                                                                                                           \
TQ2 void pk_matvec_##TYPE##_256(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y,        \
                                int64_t r0, int64_t r1) {                                                   \
    qblock o;                                                                                               \
    for (int64_t r = r0; r < r1; r++) {                                                                     \
        const uint8_t *p = W + (size_t)r * rb;                                                              \
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()}; \
        for (int64_t b = 0; b < cols / BS; b++, p += BYTES) {                                               \
            TYPE##_dec(p, &o);                                                                              \
            for (int c = 0; c < BS / 8; c++)                                                                \
                acc[c & 3] = _mm256_fmadd_ps(qb_weights(&o, c, GROUP, MODE), _mm256_loadu_ps(x + b * BS + 8 * c), acc[c & 3]); \
        }                                                                                                   \
        __m256 s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));            \
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));                      \
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));                                                             \
        y[r] = _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));                                            \
    }                                                                                                       \
}

QUANT_KERNELS_256(q5_0, 32, 22, 32, PLAIN)
QUANT_KERNELS_256(q5_1, 32, 24, 32, PLUS)
QUANT_KERNELS_256(iq4_nl, 32, 18, 32, PLAIN)
QUANT_KERNELS_256(q2_K, 256, 84, 16, MINUS)
QUANT_KERNELS_256(q3_K, 256, 110, 16, PLAIN)
QUANT_KERNELS_256(q4_K, 256, 144, 32, MINUS)
QUANT_KERNELS_256(q5_K, 256, 176, 32, MINUS)
QUANT_KERNELS_256(q6_K, 256, 210, 16, PLAIN)
QUANT_KERNELS_256(iq4_xs, 256, 136, 32, PLAIN)
QUANT_KERNELS_256(mxfp4, 32, 17, 32, PLAIN)
#endif
