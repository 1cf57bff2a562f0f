// Native-precision matrix products (Swift's MatmulPrecision.native): the activations are rounded the way
// llama.cpp rounds them (q8_0 per 32-value block for q8_0 weights, bf16 for bf16 weights, f16 for f16; the other quantised
// types in kernels_native_legacy.c and kernels_native_k.c) so the dot products can
// use integer (VNNI) and bf16 (AVX512-BF16) instructions. Every level computes the same rounded products; only
// the order of the f32 sums differs.
//
// Prepared activations, per token (stride pk_native_x_stride, a multiple of 64 bytes):
//   q8_0: float d[nb] (ggml's f16 scale, as f32) | int32 m[nb] = -128 * sum(q of the block) | int8 q[cols]
//   bf16: uint16 bf16[cols] at levels with AVX512-BF16, otherwise float[cols] holding the bf16-rounded values
//         (then the exact kernels compute the same products).
#include "pk_internal.h"
#include "pk_x86.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

static inline int64_t round64(int64_t n) { return (n + 63) & ~(int64_t)63; }

int pk_native_supported(int dtype) {
    return dtype == PK_Q8_0 || dtype == PK_BF16 || dtype == PK_F16 || pk_native_legacy_x_stride(dtype, 256) || pk_native_k_x_stride(dtype, 256);
}

size_t pk_native_x_stride(int dtype, int64_t cols) {
    if (cols <= 0) return 0;
    if (dtype != PK_Q8_0 && dtype != PK_BF16 && dtype != PK_F16) {
        size_t s = pk_native_legacy_x_stride(dtype, cols);
        return s ? s : pk_native_k_x_stride(dtype, cols);
    }
    if (dtype == PK_Q8_0) return cols % 32 ? 0 : (size_t)round64(cols / 32 * 8 + cols);
    // bf16 / f16: the rounded values as f32 (AVX512-BF16: bf16), then their 16-bit form (pk_native_prepare)
    if (dtype == PK_BF16 || dtype == PK_F16) return (size_t)round64(cols * 6);
    return 0;
}

// MARK: scratch

typedef struct { void *p; size_t cap; } pk_scratch;
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static void scratch_free(void *v) { pk_scratch *s = (pk_scratch *)v; for (int i = 0; i < PK_SCRATCH_SLOTS; i++) free(s[i].p); free(s); }
static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

void *pk_thread_scratch_slot(int slot, size_t bytes) {
    if (slot < 0 || slot >= PK_SCRATCH_SLOTS) return NULL;
    pthread_once(&scratch_once, scratch_init);
    pk_scratch *all = (pk_scratch *)pthread_getspecific(scratch_key);
    if (!all) {
        all = (pk_scratch *)calloc(PK_SCRATCH_SLOTS, sizeof *all);
        if (!all) return NULL;
        if (pthread_setspecific(scratch_key, all) != 0) { free(all); return NULL; }
    }
    pk_scratch *s = all + slot;
    if (s->cap < bytes || !s->p) {
        free(s->p);
        s->p = NULL; s->cap = 0;
        if (bytes > SIZE_MAX / 2) return NULL;
        size_t cap = (bytes + bytes / 4 + 63) & ~(size_t)63;   // a little headroom: prompts of similar length reuse it
        if (cap < 64) cap = 64;
        s->p = aligned_alloc(64, cap);
        if (!s->p) return NULL;
        s->cap = cap;
    }
    return s->p;
}

void *pk_thread_scratch(size_t bytes) { return pk_thread_scratch_slot(PK_SCRATCH_NATIVE, bytes); }

// MARK: activation rounding (portable; the SIMD versions below give identical bits)

// Round half away from zero (C's roundf), NaN to 0, clamped to [-127, 127]: a NaN activation makes the block's
// scale NaN instead (below), so it still reaches the output.
static inline int8_t q8_round(float v) {
    float r = roundf(v);
    if (r != r) return 0;
    if (r > 127.0f) r = 127.0f;
    if (r < -127.0f) r = -127.0f;
    return (int8_t)r;
}

