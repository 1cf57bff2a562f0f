// The importance-matrix types of ggml (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M): each group of 8 (or 4)
// weights is an index into a fixed lattice grid (iq_grids.h, from gguf-py), with signs, a per-sub-block scale and
// (IQ1) a shift. Read here in their stored form and widened to f32 per row, with gguf-py's f32 operations in its
// order, so every value is bit-identical to `gguf.quants.dequantize`: the scale first (d * (0.5 + s) * 0.25 for
// IQ2, d * (0.5 + s) * 0.5 for IQ3_XXS, d * (1 + 2 s) for IQ3_S, d * (2 s + 1) for IQ1), then times the grid value,
// the sign a multiplication by +-1 (IQ1: times grid + delta). They run through the generic paths (convert rows, then
// f32 dot products or the f32 GEMM; x86 also a fused T == 1 product, "MARK: exact precision, x86"). Native precision
// ("MARK: native") is ggml_vec_dot_<type>_q8_K's arithmetic. The portable code reads a block through one decoder
// per type (`iq_half` below); x86 through the native form's vector unpacking (pro_*, gval_*) in both precisions.
#include "pk_internal.h"
#include "iq_grids.h"
#include <pthread.h>

static uint8_t iq2xxs_grid[256][8], iq2xs_grid[512][8], iq2s_grid[1024][8], iq3xxs_grid[256][4], iq3s_grid[512][4];
static int8_t iq1s_grid[2048][8];
#if defined(__x86_64__)
static uint8_t iq1w_grid[4096][8];   // IQ1's values as w = v + 9 = 8 (g + 1) + (shift > 0 ? 2 : 0), the shift's sign bit 11 of the index (x86: the native T <= 2 form, exact IQ1_M)
#endif

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
#if defined(__x86_64__)
    for (int i = 0; i < 4096; i++) for (int j = 0; j < 8; j++) iq1w_grid[i][j] = (uint8_t)(8 * (iq1s_grid[i & 2047][j] + 1) + (i & 2048 ? 0 : 2));
#endif
}
static pthread_once_t grids_once = PTHREAD_ONCE_INIT;

static inline uint16_t u16_at(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t u32_at(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t g8(const void *e) { uint64_t v; memcpy(&v, e, 8); return v; }
static inline uint64_t g4x2(const uint8_t *a, const uint8_t *b) { return (uint64_t)u32_at(a) | (uint64_t)u32_at(b) << 32; }

// Half a group (16 weights) as a block stores it, what every level widens: the scale; 16 grid values as two 8-byte
// entries (unsigned for IQ2 / IQ3, -1 / 0 / 1 for IQ1); for IQ2 / IQ3 which values are negated (bit j), for IQ1 the
// shift of each 8. Value j is scale * grid_j, negated where bit j is set, or scale * (grid_j + shift). `ls` is the
// integer 2 s + 1 of the stored scale field s that every type's scale is d times (times 1/8 for IQ2, 1/4 for
// IQ3_XXS), what the native dot products multiply by.
typedef struct { float scale; int ls; uint64_t lo, hi; unsigned neg, dneg; float d0, d1; } iq_half;   // dneg: IQ1 shifts' signs (bit 0: lo, 1: hi)
#define IQ_INL inline __attribute__((always_inline))

static IQ_INL unsigned ks2(uint32_t aux, int k) {   // sign bytes of chunks k, k + 1 from 7-bit fields of aux
    return pk_iq2_ksigns[(aux >> (7 * k)) & 127] | (unsigned)pk_iq2_ksigns[(aux >> (7 * k + 7)) & 127] << 8;
}
static IQ_INL void set2(iq_half *h, float scale, unsigned s, uint64_t lo, uint64_t hi, unsigned neg) {
    h->scale = scale; h->ls = (int)(2 * s + 1); h->lo = lo; h->hi = hi; h->neg = neg;
}
static IQ_INL void set1(iq_half *h, float scale, unsigned s, const int8_t *lo, const int8_t *hi, unsigned n0, unsigned n1) {
    h->scale = scale; h->ls = (int)(2 * s + 1); h->lo = g8(lo); h->hi = g8(hi);
    h->dneg = (n0 ? 1u : 0u) | (n1 ? 2u : 0u);
    h->d0 = n0 ? -0.125f : 0.125f; h->d1 = n1 ? -0.125f : 0.125f;
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
    for (int k = 0; k < 2; k++) set2(&h[k], db, aux >> 28, g8(iq2xxs_grid[idx[2 * k]]), g8(iq2xxs_grid[idx[2 * k + 1]]), ks2(aux, 2 * k));
}
static IQ_INL void grp_iq2_xs(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u16 qs[32] (9-bit index | 7-bit sign index); u8 scales[8] }
    const unsigned scb = p[66 + g];   // the two sub-blocks' scale nibbles
    const uint8_t *q = p + 2 + 8 * g;
    for (int k = 0; k < 2; k++) {   // sub-block 2g + k: 16 weights, one scale nibble
        const unsigned sc = (scb >> (4 * k)) & 15;
        const float db = d * (0.5f + (float)sc) * 0.25f;
        const uint16_t q0 = u16_at(q + 4 * k), q1 = u16_at(q + 4 * k + 2);
        set2(&h[k], db, sc, g8(iq2xs_grid[q0 & 511]), g8(iq2xs_grid[q1 & 511]), pk_iq2_ksigns[q0 >> 9] | (unsigned)pk_iq2_ksigns[q1 >> 9] << 8);
    }
}
static IQ_INL void grp_iq2_s(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u8 qs[32]; u8 signs[32]; u8 qh[8] (4 x 2 high bits); u8 scales[8] }
    // half k = sub-block 2g + k: indices 4g + 2k, 4g + 2k + 1 (their high bits: 4 bits of qh[g]), scale nibble k of
    // scales[g], sign bytes 4g + 2k, 4g + 2k + 1
    const unsigned qhb = p[66 + g], scb = p[74 + g];
    const uint8_t *qs = p + 2 + 4 * g, *sg = p + 34 + 4 * g;
    for (int k = 0; k < 2; k++) {
        const unsigned hb = qhb >> (4 * k), f = (scb >> (4 * k)) & 15;
        const float db = d * (0.5f + (float)f) * 0.25f;
        set2(&h[k], db, f, g8(iq2s_grid[qs[2 * k] | ((hb & 3) << 8)]), g8(iq2s_grid[qs[2 * k + 1] | (((hb >> 2) & 3) << 8)]), u16_at(sg + 2 * k));
    }
}
static IQ_INL void grp_iq3_xxs(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u8 qs[64] (4 weights each); u32 aux[8] (4 x 7 sign bits + 4-bit scale) }
    const uint32_t aux = u32_at(p + 66 + 4 * g);
    const float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
    const uint8_t *q = p + 2 + 8 * g;
    for (int k = 0; k < 2; k++)
        set2(&h[k], db, aux >> 28, g4x2(iq3xxs_grid[q[4 * k]], iq3xxs_grid[q[4 * k + 1]]), g4x2(iq3xxs_grid[q[4 * k + 2]], iq3xxs_grid[q[4 * k + 3]]),
             ks2(aux, 2 * k));
}
static IQ_INL void grp_iq3_s(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u8 qs[64]; u8 qh[8] (9th index bits); u8 signs[32]; u8 scales[4] }
    const uint8_t *qs = p + 2 + 8 * g, *sg = p + 74 + 4 * g, *sc = p + 106;
    const unsigned f = (sc[g / 2] >> (4 * (g % 2))) & 15;
    const float db = d * (float)(1 + 2 * f);
    const unsigned hb = p[66 + g];   // the 9th bits of this group's 8 indices
    for (int k = 0; k < 2; k++) {
        const int e = 4 * k;
        set2(&h[k], db, f, g4x2(iq3s_grid[qs[e] | ((hb >> e) & 1) << 8], iq3s_grid[qs[e + 1] | ((hb >> (e + 1)) & 1) << 8]),
             g4x2(iq3s_grid[qs[e + 2] | ((hb >> (e + 2)) & 1) << 8], iq3s_grid[qs[e + 3] | ((hb >> (e + 3)) & 1) << 8]), u16_at(sg + 2 * k));
    }
}
static IQ_INL void grp_iq1_s(const uint8_t *p, float d, int g, iq_half h[2]) {   // { f16 d; u8 qs[32]; u16 qh[8] (4 x 3 index bits, 3-bit scale, delta sign) }
    const uint16_t qh = u16_at(p + 34 + 2 * g);
    const unsigned f = (qh >> 12) & 7;
    const float dl = d * (float)(2 * f + 1);
    const unsigned neg = qh & 0x8000;
    const uint8_t *q = p + 2 + 4 * g;
    for (int k = 0; k < 2; k++)
        set1(&h[k], dl, f, iq1s_grid[q[2 * k] | (((qh >> (6 * k)) & 7) << 8)], iq1s_grid[q[2 * k + 1] | (((qh >> (6 * k + 3)) & 7) << 8)], neg, neg);
}
static IQ_INL void grp_iq1_m(const uint8_t *p, float d, int g, iq_half h[2]) {   // { u8 qs[32]; u8 qh[16] (2 x (3 index bits, delta sign)); u16 scales[4] }
    // half k = weights 16m..16m+15 (m = 2g + k): indices 2m, 2m+1, qh byte m, the 3-bit scale m of the scale words
    const unsigned sc6 = (unsigned)(u16_at(p + 48 + 2 * (g / 2)) >> (6 * (g % 2))), qh2 = u16_at(p + 32 + 2 * g);
    const uint8_t *qs = p + 4 * g;
    for (int k = 0; k < 2; k++) {
        const unsigned b = (qh2 >> (8 * k)) & 0xFF, f = (sc6 >> (3 * k)) & 7;
        const float dl = d * (float)(2 * f + 1);
        set1(&h[k], dl, f, iq1s_grid[qs[2 * k] | ((b & 7) << 8)], iq1s_grid[qs[2 * k + 1] | (((b >> 4) & 7) << 8)],
             b & 8, b & 0x80);
    }
}

