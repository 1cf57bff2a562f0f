// Exact T == 1 matrix-vector kernels on AVX2 (+FMA, F16C; 256-bit) from activations laid out once per call in the
// order the weight bits come (pk_exact_kernel, pk_internal.h): the scheme of kernels_x86_exact32.c /
// kernels_x86_exactk.c for CPUs without AVX-512 (Zen 2/3, many Intel desktops).
//
// 32 bytes of quant bits are loaded as 8 dword lanes and never widened; field f of every lane becomes a float in
// place and is multiplied into the x value prepare put at that lane (slot f: 8 consecutive floats of the laid-out
// x; a lane's byte m is element 4 L + m of its 32 bytes, so each slot is a 4 x 8 transpose of 32 x values,
// tr4x8). AVX2 has no vpternlogd, no 16-entry float lookup and no masks; every field goes through one AND (or a
// shift for the top byte) and vcvtdq2ps, which is q * 2^o for the field at bit o (below bit 31, at most 8
// significant bits: exact), and prepare scales the slot's x by 2^-o:
//   - unsigned (q4_1, q5_1, q4_K, q5_K): that is all; the lane's upper half is shifted down by 16 first for the
//     4- and 5-bit fields, so o <= 12 and the products stay exact down to |x| ~ 2^-114;
//   - with an offset (q4_0 q - 8, q5_0 q - 16, q6_K q - 32): one subtract of off * 2^o, exact;
//   - bytes (q6_K's 6-bit values, built one a byte; iq4_xs levels + 128 from a vpshufb of the nibbles): bytes
//     0-2 in place (o = 0, 8, 16: exact for |x| >= 2^-110), byte 3 by a shift by 24, minus 32 / 128.
//   Measured alternatives: the field ORed into the mantissa of 2^(23 - o) minus 2^(23 - o) + off (x unscaled):
//   q4_0 15-20% slower; each byte sign-extended in place by two shifts: q6_K 7% slower.
// Scales are applied to partial sums (per sub-block or per lane group of 4), mins through per-sub-block (q4_K,
// q5_K) or per-lane (q4_1, q5_1) sums of x made in prepare:
//   y = sum_s (d sc_s) sum_{i in s} q_i x_i  (- sum_s (dmin m_s) sum_{i in s} x_i  /  + sum_b m_b sum_{i in b} x_i),
// so y is the dequantised row times x up to f32 summation rounding (d * sc exact: 11 x 8 bits at most); q4_0,
// q5_0, q6_K and iq4_xs convert q - off / the level per weight, so their error stays relative to sum |w x|.
// NaN / Inf scales and x propagate to y.
// Per 8 weights that is ~3 vector ops (q4_K, q4_1) to ~4.5 (q6_K, iq4_xs, q5_*: building the 5-/6-bit bytes) and
// one FMA, against the old kernels' widen (vpmovsxbd), convert, scale multiply (+ min) and FMA after a decode to
// an int8 buffer (kernels_x86_quant.c), or the portable dequantise-then-dot for q4_0 / q4_1.
// Weight GB/s, one thread on Zen 4 (AVX2 level; /tmp/hx256 harness, best of 5, old and new in the same run;
// old = pk_ops_avx2 matvec, new = prepare + matvec through pk_matmul_rows):
//                  2048 x 8192 (L3)        from memory, 65536 x 2048 (*: 32768)   16384 x 8192 (*: 8192)
//   q4_K           4.34 -> 12.00 (2.8x)    4.29 -> 11.87 (2.8x)                    4.03 -> 9.87 (2.4x)
//   q6_K           6.63 -> 11.24 (1.7x)    6.63 -> 11.48 (1.7x) *                  5.23 -> 9.02 (1.7x) *
//   q5_K           5.18 -> 10.65 (2.1x)    5.12 -> 10.79 (2.1x) *                  4.60 -> 9.27 (2.0x) *
//   q4_0           1.07 ->  9.77 (9.2x)    1.15 ->  9.70 (8.4x)                    1.06 -> 8.66 (8.1x)
//   iq4_xs         4.04 ->  7.67 (1.9x)    3.98 ->  7.59 (1.9x)                    3.79 -> 6.29 (1.7x)
//   q5_0           6.95 ->  7.68 (1.1x)    7.15 ->  7.76 (1.1x) *                  5.96 -> 6.60 (1.1x) *
//   q4_1           1.00 -> 12.14 (12x)     1.07 -> 11.94 (11x) *                   0.99 -> 10.56 (11x) *
//   q5_1           6.23 ->  9.19 (1.5x)    6.47 ->  9.23 (1.4x) *                  5.57 -> 8.65 (1.6x) *
//   q2_K           2.55 ->  6.34 (2.5x)    2.52 ->  6.37 (2.5x)                    2.45 -> 6.03 (2.5x)
//   q3_K           3.52 ->  7.02 (2.0x)    3.45 ->  6.93 (2.0x)                    3.27 -> 6.70 (2.0x)
//   (q2_K, q3_K: 2026-12-05, thread CPU time, /tmp/hk23a harness, best of 5, in cache 16 x 8192: 2.57 -> 5.85
//   and 3.54 -> 6.64; see "MARK: q2_K, q3_K" below for the scheme and why they live in this file.)
// q8_0 and iq4_nl keep the older AVX2 kernels: laid-out versions measured 23.7 -> 17.7 GB/s in cache for q8_0
// (vpmovsxbd from memory widens 8 weights in one op; nothing here is cheaper) and 7.8 -> 7.8 for iq4_nl.
// Rows one at a time with a software prefetch along the rows (pk_prefetch_ahead).
#include "pk_internal.h"
#include "pk_x86.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define TA __attribute__((target("avx2,fma,f16c")))

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// =====================================================================================================
// MARK: conversions

