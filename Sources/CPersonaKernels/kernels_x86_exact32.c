// AVX-512 exact T == 1 matrix-vector kernels for the blocks of 32: q4_0, q4_1, q5_0, q5_1, iq4_nl, q8_0
// (pk_exact_kernel, pk_internal.h).
//
// x is laid out once per call in the order the weight bytes come, so the weights become floats where they lie:
// - the 16-byte quant arrays of 4 blocks (the 32 of 2 q8_0 blocks) fill one zmm by 128-bit inserts, dword lanes
//   4b..4b+3 from block b (8b..8b+7 for q8_0); each 4- or 8-bit field position of the lanes is a "slot", and slot s
//   of a group is 16 consecutive floats of the laid-out x (q5_*: the 5-bit values are first assembled in bytes,
//   nibble | qh bit << 4 with one 64-bit byte mask per half, a low-nibble and a high-nibble vector);
// - the types with a min (q4_1, q5_1) need only q: one AND isolates field k and one vcvtudq2ps gives q * 2^(bits
//   below the field) exactly; x is pre-scaled by the inverse power of two (exact for |x| >= 2^-98);
// - the others need q - offset per weight, exactly: one vpternlogd ORs the field into the mantissa of
//   C = 2^(23 - shift) (the field's unit is the mantissa's unit; q8_0 also flips the sign bit), one subtract of
//   C + offset gives q - 8, q - 16 or the int8 q; fields must lie in bits 0..22, so the upper half of each lane is
//   shifted down first. iq4_nl looks its 16 levels up with vpermps (the nibble in the low 4 index bits).
// - one FMA with x per 16 weights; the block scales multiply each lane's partial sum once per group:
//   y = sum_b d_b sum_i (q_i - off) x_i, plus sum_b m_b sum_i x_i for q4_1 / q5_1 (per-lane sums of x from prepare).
// No 512-bit shuffle in the inner loop but one vpermps per group for the scales (iq4_nl: one per 16 weights);
// on Zen 4 the loop is bound by vector-op count (two 512-bit ops a cycle), about 1.3-1.75x the widen-and-lookup
// kernels of kernels_x86_quant.c / kernels_x86.c.
// Accuracy: products of exact small integers and x, one rounding per FMA, d applied to a sum of 8 products, so y
// is the dequantised row times x within f32 summation rounding; NaN / Inf scales and x propagate to y.
#include "pk_internal.h"
#include "pk_x86.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define TQ __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

// =====================================================================================================
// MARK: x layouts

// Group g of 4 blocks (128 elements) is stored as 8 vectors ("slots") of 16 floats, lane 4b + t of slot s
// holding the element that field s of dword t of block b's quants multiplies. Nibble order (q4_0, q4_1, iq4_nl):
// field s is nibble s of the dword, element 4t + s / 2 + 16 (s & 1). Byte order (q5_*, which read a low-nibble
// and a high-nibble vector of bytes): element 4t + (s & 3) + 16 (s / 4). With `sums` (the min types), 16 more
// floats, each lane's sum of x over the 8 slots, and the slots pre-scaled by 2^-(field's lowest bit).
// Missing blocks of the last group are zeros.
TQ static inline __m512 slot4(const __m512 *X, int j, int p) {
    // lanes 4b + t <- X[2b + p][4t + j]: two 2-source permutes (blocks 0-1, 2-3), then a blend
    const __m512i idx = _mm512_add_epi32(_mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28),
                                         _mm512_set1_epi32(j));
    __m512 a = _mm512_permutex2var_ps(X[p], idx, X[2 + p]), b = _mm512_permutex2var_ps(X[4 + p], idx, X[6 + p]);
    return _mm512_mask_blend_ps(0xFF00, a, b);
}

