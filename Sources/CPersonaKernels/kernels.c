// Portable kernels and the run-time SIMD dispatch. The SIMD versions live in kernels_x86.c /
// kernels_neon.c; every public entry point goes through the table chosen here.
#include "pk_internal.h"
#include "include/kernels_small.h"
#include <stdlib.h>
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

// One table of block geometry (elements, bytes) for every type: ggml-common.h's block structs.
static const struct { int64_t elements; size_t bytes; } block_geometry[PK_NTYPES] = {
    [PK_F32] = {1, 4}, [PK_F16] = {1, 2}, [PK_BF16] = {1, 2},
    [PK_Q8_0] = {32, 34},   [PK_Q4_0] = {32, 18},   [PK_Q4_1] = {32, 20},   [PK_Q5_0] = {32, 22}, [PK_Q5_1] = {32, 24},
    [PK_Q2_K] = {256, 84},  [PK_Q3_K] = {256, 110}, [PK_Q4_K] = {256, 144}, [PK_Q5_K] = {256, 176},
    [PK_Q6_K] = {256, 210}, [PK_IQ4_NL] = {32, 18}, [PK_IQ4_XS] = {256, 136},
    [PK_IQ2_XXS] = {256, 66}, [PK_IQ2_XS] = {256, 74}, [PK_IQ2_S] = {256, 82}, [PK_IQ3_XXS] = {256, 98},
    [PK_IQ3_S] = {256, 110}, [PK_IQ1_S] = {256, 50}, [PK_IQ1_M] = {256, 56}, [PK_MXFP4] = {32, 17},
};

int64_t pk_block_elements(int dtype) { return dtype >= 0 && dtype < PK_NTYPES ? block_geometry[dtype].elements : 0; }
size_t pk_block_bytes(int dtype) { return dtype >= 0 && dtype < PK_NTYPES ? block_geometry[dtype].bytes : 0; }

size_t pk_row_bytes(int dtype, int64_t cols) {
    int64_t n = pk_block_elements(dtype);
    return n ? (size_t)(cols / n) * pk_block_bytes(dtype) : 0;
}

static inline uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

// ggml's kvalues_iq4nl: the 16 levels of IQ4_NL / IQ4_XS
const int8_t pk_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
const int8_t pk_mxfp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};