// The types: name, block bytes, IQ1 (values grid + shift), IQ1_M (d in the scale words), PK code. Per-type function
// tables are indexed by code - PK_IQ2_XXS (IQ_AT).
#define IQ_TYPES(X) X(iq2_xxs, 66, 0, 0, PK_IQ2_XXS) X(iq2_xs, 74, 0, 0, PK_IQ2_XS) X(iq2_s, 82, 0, 0, PK_IQ2_S) \
                    X(iq3_xxs, 98, 0, 0, PK_IQ3_XXS) X(iq3_s, 110, 0, 0, PK_IQ3_S) X(iq1_s, 50, 1, 0, PK_IQ1_S)     \
                    X(iq1_m, 56, 1, 1, PK_IQ1_M)
#define IQ_AT(CODE) [(CODE) - PK_IQ2_XXS]

// Portable widening: gguf-py's operations, one value at a time.
static IQ_INL void widen_half(const iq_half *h, int iq1, float *y) {
    for (int j = 0; j < 16; j++) {
        const uint8_t byte = (uint8_t)((j < 8 ? h->lo >> (8 * j) : h->hi >> (8 * (j - 8))) & 0xFF);
        if (iq1) { y[j] = h->scale * ((float)(int8_t)byte + (j < 8 ? h->d0 : h->d1)); continue; }
        const float v = h->scale * (float)byte;
        y[j] = (h->neg >> j) & 1 ? -v : v;
    }
}
#define IQ_PORTABLE(T, BYTES, IQ1, IQ1M, C)                                                                   \
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

#define IQ_WIDEN_FN(T, BYTES, IQ1, IQ1M, CODE) IQ_AT(CODE) = widen_##T,
static void (*const widen_fns[])(const uint8_t *, int64_t, float *) = { IQ_TYPES(IQ_WIDEN_FN) };

int pk_iq_dequant_scalar(int dtype, const uint8_t *p, int64_t cols, float *out) {
    if (!PK_IS_LATTICE(dtype)) return 0;
    pthread_once(&grids_once, init_grids);
    widen_fns[dtype - PK_IQ2_XXS](p, cols, out);
    return 1;
}

// MARK: native precision
// ggml_vec_dot_<type>_q8_K's arithmetic on the token's block_q8_K (kernels_native_k.c prepares it): per super-block
// the exact integer sum I = sum over halves of ls * sum(grid * sign * q8), then in f32, as ggml's generic code
// orders it: sumf += (d_w d_x) I, and at the end sumf / 8 (IQ2), sumf / 4 (IQ3_XXS). IQ1: ggml adds
// (d_w d_x) (I + I1 / 8) with I1 = sum of ls * shift sign * sum(q8) (shifts +-1/8); here I' = 8 I + I1 (the values
// 8 (grid + shift), |I'| < 256 * 15 * 9 * 127 < 2^24), so (float) I' / 8 = I + I1 / 8 exactly, and ggml's sumf
// equals ours divided by 8 at the end (a power of two: the same roundings). Separate statements (and
// -ffp-contract=off): no FMA, so every level gives the same bits, also kernels_native_k.c's VNNI tiles, which
// read the blocks through pk_iq_block_u8.
// Three forms: on x86 one or two tokens decode each group into registers (nrow_*), and prompts go to
// kernels_native_k.c's tiles (16 rows with VNNI, 8 with AVX2), which read blocks through pk_iq_block_u8; the portable
// and NEON levels decode a row 16 super-blocks at a time into signed bytes v (grid * sign; IQ1: 8 g +- 1) and each
// half's ls, then run every token against the chunk (ndot_*), so a prompt decodes each row once.
enum { IQN_CHUNK = 16 };   // super-blocks decoded at once: 4 KiB of v, beside a token's 4 KiB of q8

typedef struct {
    int8_t v[IQN_CHUNK * 256] __attribute__((aligned(64)));
    int16_t ls[IQN_CHUNK * 16][8] __attribute__((aligned(64)));   // half h's ls, 8 times (the madd operand)
    float dw[IQN_CHUNK];
} iqn_rows;

// 8 grid values g (1..62: never 0) negated where bit j of `neg` is set, as signed bytes: the bits spread to whole
// bytes (bit j of the byte broadcast and tested; the byte's high bit, set exactly where the tested bit is, widened
// to 0xFF), then (g ^ m) + (m & 1) per byte, which cannot carry: 255 - g + 1 <= 255.
static IQ_INL uint64_t sv_signed(uint64_t g, unsigned neg) {
    const uint64_t t = ((uint64_t)(neg & 0xFF) * 0x0101010101010101ULL) & 0x8040201008040201ULL;
    const uint64_t hi = (((t & 0x7F7F7F7F7F7F7F7FULL) + 0x7F7F7F7F7F7F7F7FULL) | t) & 0x8080808080808080ULL;
    const uint64_t m = (hi >> 7) * 0xFF;
    return (g ^ m) + (m & 0x0101010101010101ULL);
}
// IQ1: 8 grid values -1 / 0 / 1 (int8) and the shift's sign as the bytes 8 g + 1 or 8 g - 1: 8 g per byte by a
// shift within the byte, then a byte-wise addition of +1 or -1 (0xFF) with the carries kept inside each byte.
static IQ_INL uint64_t sv_iq1(uint64_t g, unsigned shift_negative) {
    const uint64_t a = (g << 3) & 0xF8F8F8F8F8F8F8F8ULL;
    const uint64_t b = shift_negative ? 0xFFFFFFFFFFFFFFFFULL : 0x0101010101010101ULL;
    return ((a & 0x7F7F7F7F7F7F7F7FULL) + (b & 0x7F7F7F7F7F7F7F7FULL)) ^ ((a ^ b) & 0x8080808080808080ULL);
}

// One super-block as signed values v[256], its 16 halves' ls and the f16 bits of d.
#define IQ_SV(T, BYTES, IQ1, IQ1M, C)                                                                         \
static void sv_##T(const uint8_t *p, int8_t *v, int32_t *ls, uint16_t *dbits) {                              \
    *dbits = d_bits(IQ1M, p);                                                                                 \
    for (int g = 0; g < 8; g++) {                                                                             \
        iq_half h[2];                                                                                         \
        grp_##T(p, 0.f, g, h);                                                                                \
        for (int k = 0; k < 2; k++) {                                                                         \
            uint64_t e[2];                                                                                    \
            if (IQ1) { e[0] = sv_iq1(h[k].lo, h[k].dneg & 1); e[1] = sv_iq1(h[k].hi, h[k].dneg & 2); }       \
            else { e[0] = sv_signed(h[k].lo, h[k].neg); e[1] = sv_signed(h[k].hi, h[k].neg >> 8); }          \
            memcpy(v + 32 * g + 16 * k, e, 16);                                                               \
            ls[2 * g + k] = h[k].ls;                                                                          \
        }                                                                                                     \
    }                                                                                                         \
}
IQ_TYPES(IQ_SV)

