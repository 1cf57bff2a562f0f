// Exact T == 1 matrix-vector kernels for q2_K and q3_K on AVX-512 (pk_exact_kernel, pk_internal.h), from x laid
// out once per call in the order the weight bits come; the scheme is kernels_x86_exactk.c's.
//
// Both types keep their 2 low bits in 64 qs bytes, loaded as one zmm and never widened: dword lane L holds bytes
// 4 (L & 7) + m (m = 0..3) of half g = L >> 3, and bits 2s..2s+1 of byte m are element 128 g + 32 s + 4 (L & 7) + m,
// sub-block (16 elements) 8 g + 2 s + ((L & 7) >= 4). Prepared x, per block: vector 4s + m holds in lane L the
// element of field (s, m), so 16 FMAs (4 per s) make one partial-sum vector per s whose lane quads belong to 4
// sub-blocks; each is multiplied once by its lanes' scales d * sc (one vpermps of the 16 scales; exact products:
// 11 x 4 or 6 bits).
//   - q2_K (w = d sc q - dmin m): s = 0, 1 by lookup (vpermps of the lane >> 8m; the tables of the index's bits
//     0-1 / 2-3 need no mask), s = 2, 3 by the unsigned conversion from the lane or the lane >> 16 (bit offset
//     <= 14: x pre-scaled by >= 2^-14, products exact for |x| >= 2^-112). The mins through per-sub-block sums
//     of x made in prepare (16 more floats a block): y = sum_s d sc_s sum q x - sum_s dmin m_s sum x.
//   - q3_K (w = d (sc - 32)(q + 4h - 4)): q - 4 + 4h is converted per weight, so the error stays relative to
//     sum |w x| (a -4 through sums of x would make it relative to (|q + 4h| + 4) |x|). Per s one vpternlogd puts
//     the hmask bit of (g, s), rotated per half, at bit 2 of every byte under ql (the lane >> 2s); then byte 0 by
//     lookup (table -4..3, repeated over index bit 3), bytes 1, 2 by the offset conversion (pk_field_off, subtract
//     2^(23 - 8m) + 4), byte 3 by it after a shift by 16. x unscaled.
// Per 16 weights that is ~1.7 (q2_K) / ~2.7 (q3_K) conversion ops and one FMA; the loop is bound by vector-op
// count (two 512-bit ops a cycle on Zen 4), not by memory. Mixes measured (q2_K all unsigned, all lookup, other
// splits; q3_K more lookups) were 2-6% slower: vpermps shares pipes with the FMAs and scale selectors.
// Weight GB/s, one thread, Zen 4 (thread CPU time, /tmp/hk23 harness), old = pk_matvec_*_512 (dequantise, dot),
// new = prepare + matvec through pk_matmul_rows:
//                          q2_K old -> new        q3_K old -> new
//   in cache 16 x 8192     3.56 -> 7.71 (2.2x)    4.58 -> 7.75 (1.7x)
//   L3  2048 x 8192        3.54 -> 8.61 (2.4x)    4.52 -> 8.38 (1.9x)
//   memory 65536 x 2048    3.50 -> 8.49 (2.4x)    4.55 -> 8.30 (1.8x)
//   memory 16384 x 8192    3.37 -> 7.42 (2.2x)    4.13 -> 7.13 (1.7x)
//   memory 128256 x 2048   3.49 -> 8.43 (2.4x)    4.56 -> 8.34 (1.8x)
#include "pk_internal.h"
#include "pk_x86.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define TQ __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

// =====================================================================================================
// MARK: prepare

// Both types: vec 4s + m, lane L = x[128 (L >= 8) + 32 s + 4 (L & 7) + m]: the element of bits 2s..2s+1 of byte m
// of dword lane L of the 64 qs bytes.
TQ static inline void k23_gather(const float *x, int s, __m512 o[4]) {
    const float *a = x + 32 * s, *b = a + 128;
    pk_gather4(_mm512_loadu_ps(a), _mm512_loadu_ps(a + 16), _mm512_loadu_ps(b), _mm512_loadu_ps(b + 16), o);
}