static void q8x_quantize_scalar(const float *x, int64_t cols, uint8_t *out) {
    int64_t nb = cols / 32;
    float *d = (float *)out;
    int32_t *m = (int32_t *)(out + nb * 4);
    int8_t *q = (int8_t *)(out + nb * 8);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * 32;
        float amax = 0;
        int nan = 0;
        for (int i = 0; i < 32; i++) { float v = fabsf(xb[i]); if (v > amax) amax = v; if (v != v) nan = 1; }
        float dd = nan ? NAN : amax / 127.0f;
        float id = dd != 0 ? 1.0f / dd : 0.0f;
        d[b] = pk_f16_to_f32(pk_f32_to_f16(dd));   // ggml keeps the scale as f16
        int32_t s = 0;
        for (int i = 0; i < 32; i++) { int8_t v = q8_round(xb[i] * id); q[b * 32 + i] = v; s += v; }
        m[b] = -128 * s;
    }
}

/* ggml's f16 activations (its vec_dot_type for f16 weights): x rounded to f16, nearest even, as pk_f32_to_f16_row
   rounds it (F16C / NEON at the SIMD levels, the same bits): the bits at out + 4 cols (the decode rows read them,
   ops->native_f16), the values as f32 at out (the exact f16 kernels read them for prompts). */
static void f16x_round(const float *x, int64_t cols, uint8_t *out) {
    uint16_t *h = (uint16_t *)pk_native_x16(out, cols);
    pk_f32_to_f16_row(x, h, cols);
    pk_dequant_row(PK_F16, h, cols, (float *)out);
}

static void bf16x_round_f32_scalar(const float *x, int64_t cols, float *out) {
    for (int64_t i = 0; i < cols; i++) out[i] = pk_bf16_to_f32(pk_f32_to_bf16(x[i]));
}

#if defined(__x86_64__)
#define TQ __attribute__((target("avx2,fma,f16c")))

TQ static void q8x_quantize_avx2(const float *x, int64_t cols, uint8_t *out) {
    int64_t nb = cols / 32;
    float *d = (float *)out;
    int32_t *m = (int32_t *)(out + nb * 4);
    int8_t *q = (int8_t *)(out + nb * 8);
    for (int64_t b = 0; b < nb; b++) {
        float dd;
        int32_t s;
        __m256i p = pk_q8_block32(x + b * 32, &dd, &s);
        d[b] = pk_f16_round(dd);   // ggml keeps the scale as f16
        m[b] = -128 * s;
        _mm256_storeu_si256((__m256i *)(q + b * 32), p);
    }
}

// bf16 rounding as pk_f32_to_bf16: x + 0x7fff + lsb, NaN kept quiet. Integer ops, so subnormals are kept
// (vcvtneps2bf16 would flush them).
#define TB __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
TB static inline __m256i bf16_round16(__m512 v) {
    __m512i x = _mm512_castps_si512(v);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(x, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __mmask16 nan = _mm512_cmp_epu32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000), _MM_CMPINT_NLE);
    r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
}

TB static void bf16x_round_u16_512(const float *x, int64_t cols, uint16_t *out) {
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) _mm256_storeu_si256((__m256i *)(out + i), bf16_round16(_mm512_loadu_ps(x + i)));
    if (i < cols) {
        __mmask16 m = (__mmask16)((1u << (cols - i)) - 1u);
        _mm256_mask_storeu_epi16(out + i, m, bf16_round16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

TB static void bf16x_round_f32_512(const float *x, int64_t cols, float *out) {
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16)
        _mm512_storeu_ps(out + i, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(bf16_round16(_mm512_loadu_ps(x + i))), 16)));
    for (; i < cols; i++) out[i] = pk_bf16_to_f32(pk_f32_to_bf16(x[i]));
}
#endif

