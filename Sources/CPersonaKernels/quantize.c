// Weight quantisers for `persona convert --quantize`: llama.cpp's reference quantisers (ggml-quants.c,
// quantize_row_<type>_ref, what `llama-quantize` runs when no importance matrix is given), written so that the
// output is the same bytes. Every operation is rounded where ggml's C rounds it: no contraction into FMAs
// (llama.cpp's build keeps these as separate multiplies and adds; checked against its output by the tests).
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
    case PK_Q8_0: case PK_Q4_0: case PK_Q4_1: case PK_Q5_0: case PK_Q5_1: case PK_Q6_K: return 1;
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
            for (int i = 0; i < n; i++) {
                int l = nearest_int(iscale * x[i]);
                L[i] = (int8_t)(nmax + (l < -nmax ? -nmax : (l > nmax - 1 ? nmax - 1 : l)));
            }
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
    case PK_Q6_K: quantize_q6_k(x, nb, o); break;
    default: return -1;
    }
    return 0;
}
