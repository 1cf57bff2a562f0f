// AVX2 and AVX-512 kernels, compiled per function with `target` attributes and chosen at run time
// (kernels.c), so one binary runs on any x86-64 CPU.
#include "pk_internal.h"
#include "pk_x86.h"
#if defined(__x86_64__)
#include <immintrin.h>
#include <cpuid.h>
#include <string.h>
#include <math.h>

// MARK: CPU detection

static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

// avx512: F, DQ, BW, VL (+ AVX2/FMA/F16C); vnni: AVX512-VNNI (vpdpbusd); bf16: AVX512-BF16 (vdpbf16ps, CPUID 7.1).
static int cpu_flags(int *avx2, int *avx512, int *vnni, int *bf16) {
    unsigned a, b, c, d;
    *avx2 = *avx512 = *vnni = *bf16 = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!(osxsave && avx)) return 0;
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return 0;   // OS saves xmm/ymm state
    unsigned max7 = 0;
    if (!__get_cpuid_count(7, 0, &max7, &b, &c, &d)) return 0;
    int has_avx2 = (b >> 5) & 1;
    *avx2 = has_avx2 && fma && f16c;
    int f = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    *avx512 = *avx2 && f && dq && bw && vl && (xcr0 & 0xE0) == 0xE0;   // OS saves zmm/opmask state
    *vnni = *avx512 && ((c >> 11) & 1);
    if (*vnni && max7 >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) *bf16 = (a >> 5) & 1;
    return 1;
}

int pk_x86_has_avx2(void) { int a2, a5, vn, bf; cpu_flags(&a2, &a5, &vn, &bf); return a2; }
int pk_x86_has_avx512(void) { int a2, a5, vn, bf; cpu_flags(&a2, &a5, &vn, &bf); return a5; }
int pk_x86_has_avx512vnni(void) { int a2, a5, vn, bf; cpu_flags(&a2, &a5, &vn, &bf); return vn; }
int pk_x86_has_avx512bf16(void) { int a2, a5, vn, bf; cpu_flags(&a2, &a5, &vn, &bf); return bf; }

// Block scales: one f16 -> f32 with F16C (both SIMD levels require it).
__attribute__((target("f16c"))) static inline float f16_scalar(const uint8_t *p) {
    uint16_t h; memcpy(&h, p, 2); return _cvtsh_ss(h);
}
// The same scale broadcast to 8 lanes from a broadcast load: _cvtsh_ss compiles to a vpinsrw into a free register,
// which in the q8_0 loop was an accumulator, chaining every block's scale to the previous block's FMA.
__attribute__((target("avx2,f16c"))) static inline __m256 f16_bcast8(const uint8_t *p) {
    int16_t h; memcpy(&h, p, 2); return _mm256_cvtph_ps(_mm_set1_epi16(h));
}

// =====================================================================================================
// MARK: AVX-512
#define T512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

T512 static inline __mmask16 tail16(int64_t n) { return (__mmask16)((1u << n) - 1u); }

T512 static float dot_512(const float *a, const float *b, int64_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    if (i < n) {
        __mmask16 m = tail16(n - i);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

T512 static void axpy_512(float a, const float *x, float *y, int64_t n) {
    __m512 av = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

T512 static uint64_t read_sum_512(const void *p, size_t bytes) {
    const uint8_t *u = (const uint8_t *)p;
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 256 <= bytes; i += 256) {
        s0 = _mm512_add_epi32(s0, _mm512_loadu_si512(u + i));
        s1 = _mm512_add_epi32(s1, _mm512_loadu_si512(u + i + 64));
        s2 = _mm512_add_epi32(s2, _mm512_loadu_si512(u + i + 128));
        s3 = _mm512_add_epi32(s3, _mm512_loadu_si512(u + i + 192));
    }
    for (; i + 64 <= bytes; i += 64) s0 = _mm512_add_epi32(s0, _mm512_loadu_si512(u + i));
    __m512i s = _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3));
    return (uint64_t)(uint32_t)_mm512_reduce_add_epi32(s);
}

// conversions of 16 elements
T512 static inline __m512 bf16x16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}
T512 static inline __m512 bf16x16_mask(const uint16_t *p, __mmask16 m) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
}
T512 static inline __m512 f16x16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
T512 static inline __m512 f16x16_mask(const uint16_t *p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }
T512 static inline __m512 i8x16(const uint8_t *p) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p))); }

T512 static void dequant_f16_512(const void *row, int64_t cols, float *out) {
    const uint16_t *h = (const uint16_t *)row;
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) _mm512_storeu_ps(out + i, f16x16(h + i));
    if (i < cols) { __mmask16 m = tail16(cols - i); _mm512_mask_storeu_ps(out + i, m, f16x16_mask(h + i, m)); }
}

T512 static void dequant_bf16_512(const void *row, int64_t cols, float *out) {
    const uint16_t *h = (const uint16_t *)row;
    int64_t i = 0;
    for (; i + 16 <= cols; i += 16) _mm512_storeu_ps(out + i, bf16x16(h + i));
    if (i < cols) { __mmask16 m = tail16(cols - i); _mm512_mask_storeu_ps(out + i, m, bf16x16_mask(h + i, m)); }
}

// q8_0 matrix-vector with 16-wide steps: the 256-bit loop is bound by instruction count (widen, convert, FMA per
// 8 weights), not memory; two blocks per iteration, one accumulator each.
T512 static void matvec_q8_0_512(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {
    int64_t nb = cols / 32;
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *p = W + (size_t)r * rb;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;
        int64_t b = 0;
        for (; b + 2 <= nb; b += 2, p += 68) {
            __m512 s0 = _mm512_mul_ps(i8x16(p + 2), _mm512_loadu_ps(x + b * 32));
            s0 = _mm512_fmadd_ps(i8x16(p + 18), _mm512_loadu_ps(x + b * 32 + 16), s0);
            __m512 s1 = _mm512_mul_ps(i8x16(p + 36), _mm512_loadu_ps(x + b * 32 + 32));
            s1 = _mm512_fmadd_ps(i8x16(p + 52), _mm512_loadu_ps(x + b * 32 + 48), s1);
            int16_t h0, h1; memcpy(&h0, p, 2); memcpy(&h1, p + 34, 2);
            a0 = _mm512_fmadd_ps(s0, _mm512_cvtph_ps(_mm256_set1_epi16(h0)), a0);
            a1 = _mm512_fmadd_ps(s1, _mm512_cvtph_ps(_mm256_set1_epi16(h1)), a1);
        }
        if (b < nb) {
            __m512 s0 = _mm512_mul_ps(i8x16(p + 2), _mm512_loadu_ps(x + b * 32));
            s0 = _mm512_fmadd_ps(i8x16(p + 18), _mm512_loadu_ps(x + b * 32 + 16), s0);
            int16_t h0; memcpy(&h0, p, 2);
            a0 = _mm512_fmadd_ps(s0, _mm512_cvtph_ps(_mm256_set1_epi16(h0)), a0);
        }
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    }
}

T512 static void dequant_q8_0_512(const void *row, int64_t cols, float *out) {
    const uint8_t *p = (const uint8_t *)row;
    for (int64_t b = 0; b < cols / 32; b++, p += 34) {
        __m512 d = _mm512_set1_ps(f16_scalar(p));
        _mm512_storeu_ps(out + b * 32, _mm512_mul_ps(d, i8x16(p + 2)));
        _mm512_storeu_ps(out + b * 32 + 16, _mm512_mul_ps(d, i8x16(p + 18)));
    }
}