void pk_native_prepare(int dtype, const float *X, int64_t ldx, int64_t cols, void *xn, int64_t t0, int64_t t1) {
    size_t xs = pk_native_x_stride(dtype, cols);
    if (xs == 0 || t0 >= t1) return;
    const pk_ops *o = pk_ops_current();
    int simd = strcmp(o->name, "scalar") != 0;
    for (int64_t t = t0; t < t1; t++) {
        const float *x = X + t * ldx;
        uint8_t *out = (uint8_t *)xn + (size_t)t * xs;
        if (pk_native_legacy_x_stride(dtype, cols)) { pk_native_legacy_prepare(dtype, x, cols, out); continue; }
        if (pk_native_k_x_stride(dtype, cols)) { pk_native_k_prepare(dtype, x, cols, out); continue; }
        if (dtype == PK_F16) { f16x_round(x, cols, out); continue; }
        if (dtype == PK_Q8_0) {
#if defined(__x86_64__)
            if (simd) { q8x_quantize_avx2(x, cols, out); continue; }
#endif
            q8x_quantize_scalar(x, cols, out);
        } else {   // bf16
#if defined(__x86_64__)
            if (o->native_bf16) { bf16x_round_u16_512(x, cols, (uint16_t *)out); continue; }
            if (pk_level_avx512(o->name)) bf16x_round_f32_512(x, cols, (float *)out);
            else bf16x_round_f32_scalar(x, cols, (float *)out);
#else
            bf16x_round_f32_scalar(x, cols, (float *)out);
#endif
            // the bits of the rounded values for the decode rows (native_bf16x): exact, they are bf16 already
            if (o->native_bf16x) {
                const uint32_t *f = (const uint32_t *)out;
                uint16_t *h = (uint16_t *)pk_native_x16(out, cols);
                for (int64_t i = 0; i < cols; i++) h[i] = (uint16_t)(f[i] >> 16);
            }
        }
    }
    (void)simd;
}

// MARK: q8_0, portable

static float q8n_dot_scalar(const uint8_t *w, const uint8_t *xt, int64_t nb) {
    const float *dx = (const float *)xt;
    const int8_t *qx = (const int8_t *)(xt + nb * 8);
    float s = 0;
    for (int64_t b = 0; b < nb; b++, w += 34) {
        uint16_t dh; memcpy(&dh, w, 2);
        const int8_t *qw = (const int8_t *)(w + 2);
        int32_t isum = 0;
        for (int i = 0; i < 32; i++) isum += (int32_t)qw[i] * qx[b * 32 + i];
        s += (float)isum * (pk_f16_to_f32(dh) * dx[b]);
    }
    return s;
}

static void native_q8_scalar(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                             float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++)
        for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = q8n_dot_scalar(W + (size_t)r * rb, xn + (size_t)t * xs, cols / 32);
}

// MARK: q8_0, x86

#if defined(__x86_64__)
TQ static inline float f16_at(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return _cvtsh_ss(h); }
static inline uint16_t rd16n(const uint8_t *p) { uint16_t h; memcpy(&h, p, 2); return h; }
// Block scale d_w * d_x broadcast to 8 lanes. Built from a broadcast load: _cvtsh_ss compiles to a vpinsrw into
// whatever register is free, which was an accumulator, chaining each block's scale to the previous block's FMA
// (measured: 23 GB/s in cache).
TQ static inline __m256 scale8(const uint8_t *p, const float *dx) {
    int16_t h; memcpy(&h, p, 2);
    return _mm256_mul_ps(_mm256_cvtph_ps(_mm_set1_epi16(h)), _mm256_broadcast_ss(dx));
}

// Integer dot of 32 int8 pairs as 8 int32 lanes. ggml's sign trick: |w| (unsigned) times x with w's sign;
// |w| <= 128 and |x| <= 127, so the 16-bit pair sums of vpmaddubsw cannot saturate.
TQ static inline __m256i dot32_avx2(__m256i w, __m256i x) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}
#define TV __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c")))
TV static inline __m256i dot32_vnni(__m256i w, __m256i x) {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

// One row at a time (one sequential weight stream per thread, as the exact matrix-vector kernels), each row
// against every token while it is in L1.
#define Q8N_ROWS(NAME, TGT, DOT)                                                                              \
TGT static void NAME(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,     \
                     float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                         \
    const int64_t nb = cols / 32;                                                                             \
    for (int64_t r = r0; r < r1; r++) {                                                                       \
        const uint8_t *w = W + (size_t)r * rb;                                                                \
        for (int64_t t = 0; t < T; t++) {                                                                     \
            const uint8_t *xt = xn + (size_t)t * xs;                                                          \
            const float *dx = (const float *)xt;                                                              \
            const uint8_t *qx = xt + nb * 8;                                                                  \
            __m256 a0 = _mm256_setzero_ps(), a1 = a0;                                                         \
            int64_t b = 0;                                                                                    \
            for (; b + 2 <= nb; b += 2) {                                                                     \
                const uint8_t *p = w + b * 34;                                                                \
                __m256i i0 = DOT(_mm256_loadu_si256((const __m256i *)(p + 2)), _mm256_loadu_si256((const __m256i *)(qx + b * 32))); \
                __m256i i1 = DOT(_mm256_loadu_si256((const __m256i *)(p + 36)), _mm256_loadu_si256((const __m256i *)(qx + b * 32 + 32))); \
                a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), scale8(p, dx + b), a0);           \
                a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i1), scale8(p + 34, dx + b + 1), a1);  \
            }                                                                                                 \
            if (b < nb) {                                                                                     \
                const uint8_t *p = w + b * 34;                                                                \
                __m256i i0 = DOT(_mm256_loadu_si256((const __m256i *)(p + 2)), _mm256_loadu_si256((const __m256i *)(qx + b * 32))); \
                a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(i0), scale8(p, dx + b), a0);           \
            }                                                                                                 \
            Y[t * ldy + r] = hsum256(_mm256_add_ps(a0, a1));                                                    \
        }                                                                                                     \
    }                                                                                                         \
}
Q8N_ROWS(q8n_rows_avx2, TQ, dot32_avx2)
Q8N_ROWS(q8n_rows_vnni, TV, dot32_vnni)