void pk_dequant_row_scalar(int dtype, const void *row, int64_t cols, float *out) {
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
    case PK_Q4_1:
        // ggml / gguf-py: x = d * q + m, the product rounded before the add (-ffp-contract=off in Package.swift)
        for (int64_t b = 0; b < cols / 32; b++) {
            const uint8_t *blk = p + b * 20;
            float d = pk_f16_to_f32(rd16(blk)), m = pk_f16_to_f32(rd16(blk + 2));
            const uint8_t *q = blk + 4;
            for (int i = 0; i < 16; i++) {
                out[b * 32 + i] = d * (float)(q[i] & 0xF) + m;
                out[b * 32 + i + 16] = d * (float)(q[i] >> 4) + m;
            }
        }
        return;
    case PK_Q5_0: case PK_Q5_1: {
        // { f16 d; [f16 m;] uint32 qh; uint8 qs[16] }: 4 low bits as q4, bit j of qh is element j's fifth bit
        int one = dtype == PK_Q5_1;
        size_t bytes = one ? 24 : 22;
        for (int64_t b = 0; b < cols / 32; b++) {
            const uint8_t *blk = p + b * bytes;
            float d = pk_f16_to_f32(rd16(blk)), m = one ? pk_f16_to_f32(rd16(blk + 2)) : 0;
            uint32_t qh; memcpy(&qh, blk + 2 + 2 * one, 4);
            const uint8_t *q = blk + 6 + 2 * one;
            for (int i = 0; i < 32; i++) {
                int v = (i < 16 ? q[i] & 0xF : q[i - 16] >> 4) | (int)((qh >> i) & 1) << 4;
                out[b * 32 + i] = one ? d * (float)v + m : d * (float)(v - 16);
            }
        }
        return;
    }
    case PK_Q2_K:
        // { uint8 scales[16]; uint8 qs[64]; f16 d; f16 dmin }: 16 sub-blocks of 16, 2-bit q, 4-bit scale and min
        for (int64_t b = 0; b < cols / 256; b++) {
            const uint8_t *blk = p + b * 84, *sc = blk, *q = blk + 16;
            float d = pk_f16_to_f32(rd16(blk + 80)), dmin = pk_f16_to_f32(rd16(blk + 82));
            for (int i = 0; i < 256; i++) {
                int g = i / 128, s = (i % 128) / 32, l = i % 32, sub = i / 16;
                float dl = d * (float)(sc[sub] & 0xF), ml = dmin * (float)(sc[sub] >> 4);
                out[b * 256 + i] = dl * (float)((q[g * 32 + l] >> (2 * s)) & 3) - ml;
            }
        }
        return;
    case PK_Q3_K:
        // { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; f16 d }: 2 low bits in qs, the third (inverted) in hmask,
        // 16 signed 6-bit scales
        for (int64_t b = 0; b < cols / 256; b++) {
            const uint8_t *blk = p + b * 110, *hm = blk, *q = blk + 32, *sc = blk + 96;
            float d = pk_f16_to_f32(rd16(blk + 108));
            for (int i = 0; i < 256; i++) {
                int g = i / 128, s = (i % 128) / 32, l = i % 32, sub = i / 16;
                float dl = d * (float)pk_q3k_scale(sc, sub);
                int ql = (q[g * 32 + l] >> (2 * s)) & 3, high = ((hm[l] >> (i / 32)) & 1) ^ 1;
                out[b * 256 + i] = dl * (float)(ql - (high << 2));
            }
        }
        return;
    case PK_Q5_K:
        // { f16 d; f16 dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128] }: q4_k plus a fifth bit per element
        for (int64_t b = 0; b < cols / 256; b++) {
            const uint8_t *blk = p + b * 176, *scales = blk + 4, *qh = blk + 16, *q = blk + 48;
            float d = pk_f16_to_f32(rd16(blk)), dmin = pk_f16_to_f32(rd16(blk + 2));
            for (int sub = 0; sub < 8; sub++) {
                uint8_t sc, m;
                pk_scale_min_k4(sub, scales, &sc, &m);
                float d1 = d * sc, m1 = dmin * m;
                for (int l = 0; l < 32; l++) {
                    int v = ((q[(sub / 2) * 32 + l] >> (4 * (sub % 2))) & 0xF) | ((qh[l] >> sub) & 1) << 4;
                    out[b * 256 + sub * 32 + l] = d1 * (float)v - m1;
                }
            }
        }
        return;
    case PK_MXFP4: {
        // { uint8 e (E8M0); uint8 qs[16] }: nibbles as q4_0, each an FP4 (E2M1) value doubled, times 2^(e - 128) (half
        // the E8M0 scale, ggml's GGML_E8M0_TO_FP32_HALF: e < 2 gives the subnormals 2^-128, 2^-127)
        for (int64_t b = 0; b < cols / 32; b++) {
            const uint8_t *blk = p + b * 17, *q = blk + 1;
            const float d = pk_e8m0_half(blk[0]);
            for (int i = 0; i < 16; i++) {
                out[b * 32 + i] = d * (float)pk_mxfp4_values[q[i] & 0xF];
                out[b * 32 + i + 16] = d * (float)pk_mxfp4_values[q[i] >> 4];
            }
        }
        return;
    }
    case PK_IQ4_NL:
        // { f16 d; uint8 qs[16] }: nibbles as q4_0, each an index into a non-linear table
        for (int64_t b = 0; b < cols / 32; b++) {
            const uint8_t *blk = p + b * 18, *q = blk + 2;
            float d = pk_f16_to_f32(rd16(blk));
            for (int i = 0; i < 16; i++) {
                out[b * 32 + i] = d * (float)pk_iq4nl_values[q[i] & 0xF];
                out[b * 32 + i + 16] = d * (float)pk_iq4nl_values[q[i] >> 4];
            }
        }
        return;
    case PK_IQ4_XS:
        // { f16 d; uint16 scales_h; uint8 scales_l[4]; uint8 qs[128] }: 8 sub-blocks of 32 with signed 6-bit scales
        for (int64_t b = 0; b < cols / 256; b++) {
            const uint8_t *blk = p + b * 136, *q = blk + 8;
            float d = pk_f16_to_f32(rd16(blk));
            for (int sub = 0; sub < 8; sub++) {
                float dl = d * (float)pk_iq4xs_scale(blk, sub);
                for (int e = 0; e < 32; e++) {
                    int v = (q[sub * 16 + e % 16] >> (4 * (e / 16))) & 0xF;
                    out[b * 256 + sub * 32 + e] = dl * (float)pk_iq4nl_values[v];
                }
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
                pk_scale_min_k4(is + 0, scales, &sc, &m);
                float d1 = d * sc, m1 = dmin * m;
                pk_scale_min_k4(is + 1, scales, &sc, &m);
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
        if (pk_iq_dequant_scalar(dtype, p, cols, out)) return;
        for (int64_t i = 0; i < cols; i++) out[i] = NAN;
    }
}


// MARK: portable (scalar) level

static float dot_scalar(const float *a, const float *b, int64_t n) {
    // 8 partial sums so the compiler vectorises without -ffast-math
    float s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) s[k] += a[i + k] * b[i + k];
    float t = 0;
    for (; i < n; i++) t += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])) + t;
}