// 4-bit blocks of 32 (q4_0: d, 16 nibble bytes; q4_1: d, m, 16 nibble bytes): element i is the low nibble of byte i,
// element i + 16 its high nibble.
T512 static inline void nibbles16(const uint8_t *q, __m512 *lo, __m512 *hi) {
    __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)q));
    *lo = _mm512_cvtepi32_ps(_mm512_and_si512(w, _mm512_set1_epi32(15)));
    *hi = _mm512_cvtepi32_ps(_mm512_srli_epi32(w, 4));
}

// Weights as gguf-py dequantises them: q4_0 d * (q - 8); q4_1 d * q + m with the product rounded first.
T512 static inline void q4_0_weights(const uint8_t *blk, __m512 *lo, __m512 *hi) {
    __m512 d = _mm512_set1_ps(f16_scalar(blk)), eight = _mm512_set1_ps(8.0f);
    nibbles16(blk + 2, lo, hi);
    *lo = _mm512_mul_ps(d, _mm512_sub_ps(*lo, eight));
    *hi = _mm512_mul_ps(d, _mm512_sub_ps(*hi, eight));
}
T512 static inline void q4_1_weights(const uint8_t *blk, __m512 *lo, __m512 *hi) {
    __m512 d = _mm512_set1_ps(f16_scalar(blk)), m = _mm512_set1_ps(f16_scalar(blk + 2));
    nibbles16(blk + 4, lo, hi);
    *lo = _mm512_add_ps(_mm512_mul_ps(d, *lo), m);
    *hi = _mm512_add_ps(_mm512_mul_ps(d, *hi), m);
}

#define Q4_KERNELS_512(TYPE, BYTES)                                                                         \
T512 static void dequant_##TYPE##_512(const void *row, int64_t cols, float *out) {                          \
    const uint8_t *p = (const uint8_t *)row;                                                                \
    for (int64_t b = 0; b < cols / 32; b++, p += BYTES) {                                                   \
        __m512 lo, hi;                                                                                      \
        TYPE##_weights(p, &lo, &hi);                                                                        \
        _mm512_storeu_ps(out + b * 32, lo);                                                                 \
        _mm512_storeu_ps(out + b * 32 + 16, hi);                                                            \
    }                                                                                                       \
}                                                                                                           \
T512 static void matvec_##TYPE##_512(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y,   \
                                     int64_t r0, int64_t r1) {                                              \
    int64_t nb = cols / 32;                                                                                 \
    for (int64_t r = r0; r < r1; r++) {                                                                     \
        const uint8_t *p = W + (size_t)r * rb;                                                              \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0;                                                           \
        for (int64_t b = 0; b < nb; b++, p += BYTES) {                                                      \
            __m512 lo, hi;                                                                                  \
            TYPE##_weights(p, &lo, &hi);                                                                    \
            a0 = _mm512_fmadd_ps(lo, _mm512_loadu_ps(x + b * 32), a0);                                      \
            a1 = _mm512_fmadd_ps(hi, _mm512_loadu_ps(x + b * 32 + 16), a1);                                 \
        }                                                                                                   \
        y[r] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));                                                 \
    }                                                                                                       \
}
Q4_KERNELS_512(q4_0, 18)
Q4_KERNELS_512(q4_1, 20)

// Matrix-vector products use the 256-bit kernels below at this level too: on Zen 4 they stream weights
// ~10% faster than 512-bit versions of the same loops (measured: f32 28 vs 25 GB/s, bf16 28 vs 24 GB/s, one core).
static void matvec_f32_256(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1);
static void matvec_f16_256(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1);
static void matvec_bf16_256(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1);
static void matvec_q8_0_256(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1);

// v[p] -> lane p = sum of v[p]'s 16 lanes: pairs of lanes, then of 64-bit pairs, then of 128-bit blocks.
T512 static inline __m512 hsum16(const __m512 v[16]) {
    __m512 a[8], b[4];
    for (int i = 0; i < 8; i++)
        a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        __m512d x = _mm512_castps_pd(a[2 * i]), y = _mm512_castps_pd(a[2 * i + 1]);
        b[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    // b[i], 128-bit block k: the block-k sums of v[4i .. 4i+3]
    __m512 d0 = _mm512_add_ps(_mm512_shuffle_f32x4(b[0], b[1], 0x88), _mm512_shuffle_f32x4(b[0], b[1], 0xDD));
    __m512 d1 = _mm512_add_ps(_mm512_shuffle_f32x4(b[2], b[3], 0x88), _mm512_shuffle_f32x4(b[2], b[3], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(d0, d1, 0x88), _mm512_shuffle_f32x4(d0, d1, 0xDD));
}

// 4 x 4 register block: 16 accumulators, 8 loads per 16 FMAs. Missing rows / inputs reuse row / input 0
// and are not stored.
T512 static void gemm_512(const float *w, int64_t ldw, int nr, const float *x, int64_t ldx, int nt,
                          int64_t k, float *y, int64_t ldy, int accumulate) {
    const float *wr[4], *xr[4];
    for (int i = 0; i < 4; i++) { wr[i] = w + (i < nr ? i : 0) * ldw; xr[i] = x + (i < nt ? i : 0) * ldx; }
    __m512 acc[4][4];
    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= k; c += 16) {
        __m512 wv[4], xv[4];
        for (int i = 0; i < 4; i++) wv[i] = _mm512_loadu_ps(wr[i] + c);
        for (int j = 0; j < 4; j++) xv[j] = _mm512_loadu_ps(xr[j] + c);
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = _mm512_fmadd_ps(wv[i], xv[j], acc[i][j]);
    }
    if (c < k) {
        __mmask16 m = tail16(k - c);
        __m512 wv[4], xv[4];
        for (int i = 0; i < 4; i++) wv[i] = _mm512_maskz_loadu_ps(m, wr[i] + c);
        for (int j = 0; j < 4; j++) xv[j] = _mm512_maskz_loadu_ps(m, xr[j] + c);
        for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = _mm512_fmadd_ps(wv[i], xv[j], acc[i][j]);
    }
    // the 16 sums by one transposing reduction (hsum16) rather than 16 reduce_adds: at SmolLM2's 576 columns
    // those were ~20% as many operations as the tile's FMAs
    __m512 v[16];
    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) v[4 * i + j] = acc[i][j];
    float sums[16];
    _mm512_storeu_ps(sums, hsum16(v));
    for (int j = 0; j < nt; j++)
        for (int i = 0; i < nr; i++) {
            const float s = sums[4 * i + j];
            y[j * ldy + i] = accumulate ? y[j * ldy + i] + s : s;
        }
}

// exp(x): x = k ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial for e^r (about 1 ulp), times 2^k.
// x is clamped to [-87.3, 88.37] so the result stays a finite normal number.
T512 static inline __m512 exp_512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.3762626647949f)), _mm512_set1_ps(-87.3365447505531f));
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, k);
}

T512 static inline __m512 silu_512(__m512 x) {
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), exp_512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

T512 static inline __m512 gelu_tanh_512(__m512 x) {
    // tanh(z) = 1 - 2 / (e^{2z} + 1)
    __m512 z = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f),
                             _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), x), _mm512_mul_ps(x, x), x));
    __m512 t = _mm512_sub_ps(_mm512_set1_ps(1.0f), _mm512_div_ps(_mm512_set1_ps(2.0f),
                             _mm512_add_ps(exp_512(_mm512_add_ps(z, z)), _mm512_set1_ps(1.0f))));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), t));
}