// T > 1 at AVX2: the VNNI tiles' scheme (below) with 8 rows. One ymm holds 4 bytes of each of 8 rows; per token
// 4 q broadcast, ggml's sign trick (|w| times x with w's sign; vpabsb leaves -128 as 0x80, the unsigned 128) and
// vpmaddwd with ones give 8 row sums x 2 pairs, without horizontal sums. |w| <= 128, |x| <= 127: a pair sum is at
// most 2 * 128 * 127 = 32512, so vpmaddubsw cannot saturate, though two such sums could: each goes to int32 at
// once. Beats the rows from T = 2 (one core, 896 x 896, GOPS rows / tiles: T = 2 62 / 68, T = 8 62 / 105,
// T = 128 62 / 123; the sign, vpmaddubsw and vpmaddwd share two ports on Zen 4, which bounds it).
typedef struct { uint8_t q[8][32]; float d[8]; } q8_pack8_blk;   // 8 groups x 8 rows x 4 bytes, 8 scales
#define Q8_KB8 32                                                 // blocks per packed chunk: 9 KiB

TQ static void q8_pack8(const uint8_t *W, size_t rb, int64_t r, int nr, int64_t b0, int nbk, q8_pack8_blk *out) {
    for (int bi = 0; bi < nbk; bi++) {
        const uint8_t *p = W + (size_t)r * rb + (b0 + bi) * 34;
        __m256i z[8];
        for (int j = 0; j < 8; j++) z[j] = j < nr ? _mm256_loadu_si256((const __m256i *)(p + (size_t)j * rb + 2)) : _mm256_setzero_si256();
        pk_tile8_transpose(z, out[bi].q);
#define DW(j) (j < nr ? (short)rd16n(p + (size_t)j * rb) : (short)0)
        _mm256_store_ps(out[bi].d, _mm256_cvtph_ps(_mm_setr_epi16(DW(0), DW(1), DW(2), DW(3), DW(4), DW(5), DW(6), DW(7))));
#undef DW
    }
}