static void axpy_scalar(float a, const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

static void gemm_scalar(const float *w, int64_t ldw, int nr, const float *x, int64_t ldx, int nt,
                        int64_t k, float *y, int64_t ldy, int accumulate) {
    for (int j = 0; j < nt; j++)
        for (int i = 0; i < nr; i++) {
            float s = dot_scalar(w + i * ldw, x + j * ldx, k);
            y[j * ldy + i] = accumulate ? y[j * ldy + i] + s : s;
        }
}

static uint64_t read_sum_scalar(const void *p, size_t bytes) {
    const uint32_t *u = (const uint32_t *)p;
    uint64_t s[4] = {0};
    for (size_t i = 0; i + 4 <= bytes / 4; i += 4) { s[0] += u[i]; s[1] += u[i + 1]; s[2] += u[i + 2]; s[3] += u[i + 3]; }
    return s[0] + s[1] + s[2] + s[3];
}

static void silu_mul_scalar(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void gelu_tanh_mul_scalar(float *g, const float *u, int64_t n) {
    const float c = 0.7978845608028654f;   // sqrt(2/pi)
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        g[i] = 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x))) * u[i];
    }
}

const pk_ops pk_ops_scalar = {
    .name = "scalar", .dot = dot_scalar, .axpy = axpy_scalar, .gemm = gemm_scalar, .read_sum = read_sum_scalar,
    .silu_mul = silu_mul_scalar, .gelu_tanh_mul = gelu_tanh_mul_scalar,
};

// MARK: dispatch

static const pk_ops *pk_table_for(const char *name) {
    if (!name) return NULL;
    if (strcmp(name, "scalar") == 0) return &pk_ops_scalar;
#if defined(__x86_64__)
    if (strcmp(name, "avx2") == 0) return pk_x86_has_avx2() ? &pk_ops_avx2 : NULL;
    if (strcmp(name, "avx512") == 0) return pk_x86_has_avx512() ? &pk_ops_avx512 : NULL;
    if (strcmp(name, "avx512vnni") == 0) return pk_x86_has_avx512vnni() ? &pk_ops_avx512vnni : NULL;
    if (strcmp(name, "avx512bf16") == 0) return pk_x86_has_avx512bf16() ? &pk_ops_avx512bf16 : NULL;
#endif
#if defined(__aarch64__)
    if (strcmp(name, "neon") == 0) return &pk_ops_neon;
#endif
    return NULL;
}

static const pk_ops *pk_best(void) {
    const pk_ops *forced = pk_table_for(getenv("PERSONA_SIMD"));
    if (forced) return forced;
#if defined(__x86_64__)
    if (pk_x86_has_avx512bf16()) return &pk_ops_avx512bf16;
    if (pk_x86_has_avx512vnni()) return &pk_ops_avx512vnni;
    if (pk_x86_has_avx512()) return &pk_ops_avx512;
    if (pk_x86_has_avx2()) return &pk_ops_avx2;
#endif
#if defined(__aarch64__)
    return &pk_ops_neon;
#endif
    return &pk_ops_scalar;
}