TQ static void prepare32(const float *x, int64_t cols, float *xp, int byte_order, int sums, int prescale) {
    const int64_t nb = cols / 32, stride = sums ? 144 : 128;
    for (int64_t b0 = 0; b0 < nb; b0 += 4, xp += stride) {
        const int n = nb - b0 < 4 ? (int)(nb - b0) : 4;
        __m512 X[8], s = _mm512_setzero_ps();
        for (int i = 0; i < 8; i++) X[i] = i < 2 * n ? _mm512_loadu_ps(x + b0 * 32 + 16 * i) : _mm512_setzero_ps();
        for (int k = 0; k < 8; k++) {
            __m512 v = byte_order ? slot4(X, k & 3, k >> 2) : slot4(X, k >> 1, k & 1);
            s = _mm512_add_ps(s, v);
            if (prescale) v = _mm512_mul_ps(v, _mm512_set1_ps(1.0f / (float)(1u << (byte_order ? 8 * (k & 3) : 4 * k))));
            _mm512_store_ps(xp + 16 * k, v);
        }
        if (sums) _mm512_store_ps(xp + 128, s);
    }
}

// q8_0: group of 2 blocks (64 elements), lane L of slot j multiplies byte j of dword L: element 4L + j,
// a 4 x 16 transpose.
TQ static void prepare_q8_0(const float *x, int64_t cols, float *xp) {
    const int64_t nb = cols / 32;
    for (int64_t b0 = 0; b0 < nb; b0 += 2, xp += 64) {
        const int n = nb - b0 < 2 ? 1 : 2;
        __m512 X[8];
        // slot4's operands: X[0], X[2], X[4], X[6] hold elements 0-15, 16-31, 32-47, 48-63
        for (int i = 0; i < 4; i++) X[2 * i] = i < 2 * n ? _mm512_loadu_ps(x + b0 * 32 + 16 * i) : _mm512_setzero_ps();
        for (int j = 0; j < 4; j++) _mm512_store_ps(xp + 16 * j, slot4(X, j, 0));
    }
}

static int64_t xf_128(int64_t cols) { return (cols / 32 + 3) / 4 * 128; }
static int64_t xf_144(int64_t cols) { return (cols / 32 + 3) / 4 * 144; }
static int64_t xf_q8_0(int64_t cols) { return (cols / 32 + 1) / 2 * 64; }
TQ static void prep_nib(const float *x, int64_t cols, float *xp) { prepare32(x, cols, xp, 0, 0, 0); }
TQ static void prep_nib_sums(const float *x, int64_t cols, float *xp) { prepare32(x, cols, xp, 0, 1, 1); }
TQ static void prep_byte(const float *x, int64_t cols, float *xp) { prepare32(x, cols, xp, 1, 0, 0); }
TQ static void prep_byte_sums(const float *x, int64_t cols, float *xp) { prepare32(x, cols, xp, 1, 1, 1); }

// =====================================================================================================
// MARK: weights

// The 16-byte quant arrays of n (1..4) blocks `stride` bytes apart, block b in lanes 4b..4b+3, missing ones 0.
TQ static inline __m512i quants4(const uint8_t *p, size_t stride) {
    __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *)p));
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + stride)), 1);
    v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 * stride)), 2);
    return _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 3 * stride)), 3);
}
TQ static inline __m512i quants_n(const uint8_t *p, size_t stride, int n) {
    __m512i v = _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *)p));
    if (n > 1) v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + stride)), 1);
    if (n > 2) v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *)(p + 2 * stride)), 2);
    return v;
}

// Four f16 (bits 16b..16b+15 of h) -> lanes 4b..4b+3.
TQ static inline __m512 f16_lanes4(uint64_t h) {
    __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128((long long)h));
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3), _mm512_castps128_ps512(f));
}
// The f16 at p + b * stride for b < n (0 for missing blocks: a zero scale keeps their zero lanes at 0).
static inline uint64_t f16x4(const uint8_t *p, size_t stride, int n) {
    uint64_t h = rd16(p);
    for (int b = 1; b < n; b++) h |= (uint64_t)rd16(p + b * stride) << (16 * b);
    return h;
}
// d and m of 4 blocks (the 32 bits at p + b * stride) -> lanes 4b..4b+3 of *d, *m.
TQ static inline void f16_pairs4(const uint8_t *p, size_t stride, int n, __m512 *d, __m512 *m) {
    uint64_t lo = rd32(p), hi = 0;
    if (n > 1) lo |= (uint64_t)rd32(p + stride) << 32;
    if (n > 2) hi = rd32(p + 2 * stride);
    if (n > 3) hi |= (uint64_t)rd32(p + 3 * stride) << 32;
    __m256 f = _mm256_cvtph_ps(_mm_set_epi64x((long long)hi, (long long)lo));   // d0 m0 d1 m1 ...
    const __m512i i = _mm512_setr_epi32(0, 0, 0, 0, 2, 2, 2, 2, 4, 4, 4, 4, 6, 6, 6, 6);
    *d = _mm512_permutexvar_ps(i, _mm512_castps256_ps512(f));
    *m = _mm512_permutexvar_ps(_mm512_add_epi32(i, _mm512_set1_epi32(1)), _mm512_castps256_ps512(f));
}