// NT tokens x 8 rows over nbk packed blocks; y[j*ldy + i] (+)= sum for the first nr rows. Per group the codes and
// their magnitudes stay in registers for all NT tokens.
#define Q8_MICRO8(NT)                                                                                         \
TQ static void q8_micro8_##NT(const q8_pack8_blk *pk, int nbk, const uint8_t *x, size_t xs, int64_t nb, int64_t b0, \
                              float *y, int64_t ldy, int nr, int accumulate) {                                \
    const __m256i one = _mm256_set1_epi16(1);                                                                 \
    __m256 f[NT];                                                                                             \
    for (int j = 0; j < NT; j++) f[j] = _mm256_setzero_ps();                                                  \
    for (int bi = 0; bi < nbk; bi++) {                                                                        \
        const q8_pack8_blk *p = pk + bi;                                                                      \
        const int64_t b = b0 + bi;                                                                            \
        const uint8_t *q = x + nb * 8 + b * 32;                                                               \
        __m256i a[NT];                                                                                        \
        for (int j = 0; j < NT; j++) a[j] = _mm256_setzero_si256();                                           \
        for (int g = 0; g < 8; g++) {                                                                         \
            const __m256i w = _mm256_load_si256((const __m256i *)p->q[g]), aw = _mm256_abs_epi8(w);           \
            for (int j = 0; j < NT; j++) {                                                                    \
                int32_t q4; memcpy(&q4, q + (size_t)j * xs + 4 * g, 4);                                       \
                __m256i s = _mm256_maddubs_epi16(aw, _mm256_sign_epi8(_mm256_set1_epi32(q4), w));            \
                a[j] = _mm256_add_epi32(a[j], _mm256_madd_epi16(s, one));                                     \
            }                                                                                                 \
        }                                                                                                     \
        const __m256 dw = _mm256_load_ps(p->d);                                                               \
        for (int j = 0; j < NT; j++)                                                                          \
            f[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a[j]),                                                  \
                                   _mm256_mul_ps(dw, _mm256_broadcast_ss((const float *)(x + (size_t)j * xs) + b)), f[j]); \
    }                                                                                                         \
    for (int j = 0; j < NT; j++) pk_store8_rows(y + j * ldy, f[j], nr, accumulate);                          \
}
#define Q8_NT8 4
Q8_MICRO8(1) Q8_MICRO8(2) Q8_MICRO8(3) Q8_MICRO8(4)
typedef void (*q8_micro8_fn)(const q8_pack8_blk *, int, const uint8_t *, size_t, int64_t, int64_t, float *, int64_t, int, int);
static const q8_micro8_fn q8_micro8[Q8_NT8] = { q8_micro8_1, q8_micro8_2, q8_micro8_3, q8_micro8_4 };

void pk_native_q8_avx2(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                       float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    if (T == 1) { q8n_rows_avx2(W, rb, cols, xn, xs, T, Y, ldy, r0, r1); return; }
    const int64_t nb = cols / 32;
    q8_pack8_blk pk[Q8_KB8] __attribute__((aligned(32)));
    for (int64_t r = r0; r < r1; r += 8) {
        int nr = r1 - r < 8 ? (int)(r1 - r) : 8;
        for (int64_t b0 = 0; b0 < nb; b0 += Q8_KB8) {
            int nbk = nb - b0 < Q8_KB8 ? (int)(nb - b0) : Q8_KB8;
            pk_prefetch_next_tile(W, rb, 34, nb, Q8_KB8, 8, r, r1, b0);
            q8_pack8(W, rb, r, nr, b0, nbk, pk);
            for (int64_t t = 0; t < T; t += Q8_NT8) {
                int nt = T - t < Q8_NT8 ? (int)(T - t) : Q8_NT8;
                q8_micro8[nt - 1](pk, nbk, xn + (size_t)t * xs, xs, nb, b0, Y + t * ldy + r, ldy, nr, b0 > 0);
            }
        }
    }
}

// T > 1 with VNNI: 16 weight rows are repacked per chunk of blocks so that one zmm holds 4 bytes of each of the
// 16 rows; vpdpbusd against 4 bytes of one token broadcast then gives 16 row sums at once (no horizontal sums),
// and each packed tile is reused by every token. vpdpbusd multiplies unsigned by signed bytes, so the weights are
// stored as w + 128 and the block sum is corrected by -128 * sum(x) (the m[] of the prepared activations).
typedef struct { uint8_t q[8][64]; float d[16]; } q8_pack_blk;   // 8 groups x 16 rows x 4 bytes, 16 scales
#define Q8_KB 32                                                  // blocks per packed chunk: 18 KiB, stays in L1

TV static void q8_pack16(const uint8_t *W, size_t rb, int64_t r, int nr, int64_t b0, int nbk, q8_pack_blk *out) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    for (int bi = 0; bi < nbk; bi++) {
        q8_pack_blk *o = out + bi;
        __m512i z[8];
        for (int j = 0; j < 8; j++) {   // z[j] = row j (8 dwords) | row j + 8
            __m256i a = j < nr ? _mm256_loadu_si256((const __m256i *)(W + (size_t)(r + j) * rb + (b0 + bi) * 34 + 2)) : _mm256_setzero_si256();
            __m256i b = j + 8 < nr ? _mm256_loadu_si256((const __m256i *)(W + (size_t)(r + j + 8) * rb + (b0 + bi) * 34 + 2)) : _mm256_setzero_si256();
            z[j] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1), flip);
        }
        pk_tile16_transpose(z, o->q);
        for (int i = 0; i < 16; i++) o->d[i] = i < nr ? f16_at(W + (size_t)(r + i) * rb + (b0 + bi) * 34) : 0.0f;
    }
}