#define ACT_MUL_512(NAME, ACT)                                                                              \
T512 static void NAME(float *g, const float *u, int64_t n) {                                                \
    int64_t i = 0;                                                                                          \
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(g + i, _mm512_mul_ps(ACT(_mm512_loadu_ps(g + i)), _mm512_loadu_ps(u + i))); \
    if (i < n) {                                                                                            \
        __mmask16 m = tail16(n - i);                                                                        \
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(ACT(_mm512_maskz_loadu_ps(m, g + i)), _mm512_maskz_loadu_ps(m, u + i))); \
    }                                                                                                       \
}
ACT_MUL_512(silu_mul_512, silu_512)
ACT_MUL_512(gelu_tanh_mul_512, gelu_tanh_512)

// An f16 KV cache's rows (pk_f32_to_f16_row): F16C's rounding to nearest even, subnormals kept, as pk_f32_to_f16.
#define TO_F16_FN(NAME, ATTR, W, LOAD, CVT, STORE, ITYPE)                                                    \
ATTR static void NAME(const float *x, uint16_t *out, int64_t n) {                                          \
    int64_t i = 0;                                                                                          \
    for (; i + W <= n; i += W) STORE((ITYPE *)(out + i), CVT(LOAD(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)); \
    for (; i < n; i++) out[i] = pk_f32_to_f16(x[i]);                                                        \
}
TO_F16_FN(to_f16_512, T512, 16, _mm512_loadu_ps, _mm512_cvtps_ph, _mm256_storeu_si256, __m256i)
TO_F16_FN(to_f16_256, T256, 8, _mm256_loadu_ps, _mm256_cvtps_ph, _mm_storeu_si128, __m128i)

// The attention loop (attention_portable in kernels.c: pk_attention_head with `normalise`, pk_attention_partial
// without) for head sizes of 16 x NC floats. The portable loop makes a dot call and an axpy call per position and
// head, each reducing or storing a 64-float vector, and an expf: ~2.5x the work of the matrix products on SmolLM2
// at 3000 positions. Here 16 positions at a time: the tile's K rows (then V rows) are read from memory once, whole,
// and used from L1 for every head and, for a prompt's block of P query positions (pk_attention_causal; position t
// reads n + t rows), for every position; one product vector per position and head, then hsum16; the exps 16 at a time
// (exp_512); the weighted sum of V in NC registers across the tile. The sums run in another order than the
// portable loop, so the results agree up to f32 rounding.

// K / V tiles are asked for two tiles ahead, the `width` floats of each row the heads read, into L2: at 3000
// positions of SmolLM2 from memory, one core, 30 layers, all heads: 19.4 ms a token without, 18.6 into L1, 13.1
// into L2.
#define PK_ATT_AHEAD 32
static inline __attribute__((always_inline)) void attention_prefetch_tile(const void *X, int64_t ld, int64_t width,
                                                                           int64_t j, int64_t n, int F16) {
    const int es = F16 ? 2 : 4;
    for (int p = 0; p < 16 && j + p < n; p++)
        for (int64_t c = 0; c < width; c += 64 / es) _mm_prefetch((const char *)X + ((j + p) * ld + c) * es, _MM_HINT_T1);
}

// Elements i.. of a K / V array as f32: an f16 cache (F16, a constant in each copy of the loops) widened exactly
// as it is loaded, so each copy runs the f32 loop's operations on the same values.
#define KV_LOAD512(F16, X, i) ((F16) ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)(X) + (i)))) \
                                     : _mm512_loadu_ps((const float *)(X) + (i)))
#define KV_LOAD256(F16, X, i) ((F16) ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)(X) + (i)))) \
                                     : _mm256_loadu_ps((const float *)(X) + (i)))

T512 static inline __attribute__((always_inline)) void attention_512_nc(
        const int NC, const int F16, const float *q, int64_t ldq, int64_t P, int64_t H, int64_t group, const void *K,
        int64_t ldk, const void *V, int64_t ldv, int64_t n, float scale, float softcap, float *scores, int64_t lds, float *m, float *l,
        float *o, int64_t ldo, int normalise) {
    // the key/value heads read, side by side, prefetched; not for one query (pk_attention_head), whose rows were
    // read at the same speed without and 30% slower with it from cache (9 heads x 1024 / 3000 positions)
    const int64_t hd = 16 * NC, width = H * P == 1 ? 0 : ((H - 1) / group + 1) * hd, N = n + P - 1;
    for (int64_t r = 0; r < P * H; r++) m[r] = -INFINITY;
    for (int64_t j = 0; j < N; j += 16) {
        attention_prefetch_tile(K, ldk, width, j + PK_ATT_AHEAD, N, F16);
        for (int64_t t = j < n ? 0 : j - n + 1; t < P; t++) {   // position t reads rows < n + t: from t = j - n + 1 on
            const int mm = n + t - j < 16 ? (int)(n + t - j) : 16;
            for (int64_t h = 0; h < H; h++) {
                const int64_t r = t * H + h, kc = (h / group) * hd;
                const float *qh = q + t * ldq + h * hd;
                __m512 qv[16], acc[16];
                for (int c = 0; c < NC; c++) qv[c] = _mm512_loadu_ps(qh + 16 * c);
                for (int p = 0; p < 16; p++) {
                    const int64_t kr = kc + (j + (p < mm ? p : 0)) * ldk;   // past the end: row j again, not stored
                    __m512 a = _mm512_mul_ps(qv[0], KV_LOAD512(F16, K, kr));
                    for (int c = 1; c < NC; c++) a = _mm512_fmadd_ps(qv[c], KV_LOAD512(F16, K, kr + 16 * c), a);
                    acc[p] = a;
                }
                const __m512 sc = _mm512_mul_ps(hsum16(acc), _mm512_set1_ps(scale));
                _mm512_mask_storeu_ps(scores + r * lds + j, tail16(mm), sc);
                const float tm = _mm512_mask_reduce_max_ps(tail16(mm), sc);
                if (tm > m[r]) m[r] = tm;
            }
        }
    }
    for (int64_t t = 0; t < P; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t r = t * H + h, nt = n + t;
            float *s = scores + r * lds;
            if (softcap > 0) m[r] = pk_softcap_scores(s, nt, softcap);
            __m512 sum = _mm512_setzero_ps();
            for (int64_t j = 0; j < nt; j += 16) {
                const __mmask16 k = tail16(nt - j < 16 ? nt - j : 16);
                __m512 e = _mm512_maskz_mov_ps(k, exp_512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), _mm512_set1_ps(m[r]))));
                _mm512_mask_storeu_ps(s + j, k, e);
                sum = _mm512_add_ps(sum, e);
            }
            l[r] = _mm512_reduce_add_ps(sum);
            if (normalise) {   // the weights divided by their sum first, as the portable loop does
                const __m512 inv = _mm512_set1_ps(1.0f / l[r]);
                for (int64_t j = 0; j < nt; j += 16) {
                    const __mmask16 k = tail16(nt - j < 16 ? nt - j : 16);
                    _mm512_mask_storeu_ps(s + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, s + j), inv));
                }
            }
            for (int c = 0; c < NC; c++) _mm512_storeu_ps(o + t * ldo + h * hd + 16 * c, _mm512_setzero_ps());
        }
    // the weighted sums two queries at a time where they read the same V rows (up to 128 floats a head, so both
    // accumulators and the row stay in registers): each V load serves both, and 2 NC FMA chains run side by side
    // (NC chains of 16 dependent FMAs kept one query's loop at about half the FMA rate); each query's chain is
    // the same operations in the same order as alone
    for (int64_t j = 0; j < N; j += 16) {
        attention_prefetch_tile(V, ldv, width, j + PK_ATT_AHEAD, N, F16);
        int64_t t = j < n ? 0 : j - n + 1, h = 0;
        while (t < P) {
            const int64_t t2 = h + 1 < H ? t : t + 1, h2 = h + 1 < H ? h + 1 : 0;
            const int mm = n + t - j < 16 ? (int)(n + t - j) : 16;
            float *oh = o + t * ldo + h * hd;
            const float *s = scores + (t * H + h) * lds + j;
            const int64_t vc = (h / group) * hd;
            __m512 acc[16];
            for (int c = 0; c < NC; c++) acc[c] = _mm512_loadu_ps(oh + 16 * c);
            if (NC <= 8 && t2 < P && h2 / group == h / group) {
                const int mm2 = n + t2 - j < 16 ? (int)(n + t2 - j) : 16;   // >= mm: t2 >= t
                float *oh2 = o + t2 * ldo + h2 * hd;
                const float *s2 = scores + (t2 * H + h2) * lds + j;
                __m512 acc2[8];
                for (int c = 0; c < NC; c++) acc2[c] = _mm512_loadu_ps(oh2 + 16 * c);
                int p = 0;
                for (; p < mm; p++) {
                    const __m512 pj = _mm512_set1_ps(s[p]), pj2 = _mm512_set1_ps(s2[p]);
                    const int64_t vr = vc + (j + p) * ldv;
                    for (int c = 0; c < NC; c++) {
                        const __m512 v = KV_LOAD512(F16, V, vr + 16 * c);
                        acc[c] = _mm512_fmadd_ps(pj, v, acc[c]);
                        acc2[c] = _mm512_fmadd_ps(pj2, v, acc2[c]);
                    }
                }
                for (; p < mm2; p++) {
                    const __m512 pj2 = _mm512_set1_ps(s2[p]);
                    const int64_t vr = vc + (j + p) * ldv;
                    for (int c = 0; c < NC; c++) acc2[c] = _mm512_fmadd_ps(pj2, KV_LOAD512(F16, V, vr + 16 * c), acc2[c]);
                }
                for (int c = 0; c < NC; c++) _mm512_storeu_ps(oh2 + 16 * c, acc2[c]);
                t = h2 + 1 < H ? t2 : t2 + 1;
                h = h2 + 1 < H ? h2 + 1 : 0;
            } else {
                for (int p = 0; p < mm; p++) {
                    const __m512 pj = _mm512_set1_ps(s[p]);
                    const int64_t vr = vc + (j + p) * ldv;
                    for (int c = 0; c < NC; c++) acc[c] = _mm512_fmadd_ps(pj, KV_LOAD512(F16, V, vr + 16 * c), acc[c]);
                }
                t = t2;
                h = h2;
            }
            for (int c = 0; c < NC; c++) _mm512_storeu_ps(oh + 16 * c, acc[c]);
        }
    }
}