#define IQ_SV_FN(T, BYTES, IQ1, IQ1M, CODE) IQ_AT(CODE) = sv_##T,
static void (*const sv_fns[])(const uint8_t *, int8_t *, int32_t *, uint16_t *) = { IQ_TYPES(IQ_SV_FN) };
static void iq_block_sv(int dtype, const uint8_t *blk, int8_t *v, int32_t *ls, uint16_t *dbits) {
    sv_fns[dtype - PK_IQ2_XXS](blk, v, ls, dbits);
}

// nbc super-blocks of a row (bytes per block `bytes`) into o: v, ls, d.
static void ndecode(int dtype, const uint8_t *p, size_t bytes, int64_t nbc, iqn_rows *o) {
    for (int64_t b = 0; b < nbc; b++, p += bytes) {
        int32_t ls[16];
        uint16_t h;
        iq_block_sv(dtype, p, o->v + 256 * b, ls, &h);
        o->dw[b] = pk_f16_to_f32(h);
        for (int j = 0; j < 16; j++) for (int i = 0; i < 8; i++) o->ls[16 * b + j][i] = (int16_t)ls[j];
    }
}

// isum[b] = the exact integer of super-block b of the chunk against q8 (the token's values from the chunk's first
// column). The reference for every level.
static void ndot_portable(const iqn_rows *o, int64_t nbc, const int8_t *q8, int32_t *isum) {
    for (int64_t b = 0; b < nbc; b++) {
        int32_t s = 0;
        for (int j = 0; j < 16; j++) {
            int32_t t = 0;
            for (int i = 0; i < 16; i++) t += o->v[256 * b + 16 * j + i] * q8[256 * b + 16 * j + i];
            s += o->ls[16 * b + j][0] * t;
        }
        isum[b] = s;
    }
}

#if defined(__aarch64__)
#include <arm_neon.h>
// The same integers on NEON: each half's 16 v times its 16 q (sdot, or vmull + vpadal without the dot-product
// extension; |v q| <= 62 * 127, so a pair fits int16), times the half's ls.
static void ndot_neon(const iqn_rows *o, int64_t nbc, const int8_t *q8, int32_t *isum) {
    for (int64_t b = 0; b < nbc; b++) {
        int32x4_t acc = vdupq_n_s32(0);
        for (int j = 0; j < 16; j++) {
            const int32x4_t t = pk_dot16_neon(vdupq_n_s32(0), vld1q_s8(o->v + 256 * b + 16 * j), vld1q_s8(q8 + 256 * b + 16 * j));
            acc = vmlaq_n_s32(acc, t, o->ls[16 * b + j][0]);
        }
        isum[b] = vaddvq_s32(acc);
    }
}

// Exact precision on NEON: a super-block decoded by sv_* (the native form's signed values v and ls), then gguf-py's
// f32 operations 4 at a time, as the x86 kernels ("MARK: exact precision, x86"): the half's scale from ls (0.5 + s =
// ls / 2; IQ1: (d ls) / 8, exact) times v, -(s g) = s (-g) and IQ1's s (g + delta) = (s / 8) (8 g +- 1) exactly, so
// every value is the portable widening's. Checked under qemu by Scripts/neon/test_neon.c, untimed.
static IQ_INL void iqx_scales_neon(int code, float d, const int32_t *ls, float sc[16]) {
    for (int h = 0; h < 16; h++) {
        const float l = (float)ls[h];
        if (code == PK_IQ3_S) sc[h] = d * l;
        else if (code == PK_IQ1_S || code == PK_IQ1_M) sc[h] = d * l * 0.125f;
        else sc[h] = d * (l * 0.5f) * (code == PK_IQ3_XXS ? 0.5f : 0.25f);
    }
}
// The 16 values of half h of v as f32 weights, 4 vectors.
static IQ_INL void iqx_w_neon(const int8_t *v, float scale, float32x4_t w[4]) {
    const int8x16_t b = vld1q_s8(v);
    const int16x8_t lo = vmovl_s8(vget_low_s8(b)), hi = vmovl_high_s8(b);
    w[0] = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), scale);
    w[1] = vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), scale);
    w[2] = vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), scale);
    w[3] = vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), scale);
}
// Block p decoded: v[256] and the 16 halves' f32 scales sc.
#define IQX_BLOCK_NEON(T, C)                                                                                  \
    int32_t ls[16];                                                                                           \
    uint16_t db;                                                                                              \
    sv_##T(p, v, ls, &db);                                                                                    \
    iqx_scales_neon(C, pk_f16_to_f32(db), ls, sc);
#define IQ_XNEON(T, BYTES, IQ1, IQ1M, C)                                                                      \
void pk_dequant_##T##_neon(const void *row, int64_t cols, float *out) {                                       \
    pthread_once(&grids_once, init_grids);                                                                    \
    const uint8_t *p = (const uint8_t *)row;                                                                  \
    int8_t v[256];                                                                                            \
    float sc[16];                                                                                             \
    for (int64_t b = 0; b < cols / 256; b++, p += BYTES, out += 256) {                                        \
        IQX_BLOCK_NEON(T, C)                                                                                  \
        for (int h = 0; h < 16; h++) {                                                                        \
            float32x4_t w[4];                                                                                 \
            iqx_w_neon(v + 16 * h, sc[h], w);                                                                 \
            for (int k = 0; k < 4; k++) vst1q_f32(out + 16 * h + 4 * k, w[k]);                                \
        }                                                                                                     \
    }                                                                                                         \
}                                                                                                             \
void pk_matvec_##T##_neon(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {\
    pthread_once(&grids_once, init_grids);                                                                    \
    int8_t v[256];                                                                                            \
    float sc[16];                                                                                             \
    for (int64_t r = r0; r < r1; r++) {                                                                       \
        const uint8_t *p = W + (size_t)r * rb;                                                                \
        float32x4_t a[4] = {vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0)};                  \
        for (int64_t b = 0; b < cols / 256; b++, p += BYTES) {                                                \
            IQX_BLOCK_NEON(T, C)                                                                              \
            for (int h = 0; h < 16; h++) {                                                                    \
                float32x4_t w[4];                                                                             \
                iqx_w_neon(v + 16 * h, sc[h], w);                                                             \
                const float *xh = x + b * 256 + 16 * h;                                                       \
                for (int k = 0; k < 4; k++) a[k] = vfmaq_f32(a[k], w[k], vld1q_f32(xh + 4 * k));              \
            }                                                                                                 \
        }                                                                                                     \
        y[r] = vaddvq_f32(vaddq_f32(vaddq_f32(a[0], a[1]), vaddq_f32(a[2], a[3])));                           \
    }                                                                                                         \
}
IQ_TYPES(IQ_XNEON)
#endif

#if defined(__x86_64__)
#include <immintrin.h>
#define TIQ2 __attribute__((target("avx2,f16c")))
#define TIQ5 __attribute__((target("avx2,avx512f,avx512bw,avx512vl")))
TIQ2 static IQ_INL int32_t iqn_hsum(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}
// The T <= 2 form: one row against one token, each group of 32 weights decoded into registers (no decoded chunk in
// memory), the integers of ndot_* and the f32 epilogue of pk_native_iq_matmul, so the same bits. Decode steps are
// bound by the instructions per group here, not by memory (a 1B model's IQ2 decode reads 5-8 GB/s), so the fields
// a block keeps in odd places (sign fields and their parity bits, 9- and 10-bit grid indices, 3- and 4-bit scales,
// IQ1's shift signs) are unpacked for the whole super-block at once in vector registers (pro_*, AVX2 operations,
// so both levels share them), and each group then needs only its grid loads, the negation (AVX-512BW: one masked
// subtract; AVX2: the sign bits spread to bytes) and maddubs / madd. IQ1 takes the unsigned values
// w = v + 9 = 8 (g + 1) + (shift > 0 ? 2 : 0) from one table indexed by the grid index and the shift's sign, whose
// products exceed those of v = 8 g +- 1 by 9 sum(q) per 16: taken back per super-block as 9 sum_h ls_h bsum_h, so
// the integer is 8 I + I1. (A 2048-entry table and an OR of the shift per entry: IQ1_M 10% slower, IQ1_S the same.)
typedef struct {
    uint16_t idx[64];   // grid indices with their high bits, in entry order (the types that split them)
    uint32_t neg[8];    // group g's 32 negation bits (sign bytes of ggml's ksigns form: 7 stored bits + parity)
    uint32_t lsw[8];    // group g's two ls as int16 (first half | second half << 16); IQ1: the 16 halves' ls in order
} iqn_pro;