// NT tokens x 16 rows over nbk packed blocks; y[j*ldy + i] (+)= sum for the first nr rows.
#define Q8_MICRO(NT)                                                                                          \
TV static void q8_micro_##NT(const q8_pack_blk *pk, int nbk, const uint8_t *x, size_t xs, int64_t nb, int64_t b0, \
                             float *y, int64_t ldy, int nr, int accumulate) {                                 \
    __m512 f[NT];                                                                                             \
    for (int j = 0; j < NT; j++) f[j] = _mm512_setzero_ps();                                                  \
    for (int bi = 0; bi < nbk; bi++) {                                                                        \
        const q8_pack_blk *p = pk + bi;                                                                       \
        __m512i w[8];                                                                                         \
        for (int g = 0; g < 8; g++) w[g] = _mm512_load_si512((const __m512i *)p->q[g]);                       \
        __m512 dw = _mm512_load_ps(p->d);                                                                     \
        const int64_t b = b0 + bi;                                                                            \
        for (int j = 0; j < NT; j++) {                                                                        \
            const uint8_t *xt = x + (size_t)j * xs;                                                           \
            const uint8_t *q = xt + nb * 8 + b * 32;                                                          \
            int32_t mb, q4[8];                                                                                \
            memcpy(&mb, xt + nb * 4 + b * 4, 4);                                                              \
            memcpy(q4, q, 32);                                                                                \
            __m512i a0 = _mm512_set1_epi32(mb), a1 = _mm512_setzero_si512();                                  \
            for (int g = 0; g < 8; g += 2) {                                                                  \
                a0 = _mm512_dpbusd_epi32(a0, w[g], _mm512_set1_epi32(q4[g]));                                 \
                a1 = _mm512_dpbusd_epi32(a1, w[g + 1], _mm512_set1_epi32(q4[g + 1]));                         \
            }                                                                                                 \
            float dx; memcpy(&dx, xt + b * 4, 4);                                                             \
            f[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1)), _mm512_mul_ps(dw, _mm512_set1_ps(dx)), f[j]); \
        }                                                                                                     \
    }                                                                                                         \
    for (int j = 0; j < NT; j++) pk_store16_rows(y + j * ldy, f[j], nr, accumulate);                          \
}
Q8_MICRO(1) Q8_MICRO(2) Q8_MICRO(3) Q8_MICRO(4) Q8_MICRO(5) Q8_MICRO(6) Q8_MICRO(7) Q8_MICRO(8)
typedef void (*q8_micro_fn)(const q8_pack_blk *, int, const uint8_t *, size_t, int64_t, int64_t, float *, int64_t, int, int);
static const q8_micro_fn q8_micro[8] = { q8_micro_1, q8_micro_2, q8_micro_3, q8_micro_4, q8_micro_5, q8_micro_6, q8_micro_7, q8_micro_8 };

void pk_native_q8_vnni(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                       float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    if (T == 1) { q8n_rows_vnni(W, rb, cols, xn, xs, T, Y, ldy, r0, r1); return; }
    const int64_t nb = cols / 32;
    q8_pack_blk pk[Q8_KB] __attribute__((aligned(64)));
    for (int64_t r = r0; r < r1; r += 16) {
        int nr = r1 - r < 16 ? (int)(r1 - r) : 16;
        for (int64_t b0 = 0; b0 < nb; b0 += Q8_KB) {
            int nbk = nb - b0 < Q8_KB ? (int)(nb - b0) : Q8_KB;
            pk_prefetch_next_tile(W, rb, 34, nb, Q8_KB, 16, r, r1, b0);
            q8_pack16(W, rb, r, nr, b0, nbk, pk);
            for (int64_t t = 0; t < T; t += 8) {
                int nt = T - t < 8 ? (int)(T - t) : 8;
                q8_micro[nt - 1](pk, nbk, xn + (size_t)t * xs, xs, nb, b0, Y + t * ldy + r, ldy, nr, b0 > 0);
            }
        }
    }
}