// Head sizes 64, 128, 256 (every architecture here but odd test shapes); 0 means "not handled, use the portable loop".
// (PK_ATTENTION_NC, pk_internal.h: one copy per head size for one query, one for many, each in f32 and f16.)
T512 static int attention_512(const float *q, int64_t ldq, int64_t P, int64_t H, int64_t group, const void *K, int64_t ldk,
                              const void *V, int64_t ldv, int kv, int64_t n, int64_t hd, float scale, float softcap,
                              float *scores, int64_t lds, float *m, float *l, float *o, int64_t ldo, int normalise) {
    switch (hd) {
    case 64: PK_ATTENTION_NC(attention_512_nc, 4); return 1;
    case 128: PK_ATTENTION_NC(attention_512_nc, 8); return 1;
    case 256: PK_ATTENTION_NC(attention_512_nc, 16); return 1;
    default: return 0;
    }
}

// Native f16 decode rows (T = 1): x is already rounded to f16 (pk_native_prepare keeps its bits after the f32
// copy), so both operands are loaded as f16 and widened exactly, as ggml's vec_dot_f16 does. Same products as the
// exact f16 rows on the rounded f32 x, summed in another order. The point is the activation's size: on the
// Llama-3.2-1B shape the down projection's x is 8192 wide, 32 KiB in f32, all of Zen 4's L1, and the streamed
// weights keep evicting it; as f16 it takes 16 KiB. Those 16 products went from 24-26 to 14-17 ms a token (a
// standalone copy of both loops, 2 threads, the mapped file); the 2048-wide ones run the same either way.
// The same for bf16 weights at the levels without AVX512-BF16 (x rounded to bf16, its bits widened by a shift).
#define NATIVE_X16_512(NAME, LOAD, LOADM)                                                                   \
T512 static void NAME(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,  \
                      float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                      \
    (void)xs; (void)T; (void)ldy;                                                                           \
    const uint16_t *x = pk_native_x16(xn, cols);                                                            \
    const int64_t cv = cols & ~(int64_t)63, c16 = cols & ~(int64_t)15;                                      \
    for (int64_t r = r0; r < r1; r++) {                                                                     \
        const uint16_t *w = (const uint16_t *)(W + (size_t)r * rb);                                         \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                         \
        int64_t c = 0;                                                                                      \
        for (; c < cv; c += 64) {                                                                           \
            a0 = _mm512_fmadd_ps(LOAD(w + c), LOAD(x + c), a0);                                             \
            a1 = _mm512_fmadd_ps(LOAD(w + c + 16), LOAD(x + c + 16), a1);                                   \
            a2 = _mm512_fmadd_ps(LOAD(w + c + 32), LOAD(x + c + 32), a2);                                   \
            a3 = _mm512_fmadd_ps(LOAD(w + c + 48), LOAD(x + c + 48), a3);                                   \
        }                                                                                                   \
        for (; c < c16; c += 16) a0 = _mm512_fmadd_ps(LOAD(w + c), LOAD(x + c), a0);                        \
        if (c < cols) {                                                                                     \
            const __mmask16 m = tail16(cols - c);                                                           \
            a1 = _mm512_fmadd_ps(LOADM(w + c, m), LOADM(x + c, m), a1);                                     \
        }                                                                                                   \
        Y[r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));          \
    }                                                                                                       \
}
NATIVE_X16_512(native_f16_512, f16x16, f16x16_mask)
NATIVE_X16_512(native_bf16x_512, bf16x16, bf16x16_mask)

#define PK_OPS_AVX512_COMMON                                                                                \
    .dot = dot_512, .axpy = axpy_512, .gemm = gemm_512, .read_sum = read_sum_512, .attention = attention_512,   \
    .to_f16 = to_f16_512, .native_f16 = native_f16_512, .native_bf16x = native_bf16x_512, .silu_mul = silu_mul_512, .gelu_tanh_mul = gelu_tanh_mul_512,                                           \
    .dequant = { [PK_F16] = dequant_f16_512, [PK_BF16] = dequant_bf16_512, [PK_Q8_0] = dequant_q8_0_512,   \
                 [PK_Q4_0] = dequant_q4_0_512, [PK_Q4_1] = dequant_q4_1_512, PK_X86_QUANT_FNS(dequant, 512),    \
                 PK_X86_IQ_FNS(dequant, 512) },                                                             \
    .matvec = { [PK_F32] = matvec_f32_256, [PK_F16] = matvec_f16_256, [PK_BF16] = matvec_bf16_256, [PK_Q8_0] = matvec_q8_0_512, \
                [PK_Q4_0] = matvec_q4_0_512, [PK_Q4_1] = matvec_q4_1_512, PK_X86_QUANT_FNS(matvec, 512),    \
                PK_X86_IQ_FNS(matvec, 512) },                                                               \
    .exact = { [PK_Q4_0] = &pk_exact512_q4_0, [PK_Q4_1] = &pk_exact512_q4_1, [PK_Q5_0] = &pk_exact512_q5_0,       \
               [PK_Q5_1] = &pk_exact512_q5_1, [PK_IQ4_NL] = &pk_exact512_iq4_nl, [PK_Q8_0] = &pk_exact512_q8_0,    \
               [PK_Q4_K] = &pk_exact512_q4_K, [PK_Q5_K] = &pk_exact512_q5_K, [PK_Q6_K] = &pk_exact512_q6_K,       \
               [PK_IQ4_XS] = &pk_exact512_iq4_xs, [PK_Q2_K] = &pk_exact512_q2_K, [PK_Q3_K] = &pk_exact512_q3_K }

