// The importance-matrix types of ggml (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M): each group of 8 (or 4)
// weights is an index into a fixed lattice grid (iq_grids.h, from gguf-py), with signs, a per-sub-block scale and
// (IQ1) a shift. Read here in their stored form and widened to f32 per row, with gguf-py's f32 operations in its
// order, so every value is bit-identical to `gguf.quants.dequantize`: the scale first (d * (0.5 + s) * 0.25 for
// IQ2, d * (0.5 + s) * 0.5 for IQ3_XXS, d * (1 + 2 s) for IQ3_S, d * (2 s + 1) for IQ1), then times the grid value,
// the sign a multiplication by +-1 (IQ1: times grid + delta). They run through the generic paths (convert rows, then
// f32 dot products or the f32 GEMM; AVX-512 also a fused T == 1 product), so exact precision only; there are no
// native kernels for them. One decoder per type reads the block layout for every level (`iq_half` below).
#include "pk_internal.h"
#include "iq_grids.h"
#include <pthread.h>

static uint8_t iq2xxs_grid[256][8], iq2xs_grid[512][8], iq2s_grid[1024][8], iq3xxs_grid[256][4], iq3s_grid[512][4];
static int8_t iq1s_grid[2048][8];

static void unpack2(const uint8_t *packed, int entries, const int map[3], int8_t *out) {
    for (int i = 0; i < entries * 2; i++)   // 2 bytes per entry of 8
        for (int s = 0; s < 4; s++) out[i * 4 + s] = (int8_t)map[(packed[i] >> (2 * s)) & 3];
}
static void unpack3(const uint8_t *packed, int entries, const int map[8], uint8_t *out) {
    for (int i = 0; i < entries * 2; i++)   // 2 bytes per entry of 4
        for (int s = 0; s < 2; s++) out[i * 2 + s] = (uint8_t)map[(packed[i] >> (4 * s)) & 7];
}
static void init_grids(void) {
    static const int m2[3] = {8, 25, 43}, m1[3] = {-1, 0, 1};
    static const int m3xxs[8] = {4, 12, 20, 28, 36, 44, 52, 62}, m3s[8] = {1, 3, 5, 7, 9, 11, 13, 15};
    unpack2(pk_iq2xxs_packed, 256, m2, (int8_t *)iq2xxs_grid);
    unpack2(pk_iq2xs_packed, 512, m2, (int8_t *)iq2xs_grid);
    unpack2(pk_iq2s_packed, 1024, m2, (int8_t *)iq2s_grid);
    unpack2(pk_iq1s_packed, 2048, m1, (int8_t *)iq1s_grid);
    unpack3(pk_iq3xxs_packed, 256, m3xxs, (uint8_t *)iq3xxs_grid);
    unpack3(pk_iq3s_packed, 512, m3s, (uint8_t *)iq3s_grid);
}
static pthread_once_t grids_once = PTHREAD_ONCE_INIT;