// MARK: bf16 with AVX512-BF16

#define TBF __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,f16c")))

TBF static inline __m256i ld16_mask(const uint16_t *p, int64_t n) {
    return n >= 16 ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskz_loadu_epi16((__mmask16)((1u << n) - 1u), p);
}
TBF static inline __m256 dp16(__m256 acc, __m256i a, __m256i b) { return _mm256_dpbf16_ps(acc, (__m256bh)a, (__m256bh)b); }
TBF static inline __m512 dp32(__m512 acc, __m512i a, __m512i b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }

// T == 1: one row at a time, 256-bit (the 512-bit streaming loops were ~10% slower on Zen 4, see kernels_x86.c).
TBF static void bf16n_matvec(const uint8_t *W, size_t rb, int64_t cols, const uint16_t *x, float *Y, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *w = (const uint16_t *)(W + (size_t)r * rb);
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int64_t c = 0;
        for (; c + 64 <= cols; c += 64) {
            a0 = dp16(a0, _mm256_loadu_si256((const __m256i *)(w + c)), _mm256_loadu_si256((const __m256i *)(x + c)));
            a1 = dp16(a1, _mm256_loadu_si256((const __m256i *)(w + c + 16)), _mm256_loadu_si256((const __m256i *)(x + c + 16)));
            a2 = dp16(a2, _mm256_loadu_si256((const __m256i *)(w + c + 32)), _mm256_loadu_si256((const __m256i *)(x + c + 32)));
            a3 = dp16(a3, _mm256_loadu_si256((const __m256i *)(w + c + 48)), _mm256_loadu_si256((const __m256i *)(x + c + 48)));
        }
        for (; c < cols; c += 16) a0 = dp16(a0, ld16_mask(w + c, cols - c), ld16_mask(x + c, cols - c));
        Y[r] = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    }
}

// 16 accumulators -> one vector of their 16 sums (v[n] = sum of a[n]), 15 adds and 30 shuffles.
TBF static inline __m512 reduce16(const __m512 *a) {
    __m512 b[8], c[4], d[2];
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44), _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xEE));
    for (int i = 0; i < 4; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88), _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xDD));
    for (int i = 0; i < 2; i++)
        d[i] = _mm512_add_ps(_mm512_unpacklo_ps(c[2 * i], c[2 * i + 1]), _mm512_unpackhi_ps(c[2 * i], c[2 * i + 1]));
    __m512 v = _mm512_add_ps(_mm512_unpacklo_ps(d[0], d[1]), _mm512_unpackhi_ps(d[0], d[1]));
    // lane 4l holds a[l], 4l+1 a[8+l], 4l+2 a[4+l], 4l+3 a[12+l]
    return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 1, 5, 9, 13, 3, 7, 11, 15), v);
}

// 4 rows x 4 tokens over k values: 16 accumulators, 8 loads per 16 vdpbf16ps (32 products each).
// Missing rows / tokens reuse row / token 0 and are not stored.
TBF static void bf16n_gemm4x4(const uint16_t *w, int64_t ldw, int nr, const uint16_t *x, int64_t ldx, int nt,
                              int64_t k, float *y, int64_t ldy, int accumulate) {
    const uint16_t *wr[4], *xr[4];
    for (int i = 0; i < 4; i++) { wr[i] = w + (i < nr ? i : 0) * ldw; xr[i] = x + (i < nt ? i : 0) * ldx; }
    __m512 acc[16];
    for (int i = 0; i < 16; i++) acc[i] = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 32 <= k; c += 32) {
        __m512i wv[4], xv[4];
        for (int i = 0; i < 4; i++) wv[i] = _mm512_loadu_si512(wr[i] + c);
        for (int j = 0; j < 4; j++) xv[j] = _mm512_loadu_si512(xr[j] + c);
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i * 4 + j] = dp32(acc[i * 4 + j], wv[i], xv[j]);
    }
    if (c < k) {
        __mmask32 m = (__mmask32)((k - c) >= 32 ? 0xFFFFFFFFu : ((1u << (k - c)) - 1u));
        __m512i wv[4], xv[4];
        for (int i = 0; i < 4; i++) wv[i] = _mm512_maskz_loadu_epi16(m, wr[i] + c);
        for (int j = 0; j < 4; j++) xv[j] = _mm512_maskz_loadu_epi16(m, xr[j] + c);
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i * 4 + j] = dp32(acc[i * 4 + j], wv[i], xv[j]);
    }
    float s[16] __attribute__((aligned(64)));
    _mm512_store_ps(s, reduce16(acc));
    for (int j = 0; j < nt; j++)
        for (int i = 0; i < nr; i++) {
            float *o = y + j * ldy + i;
            *o = accumulate ? *o + s[i * 4 + j] : s[i * 4 + j];
        }
}