// kernels_iq.c
#define PK_X86_IQ_FNS(F, W)                                                                                 \
    [PK_IQ2_XXS] = pk_##F##_iq2_xxs_##W, [PK_IQ2_XS] = pk_##F##_iq2_xs_##W, [PK_IQ2_S] = pk_##F##_iq2_s_##W, \
    [PK_IQ3_XXS] = pk_##F##_iq3_xxs_##W, [PK_IQ3_S] = pk_##F##_iq3_s_##W, [PK_IQ1_S] = pk_##F##_iq1_s_##W,  \
    [PK_IQ1_M] = pk_##F##_iq1_m_##W
// kernels_x86_quant.c
#define PK_X86_QUANT_FNS(F, W)                                                                              \
    [PK_Q5_0] = pk_##F##_q5_0_##W, [PK_Q5_1] = pk_##F##_q5_1_##W, [PK_IQ4_NL] = pk_##F##_iq4_nl_##W,        \
    [PK_MXFP4] = pk_##F##_mxfp4_##W,                                                                        \
    [PK_Q2_K] = pk_##F##_q2_K_##W, [PK_Q3_K] = pk_##F##_q3_K_##W, [PK_Q4_K] = pk_##F##_q4_K_##W,            \
    [PK_Q5_K] = pk_##F##_q5_K_##W, [PK_Q6_K] = pk_##F##_q6_K_##W, [PK_IQ4_XS] = pk_##F##_iq4_xs_##W

// The exact kernels are the same at the three AVX-512 levels; the VNNI / BF16 levels add the native ones
// (kernels_native.c).
const pk_ops pk_ops_avx512 = { .name = "avx512", PK_OPS_AVX512_COMMON, .native_q8 = pk_native_q8_avx2 };
const pk_ops pk_ops_avx512vnni = { .name = "avx512vnni", PK_OPS_AVX512_COMMON, .native_q8 = pk_native_q8_vnni };
const pk_ops pk_ops_avx512bf16 = { .name = "avx512bf16", PK_OPS_AVX512_COMMON, .native_q8 = pk_native_q8_vnni,
                                   .native_bf16 = pk_native_bf16_avx512bf16 };

// =====================================================================================================
// MARK: AVX2 + FMA + F16C
// T256, hsum256 and the bf16x8 / f16x8 / i8x8 loads are in pk_x86.h.

static const int32_t mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
T256 static inline __m256i tail8(int64_t n) { return _mm256_loadu_si256((const __m256i *)(mask_table + 8 - n)); }

T256 static float dot_256(const float *a, const float *b, int64_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    if (i < n) {
        __m256i m = tail8(n - i);
        s1 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), s1);
    }
    return hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

T256 static void axpy_256(float a, const float *x, float *y, int64_t n) {
    __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

T256 static uint64_t read_sum_256(const void *p, size_t bytes) {
    const uint8_t *u = (const uint8_t *)p;
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    size_t i = 0;
    for (; i + 128 <= bytes; i += 128) {
        s0 = _mm256_add_epi32(s0, _mm256_loadu_si256((const __m256i *)(u + i)));
        s1 = _mm256_add_epi32(s1, _mm256_loadu_si256((const __m256i *)(u + i + 32)));
        s2 = _mm256_add_epi32(s2, _mm256_loadu_si256((const __m256i *)(u + i + 64)));
        s3 = _mm256_add_epi32(s3, _mm256_loadu_si256((const __m256i *)(u + i + 96)));
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(s0, s1), _mm256_add_epi32(s2, s3));
    uint32_t lanes[8];
    _mm256_storeu_si256((__m256i *)lanes, s);
    uint32_t t = 0;
    for (int k = 0; k < 8; k++) t += lanes[k];
    for (; i + 4 <= bytes; i += 4) { uint32_t v; memcpy(&v, u + i, 4); t += v; }
    return t;
}


T256 static void dequant_f16_256(const void *row, int64_t cols, float *out) {
    const uint16_t *h = (const uint16_t *)row;
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(out + i, f16x8(h + i));
    for (; i < cols; i++) out[i] = pk_f16_to_f32(h[i]);
}

T256 static void dequant_bf16_256(const void *row, int64_t cols, float *out) {
    const uint16_t *h = (const uint16_t *)row;
    int64_t i = 0;
    for (; i + 8 <= cols; i += 8) _mm256_storeu_ps(out + i, bf16x8(h + i));
    for (; i < cols; i++) out[i] = pk_bf16_to_f32(h[i]);
}

// q8_0 / q4_0 / q4_1 blocks (pk_x86.h, shared with the small-batch kernels) for the prompt and batch GEMM; the
// q4 types' matrix-vector products go through the exact kernels (kernels_x86_exact256.c), small batches through
// kernels_small.c. Without q4 here the GEMM took the scalar fallback: SmolLM2 Q4_1 at T = 16 ran at 37 GFLOP/s
// against 77 for q8_0, one core.
#define B32_DEQUANT_256(TYPE, BYTES)                                                                        \
T256 static void dequant_##TYPE##_256(const void *row, int64_t cols, float *out) {                          \
    const uint8_t *p = (const uint8_t *)row;                                                                \
    for (int64_t b = 0; b < cols / 32; b++, p += BYTES) {                                                   \
        __m256 w[4];                                                                                        \
        pk_##TYPE##_block(p, w);                                                                            \
        for (int k = 0; k < 4; k++) _mm256_storeu_ps(out + b * 32 + 8 * k, w[k]);                           \
    }                                                                                                       \
}
B32_DEQUANT_256(q8_0, 34)
B32_DEQUANT_256(q4_0, 18)
B32_DEQUANT_256(q4_1, 20)

