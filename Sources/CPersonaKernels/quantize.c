// Weight quantisers for `persona convert --quantize`: llama.cpp's reference quantisers (ggml-quants.c,
// quantize_row_<type>_ref, what `llama-quantize` runs when no importance matrix is given), written so that the
// output is the same bytes. Every operation is rounded where ggml's C rounds it: no contraction into FMAs
// (llama.cpp's build keeps these as separate multiplies and adds; checked against its output by the tests).
// At the AVX-512 levels the scale searches (make_qkx2_quants, make_qx_quants, the IQ4 trials) run their trials in
// vector lanes, each lane doing one trial's operations in ggml's order, so the bytes are the same at every level.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "pk_internal.h"
#include <float.h>
#include <math.h>
#include <string.h>

int pk_quantize_supported(int dtype) {
    switch (dtype) {
    case PK_Q8_0: case PK_Q4_0: case PK_Q4_1: case PK_Q5_0: case PK_Q5_1: case PK_Q2_K: case PK_Q3_K: case PK_Q4_K: case PK_Q5_K:
    case PK_Q6_K: case PK_IQ4_NL: case PK_IQ4_XS: return 1;
    default: return 0;
    }
}

static inline void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline float f16_round(float v) { return pk_f16_to_f32(pk_f32_to_f16(v)); }

// Round to nearest, ties to even, by adding 1.5 * 2^23 (ggml's nearest_int; valid for |v| < 2^22).
static inline int nearest_int(float v) {
    float t = v + 12582912.f;
    int32_t i; memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

// The value of largest magnitude (the first one on ties), with its sign.
static inline float signed_absmax(const float *x, int n, float *amax_out) {
    float amax = 0, max = 0;
    for (int j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        if (amax < a) { amax = a; max = x[j]; }
    }
    if (amax_out) *amax_out = amax;
    return max;
}

// q4_0 / q5_0: d = max / -2^(bits-1) so the extreme value maps to level 0; q = trunc(x/d + 2^(bits-1) + 0.5).
static void quantize_sym(const float *x, int64_t nb, uint8_t *o, int bits) {
    const int half = 1 << (bits - 1), top = (1 << bits) - 1;
    const size_t bb = bits == 4 ? 18 : 22;
    for (int64_t b = 0; b < nb; b++, x += 32, o += bb) {
        float max = signed_absmax(x, 32, NULL);
        float d = max / (float)-half;
        float id = d != 0 ? 1.0f / d : 0.0f;
        put16(o, pk_f32_to_f16(d));
        uint8_t *qs = o + (bits == 4 ? 2 : 6);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            float x0 = x[j] * id, x1 = x[j + 16] * id;
            int q0 = (int8_t)(x0 + ((float)half + 0.5f)), q1 = (int8_t)(x1 + ((float)half + 0.5f));
            uint8_t l0 = (uint8_t)(q0 < top ? q0 : top), l1 = (uint8_t)(q1 < top ? q1 : top);
            qs[j] = (uint8_t)((l0 & 0x0F) | ((l1 & 0x0F) << 4));
            qh |= (uint32_t)((l0 >> 4) & 1) << j;
            qh |= (uint32_t)((l1 >> 4) & 1) << (j + 16);
        }
        if (bits == 5) memcpy(o + 2, &qh, 4);
    }
}

// q4_1 / q5_1: d = (max - min) / (2^bits - 1), m = min; q = trunc((x - min)/d + 0.5). ggml clamps q4_1 to 15 and
// leaves q5_1 unclamped (its largest value can only round to 31).
static void quantize_affine(const float *x, int64_t nb, uint8_t *o, int bits) {
    const int top = (1 << bits) - 1;
    const size_t bb = bits == 4 ? 20 : 24;
    for (int64_t b = 0; b < nb; b++, x += 32, o += bb) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < 32; j++) {
            if (x[j] < min) min = x[j];
            if (x[j] > max) max = x[j];
        }
        float d = (max - min) / (float)top;
        float id = d != 0 ? 1.0f / d : 0.0f;
        put16(o, pk_f32_to_f16(d));
        put16(o + 2, pk_f32_to_f16(min));
        uint8_t *qs = o + (bits == 4 ? 4 : 8);
        uint32_t qh = 0;
        for (int j = 0; j < 16; j++) {
            float x0 = (x[j] - min) * id, x1 = (x[j + 16] - min) * id;
            uint8_t l0, l1;
            if (bits == 4) {
                int q0 = (int8_t)(x0 + 0.5f), q1 = (int8_t)(x1 + 0.5f);
                l0 = (uint8_t)(q0 < 15 ? q0 : 15); l1 = (uint8_t)(q1 < 15 ? q1 : 15);
            } else {
                l0 = (uint8_t)(x0 + 0.5f); l1 = (uint8_t)(x1 + 0.5f);
            }
            qs[j] = (uint8_t)((l0 & 0x0F) | ((l1 & 0x0F) << 4));
            qh |= (uint32_t)((l0 >> 4) & 1) << j;
            qh |= (uint32_t)((l1 >> 4) & 1) << (j + 16);
        }
        if (bits == 5) memcpy(o + 4, &qh, 4);
    }
}