TIQ2 static IQ_INL __m256i iqn_parity(__m256i t) {   // bytes < 128: bit 7 set to the parity of the low 7 bits
    __m256i p = _mm256_xor_si256(t, _mm256_srli_epi32(t, 4));   // bit 0 of each byte folds its own bits only
    p = _mm256_xor_si256(p, _mm256_srli_epi32(p, 2));
    p = _mm256_xor_si256(p, _mm256_srli_epi32(p, 1));
    return _mm256_or_si256(t, _mm256_slli_epi32(_mm256_and_si256(p, _mm256_set1_epi8(1)), 7));
}
// IQ2_XXS / IQ3_XXS: 8 words of 4 x 7 sign bits and a 4-bit scale (one per group) -> negation bytes and ls pairs.
TIQ2 static IQ_INL void pro_aux(__m256i aux, iqn_pro *o) {
    __m256i t = _mm256_and_si256(aux, _mm256_set1_epi32(0x7F));
    t = _mm256_or_si256(t, _mm256_and_si256(_mm256_slli_epi32(aux, 1), _mm256_set1_epi32(0x7F00)));
    t = _mm256_or_si256(t, _mm256_and_si256(_mm256_slli_epi32(aux, 2), _mm256_set1_epi32(0x7F0000)));
    t = _mm256_or_si256(t, _mm256_and_si256(_mm256_slli_epi32(aux, 3), _mm256_set1_epi32(0x7F000000)));
    _mm256_storeu_si256((__m256i *)o->neg, iqn_parity(t));
    const __m256i l = _mm256_add_epi32(_mm256_slli_epi32(_mm256_srli_epi32(aux, 28), 1), _mm256_set1_epi32(1));
    _mm256_storeu_si256((__m256i *)o->lsw, _mm256_or_si256(l, _mm256_slli_epi32(l, 16)));
}
// IQ2_XS / IQ2_S: 8 bytes of two scale nibbles (one byte per group) -> ls pairs.
TIQ2 static IQ_INL void pro_nibble_ls(const uint8_t *sc, iqn_pro *o) {
    const __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)sc)), one = _mm256_set1_epi32(1);
    const __m256i lo = _mm256_add_epi32(_mm256_slli_epi32(_mm256_and_si256(x, _mm256_set1_epi32(15)), 1), one);
    const __m256i hi = _mm256_add_epi32(_mm256_slli_epi32(_mm256_srli_epi32(x, 4), 1), one);
    _mm256_storeu_si256((__m256i *)o->lsw, _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16)));
}
TIQ2 static IQ_INL void pro_iq2_xxs(const uint8_t *p, iqn_pro *o) {   // the aux words: odd dwords of p + 2
    const __m256 a = _mm256_loadu_ps((const float *)(p + 2)), b = _mm256_loadu_ps((const float *)(p + 34));
    pro_aux(_mm256_permute4x64_epi64(_mm256_castps_si256(_mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)), o);
}
TIQ2 static IQ_INL void pro_iq2_xs(const uint8_t *p, iqn_pro *o) {   // qs: 9-bit index | 7 sign bits << 9
    const __m256i a = _mm256_loadu_si256((const __m256i *)(p + 2)), b = _mm256_loadu_si256((const __m256i *)(p + 34));
    const __m256i m = _mm256_set1_epi16(511);
    _mm256_storeu_si256((__m256i *)o->idx, _mm256_and_si256(a, m));
    _mm256_storeu_si256((__m256i *)(o->idx + 16), _mm256_and_si256(b, m));
    const __m256i s = _mm256_packus_epi16(_mm256_srli_epi16(a, 9), _mm256_srli_epi16(b, 9));   // lanes interleave a, b
    _mm256_storeu_si256((__m256i *)o->neg, iqn_parity(_mm256_permute4x64_epi64(s, _MM_SHUFFLE(3, 1, 2, 0))));
    pro_nibble_ls(p + 66, o);
}
// IQ2_S / IQ3_S: `chunks` x 16 grid indices qs[e] | high bits << 8, the high bits packed in the block's 8 qh bytes:
// word e of chunk c takes the qh byte `sh` picks once qh is shifted right by c * `step` bits, times `mul` (the
// left shift that puts its field at bit 8), masked to the field.
TIQ2 static IQ_INL void pro_high_indices(const uint8_t *qs, const uint8_t *qh8, int chunks, int step, __m256i sh, __m256i mul,
                                         __m256i field, uint16_t *idx) {
    const __m256i qh = _mm256_set1_epi64x((long long)g8(qh8));
    for (int c = 0; c < chunks; c++) {
        const __m256i h = _mm256_shuffle_epi8(_mm256_srli_epi64(qh, step * c), sh);
        const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(qs + 16 * c)));
        _mm256_storeu_si256((__m256i *)(idx + 16 * c), _mm256_or_si256(v, _mm256_and_si256(_mm256_mullo_epi16(h, mul), field)));
    }
}
TIQ2 static IQ_INL void pro_iq2_s(const uint8_t *p, iqn_pro *o) {   // index e: qs[e] | (qh[e / 4] >> 2 (e % 4) & 3) << 8
    pro_high_indices(p + 2, p + 66, 2, 32,
                     _mm256_setr_epi8(0, -1, 0, -1, 0, -1, 0, -1, 1, -1, 1, -1, 1, -1, 1, -1,
                                      2, -1, 2, -1, 2, -1, 2, -1, 3, -1, 3, -1, 3, -1, 3, -1),
                     _mm256_setr_epi16(256, 64, 16, 4, 256, 64, 16, 4, 256, 64, 16, 4, 256, 64, 16, 4), _mm256_set1_epi16(0x300), o->idx);
    pro_nibble_ls(p + 74, o);
}
TIQ2 static IQ_INL void pro_iq3_xxs(const uint8_t *p, iqn_pro *o) { pro_aux(_mm256_loadu_si256((const __m256i *)(p + 66)), o); }
TIQ2 static IQ_INL void pro_iq3_s(const uint8_t *p, iqn_pro *o) {   // index e: qs[e] | (qh[e / 8] >> (e % 8) & 1) << 8
    pro_high_indices(p + 2, p + 66, 4, 16,
                     _mm256_setr_epi8(0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1, 0, -1,
                                      1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1),
                     _mm256_setr_epi16(256, 128, 64, 32, 16, 8, 4, 2, 256, 128, 64, 32, 16, 8, 4, 2), _mm256_set1_epi16(0x100), o->idx);
    const __m256i f = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32((int)u32_at(p + 106)), _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                                       _mm256_set1_epi32(15));
    const __m256i l = _mm256_add_epi32(_mm256_slli_epi32(f, 1), _mm256_set1_epi32(1));
    _mm256_storeu_si256((__m256i *)o->lsw, _mm256_or_si256(l, _mm256_slli_epi32(l, 16)));
}
TIQ2 static IQ_INL void pro_iq1_s(const uint8_t *p, iqn_pro *o) {   // index e: qs[e] | (qh[e / 4] >> 3 (e % 4) & 7) << 8
    const __m256i qh = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(p + 34)));
    const __m256i lo = _mm256_setr_epi16(256, 32, 4, 0, 256, 32, 4, 0, 256, 32, 4, 0, 256, 32, 4, 0);
    const __m256i hi = _mm256_setr_epi16(0, 0, 0, -32768, 0, 0, 0, -32768, 0, 0, 0, -32768, 0, 0, 0, -32768);   // >> 1
    for (int c = 0; c < 2; c++) {   // word e of chunk c <- qh word 4 c + e / 4
        const __m256i sh = _mm256_add_epi8(_mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3,
                                                            4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7), _mm256_set1_epi8((char)(8 * c)));
        const __m256i h = _mm256_shuffle_epi8(qh, sh);
        const __m256i f = _mm256_and_si256(_mm256_or_si256(_mm256_mullo_epi16(h, lo), _mm256_mulhi_epu16(h, hi)), _mm256_set1_epi16(0x700));
        const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 2 + 16 * c)));
        _mm256_storeu_si256((__m256i *)(o->idx + 16 * c), _mm256_or_si256(v, f));
    }
    const __m256i x = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 34)));
    const __m256i l = _mm256_add_epi32(_mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(x, 12), _mm256_set1_epi32(7)), 1), _mm256_set1_epi32(1));
    _mm256_storeu_si256((__m256i *)o->lsw, _mm256_or_si256(l, _mm256_slli_epi32(l, 16)));
}
TIQ2 static IQ_INL void pro_iq1_m(const uint8_t *p, iqn_pro *o) {   // index e: qs[e] | (qh[e / 2] >> 4 (e % 2) & 15) << 8 (with the sign)
    const __m128i q = _mm_loadu_si128((const __m128i *)(p + 32));
    const __m256i qh = _mm256_broadcastsi128_si256(q);
    const __m256i mul = _mm256_setr_epi16(256, 16, 256, 16, 256, 16, 256, 16, 256, 16, 256, 16, 256, 16, 256, 16);
    for (int c = 0; c < 2; c++) {   // word e of chunk c <- qh byte 8 c + e / 2
        const __m256i sh = _mm256_add_epi8(_mm256_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2, -1, 3, -1, 3, -1,
                                                            4, -1, 4, -1, 5, -1, 5, -1, 6, -1, 6, -1, 7, -1, 7, -1),
                                           _mm256_setr_epi8(8 * c, 0, 8 * c, 0, 8 * c, 0, 8 * c, 0, 8 * c, 0, 8 * c, 0, 8 * c, 0, 8 * c, 0,
                                                            8 * c, 0, 8 * c, 0, 8 * c, 0, 8 * c, 0, 8 * c, 0, 8 * c, 0, 8 * c, 0, 8 * c, 0));
        const __m256i h = _mm256_and_si256(_mm256_mullo_epi16(_mm256_shuffle_epi8(qh, sh), mul), _mm256_set1_epi16(0xF00));
        const __m256i v = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(p + 16 * c)));
        _mm256_storeu_si256((__m256i *)(o->idx + 16 * c), _mm256_or_si256(v, h));
    }
    // ls of half m: scale word m / 4 >> 3 (m % 4) & 7
    const __m256i w = _mm256_shuffle_epi8(_mm256_set1_epi64x((long long)g8(p + 48)),
                                          _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3,
                                                           4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7));
    const __m256i f = _mm256_or_si256(_mm256_mullo_epi16(w, _mm256_setr_epi16(1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0)),
                                      _mm256_mulhi_epu16(w, _mm256_setr_epi16(0, 8192, 1024, 128, 0, 8192, 1024, 128, 0, 8192, 1024, 128, 0, 8192, 1024, 128)));
    _mm256_storeu_si256((__m256i *)o->lsw, _mm256_add_epi16(_mm256_slli_epi16(_mm256_and_si256(f, _mm256_set1_epi16(7)), 1), _mm256_set1_epi16(1)));
}