// Matrix-vector: one row at a time, so each thread reads one sequential stream (the hardware prefetcher's best
// case: measured 16 -> 28 GB/s for f32 on one Zen 4 core against 4 rows side by side); 4 accumulators hide the
// FMA latency. Tails of rows whose length is not a multiple of 8 are finished in scalar code.
// Rows of MATVEC_WIDE_COLS or more (e.g. Llama-3.2-1B's 8192-wide ffn_down: 32 KiB of x, all of Zen 4's L1d) go
// as the quantised exact kernels' wide rows do (PK_EXACT_ROWS, pk_x86.h): PK_EXACT_WIDE_ROWS rows over
// PK_EXACT_WIDE_COLS columns at a time, so a chunk of x stays in L1 for all of them, with the next group of
// rows prefetched in file order (one contiguous run, so the memory stream stays sequential). Each row keeps its
// four accumulators across chunks and adds its products in the same order as in the row-at-a-time loop, so the
// bits do not depend on which rows share a group. The row loop is PK_ROWS_256 (pk_x86.h), shared with q8_0.
// From 6144 columns on (x from 24 KiB): f16 rows, two threads, from memory, 24 matrices of 896 rows, ms old -> new
// (2026-12-07): 4160 columns 4.8-5.2 -> 6.5-6.7 (so narrower rows stay one at a time), 4864 6.5-7.5 -> 7.5-8.0,
// 5632 8.6-8.7 -> 8.7-8.9, 6144 10.6 -> 9.7, 8192 15.7-16.2 -> 13.4-13.9, 14336 26.6-26.9 -> 22.6-22.8; the 16
// down projections (8192 x 2048) of a Llama-3.2-1B decode step 22-23 -> 16.5-18.3 ms.
#define MATVEC_WIDE_COLS 6144
#define MATVEC_256(NAME, ELEM_T, LOAD, CONV)                                                                   \
T256 static inline void NAME##_span(const uint8_t *row, const float *x, int64_t c0, int64_t c1, __m256 a[4],  \
                                    const uint8_t *f) {                                                        \
    const ELEM_T *w0 = (const ELEM_T *)row;                                                                    \
    __m256 a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];                                                         \
    for (int64_t c = c0; c < c1; c += 32) {                                                                    \
        if (f) { pk_prefetch_span(f, 32 * sizeof(ELEM_T)); f += 32 * sizeof(ELEM_T); }                        \
        a0 = _mm256_fmadd_ps(LOAD(w0 + c), _mm256_loadu_ps(x + c), a0);                                        \
        a1 = _mm256_fmadd_ps(LOAD(w0 + c + 8), _mm256_loadu_ps(x + c + 8), a1);                                \
        a2 = _mm256_fmadd_ps(LOAD(w0 + c + 16), _mm256_loadu_ps(x + c + 16), a2);                              \
        a3 = _mm256_fmadd_ps(LOAD(w0 + c + 24), _mm256_loadu_ps(x + c + 24), a3);                              \
    }                                                                                                          \
    a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;                                                                \
}                                                                                                              \
T256 static inline float NAME##_tail(const uint8_t *row, const float *x, int64_t cols, __m256 a[4]) {         \
    const ELEM_T *w0 = (const ELEM_T *)row;                                                                    \
    const int64_t c32 = cols & ~(int64_t)31, cv = cols & ~(int64_t)7;                                         \
    for (int64_t c = c32; c < cv; c += 8) a[0] = _mm256_fmadd_ps(LOAD(w0 + c), _mm256_loadu_ps(x + c), a[0]); \
    float s = hsum256(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));                   \
    for (int64_t c = cv; c < cols; c++) s += CONV(w0[c]) * x[c];                                               \
    return s;                                                                                                  \
}                                                                                                              \
T256 static void NAME(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) { \
    PK_ROWS_256(4, cols & ~(int64_t)31, PK_EXACT_WIDE_COLS, sizeof(ELEM_T), cols >= MATVEC_WIDE_COLS, NAME##_span, \
                NAME##_tail);                                                                                  \
}

#define LOAD_F32_256(p) _mm256_loadu_ps(p)
#define CONV_F32(v) (v)
MATVEC_256(matvec_f32_256, float, LOAD_F32_256, CONV_F32)
MATVEC_256(matvec_bf16_256, uint16_t, bf16x8, pk_bf16_to_f32)
MATVEC_256(matvec_f16_256, uint16_t, f16x8, pk_f16_to_f32)

T256 static inline __m256 q8_block_256(const uint8_t *p, const float *x) {
    __m256 s = _mm256_mul_ps(i8x8(p + 2), _mm256_loadu_ps(x));
    s = _mm256_fmadd_ps(i8x8(p + 10), _mm256_loadu_ps(x + 8), s);
    s = _mm256_fmadd_ps(i8x8(p + 18), _mm256_loadu_ps(x + 16), s);
    return _mm256_fmadd_ps(i8x8(p + 26), _mm256_loadu_ps(x + 24), s);
}

// Blocks b0..b1 of one q8_0 row into a[0], a[1] (pairs, then an odd last block), prefetching f along if set.
T256 static inline void q8_0_span_256(const uint8_t *p0, const float *x, int64_t b0, int64_t b1, __m256 a[2],
                                      const uint8_t *f) {
    __m256 a0 = a[0], a1 = a[1];
    int64_t b = b0;
    p0 += b0 * 34;
    for (; b + 2 <= b1; b += 2, p0 += 68) {
        if (f) { pk_prefetch_span(f, 68); f += 68; }
        a0 = _mm256_fmadd_ps(q8_block_256(p0, x + b * 32), f16_bcast8(p0), a0);
        a1 = _mm256_fmadd_ps(q8_block_256(p0 + 34, x + b * 32 + 32), f16_bcast8(p0 + 34), a1);
    }
    if (b < b1) a0 = _mm256_fmadd_ps(q8_block_256(p0, x + b * 32), f16_bcast8(p0), a0);
    a[0] = a0; a[1] = a1;
}

T256 static inline float q8_0_finish_256(const uint8_t *row, const float *x, int64_t cols, __m256 a[2]) {
    (void)row; (void)x; (void)cols;
    return hsum256(_mm256_add_ps(a[0], a[1]));
}

// One row at a time, or for rows wider than PK_EXACT_WIDE_32 (x above 16 KiB, as the AVX-512 levels' laid-out q8_0
// kernel, kernels_x86_exact32.c) 8 rows over 2048-column chunks with the next rows prefetched, by PK_ROWS_256 as
// MATVEC_256 (the same bits: chunks hold whole pairs, the odd block stays last). AVX2 level, kernel_rows_bench, two
// threads, from memory, 128 MiB, old -> new GB/s (2026-12-07): 4864 columns 13.5-15.5 -> 22.6-24.8, 5632 14.8-17.7
// -> 24.3-26.2, 6144 15.2-17.8 -> 25.0-28.6, 8192 15.1-15.4 -> 22.5-31.1 (65536 x 2048, one at a time: 31.8).
T256 static void matvec_q8_0_256(const uint8_t *W, size_t rb, int64_t cols, const float *x, float *y, int64_t r0, int64_t r1) {
    PK_ROWS_256(2, cols / 32, PK_EXACT_WIDE_COLS / 32, 34, cols > PK_EXACT_WIDE_32, q8_0_span_256, q8_0_finish_256);
}

// v[p] -> lane p = sum of v[p]'s 8 lanes (as hsum16: pairs of lanes, then 64-bit pairs, then the 128-bit halves).
T256 static inline __m256 hsum8x8(const __m256 v[8]) {
    __m256 a[4], b[2];
    for (int i = 0; i < 4; i++)
        a[i] = _mm256_add_ps(_mm256_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm256_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 2; i++) {
        __m256d x = _mm256_castps_pd(a[2 * i]), y = _mm256_castps_pd(a[2 * i + 1]);
        b[i] = _mm256_add_ps(_mm256_castpd_ps(_mm256_unpacklo_pd(x, y)), _mm256_castpd_ps(_mm256_unpackhi_pd(x, y)));
    }
    return _mm256_add_ps(_mm256_permute2f128_ps(b[0], b[1], 0x20), _mm256_permute2f128_ps(b[0], b[1], 0x31));
}

// 4 rows x 2 inputs per pass (8 accumulators fit the 16 ymm registers with the loads).
T256 static void gemm_256(const float *w, int64_t ldw, int nr, const float *x, int64_t ldx, int nt,
                          int64_t k, float *y, int64_t ldy, int accumulate) {
    const float *wr[4];
    for (int i = 0; i < 4; i++) wr[i] = w + (i < nr ? i : 0) * ldw;
    int64_t kv = k & ~(int64_t)7;
    for (int j0 = 0; j0 < nt; j0 += 2) {
        const float *x0 = x + j0 * ldx, *x1 = x + (j0 + 1 < nt ? j0 + 1 : j0) * ldx;
        __m256 acc[4][2];
        for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        for (int64_t c = 0; c < kv; c += 8) {
            __m256 xa = _mm256_loadu_ps(x0 + c), xb = _mm256_loadu_ps(x1 + c);
            for (int i = 0; i < 4; i++) {
                __m256 wv = _mm256_loadu_ps(wr[i] + c);
                acc[i][0] = _mm256_fmadd_ps(wv, xa, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(wv, xb, acc[i][1]);
            }
        }
        // the 8 sums by one transposing reduction, as gemm_512
        __m256 v[8];
        for (int i = 0; i < 4; i++) { v[2 * i] = acc[i][0]; v[2 * i + 1] = acc[i][1]; }
        float sums[8];
        _mm256_storeu_ps(sums, hsum8x8(v));
        for (int jj = 0; jj < 2 && j0 + jj < nt; jj++) {
            const float *xr = jj ? x1 : x0;
            for (int i = 0; i < nr; i++) {
                float s = sums[2 * i + jj];
                for (int64_t c = kv; c < k; c++) s += wr[i][c] * xr[c];
                float *o = y + (j0 + jj) * ldy + i;
                *o = accumulate ? *o + s : s;
            }
        }
    }
}

// Same exp as the AVX-512 one; 2^k built in the exponent bits (x clamped so k stays in [-126, 127]).
T256 static inline __m256 exp_256(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.0f)), _mm256_set1_ps(-87.3365447505531f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

T256 static void silu_mul_256(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp_256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
    }
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

T256 static void gelu_tanh_mul_256(float *g, const float *u, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256 z = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                 _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), x), _mm256_mul_ps(x, x), x));
        __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(_mm256_set1_ps(2.0f),
                                 _mm256_add_ps(exp_256(_mm256_add_ps(z, z)), _mm256_set1_ps(1.0f))));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), t)),
                                             _mm256_loadu_ps(u + i)));
    }
    const float c = 0.7978845608028654f;
    for (; i < n; i++) { float x = g[i]; g[i] = 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x))) * u[i]; }
}