static const pk_ops *pk_current = NULL;

static inline const pk_ops *ops(void) {
    const pk_ops *o = __atomic_load_n(&pk_current, __ATOMIC_ACQUIRE);
    if (__builtin_expect(o == NULL, 0)) {
        o = pk_best();   // racing first calls compute the same answer
        __atomic_store_n(&pk_current, o, __ATOMIC_RELEASE);
    }
    return o;
}

const pk_ops *pk_ops_current(void) { return ops(); }
const char *pk_simd_level(void) { return ops()->name; }
int pk_simd_level_available(const char *name) { return pk_table_for(name) != NULL; }
int pk_simd_set_level(const char *name) {
    const pk_ops *o = name ? pk_table_for(name) : pk_best();
    if (!o) return -1;
    __atomic_store_n(&pk_current, o, __ATOMIC_RELEASE);
    return 0;
}

// MARK: public entry points

float pk_dot_f32(const float *a, const float *b, int64_t n) { return ops()->dot(a, b, n); }
void pk_axpy_f32(float a, const float *x, float *y, int64_t n) { ops()->axpy(a, x, y, n); }
uint64_t pk_read_sum(const void *p, size_t bytes) { return ops()->read_sum(p, bytes); }
void pk_silu_mul(float *g, const float *u, int64_t n) { ops()->silu_mul(g, u, n); }
void pk_gelu_tanh_mul(float *g, const float *u, int64_t n) { ops()->gelu_tanh_mul(g, u, n); }

static inline void dequant_with(const pk_ops *o, int dtype, const void *row, int64_t cols, float *out) {
    if (dtype >= 0 && dtype < PK_NTYPES && o->dequant[dtype]) o->dequant[dtype](row, cols, out);
    else pk_dequant_row_scalar(dtype, row, cols, out);
}

void pk_dequant_row(int dtype, const void *row, int64_t cols, float *out) { dequant_with(ops(), dtype, row, cols, out); }

static int64_t block_size(int dtype) { return pk_block_elements(dtype); }

/* T == 1 without a dedicated kernel: convert each row (in column chunks if very wide), then dot. */
static void matvec_generic(const pk_ops *o, int dtype, const uint8_t *W, size_t rb, int64_t cols,
                           const float *x, float *y, int64_t r0, int64_t r1) {
    if (dtype == PK_F32) {
        for (int64_t r = r0; r < r1; r++) y[r] = o->dot((const float *)(W + (size_t)r * rb), x, cols);
        return;
    }
    float buf[PK_MAX_COLS_STACK] __attribute__((aligned(64)));
    int64_t bs = block_size(dtype);
    int64_t chunk = (PK_MAX_COLS_STACK / bs) * bs;
    for (int64_t r = r0; r < r1; r++) {
        float s = 0;
        for (int64_t c0 = 0; c0 < cols; c0 += chunk) {
            int64_t n = cols - c0 < chunk ? cols - c0 : chunk;
            dequant_with(o, dtype, W + (size_t)r * rb + pk_row_bytes(dtype, c0), n, buf);
            s += o->dot(buf, x + c0, n);
        }
        y[r] = s;
    }
}

/* Column chunk of the converted weights: PK_KC floats per row. Rows are converted PK_RB at a time (256 KiB, held in
   L2 in a per-thread scratch), then each group of 4 inputs passes over them 4 rows at a time, its 16 KiB of x
   staying in L1. (Before: 4 rows at a time, every input of the batch passing over them, so a 1024-token prompt's
   4 MiB of x chunks came from L3 for every 4 rows.) Each output sums the same chunks in the same order through the
   same kernel either way: the same bits. */
#define PK_KC 1024
enum { PK_RB = 64 };