// Field k (bits 4k..4k+3, k < 4) of every lane minus off, exactly (pk_field_off).
#define NIB(v, k, off) pk_field_off(v, 0xFu << (4 * (k)), 4 * (k), off, 0)

// The min types: nibble k of every lane times 2^4k, exactly (AND, vcvtudq2ps; x pre-scaled by 2^-4k); sum over
// the 8 nibble slots of q x, per lane.
#define CVT(v, k) pk_field_u(v, 0xFu << (4 * (k)))
TQ static inline __m512 dot_cvt(__m512i v, const float *xg) {
    __m512 e = _mm512_mul_ps(CVT(v, 0), _mm512_load_ps(xg));
    __m512 o = _mm512_mul_ps(CVT(v, 1), _mm512_load_ps(xg + 16));
    e = _mm512_fmadd_ps(CVT(v, 2), _mm512_load_ps(xg + 32), e);
    o = _mm512_fmadd_ps(CVT(v, 3), _mm512_load_ps(xg + 48), o);
    e = _mm512_fmadd_ps(CVT(v, 4), _mm512_load_ps(xg + 64), e);
    o = _mm512_fmadd_ps(CVT(v, 5), _mm512_load_ps(xg + 80), o);
    e = _mm512_fmadd_ps(CVT(v, 6), _mm512_load_ps(xg + 96), e);
    o = _mm512_fmadd_ps(CVT(v, 7), _mm512_load_ps(xg + 112), o);
    return _mm512_add_ps(e, o);
}
// sum over the 8 nibble slots of (q - off) x, per lane.
TQ static inline __m512 dot_nib(__m512i v, const float *xg, float off) {
    const __m512i h = _mm512_srli_epi32(v, 16);
    __m512 e = _mm512_mul_ps(NIB(v, 0, off), _mm512_load_ps(xg));
    __m512 o = _mm512_mul_ps(NIB(v, 1, off), _mm512_load_ps(xg + 16));
    e = _mm512_fmadd_ps(NIB(v, 2, off), _mm512_load_ps(xg + 32), e);
    o = _mm512_fmadd_ps(NIB(v, 3, off), _mm512_load_ps(xg + 48), o);
    e = _mm512_fmadd_ps(NIB(h, 0, off), _mm512_load_ps(xg + 64), e);
    o = _mm512_fmadd_ps(NIB(h, 1, off), _mm512_load_ps(xg + 80), o);
    e = _mm512_fmadd_ps(NIB(h, 2, off), _mm512_load_ps(xg + 96), e);
    o = _mm512_fmadd_ps(NIB(h, 3, off), _mm512_load_ps(xg + 112), o);
    return _mm512_add_ps(e, o);
}

// Byte j (j < 2) of every lane minus off, exactly (pk_field_off); signed bytes (sgn = 1) flip their sign bit first
// (byte + 128), so off = 128 gives the int8 value.
#define BYTE(v, j, sgn, off) pk_field_off(v, 0xFFu << (8 * (j)), 8 * (j), off, (uint32_t)(sgn) << (8 * (j) + 7))

// sum over the 4 byte slots of one vector of (q - off) x, per lane, added to e / o.
#define DOT_BYTES(v, xg, sgn, off, e, o)                                              \
    do {                                                                                   \
        const __m512i h_ = _mm512_srli_epi32(v, 16);                                       \
        e = _mm512_fmadd_ps(BYTE(v, 0, sgn, off), _mm512_load_ps(xg), e);             \
        o = _mm512_fmadd_ps(BYTE(v, 1, sgn, off), _mm512_load_ps((xg) + 16), o);      \
        e = _mm512_fmadd_ps(BYTE(h_, 0, sgn, off), _mm512_load_ps((xg) + 32), e);     \
        o = _mm512_fmadd_ps(BYTE(h_, 1, sgn, off), _mm512_load_ps((xg) + 48), o);     \
    } while (0)