// Unsigned field under `mask` (below bit 31) as q * 2^(mask's lowest bit).
TA static inline __m256 cvt_u(__m256i v, uint32_t mask) {
    return _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)mask)));
}
// Field under `mask` (lowest bit o, below bit 31) minus off, times 2^o: (q - off) 2^o, exact; prepare scaled x
// by 2^-o. (The field ORed into the mantissa of 2^(23 - o), minus 2^(23 - o) + off, x unscaled, measured 15-20%
// slower for q4_0: two integer ops where this has one and a convert.)
TA static inline __m256 cvt_off(__m256i v, uint32_t mask, int o, float off) {
    return _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)mask))), _mm256_set1_ps(off * (float)(1u << o)));
}
// sum over the 4 unsigned bytes m of v minus off, times xs[s m + L] (prepare scaled slot m by SCB[m]), per lane:
// bytes 0-2 by the AND and convert (bit offset 8m), byte 3 by a shift by 24. (Sign-extending each byte in place
// by two shifts and converting, x unscaled, measured 7% slower on q6_K.)
TA static inline __m256 dot_ub(__m256i v, const float *xs, int s, float off) {
    __m256 a = _mm256_mul_ps(cvt_off(v, 0xFF, 0, off), _mm256_load_ps(xs));
    __m256 b = _mm256_mul_ps(cvt_off(v, 0xFF00, 8, off), _mm256_load_ps(xs + s));
    a = _mm256_fmadd_ps(cvt_off(v, 0xFF0000, 16, off), _mm256_load_ps(xs + 2 * s), a);
    b = _mm256_fmadd_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(v, 24)), _mm256_set1_ps(off)), _mm256_load_ps(xs + 3 * s), b);
    return _mm256_add_ps(a, b);
}

// =====================================================================================================
// MARK: prepare

// 4 x 8 transpose: rows r_L = 4 floats (r0, r1 in a0; r2, r3 in a1; r4, r5 in a2; r6, r7 in a3);
// out[m] lane L = r_L[m]: the x of byte m of dword lane L.
TA static inline void tr4x8(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 out[4]) {
    __m256 t0 = _mm256_permute2f128_ps(a0, a2, 0x20), t1 = _mm256_permute2f128_ps(a0, a2, 0x31);
    __m256 t2 = _mm256_permute2f128_ps(a1, a3, 0x20), t3 = _mm256_permute2f128_ps(a1, a3, 0x31);
    __m256 u0 = _mm256_unpacklo_ps(t0, t1), u1 = _mm256_unpackhi_ps(t0, t1);
    __m256 u2 = _mm256_unpacklo_ps(t2, t3), u3 = _mm256_unpackhi_ps(t2, t3);
    out[0] = _mm256_shuffle_ps(u0, u2, 0x44);
    out[1] = _mm256_shuffle_ps(u0, u2, 0xEE);
    out[2] = _mm256_shuffle_ps(u1, u3, 0x44);
    out[3] = _mm256_shuffle_ps(u1, u3, 0xEE);
}
// tr4x8 of x[a .. a + 15] (lanes 0-3) and x[b .. b + 15] (lanes 4-7), slot m stored at out + s m, times sc[m].
TA static inline void slots4(const float *a, const float *b, float *out, int s, const float sc[4]) {
    __m256 o[4];
    tr4x8(_mm256_loadu_ps(a), _mm256_loadu_ps(a + 8), _mm256_loadu_ps(b), _mm256_loadu_ps(b + 8), o);
    for (int m = 0; m < 4; m++) _mm256_store_ps(out + s * m, sc[m] == 1.0f ? o[m] : _mm256_mul_ps(o[m], _mm256_set1_ps(sc[m])));
}
// Sums of 8 vectors' lanes: lane s = sum of the 8 lanes of u[s].
TA static inline __m256 hsum8x8(const __m256 u[8]) {
    __m256 h01 = _mm256_hadd_ps(u[0], u[1]), h23 = _mm256_hadd_ps(u[2], u[3]);
    __m256 h45 = _mm256_hadd_ps(u[4], u[5]), h67 = _mm256_hadd_ps(u[6], u[7]);
    __m256 q0 = _mm256_hadd_ps(h01, h23), q1 = _mm256_hadd_ps(h45, h67);   // per 128-bit half: sums of u0..3 / u4..7
    return _mm256_add_ps(_mm256_permute2f128_ps(q0, q1, 0x20), _mm256_permute2f128_ps(q0, q1, 0x31));
}

static const float SCB[4] = {1.0f, 0x1p-8f, 0x1p-16f, 1.0f};   // byte slots (dot_ub)

// q4_K / q5_K: per block of 256, 32 slots then 8 floats (264): slot 8c + 2m + p, lane L = x[64 c + 32 p + 4 L + m]
// times sc[2m + p] (32-byte chunk c of the quants; p = 0: low nibbles / 5-bit values of sub-block 2c, p = 1: high
// ones, sub-block 2c + 1; byte m of the lane), then the negated sums of x over sub-blocks 0..7.
static int64_t k45_x_floats(int64_t cols) { return cols / 256 * 264; }
TA static inline void k45_prepare(const float *x, int64_t cols, float *xp, const float sc[8]) {
    const float s0[4] = {sc[0], sc[2], sc[4], sc[6]}, s1[4] = {sc[1], sc[3], sc[5], sc[7]};
    for (int64_t b = 0; b < cols / 256; b++, x += 256, xp += 264) {
        __m256 u[8];
        for (int s = 0; s < 8; s++)
            u[s] = _mm256_add_ps(_mm256_add_ps(_mm256_loadu_ps(x + 32 * s), _mm256_loadu_ps(x + 32 * s + 8)),
                                 _mm256_add_ps(_mm256_loadu_ps(x + 32 * s + 16), _mm256_loadu_ps(x + 32 * s + 24)));
        for (int c = 0; c < 4; c++) {
            slots4(x + 64 * c, x + 64 * c + 16, xp + 64 * c, 16, s0);
            slots4(x + 64 * c + 32, x + 64 * c + 48, xp + 64 * c + 8, 16, s1);
        }
        _mm256_store_ps(xp + 256, _mm256_sub_ps(_mm256_setzero_ps(), hsum8x8(u)));
    }
}
// q4_K: slot 2m + p is nibble p of byte m: bit 8m + 4p, or 8(m - 2) + 4p in the lane >> 16.
TA static void q4_K_prepare(const float *x, int64_t cols, float *xp) {
    static const float sc[8] = {1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f, 1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f};
    k45_prepare(x, cols, xp, sc);
}
// q5_K: slot 2m + p is the 5-bit value in byte m of the low- (p = 0) or high-nibble vector: bit 8 (m & 1).
TA static void q5_K_prepare(const float *x, int64_t cols, float *xp) {
    static const float sc[8] = {1.0f, 1.0f, 0x1p-8f, 0x1p-8f, 1.0f, 1.0f, 0x1p-8f, 0x1p-8f};
    k45_prepare(x, cols, xp, sc);
}

