// Exact T == 1 matrix-vector kernels for the K-quant types with blocks of 256 (q4_K, q5_K, q6_K, iq4_xs) on
// AVX-512, from activations laid out once per call in the order the weight bits come (pk_exact_kernel,
// pk_internal.h).
//
// Each 64 bytes of quant bits are loaded as 16 dword lanes and never widened: the field at bit offset o of every
// lane is turned into a float in place, then multiplied into the x value prepare put at that lane. Three exact
// conversions, mixed per type to spread the work over Zen 4's FP pipes (per 16 weights: AND + convert + FMA and
// shift / lookup + FMA both ~1.5 cycles; a vpternlog + vsubps + FMA ~1.9):
//   - unsigned (q4_K, q5_K; pk_field_u): a convert of (v & (mask << o)) is q * 2^o; prepare scaled x by 2^-o.
//   - lookup (the field at bit 0: q4_K, q5_K; every iq4_xs nibble after a shift): vpermps / vpermt2ps read only
//     the low 4 / 5 index bits, so a table of the 16 / 32 values takes the field with no mask.
//   - offset (q6_K; pk_field_off): (v & (mask << o)) | bits(2^(23 - o)) read as a float is 2^(23 - o) + q (the field lands in
//     the mantissa's units), so one subtract of 2^(23 - o) + 32 gives q - 32 with x unscaled (needs o + 6 <= 23).
// For the unsigned conversion the upper half of each lane is shifted down by 16 first, so o stays <= 12 and the
// x scale >= 2^-12: the products stay exact down to |x| ~ 2^-114 (not only for |x| >= 2^-98, as with o up to 28).
//
// Scales are applied to partial sums: the 8 lanes 0-7 and 8-15 of a partial-sum vector each belong to one
// sub-block, so a block is sum over vectors of (per-lane scale vector) * (sum of that vector's products), and the
// mins of q4_K / q5_K come from per-sub-block sums of x made in prepare:
//   y = sum_s (d sc_s) sum_{i in s} q_i x_i - sum_s (dmin m_s) sum_{i in s} x_i.
// The result is the dequantised row times x up to f32 summation rounding in another order (the scale products
// d * sc are exact); q6_K and iq4_xs convert q - 32 and the level themselves (no offset correction through sums
// of x), so their error stays relative to sum |w x|.
// Rows are done one at a time, one sequential stream per thread: two rows sharing each x load measured slower
// from memory.
#include "pk_internal.h"
#include "pk_x86.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define TQ __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// =====================================================================================================
// MARK: prepare

// q4_K / q5_K: per block of 256, 16 vectors then 16 floats (272):
//   vec 8j + k, lane L = x[(4j + 2 (L >= 8) + (k & 1)) 32 + 4 (L & 7) + (k >> 1)] * scale(k), j = 0, 1, k = 0..7
// (the element of bit group k of dword lane L of the block's 64-byte quant group j), then lanes 0-7: 0,
// lanes 8-15: -sum of x over sub-block 0..7 (times dmin m in matvec). Scale undoes the bit offset of the field.
static int64_t k45_x_floats(int64_t cols) { return cols / 256 * 272; }

TQ static inline void k45_prepare(const float *x, int64_t cols, float *xp, const float sc[8]) {
    for (int64_t b = 0; b < cols / 256; b++, x += 256, xp += 272) {
        __m512 u[8];
        for (int s = 0; s < 8; s++) u[s] = _mm512_add_ps(_mm512_loadu_ps(x + 32 * s), _mm512_loadu_ps(x + 32 * s + 16));
        for (int j = 0; j < 2; j++)
            for (int p = 0; p < 2; p++) {
                const float *a = x + (4 * j + p) * 32, *bb = a + 64;
                __m512 o[4];
                pk_gather4(_mm512_loadu_ps(a), _mm512_loadu_ps(a + 16), _mm512_loadu_ps(bb), _mm512_loadu_ps(bb + 16), o);
                for (int m = 0; m < 4; m++)
                    _mm512_store_ps(xp + 16 * (8 * j + 2 * m + p), _mm512_mul_ps(o[m], _mm512_set1_ps(sc[2 * m + p])));
            }
        __m256 s8 = pk_hsum8(u);
        _mm512_store_ps(xp + 256, _mm512_insertf32x8(_mm512_setzero_ps(), _mm256_sub_ps(_mm256_setzero_ps(), s8), 1));
    }
}