// q5_1: byte j of every lane times 2^8j, exactly (x pre-scaled by 2^-8j); sum over the 4 slots of q x, per lane.
#define CVTB(v, j) pk_field_u(v, 0xFFu << (8 * (j)))
#define DOT_BYTES_CVT(v, xg, e, o)                                                         \
    do {                                                                                   \
        e = _mm512_fmadd_ps(CVTB(v, 0), _mm512_load_ps(xg), e);                            \
        o = _mm512_fmadd_ps(CVTB(v, 1), _mm512_load_ps((xg) + 16), o);                     \
        e = _mm512_fmadd_ps(CVTB(v, 2), _mm512_load_ps((xg) + 32), e);                     \
        o = _mm512_fmadd_ps(CVTB(v, 3), _mm512_load_ps((xg) + 48), o);                     \
    } while (0)

// q5_*: 5-bit values of 4 blocks in bytes, *lo: elements 0-15 (low nibble | qh bit i << 4), *hi: 16-31.
TQ static inline void q5_bytes(__m512i q, const uint8_t *qh, size_t stride, int n, __m512i *lo, __m512i *hi) {
    uint64_t l = 0, h = 0;
    for (int b = 0; b < n; b++) {
        uint32_t v = rd32(qh + b * stride);
        l |= (uint64_t)(v & 0xFFFF) << (16 * b);
        h |= (uint64_t)(v >> 16) << (16 * b);
    }
    const __m512i m4 = _mm512_set1_epi8(0x0F), b4 = _mm512_set1_epi8(0x10);
    *lo = _mm512_ternarylogic_epi32(q, m4, _mm512_maskz_mov_epi8(l, b4), 0xEA);
    *hi = _mm512_ternarylogic_epi32(_mm512_srli_epi16(q, 4), m4, _mm512_maskz_mov_epi8(h, b4), 0xEA);
}

// =====================================================================================================
// MARK: row kernels

// One group of n blocks (4 in the main loop) at p; adds d * (partial sums) (+ m * lane sums of x) to acc.
TQ static inline __m512 group_q4_0(const uint8_t *p, int n, const float *xg, __m512 acc) {
    __m512i v = n == 4 ? quants4(p + 2, 18) : quants_n(p + 2, 18, n);
    return _mm512_fmadd_ps(dot_nib(v, xg, 8.0f), f16_lanes4(f16x4(p, 18, n)), acc);
}
TQ static inline __m512 group_q4_1(const uint8_t *p, int n, const float *xg, __m512 acc) {
    __m512i v = n == 4 ? quants4(p + 4, 20) : quants_n(p + 4, 20, n);
    __m512 d, m;
    f16_pairs4(p, 20, n, &d, &m);
    acc = _mm512_fmadd_ps(m, _mm512_load_ps(xg + 128), acc);
    return _mm512_fmadd_ps(dot_cvt(v, xg), d, acc);
}
TQ static inline __m512 group_q5_0(const uint8_t *p, int n, const float *xg, __m512 acc) {
    __m512i lo, hi;
    q5_bytes(n == 4 ? quants4(p + 6, 22) : quants_n(p + 6, 22, n), p + 2, 22, n, &lo, &hi);
    __m512 e = _mm512_setzero_ps(), o = e;
    DOT_BYTES(lo, xg, 0, 16.0f, e, o);
    DOT_BYTES(hi, xg + 64, 0, 16.0f, e, o);
    return _mm512_fmadd_ps(_mm512_add_ps(e, o), f16_lanes4(f16x4(p, 22, n)), acc);
}
TQ static inline __m512 group_q5_1(const uint8_t *p, int n, const float *xg, __m512 acc) {
    __m512i lo, hi;
    q5_bytes(n == 4 ? quants4(p + 8, 24) : quants_n(p + 8, 24, n), p + 4, 24, n, &lo, &hi);
    __m512 d, m;
    f16_pairs4(p, 24, n, &d, &m);
    __m512 e = _mm512_setzero_ps(), o = e;
    DOT_BYTES_CVT(lo, xg, e, o);
    DOT_BYTES_CVT(hi, xg + 64, e, o);
    acc = _mm512_fmadd_ps(m, _mm512_load_ps(xg + 128), acc);
    return _mm512_fmadd_ps(_mm512_add_ps(e, o), d, acc);
}
// iq4_nl, nibble order: each nibble field indexes the 16 float levels with vpermps (low 4 index bits only).
TQ static inline __m512 group_iq4_nl(const uint8_t *p, int n, const float *xg, __m512 acc) {
    const __m512 lv = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)pk_iq4nl_values)));
    __m512i v = n == 4 ? quants4(p + 2, 18) : quants_n(p + 2, 18, n);
    __m512 e = _mm512_mul_ps(_mm512_permutexvar_ps(v, lv), _mm512_load_ps(xg));
    __m512 o = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4), lv), _mm512_load_ps(xg + 16));
    for (int k = 2; k < 8; k += 2) {
        e = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4 * k), lv), _mm512_load_ps(xg + 16 * k), e);
        o = _mm512_fmadd_ps(_mm512_permutexvar_ps(_mm512_srli_epi32(v, 4 * k + 4), lv), _mm512_load_ps(xg + 16 * k + 16), o);
    }
    return _mm512_fmadd_ps(_mm512_add_ps(e, o), f16_lanes4(f16x4(p, 18, n)), acc);
}
// q8_0: 2 blocks (n = 1 or 2), lanes 8b..8b+7 from block b.
TQ static inline __m512 group_q8_0(const uint8_t *p, int n, const float *xg, __m512 acc) {
    __m512i v = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(p + 2)));
    uint32_t h = rd16(p);
    if (n > 1) {
        v = _mm512_inserti64x4(v, _mm256_loadu_si256((const __m256i *)(p + 36)), 1);
        h |= (uint32_t)rd16(p + 34) << 16;
    }
    __m128 f = _mm_cvtph_ps(_mm_cvtsi32_si128((int)h));
    __m512 d = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), _mm512_castps128_ps512(f));
    __m512 e = _mm512_setzero_ps(), o = e;
    DOT_BYTES(v, xg, 1, 128.0f, e, o);
    return _mm512_fmadd_ps(_mm512_add_ps(e, o), d, acc);
}