// q2_K: per block 272 floats: the 16 vectors, those of s = 2, 3 (unsigned conversion from the lane (m < 2) or the
// lane >> 16, field at bit 8 (m & 1) + 2s) scaled by 2^-(8 (m & 1) + 2s), then the negated sums of x over the 16
// sub-blocks (times dmin m in matvec).
static int64_t q2_K_x_floats(int64_t cols) { return cols / 256 * 272; }
TQ static void q2_K_prepare(const float *x, int64_t cols, float *xp) {
    for (int64_t b = 0; b < cols / 256; b++, x += 256, xp += 272) {
        for (int s = 0; s < 4; s++) {
            __m512 o[4];
            k23_gather(x, s, o);
            for (int m = 0; m < 4; m++) {
                float sc = s < 2 ? 1.0f : 1.0f / (float)(1u << (8 * (m & 1) + 2 * s));
                _mm512_store_ps(xp + 16 * (4 * s + m), _mm512_mul_ps(o[m], _mm512_set1_ps(sc)));
            }
        }
        __m512 u[16];
        for (int j = 0; j < 16; j++) u[j] = _mm512_loadu_ps(x + 16 * j);
        __m512 s16 = _mm512_insertf32x8(_mm512_castps256_ps512(pk_hsum8(u)), pk_hsum8(u + 8), 1);
        _mm512_store_ps(xp + 256, _mm512_sub_ps(_mm512_setzero_ps(), s16));
    }
}

// q3_K: per block the 16 vectors, unscaled.
static int64_t q3_K_x_floats(int64_t cols) { return cols; }
TQ static void q3_K_prepare(const float *x, int64_t cols, float *xp) {
    for (int64_t b = 0; b < cols / 256; b++, x += 256, xp += 256)
        for (int s = 0; s < 4; s++) {
            __m512 o[4];
            k23_gather(x, s, o);
            for (int m = 0; m < 4; m++) _mm512_store_ps(xp + 16 * (4 * s + m), o[m]);
        }
}

// =====================================================================================================
// MARK: matvec

// Scale selector of field group s: lanes 0-3, 4-7 sub-blocks 2s, 2s + 1; lanes 8-11, 12-15 sub-blocks 8 + 2s, 9 + 2s.
#define K23_SEL(s) _mm512_setr_epi32(2*s, 2*s, 2*s, 2*s, 2*s+1, 2*s+1, 2*s+1, 2*s+1, \
                                     8+2*s, 8+2*s, 8+2*s, 8+2*s, 9+2*s, 9+2*s, 9+2*s, 9+2*s)

// q2_K field (s, m): s = 0, 1 by lookup in byte m (the lane shifted by 8m) with a table of the 16 index values'
// bits 0-1 (s = 0) or 2-3 (s = 1); s = 2, 3 by unsigned conversion. w = {v, v >> 8, v >> 16, v >> 24}.
TQ static inline __m512 q2_field(__m512i v, __m512i h, const __m512i w[4], int s, int m) {
    const __m512 t0 = _mm512_setr_ps(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
    const __m512 t1 = _mm512_setr_ps(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    if (s < 2) return _mm512_permutexvar_ps(w[m], s ? t1 : t0);
    return pk_field_u(m < 2 ? v : h, 3u << (8 * (m & 1) + 2 * s));
}

// The four 64-value partial sums of a block into the row's two accumulators, each lane times its sub-block scale.
TQ static inline void k23_fold(const __m512 ps[4], __m512 dl, __m512 t[2]) {
    t[0] = _mm512_fmadd_ps(ps[0], _mm512_permutexvar_ps(K23_SEL(0), dl), t[0]);
    t[1] = _mm512_fmadd_ps(ps[1], _mm512_permutexvar_ps(K23_SEL(1), dl), t[1]);
    t[0] = _mm512_fmadd_ps(ps[2], _mm512_permutexvar_ps(K23_SEL(2), dl), t[0]);
    t[1] = _mm512_fmadd_ps(ps[3], _mm512_permutexvar_ps(K23_SEL(3), dl), t[1]);
}

TQ static inline void q2_K_block(const uint8_t *p, const float *xb, __m512 t[3]) {
    __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
    __m512 dl = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_set1_epi16((short)rd16(p + 80))),
                              _mm512_cvtepi32_ps(_mm512_and_si512(sc, _mm512_set1_epi32(15))));
    __m512 ml = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_set1_epi16((short)rd16(p + 82))),
                              _mm512_cvtepi32_ps(_mm512_srli_epi32(sc, 4)));
    t[2] = _mm512_fmadd_ps(ml, _mm512_load_ps(xb + 256), t[2]);
    __m512i v = _mm512_loadu_si512(p + 16), h = _mm512_srli_epi32(v, 16);
    const __m512i w[4] = {v, _mm512_srli_epi32(v, 8), h, _mm512_srli_epi32(v, 24)};
    __m512 ps[4];
    for (int s = 0; s < 4; s++) {
        __m512 a = _mm512_mul_ps(q2_field(v, h, w, s, 0), _mm512_load_ps(xb + 64 * s));
        for (int m = 1; m < 4; m++)
            a = _mm512_fmadd_ps(q2_field(v, h, w, s, m), _mm512_load_ps(xb + 64 * s + 16 * m), a);
        ps[s] = a;
    }
    k23_fold(ps, dl, t);
}
TQ static void q2_K_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    PK_EXACT_ROWS(q2_K_block, 3, 256, 84, 272, 2, q2_K_x_floats, PK_NO_TAIL, PK_EXACT_WIDE_K);
}