static inline uint16_t u16_at(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t u32_at(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t g8(const void *e) { uint64_t v; memcpy(&v, e, 8); return v; }
static inline uint64_t g4x2(const uint8_t *a, const uint8_t *b) { return (uint64_t)u32_at(a) | (uint64_t)u32_at(b) << 32; }

// Half a group (16 weights) as a block stores it, what every level widens: the scale; 16 grid values as two 8-byte
// entries (unsigned for IQ2 / IQ3, -1 / 0 / 1 for IQ1); for IQ2 / IQ3 which values are negated (bit j), for IQ1 the
// shift of each 8. Value j is scale * grid_j, negated where bit j is set, or scale * (grid_j + shift).
typedef struct { float scale; uint64_t lo, hi; unsigned neg; float d0, d1; } iq_half;
#define IQ_INL inline __attribute__((always_inline))

static IQ_INL unsigned ks2(uint32_t aux, int k) {   // sign bytes of chunks k, k + 1 from 7-bit fields of aux
    return pk_iq2_ksigns[(aux >> (7 * k)) & 127] | (unsigned)pk_iq2_ksigns[(aux >> (7 * k + 7)) & 127] << 8;
}
static IQ_INL void set2(iq_half *h, float scale, uint64_t lo, uint64_t hi, unsigned neg) { h->scale = scale; h->lo = lo; h->hi = hi; h->neg = neg; }
static IQ_INL void set1(iq_half *h, float scale, const int8_t *lo, const int8_t *hi, float d0, float d1) {
    h->scale = scale; h->lo = g8(lo); h->hi = g8(hi); h->d0 = d0; h->d1 = d1;
}

// The f16 bits of a block's d (IQ1_M spreads them over the top nibbles of its four scale words).
static IQ_INL uint16_t d_bits(int iq1m, const uint8_t *p) {
    if (!iq1m) return u16_at(p);
    const uint8_t *sc = p + 48;
    return (uint16_t)((u16_at(sc) >> 12) | ((u16_at(sc + 2) >> 8) & 0x00F0) | ((u16_at(sc + 4) >> 4) & 0x0F00) | (u16_at(sc + 6) & 0xF000));
}

// Group g (weights 32g..32g+31) of block p whose d is `d`, as two halves.
static IQ_INL void grp_iq2_xxs(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u32 q[16] }: per 32 weights 4 grid bytes, then 4 x 7 sign bits + 4-bit scale
    const uint8_t *idx = p + 2 + 8 * g;
    const uint32_t aux = u32_at(idx + 4);
    const float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
    for (int k = 0; k < 2; k++) set2(&h[k], db, g8(iq2xxs_grid[idx[2 * k]]), g8(iq2xxs_grid[idx[2 * k + 1]]), ks2(aux, 2 * k));
}
static IQ_INL void grp_iq2_xs(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u16 qs[32] (9-bit index | 7-bit sign index); u8 scales[8] }
    for (int k = 0; k < 2; k++) {   // sub-block s = 2g + k: 16 weights, one scale nibble
        const int s = 2 * g + k;
        const float db = d * (0.5f + (float)((p[66 + s / 2] >> (4 * (s % 2))) & 15)) * 0.25f;
        const uint16_t q0 = u16_at(p + 2 + 4 * s), q1 = u16_at(p + 4 + 4 * s);
        set2(&h[k], db, g8(iq2xs_grid[q0 & 511]), g8(iq2xs_grid[q1 & 511]), pk_iq2_ksigns[q0 >> 9] | (unsigned)pk_iq2_ksigns[q1 >> 9] << 8);
    }
}
static IQ_INL void grp_iq2_s(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u8 qs[32]; u8 signs[32]; u8 qh[8] (4 x 2 high bits); u8 scales[8] }
    const uint8_t *qs = p + 2, *sg = p + 34, *qh = p + 66, *sc = p + 74;
    for (int k = 0; k < 2; k++) {
        const int s = 2 * g + k, i = 2 * s, hb = qh[i / 4] >> (2 * (i % 4));   // i % 4 is 0 or 2: both indices' high bits
        const float db = d * (0.5f + (float)((sc[s / 2] >> (4 * (s % 2))) & 15)) * 0.25f;
        set2(&h[k], db, g8(iq2s_grid[qs[i] | ((hb & 3) << 8)]), g8(iq2s_grid[qs[i + 1] | (((hb >> 2) & 3) << 8)]), u16_at(sg + i));
    }
}
static IQ_INL void grp_iq3_xxs(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u8 qs[64] (4 weights each); u32 aux[8] (4 x 7 sign bits + 4-bit scale) }
    const uint32_t aux = u32_at(p + 66 + 4 * g);
    const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
    const uint8_t *q = p + 2 + 8 * g;
    for (int k = 0; k < 2; k++)
        set2(&h[k], db, g4x2(iq3xxs_grid[q[4 * k]], iq3xxs_grid[q[4 * k + 1]]), g4x2(iq3xxs_grid[q[4 * k + 2]], iq3xxs_grid[q[4 * k + 3]]),
             ks2(aux, 2 * k));
}
static IQ_INL void grp_iq3_s(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u8 qs[64]; u8 qh[8] (9th index bits); u8 signs[32]; u8 scales[4] }
    const uint8_t *qs = p + 2 + 8 * g, *sg = p + 74 + 4 * g, *sc = p + 106;
    const float db = d * (float)(1 + 2 * ((sc[g / 2] >> (4 * (g % 2))) & 15));
    const unsigned hb = p[66 + g];   // the 9th bits of this group's 8 indices
    for (int k = 0; k < 2; k++) {
        const int e = 4 * k;
        set2(&h[k], db, g4x2(iq3s_grid[qs[e] | ((hb >> e) & 1) << 8], iq3s_grid[qs[e + 1] | ((hb >> (e + 1)) & 1) << 8]),
             g4x2(iq3s_grid[qs[e + 2] | ((hb >> (e + 2)) & 1) << 8], iq3s_grid[qs[e + 3] | ((hb >> (e + 3)) & 1) << 8]), u16_at(sg + 2 * k));
    }
}
static IQ_INL void grp_iq1_s(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u8 qs[32]; u16 qh[8] (4 x 3 index bits, 3-bit scale, delta sign) }
    const uint16_t qh = u16_at(p + 34 + 2 * g);
    const float dl = d * (float)(2 * ((qh >> 12) & 7) + 1), delta = qh & 0x8000 ? -0.125f : 0.125f;
    const uint8_t *q = p + 2 + 4 * g;
    for (int k = 0; k < 2; k++)
        set1(&h[k], dl, iq1s_grid[q[2 * k] | (((qh >> (6 * k)) & 7) << 8)], iq1s_grid[q[2 * k + 1] | (((qh >> (6 * k + 3)) & 7) << 8)], delta, delta);
}
static IQ_INL void grp_iq1_m(const uint8_t *p, float d, int g, iq_half h[2]) {   // { u8 qs[32]; u8 qh[16] (2 x (3 index bits, delta sign)); u16 scales[4] }
    const uint8_t *qs = p, *qh = p + 32, *sc = p + 48;
    for (int k = 0; k < 2; k++) {   // weights 16m..16m+15: indices 2m, 2m+1, one 3-bit scale, qh byte m
        const int m = 2 * g + k, b = qh[m];
        const float dl = d * (float)(2 * ((u16_at(sc + 2 * (m / 4)) >> (3 * (m % 4))) & 7) + 1);
        set1(&h[k], dl, iq1s_grid[qs[2 * m] | ((b & 7) << 8)], iq1s_grid[qs[2 * m + 1] | (((b >> 4) & 7) << 8)],
             b & 8 ? -0.125f : 0.125f, b & 0x80 ? -0.125f : 0.125f);
    }
}