static void gemm_driver(const pk_ops *o, int dtype, const uint8_t *W, size_t rb, int64_t cols,
                        const float *X, int64_t ldx, int64_t T, float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    float wbuf[4 * PK_KC] __attribute__((aligned(64)));
    float *wb = dtype == PK_F32 || T <= 4 ? NULL : (float *)pk_thread_scratch_slot(PK_SCRATCH_GEMM, (size_t)PK_RB * PK_KC * sizeof(float));
    const int64_t rbk = wb ? PK_RB : 4;   // rows converted together
    if (!wb) wb = wbuf;
    int64_t kc = dtype == PK_F32 ? cols : PK_KC;
    if (kc <= 0) kc = 1;
    for (int64_t r = r0; r < r1; r += rbk) {
        const int64_t rn = r1 - r < rbk ? r1 - r : rbk;
        for (int64_t k0 = 0; k0 < cols; k0 += kc) {
            int64_t kn = cols - k0 < kc ? cols - k0 : kc;
            const float *w;
            int64_t ldw;
            if (dtype == PK_F32) {
                w = (const float *)(W + (size_t)r * rb) + k0;
                ldw = (int64_t)(rb / 4);
            } else {
                for (int64_t i = 0; i < rn; i++)
                    dequant_with(o, dtype, W + (size_t)(r + i) * rb + pk_row_bytes(dtype, k0), kn, wb + i * PK_KC);
                w = wb;
                ldw = PK_KC;
            }
            for (int64_t t = 0; t < T; t += 4) {
                int nt = T - t < 4 ? (int)(T - t) : 4;
                for (int64_t i = 0; i < rn; i += 4) {
                    int nr = rn - i < 4 ? (int)(rn - i) : 4;
                    o->gemm(w + i * ldw, ldw, nr, X + t * ldx + k0, ldx, nt, kn, Y + t * ldy + r + i, ldy, k0 > 0);
                }
            }
        }
    }
}

/* The exact kernels on laid-out x (pk_exact_kernel) take whole rows, each kernel choosing its order: on wide rows
   the AVX-512 ones run groups of rows over column chunks of x (pk_x86.h PK_EXACT_ROWS). (Column chunks of 4096
   here, over all rows of the range, measured slower end to end with 2 threads than whole rows: the second pass
   over every row broke the sequential weight stream.) */
void pk_matmul_rows(int dtype, const void *W, int64_t cols,
                    const float *X, int64_t ldx, int64_t T,
                    float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    if (r0 >= r1 || T <= 0) return;
    if (dtype < 0 || dtype >= PK_NTYPES) {
        for (int64_t t = 0; t < T; t++) for (int64_t r = r0; r < r1; r++) Y[t * ldy + r] = NAN;
        return;
    }
    const pk_ops *o = ops();
    size_t rb = pk_row_bytes(dtype, cols);
    const uint8_t *base = (const uint8_t *)W;
    if (cols == 0) {
        for (int64_t t = 0; t < T; t++) for (int64_t r = r0; r < r1; r++) Y[t * ldy + r] = 0;
        return;
    }
    if (T == 1) {
        const pk_exact_kernel *e = cols % pk_block_elements(dtype) == 0 ? o->exact[dtype] : NULL;
        float *xp = e ? (float *)pk_thread_scratch_slot(PK_SCRATCH_EXACT, (size_t)e->x_floats(cols) * sizeof(float)) : NULL;
        if (xp) {
            e->prepare(X, cols, xp);
            e->matvec(base, rb, cols, xp, Y, r0, r1);
            return;
        }
        if (o->matvec[dtype]) o->matvec[dtype](base, rb, cols, X, Y, r0, r1);
        else matvec_generic(o, dtype, base, rb, cols, X, Y, r0, r1);
        return;
    }
    if (T <= 8 && pk_matmul_rows_small(dtype, W, cols, X, ldx, T, Y, ldy, r0, r1) == 0) return;  // kernels_small.c
    gemm_driver(o, dtype, base, rb, cols, X, ldx, T, Y, ldy, r0, r1);
}

int64_t pk_exact_x_floats(int dtype, int64_t cols) {
    if (dtype < 0 || dtype >= PK_NTYPES || cols <= 0 || cols % pk_block_elements(dtype)) return 0;
    const pk_exact_kernel *e = ops()->exact[dtype];
    return e ? e->x_floats(cols) : 0;
}

void pk_exact_prepare(int dtype, const float *x, int64_t cols, float *xp) { ops()->exact[dtype]->prepare(x, cols, xp); }