// make_qx_quants' levels for a scale: L[i] = nmax + nearest_int(iscale x[i]) clamped to [-nmax, nmax - 1].
static void qx_levels(int n, int nmax, float iscale, const float *x, int8_t *L) {
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : (l > nmax - 1 ? nmax - 1 : l)));
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#define TQ512 __attribute__((target("avx512f")))
// nearest_int per lane: the same addition of 1.5 * 2^23 and the same bits.
TQ512 static inline __m512i nearest_int_512(__m512 v) {
    const __m512 t = _mm512_add_ps(v, _mm512_set1_ps(12582912.f));
    return _mm512_sub_epi32(_mm512_and_si512(_mm512_castps_si512(t), _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x00400000));
}
// make_qx_quants' 18 trial scales (is = -9..9 but 0), 16 lanes at a time: each lane's sums over the n values in
// the scalar loop's order, so sumlx[t] and suml2[t] are the scalar loop's for trial t. (Unlike make_qkx2_quants'
// trials these do not depend on each other; only the choice among them does, made in order by the caller.)
TQ512 static void qx_trials_512(int n, int nmax, const float *x, float max, float *sumlx, float *suml2) {
    const __m512i lo = _mm512_set1_epi32(-nmax), hi = _mm512_set1_epi32(nmax - 1);
    for (int t0 = 0; t0 < 18; t0 += 16) {
        const __m512i t = _mm512_add_epi32(_mm512_set1_epi32(t0), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        const __m512i is = _mm512_add_epi32(_mm512_sub_epi32(t, _mm512_set1_epi32(9)),   // trial t: is = t - 9, + 1 from t = 9 on
                                            _mm512_maskz_set1_epi32(_mm512_cmpge_epi32_mask(t, _mm512_set1_epi32(9)), 1));
        const __m512 a = _mm512_add_ps(_mm512_set1_ps((float)nmax), _mm512_mul_ps(_mm512_set1_ps(0.1f), _mm512_cvtepi32_ps(is)));
        const __m512 iscale = _mm512_div_ps(_mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), _mm512_set1_epi32((int)0x80000000u))),
                                            _mm512_set1_ps(max));
        __m512 slx = _mm512_setzero_ps(), sl2 = slx;
        for (int i = 0; i < n; i++) {
            const __m512i l = nearest_int_512(_mm512_mul_ps(iscale, _mm512_set1_ps(x[i])));
            const __m512 lf = _mm512_cvtepi32_ps(_mm512_min_epi32(_mm512_max_epi32(l, lo), hi));
            const float w = x[i] * x[i], wx = w * x[i];
            slx = _mm512_add_ps(slx, _mm512_mul_ps(_mm512_set1_ps(wx), lf));
            sl2 = _mm512_add_ps(sl2, _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(w), lf), lf));
        }
        float a16[16], b16[16];
        _mm512_storeu_ps(a16, slx); _mm512_storeu_ps(b16, sl2);
        for (int k = 0; k < 16 && t0 + k < 18; k++) { sumlx[t0 + k] = a16[k]; suml2[t0 + k] = b16[k]; }
    }
}
#endif

// ggml's make_qx_quants with rmse_type 1 (weights x^2), no importance matrix: a symmetric scale for n values on
// levels [-nmax, nmax - 1], refined over 18 trial scales by the weighted least-squares fit. L gets level + nmax.
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float amax;
    float max = signed_absmax(x, n, &amax);
    if (amax < 1e-15f) { memset(L, 0, (size_t)n); return 0.f; }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : (l > nmax - 1 ? nmax - 1 : l);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
#if defined(__x86_64__)
    if (pk_level_avx512(pk_ops_current()->name)) {   // the trials' sums 16 at a time, then the same choice
        float tlx[18], tl2[18];
        qx_trials_512(n, nmax, x, max, tlx, tl2);
        for (int t = 0; t < 18; t++) {
            const int is = t < 9 ? t - 9 : t - 8;
            if (tl2[t] > 0 && tlx[t] * tlx[t] > best * tl2[t]) {
                qx_levels(n, nmax, -(nmax + 0.1f * is) / max, x, L);
                scale = tlx[t] / tl2[t];
                best = scale * tlx[t];
            }
        }
        return scale;
    }