// q6_K / iq4_xs: 256 floats per block.
static int64_t k256_x_floats(int64_t cols) { return cols; }
// q6_K: slot 16 n + 4 i + m, lane L = x[128 n + 32 i + 4 L + m] (byte m of lane L of the 32 values i of half n).
TA static void q6_K_prepare(const float *x, int64_t cols, float *xp) {
    for (int64_t b = 0; b < cols; b += 32, x += 32, xp += 32) slots4(x, x + 16, xp, 8, SCB);
}
// iq4_xs: 32-byte chunk j (sub-blocks 2j, 2j + 1 in lanes 0-3, 4-7), slot 64 j + 8 (2m + p), lane L =
// x[32 (2j + L / 4) + 16 p + 4 (L & 3) + m] (p = 0: low nibbles, 1: high).
TA static void iq4_xs_prepare(const float *x, int64_t cols, float *xp) {
    for (int64_t j = 0; j < cols / 64; j++, x += 64, xp += 64) {
        slots4(x, x + 32, xp, 16, SCB);
        slots4(x + 16, x + 48, xp + 8, 16, SCB);
    }
}

// Blocks of 32, two a group (64 elements; a missing second block is zeros): slot 2m + p, lane L =
// x[32 (L / 4) + 16 p + 4 (L & 3) + m] times sc[2m + p] (p = 0: low nibble / elements 0-15, byte m of the lane),
// then with `sums` 8 floats: each lane's sum of x over the 8 slots.
TA static void prepare32(const float *x, int64_t cols, float *xp, const float sc[8], int sums) {
    const int64_t nb = cols / 32;
    const float s0[4] = {sc[0], sc[2], sc[4], sc[6]}, s1[4] = {sc[1], sc[3], sc[5], sc[7]};
    float tail[64] __attribute__((aligned(32)));
    for (int64_t b = 0; b < nb; b += 2, x += 64, xp += sums ? 72 : 64) {
        const float *g = x;
        if (b + 1 == nb) {   // last group of one block
            memcpy(tail, x, 32 * sizeof(float));
            memset(tail + 32, 0, 32 * sizeof(float));
            g = tail;
        }
        slots4(g, g + 32, xp, 16, s0);
        slots4(g + 16, g + 48, xp + 8, 16, s1);
        if (sums) {
            __m256 o0[4], o1[4];
            tr4x8(_mm256_loadu_ps(g), _mm256_loadu_ps(g + 8), _mm256_loadu_ps(g + 32), _mm256_loadu_ps(g + 40), o0);
            tr4x8(_mm256_loadu_ps(g + 16), _mm256_loadu_ps(g + 24), _mm256_loadu_ps(g + 48), _mm256_loadu_ps(g + 56), o1);
            __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(o0[0], o1[0]), _mm256_add_ps(o0[1], o1[1])),
                                     _mm256_add_ps(_mm256_add_ps(o0[2], o1[2]), _mm256_add_ps(o0[3], o1[3])));
            _mm256_store_ps(xp + 64, s);
        }
    }
}
static int64_t xf_64(int64_t cols) { return (cols / 32 + 1) / 2 * 64; }
static int64_t xf_72(int64_t cols) { return (cols / 32 + 1) / 2 * 72; }
// q4_0, q4_1: slot 2m + p is nibble p of byte m (bit 8m + 4p; bytes 2, 3 in the lane >> 16); q5_0, q5_1: byte m
// (bit 8 (m & 1)).
static const float SC_Q4_1[8] = {1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f, 1.0f, 0x1p-4f, 0x1p-8f, 0x1p-12f};
static const float SC_Q5_1[8] = {1.0f, 1.0f, 0x1p-8f, 0x1p-8f, 1.0f, 1.0f, 0x1p-8f, 0x1p-8f};
TA static void prep32_q4_0(const float *x, int64_t cols, float *xp) { prepare32(x, cols, xp, SC_Q4_1, 0); }
TA static void prep32_q5_0(const float *x, int64_t cols, float *xp) { prepare32(x, cols, xp, SC_Q5_1, 0); }
TA static void prep32_q4_1(const float *x, int64_t cols, float *xp) { prepare32(x, cols, xp, SC_Q4_1, 1); }
TA static void prep32_q5_1(const float *x, int64_t cols, float *xp) { prepare32(x, cols, xp, SC_Q5_1, 1); }

// =====================================================================================================
// MARK: matvec, blocks of 256

// The 16 iq4 levels + 128 (1..241) in both 128-bit halves, for vpshufb.
TA static inline __m256i iq4_table(void) {
    return _mm256_add_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)pk_iq4nl_values)), _mm256_set1_epi8((char)0x80));
}

TA static inline __m256 bcast(__m256 v, int i) { return _mm256_permutevar8x32_ps(v, _mm256_set1_epi32(i)); }

// q4_K / q5_K: the 8 sub-block scales d * sc (*ds) and mins dmin * m (*dm), exact products (11 x 6 bits). The 12
// packed bytes are unpacked as pk_scale_min_k4_all does, in one xmm: with u0..u2 their dwords, the lanes
// [u0 & m6, (u2 & m4) | ((u0 >> 2) & 0x30..), u1 & m6, ((u2 >> 4) & m4) | ((u1 >> 2) & 0x30..)].
TA static inline void k45_scales(const uint8_t *blk, __m256 *ds, __m256 *dm) {
    __m128i raw = _mm_loadu_si128((const __m128i *)(blk + 4));   // 12 scale bytes + 4 of the next field
    __m128i b = _mm_srlv_epi32(_mm_shuffle_epi32(raw, 0x98), _mm_setr_epi32(0, 0, 0, 4));   // u0, u2, u1, u2 >> 4
    __m128i c = _mm_srli_epi32(_mm_shuffle_epi32(raw, 0x50), 2);                            // (u0, u0, u1, u1) >> 2
    __m128i sm = _mm_or_si128(_mm_and_si128(b, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f)),
                              _mm_and_si128(c, _mm_setr_epi32(0, 0x30303030, 0, 0x30303030)));
    __m256 dd = _mm256_cvtph_ps(_mm_set1_epi32((int)rd32(blk)));   // d, dmin, d, dmin, ...
    *ds = _mm256_mul_ps(_mm256_moveldup_ps(dd), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)));
    *dm = _mm256_mul_ps(_mm256_movehdup_ps(dd), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8))));
}