// Rows one at a time (one sequential stream per thread; two rows at a time measured no faster), two
// accumulators over alternate groups; the partial last group (1..G-1 blocks) goes through the same code with the
// missing blocks zero. Wide rows as PK_EXACT_ROWS says, its step a pair of groups (chunks hold whole pairs, so
// each accumulator sees the same groups in the same order).
#define EXACT32(TYPE, G, BYTES, XG, XF, PREP)                                                                 \
TQ static inline void pair_##TYPE(const uint8_t *p, const float *xg, __m512 a[2]) {                         \
    a[0] = group_##TYPE(p, G, xg, a[0]);                                                                    \
    a[1] = group_##TYPE(p + G * BYTES, G, xg + XG, a[1]);                                                   \
}                                                                                                           \
TQ static inline void tail_##TYPE(const uint8_t *p, const float *xg, __m512 a[2], int64_t cols) {              \
    const int64_t ng = cols / 32 / G;                                                                       \
    const int rest = (int)(cols / 32 % G);                                                                  \
    if (ng % 2) { a[0] = group_##TYPE(p, G, xg, a[0]); p += G * BYTES; xg += XG; }                          \
    if (rest) a[1] = group_##TYPE(p, rest, xg, a[1]);                                                       \
}                                                                                                           \
TQ static void matvec_##TYPE(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) { \
    PK_EXACT_ROWS(pair_##TYPE, 2, 64 * G, 2 * G * BYTES, 2 * XG, 0, XF, tail_##TYPE, PK_EXACT_WIDE_32);                       \
}                                                                                                           \
const pk_exact_kernel pk_exact512_##TYPE = { .x_floats = XF, .prepare = PREP, .matvec = matvec_##TYPE };

EXACT32(q4_0, 4, 18, 128, xf_128, prep_nib)
EXACT32(q4_1, 4, 20, 144, xf_144, prep_nib_sums)
EXACT32(q5_0, 4, 22, 128, xf_128, prep_byte)
EXACT32(q5_1, 4, 24, 144, xf_144, prep_byte_sums)
EXACT32(iq4_nl, 4, 18, 128, xf_128, prep_nib)
EXACT32(q8_0, 2, 34, 64, xf_q8_0, prepare_q8_0)

#endif