#endif
    for (int is = -9; is <= 9; is++) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : (l > nmax - 1 ? nmax - 1 : l);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            qx_levels(n, nmax, iscale, x, L);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// q6_K (210 bytes per 256): ql[128] low nibbles, qh[64] high 2-bit pairs, int8 scales[16] per 16 values, f16 d.
static void quantize_q6_k(const float *x, int64_t nb, uint8_t *o) {
    int8_t L[256];
    float scales[16];
    for (int64_t b = 0; b < nb; b++, x += 256, o += 210) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            float s = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = s;
            if (fabsf(s) > max_abs_scale) { max_abs_scale = fabsf(s); max_scale = s; }
        }
        uint8_t *ql = o, *qh = o + 128;
        int8_t *sc = (int8_t *)(o + 192);
        if (max_abs_scale < 1e-15f) { memset(o, 0, 210); continue; }
        float iscale = -128.f / max_scale;
        put16(o + 208, pk_f32_to_f16(1 / iscale));
        float d16 = f16_round(1 / iscale);
        for (int ib = 0; ib < 16; ib++) {
            int v = nearest_int(iscale * scales[ib]);
            sc[ib] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            float d = d16 * sc[j];
            if (d == 0) continue;
            for (int i = 0; i < 16; i++) {
                int l = nearest_int(x[16 * j + i] / d);
                l = l < -32 ? -32 : (l > 31 ? 31 : l);
                L[16 * j + i] = (int8_t)(l + 32);
            }
        }
        for (int j = 0; j < 256; j += 128) {
            for (int l = 0; l < 32; l++) {
                uint8_t q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
            ql += 64;
            qh += 32;
        }
    }
}

#if defined(__x86_64__)
// make_qkx2_quants' trial scales 16 at a time, one per lane. Each lane runs its trial's operations in the scalar
// loop's order (the sums over i run sequentially within the lane; separate multiplies and adds), so every lane
// computes the scalar loop's numbers bit for bit. The trials are not independent: a trial that beats the best
// error replaces `min`, which the later trials' levels and scales use. So this returns the first lane that beats
// *best_error (-1 if none), and the caller restarts after it with the new min: the scalar loop's sequence.
TQ512 static int qkx2_trials_512(int n, int nmax, const float *x, const float *weights, float min, float max, float sum_w,
                                 float sum_x, float rmin, float rdelta, int is0, int count, int use_mad,
                                 float *best_error, float *best_scale, float *best_min) {
    const __mmask16 live = (__mmask16)((1u << count) - 1);
    const __m512 is = _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_set1_epi32(is0),
                                                          _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)));
    const __m512 iscale = _mm512_div_ps(_mm512_add_ps(_mm512_add_ps(_mm512_set1_ps(rmin), _mm512_mul_ps(_mm512_set1_ps(rdelta), is)),
                                                      _mm512_set1_ps((float)nmax)),
                                        _mm512_set1_ps(max - min));
    const __m512i top = _mm512_set1_epi32(nmax), zero = _mm512_setzero_si512();
    __m512 lf[32], sl = _mm512_setzero_ps(), sl2 = sl, sxl = sl;
    for (int i = 0; i < n; i++) {   // nearest_int, clamped to [0, nmax]
        const __m512i l = nearest_int_512(_mm512_mul_ps(iscale, _mm512_set1_ps(x[i] - min)));
        lf[i] = _mm512_cvtepi32_ps(_mm512_min_epi32(_mm512_max_epi32(l, zero), top));
        const __m512 wl = _mm512_mul_ps(_mm512_set1_ps(weights[i]), lf[i]);
        sl = _mm512_add_ps(sl, wl);
        sl2 = _mm512_add_ps(sl2, _mm512_mul_ps(wl, lf[i]));
        sxl = _mm512_add_ps(sxl, _mm512_mul_ps(wl, _mm512_set1_ps(x[i])));
    }
    const __m512 sw = _mm512_set1_ps(sum_w), sx = _mm512_set1_ps(sum_x);
    const __m512 D = _mm512_sub_ps(_mm512_mul_ps(sw, sl2), _mm512_mul_ps(sl, sl));
    const __mmask16 valid = _mm512_mask_cmp_ps_mask(live, D, _mm512_setzero_ps(), _CMP_GT_OQ);
    if (!valid) return -1;
    __m512 scale = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sw, sxl), _mm512_mul_ps(sx, sl)), D);
    __m512 mn = _mm512_div_ps(_mm512_sub_ps(_mm512_mul_ps(sl2, sx), _mm512_mul_ps(sl, sxl)), D);
    const __mmask16 pos = _mm512_cmp_ps_mask(mn, _mm512_setzero_ps(), _CMP_GT_OQ);
    scale = _mm512_mask_div_ps(scale, pos, sxl, sl2);
    mn = _mm512_mask_mov_ps(mn, pos, _mm512_setzero_ps());
    __m512 err = _mm512_setzero_ps();
    for (int i = 0; i < n; i++) {
        __m512 diff = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(scale, lf[i]), mn), _mm512_set1_ps(x[i]));
        diff = use_mad ? _mm512_abs_ps(diff) : _mm512_mul_ps(diff, diff);
        err = _mm512_add_ps(err, _mm512_mul_ps(_mm512_set1_ps(weights[i]), diff));
    }
    const __mmask16 better = _mm512_mask_cmp_ps_mask(valid, err, _mm512_set1_ps(*best_error), _CMP_LT_OQ);
    if (!better) return -1;
    float e[16], sc[16], m[16];
    _mm512_storeu_ps(e, err); _mm512_storeu_ps(sc, scale); _mm512_storeu_ps(m, mn);
    const int k = __builtin_ctz(better);
    *best_error = e[k]; *best_scale = sc[k]; *best_min = m[k];
    return k;
}
#endif