// One 32-byte chunk of q4_K (and the two blocks of a q4_1 group): nibble p of byte m (from v and v >> 16), unsigned,
// times slot 2m + p (scaled by 2^-4p in prepare): e (p = 0) and o (p = 1) partial sums.
TA static inline void q4_K_chunk(__m256i v, const float *xc, __m256 *e, __m256 *o) {
    __m256i h = _mm256_srli_epi32(v, 16);
    __m256 a = _mm256_mul_ps(cvt_u(v, 0xF), _mm256_load_ps(xc));
    __m256 b = _mm256_mul_ps(cvt_u(v, 0xF0), _mm256_load_ps(xc + 8));
    a = _mm256_fmadd_ps(cvt_u(v, 0xF00), _mm256_load_ps(xc + 16), a);
    b = _mm256_fmadd_ps(cvt_u(v, 0xF000), _mm256_load_ps(xc + 24), b);
    a = _mm256_fmadd_ps(cvt_u(h, 0xF), _mm256_load_ps(xc + 32), a);
    b = _mm256_fmadd_ps(cvt_u(h, 0xF0), _mm256_load_ps(xc + 40), b);
    a = _mm256_fmadd_ps(cvt_u(h, 0xF00), _mm256_load_ps(xc + 48), a);
    b = _mm256_fmadd_ps(cvt_u(h, 0xF000), _mm256_load_ps(xc + 56), b);
    *e = a; *o = b;
}

TA static void q4_K_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        const float *xb = xp;
        __m256 t0 = _mm256_setzero_ps(), t1 = t0, tm = t0;
        for (int64_t b = 0; b < nb; b++, p += 144, xb += 264) {
            pk_prefetch_ahead(p, 3);
            __m256 ds, dm, e, o;
            k45_scales(p, &ds, &dm);
            tm = _mm256_fmadd_ps(dm, _mm256_load_ps(xb + 256), tm);
            for (int c = 0; c < 4; c++) {
                q4_K_chunk(_mm256_loadu_si256((const __m256i *)(p + 16 + 32 * c)), xb + 64 * c, &e, &o);
                t0 = _mm256_fmadd_ps(e, bcast(ds, 2 * c), t0);
                t1 = _mm256_fmadd_ps(o, bcast(ds, 2 * c + 1), t1);
            }
        }
        y[r] = hsum256(_mm256_add_ps(_mm256_add_ps(t0, t1), tm));
    }
}

// bit s of every byte of h moved to bit 4, the rest cleared.
TA static inline __m256i bit4_from(__m256i h, int s) {
    __m256i v = s < 4 ? _mm256_slli_epi16(h, 4 - s) : s > 4 ? _mm256_srli_epi16(h, s - 4) : h;
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}
// Unsigned 5-bit values one a byte: byte m of v (bit 8 (m & 1) of v or v >> 16) times slot m (stride 16).
TA static inline __m256 dot5u(__m256i v, const float *xs) {
    __m256i h = _mm256_srli_epi32(v, 16);
    __m256 a = _mm256_mul_ps(cvt_u(v, 0x1F), _mm256_load_ps(xs));
    __m256 b = _mm256_mul_ps(cvt_u(v, 0x1F00), _mm256_load_ps(xs + 16));
    a = _mm256_fmadd_ps(cvt_u(h, 0x1F), _mm256_load_ps(xs + 32), a);
    b = _mm256_fmadd_ps(cvt_u(h, 0x1F00), _mm256_load_ps(xs + 48), b);
    return _mm256_add_ps(a, b);
}

TA static void q5_K_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        const float *xb = xp;
        __m256 t0 = _mm256_setzero_ps(), t1 = t0, tm = t0;
        for (int64_t b = 0; b < nb; b++, p += 176, xb += 264) {
            pk_prefetch_ahead(p, 3);
            __m256 ds, dm;
            k45_scales(p, &ds, &dm);
            tm = _mm256_fmadd_ps(dm, _mm256_load_ps(xb + 256), tm);
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 16));
            for (int c = 0; c < 4; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(p + 48 + 32 * c));
                __m256i lo = _mm256_or_si256(_mm256_and_si256(v, m4), bit4_from(qh, 2 * c));
                __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), m4), bit4_from(qh, 2 * c + 1));
                t0 = _mm256_fmadd_ps(dot5u(lo, xb + 64 * c), bcast(ds, 2 * c), t0);
                t1 = _mm256_fmadd_ps(dot5u(hi, xb + 64 * c + 8), bcast(ds, 2 * c + 1), t1);
            }
        }
        y[r] = hsum256(_mm256_add_ps(_mm256_add_ps(t0, t1), tm));
    }
}

// q6_K: half n's 32 values i (element 128 n + 32 i + l, l = byte) as bytes q (minus 32 in dot_ub); lanes 0-3 are
// sub-block 8n + 2i, lanes 4-7 8n + 2i + 1.
TA static void q6_K_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256;
    const __m256i sel = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), two = _mm256_set1_epi32(2);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        const float *xb = xp;
        __m256 t0 = _mm256_setzero_ps(), t1 = t0;
        for (int64_t b = 0; b < nb; b++, p += 210, xb += 256) {
            pk_prefetch_ahead(p, 3);
            __m256 d = _mm256_set1_ps(_cvtsh_ss(rd16(p + 208)));
            __m256 s0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 192)))));
            __m256 s1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(p + 200)))));
            for (int n = 0; n < 2; n++) {
                const __m256 sn = n ? s1 : s0;
                __m256i a[4];
                pk_q6_codes_avx2(p, n, a);
                const float *xn = xb + 128 * n;

                __m256i i0 = sel, i1 = _mm256_add_epi32(sel, two);
                t0 = _mm256_fmadd_ps(dot_ub(a[0], xn, 8, 32.0f), _mm256_permutevar8x32_ps(sn, i0), t0);
                t1 = _mm256_fmadd_ps(dot_ub(a[1], xn + 32, 8, 32.0f), _mm256_permutevar8x32_ps(sn, i1), t1);
                i0 = _mm256_add_epi32(i1, two); i1 = _mm256_add_epi32(i0, two);
                t0 = _mm256_fmadd_ps(dot_ub(a[2], xn + 64, 8, 32.0f), _mm256_permutevar8x32_ps(sn, i0), t0);
                t1 = _mm256_fmadd_ps(dot_ub(a[3], xn + 96, 8, 32.0f), _mm256_permutevar8x32_ps(sn, i1), t1);
            }
        }
        y[r] = hsum256(_mm256_add_ps(t0, t1));
    }
}

