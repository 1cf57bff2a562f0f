// Softmax weights over a vocabulary for sampling and log-probabilities (kernels.h: pk_softmax_weights). Every
// level computes each weight with the same operations (one polynomial exp: Cephes' degree-6 e^r after
// x = k ln2 + r, with fused multiply-adds, about 1 ulp), so the weights have the same bits everywhere; only the
// order of the double sum differs. The Double exp per logit it replaces cost 0.2-0.3 ms per token for a 49k
// vocabulary, paid twice (sampling and log-probabilities) and on one thread: 6% of a decode step on SmolLM2-135M.
#include "pk_internal.h"
#include <math.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__aarch64__)
#include <arm_neon.h>
#endif

#define EXP_LO (-87.3365447505531f)   // e^x below this is no longer a normal f32: the weight is 0
#define EXP_HI 88.0f                  // k <= 127, so 2^k is a finite f32 at every level
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f
#define LN2_LO (-2.12194440e-4f)
#define P0 1.9875691500e-4f
#define P1 1.3981999507e-3f
#define P2 8.3334519073e-3f
#define P3 4.1665795894e-2f
#define P4 1.6666665459e-1f
#define P5 5.0000001201e-1f

// The portable weight: the reference every level equals.
static inline float weight1(float v, float shift, float t) {
    float x = (v - shift) / t;
    if (x != x) return x;   // NaN stays NaN, as in the vector code
    if (x < EXP_LO) return 0.0f;
    if (x > EXP_HI) x = EXP_HI;
    const float k = nearbyintf(x * LOG2E);
    float r = fmaf(-k, LN2_HI, x);
    r = fmaf(-k, LN2_LO, r);
    float p = P0;
    p = fmaf(p, r, P1);
    p = fmaf(p, r, P2);
    p = fmaf(p, r, P3);
    p = fmaf(p, r, P4);
    p = fmaf(p, r, P5);
    p = fmaf(p, r * r, r + 1.0f);
    return ldexpf(p, (int)k);   // k >= -126: 2^k is normal, so this is one rounding, as the vector multiplies
}

float pk_softmax_weight(float v, float shift, float t) { return weight1(v, shift, t); }

static double weights_scalar(const float *x, int64_t n, float shift, float t, float cut, float *out) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        float e = weight1(x[i], shift, t);
        if (e < cut) e = 0;
        if (out) out[i] = e;
        s += (double)e;
    }
    return s;
}

#if defined(__x86_64__)
#define T512 __attribute__((target("avx512f,avx512dq,avx2,fma")))
#define T256 __attribute__((target("avx2,fma")))

T512 static inline __m512 weights16(__m512 v, __m512 shift, __m512 t, __m512 cut) {
    __m512 x = _mm512_div_ps(_mm512_sub_ps(v, shift), t);
    const __mmask16 keep = _mm512_cmp_ps_mask(x, _mm512_set1_ps(EXP_LO), _CMP_NLT_UQ);   // NaN kept: it stays NaN
    x = _mm512_min_ps(_mm512_set1_ps(EXP_HI), x);   // min returns its second operand for a NaN
    const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_HI), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(LN2_LO), r);
    __m512 p = _mm512_set1_ps(P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const __m512 e = _mm512_maskz_mov_ps(keep, _mm512_scalef_ps(p, k));
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(e, cut, _CMP_NLT_UQ), e);
}