// make_qkx2_quants' levels for a scale and min: L[i] = nearest_int(iscale (x[i] - min)) clamped to [0, nmax].
static void qkx_levels(int n, int nmax, float iscale, float min, const float *x, uint8_t *L) {
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)(l < 0 ? 0 : (l > nmax ? nmax : l));
    }
}

// ggml's make_qkx2_quants: levels [0, nmax] with a scale and a (negative) min for n values, the weighted error
// of each of nstep + 1 trial scales refit by least squares (use_mad: absolute error, else squared). Returns the
// scale and writes -min to *the_min. At the AVX-512 levels the trials run 16 at a time (qkx2_trials_512), the
// same numbers in the same sequence, so the same bytes as llama.cpp's quantizer.
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min,
                              uint8_t *Laux, float rmin, float rdelta, int nstep, int use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; i++) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    qkx_levels(n, nmax, iscale, min, x, L);
    for (int i = 0; i < n; i++) {
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
#if defined(__x86_64__)
    if (n <= 32 && pk_level_avx512(pk_ops_current()->name)) {
        for (int is0 = 0; is0 <= nstep;) {
            float e = best_error, sc, mn;
            const int k = qkx2_trials_512(n, nmax, x, weights, min, max, sum_w, sum_x, rmin, rdelta, is0,
                                          nstep + 1 - is0 < 16 ? nstep + 1 - is0 : 16, use_mad, &e, &sc, &mn);
            if (k < 0) { is0 += 16; continue; }
            qkx_levels(n, nmax, (rmin + rdelta * (is0 + k) + nmax) / (max - min), min, x, L);   // with the min it ran with
            best_error = e;
            scale = sc;
            min = mn;
            is0 += k + 1;
        }
        *the_min = -min;
        return scale;
    }
#endif
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * (x[i] - min));
            l = l < 0 ? 0 : (l > nmax ? nmax : l);
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; i++) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// q4_K (144 bytes per 256: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 nibble bytes) and q5_K (176:
// the same plus 32 bytes of fifth bits before the nibbles): 8 sub-blocks of 32, each fit by make_qkx2_quants with
// weights av_x + |x|, their scales and mins quantised to 6 bits against the largest.
static void quantize_qk_k(const float *x, int64_t nb, uint8_t *o, int bits) {
    const int nmax = (1 << bits) - 1;
    const size_t bb = bits == 4 ? 144 : 176;
    uint8_t L[256], Laux[32];
    float weights[32], mins[8], scales[8];
    for (int64_t b = 0; b < nb; b++, x += 256, o += bb) {
        uint8_t *sc = o + 4;
        memset(sc, 0, 12);
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 8; j++) {
            float sum_x2 = 0;
            for (int l = 0; l < 32; l++) sum_x2 += x[32 * j + l] * x[32 * j + l];
            float av_x = sqrtf(sum_x2 / 32);
            for (int l = 0; l < 32; l++) weights[l] = av_x + fabsf(x[32 * j + l]);
            scales[j] = bits == 4 ? make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20, 0)
                                  : make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 0);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
        float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
        for (int j = 0; j < 8; j++) {
            uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
            uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
            if (ls > 63) ls = 63;
            if (lm > 63) lm = 63;
            if (j < 4) { sc[j] = ls; sc[j + 4] = lm; }
            else {
                sc[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
                sc[j - 4] |= (uint8_t)((ls >> 4) << 6);
                sc[j] |= (uint8_t)((lm >> 4) << 6);
            }
        }
        put16(o, pk_f32_to_f16(max_scale / 63.f));
        put16(o + 2, pk_f32_to_f16(max_min / 63.f));
        float d16 = f16_round(max_scale / 63.f), dmin16 = f16_round(max_min / 63.f);
        for (int j = 0; j < 8; j++) {
            uint8_t s6, m6;
            pk_scale_min_k4(j, sc, &s6, &m6);
            float d = d16 * s6;
            if (d == 0) continue;
            float dm = dmin16 * m6;
            for (int i = 0; i < 32; i++) {
                int l = nearest_int((x[32 * j + i] + dm) / d);
                L[32 * j + i] = (uint8_t)(l < 0 ? 0 : (l > nmax ? nmax : l));
            }
        }
        if (bits == 4) {
            uint8_t *q = o + 16;
            for (int j = 0; j < 256; j += 64, q += 32)
                for (int l = 0; l < 32; l++) q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        } else {
            uint8_t *qh = o + 16, *ql = o + 48;
            memset(qh, 0, 32);
            uint8_t m1 = 1, m2 = 2;
            for (int n = 0; n < 256; n += 64, ql += 32) {
                for (int j = 0; j < 32; j++) {
                    int l1 = L[n + j], l2 = L[n + j + 32];
                    if (l1 > 15) { l1 -= 16; qh[j] |= m1; }
                    if (l2 > 15) { l2 -= 16; qh[j] |= m2; }
                    ql[j] = (uint8_t)(l1 | (l2 << 4));
                }
                m1 = (uint8_t)(m1 << 2); m2 = (uint8_t)(m2 << 2);
            }
        }
    }
}