// Column chunk: the tokens' slice (T x 1024 bf16, 256 KiB for 128 tokens) stays in L2 while every 4-row block of
// the task passes over it; each 4 x 1024 weight slice (8 KiB) stays in L1 for all tokens.
#define BF16_KC 1024

void pk_native_bf16_avx512bf16(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                               float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    if (T == 1) { bf16n_matvec(W, rb, cols, (const uint16_t *)xn, Y, r0, r1); return; }
    const int64_t ldx = (int64_t)(xs / 2), ldw = (int64_t)(rb / 2);
    for (int64_t k0 = 0; k0 < cols; k0 += BF16_KC) {
        int64_t kn = cols - k0 < BF16_KC ? cols - k0 : BF16_KC;
        for (int64_t r = r0; r < r1; r += 4) {
            int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
            const uint16_t *w = (const uint16_t *)(W + (size_t)r * rb) + k0;
            for (int64_t t = 0; t < T; t += 4) {
                int nt = T - t < 4 ? (int)(T - t) : 4;
                bf16n_gemm4x4(w, ldw, nr, (const uint16_t *)xn + t * ldx + k0, ldx, nt, kn, Y + t * ldy + r, ldy, k0 > 0);
            }
        }
    }
}
#endif

// MARK: entry point

void pk_matmul_rows_native(int dtype, const void *W, int64_t cols, const void *xn, int64_t T,
                           float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    size_t xs = pk_native_x_stride(dtype, cols);
    if (r0 >= r1 || T <= 0) return;
    if (xs == 0) {   // not a native type / bad shape: mark the output rather than read past anything
        for (int64_t t = 0; t < T; t++) for (int64_t r = r0; r < r1; r++) Y[t * ldy + r] = NAN;
        return;
    }
    const pk_ops *o = pk_ops_current();
    size_t rb = pk_row_bytes(dtype, cols);
    if (pk_native_legacy_x_stride(dtype, cols)) {
        pk_native_legacy_matmul(dtype, (const uint8_t *)W, rb, cols, (const uint8_t *)xn, xs, T, Y, ldy, r0, r1);
    } else if (pk_native_k_x_stride(dtype, cols)) {
        pk_native_k_matmul(dtype, (const uint8_t *)W, rb, cols, (const uint8_t *)xn, xs, T, Y, ldy, r0, r1);
    } else if (dtype == PK_Q8_0) {
        (o->native_q8 ? o->native_q8 : native_q8_scalar)((const uint8_t *)W, rb, cols, (const uint8_t *)xn, xs, T, Y, ldy, r0, r1);
    } else if (dtype == PK_F16) {   // f16 products as ggml's: the f16 x rows for a decode step, else the exact kernels
        if (T == 1 && o->native_f16) o->native_f16((const uint8_t *)W, rb, cols, (const uint8_t *)xn, xs, T, Y, ldy, r0, r1);
        else pk_matmul_rows(PK_F16, W, cols, (const float *)xn, (int64_t)(xs / 4), T, Y, ldy, r0, r1);
    } else if (o->native_bf16) {
        o->native_bf16((const uint8_t *)W, rb, cols, (const uint8_t *)xn, xs, T, Y, ldy, r0, r1);
    } else if (T == 1 && o->native_bf16x) {   // as the f16 decode rows: the bf16 x, half the L1 of the f32 copy
        o->native_bf16x((const uint8_t *)W, rb, cols, (const uint8_t *)xn, xs, T, Y, ldy, r0, r1);
    } else {   // the bf16-rounded f32 activations through the exact kernels: same products, same sums
        pk_matmul_rows(PK_BF16, W, cols, (const float *)xn, (int64_t)(xs / 4), T, Y, ldy, r0, r1);
    }
}