// q4_K: bit group k is nibble k & 3 of the lane (k < 4) or of the lane >> 16 (k >= 4): scale 2^-4 (k & 3).
TQ static void q4_K_prepare(const float *x, int64_t cols, float *xp) {
    static const float sc[8] = {1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f, 1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f};
    k45_prepare(x, cols, xp, sc);
}
// q5_K: bit group k = 2 m + h is the 5-bit value in byte m of the low- (h = 0) or high-nibble lane (bytes 2, 3
// shifted down by 16): scale 2^-8 (m & 1).
TQ static void q5_K_prepare(const float *x, int64_t cols, float *xp) {
    static const float sc[8] = {1.0f, 1.0f, 0x1p-8f, 0x1p-8f, 1.0f, 1.0f, 0x1p-8f, 0x1p-8f};
    k45_prepare(x, cols, xp, sc);
}

// q6_K: per block 16 vectors, vec 8n + 4t + m, lane L = x[128 n + 64 t + 32 (L >= 8) + 4 (L & 7) + m]: the element
// of byte m of lane L of half n's ql (t = 0: low nibbles, t = 1: high nibbles). No scaling (offset conversion).
static int64_t k256_x_floats(int64_t cols) { return cols; }
TQ static void q6_K_prepare(const float *x, int64_t cols, float *xp) {
    for (int64_t b = 0; b < cols / 256; b++, x += 256, xp += 256)
        for (int nt = 0; nt < 4; nt++) {
            const float *a = x + 64 * nt;
            __m512 o[4];
            pk_gather4(_mm512_loadu_ps(a), _mm512_loadu_ps(a + 16), _mm512_loadu_ps(a + 32), _mm512_loadu_ps(a + 48), o);
            for (int m = 0; m < 4; m++) _mm512_store_ps(xp + 16 * (4 * nt + m), o[m]);
        }
}

// iq4_xs: per block 16 vectors, vec 8j + 4t + m, lane L = x[(4j + (L >> 2)) 32 + 16 t + 4 (L & 3) + m]: the element
// of byte m of lane L of quant group j, low (t = 0) or high (t = 1) nibble (16 bytes = 4 lanes per sub-block).
TQ static void iq4_xs_prepare(const float *x, int64_t cols, float *xp) {
    for (int64_t b = 0; b < cols / 256; b++, x += 256, xp += 256)
        for (int j = 0; j < 2; j++)
            for (int t = 0; t < 2; t++) {
                const float *a = x + 128 * j + 16 * t;
                __m512 o[4];
                pk_gather4(_mm512_loadu_ps(a), _mm512_loadu_ps(a + 32), _mm512_loadu_ps(a + 64), _mm512_loadu_ps(a + 96), o);
                for (int m = 0; m < 4; m++) _mm512_store_ps(xp + 16 * (8 * j + 4 * t + m), o[m]);
            }
}

// =====================================================================================================
// MARK: matvec