void pk_matvec_exact_prepared(int dtype, const void *W, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1) {
    if (r0 >= r1) return;
    ops()->exact[dtype]->matvec((const uint8_t *)W, pk_row_bytes(dtype, cols), cols, xp, y, r0, r1);
}

// MARK: quantisation

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

// MARK: attention

/* Element `i` of a K / V array of type kv (PK_F32 or PK_F16) as a pointer, and a row of hd of them as f32. */
static inline const void *kv_at(const void *X, int kv, int64_t i) {
    return (const char *)X + i * (kv == PK_F16 ? 2 : 4);
}
static inline const float *kv_row(const void *X, int kv, int64_t i, int64_t hd, float *tmp) {
    if (kv != PK_F16) return (const float *)X + i;
    dequant_with(ops(), PK_F16, (const uint16_t *)X + i, hd, tmp);
    return tmp;
}

void pk_f32_to_f16_row(const float *x, uint16_t *out, int64_t n) {
    const pk_ops *o = ops();
    if (o->to_f16) o->to_f16(x, out, n);
    else for (int64_t i = 0; i < n; i++) out[i] = pk_f32_to_f16(x[i]);
}

/* The attention loop at the portable level: P consecutive query positions of H query heads each, head h of
   position t at q + t * ldq + h * hd, reading key/value head h / group at column (h / group) * hd of the rows
   K + j * ldk, V + j * ldv (elements of type kv), positions j < n + t (a prompt's causal rows; P = 1: one
   position, n rows). Query (t, h) is row r = t * H + h of scores (lds floats apart), m and l, its output at
   o + t * ldo + h * hd. With `normalise` (pk_attention_head) the weights are divided by their sum before the
   weighted sum; without (pk_attention_partial) the sum goes to l[r] and the weighted sum stays unnormalised for
   pk_attention_merge. An f16 row is widened into a stack row first, then goes through the same dot / axpy. */
static void attention_portable(const float *q, int64_t ldq, int64_t P, int64_t H, int64_t group, const void *K,
                               int64_t ldk, const void *V, int64_t ldv, int kv, int64_t n, int64_t hd, float scale,
                               float softcap, float *scores, int64_t lds, float *m, float *l, float *o, int64_t ldo,
                               int normalise) {
    const pk_ops *ops_ = ops();
    float tmp[kv == PK_F16 ? hd : 1];
    for (int64_t t = 0; t < P; t++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t col = (h / group) * hd, r = t * H + h, nt = n + t;
            const float *qh = q + t * ldq + h * hd;
            float *s = scores + r * lds, *oh = o + t * ldo + h * hd, mx = -INFINITY;
            for (int64_t j = 0; j < nt; j++) {
                float x = ops_->dot(qh, kv_row(K, kv, j * ldk + col, hd, tmp), hd) * scale;
                if (softcap > 0) x = tanhf(x / softcap) * softcap;
                s[j] = x;
                if (x > mx) mx = x;
            }
            float sum = 0;
            for (int64_t j = 0; j < nt; j++) { s[j] = expf(s[j] - mx); sum += s[j]; }
            m[r] = mx;
            l[r] = sum;
            const float inv = normalise ? 1.0f / sum : 1.0f;
            memset(oh, 0, (size_t)hd * sizeof(float));
            for (int64_t j = 0; j < nt; j++)
                ops_->axpy(normalise ? s[j] * inv : s[j], kv_row(V, kv, j * ldv + col, hd, tmp), oh, hd);
        }
}

float pk_attention_lse(const float *q, const void *K, int64_t ldk, int kv, int64_t n, int64_t hd, float scale,
                       float softcap) {
    const pk_ops *ops_ = ops();
    float tmp[kv == PK_F16 ? hd : 1], mx = -INFINITY;
    for (int64_t j = 0; j < n; j++) {   // the scores twice (max, then the sum) rather than a buffer: n is unbounded
        float x = ops_->dot(q, kv_row(K, kv, j * ldk, hd, tmp), hd) * scale;
        if (softcap > 0) x = tanhf(x / softcap) * softcap;
        if (x > mx) mx = x;
    }
    float sum = 0;
    for (int64_t j = 0; j < n; j++) {
        float x = ops_->dot(q, kv_row(K, kv, j * ldk, hd, tmp), hd) * scale;
        if (softcap > 0) x = tanhf(x / softcap) * softcap;
        sum += expf(x - mx);
    }
    return mx + logf(sum);
}