// Group g's 32 values as bytes (IQ2 / IQ3: unsigned grid values, IQ1: w) and its negation bits.
TIQ2 static IQ_INL __m256i gv4(const uint8_t (*G)[8], unsigned a, unsigned b, unsigned c, unsigned d) {
    return _mm256_set_epi64x((long long)g8(G[d]), (long long)g8(G[c]), (long long)g8(G[b]), (long long)g8(G[a]));
}
TIQ2 static IQ_INL __m256i gv8(const uint8_t (*G)[4], const unsigned i[8]) {
    return _mm256_setr_epi32((int)u32_at(G[i[0]]), (int)u32_at(G[i[1]]), (int)u32_at(G[i[2]]), (int)u32_at(G[i[3]]),
                             (int)u32_at(G[i[4]]), (int)u32_at(G[i[5]]), (int)u32_at(G[i[6]]), (int)u32_at(G[i[7]]));
}
TIQ2 static IQ_INL __m256i gval_iq2_xxs(const uint8_t *p, const iqn_pro *o, int g, uint32_t *neg) {
    const uint8_t *ix = p + 2 + 8 * g;
    *neg = o->neg[g];
    return gv4(iq2xxs_grid, ix[0], ix[1], ix[2], ix[3]);
}
TIQ2 static IQ_INL __m256i gval_iq2_xs(const uint8_t *p, const iqn_pro *o, int g, uint32_t *neg) {
    (void)p; *neg = o->neg[g];
    const uint16_t *ix = o->idx + 4 * g;
    return gv4(iq2xs_grid, ix[0], ix[1], ix[2], ix[3]);
}
TIQ2 static IQ_INL __m256i gval_iq2_s(const uint8_t *p, const iqn_pro *o, int g, uint32_t *neg) {
    *neg = u32_at(p + 34 + 4 * g);
    const uint16_t *ix = o->idx + 4 * g;
    return gv4(iq2s_grid, ix[0], ix[1], ix[2], ix[3]);
}
TIQ2 static IQ_INL __m256i gval_iq3_xxs(const uint8_t *p, const iqn_pro *o, int g, uint32_t *neg) {
    const uint8_t *q = p + 2 + 8 * g;
    *neg = o->neg[g];
    const unsigned i[8] = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]};
    return gv8(iq3xxs_grid, i);
}
TIQ2 static IQ_INL __m256i gval_iq3_s(const uint8_t *p, const iqn_pro *o, int g, uint32_t *neg) {
    *neg = u32_at(p + 74 + 4 * g);
    const uint16_t *q = o->idx + 8 * g;
    const unsigned i[8] = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]};
    return gv8(iq3s_grid, i);
}
// IQ1_S: w' = 8 (g + 1), the table's half with the sign bit set: its shift's sign is the whole group's, so the
// shift goes into the per-block correction with the 9 (IQ_NROW) and the grid read is 16 KiB, not 32 (AVX2 0.144
// -> 0.133, AVX-512 0.138 -> 0.129 ms per 1024 rows)
TIQ2 static IQ_INL __m256i gval_iq1_s(const uint8_t *p, const iqn_pro *o, int g, uint32_t *neg) {
    (void)p; *neg = 0;
    const uint16_t *ix = o->idx + 4 * g;
    return gv4(iq1w_grid + 2048, ix[0], ix[1], ix[2], ix[3]);
}
TIQ2 static IQ_INL __m256i gval_iq1_m(const uint8_t *p, const iqn_pro *o, int g, uint32_t *neg) {
    (void)p; *neg = 0;
    const uint16_t *ix = o->idx + 4 * g;   // with the shift's sign as bit 11
    return gv4(iq1w_grid, ix[0], ix[1], ix[2], ix[3]);
}
// The native T <= 2 rows put some types' indices together in scalar registers from the block's bytes instead
// (gvaln_*): there the scalar ports are otherwise idle, where indices unpacked in vectors cost two vector operations
// each to extract (`vpextrw`). The empty asm keeps them scalar: clang's SLP vectorizer otherwise packs the four
// chains into vectors and extracts them again. One row of 2048 against one token, ms per 1024 rows, AVX2 / AVX-512:
// IQ2_XS 0.197 -> 0.142 / 0.129 -> 0.115, IQ2_S 0.185 -> 0.167 / (0.129 -> 0.134: not at AVX-512), IQ1_M 0.144 ->
// 0.131 / 0.132 -> 0.120 (ggml's AVX2 build 0.137, 0.130, 0.138). The exact kernels keep gval_* (scalar indices
// made their AVX-512 form 2-18% slower); IQ2_XXS / IQ3_XXS read whole index bytes already; IQ3_S (8 indices a
// group) and IQ1_S were slower so.
// gv4's loads with 64-bit indices (through gv4's unsigned ones each index took a zero-extension again; gv4 itself
// keeps them: 64-bit there changed the exact kernels' code)
TIQ2 static IQ_INL __m256i gv4s(const uint8_t (*G)[8], size_t a, size_t b, size_t c, size_t d) {
    __asm__("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d));
    return _mm256_set_epi64x((long long)g8(G[d]), (long long)g8(G[c]), (long long)g8(G[b]), (long long)g8(G[a]));
}
TIQ2 static IQ_INL __m256i gvaln_iq2_xs(const uint8_t *p, const iqn_pro *o, int g, uint32_t *neg) {
    *neg = o->neg[g];
    const uint8_t *q = p + 2 + 8 * g;   // qs: 9-bit index | 7 sign bits << 9
    return gv4s(iq2xs_grid, u16_at(q) & 511, u16_at(q + 2) & 511, u16_at(q + 4) & 511, u16_at(q + 6) & 511);
}
TIQ2 static IQ_INL __m256i gvaln_iq2_s(const uint8_t *p, const iqn_pro *o, int g, uint32_t *neg) {
    (void)o; *neg = u32_at(p + 34 + 4 * g);
    const uint8_t *q = p + 2 + 4 * g;   // index e: qs[e] | (qh[e / 4] >> 2 (e % 4) & 3) << 8
    const unsigned h = p[66 + g];
    return gv4s(iq2s_grid, q[0] | (h << 8 & 0x300), q[1] | (h << 6 & 0x300), q[2] | (h << 4 & 0x300), q[3] | (h << 2 & 0x300));
}
TIQ2 static IQ_INL __m256i gvaln_iq1_m(const uint8_t *p, const iqn_pro *o, int g, uint32_t *neg) {
    (void)o; *neg = 0;
    const uint8_t *q = p + 4 * g;   // index e: qs[e] | (qh[e / 2] >> 4 (e % 2) & 15) << 8 (3 index bits and the shift's sign)
    const unsigned h0 = p[32 + 2 * g], h1 = p[33 + 2 * g];
    return gv4s(iq1w_grid, q[0] | (h0 << 8 & 0xF00), q[1] | (h0 << 4 & 0xF00), q[2] | (h1 << 8 & 0xF00), q[3] | (h1 << 4 & 0xF00));
}
#define gvaln_iq2_xxs gval_iq2_xxs
#define gvaln_iq3_xxs gval_iq3_xxs
#define gvaln_iq3_s gval_iq3_s
#define gvaln_iq1_s gval_iq1_s
// AVX-512: IQ2_S keeps its vector indices (0.129 against 0.134 ms)
#define gv512_iq2_xxs gval_iq2_xxs
#define gv512_iq2_xs gvaln_iq2_xs
#define gv512_iq2_s gval_iq2_s
#define gv512_iq3_xxs gval_iq3_xxs
#define gv512_iq3_s gval_iq3_s
#define gv512_iq1_s gval_iq1_s
#define gv512_iq1_m gvaln_iq1_m

// q negated under the groups' sign bits: AVX2 by spreading the bits to bytes, AVX-512BW by a masked subtract.
TIQ2 static IQ_INL __m256i iqn_negate_avx2(__m256i q, uint32_t bits) {
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                            2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i sel = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i m = _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread), sel), sel);
    return _mm256_sub_epi8(_mm256_xor_si256(q, m), m);
}
TIQ5 static IQ_INL __m256i iqn_negate_avx512(__m256i q, uint32_t bits) {
    return _mm256_mask_sub_epi8(q, (__mmask32)bits, _mm256_setzero_si256(), q);
}