// iq4_xs: the levels + 128 of a 32-byte chunk by vpshufb (low / high nibbles); 8 sub-block scales
// d (ls - 32), lanes 0-3 / 4-7 of chunk j use those of sub-blocks 2j / 2j + 1.
TA static void iq4_xs_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256;
    const __m256i lv = iq4_table(), m4 = _mm256_set1_epi8(0x0F);
    const __m256i cl = _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28), ch = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i sel = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1), two = _mm256_set1_epi32(2);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        const float *xb = xp;
        __m256 t0 = _mm256_setzero_ps(), t1 = t0;
        for (int64_t b = 0; b < nb; b++, p += 136, xb += 256) {
            pk_prefetch_ahead(p, 3);
            // ls_s = (sl >> 4s) & 15 | ((sh >> 2s) & 3) << 4
            __m256i sl = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)rd32(p + 4)), cl), _mm256_set1_epi32(15));
            __m256i sh = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)rd16(p + 2)), ch), _mm256_set1_epi32(3));
            __m256i ls = _mm256_sub_epi32(_mm256_or_si256(sl, _mm256_slli_epi32(sh, 4)), _mm256_set1_epi32(32));
            __m256 dl = _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(rd16(p))), _mm256_cvtepi32_ps(ls));
            __m256i idx = sel;
            for (int j = 0; j < 4; j++, idx = _mm256_add_epi32(idx, two)) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(p + 8 + 32 * j));
                __m256i lo = _mm256_shuffle_epi8(lv, _mm256_and_si256(v, m4));
                __m256i hi = _mm256_shuffle_epi8(lv, _mm256_and_si256(_mm256_srli_epi16(v, 4), m4));
                __m256 sum = _mm256_add_ps(dot_ub(lo, xb + 64 * j, 16, 128.0f), dot_ub(hi, xb + 64 * j + 8, 16, 128.0f));
                if (j & 1) t1 = _mm256_fmadd_ps(sum, _mm256_permutevar8x32_ps(dl, idx), t1);
                else t0 = _mm256_fmadd_ps(sum, _mm256_permutevar8x32_ps(dl, idx), t0);
            }
        }
        y[r] = hsum256(_mm256_add_ps(t0, t1));
    }
}

// =====================================================================================================
// MARK: matvec, blocks of 32

// The 16 quant bytes of block 0 (lanes 0-3) and, with n == 2, block 1 (lanes 4-7; else 0).
TA static inline __m256i quants2(const uint8_t *p, size_t stride, int n) {
    __m128i a = _mm_loadu_si128((const __m128i *)p);
    return n == 2 ? _mm256_inserti128_si256(_mm256_castsi128_si256(a), _mm_loadu_si128((const __m128i *)(p + stride)), 1)
                  : _mm256_zextsi128_si256(a);
}
// f16 at p (lanes 0-3) and p + stride (lanes 4-7; 0 when n == 1).
TA static inline __m256 f16_lanes2(const uint8_t *p, size_t stride, int n) {
    uint32_t h = rd16(p) | (n == 2 ? (uint32_t)rd16(p + stride) << 16 : 0);
    return _mm256_cvtph_ps(_mm_shuffle_epi8(_mm_cvtsi32_si128((int)h), _mm_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3)));
}
// d, m pairs (32 bits at p, p + stride) -> lanes 0-3 / 4-7 of *d, *m.
TA static inline void f16_pairs2(const uint8_t *p, size_t stride, int n, __m256 *d, __m256 *m) {
    uint64_t v = rd32(p) | (n == 2 ? (uint64_t)rd32(p + stride) << 32 : 0);
    __m128i h = _mm_cvtsi64_si128((long long)v);
    *d = _mm256_cvtph_ps(_mm_shuffle_epi8(h, _mm_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 4, 5, 4, 5, 4, 5, 4, 5)));
    *m = _mm256_cvtph_ps(_mm_shuffle_epi8(h, _mm_setr_epi8(2, 3, 2, 3, 2, 3, 2, 3, 6, 7, 6, 7, 6, 7, 6, 7)));
}
// q5_*: the 5-bit values of 2 blocks one a byte: *lo elements 0-15 (low nibble | qh bit l << 4), *hi 16-31.
TA static inline void q5_bytes(__m256i q, const uint8_t *qh, size_t stride, int n, __m256i *lo, __m256i *hi) {
    // qh of block 0 / 1 in the low / high 128-bit half; byte m of lane t (of its half) takes qh byte t / 2
    // (elements 0-15) or 2 + t / 2 (16-31), bit 4 (t & 1) + m
    __m256i Q = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_cvtsi32_si128((int)rd32(qh))),
                                        _mm_cvtsi32_si128(n == 2 ? (int)rd32(qh + stride) : 0), 1);
    const __m256i il = _mm256_setr_epi64x(0, 0x0101010101010101LL, 0, 0x0101010101010101LL);
    const __m256i ih = _mm256_setr_epi64x(0x0202020202020202LL, 0x0303030303030303LL, 0x0202020202020202LL, 0x0303030303030303LL);
    const __m256i bm = _mm256_setr_epi32(0x08040201, (int)0x80402010, 0x08040201, (int)0x80402010, 0x08040201, (int)0x80402010, 0x08040201, (int)0x80402010);
    const __m256i m4 = _mm256_set1_epi8(0x0F), b4 = _mm256_set1_epi8(0x10);
    __m256i bl = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(Q, il), bm), bm), b4);
    __m256i bh = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(Q, ih), bm), bm), b4);
    *lo = _mm256_or_si256(_mm256_and_si256(q, m4), bl);
    *hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), bh);
}