T512 static double weights_512(const float *x, int64_t n, float shift, float t, float cut, float *out) {
    const __m512 vs = _mm512_set1_ps(shift), vt = _mm512_set1_ps(t), vc = _mm512_set1_ps(cut);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        const __m512 e = _mm512_maskz_mov_ps(m, weights16(_mm512_maskz_loadu_ps(m, x + i), vs, vt, vc));
        if (out) _mm512_mask_storeu_ps(out + i, m, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

T256 static inline __m256 weights8(__m256 v, __m256 shift, __m256 t, __m256 cut) {
    __m256 x = _mm256_div_ps(_mm256_sub_ps(v, shift), t);
    const __m256 keep = _mm256_cmp_ps(x, _mm256_set1_ps(EXP_LO), _CMP_NLT_UQ);
    x = _mm256_min_ps(_mm256_set1_ps(EXP_HI), x);
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_HI), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(LN2_LO), r);
    __m256 p = _mm256_set1_ps(P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    // 2^k in the exponent bits (k in [-126, 127]); NaN lanes give a NaN p, kept
    const __m256i e2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    const __m256 e = _mm256_and_ps(keep, _mm256_mul_ps(p, _mm256_castsi256_ps(e2)));
    return _mm256_and_ps(_mm256_cmp_ps(e, cut, _CMP_NLT_UQ), e);
}

T256 static double weights_256(const float *x, int64_t n, float shift, float t, float cut, float *out) {
    const __m256 vs = _mm256_set1_ps(shift), vt = _mm256_set1_ps(t), vc = _mm256_set1_ps(cut);
    __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = weights8(_mm256_loadu_ps(x + i), vs, vt, vc);
        if (out) _mm256_storeu_ps(out + i, e);
        s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    __m256d s = _mm256_add_pd(s0, s1);
    __m128d h = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd(s, 1));
    double sum = _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
    return sum + weights_scalar(x + i, n - i, shift, t, cut, out ? out + i : NULL);
}
#endif

#if defined(__aarch64__)
static inline float32x4_t weights4(float32x4_t v, float32x4_t shift, float32x4_t t, float32x4_t cut) {
    float32x4_t x = vdivq_f32(vsubq_f32(v, shift), t);
    const uint32x4_t low = vcltq_f32(x, vdupq_n_f32(EXP_LO));
    x = vminq_f32(x, vdupq_n_f32(EXP_HI));
    const float32x4_t k = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(LOG2E)));
    float32x4_t r = vfmsq_f32(x, k, vdupq_n_f32(LN2_HI));
    r = vfmsq_f32(r, k, vdupq_n_f32(LN2_LO));
    float32x4_t p = vdupq_n_f32(P0);
    p = vfmaq_f32(vdupq_n_f32(P1), p, r);
    p = vfmaq_f32(vdupq_n_f32(P2), p, r);
    p = vfmaq_f32(vdupq_n_f32(P3), p, r);
    p = vfmaq_f32(vdupq_n_f32(P4), p, r);
    p = vfmaq_f32(vdupq_n_f32(P5), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    const int32x4_t e2 = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127)), 23);
    float32x4_t e = vmulq_f32(p, vreinterpretq_f32_s32(e2));
    e = vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(e), low));
    return vreinterpretq_f32_u32(vbicq_u32(vreinterpretq_u32_f32(e), vcltq_f32(e, cut)));
}

static double weights_neon(const float *x, int64_t n, float shift, float t, float cut, float *out) {
    const float32x4_t vs = vdupq_n_f32(shift), vt = vdupq_n_f32(t), vc = vdupq_n_f32(cut);
    float64x2_t s0 = vdupq_n_f64(0), s1 = vdupq_n_f64(0);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t e = weights4(vld1q_f32(x + i), vs, vt, vc);
        if (out) vst1q_f32(out + i, e);
        s0 = vaddq_f64(s0, vcvt_f64_f32(vget_low_f32(e)));
        s1 = vaddq_f64(s1, vcvt_high_f64_f32(e));
    }
    return vaddvq_f64(vaddq_f64(s0, s1)) + weights_scalar(x + i, n - i, shift, t, cut, out ? out + i : NULL);
}
#endif

double pk_softmax_weights(const float *x, int64_t n, float shift, float t, float cut, float *out) {
    if (n <= 0) return 0;
    const char *level = pk_ops_current()->name;
#if defined(__x86_64__)
    if (pk_level_avx512(level)) return weights_512(x, n, shift, t, cut, out);
    if (!strcmp(level, "avx2")) return weights_256(x, n, shift, t, cut, out);
#endif
#if defined(__aarch64__)
    if (!strcmp(level, "neon")) return weights_neon(x, n, shift, t, cut, out);
#endif
    (void)level;
    return weights_scalar(x, n, shift, t, cut, out);
}