// Group g's two ls as 8 + 8 int16 for madd. AVX2: the block's 16 ls put once in two lanes (first halves | second
// halves), then one in-lane byte shuffle per group; the broadcast of lsw[g] and a shuffle (clang makes it four
// shuffles) cost 0.148 against 0.135 ms per 1024 IQ2_S rows. AVX-512 keeps the broadcast: IQ3_S and IQ1_S were 3%
// slower with the per-block step.
TIQ2 static IQ_INL __m256i iqn_ls_avx2(const iqn_pro *o) {
    const __m256i lo_hi = _mm256_setr_epi8(0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15,
                                           0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15);
    return _mm256_permute4x64_epi64(_mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *)o->lsw), lo_hi), _MM_SHUFFLE(3, 1, 2, 0));
}
TIQ2 static IQ_INL __m256i iqn_lsg_avx2(__m256i lsv, const iqn_pro *o, int g) {
    (void)o; return _mm256_shuffle_epi8(lsv, _mm256_set1_epi16((short)(0x0100 + 0x0202 * g)));
}
TIQ2 static IQ_INL __m256i iqn_ls_512(const iqn_pro *o) { (void)o; return _mm256_setzero_si256(); }
TIQ2 static IQ_INL __m256i iqn_lsg_512(__m256i lsv, const iqn_pro *o, int g) {
    (void)lsv;
    return _mm256_shuffle_epi8(_mm256_set1_epi32((int)o->lsw[g]), _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                                                                                  2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3));
}
// Groups per unrolled iteration: all 8, but at AVX2 IQ2_XXS, IQ2_S, IQ3_S and IQ1_M run 4 (clang's schedule of the
// full unroll spills there: IQ2_S 0.148 -> 0.135, IQ3_S 0.213 -> 0.206 ms per 1024 rows)
#define IQ_DO_PRAGMA(x) _Pragma(#x)
#define IQ_UNROLL(n) IQ_DO_PRAGMA(clang loop unroll_count(n))
#define UNR_avx2_iq2_xxs 4
#define UNR_avx2_iq2_xs 8
#define UNR_avx2_iq2_s 4
#define UNR_avx2_iq3_xxs 8
#define UNR_avx2_iq3_s 4
#define UNR_avx2_iq1_s 8
#define UNR_avx2_iq1_m 4
#define UNR_512_iq2_xxs 8
#define UNR_512_iq2_xs 8
#define UNR_512_iq2_s 8
#define UNR_512_iq3_xxs 8
#define UNR_512_iq3_s 8
#define UNR_512_iq1_s 8
#define UNR_512_iq1_m 8
#define IQ_NROW(T, BYTES, IQ1, IQ1M, SFX, TGT, NEGATE, GV)                                                      \
TGT static float nrow_##T##_##SFX(const uint8_t *p, int64_t nb, const int8_t *q8, const float *dx, const int16_t *bs) { \
    float s = 0.f;                                                                                            \
    for (int64_t b = 0; b < nb; b++, p += BYTES, q8 += 256, bs += 16) {                                       \
        iqn_pro o;                                                                                            \
        pro_##T(p, &o);                                                                                       \
        const __m256i lsv = iqn_ls_##SFX(&o);                                                                 \
        __m256i acc = _mm256_setzero_si256();                                                                 \
        IQ_UNROLL(UNR_##SFX##_##T)                                                                            \
        for (int g = 0; g < 8; g++) {                                                                         \
            uint32_t neg;                                                                                     \
            const __m256i v = GV##T(p, &o, g, &neg);                                                          \
            __m256i q = _mm256_loadu_si256((const __m256i *)(q8 + 32 * g));                                   \
            if (!IQ1) q = NEGATE(q, neg);                                                                     \
            const __m256i l = iqn_lsg_##SFX(lsv, &o, g);                                                     \
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(v, q), l));                    \
        }                                                                                                     \
        if (IQ1M) {   /* minus 9 sum_h ls_h bsum_h: the + 9 that w carries */                                  \
            const __m256i c = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)o.lsw), _mm256_loadu_si256((const __m256i *)bs)); \
            acc = _mm256_sub_epi32(acc, _mm256_add_epi32(_mm256_slli_epi32(c, 3), c));                        \
        } else if (IQ1) {   /* IQ1_S: v = w' - 9 + (shift > 0 ? 2 : 0), so minus (7 or 9) ls_h bsum_h */         \
            const __m256i neg16 = _mm256_cvtepi16_epi32(_mm_srai_epi16(_mm_loadu_si128((const __m128i *)(p + 34)), 15)); \
            const __m256i f = _mm256_sub_epi16(_mm256_set1_epi16(7), _mm256_add_epi16(neg16, neg16));          \
            const __m256i lf = _mm256_mullo_epi16(_mm256_loadu_si256((const __m256i *)o.lsw), f);              \
            acc = _mm256_sub_epi32(acc, _mm256_madd_epi16(lf, _mm256_loadu_si256((const __m256i *)bs)));        \
        }                                                                                                     \
        const float d = _cvtsh_ss(d_bits(IQ1M, p)) * dx[b];   /* exact, as pk_f16_to_f32 */                  \
        const float pr = d * (float)iqn_hsum(acc);                                                           \
        s = s + pr;                                                                                           \
    }                                                                                                         \
    return s;                                                                                                 \
}
#define IQ_NROW_AVX2(T, BYTES, IQ1, IQ1M, C) IQ_NROW(T, BYTES, IQ1, IQ1M, avx2, TIQ2, iqn_negate_avx2, gvaln_)
#define IQ_NROW_512(T, BYTES, IQ1, IQ1M, C) IQ_NROW(T, BYTES, IQ1, IQ1M, 512, TIQ5, iqn_negate_avx512, gv512_)
IQ_TYPES(IQ_NROW_AVX2)
IQ_TYPES(IQ_NROW_512)
typedef float (*iqn_row_fn)(const uint8_t *, int64_t, const int8_t *, const float *, const int16_t *);
#define IQ_NROW_FNS(T, BYTES, IQ1, IQ1M, CODE) IQ_AT(CODE) = {nrow_##T##_avx2, nrow_##T##_512},
static const iqn_row_fn nrow_fns[][2] = { IQ_TYPES(IQ_NROW_FNS) };   // [type][AVX-512BW]