// q2_K (84 bytes per 256: 16 bytes of 4-bit scale | 4-bit min per 16 values, 64 bytes of 2-bit levels, f16 d, f16
// dmin): each 16 fit by make_qkx2_quants on |x| weights with absolute error, scales and mins quantised to 4 bits
// against the largest, then the levels refit to the rounded scales.
static void quantize_q2_k(const float *x, int64_t nb, uint8_t *o) {
    uint8_t L[256], Laux[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t b = 0; b < nb; b++, x += 256, o += 84) {
        uint8_t *sc = o, *qs = o + 16;
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++) weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, 1);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++) sc[j] = (uint8_t)nearest_int(iscale * scales[j]);
            put16(o + 80, pk_f32_to_f16(max_scale / q4scale));
        } else {
            memset(sc, 0, 16);
            put16(o + 80, pk_f32_to_f16(0.f));
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++) sc[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            put16(o + 82, pk_f32_to_f16(max_min / q4scale));
        } else {
            put16(o + 82, pk_f32_to_f16(0.f));
        }
        uint16_t dh, mh;
        memcpy(&dh, o + 80, 2); memcpy(&mh, o + 82, 2);
        const float d16 = pk_f16_to_f32(dh), dmin16 = pk_f16_to_f32(mh);
        for (int j = 0; j < 16; j++) {
            const float d = d16 * (sc[j] & 0xF);
            if (!d) continue;
            const float dm = dmin16 * (sc[j] >> 4);
            for (int i = 0; i < 16; i++) {
                int l = nearest_int((x[16 * j + i] + dm) / d);
                L[16 * j + i] = (uint8_t)(l < 0 ? 0 : (l > 3 ? 3 : l));
            }
        }
        for (int j = 0; j < 256; j += 128)
            for (int l = 0; l < 32; l++)
                qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

#define GROUP_MAX_EPS 1e-15f