// The types: name, block bytes, IQ1 (values grid + shift), IQ1_M (d in the scale words).
#define IQ_TYPES(X) X(iq2_xxs, 66, 0, 0) X(iq2_xs, 74, 0, 0) X(iq2_s, 82, 0, 0) X(iq3_xxs, 98, 0, 0) X(iq3_s, 110, 0, 0) \
                    X(iq1_s, 50, 1, 0) X(iq1_m, 56, 1, 1)

// Portable widening: gguf-py's operations, one value at a time.
static IQ_INL void widen_half(const iq_half *h, int iq1, float *y) {
    for (int j = 0; j < 16; j++) {
        const uint8_t byte = (uint8_t)((j < 8 ? h->lo >> (8 * j) : h->hi >> (8 * (j - 8))) & 0xFF);
        if (iq1) { y[j] = h->scale * ((float)(int8_t)byte + (j < 8 ? h->d0 : h->d1)); continue; }
        const float v = h->scale * (float)byte;
        y[j] = (h->neg >> j) & 1 ? -v : v;
    }
}
#define IQ_PORTABLE(T, BYTES, IQ1, IQ1M)                                                                      \
static void widen_##T(const uint8_t *p, int64_t cols, float *out) {                                          \
    for (int64_t b = 0; b < cols / 256; b++, p += BYTES) {                                                    \
        const float d = pk_f16_to_f32(d_bits(IQ1M, p));                                                       \
        for (int g = 0; g < 8; g++) {                                                                         \
            iq_half h[2];                                                                                     \
            grp_##T(p, d, g, h);                                                                              \
            widen_half(&h[0], IQ1, out + b * 256 + 32 * g);                                                   \
            widen_half(&h[1], IQ1, out + b * 256 + 32 * g + 16);                                              \
        }                                                                                                     \
    }                                                                                                         \
}
IQ_TYPES(IQ_PORTABLE)