// q4_K / q5_K: the 8 scales (lanes 0-7) and mins (lanes 8-15) of a block as d * sc and dmin * m (exact products:
// 11 x 6 bits). The 12 packed bytes are unpacked as pk_scale_min_k4_all does, in one xmm: with u0..u2 their three
// dwords, dword lanes [u0 & m6, (u2 & m4) | ((u0 >> 2) & 0x30..), u1 & m6, ((u2 >> 4) & m4) | ((u1 >> 2) & 0x30..)].
TQ static inline __m512 k45_scales(const uint8_t *blk) {
    __m128i raw = _mm_loadu_si128((const __m128i *)(blk + 4));   // 12 scale bytes + 4 of the next field
    __m128i b = _mm_srlv_epi32(_mm_shuffle_epi32(raw, 0x98), _mm_setr_epi32(0, 0, 0, 4));   // u0, u2, u1, u2 >> 4
    __m128i c = _mm_srli_epi32(_mm_shuffle_epi32(raw, 0x50), 2);                            // (u0, u0, u1, u1) >> 2
    const __m128i sel = _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f);
    __m128i sm = _mm_and_si128(_mm_ternarylogic_epi32(b, c, sel, 0xE4), _mm_set1_epi8(0x3f));   // (sel ? b : c) & 63
    // d in lanes 0-7, dmin in lanes 8-15 from one broadcast dword
    __m256i dd = _mm256_shuffle_epi8(_mm256_set1_epi32((int)rd32(blk)),
                                     _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                                      2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3));
    return _mm512_mul_ps(_mm512_cvtph_ps(dd), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(sm)));
}

// Scale selectors of the four partial-sum vectors of q4_K / q5_K: (group j, parity p): lanes 0-7 sub-block
// 4j + p, lanes 8-15 sub-block 4j + 2 + p.
#define K45_SEL(j, p) _mm512_setr_epi32(4*j+p, 4*j+p, 4*j+p, 4*j+p, 4*j+p, 4*j+p, 4*j+p, 4*j+p, \
                                        4*j+2+p, 4*j+2+p, 4*j+2+p, 4*j+2+p, 4*j+2+p, 4*j+2+p, 4*j+2+p, 4*j+2+p)

TQ static inline __m512 iota16(void) { return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }

// One quant group (64 bytes = 128 elements): e (even sub-blocks) and o (odd) partial sums of 4 products each.
// q4_K: the 8 nibbles of each lane, 4 from v and 4 from v >> 16; the nibble at bit 0 by lookup in 0..15.
TQ static inline void q4_K_group(__m512i v, const float *xj, __m512 *e, __m512 *o) {
    const __m512 io = iota16();
    __m512i h = _mm512_srli_epi32(v, 16);
    __m512 a = _mm512_mul_ps(_mm512_permutexvar_ps(v, io), _mm512_load_ps(xj));
    __m512 b = _mm512_mul_ps(pk_field_u(v, 0xF0), _mm512_load_ps(xj + 16));
    a = _mm512_fmadd_ps(pk_field_u(v, 0xF00), _mm512_load_ps(xj + 32), a);
    b = _mm512_fmadd_ps(pk_field_u(v, 0xF000), _mm512_load_ps(xj + 48), b);
    a = _mm512_fmadd_ps(_mm512_permutexvar_ps(h, io), _mm512_load_ps(xj + 64), a);
    b = _mm512_fmadd_ps(pk_field_u(h, 0xF0), _mm512_load_ps(xj + 80), b);
    a = _mm512_fmadd_ps(pk_field_u(h, 0xF00), _mm512_load_ps(xj + 96), a);
    b = _mm512_fmadd_ps(pk_field_u(h, 0xF000), _mm512_load_ps(xj + 112), b);
    *e = a; *o = b;
}