/* Queries through the level's loop (where it handles hd) or the portable one. */
static void attention_run(const float *q, int64_t ldq, int64_t P, int64_t H, int64_t group, const void *K, int64_t ldk,
                          const void *V, int64_t ldv, int kv, int64_t n, int64_t hd, float scale, float softcap,
                          float *scores, int64_t lds, float *m, float *l, float *o, int64_t ldo, int normalise) {
    const pk_ops *ops_ = ops();
    if (ops_->attention &&
        ops_->attention(q, ldq, P, H, group, K, ldk, V, ldv, kv, n, hd, scale, softcap, scores, lds, m, l, o, ldo,
                        normalise)) return;
    attention_portable(q, ldq, P, H, group, K, ldk, V, ldv, kv, n, hd, scale, softcap, scores, lds, m, l, o, ldo, normalise);
}

void pk_attention_head(const float *q, const void *K, int64_t ldk, const void *V, int64_t ldv, int kv,
                       int64_t n, int64_t hd, float scale, float softcap, float *scores, float *out) {
    float m, l;
    // under 16 positions a 16-row tile is mostly padding: the loop below (also what the llama.cpp comparisons of
    // QuantizedModelTests run on their 8-token sequences, so they measure the matrix kernels alone)
    if (n >= 16) attention_run(q, 0, 1, 1, 1, K, ldk, V, ldv, kv, n, hd, scale, softcap, scores, 0, &m, &l, out, 0, 1);
    else attention_portable(q, 0, 1, 1, 1, K, ldk, V, ldv, kv, n, hd, scale, softcap, scores, 0, &m, &l, out, 0, 1);
}

/* A GQA group through the multi-head loop with H = group: per head the same operations in the same order as
   pk_attention_head (scores, max, exp, sum, the division, the weighted sum), so the same bits, while each K / V
   tile is read once for the group's heads instead of once per head. Same n >= 16 rule as pk_attention_head. */
void pk_attention_group(const float *q, int64_t G, const void *K, int64_t ldk, const void *V, int64_t ldv, int kv,
                        int64_t n, int64_t hd, float scale, float softcap, float *scores, int64_t lds, float *out) {
    if (G > PK_ATTENTION_GROUP_MAX) {
        for (int64_t h = 0; h < G; h++)
            pk_attention_head(q + h * hd, K, ldk, V, ldv, kv, n, hd, scale, softcap, scores + h * lds, out + h * hd);
        return;
    }
    float m[PK_ATTENTION_GROUP_MAX], l[PK_ATTENTION_GROUP_MAX];
    if (n >= 16) attention_run(q, 0, 1, G, G, K, ldk, V, ldv, kv, n, hd, scale, softcap, scores, lds, m, l, out, 0, 1);
    else attention_portable(q, 0, 1, G, G, K, ldk, V, ldv, kv, n, hd, scale, softcap, scores, lds, m, l, out, 0, 1);
}

/* A prompt's positions in blocks of PK_ATTENTION_GROUP_MAX / G (at least 1) through the multi-query loop: per
   query the operations of pk_attention_head over its rows, so the same bits, while each K / V tile is read from
   memory once for the block's queries instead of once per query (the prompt loop read a head's rows once per
   position, from L2 or L3, at ~30 cycles per query and row). Positions under 16 rows, and positions whose window
   starts past row 0, go one at a time through pk_attention_group (the bits of pk_attention_head, its n >= 16 rule). */