int pk_iq_dequant_scalar(int dtype, const uint8_t *p, int64_t cols, float *out) {
    pthread_once(&grids_once, init_grids);
    switch (dtype) {
    case PK_IQ2_XXS: widen_iq2_xxs(p, cols, out); return 1;
    case PK_IQ2_XS: widen_iq2_xs(p, cols, out); return 1;
    case PK_IQ2_S: widen_iq2_s(p, cols, out); return 1;
    case PK_IQ3_XXS: widen_iq3_xxs(p, cols, out); return 1;
    case PK_IQ3_S: widen_iq3_s(p, cols, out); return 1;
    case PK_IQ1_S: widen_iq1_s(p, cols, out); return 1;
    case PK_IQ1_M: widen_iq1_m(p, cols, out); return 1;
    default: return 0;
    }
}

// MARK: AVX-512
// The same f32 operations 16 at a time (a sign applied by flipping the sign bit, which is what a multiplication by -1
// does), so the same values as the portable code: the kernel tests compare every level with gguf-py. The widening
// stores a group's values; the matrix-vector product (T == 1) multiplies them into its sums at once instead of
// through a row buffer. (Building the grid indices in vector registers and fetching a group's entries with one
// gather was slower on Zen 4, whose gathers are microcoded; docs/quantization.md.)
#if defined(__x86_64__)
#include <immintrin.h>
#define TIQ __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,f16c")))

TIQ static IQ_INL __m512 v16(const iq_half *h, int iq1) {
    const __m128i g = _mm_set_epi64x((long long)h->hi, (long long)h->lo);
    if (iq1) {
        const __m512 delta = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(h->d0), _mm512_set1_ps(h->d1));
        return _mm512_mul_ps(_mm512_set1_ps(h->scale), _mm512_add_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(g)), delta));
    }
    const __m512i v = _mm512_castps_si512(_mm512_mul_ps(_mm512_set1_ps(h->scale), _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(g))));
    return _mm512_castsi512_ps(_mm512_mask_xor_epi32(v, (__mmask16)h->neg, v, _mm512_set1_epi32(INT32_MIN)));
}

// The widening (pk_dequant_row at the AVX-512 levels) and the product with one x (pk_matmul_rows at T == 1): 4
// accumulators per row, summed in a fixed order, so a row's result does not depend on the rows beside it.
#define IQ_512(T, BYTES, IQ1, IQ1M)                                                                           \
TIQ void pk_dequant_##T##_512(const void *row, int64_t cols, float *out) {                                   \
    pthread_once(&grids_once, init_grids);                                                                    \
    const uint8_t *p = (const uint8_t *)row;                                                                  \
    for (int64_t b = 0; b < cols / 256; b++, p += BYTES) {                                                    \
        const float d = _cvtsh_ss(d_bits(IQ1M, p));   /* exact, as pk_f16_to_f32 */                          \
        for (int g = 0; g < 8; g++) {                                                                         \
            iq_half h[2];                                                                                     \
            grp_##T(p, d, g, h);                                                                              \
            _mm512_storeu_ps(out + b * 256 + 32 * g, v16(&h[0], IQ1));                                        \
            _mm512_storeu_ps(out + b * 256 + 32 * g + 16, v16(&h[1], IQ1));                                   \
        }                                                                                                     \
    }                                                                                                         \
}                                                                                                             \
TIQ void pk_matvec_##T##_512(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) { \
    pthread_once(&grids_once, init_grids);                                                                    \
    for (int64_t r = r0; r < r1; r++) {                                                                       \
        const uint8_t *p = W + (size_t)r * rb;                                                                \
        __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};   \
        for (int64_t b = 0; b < cols / 256; b++, p += BYTES) {                                                \
            const float d = _cvtsh_ss(d_bits(IQ1M, p));                                                       \
            for (int g = 0; g < 8; g++) {                                                                     \
                iq_half h[2];                                                                                 \
                grp_##T(p, d, g, h);                                                                          \
                const float *xg = x + b * 256 + 32 * g;                                                       \
                a[g & 2] = _mm512_fmadd_ps(v16(&h[0], IQ1), _mm512_loadu_ps(xg), a[g & 2]);                   \
                a[(g & 2) + 1] = _mm512_fmadd_ps(v16(&h[1], IQ1), _mm512_loadu_ps(xg + 16), a[(g & 2) + 1]);  \
            }                                                                                                 \
        }                                                                                                     \
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));     \
    }                                                                                                         \
}
IQ_TYPES(IQ_512)
#endif