// ggml's make_q3_quants: symmetric levels [-nmax, nmax) for n values, with do_rmse a few passes that move single
// levels while the weighted (x^2) fit improves. Returns the scale; L holds levels + nmax.
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L, int do_rmse) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < GROUP_MAX_EPS) {
        for (int i = 0; i < n; i++) L[i] = 0;
        return 0.f;
    }
    float iscale = -nmax / max;
    if (do_rmse) {
        float sumlx = 0, suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = nearest_int(iscale * x[i]);
            l = l < -nmax ? -nmax : (l > nmax - 1 ? nmax - 1 : l);
            L[i] = (int8_t)l;
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        for (int itry = 0; itry < 5; itry++) {
            int n_changed = 0;
            for (int i = 0; i < n; i++) {
                float w = x[i] * x[i];
                float slx = sumlx - w * x[i] * L[i];
                if (slx > 0) {
                    float sl2 = suml2 - w * L[i] * L[i];
                    int new_l = nearest_int(x[i] * sl2 / slx);
                    new_l = new_l < -nmax ? -nmax : (new_l > nmax - 1 ? nmax - 1 : new_l);
                    if (new_l != L[i]) {
                        slx += w * x[i] * new_l;
                        sl2 += w * new_l * new_l;
                        if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                            L[i] = (int8_t)new_l; sumlx = slx; suml2 = sl2;
                            n_changed++;
                        }
                    }
                }
            }
            if (!n_changed) break;
        }
        for (int i = 0; i < n; i++) L[i] = (int8_t)(L[i] + nmax);
        return sumlx / suml2;
    }
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * x[i]);
        l = l < -nmax ? -nmax : (l > nmax - 1 ? nmax - 1 : l);
        L[i] = (int8_t)(l + nmax);
    }
    return 1 / iscale;
}

// q3_K (110 bytes per 256: 32 bytes of high bits, 64 bytes of 2-bit low bits, 12 bytes of 6-bit signed scales
// per 16 values, f16 d): each 16 fit by make_q3_quants, the scales quantised to 6 bits against the largest in
// magnitude, then the levels refit to the rounded scales.
static void quantize_q3_k(const float *x, int64_t nb, uint8_t *o) {
    int8_t L[256];
    float scales[16];
    for (int64_t b = 0; b < nb; b++, x += 256, o += 110) {
        uint8_t *hmask = o, *qs = o + 32, *sc = o + 96;
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j, 1);
            float scale = fabsf(scales[j]);
            if (scale > amax) { amax = scale; max_scale = scales[j]; }
        }
        memset(sc, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)nearest_int(iscale * scales[j]);
                l = (int8_t)((l < -32 ? -32 : (l > 31 ? 31 : l)) + 32);
                if (j < 8) sc[j] = (uint8_t)(l & 0xF);
                else sc[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l >>= 4;
                sc[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            put16(o + 108, pk_f32_to_f16(1 / iscale));
        } else {
            put16(o + 108, pk_f32_to_f16(0.f));
        }
        uint16_t dh;
        memcpy(&dh, o + 108, 2);
        const float d16 = pk_f16_to_f32(dh);
        for (int j = 0; j < 16; j++) {
            int8_t s = (int8_t)(j < 8 ? sc[j] & 0xF : sc[j - 8] >> 4);
            s = (int8_t)((s | (((sc[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32);
            float d = d16 * s;
            if (!d) continue;
            for (int i = 0; i < 16; i++) {
                int l = nearest_int(x[16 * j + i] / d);
                l = l < -4 ? -4 : (l > 3 ? 3 : l);
                L[16 * j + i] = (int8_t)(l + 4);
            }
        }
        memset(hmask, 0, 32);
        int m = 0;
        uint8_t hm = 1;
        for (int j = 0; j < 256; j++) {
            if (L[j] > 3) { hmask[m] |= hm; L[j] = (int8_t)(L[j] - 4); }
            if (++m == 32) { m = 0; hm = (uint8_t)(hm << 1); }
        }
        for (int j = 0; j < 256; j += 128)
            for (int l = 0; l < 32; l++)
                qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

// ggml's best_index_int8: the index of the table value nearest x (the lower one on ties).
static inline int best_index_int8(int n, const int8_t *val, float x) {
    if (x <= val[0]) return 0;
    if (x >= val[n - 1]) return n - 1;
    int ml = 0, mu = n - 1;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < val[mav]) mu = mav; else ml = mav;
    }
    return x - val[mu - 1] < val[mu] - x ? mu - 1 : mu;
}

#if defined(__x86_64__)
// best_index_int8(16, values, al) per lane: the largest level index whose level is <= al (0 if none) by a binary
// search over the 16 levels (vpermps), then the nearer of it and the next, the lower on ties. At or below level 0
// (0 and 1) and at or above level 15 (15 and 15) this gives best_index_int8's 0 and 15 as well.
TQ512 static inline __m512i iq4_nearest_512(__m512 al, __m512 table) {
    __m512i ml = _mm512_setzero_si512();
    for (int step = 8; step >= 1; step /= 2) {
        const __m512i cand = _mm512_add_epi32(ml, _mm512_set1_epi32(step));
        ml = _mm512_mask_mov_epi32(ml, _mm512_cmp_ps_mask(al, _mm512_permutexvar_ps(cand, table), _CMP_GE_OQ), cand);
    }
    const __m512i mu = _mm512_min_epi32(_mm512_add_epi32(ml, _mm512_set1_epi32(1)), _mm512_set1_epi32(15));
    const __m512 vml = _mm512_permutexvar_ps(ml, table), vmu = _mm512_permutexvar_ps(mu, table);
    return _mm512_mask_mov_epi32(mu, _mm512_cmp_ps_mask(_mm512_sub_ps(al, vml), _mm512_sub_ps(vmu, al), _CMP_LT_OQ), ml);
}
TQ512 static __m512 iq4_table_512(const int8_t *values) { return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)values))); }
// L[j] = best_index_int8(16, values, s * x[j]) for n (a multiple of 16) values, 16 at a time.
TQ512 static void iq4_indices_512(const int8_t *values, float s, const float *x, int n, uint8_t *L) {
    const __m512 table = iq4_table_512(values);
    for (int j = 0; j < n; j += 16)
        _mm_storeu_si128((__m128i *)(L + j), _mm512_cvtepi32_epi8(iq4_nearest_512(_mm512_mul_ps(_mm512_set1_ps(s), _mm512_loadu_ps(x + j)), table)));
}
// quantize_iq4_impl's 15 trial scales in 15 lanes: per value (in order) the nearest level of id * x, then each
// lane's sums in the scalar loop's order: the scalar loop's sums for every trial. The choice among the trials is
// made in order by the caller.
TQ512 static void iq4_trials_512(const float *xb, const float *weight, const int8_t *values, float max, int ntry,
                                 float *sumqx, float *sumq2) {
    const __m512 table = iq4_table_512(values);
    const __m512i itry = _mm512_add_epi32(_mm512_set1_epi32(-ntry), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    const __m512 id = _mm512_div_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(itry, _mm512_set1_epi32(values[0]))), _mm512_set1_ps(max));
    __m512 sqx = _mm512_setzero_ps(), sq2 = sqx;
    for (int j = 0; j < 32; j++) {
        const __m512 q = _mm512_permutexvar_ps(iq4_nearest_512(_mm512_mul_ps(id, _mm512_set1_ps(xb[j])), table), table);
        const __m512 wq = _mm512_mul_ps(_mm512_set1_ps(weight[j]), q);
        sqx = _mm512_add_ps(sqx, _mm512_mul_ps(wq, _mm512_set1_ps(xb[j])));
        sq2 = _mm512_add_ps(sq2, _mm512_mul_ps(wq, q));
    }
    _mm512_storeu_ps(sumqx, sqx);
    _mm512_storeu_ps(sumq2, sq2);
}
#endif

