// Portable reference kernels. Weight rows are converted to f32 one tile at a time so
// large T (prefill) reuses each converted row across all T inputs.
#include "kernels.h"
#include <string.h>
#include <math.h>

float pk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (man == 0) { bits = sign; }
        else { // subnormal: normalise
            int e = -1;
            do { man <<= 1; e++; } while ((man & 0x400) == 0);
            man &= 0x3ff;
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | (man << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 112) << 23) | (man << 13);
    }
    float f; memcpy(&f, &bits, 4); return f;
}

uint16_t pk_f32_to_f16(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) { // inf or nan
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    }
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); // overflow -> inf
    if (absx < 0x38800000u) { // f16 subnormal: units of 2^-24; scaling by 2^24 is exact, nearbyintf rounds to even
        float a; memcpy(&a, &absx, 4);
        return (uint16_t)(sign | (uint32_t)nearbyintf(a * 16777216.0f));
    }
    uint32_t e = (absx >> 23) - 112;
    uint32_t m = absx & 0x7fffff;
    uint32_t h = (e << 10) | (m >> 13);
    uint32_t rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float pk_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16; float f; memcpy(&f, &bits, 4); return f;
}

uint16_t pk_f32_to_bf16(float f) {
    uint32_t x; memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); // quiet nan
    uint32_t lsb = (x >> 16) & 1;
    x += 0x7fff + lsb;
    return (uint16_t)(x >> 16);
}

size_t pk_row_bytes(int dtype, int64_t cols) {
    switch (dtype) {
    case PK_F32: return (size_t)cols * 4;
    case PK_F16: case PK_BF16: return (size_t)cols * 2;
    case PK_Q8_0: return (size_t)(cols / 32) * 34;
    case PK_Q4_0: return (size_t)(cols / 32) * 18;
    case PK_Q4_K: return (size_t)(cols / 256) * 144;
    case PK_Q6_K: return (size_t)(cols / 256) * 210;
    default: return 0;
    }
}

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) { *d = q[j] & 63; *m = q[j + 4] & 63; }
    else { *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4); *m = (q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4); }
}