// q5_K: lo / hi hold the 5-bit values of the low / high nibbles, one per byte (fifth bit in bit 4; bits 5-7 are
// left over, masked by the field AND or ignored by vpermt2ps): bytes 0, 1 from the lane, bytes 2, 3 from lane >> 16;
// byte 0 by lookup in 0..31.
TQ static inline void q5_K_group(__m512i lo, __m512i hi, const float *xj, __m512 *e, __m512 *o) {
    const __m512 i0 = iota16(), i1 = _mm512_add_ps(i0, _mm512_set1_ps(16.0f));
    __m512i l2 = _mm512_srli_epi32(lo, 16), h2 = _mm512_srli_epi32(hi, 16);
    __m512 a = _mm512_mul_ps(_mm512_permutex2var_ps(i0, lo, i1), _mm512_load_ps(xj));
    __m512 b = _mm512_mul_ps(_mm512_permutex2var_ps(i0, hi, i1), _mm512_load_ps(xj + 16));
    a = _mm512_fmadd_ps(pk_field_u(lo, 0x1F00), _mm512_load_ps(xj + 32), a);
    b = _mm512_fmadd_ps(pk_field_u(hi, 0x1F00), _mm512_load_ps(xj + 48), b);
    a = _mm512_fmadd_ps(_mm512_permutex2var_ps(i0, l2, i1), _mm512_load_ps(xj + 64), a);
    b = _mm512_fmadd_ps(_mm512_permutex2var_ps(i0, h2, i1), _mm512_load_ps(xj + 80), b);
    a = _mm512_fmadd_ps(pk_field_u(l2, 0x1F00), _mm512_load_ps(xj + 96), a);
    b = _mm512_fmadd_ps(pk_field_u(h2, 0x1F00), _mm512_load_ps(xj + 112), b);
    *e = a; *o = b;
}

// A q4_K / q5_K block into the row sums: each partial-sum vector of the two quant groups times its lanes'
// sub-block scales (d * sc, lanes 0-7 of dm), and the mins (dmin * m, lanes 8-15) times the block's negated sums
// of x (lanes 8-15 of sx; lanes 0-7 are 0).
TQ static inline void k45_fold(__m512 dm, const float *sx, __m512 e0, __m512 o0, __m512 e1, __m512 o1,
                               __m512 *t0, __m512 *t1, __m512 *tm) {
    *tm = _mm512_fmadd_ps(dm, _mm512_load_ps(sx), *tm);
    *t0 = _mm512_fmadd_ps(e0, _mm512_permutexvar_ps(K45_SEL(0, 0), dm), *t0);
    *t1 = _mm512_fmadd_ps(o0, _mm512_permutexvar_ps(K45_SEL(0, 1), dm), *t1);
    *t0 = _mm512_fmadd_ps(e1, _mm512_permutexvar_ps(K45_SEL(1, 0), dm), *t0);
    *t1 = _mm512_fmadd_ps(o1, _mm512_permutexvar_ps(K45_SEL(1, 1), dm), *t1);
}

TQ static inline void q4_K_block(const uint8_t *p, const float *xb, __m512 t[3]) {
    __m512 dm = k45_scales(p);
    __m512 e0, o0, e1, o1;
    q4_K_group(_mm512_loadu_si512(p + 16), xb, &e0, &o0);
    q4_K_group(_mm512_loadu_si512(p + 80), xb + 128, &e1, &o1);
    k45_fold(dm, xb + 256, e0, o0, e1, o1, &t[0], &t[1], &t[2]);
}
TQ static void q4_K_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    PK_EXACT_ROWS(q4_K_block, 3, 256, 144, 272, 3, k45_x_floats, PK_NO_TAIL, PK_EXACT_WIDE_K);
}