// L[j] = best_index_int8(16, values, s * x[j]) for n values (n a multiple of 16 at the AVX-512 levels).
static void iq4_indices(const int8_t *values, float s, const float *x, int n, uint8_t *L) {
#if defined(__x86_64__)
    if (n % 16 == 0 && pk_level_avx512(pk_ops_current()->name)) { iq4_indices_512(values, s, x, n, L); return; }
#endif
    for (int j = 0; j < n; j++) L[j] = (uint8_t)best_index_int8(16, values, s * x[j]);
}

// ggml's quantize_row_iq4_nl_impl as quantize_iq4_nl / quantize_iq4_xs call it without an importance matrix
// (weights x^2, ntry 7): per 32 values the scale of the non-linear levels that best fits after trying 15 scales
// around max / values[0]; for iq4_xs (super-block 256) those 8 scales quantised to 6 bits against the largest
// in magnitude and the levels refit. q4 gets the nibbles, dh the f16 scale, scales_h / scales_l the 6-bit ones.
static void quantize_iq4_impl(int super_block_size, const float *x, uint8_t *dh, uint8_t *q4, uint8_t *scales_h,
                              uint8_t *scales_l) {
    const int8_t *values = pk_iq4nl_values;
    const int block_size = 32, ntry = 7;
    uint8_t L[256];
    float weight[32], scales[8];
    memset(q4, 0, (size_t)super_block_size / 2);
    put16(dh, pk_f32_to_f16(0.f));
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < super_block_size / block_size; ib++) {
        const float *xb = x + ib * block_size;
        uint8_t *Lb = L + ib * block_size;
        for (int j = 0; j < block_size; j++) weight[j] = xb[j] * xb[j];
        float amax = 0, max = 0;
        for (int j = 0; j < block_size; j++) {
            float ax = fabsf(xb[j]);
            if (ax > amax) { amax = ax; max = xb[j]; }
        }
        if (amax < GROUP_MAX_EPS) {
            scales[ib] = 0;
            for (int j = 0; j < block_size; j++) Lb[j] = 0;   // (ggml leaves them as they were; rewritten below)
            continue;
        }
        float d = -max / values[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        iq4_indices(values, id, xb, block_size, Lb);
        for (int j = 0; j < block_size; j++) {
            float q = values[Lb[j]];
            float w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        d = sumqx / sumq2;
        float best = d * sumqx;
#if defined(__x86_64__)
        if (pk_level_avx512(pk_ops_current()->name)) {   // the trials' sums in lanes, the same choice
            float tqx[16], tq2[16];
            iq4_trials_512(xb, weight, values, max, ntry, tqx, tq2);
            for (int t = 0; t <= 2 * ntry; t++)
                if (tq2[t] > 0 && tqx[t] * tqx[t] > best * tq2[t]) { d = tqx[t] / tq2[t]; best = d * tqx[t]; }
            scales[ib] = d;
            float abs_d = fabsf(d);
            if (abs_d > amax_scale) { amax_scale = abs_d; max_scale = d; }
            continue;
        }
#endif
        for (int itry = -ntry; itry <= ntry; itry++) {
            id = (itry + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < block_size; j++) {
                float al = id * xb[j];
                int l = best_index_int8(16, values, al);
                float q = values[l];
                float w = weight[j];
                sumqx += w * q * xb[j];
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) { d = sumqx / sumq2; best = d * sumqx; }
        }
        scales[ib] = d;
        float abs_d = fabsf(d);
        if (abs_d > amax_scale) { amax_scale = abs_d; max_scale = d; }
    }
    if (super_block_size / block_size > 1) {
        int nb = super_block_size / block_size;
        uint16_t sh = 0;
        float d = -max_scale / 32;
        put16(dh, pk_f32_to_f16(d));
        float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < nb; ib++) {
            int l = nearest_int(id * scales[ib]);
            l = l < -32 ? -32 : (l > 31 ? 31 : l);
            float dl = d * l;
            float idl = dl ? 1 / dl : 0.f;
            uint8_t *Lb = L + ib * block_size;
            const float *xb = x + ib * block_size;
            iq4_indices(values, idl, xb, block_size, Lb);
            l += 32;
            uint8_t l_l = (uint8_t)(l & 0xf), l_h = (uint8_t)(l >> 4);
            if (ib % 2 == 0) scales_l[ib / 2] = l_l;
            else scales_l[ib / 2] |= (uint8_t)(l_l << 4);
            sh |= (uint16_t)(l_h << 2 * (ib % 8));
        }
        put16(scales_h, sh);
    } else {
        put16(dh, pk_f32_to_f16(scales[0]));
        float id = scales[0] ? 1 / scales[0] : 0;
        iq4_indices(values, id, x, super_block_size, L);
    }
    for (int i = 0; i < super_block_size / 32; i++)
        for (int j = 0; j < 16; j++) q4[16 * i + j] = (uint8_t)(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

int pk_quantize_row(int dtype, const float *x, int64_t cols, void *out) {
    int64_t be = pk_block_elements(dtype);
    if (!pk_quantize_supported(dtype) || be <= 0 || cols % be != 0) return -1;
    uint8_t *o = (uint8_t *)out;
    int64_t nb = cols / be;
    switch (dtype) {
    case PK_Q8_0: pk_quantize_row_q8_0(x, cols, out); break;
    case PK_Q4_0: quantize_sym(x, nb, o, 4); break;
    case PK_Q5_0: quantize_sym(x, nb, o, 5); break;
    case PK_Q4_1: quantize_affine(x, nb, o, 4); break;
    case PK_Q5_1: quantize_affine(x, nb, o, 5); break;
    case PK_Q4_K: quantize_qk_k(x, nb, o, 4); break;
    case PK_Q5_K: quantize_qk_k(x, nb, o, 5); break;
    case PK_Q6_K: quantize_q6_k(x, nb, o); break;
    case PK_Q2_K: quantize_q2_k(x, nb, o); break;
    case PK_Q3_K: quantize_q3_k(x, nb, o); break;
    case PK_IQ4_NL: for (int64_t b = 0; b < nb; b++) quantize_iq4_impl(32, x + 32 * b, o + 18 * b, o + 18 * b + 2, NULL, NULL); break;
    case PK_IQ4_XS:
        for (int64_t b = 0; b < nb; b++) { uint8_t *q = o + 136 * b; quantize_iq4_impl(256, x + 256 * b, q, q + 8, q + 2, q + 4); }
        break;
    default: return -1;
    }
    return 0;
}