void pk_dequant_row(int dtype, const void *row, int64_t cols, float *out) {
    const uint8_t *p = (const uint8_t *)row;
    switch (dtype) {
    case PK_F32: memcpy(out, row, (size_t)cols * 4); return;
    case PK_F16: { const uint16_t *h = (const uint16_t *)row; for (int64_t i = 0; i < cols; i++) out[i] = pk_f16_to_f32(h[i]); return; }
    case PK_BF16: {
        const uint16_t *h = (const uint16_t *)row;
        uint32_t *o = (uint32_t *)out;
        for (int64_t i = 0; i < cols; i++) o[i] = (uint32_t)h[i] << 16;
        return;
    }
    case PK_Q8_0:
        for (int64_t b = 0; b < cols / 32; b++) {
            const uint8_t *blk = p + b * 34;
            float d = pk_f16_to_f32(rd16(blk));
            const int8_t *q = (const int8_t *)(blk + 2);
            for (int i = 0; i < 32; i++) out[b * 32 + i] = d * (float)q[i];
        }
        return;
    case PK_Q4_0:
        for (int64_t b = 0; b < cols / 32; b++) {
            const uint8_t *blk = p + b * 18;
            float d = pk_f16_to_f32(rd16(blk));
            const uint8_t *q = blk + 2;
            for (int i = 0; i < 16; i++) {
                out[b * 32 + i] = d * (float)((int)(q[i] & 0xF) - 8);
                out[b * 32 + i + 16] = d * (float)((int)(q[i] >> 4) - 8);
            }
        }
        return;
    case PK_Q4_K:
        for (int64_t b = 0; b < cols / 256; b++) {
            const uint8_t *blk = p + b * 144;
            float d = pk_f16_to_f32(rd16(blk)), dmin = pk_f16_to_f32(rd16(blk + 2));
            const uint8_t *scales = blk + 4, *q = blk + 16;
            float *y = out + b * 256;
            int is = 0;
            for (int j = 0; j < 256; j += 64) {
                uint8_t sc, m;
                get_scale_min_k4(is + 0, scales, &sc, &m);
                float d1 = d * sc, m1 = dmin * m;
                get_scale_min_k4(is + 1, scales, &sc, &m);
                float d2 = d * sc, m2 = dmin * m;
                for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
                for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
                q += 32; is += 2;
            }
        }
        return;
    case PK_Q6_K:
        for (int64_t b = 0; b < cols / 256; b++) {
            const uint8_t *blk = p + b * 210;
            const uint8_t *ql = blk, *qh = blk + 128;
            const int8_t *sc = (const int8_t *)(blk + 192);
            float d = pk_f16_to_f32(rd16(blk + 208));
            float *y = out + b * 256;
            for (int n = 0; n < 256; n += 128) {
                for (int l = 0; l < 32; ++l) {
                    int is = l / 16;
                    int q1 = (int)((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                    int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                    int q3 = (int)((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                    int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                    y[l + 0] = d * sc[is + 0] * q1;
                    y[l + 32] = d * sc[is + 2] * q2;
                    y[l + 64] = d * sc[is + 4] * q3;
                    y[l + 96] = d * sc[is + 6] * q4;
                }
                y += 128; ql += 64; qh += 32; sc += 8;
            }
        }
        return;
    default:
        for (int64_t i = 0; i < cols; i++) out[i] = NAN;
    }
}

float pk_dot_f32(const float *a, const float *b, int64_t n) {
    // 8 partial sums so the compiler vectorises without -ffast-math
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += a[i + k] * b[i + k];
    float t = 0;
    for (; i < n; i++) t += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

void pk_axpy_f32(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

#define PK_TILE_ROWS 8
#define PK_MAX_COLS_STACK 16384

void pk_matmul_rows(int dtype, const void *W, int64_t cols,
                    const float *X, int64_t ldx, int64_t T,
                    float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    size_t rb = pk_row_bytes(dtype, cols);
    const uint8_t *base = (const uint8_t *)W;
    if (dtype == PK_F32) {
        for (int64_t r = r0; r < r1; r++) {
            const float *w = (const float *)(base + (size_t)r * rb);
            for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = pk_dot_f32(w, X + t * ldx, cols);
        }
        return;
    }
    float buf[PK_MAX_COLS_STACK];
    if (cols > PK_MAX_COLS_STACK) {
        // very wide rows: convert in chunks of columns
        for (int64_t r = r0; r < r1; r++) {
            for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = 0;
            int64_t bs = (dtype == PK_Q4_K || dtype == PK_Q6_K) ? 256 : 32;
            int64_t chunk = (PK_MAX_COLS_STACK / bs) * bs;
            for (int64_t c0 = 0; c0 < cols; c0 += chunk) {
                int64_t n = cols - c0 < chunk ? cols - c0 : chunk;
                pk_dequant_row(dtype, base + (size_t)r * rb + pk_row_bytes(dtype, c0), n, buf);
                for (int64_t t = 0; t < T; t++) Y[t * ldy + r] += pk_dot_f32(buf, X + t * ldx + c0, n);
            }
        }
        return;
    }
    for (int64_t r = r0; r < r1; r++) {
        pk_dequant_row(dtype, base + (size_t)r * rb, cols, buf);
        for (int64_t t = 0; t < T; t++) Y[t * ldy + r] = pk_dot_f32(buf, X + t * ldx, cols);
    }
}

void pk_quantize_row_q8_0(const float *x, int64_t cols, void *out) {
    uint8_t *o = (uint8_t *)out;
    for (int64_t b = 0; b < cols / 32; b++) {
        float amax = 0;
        for (int i = 0; i < 32; i++) { float v = fabsf(x[b * 32 + i]); if (v > amax) amax = v; }
        float d = amax / 127.0f;
        float id = d != 0 ? 1.0f / d : 0.0f;
        uint16_t dh = pk_f32_to_f16(d);
        memcpy(o + b * 34, &dh, 2);
        int8_t *q = (int8_t *)(o + b * 34 + 2);
        for (int i = 0; i < 32; i++) q[i] = (int8_t)roundf(x[b * 32 + i] * id);
    }
}

const char *pk_simd_level(void) { return "scalar"; }