TQ static inline void q5_K_block(const uint8_t *p, const float *xb, __m512 t[3]) {
    // fifth bit of sub-block s = bit s of qh[l]; lanes 0-7 / 8-15 of group j hold sub-blocks 4j + p / 4j + 2 + p
    const __m512i rl0 = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2);          // s = 0, 2
    const __m512i rh0 = _mm512_setr_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);          // s = 1, 3
    const __m512i rl1 = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 30, 30, 30, 30, 30, 30, 30, 30);  // s = 4, 6
    const __m512i rh1 = _mm512_setr_epi32(31, 31, 31, 31, 31, 31, 31, 31, 29, 29, 29, 29, 29, 29, 29, 29);   // s = 5, 7
    const __m512i b4 = _mm512_set1_epi8(0x10);
    __m512 dm = k45_scales(p);
    // qh[l] for l = 4 (L & 7) + byte: the 32 bytes in both halves
    __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 16)));
    __m512i v0 = _mm512_loadu_si512(p + 48), v1 = _mm512_loadu_si512(p + 112);
    // (0x10 ? qh bit : nibble bits)
    __m512i lo0 = _mm512_ternarylogic_epi32(v0, _mm512_rolv_epi32(qh, rl0), b4, 0xD8);
    __m512i hi0 = _mm512_ternarylogic_epi32(_mm512_srli_epi32(v0, 4), _mm512_rolv_epi32(qh, rh0), b4, 0xD8);
    __m512i lo1 = _mm512_ternarylogic_epi32(v1, _mm512_rolv_epi32(qh, rl1), b4, 0xD8);
    __m512i hi1 = _mm512_ternarylogic_epi32(_mm512_srli_epi32(v1, 4), _mm512_rolv_epi32(qh, rh1), b4, 0xD8);
    __m512 e0, o0, e1, o1;
    q5_K_group(lo0, hi0, xb, &e0, &o0);
    q5_K_group(lo1, hi1, xb + 128, &e1, &o1);
    k45_fold(dm, xb + 256, e0, o0, e1, o1, &t[0], &t[1], &t[2]);
}
TQ static void q5_K_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    PK_EXACT_ROWS(q5_K_block, 3, 256, 176, 272, 3, k45_x_floats, PK_NO_TAIL, PK_EXACT_WIDE_K);
}

// q6_K: 6-bit values one per byte (bits 6-7 left over): q - 32 by the offset conversion, bytes 0-2 in place
// (o = 0, 8, 16) and byte 3 after a shift by 24.
TQ static inline __m512 q6_quad(__m512i v, const float *xq, __m512 acc) {
    acc = _mm512_fmadd_ps(pk_field_off(v, 0x3F, 0, 32.0f, 0), _mm512_load_ps(xq), acc);
    acc = _mm512_fmadd_ps(pk_field_off(v, 0x3F00, 8, 32.0f, 0), _mm512_load_ps(xq + 16), acc);
    acc = _mm512_fmadd_ps(pk_field_off(v, 0x3F0000, 16, 32.0f, 0), _mm512_load_ps(xq + 32), acc);
    return _mm512_fmadd_ps(pk_field_off(_mm512_srli_epi32(v, 24), 0x3F, 0, 32.0f, 0), _mm512_load_ps(xq + 48), acc);
}

TQ static inline void q6_K_block(const uint8_t *p, const float *xb, __m512 t[2]) {
    // half n, t = 0 (low nibbles): lanes 0-3, 4-7, 8-11, 12-15 use scales 8n + 0, 1, 2, 3; t = 1: 8n + 4 .. 7
    const __m512i sel0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i four = _mm512_set1_epi32(4);
    // high-bit pairs to bits 4-5 of each byte: t = 0: qh bits 0-1 (lanes 0-7), 2-3 (8-15); t = 1: bits 4-5, 6-7
    const __m512i ra = _mm512_setr_epi32(4, 4, 4, 4, 4, 4, 4, 4, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m512i rbits = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 30, 30, 30, 30, 30, 30, 30, 30);
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 ds = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_set1_epi16((short)rd16(p + 208))),
                              _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 192)))));
    for (int n = 0; n < 2; n++) {
        __m512i l = _mm512_loadu_si512(p + 64 * n);
        __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 128 + 32 * n)));
        // (0x0F ? nibble : high bits)
        __m512i a = _mm512_ternarylogic_epi32(l, _mm512_rolv_epi32(qh, ra), m4, 0xE4);
        __m512i c = _mm512_ternarylogic_epi32(_mm512_srli_epi32(l, 4), _mm512_rolv_epi32(qh, rbits), m4, 0xE4);
        __m512 pa = q6_quad(a, xb + 128 * n, _mm512_setzero_ps());
        __m512 pc = q6_quad(c, xb + 128 * n + 64, _mm512_setzero_ps());
        __m512i sa = n ? _mm512_add_epi32(sel0, _mm512_set1_epi32(8)) : sel0;
        t[0] = _mm512_fmadd_ps(pa, _mm512_permutexvar_ps(sa, ds), t[0]);
        t[1] = _mm512_fmadd_ps(pc, _mm512_permutexvar_ps(_mm512_add_epi32(sa, four), ds), t[1]);
    }
}
TQ static void q6_K_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    PK_EXACT_ROWS(q6_K_block, 2, 256, 210, 256, 3, k256_x_floats, PK_NO_TAIL, PK_EXACT_WIDE_K);
}