// Field k of src[k] (under mask[k], lowest bit o[k]) minus off, times slot k; per-lane sum (two chains).
TA static inline __m256 dot8_off(const __m256i src[8], const uint32_t mask[8], const int o[8], const float *xg, float off) {
    __m256 e = _mm256_mul_ps(cvt_off(src[0], mask[0], o[0], off), _mm256_load_ps(xg));
    __m256 d = _mm256_mul_ps(cvt_off(src[1], mask[1], o[1], off), _mm256_load_ps(xg + 8));
    for (int k = 2; k < 8; k += 2) {
        e = _mm256_fmadd_ps(cvt_off(src[k], mask[k], o[k], off), _mm256_load_ps(xg + 8 * k), e);
        d = _mm256_fmadd_ps(cvt_off(src[k + 1], mask[k + 1], o[k + 1], off), _mm256_load_ps(xg + 8 * k + 8), d);
    }
    return _mm256_add_ps(e, d);
}
// Nibble p of byte m of every lane (from v, v >> 16) minus off, times slot 2m + p; per-lane sum.
TA static inline __m256 dot_nib_off(__m256i v, const float *xg, float off) {
    const __m256i h = _mm256_srli_epi32(v, 16), src[8] = {v, v, v, v, h, h, h, h};
    static const uint32_t mask[8] = {0xF, 0xF0, 0xF00, 0xF000, 0xF, 0xF0, 0xF00, 0xF000};
    static const int o[8] = {0, 4, 8, 12, 0, 4, 8, 12};
    return dot8_off(src, mask, o, xg, off);
}
// Byte m of lo (p = 0) / hi (p = 1) minus off (5-bit values), times slot 2m + p; per-lane sum.
TA static inline __m256 dot5_off(__m256i lo, __m256i hi, const float *xg, float off) {
    const __m256i l2 = _mm256_srli_epi32(lo, 16), h2 = _mm256_srli_epi32(hi, 16), src[8] = {lo, hi, lo, hi, l2, h2, l2, h2};
    static const uint32_t mask[8] = {0x1F, 0x1F, 0x1F00, 0x1F00, 0x1F, 0x1F, 0x1F00, 0x1F00};
    static const int o[8] = {0, 0, 8, 8, 0, 0, 8, 8};
    return dot8_off(src, mask, o, xg, off);
}

// One group of n (1, 2) blocks at p; adds d * (partial sums) (+ m * lane sums of x) to acc.
TA static inline __m256 group_q4_0(const uint8_t *p, int n, const float *xg, __m256 acc) {
    return _mm256_fmadd_ps(dot_nib_off(quants2(p + 2, 18, n), xg, 8.0f), f16_lanes2(p, 18, n), acc);
}
TA static inline __m256 group_q4_1(const uint8_t *p, int n, const float *xg, __m256 acc) {
    __m256 d, m, e, o;
    f16_pairs2(p, 20, n, &d, &m);
    q4_K_chunk(quants2(p + 4, 20, n), xg, &e, &o);   // the same nibble slots
    acc = _mm256_fmadd_ps(m, _mm256_load_ps(xg + 64), acc);
    return _mm256_fmadd_ps(_mm256_add_ps(e, o), d, acc);
}
TA static inline __m256 group_q5_0(const uint8_t *p, int n, const float *xg, __m256 acc) {
    __m256i lo, hi;
    q5_bytes(quants2(p + 6, 22, n), p + 2, 22, n, &lo, &hi);
    return _mm256_fmadd_ps(dot5_off(lo, hi, xg, 16.0f), f16_lanes2(p, 22, n), acc);
}
TA static inline __m256 group_q5_1(const uint8_t *p, int n, const float *xg, __m256 acc) {
    __m256i lo, hi;
    q5_bytes(quants2(p + 8, 24, n), p + 4, 24, n, &lo, &hi);
    __m256 d, m;
    f16_pairs2(p, 24, n, &d, &m);
    __m256 s = _mm256_add_ps(dot5u(lo, xg), dot5u(hi, xg + 8));
    acc = _mm256_fmadd_ps(m, _mm256_load_ps(xg + 64), acc);
    return _mm256_fmadd_ps(s, d, acc);
}
// Prefetch as for the blocks of 256, two lines a step of 4 blocks (from memory: q4_1 +28% at 4864 columns, q4_0 +5%).
// Rows one at a time, two accumulators over alternate groups of 2 blocks; an odd last block goes through the
// same code with the missing block zero.
#define EXACT256_32(TYPE, BYTES, XG, XF, PREP)                                                                \
TA static void matvec_##TYPE(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) { \
    const int64_t nb = cols / 32, ng = nb / 2;                                                              \
    for (int64_t r = r0; r < r1; r++) {                                                                     \
        const uint8_t *p = W + (size_t)r * rb;                                                              \
        const float *xg = xp;                                                                               \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                                           \
        int64_t g = 0;                                                                                      \
        for (; g + 2 <= ng; g += 2, p += 4 * BYTES, xg += 2 * XG) {                                         \
            pk_prefetch_ahead(p, 2);                                                                          \
            a0 = group_##TYPE(p, 2, xg, a0);                                                                \
            a1 = group_##TYPE(p + 2 * BYTES, 2, xg + XG, a1);                                               \
        }                                                                                                   \
        if (g < ng) { a0 = group_##TYPE(p, 2, xg, a0); p += 2 * BYTES; xg += XG; }                          \
        if (nb & 1) a1 = group_##TYPE(p, 1, xg, a1);                                                        \
        y[r] = hsum256(_mm256_add_ps(a0, a1));                                                              \
    }                                                                                                       \
}                                                                                                           \
const pk_exact_kernel pk_exact256_##TYPE = { .x_floats = XF, .prepare = PREP, .matvec = matvec_##TYPE };