// MARK: exact precision, x86
// The widening (pk_dequant_row) and the product with one x (pk_matmul_rows at T == 1) read a super-block through
// the native form's decoder (pro_*, then each group's grid bytes and negation bits by gval_*), then gguf-py's f32
// operations 16 (AVX2: 8) at a time: the half's scale (gguf-py's: d (0.5 + s) 0.25 for IQ2, d (0.5 + s) 0.5 for
// IQ3_XXS, d (2 s + 1) for IQ3_S and IQ1; 0.5 + s = ls / 2 exactly) times the grid value negated in the bytes
// (-(s g) = s (-g) exactly); IQ1_M's grid + shift is v / 8 exactly, v = 8 g +- 1 = w - 9 from the native table;
// IQ1_S adds the shift in f32 as gguf-py does. So every value is the portable widening's, bit for bit (the kernel
// tests compare every level with gguf-py). Decoding a group field by field in scalar code (the first form) cost
// 50-60 instructions per 32 weights; this one about 20 (docs/quantization.md).
TIQ2 static IQ_INL void iqx_scales(int code, float d, const iqn_pro *o, float sc[16]) {
    const __m256i l = _mm256_loadu_si256((const __m256i *)o->lsw);   // 16 x int16, half order
    const __m256 vd = _mm256_set1_ps(d), half = _mm256_set1_ps(0.5f);
    for (int k = 0; k < 2; k++) {
        const __m256 ls = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(k ? _mm256_extracti128_si256(l, 1) : _mm256_castsi256_si128(l)));
        __m256 s;
        if (code == PK_IQ3_S) s = _mm256_mul_ps(vd, ls);
        // IQ1_M: (d ls) / 8, exact (d ls >= 2^-24), so (d ls / 8) v = (d ls) (v / 8) rounded once, as gguf-py's
        // (IQ1_S makes its scales in IQX_BLOCK)
        else if (code == PK_IQ1_M) s = _mm256_mul_ps(_mm256_mul_ps(vd, ls), _mm256_set1_ps(0.125f));
        else s = _mm256_mul_ps(_mm256_mul_ps(vd, _mm256_mul_ps(ls, half)), _mm256_set1_ps(code == PK_IQ3_XXS ? 0.5f : 0.25f));
        _mm256_storeu_ps(sc + 8 * k, s);
    }
}
#define TIQ __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#define TIQ2F __attribute__((target("avx2,fma,f16c")))
// Half h (0, 1) of a group's signed values as 16 f32 weights: scale * value, and -(scale g) = scale (-g) exactly;
// IQ1_S (iq1s) scale * (g + delta).
TIQ static IQ_INL __m512 iqx_w512(__m256i v, int h, float scale, int iq1s, float delta) {
    const __m128i b = h ? _mm256_extracti128_si256(v, 1) : _mm256_castsi256_si128(v);
    const __m512 f = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(b));
    return _mm512_mul_ps(_mm512_set1_ps(scale), iq1s ? _mm512_add_ps(f, _mm512_set1_ps(delta)) : f);
}
// Part k (0-3: weights 8k..8k+7) of a group's signed values as 8 f32 weights.
TIQ2F static IQ_INL __m256 iqx_w256(__m256i v, int k, float scale, int iq1s, float delta) {
    const __m128i h = k & 2 ? _mm256_extracti128_si256(v, 1) : _mm256_castsi256_si128(v);
    const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(k & 1 ? _mm_unpackhi_epi64(h, h) : h));
    return _mm256_mul_ps(_mm256_set1_ps(scale), iq1s ? _mm256_add_ps(f, _mm256_set1_ps(delta)) : f);
}
// Group g of block p as 32 signed bytes: the grid values negated under the sign bits (g <= 62), IQ1_M's
// v = w - 9 = 8 g +- 1, IQ1_S's g.
// IQ1_S keeps a group's fields together (one qh word: 4 x 3 index bits, the scale, the shift's sign), so it reads
// them in scalar code, as its first form did, takes g from the 16 KiB grid and adds the shift in f32 as gguf-py does,
// scale (g + delta) with scale = d (2 f + 1): through pro_iq1_s, or with 8 g +- 1 made in bytes, it measured 6-8%
// slower.
TIQ2 static IQ_INL __m256i iqx_iq1_s(const uint8_t *p, int g, unsigned qh) {   // qh: the group's word
    const uint8_t *q = p + 2 + 4 * g;
    return gv4((const uint8_t (*)[8])iq1s_grid, q[0] | (qh & 7) << 8, q[1] | (qh >> 3 & 7) << 8, q[2] | (qh >> 6 & 7) << 8,
               q[3] | (qh >> 9 & 7) << 8);
}
// The group's bytes v as above, and delta: IQ1_S's shift (its qh word read once), 0 for the other types.
#define IQX_GROUP(T, IQ1, C, NEGATE)                                                                          \
    uint32_t neg;                                                                                             \
    const unsigned qh1 = C == PK_IQ1_S ? u16_at(p + 34 + 2 * g) : 0;                                          \
    const float delta = C == PK_IQ1_S ? (qh1 & 0x8000 ? -0.125f : 0.125f) : 0.f;                              \
    __m256i v = C == PK_IQ1_S ? iqx_iq1_s(p, g, qh1) : gval_##T(p, &o, g, &neg);                              \
    if (C != PK_IQ1_S) v = IQ1 ? _mm256_sub_epi8(v, _mm256_set1_epi8(9)) : NEGATE(v, neg);
#define IQX_SC(C, g, h) sc[(C) == PK_IQ1_S ? (g) : 2 * (g) + (h)]   /* half h of group g's scale */
#define IQX_BLOCK(T, IQ1M, C)                                                                                 \
    iqn_pro o;                                                                                                \
    float sc[16];                                                                                             \
    const float d = _cvtsh_ss(d_bits(IQ1M, p));   /* exact, as pk_f16_to_f32 */                              \
    if (C == PK_IQ1_S) {   /* one scale per group, sc[g]: d (2 f + 1), f bits 12-14 of qh word g */            \
        const __m256i f = _mm256_and_si256(_mm256_srli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 34))), 12), _mm256_set1_epi32(7)); \
        const __m256 ls = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_slli_epi32(f, 1), _mm256_set1_epi32(1)));   \
        _mm256_storeu_ps(sc, _mm256_mul_ps(_mm256_set1_ps(d), ls));                                           \
    } else {                                                                                                  \
        pro_##T(p, &o);                                                                                       \
        iqx_scales(C, d, &o, sc);                                                                             \
    }