// iq4_xs: nibble k of each lane (v >> 4k) looks its level up as a float (vpermps reads the low 4 bits); this beat
// vpshufb of 64 bytes + offset conversion (10 GB/s vs 14.7 in L3). The 8 sub-block scales d (ls - 32) are made
// in 256-bit lanes, then spread to the lanes of each group (lanes 4q..4q+3 are sub-block 4j + q).
TQ static inline void iq4_xs_block(const uint8_t *p, const float *xb, __m512 t[2]) {
    const __m512 lv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)pk_iq4nl_values)));
    // ls_s = (sl >> 4s) & 15 | ((sh >> 2s) & 3) << 4; the 2 bits are rotated into bits 4-5 of the dword at byte 2
    // (sh, then sl's low half)
    const __m256i cl = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), ch = _mm256_setr_epi32(28, 30, 0, 2, 4, 6, 8, 10);
    const __m512i q0 = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    const __m512i q1 = _mm512_add_epi32(q0, _mm512_set1_epi32(4));
    __m256i sl = _mm256_set1_epi32((int)rd32(p + 4)), sh = _mm256_set1_epi32((int)rd32(p + 2));
    __m256i ls = _mm256_and_si256(_mm256_ternarylogic_epi32(_mm256_srlv_epi32(sl, cl), _mm256_rorv_epi32(sh, ch),
                                                            _mm256_set1_epi32(15), 0xE4), _mm256_set1_epi32(63));
    __m256 dl = _mm256_mul_ps(_mm256_cvtph_ps(_mm_set1_epi16((short)rd16(p))),
                              _mm256_cvtepi32_ps(_mm256_sub_epi32(ls, _mm256_set1_epi32(32))));
    __m512 acc[2][2];
    for (int j = 0; j < 2; j++) {
        __m512i v = _mm512_loadu_si512(p + 8 + 64 * j);
        for (int k = 0; k < 8; k++) {   // nibble k: byte k / 2, low (k even) or high: vector 8j + 4 (k & 1) + k / 2
            __m512 f = _mm512_permutexvar_ps(k ? _mm512_srli_epi32(v, 4 * k) : v, lv);
            __m512 x = _mm512_load_ps(xb + 128 * j + 16 * (4 * (k & 1) + (k >> 1)));
            acc[j][k & 1] = k < 2 ? _mm512_mul_ps(f, x) : _mm512_fmadd_ps(f, x, acc[j][k & 1]);
        }
    }
    t[0] = _mm512_fmadd_ps(_mm512_add_ps(acc[0][0], acc[0][1]), _mm512_permutexvar_ps(q0, _mm512_castps256_ps512(dl)), t[0]);
    t[1] = _mm512_fmadd_ps(_mm512_add_ps(acc[1][0], acc[1][1]), _mm512_permutexvar_ps(q1, _mm512_castps256_ps512(dl)), t[1]);
}
TQ static void iq4_xs_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    PK_EXACT_ROWS(iq4_xs_block, 2, 256, 136, 256, 3, k256_x_floats, PK_NO_TAIL, PK_EXACT_WIDE_K);
}

const pk_exact_kernel pk_exact512_q4_K = {k45_x_floats, q4_K_prepare, q4_K_matvec};
const pk_exact_kernel pk_exact512_q5_K = {k45_x_floats, q5_K_prepare, q5_K_matvec};
const pk_exact_kernel pk_exact512_q6_K = {k256_x_floats, q6_K_prepare, q6_K_matvec};
const pk_exact_kernel pk_exact512_iq4_xs = {k256_x_floats, iq4_xs_prepare, iq4_xs_matvec};

#endif