EXACT256_32(q4_0, 18, 64, xf_64, prep32_q4_0)
EXACT256_32(q4_1, 20, 72, xf_72, prep32_q4_1)
EXACT256_32(q5_0, 22, 64, xf_64, prep32_q5_0)
EXACT256_32(q5_1, 24, 72, xf_72, prep32_q5_1)

// =====================================================================================================
// MARK: q2_K, q3_K
// Here rather than in a file of their own (as kernels_x86_exactk23.c is on AVX-512): they use this file's static
// helpers (tr4x8 / slots4, hsum8x8, cvt_u, bcast), which a separate file would have to copy.
//
// Both keep their 2 low bits in 64 qs bytes: 32 bytes (half g) as 8 dword lanes, lane L holding bytes 4L + m
// (m = 0..3); bits 2k..2k+1 of byte m are element 128 g + 32 k + 4 L + m, sub-block (16 elements) 8 g + 2 k + (L >= 4).
// Prepared x, per block: slot 32 (4 g + k) + 8 m, lane L = x[128 g + 32 k + 4 L + m] (slots4 of 32 consecutive x), so
// the 4 fields (k, m = 0..3) of a half give one partial-sum vector per (g, k) whose lanes 0-3 / 4-7 are
// sub-blocks 8 g + 2 k / + 1; it is multiplied once by those lanes' scales (one vpermps of 8 of the 16 scales).
//   - q2_K (w = d sc q - dmin m): every field by AND + convert, from the lane (m < 2) or the lane >> 16 (m >= 2),
//     bit offset o = 8 (m & 1) + 2k <= 14, x pre-scaled by 2^-o (exact for |x| >= 2^-112); the mins through
//     per-sub-block sums of x made in prepare (16 more floats a block): y = sum_s d sc_s sum q x - sum_s dmin m_s sum x;
//     d sc and dmin m exact (11 x 4 bits).
//     k = 0 instead by vpermps (8-entry table 0..3 repeated: it reads index bits 0-2 of the lane, so bit 2, field
//     k = 1's low bit, is ignored) of the lane >> 8m (the lane >> 16 shared), x unscaled there: 6 ops for those 4
//     fields instead of 8, measured 3-4% faster.
//   - q3_K (w = d (sc - 32)(q + 4h - 4)): per (g, k) the 3-bit index q | h << 2 is built in bits 0-2 of every byte
//     ((lane >> 2k) & 3 | (hmask shifted so bit 4g + k lands at bit 2) & 4), then byte m is looked up by vpermps
//     (only index bits 0-2 count, so byte m needs just a shift by 8m) in the table -4..3: q + 4h - 4 per weight,
//     exact, x unscaled, so the error stays relative to sum |w x| (a -4 through sums of x would make it relative
//     to (|q + 4h| + 4) |x|); d (sc - 32) exact (11 x 6 bits). Bytes 1, 2 by AND + convert - 4 * 2^8m (x scaled)
//     instead of shift + lookup measured 5% slower.
// Per 8 weights ~2.4 (q2_K) / ~3.5 (q3_K) vector ops besides the FMA; NaN / Inf scales and x propagate to y.

// q2_K: per block 272 floats: the 32 slots (those of field (k > 0, m) scaled by 2^-(8 (m & 1) + 2k)), then the negated
// sums of x over the 16 sub-blocks (times dmin m in matvec).
static int64_t q2_K_x_floats(int64_t cols) { return cols / 256 * 272; }
TA static void q2_K_prepare(const float *x, int64_t cols, float *xp) {
    for (int64_t b = 0; b < cols / 256; b++, x += 256, xp += 272) {
        for (int g = 0; g < 2; g++)
            for (int k = 0; k < 4; k++) {
                const float lo = 1.0f / (float)(1u << (2 * k)), hi = k ? lo * 0x1p-8f : 1.0f, sc[4] = {lo, hi, lo, hi};
                slots4(x + 128 * g + 32 * k, x + 128 * g + 32 * k + 16, xp + 32 * (4 * g + k), 8, sc);
            }
        for (int h = 0; h < 2; h++) {
            __m256 u[8];
            for (int s = 0; s < 8; s++) u[s] = _mm256_add_ps(_mm256_loadu_ps(x + 128 * h + 16 * s), _mm256_loadu_ps(x + 128 * h + 16 * s + 8));
            _mm256_store_ps(xp + 256 + 8 * h, _mm256_sub_ps(_mm256_setzero_ps(), hsum8x8(u)));
        }
    }
}
// q3_K: the 32 slots, unscaled.
static const float SC1[4] = {1.0f, 1.0f, 1.0f, 1.0f};
TA static void q3_K_prepare(const float *x, int64_t cols, float *xp) {
    for (int64_t b = 0; b < cols; b += 32, x += 32, xp += 32) slots4(x, x + 16, xp, 8, SC1);
}