// Group g of block p times x into the row's accumulators. How far the groups' loop unrolls (UNRX_<width>_<type>,
// groups per iteration; 1: not unrolled), measured per type (Zen 4, ms per 1024 rows of 2048): AVX-512 by 4 (IQ2_XS 0.228 -> 0.204, IQ2_S 0.224 -> 0.199, IQ1_S 0.214 ->
// 0.179, IQ1_M 0.230 -> 0.204 against no unroll; IQ3_S 0.281 -> 0.249 against the full one, which spilled), but
// IQ3_XXS fully (0.255, by 4 0.267); at AVX2 (16 ymm registers) the IQ3 types by 2 (the full unroll spilled: IQ3_S
// 0.312 -> 0.280) and the others not at all (by 2 or 4: unchanged, but IQ1_S 0.155 -> 0.30-0.34). A full unroll of
// the other types let clang vectorise their per-group index arithmetic into slower code.
#define UNRX_512_iq2_xxs 4
#define UNRX_512_iq2_xs 4
#define UNRX_512_iq2_s 4
#define UNRX_512_iq3_xxs 8
#define UNRX_512_iq3_s 4
#define UNRX_512_iq1_s 4
#define UNRX_512_iq1_m 4
#define UNRX_256_iq2_xxs 1
#define UNRX_256_iq2_xs 1
#define UNRX_256_iq2_s 1
#define UNRX_256_iq3_xxs 2
#define UNRX_256_iq3_s 2
#define UNRX_256_iq1_s 1
#define UNRX_256_iq1_m 1
#define IQX_FMA512(T, IQ1, C)                                                                                 \
    IQX_GROUP(T, IQ1, C, iqn_negate_avx512)                                                                   \
    const float *xg = x + b * 256 + 32 * g;                                                                   \
    a[g & 2] = _mm512_fmadd_ps(iqx_w512(v, 0, IQX_SC(C, g, 0), C == PK_IQ1_S, delta), _mm512_loadu_ps(xg), a[g & 2]); \
    a[(g & 2) + 1] = _mm512_fmadd_ps(iqx_w512(v, 1, IQX_SC(C, g, 1), C == PK_IQ1_S, delta), _mm512_loadu_ps(xg + 16), a[(g & 2) + 1]);
#define IQX_FMA256(T, IQ1, C)                                                                                 \
    IQX_GROUP(T, IQ1, C, iqn_negate_avx2)                                                                     \
    const float *xg = x + b * 256 + 32 * g;                                                                   \
    for (int k = 0; k < 4; k++) a[k] = _mm256_fmadd_ps(iqx_w256(v, k, IQX_SC(C, g, k / 2), C == PK_IQ1_S, delta), _mm256_loadu_ps(xg + 8 * k), a[k]);
// The widening and the product at either width W (512: AVX-512, 256: AVX2): 4 accumulators of type VT per row, summed
// in a fixed order (REDUCE), so a row's result does not depend on the rows beside it. AVX2's accumulator k takes
// weights 8k..8k+7 of every group.
#define IQ_XROWS(T, BYTES, IQ1, IQ1M, C, W, TGT, VT, ZERO, STORE, FMA, REDUCE)                                \
TGT void pk_dequant_##T##_##W(const void *row, int64_t cols, float *out) {                                    \
    pthread_once(&grids_once, init_grids);                                                                    \
    const uint8_t *p = (const uint8_t *)row;                                                                  \
    for (int64_t b = 0; b < cols / 256; b++, p += BYTES, out += 256) {                                        \
        IQX_BLOCK(T, IQ1M, C)                                                                                 \
        for (int g = 0; g < 8; g++) { STORE(T, IQ1, C) }                                                      \
    }                                                                                                         \
}                                                                                                             \
TGT void pk_matvec_##T##_##W(const uint8_t *W_, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {\
    pthread_once(&grids_once, init_grids);                                                                    \
    for (int64_t r = r0; r < r1; r++) {                                                                       \
        const uint8_t *p = W_ + (size_t)r * rb;                                                               \
        VT a[4] = {ZERO, ZERO, ZERO, ZERO};                                                                   \
        for (int64_t b = 0; b < cols / 256; b++, p += BYTES) {                                                \
            IQX_BLOCK(T, IQ1M, C)                                                                             \
            IQ_UNROLL(UNRX_##W##_##T)                                                                         \
            for (int g = 0; g < 8; g++) { FMA(T, IQ1, C) }                                                    \
        }                                                                                                     \
        y[r] = REDUCE(a);                                                                                     \
    }                                                                                                         \
}
#define IQX_STORE512(T, IQ1, C)                                                                               \
    IQX_GROUP(T, IQ1, C, iqn_negate_avx512)                                                                   \
    _mm512_storeu_ps(out + 32 * g, iqx_w512(v, 0, IQX_SC(C, g, 0), C == PK_IQ1_S, delta)); \
    _mm512_storeu_ps(out + 32 * g + 16, iqx_w512(v, 1, IQX_SC(C, g, 1), C == PK_IQ1_S, delta));
#define IQX_STORE256(T, IQ1, C)                                                                               \
    IQX_GROUP(T, IQ1, C, iqn_negate_avx2)                                                                     \
    for (int k = 0; k < 4; k++) _mm256_storeu_ps(out + 32 * g + 8 * k, iqx_w256(v, k, IQX_SC(C, g, k / 2), C == PK_IQ1_S, delta));
#define IQX_REDUCE512(a) _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])))
#define IQX_REDUCE256(a) iqx_hsum256(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])))
TIQ2F static IQ_INL float iqx_hsum256(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
#define IQ_X512(T, BYTES, IQ1, IQ1M, C) \
    IQ_XROWS(T, BYTES, IQ1, IQ1M, C, 512, TIQ, __m512, _mm512_setzero_ps(), IQX_STORE512, IQX_FMA512, IQX_REDUCE512)
#define IQ_X256(T, BYTES, IQ1, IQ1M, C) \
    IQ_XROWS(T, BYTES, IQ1, IQ1M, C, 256, TIQ2F, __m256, _mm256_setzero_ps(), IQX_STORE256, IQX_FMA256, IQX_REDUCE256)
IQ_TYPES(IQ_X512)
IQ_TYPES(IQ_X256)
#endif

float pk_iq_native_factor(int dtype) { return dtype == PK_IQ3_XXS ? 0.25f : dtype == PK_IQ3_S ? 1.f : 0.125f; }
void pk_iq_block_u8(int dtype, const uint8_t *blk, uint8_t *u, int32_t *ls, uint16_t *dbits) {
    pthread_once(&grids_once, init_grids);
    int8_t v[256];
    iq_block_sv(dtype, blk, v, ls, dbits);
    for (int j = 0; j < 256; j++) u[j] = (uint8_t)(v[j] + 64);   // |v| <= 62
}

void pk_native_iq_matmul(int dtype, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                         float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    if (!PK_IS_LATTICE(dtype) || cols <= 0 || cols % 256 || r0 >= r1 || T <= 0) return;
    pthread_once(&grids_once, init_grids);
    const size_t bytes = pk_block_bytes(dtype);
    const float factor = pk_iq_native_factor(dtype);
    const int64_t nb = cols / 256;
    void (*dot)(const iqn_rows *, int64_t, const int8_t *, int32_t *) = ndot_portable;
    const char *lv = pk_ops_current()->name;
#if defined(__aarch64__)
    if (strcmp(lv, "neon") == 0) dot = ndot_neon;
#endif
#if defined(__x86_64__)
    const int x512 = pk_level_avx512(lv);
    if (x512 || strcmp(lv, "avx2") == 0) {
        // groups decoded into registers, per token (the decode steps: kernels_native_k.c tiles prompts)
        const iqn_row_fn row = nrow_fns[dtype - PK_IQ2_XXS][x512];
        for (int64_t r = r0; r < r1; r++)
            for (int64_t t = 0; t < T; t++) {
                const uint8_t *xt = xn + (size_t)t * xs;
                const float v = row(W + (size_t)r * rb, nb, (const int8_t *)xt, (const float *)(xt + cols),
                                    (const int16_t *)(xt + pk_q8k_bsum_off(cols)));
                Y[t * ldy + r] = factor * v;
            }
        return;
    }
#endif
    iqn_rows dec;
    int32_t isum[IQN_CHUNK];
    for (int64_t r = r0; r < r1; r++) {
        for (int64_t b0 = 0; b0 < nb; b0 += IQN_CHUNK) {
            const int64_t nbc = nb - b0 < IQN_CHUNK ? nb - b0 : IQN_CHUNK;
            ndecode(dtype, W + (size_t)r * rb + (size_t)b0 * bytes, bytes, nbc, &dec);
            for (int64_t t = 0; t < T; t++) {
                const uint8_t *xt = xn + (size_t)t * xs;
                const float *dx = (const float *)(xt + cols) + b0;
                dot(&dec, nbc, (const int8_t *)xt + b0 * 256, isum);
                float s = b0 ? Y[t * ldy + r] : 0.f;   // the sum carries over chunks in Y: the same operations in order
                for (int64_t b = 0; b < nbc; b++) {
                    const float d = dec.dw[b] * dx[b];
                    const float p = d * (float)isum[b];
                    s = s + p;
                }
                Y[t * ldy + r] = s;
            }
        }
        for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = factor * Y[t * ldy + r];
    }
}