// The attention loop of attention_512_nc in 8-float vectors, for CPUs without AVX-512 (the portable loop was ~1.5x
// slower end to end on SmolLM2 at 3000 positions): 8 positions a tile, the query read from L1 (16 ymm registers
// do not hold a 128-float head beside the products), the weighted sum of V over 64 columns at a time.

T256 static inline __attribute__((always_inline)) void attention_256_nc(
        const int NC, const int F16, const float *q, int64_t ldq, int64_t P, int64_t H, int64_t group, const void *K,
        int64_t ldk, const void *V, int64_t ldv, int64_t n, float scale, float softcap, float *scores, int64_t lds, float *m, float *l,
        float *o, int64_t ldo, int normalise) {
    const int64_t hd = 8 * NC, width = H * P == 1 ? 0 : ((H - 1) / group + 1) * hd, N = n + P - 1;
    for (int64_t r = 0; r < P * H; r++) m[r] = -INFINITY;
    for (int64_t j = 0; j < N; j += 8) {
        if (j % 16 == 0) attention_prefetch_tile(K, ldk, width, j + PK_ATT_AHEAD, N, F16);
        for (int64_t t = j < n ? 0 : j - n + 1; t < P; t++) {
            const int mm = n + t - j < 8 ? (int)(n + t - j) : 8;
            const __m256i tail = tail8(mm);
            for (int64_t h = 0; h < H; h++) {
                const int64_t r = t * H + h, kc = (h / group) * hd;
                const float *qh = q + t * ldq + h * hd;
                __m256 acc[8];
                for (int p = 0; p < 8; p++) {
                    const int64_t kr = kc + (j + (p < mm ? p : 0)) * ldk;   // past the end: row j again, not stored
                    __m256 a = _mm256_mul_ps(_mm256_loadu_ps(qh), KV_LOAD256(F16, K, kr));
                    for (int c = 1; c < NC; c++) a = _mm256_fmadd_ps(_mm256_loadu_ps(qh + 8 * c), KV_LOAD256(F16, K, kr + 8 * c), a);
                    acc[p] = a;
                }
                const __m256 sc = _mm256_mul_ps(hsum8x8(acc), _mm256_set1_ps(scale));
                float tm;
                if (mm == 8) {   // whole tiles by plain stores: a masked store is microcoded on AMD cores
                    _mm256_storeu_ps(scores + r * lds + j, sc);
                    tm = hmax256(sc);
                } else {
                    _mm256_maskstore_ps(scores + r * lds + j, tail, sc);
                    tm = hmax256(_mm256_blendv_ps(_mm256_set1_ps(-INFINITY), sc, _mm256_castsi256_ps(tail)));
                }
                if (tm > m[r]) m[r] = tm;
            }
        }
    }
    for (int64_t t = 0; t < P; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t r = t * H + h, nt = n + t;
            float *s = scores + r * lds;
            if (softcap > 0) m[r] = pk_softcap_scores(s, nt, softcap);
            __m256 sum = _mm256_setzero_ps();
            const __m256 mv = _mm256_set1_ps(m[r]);
            int64_t j = 0;
            for (; j + 8 <= nt; j += 8) {   // whole tiles unmasked (the same values: the mask kept every lane)
                __m256 e = exp_256(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
                _mm256_storeu_ps(s + j, e);
                sum = _mm256_add_ps(sum, e);
            }
            if (j < nt) {
                const __m256i k = tail8(nt - j);
                __m256 e = _mm256_and_ps(exp_256(_mm256_sub_ps(_mm256_maskload_ps(s + j, k), mv)), _mm256_castsi256_ps(k));
                _mm256_maskstore_ps(s + j, k, e);
                sum = _mm256_add_ps(sum, e);
            }
            l[r] = hsum256(sum);
            if (normalise) {   // the weights divided by their sum first, as the portable loop does
                const __m256 inv = _mm256_set1_ps(1.0f / l[r]);
                for (j = 0; j + 8 <= nt; j += 8) _mm256_storeu_ps(s + j, _mm256_mul_ps(_mm256_loadu_ps(s + j), inv));
                if (j < nt) {
                    const __m256i k = tail8(nt - j);
                    _mm256_maskstore_ps(s + j, k, _mm256_mul_ps(_mm256_maskload_ps(s + j, k), inv));
                }
            }
            for (int c = 0; c < NC; c++) _mm256_storeu_ps(o + t * ldo + h * hd + 8 * c, _mm256_setzero_ps());
        }
    // as attention_512_nc, two queries at a time where they read the same V rows, here 32 columns at a time (their
    // 8 accumulators, the 4 row vectors and 2 weights in 16 ymm registers): 6 loads per 8 FMAs instead of 9
    for (int64_t j = 0; j < N; j += 8) {
        if (j % 16 == 0) attention_prefetch_tile(V, ldv, width, j + PK_ATT_AHEAD, N, F16);
        int64_t t = j < n ? 0 : j - n + 1, h = 0;
        while (t < P) {
            const int64_t t2 = h + 1 < H ? t : t + 1, h2 = h + 1 < H ? h + 1 : 0;
            const int mm = n + t - j < 8 ? (int)(n + t - j) : 8;
            const float *s = scores + (t * H + h) * lds + j;
            const int64_t vc = (h / group) * hd;
            if (t2 < P && h2 / group == h / group) {
                const int mm2 = n + t2 - j < 8 ? (int)(n + t2 - j) : 8;   // >= mm: t2 >= t
                const float *s2 = scores + (t2 * H + h2) * lds + j;
                for (int c0 = 0; c0 < NC; c0 += 4) {
                    float *oh = o + t * ldo + h * hd + 8 * c0, *oh2 = o + t2 * ldo + h2 * hd + 8 * c0;
                    __m256 acc[4], acc2[4];
                    for (int c = 0; c < 4; c++) { acc[c] = _mm256_loadu_ps(oh + 8 * c); acc2[c] = _mm256_loadu_ps(oh2 + 8 * c); }
                    int p = 0;
                    for (; p < mm; p++) {
                        const __m256 pj = _mm256_set1_ps(s[p]), pj2 = _mm256_set1_ps(s2[p]);
                        const int64_t vr = vc + (j + p) * ldv + 8 * c0;
                        for (int c = 0; c < 4; c++) {
                            const __m256 v = KV_LOAD256(F16, V, vr + 8 * c);
                            acc[c] = _mm256_fmadd_ps(pj, v, acc[c]);
                            acc2[c] = _mm256_fmadd_ps(pj2, v, acc2[c]);
                        }
                    }
                    for (; p < mm2; p++) {
                        const __m256 pj2 = _mm256_set1_ps(s2[p]);
                        const int64_t vr = vc + (j + p) * ldv + 8 * c0;
                        for (int c = 0; c < 4; c++) acc2[c] = _mm256_fmadd_ps(pj2, KV_LOAD256(F16, V, vr + 8 * c), acc2[c]);
                    }
                    for (int c = 0; c < 4; c++) { _mm256_storeu_ps(oh + 8 * c, acc[c]); _mm256_storeu_ps(oh2 + 8 * c, acc2[c]); }
                }
                t = h2 + 1 < H ? t2 : t2 + 1;
                h = h2 + 1 < H ? h2 + 1 : 0;
                continue;
            }
            for (int c0 = 0; c0 < NC; c0 += 8) {
                float *oh = o + t * ldo + h * hd + 8 * c0;
                __m256 acc[8];
                for (int c = 0; c < 8; c++) acc[c] = _mm256_loadu_ps(oh + 8 * c);
                for (int p = 0; p < mm; p++) {
                    const __m256 pj = _mm256_set1_ps(s[p]);
                    const int64_t vr = vc + (j + p) * ldv + 8 * c0;
                    for (int c = 0; c < 8; c++) acc[c] = _mm256_fmadd_ps(pj, KV_LOAD256(F16, V, vr + 8 * c), acc[c]);
                }
                for (int c = 0; c < 8; c++) _mm256_storeu_ps(oh + 8 * c, acc[c]);
            }
            t = t2;
            h = h2;
        }
    }
}

// Head sizes 64, 128, 256, as attention_512.
T256 static int attention_256(const float *q, int64_t ldq, int64_t P, int64_t H, int64_t group, const void *K, int64_t ldk,
                              const void *V, int64_t ldv, int kv, int64_t n, int64_t hd, float scale, float softcap,
                              float *scores, int64_t lds, float *m, float *l, float *o, int64_t ldo, int normalise) {
    switch (hd) {
    case 64: PK_ATTENTION_NC(attention_256_nc, 8); return 1;
    case 128: PK_ATTENTION_NC(attention_256_nc, 16); return 1;
    case 256: PK_ATTENTION_NC(attention_256_nc, 32); return 1;
    default: return 0;
    }
}

// native_f16_512 / native_bf16x_512 in 8-float vectors (the 16-bit x halves the activation's L1 footprint here too).
#define NATIVE_X16_256(NAME, LOAD, CONV)                                                                    \
T256 static void NAME(const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,  \
                      float *Y, int64_t ldy, int64_t r0, int64_t r1) {                                      \
    (void)xs; (void)T; (void)ldy;                                                                           \
    const uint16_t *x = pk_native_x16(xn, cols);                                                            \
    const int64_t cv = cols & ~(int64_t)31, c8 = cols & ~(int64_t)7;                                        \
    for (int64_t r = r0; r < r1; r++) {                                                                     \
        const uint16_t *w = (const uint16_t *)(W + (size_t)r * rb);                                         \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                                         \
        int64_t c = 0;                                                                                      \
        for (; c < cv; c += 32) {                                                                           \
            a0 = _mm256_fmadd_ps(LOAD(w + c), LOAD(x + c), a0);                                             \
            a1 = _mm256_fmadd_ps(LOAD(w + c + 8), LOAD(x + c + 8), a1);                                     \
            a2 = _mm256_fmadd_ps(LOAD(w + c + 16), LOAD(x + c + 16), a2);                                   \
            a3 = _mm256_fmadd_ps(LOAD(w + c + 24), LOAD(x + c + 24), a3);                                   \
        }                                                                                                   \
        for (; c < c8; c += 8) a0 = _mm256_fmadd_ps(LOAD(w + c), LOAD(x + c), a0);                          \
        float s = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));                     \
        for (; c < cols; c++) s += CONV(w[c]) * CONV(x[c]);                                                 \
        Y[r] = s;                                                                                           \
    }                                                                                                       \
}
NATIVE_X16_256(native_f16_256, f16x8, pk_f16_to_f32)
NATIVE_X16_256(native_bf16x_256, bf16x8, pk_bf16_to_f32)