// q3_K: the 16 scales d (sc - 32), sc = lo | hi << 4 with (ggml) lo = byte s & 15 (s < 8) or byte s - 8 >> 4,
// hi = (byte 8 + s % 4 >> 2 (s / 4)) & 3.
TQ static inline __m512 q3_scales(const uint8_t *p) {
    __m128i raw = _mm_loadu_si128((const __m128i *)(p + 94));   // bytes 94..109: the 12 scale bytes at 2..13
    __m128i lo = _mm_srlv_epi32(_mm_shuffle_epi8(raw, _mm_setr_epi8(2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7, 8, 9)),
                                _mm_setr_epi32(0, 0, 4, 4));
    // dword k: the dword of bytes 8..11 with bits 2k, 2k + 1 of each byte rotated to bits 4, 5
    __m128i hi = _mm_rolv_epi32(_mm_shuffle_epi32(_mm_srli_si128(raw, 10), 0), _mm_setr_epi32(4, 2, 0, 30));
    // (0x0F ? lo : hi) & 63
    __m128i sc = _mm_and_si128(_mm_ternarylogic_epi32(lo, hi, _mm_set1_epi8(0x0F), 0xE4), _mm_set1_epi8(0x3F));
    return _mm512_mul_ps(_mm512_cvtph_ps(_mm256_set1_epi16((short)rd16(p + 108))),
                         _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_cvtepu8_epi32(sc), _mm512_set1_epi32(32))));
}

// Byte m of t (bits 8m..8m+2: ql | h << 2) as ql + 4h - 4: byte 0 by lookup (vpermps reads index bits 0-3; the
// table repeats over bit 3), bytes 1, 2 by the offset conversion in place, byte 3 by it after a shift by 16. Fewer
// lookups measured faster (vpermps shares its pipes with the scale selectors and FMAs).
TQ static inline __m512 q3_field(__m512i t, int m) {
    const __m512 lv = _mm512_setr_ps(-4, -3, -2, -1, 0, 1, 2, 3, -4, -3, -2, -1, 0, 1, 2, 3);
    if (m == 0) return _mm512_permutexvar_ps(t, lv);
    if (m < 3) return pk_field_off(t, 7u << (8 * m), 8 * m, 4.0f, 0);
    return pk_field_off(_mm512_srli_epi32(t, 16), 7u << 8, 8, 4.0f, 0);
}

TQ static inline void q3_K_block(const uint8_t *p, const float *xb, __m512 t[2]) {
    __m512 dl = q3_scales(p);
    __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)p));
    __m512i v = _mm512_loadu_si512(p + 32);
    __m512 ps[4];
    for (int s = 0; s < 4; s++) {
        // h of (g, s) is bit 4g + s of hmask byte l: rotated to bit 2 of each byte, under ql at bits 0-1
        const __m512i rot = _mm512_setr_epi32((2 - s) & 31, (2 - s) & 31, (2 - s) & 31, (2 - s) & 31,
                                              (2 - s) & 31, (2 - s) & 31, (2 - s) & 31, (2 - s) & 31,
                                              30 - s, 30 - s, 30 - s, 30 - s, 30 - s, 30 - s, 30 - s, 30 - s);
        __m512i t4 = _mm512_ternarylogic_epi32(s ? _mm512_srli_epi32(v, 2 * s) : v, _mm512_rolv_epi32(hm, rot),
                                               _mm512_set1_epi8(0x04), 0xD8);   // (0x04 ? h : ql)
        __m512 a = _mm512_mul_ps(q3_field(t4, 0), _mm512_load_ps(xb + 64 * s));
        for (int m = 1; m < 4; m++)
            a = _mm512_fmadd_ps(q3_field(t4, m), _mm512_load_ps(xb + 64 * s + 16 * m), a);
        ps[s] = a;
    }
    k23_fold(ps, dl, t);
}
TQ static void q3_K_matvec(const uint8_t *W, size_t rb, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    PK_EXACT_ROWS(q3_K_block, 2, 256, 110, 256, 2, q3_K_x_floats, PK_NO_TAIL, PK_EXACT_WIDE_K);
}

const pk_exact_kernel pk_exact512_q2_K = {q2_K_x_floats, q2_K_prepare, q2_K_matvec};
const pk_exact_kernel pk_exact512_q3_K = {q3_K_x_floats, q3_K_prepare, q3_K_matvec};

#endif