int pk_attention_causal(const float *q, int64_t ldq, int64_t P, int64_t G, const void *K, int64_t ldk, const void *V,
                        int64_t ldv, int kv, int64_t n0, int64_t window, int64_t hd, float scale, float softcap,
                        float *out, int64_t ldo) {
    if (kv == PK_F16 && P > 1) {
        // a prompt's queries use each K / V tile up to 16 times: widening its f16 rows once, here, costs under 2% of
        // the products, where widening them as they are loaded (a conversion beside every FMA) made a 3000-token
        // prefill 10-20% slower than with an f32 cache; decode steps (P = 1) read the f16 rows directly instead,
        // half the bytes from memory. Widening is exact, so the same bits either way.
        // rows lo.. are read (a window starting past row 0 at the first position): widened from lo, the positions
        // renumbered from there, which keeps each position's rows and so its operations
        const int64_t rows = n0 + P - 1, lo = window > 0 && n0 - window > 0 ? n0 - window : 0, nr = rows - lo;
        float *wk = (float *)pk_thread_scratch_slot(PK_SCRATCH_KV, (size_t)(2 * nr * hd) * sizeof(float));
        if (wk) {
            float *wv = wk + nr * hd;
            for (int64_t j = 0; j < nr; j++) {
                kv_row(K, kv, (lo + j) * ldk, hd, wk + j * hd);
                kv_row(V, kv, (lo + j) * ldv, hd, wv + j * hd);
            }
            return pk_attention_causal(q, ldq, P, G, wk, hd, wv, hd, PK_F32, n0 - lo, window, hd, scale, softcap, out, ldo);
        }
    }
    const int64_t block = G > PK_ATTENTION_GROUP_MAX ? 1 : PK_ATTENTION_GROUP_MAX / G;
    const int64_t rows = block * G, lds = (n0 + P + 15) / 16 * 16;   // lds: the longest row, to whole tiles
    float *scores = (float *)pk_thread_scratch_slot(PK_SCRATCH_ATTENTION, (size_t)(rows * lds) * sizeof(float));
    if (!scores) return -1;
    float m[PK_ATTENTION_GROUP_MAX], l[PK_ATTENTION_GROUP_MAX];
    int64_t full = P, t = 0;   // positions t < full attend from row 0
    if (window > 0) full = window - n0 + 1 < 0 ? 0 : (window - n0 + 1 > P ? P : window - n0 + 1);
    for (; t < full && (n0 + t < 16 || G > PK_ATTENTION_GROUP_MAX); t++)
        pk_attention_group(q + t * ldq, G, K, ldk, V, ldv, kv, n0 + t, hd, scale, softcap, scores, lds, out + t * ldo);
    while (t < full) {
        const int64_t b = full - t < block ? full - t : block;
        attention_run(q + t * ldq, ldq, b, G, G, K, ldk, V, ldv, kv, n0 + t, hd, scale, softcap, scores, lds, m, l,
                      out + t * ldo, ldo, 1);
        t += b;
    }
    for (; t < P; t++) {
        const int64_t lo = n0 + t - window;
        pk_attention_group(q + t * ldq, G, kv_at(K, kv, lo * ldk), ldk, kv_at(V, kv, lo * ldv), ldv, kv, window, hd,
                           scale, softcap, scores, lds, out + t * ldo);
    }
    return 0;
}

void pk_attention_partial(const float *q, int64_t H, int64_t group, const void *K, const void *V, int64_t ldkv,
                          int kv, int64_t n, int64_t hd, float scale, float softcap, float *scores, int64_t lds,
                          float *m, float *l, float *o) {
    if (n > 0) attention_run(q, 0, 1, H, group, K, ldkv, V, ldkv, kv, n, hd, scale, softcap, scores, lds, m, l, o, 0, 0);
    else attention_portable(q, 0, 1, H, group, K, ldkv, V, ldkv, kv, n, hd, scale, softcap, scores, lds, m, l, o, 0, 0);
}

void pk_attention_merge(int64_t C, int64_t H, int64_t hd, const float *m, const float *l, const float *o, float *out) {
    for (int64_t h = 0; h < H; h++) {
        float M = -INFINITY;
        for (int64_t c = 0; c < C; c++) if (m[c * H + h] > M) M = m[c * H + h];
        float L = 0;
        float *y = out + h * hd;
        memset(y, 0, (size_t)hd * sizeof(float));
        for (int64_t c = 0; c < C; c++) {
            const float w = expf(m[c * H + h] - M);
            L += w * l[c * H + h];
            ops()->axpy(w, o + (c * H + h) * hd, y, hd);
        }
        const float inv = 1.0f / L;
        for (int64_t i = 0; i < hd; i++) y[i] *= inv;
    }
}