const pk_ops pk_ops_avx2 = {
    .name = "avx2", .dot = dot_256, .axpy = axpy_256, .gemm = gemm_256, .read_sum = read_sum_256, .attention = attention_256,
    .to_f16 = to_f16_256, .native_f16 = native_f16_256, .native_bf16x = native_bf16x_256,
    .silu_mul = silu_mul_256, .gelu_tanh_mul = gelu_tanh_mul_256,
    .dequant = { [PK_F16] = dequant_f16_256, [PK_BF16] = dequant_bf16_256, [PK_Q8_0] = dequant_q8_0_256,
                 [PK_Q4_0] = dequant_q4_0_256, [PK_Q4_1] = dequant_q4_1_256, PK_X86_QUANT_FNS(dequant, 256),
                 PK_X86_IQ_FNS(dequant, 256) },
    .matvec = { [PK_F32] = matvec_f32_256, [PK_F16] = matvec_f16_256, [PK_BF16] = matvec_bf16_256, [PK_Q8_0] = matvec_q8_0_256,
                PK_X86_QUANT_FNS(matvec, 256), PK_X86_IQ_FNS(matvec, 256) },
    .native_q8 = pk_native_q8_avx2,
    // kernels_x86_exact256.c; q8_0 and iq4_nl measured no faster that way than matvec_q8_0_256 / pk_matvec_iq4_nl_256
    .exact = { [PK_Q4_0] = &pk_exact256_q4_0, [PK_Q4_1] = &pk_exact256_q4_1, [PK_Q5_0] = &pk_exact256_q5_0,
               [PK_Q5_1] = &pk_exact256_q5_1, [PK_Q4_K] = &pk_exact256_q4_K, [PK_Q5_K] = &pk_exact256_q5_K,
               [PK_Q6_K] = &pk_exact256_q6_K, [PK_IQ4_XS] = &pk_exact256_iq4_xs, [PK_Q2_K] = &pk_exact256_q2_K,
               [PK_Q3_K] = &pk_exact256_q3_K },
};

#endif