TA static void q2_K_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256;
    const __m256i m4 = _mm256_set1_epi32(15), sel = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    const __m256 t2 = _mm256_setr_ps(0, 1, 2, 3, 0, 1, 2, 3);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        const float *xb = xp;
        __m256 t0 = _mm256_setzero_ps(), t1 = t0, tm = t0;
        for (int64_t b = 0; b < nb; b++, p += 84, xb += 272) {
            pk_prefetch_ahead(p, 2);
            const __m256 d = _mm256_set1_ps(_cvtsh_ss(rd16(p + 80))), dmin = _mm256_set1_ps(_cvtsh_ss(rd16(p + 82)));
            __m256 dl[2];
            for (int g = 0; g < 2; g++) {   // sub-blocks 8g .. 8g + 7: d * (scale & 15), dmin * (scale >> 4)
                __m256i s = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(p + 8 * g)));
                dl[g] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_and_si256(s, m4)));
                tm = _mm256_fmadd_ps(_mm256_mul_ps(dmin, _mm256_cvtepi32_ps(_mm256_srli_epi32(s, 4))), _mm256_load_ps(xb + 256 + 8 * g), tm);
            }
            for (int g = 0; g < 2; g++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(p + 16 + 32 * g)), h = _mm256_srli_epi32(v, 16);
                for (int k = 0; k < 4; k++) {
                    const float *xs = xb + 32 * (4 * g + k);
                    __m256 a;
                    if (k == 0) {
                        a = _mm256_mul_ps(_mm256_permutevar8x32_ps(t2, v), _mm256_load_ps(xs));
                        a = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(t2, _mm256_srli_epi32(v, 8)), _mm256_load_ps(xs + 8), a);
                        a = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(t2, h), _mm256_load_ps(xs + 16), a);
                        a = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(t2, _mm256_srli_epi32(v, 24)), _mm256_load_ps(xs + 24), a);
                    } else {
                    a = _mm256_mul_ps(cvt_u(v, 3u << (2 * k)), _mm256_load_ps(xs));
                    a = _mm256_fmadd_ps(cvt_u(v, 3u << (8 + 2 * k)), _mm256_load_ps(xs + 8), a);
                    a = _mm256_fmadd_ps(cvt_u(h, 3u << (2 * k)), _mm256_load_ps(xs + 16), a);
                    a = _mm256_fmadd_ps(cvt_u(h, 3u << (8 + 2 * k)), _mm256_load_ps(xs + 24), a);
                    }
                    __m256 sc = _mm256_permutevar8x32_ps(dl[g], _mm256_add_epi32(sel, _mm256_set1_epi32(2 * k)));
                    if (k & 1) t1 = _mm256_fmadd_ps(a, sc, t1);
                    else t0 = _mm256_fmadd_ps(a, sc, t0);
                }
            }
        }
        y[r] = hsum256(_mm256_add_ps(_mm256_add_ps(t0, t1), tm));
    }
}

// q3_K: the 16 scales d (sc - 32) (sub-blocks 0-7 in *dl0, 8-15 in *dl1), unpacked as q3_K_dec in
// kernels_x86_quant.c does: with a0, a1, t the dwords of the 12 bytes, the dwords of sc are
// (a0 & m4) | (t & m2) << 4, (a1 & m4) | ((t >> 2) & m2) << 4, ((a0 >> 4) & m4) | ((t >> 4) & m2) << 4,
// ((a1 >> 4) & m4) | ((t >> 6) & m2) << 4.
TA static inline void q3_scales(const uint8_t *p, __m256 *dl0, __m256 *dl1) {
    __m128i raw = _mm_loadu_si128((const __m128i *)(p + 94));   // bytes 94..109: the 12 scale bytes at 2..13
    __m128i a = _mm_shuffle_epi8(raw, _mm_setr_epi8(2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7, 8, 9));
    __m128i t = _mm_shuffle_epi8(raw, _mm_setr_epi8(10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13));
    __m128i lo = _mm_and_si128(_mm_srlv_epi32(a, _mm_setr_epi32(0, 0, 4, 4)), _mm_set1_epi8(0x0F));
    __m128i hi = _mm_and_si128(_mm_slli_epi32(_mm_srlv_epi32(t, _mm_setr_epi32(0, 2, 4, 6)), 4), _mm_set1_epi8(0x30));
    __m128i sc = _mm_sub_epi8(_mm_or_si128(lo, hi), _mm_set1_epi8(32));
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(rd16(p + 108)));
    *dl0 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)));
    *dl1 = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))));
}

TA static void q3_K_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    const int64_t nb = cols / 256;
    const __m256 lv = _mm256_setr_ps(-4, -3, -2, -1, 0, 1, 2, 3);   // index q | h << 2 -> q + 4h - 4
    const __m256i m3 = _mm256_set1_epi8(3), b2 = _mm256_set1_epi8(4), sel = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        const float *xb = xp;
        __m256 t0 = _mm256_setzero_ps(), t1 = t0;
        for (int64_t b = 0; b < nb; b++, p += 110, xb += 256) {
            pk_prefetch_ahead(p, 2);
            __m256 dl[2];
            q3_scales(p, &dl[0], &dl[1]);
            const __m256i hm = _mm256_loadu_si256((const __m256i *)p);
            for (int g = 0; g < 2; g++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(p + 32 + 32 * g));
                for (int k = 0; k < 4; k++) {
                    const int j = 4 * g + k;   // hmask bit of (g, k), moved to bit 2 of each byte (16-bit shifts: bit 2
                                               // of a byte comes from bit j of the same byte)
                    __m256i hb = j > 2 ? _mm256_srli_epi16(hm, j - 2) : j < 2 ? _mm256_slli_epi16(hm, 2 - j) : hm;
                    __m256i t = _mm256_or_si256(_mm256_and_si256(k ? _mm256_srli_epi16(v, 2 * k) : v, m3), _mm256_and_si256(hb, b2));
                    const float *xs = xb + 32 * j;
                    __m256 a = _mm256_mul_ps(_mm256_permutevar8x32_ps(lv, t), _mm256_load_ps(xs));
                    a = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(lv, _mm256_srli_epi32(t, 8)), _mm256_load_ps(xs + 8), a);
                    a = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(lv, _mm256_srli_epi32(t, 16)), _mm256_load_ps(xs + 16), a);
                    a = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(lv, _mm256_srli_epi32(t, 24)), _mm256_load_ps(xs + 24), a);
                    __m256 sc = _mm256_permutevar8x32_ps(dl[g], _mm256_add_epi32(sel, _mm256_set1_epi32(2 * k)));
                    if (k & 1) t1 = _mm256_fmadd_ps(a, sc, t1);
                    else t0 = _mm256_fmadd_ps(a, sc, t0);
                }
            }
        }
        y[r] = hsum256(_mm256_add_ps(t0, t1));
    }
}

const pk_exact_kernel pk_exact256_q4_K = {k45_x_floats, q4_K_prepare, q4_K_matvec};
const pk_exact_kernel pk_exact256_q5_K = {k45_x_floats, q5_K_prepare, q5_K_matvec};
const pk_exact_kernel pk_exact256_q6_K = {k256_x_floats, q6_K_prepare, q6_K_matvec};
const pk_exact_kernel pk_exact256_iq4_xs = {k256_x_floats, iq4_xs_prepare, iq4_xs_matvec};
const pk_exact_kernel pk_exact256_q2_K = {q2_K_x_floats, q2_K_prepare, q2_K_matvec};
const pk_exact_kernel pk_exact256_q3_K = {k256_x_floats, q3_K_prepare, q3_K_matvec};

#endif
