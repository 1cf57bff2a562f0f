// Checks every public CPersonaKernels entry point at the SIMD level in use (NEON on aarch64, or the one
// PERSONA_SIMD names) against references computed here in double, for odd sizes. Built and run under
// qemu-aarch64 by Scripts/neon/run.sh. Tolerances are worst-case f32 rounding bounds (gamma_n * sum |terms|),
// as Tests/PersonaTensorTests/KernelTests.swift uses; the reference dequantisation below is written from the
// GGML block layouts, independently of kernels.c.
#include "kernels.h"
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const double EPS = FLT_EPSILON;   // 2^-23; unit roundoff is EPS / 2
static long checks = 0, failures = 0;
// Largest |error| / tolerance per kind of check (the text before the first space of its name).
enum { NCAT = 16 };
static char cat_name[NCAT][24];
static double cat_worst[NCAT];
static char cat_what[NCAT][120];
static void note_ratio(const char *what, double ratio) {
    size_t len = strcspn(what, " ");
    if (len >= sizeof cat_name[0]) len = sizeof cat_name[0] - 1;
    int k = 0;
    for (; k < NCAT && cat_name[k][0]; k++) if (strlen(cat_name[k]) == len && strncmp(cat_name[k], what, len) == 0) break;
    if (k == NCAT) return;
    if (!cat_name[k][0]) memcpy(cat_name[k], what, len);
    if (ratio > cat_worst[k] || !cat_what[k][0]) { cat_worst[k] = ratio; snprintf(cat_what[k], sizeof cat_what[k], "%s", ratio > 0 ? what : "every result exact"); }
}

#define FAIL(...) do { if (failures++ < 30) { printf("FAIL "); printf(__VA_ARGS__); printf("\n"); } } while (0)

// Records one tolerance check; returns 1 if it passed.
static int within(double got, double want, double tol, const char *what) {
    checks++;
    double err = fabs(got - want);
    if (!(err <= tol)) { FAIL("%s: got %.9g want %.9g (err %.3g, tol %.3g)", what, got, want, err, tol); return 0; }
    note_ratio(what, tol > 0 ? err / tol : 0);
    return 1;
}

// Rows outside the kernel's [r0, r1) must keep the sentinel. Returns 1 when r is outside (checked here; *stop set
// on a failure), 0 when the caller checks the value.
static int outside_rows(float got, float sentinel, int64_t t, int64_t r, int64_t r0, int64_t r1, const char *what, int *stop) {
    if (r >= r0 && r < r1) return 0;
    checks++;
    if (got != sentinel) { FAIL("%s: wrote outside the rows at t %lld r %lld", what, (long long)t, (long long)r); *stop = 1; }
    return 1;
}

// MARK: random inputs (splitmix64)

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double uniform(void) { return (double)(next_u64() >> 11) / 9007199254740992.0; }
static float normal(void) {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2 * log(u1)) * cos(2 * M_PI * u2));
}

// MARK: reference formats (double)

static double ref_f16(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}
static double ref_bf16(uint16_t h) { uint32_t b = (uint32_t)h << 16; float f; memcpy(&f, &b, 4); return f; }
static uint16_t u16at(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint16_t f16_bits(double v) {   // test data only: moderate normal values, rounding via the library
    return pk_f32_to_f16((float)v);
}

enum { NT = 8 };
static const char *NAMES[NT] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_K", "q6_K", "q4_1"};
static int block_of(int dt) { return (int)pk_block_elements(dt); }

// Element i of a row as a double, and `mag`: the size of the terms a kernel may add or subtract to make it
// (|d sc q| + |dmin m| for q4_K, whose kernels may split the two parts).
static double ref_elem(int dt, const uint8_t *row, int64_t i, double *mag) {
    double v;
    *mag = -1;
    switch (dt) {
    case PK_F32: { float f; memcpy(&f, row + 4 * i, 4); v = f; break; }
    case PK_F16: v = ref_f16(u16at(row + 2 * i)); break;
    case PK_BF16: v = ref_bf16(u16at(row + 2 * i)); break;
    case PK_Q8_0: { const uint8_t *b = row + (i / 32) * 34; v = ref_f16(u16at(b)) * (int8_t)b[2 + i % 32]; break; }
    case PK_Q4_0: {
        const uint8_t *b = row + (i / 32) * 18; int j = (int)(i % 32);
        int q = j < 16 ? (b[2 + j] & 15) : (b[2 + j - 16] >> 4);
        v = ref_f16(u16at(b)) * (q - 8); break;
    }
    case PK_Q4_1: {   // d * q + m
        const uint8_t *b = row + (i / 32) * 20; int j = (int)(i % 32);
        int q = j < 16 ? (b[4 + j] & 15) : (b[4 + j - 16] >> 4);
        double d = ref_f16(u16at(b)), m = ref_f16(u16at(b + 2));
        v = d * q + m;
        *mag = fabs(d * q) + fabs(m);
        break;
    }
    case PK_Q4_K: {
        // 256 values = 8 sub-blocks of 32; sub-block s has 6-bit scale and min packed in 12 bytes; values in
        // 64-value groups: low nibbles are sub-block 2g, high nibbles 2g+1, from the same 32 bytes.
        const uint8_t *b = row + (i / 256) * 144; int j = (int)(i % 256), s = j / 32, g = j / 64, l = j % 32;
        const uint8_t *sc = b + 4;
        int scale, mn;
        if (s < 4) { scale = sc[s] & 63; mn = sc[s + 4] & 63; }
        else { scale = (sc[s + 4] & 15) | ((sc[s - 4] >> 6) << 4); mn = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4); }
        uint8_t qb = b[16 + 32 * g + l];
        int q = (s % 2 == 0) ? (qb & 15) : (qb >> 4);
        double d = ref_f16(u16at(b)), dmin = ref_f16(u16at(b + 2));
        v = d * scale * q - dmin * mn;
        *mag = fabs(d * scale * q) + fabs(dmin * mn);
        break;
    }
    case PK_Q6_K: {
        // ql[128] low 4 bits, qh[64] high 2 bits, int8 scales[16] (one per 16 values), f16 d last.
        const uint8_t *b = row + (i / 256) * 210; int j = (int)(i % 256), h = j / 128, k = j % 128, quarter = k / 32, l = k % 32;
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        int lo = quarter == 0 ? (ql[l] & 15) : quarter == 1 ? (ql[l + 32] & 15) : quarter == 2 ? (ql[l] >> 4) : (ql[l + 32] >> 4);
        int hi = (qh[l] >> (2 * quarter)) & 3;
        int scale = (int8_t)b[192 + 8 * h + 2 * quarter + l / 16];
        v = ref_f16(u16at(b + 208)) * scale * ((lo | hi << 4) - 32);
        break;
    }
    default: v = NAN;
    }
    if (*mag < 0) *mag = fabs(v);
    return v;
}

// Random stored rows: normal values for float types; quantised blocks random bytes with moderate f16 scales;
// q8_0 made by pk_quantize_row_q8_0 from normal values, plus one -128 per block (valid storage, never produced
// by the quantiser).
static uint8_t *random_rows(int dt, int64_t rows, int64_t cols) {
    size_t rb = pk_row_bytes(dt, cols);
    uint8_t *w = malloc(rb * (size_t)rows + 1);
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *p = w + rb * (size_t)r;
        switch (dt) {
        case PK_F32: for (int64_t c = 0; c < cols; c++) { float f = normal(); memcpy(p + 4 * c, &f, 4); } break;
        case PK_F16: for (int64_t c = 0; c < cols; c++) { uint16_t h = pk_f32_to_f16(normal()); memcpy(p + 2 * c, &h, 2); } break;
        case PK_BF16: for (int64_t c = 0; c < cols; c++) { float f = normal(); uint32_t b; memcpy(&b, &f, 4); uint16_t h = (uint16_t)(b >> 16); memcpy(p + 2 * c, &h, 2); } break;
        case PK_Q8_0: {
            float *x = malloc(sizeof(float) * (size_t)cols);
            for (int64_t c = 0; c < cols; c++) x[c] = normal() * 0.05f;
            pk_quantize_row_q8_0(x, cols, p);
            for (int64_t b = 0; b < cols / 32; b++) p[b * 34 + 2 + (next_u64() % 32)] = 0x80;
            free(x);
            break;
        }
        case PK_Q4_0:
            for (int64_t b = 0; b < cols / 32; b++) {
                uint16_t d = f16_bits((uniform() - 0.5) * 0.1); memcpy(p + b * 18, &d, 2);
                for (int k = 2; k < 18; k++) p[b * 18 + k] = (uint8_t)next_u64();
            }
            break;
        case PK_Q4_1:
            for (int64_t b = 0; b < cols / 32; b++) {
                uint16_t d = f16_bits((uniform() - 0.5) * 0.1), m = f16_bits((uniform() - 0.5) * 0.5);
                memcpy(p + b * 20, &d, 2); memcpy(p + b * 20 + 2, &m, 2);
                for (int k = 4; k < 20; k++) p[b * 20 + k] = (uint8_t)next_u64();
            }
            break;
        case PK_Q4_K:
            for (int64_t b = 0; b < cols / 256; b++) {
                uint16_t d = f16_bits((uniform() - 0.5) * 0.04), dm = f16_bits((uniform() - 0.5) * 0.04);
                memcpy(p + b * 144, &d, 2); memcpy(p + b * 144 + 2, &dm, 2);
                for (int k = 4; k < 144; k++) p[b * 144 + k] = (uint8_t)next_u64();
            }
            break;
        case PK_Q6_K:
            for (int64_t b = 0; b < cols / 256; b++) {
                for (int k = 0; k < 208; k++) p[b * 210 + k] = (uint8_t)next_u64();
                uint16_t d = f16_bits((uniform() - 0.5) * 0.02); memcpy(p + b * 210 + 208, &d, 2);
            }
            break;
        }
    }
    return w;
}

// MARK: tests

static void test_level(const char *want) {
    checks++;
    if (strcmp(pk_simd_level(), want) != 0) FAIL("pk_simd_level() = %s, want %s", pk_simd_level(), want);
    checks++;
#if defined(__aarch64__)
    if (!pk_simd_level_available("neon") || pk_simd_level_available("avx2")) FAIL("level availability on aarch64");
    checks++;
    if (pk_simd_set_level("avx2") != -1 || pk_simd_set_level("scalar") != 0 || strcmp(pk_simd_level(), "scalar") != 0)
        FAIL("pk_simd_set_level on aarch64");
    checks++;
    if (pk_simd_set_level(NULL) != 0 || strcmp(pk_simd_level(), want) != 0) FAIL("pk_simd_set_level(NULL) did not go back to %s", want);
#endif
}

// The pool (pool.c spins with `yield` on aarch64): every index runs exactly once, over many rounds; a call from
// inside a task runs inline.
typedef struct { int *hits; pk_pool *pool; int *inner; } pool_ctx;
static void pool_inner(void *c, int64_t i) { ((pool_ctx *)c)->inner[i]++; }
static void pool_task(void *c, int64_t i) {
    pool_ctx *ctx = (pool_ctx *)c;
    __atomic_fetch_add(&ctx->hits[i], 1, __ATOMIC_RELAXED);
    if (i == 7) pk_pool_run(ctx->pool, 5, pool_inner, c);
}
static void test_pool(void) {
    pk_pool *pool = pk_pool_create(3);
    checks++;
    if (!pool || pk_pool_threads(pool) != 3) { FAIL("pk_pool_create(3)"); return; }
    int hits[257], inner[5];
    pool_ctx ctx = {hits, pool, inner};
    for (int round = 0; round < 200; round++) {
        int64_t n = 1 + (round * 37) % 257;
        memset(hits, 0, sizeof hits); memset(inner, 0, sizeof inner);
        pk_pool_run(pool, n, pool_task, &ctx);
        checks++;
        for (int64_t i = 0; i < n; i++) if (hits[i] != 1) { FAIL("pool round %d: index %lld ran %d times", round, (long long)i, hits[i]); break; }
        if (n > 7) for (int i = 0; i < 5; i++) if (inner[i] != 1) { FAIL("pool round %d: nested index %d ran %d times", round, i, inner[i]); break; }
    }
    pk_pool_destroy(pool);
}

static void test_dot_axpy(void) {
    const int64_t ns[] = {0, 1, 3, 5, 7, 15, 17, 31, 33, 63, 65, 131, 1000, 1029};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        int64_t n = ns[k];
        float *a = malloc(4 * (size_t)n + 4), *b = malloc(4 * (size_t)n + 4), *y = malloc(4 * (size_t)n + 4);
        for (int64_t i = 0; i < n; i++) { a[i] = normal(); b[i] = normal(); }
        double exact = 0, size = 0;
        for (int64_t i = 0; i < n; i++) { exact += (double)a[i] * b[i]; size += fabs((double)a[i] * b[i]); }
        char what[64]; snprintf(what, sizeof what, "dot n %lld", (long long)n);
        within(pk_dot_f32(a, b, n), exact, (n + 2) * EPS / 2 * size + 1e-30, what);
        const float alpha = -0.7310586f;
        memcpy(y, b, 4 * (size_t)n);
        pk_axpy_f32(alpha, a, y, n);
        snprintf(what, sizeof what, "axpy n %lld", (long long)n);
        for (int64_t i = 0; i < n; i++) {
            // one rounding of the product and one of the sum (or a single fused one)
            double w = (double)b[i] + (double)alpha * a[i];
            if (!within(y[i], w, EPS * (fabs(b[i]) + fabs((double)alpha * a[i])) + 1e-30, what)) break;
        }
        free(a); free(b); free(y);
    }
}

static void test_dequant(void) {
    for (int dt = 0; dt < NT; dt++) {
        int bs = block_of(dt);
        int64_t cl[8]; int ncl = 0;
        if (bs == 1) { int64_t v[] = {1, 3, 5, 7, 17, 37, 1029}; for (int i = 0; i < 7; i++) cl[ncl++] = v[i]; }
        else { cl[ncl++] = bs; cl[ncl++] = 3 * bs; cl[ncl++] = 5 * bs; }
        for (int k = 0; k < ncl; k++) {
            int64_t cols = cl[k];
            uint8_t *w = random_rows(dt, 1, cols);
            float *out = malloc(4 * (size_t)cols);
            for (int64_t i = 0; i < cols; i++) out[i] = NAN;
            pk_dequant_row(dt, w, cols, out);
            char what[64]; snprintf(what, sizeof what, "dequant %s cols %lld", NAMES[dt], (long long)cols);
            for (int64_t i = 0; i < cols; i++) {
                double mag, v = ref_elem(dt, w, i, &mag);
                // exact for all but the K-quants (products of few-bit integers and an f16 fit in f32);
                // q4_K / q6_K: a couple of f32 roundings of the terms
                double tol = dt >= PK_Q4_K ? 2 * EPS * mag : 0;
                if (!within(out[i], v, tol, what)) break;
            }
            free(w); free(out);
        }
    }
    // all 65536 f16 patterns, bit for bit (NaN stays NaN)
    uint16_t *h = malloc(2 * 65536);
    float *out = malloc(4 * 65536);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    pk_dequant_row(PK_F16, h, 65536, out);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
        double want = ref_f16((uint16_t)i);
        int ok = isnan(want) ? isnan(out[i]) : (out[i] == (float)want && !signbit(out[i]) == !signbit(want));
        if (!ok && bad++ < 3) FAIL("f16 pattern 0x%04x: %.9g vs %.9g", i, out[i], want);
    }
    checks++;
    free(h); free(out);
}

static void check_matmul(int dt, int64_t rows, int64_t cols, int64_t T) {
    uint8_t *w = random_rows(dt, rows, cols);
    size_t rb = pk_row_bytes(dt, cols);
    int64_t ldx = cols + 5, ldy = rows + 3;   // strides wider than the data
    float *x = malloc(4 * (size_t)(T * ldx));
    for (int64_t i = 0; i < T * ldx; i++) x[i] = NAN;
    for (int64_t t = 0; t < T; t++) for (int64_t c = 0; c < cols; c++) x[t * ldx + c] = normal();
    double *deq = malloc(8 * (size_t)(rows * cols)), *mag = malloc(8 * (size_t)(rows * cols));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) deq[r * cols + c] = ref_elem(dt, w + rb * (size_t)r, c, &mag[r * cols + c]);
    float *y = malloc(4 * (size_t)(T * ldy));
    int64_t ranges[2][2] = {{0, rows}, {rows < 3 ? rows : 3, 0}};
    ranges[1][1] = rows - 2 > ranges[1][0] ? rows - 2 : ranges[1][0];   // an odd sub-range, as a thread gets
    for (int g = 0; g < 2; g++) {
        int64_t r0 = ranges[g][0], r1 = ranges[g][1];
        const float sentinel = -12345.0f;
        for (int64_t i = 0; i < T * ldy; i++) y[i] = sentinel;
        pk_matmul_rows(dt, w, cols, x, ldx, T, y, ldy, r0, r1);
        char what[96];
        snprintf(what, sizeof what, "matmul %s rows %lld cols %lld T %lld [%lld,%lld)", NAMES[dt], (long long)rows,
                 (long long)cols, (long long)T, (long long)r0, (long long)r1);
        int stop = 0;
        for (int64_t t = 0; t < T && !stop; t++)
            for (int64_t r = 0; r < ldy && !stop; r++) {
                float got = y[t * ldy + r];
                if (outside_rows(got, sentinel, t, r, r0, r1, what, &stop)) continue;
                double exact = 0, size = 0;
                for (int64_t c = 0; c < cols; c++) {
                    exact += deq[r * cols + c] * x[t * ldx + c];
                    size += mag[r * cols + c] * fabs(x[t * ldx + c]);
                }
                // worst-case f32 rounding of a length-cols sum in any order (gamma_n), plus the dequantisation
                if (!within(got, exact, (cols + 4) * EPS / 2 * size + 1e-30, what)) stop = 1;
            }
    }
    free(w); free(x); free(deq); free(mag); free(y);
}

static void test_matmul(void) {
    // T = 2 ... 8: the small-batch kernels (kernels_small.c) for f32 / f16 / bf16 / q8_0 / q4_0 / q4_1
    const int64_t Ts[] = {1, 2, 3, 4, 5, 8, 17}, rowsl[] = {1, 5, 37};
    for (int dt = 0; dt < NT; dt++) {
        int64_t cl[5]; int ncl = 0;
        if (dt <= PK_BF16) { int64_t v[] = {1, 7, 67, 300, 1029}; for (int i = 0; i < 5; i++) cl[ncl++] = v[i]; }
        else if (block_of(dt) == 32) { cl[ncl++] = 32; cl[ncl++] = 96; cl[ncl++] = 288; }
        else { cl[ncl++] = 256; cl[ncl++] = 768; }
        for (int a = 0; a < 3; a++) for (int b = 0; b < ncl; b++) for (int c = 0; c < 7; c++) check_matmul(dt, rowsl[a], cl[b], Ts[c]);
    }
    // rows wider than the kernels' stack tile (16384 values) take the column-chunked paths
    const int wide[] = {PK_F32, PK_BF16, PK_Q8_0, PK_Q4_K};
    for (int k = 0; k < 4; k++) { check_matmul(wide[k], 3, 16384 + 512, 1); check_matmul(wide[k], 3, 16384 + 512, 2); }
}

// Round to `bits` significant bits, ties to even (exact in double: v / ulp is a power-of-two scaling);
// values below the smallest normal `emin` keep the subnormal spacing. For the reference activation rounding.
static double round_bits(double v, int bits, int emin) {
    if (v == 0 || !isfinite(v)) return v;
    int e;
    frexp(v, &e);               // |v| in [2^(e-1), 2^e)
    if (e - 1 < emin) e = emin + 1;
    double ulp = ldexp(1, e - bits);
    return nearbyint(v / ulp) * ulp;
}

// pk_native_prepare + pk_matmul_rows_native against the promised numerics (kernels.h): q8_0 activations quantised
// as ggml's quantize_row_q8_0 (d = amax / 127 in f32, kept as f16; q = round-half-away(x * (1/d))), exact integer
// dots per block times d_w * d_x; bf16 activations rounded to nearest even. Reference sums in double.
static void check_native(int dt, int64_t rows, int64_t cols, int64_t T) {
    uint8_t *w = random_rows(dt, rows, cols);
    size_t rb = pk_row_bytes(dt, cols), xs = pk_native_x_stride(dt, cols);
    int64_t ldx = cols + 3, ldy = rows + 2;
    float *x = malloc(4 * (size_t)(T * ldx)), *y = malloc(4 * (size_t)(T * ldy));
    for (int64_t i = 0; i < T * ldx; i++) x[i] = normal() * (i % 7 == 0 ? 4 : 1);
    void *xn = pk_thread_scratch(xs * (size_t)T);
    if (!xn) { FAIL("pk_thread_scratch(%zu) returned NULL", xs * (size_t)T); return; }
    pk_native_prepare(dt, x, ldx, cols, xn, 0, T);
    const float sentinel = -12345.0f;
    for (int64_t i = 0; i < T * ldy; i++) y[i] = sentinel;
    int64_t r0 = rows > 2 ? 1 : 0, r1 = rows;
    pk_matmul_rows_native(dt, w, cols, xn, T, y, ldy, r0, r1);
    char what[96];
    snprintf(what, sizeof what, "native %s rows %lld cols %lld T %lld", NAMES[dt], (long long)rows, (long long)cols, (long long)T);
    int64_t nb = cols / 32;
    double *xr = malloc(8 * (size_t)cols), *dxb = malloc(8 * (size_t)(nb + 1));
    int stop = 0;
    for (int64_t t = 0; t < T && !stop; t++) {
        const float *xt = x + t * ldx;
        if (dt == PK_Q8_0) {
            for (int64_t b = 0; b < nb; b++) {
                float amax = 0;
                for (int i = 0; i < 32; i++) if (fabsf(xt[b * 32 + i]) > amax) amax = fabsf(xt[b * 32 + i]);
                float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
                dxb[b] = round_bits(d, 11, -14);
                for (int i = 0; i < 32; i++) {
                    float v = xt[b * 32 + i] * id;
                    xr[b * 32 + i] = v < 0 ? -floor(-(double)v + 0.5) : floor((double)v + 0.5);
                }
            }
        } else {
            for (int64_t c = 0; c < cols; c++) xr[c] = round_bits(xt[c], 8, -126);
        }
        for (int64_t r = 0; r < ldy && !stop; r++) {
            float got = y[t * ldy + r];
            if (outside_rows(got, sentinel, t, r, r0, r1, what, &stop)) continue;
            const uint8_t *wr = w + rb * (size_t)r;
            double exact = 0, size = 0, tol;
            if (dt == PK_Q8_0) {
                double bsize = 0;
                for (int64_t b = 0; b < nb; b++) {
                    double isum = 0, asum = 0;
                    for (int i = 0; i < 32; i++) {
                        double pr = (double)(int8_t)wr[b * 34 + 2 + i] * xr[b * 32 + i];
                        isum += pr; asum += fabs(pr);
                    }
                    double sc = fabs(ref_f16(u16at(wr + b * 34)) * dxb[b]);
                    exact += isum * ref_f16(u16at(wr + b * 34)) * dxb[b];
                    size += sc * asum; bsize += sc * fabs(isum);
                }
                // NEON sums each block's integers exactly: d_w * d_x and its product with the block sum are rounded
                // once each, then an nb-term f32 sum. Other levels may split a block's sum over lanes before scaling,
                // so their bound (NativeKernelTests.swift's) counts |products| and nb + 16 roundings.
                if (strcmp(pk_simd_level(), "neon") == 0) tol = (nb + 4) * EPS / 2 * bsize + 1e-30;
                else tol = (nb + 16) * EPS / 2 * size + 1e-30;
            } else {
                for (int64_t c = 0; c < cols; c++) { double m, v = ref_elem(dt, wr, c, &m); exact += v * xr[c]; size += fabs(v * xr[c]); }
                tol = (cols + 4) * EPS / 2 * size + 1e-30;
            }
            if (!within(got, exact, tol, what)) stop = 1;
        }
    }
    free(w); free(x); free(y); free(xr); free(dxb);
}

static void test_native(void) {
    const int64_t Ts[] = {1, 2, 3, 5, 17}, rowsl[] = {1, 5, 37};
    for (int a = 0; a < 3; a++) for (int c = 0; c < 5; c++) {
        const int64_t qc[] = {32, 96, 160, 288}, bc[] = {1, 7, 67, 300};
        for (int b = 0; b < 4; b++) { check_native(PK_Q8_0, rowsl[a], qc[b], Ts[c]); check_native(PK_BF16, rowsl[a], bc[b], Ts[c]); }
    }
}

// MARK: native precision of the quantised types (kernels_native_legacy.c, kernels_native_k.c)
// Random valid rows (random bytes, the f16 scale fields small and finite, as NativeLegacyKernelTests.swift and
// NativeKQuantKernelTests.swift build them), T tokens, two row ranges (all rows, an odd sub-range); against the row
// dequantised by pk_dequant_row_scalar times the decoded prepared activations, in double, with those tests' bounds.
// At the neon level also against the scalar level: bit for bit for the K types (kernels_native_k.c promises identical
// bits), within twice the bound for the legacy ones (their f32 sums may run in another order).
static const char *nq_name(int dt) {
    switch (dt) {
    case PK_Q8_0: return "q8_0"; case PK_Q4_0: return "q4_0"; case PK_Q4_1: return "q4_1"; case PK_Q5_0: return "q5_0"; case PK_Q5_1: return "q5_1";
    case PK_IQ4_NL: return "iq4_nl"; case PK_Q2_K: return "q2_K"; case PK_Q3_K: return "q3_K"; case PK_Q4_K: return "q4_K";
    case PK_Q5_K: return "q5_K"; case PK_Q6_K: return "q6_K"; case PK_IQ4_XS: return "iq4_xs";
    case PK_IQ2_XXS: return "iq2_xxs"; case PK_IQ2_XS: return "iq2_xs"; case PK_IQ2_S: return "iq2_s";
    case PK_IQ3_XXS: return "iq3_xxs"; case PK_IQ3_S: return "iq3_s"; case PK_IQ1_S: return "iq1_s"; case PK_IQ1_M: return "iq1_m";
    }
    return "?";
}
// The lattice types (kernels_iq.c): q8_K tokens as the K types, the f16 d at 0 (IQ1_M: in its scale words' top nibbles).
static int nq_lat(int dt) { return dt >= PK_IQ2_XXS && dt <= PK_IQ1_M; }
static int nq_is_k(int dt) { return dt == PK_Q2_K || dt == PK_Q3_K || dt == PK_Q4_K || dt == PK_Q5_K || dt == PK_Q6_K || dt == PK_IQ4_XS || nq_lat(dt); }
static int nq_q81(int dt) { return dt == PK_Q4_1 || dt == PK_Q5_1; }
// Offsets of the f16 d and of the f16 dmin / m (-1: none) in a block.
static int nq_d_at(int dt) { return dt == PK_Q2_K ? 80 : dt == PK_Q3_K ? 108 : dt == PK_Q6_K ? 208 : 0; }
static int nq_m_at(int dt) { return dt == PK_Q2_K ? 82 : (dt == PK_Q4_K || dt == PK_Q5_K || nq_q81(dt)) ? 2 : -1; }
static void put_f16(uint8_t *p, double v) { uint16_t h = f16_bits(v); memcpy(p, &h, 2); }

// Every quantised type, dequantised at the level in use, bit for bit against pk_dequant_row_scalar (which equals
// gguf-py's rows: Tests/PersonaTensorTests): random codes; the f16 scale fields (nq_d_at, nq_m_at) random normal
// values of either sign, with blocks of the largest f16 (65504), the smallest normal (2^-14) and a subnormal (2^-24)
// scale.
static void test_dequant_bits(void) {
    static const int types[] = {PK_Q8_0, PK_Q4_0, PK_Q4_1, PK_Q5_0, PK_Q5_1, PK_IQ4_NL, PK_Q2_K, PK_Q3_K, PK_Q4_K,
                                PK_Q5_K, PK_Q6_K, PK_IQ4_XS, PK_IQ2_XXS, PK_IQ2_XS, PK_IQ2_S, PK_IQ3_XXS, PK_IQ3_S,
                                PK_IQ1_S, PK_IQ1_M};   // lattice: d at 0 but IQ1_M's (random there)
    static const uint16_t special[3] = {0x7BFF, 0x0400, 0x0001};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        const int dt = types[t], f16[2] = {nq_d_at(dt), nq_m_at(dt)}, nf = f16[1] >= 0 ? 2 : 1;
        const int64_t nblk = 7, cols = pk_block_elements(dt) * nblk;
        const size_t bb = pk_block_bytes(dt);
        uint8_t *w = malloc(bb * (size_t)nblk);
        for (size_t i = 0; i < bb * (size_t)nblk; i++) w[i] = (uint8_t)next_u64();
        for (int64_t b = 0; b < nblk; b++)
            for (int k = 0; k < nf; k++) {
                uint16_t h = b < 3 ? (uint16_t)(special[b] | (k ? 0x8000 : 0)) : f16_bits((uniform() - 0.5) * 0.2);
                memcpy(w + b * bb + f16[k], &h, 2);
            }
        float *got = malloc(4 * (size_t)cols), *want = malloc(4 * (size_t)cols);
        pk_dequant_row(dt, w, cols, got);
        pk_dequant_row_scalar(dt, w, cols, want);
        checks++;
        for (int64_t i = 0; i < cols; i++)
            if (memcmp(&got[i], &want[i], 4) != 0) {
                FAIL("dequant bits %s element %lld: %.9g vs portable %.9g", nq_name(dt), (long long)i, got[i], want[i]);
                break;
            }
        free(w); free(got); free(want);
    }
}

static uint8_t *nq_random_rows(int dt, int64_t rows, int64_t cols) {
    const size_t bb = pk_block_bytes(dt), qk = nq_is_k(dt) ? 256 : 32, nblk = (size_t)(rows * cols) / qk;
    uint8_t *w = malloc(bb * nblk + 1);
    for (size_t i = 0; i < bb * nblk; i++) w[i] = (uint8_t)next_u64();
    for (size_t b = 0; b < nblk; b++) {
        uint8_t *p = w + b * bb;
        if (dt == PK_IQ1_M) {
            const uint16_t h = f16_bits((uniform() * 2 - 1) * 0.01);
            for (int j = 0; j < 4; j++) p[49 + 2 * j] = (uint8_t)((p[49 + 2 * j] & 0x0F) | ((h >> (4 * j)) & 0xF) << 4);
        } else if (nq_is_k(dt)) {
            put_f16(p + nq_d_at(dt), (uniform() * 2 - 1) * 0.01);
            if (nq_m_at(dt) >= 0) put_f16(p + nq_m_at(dt), uniform() * 0.01);
        } else {
            put_f16(p, (uniform() - 0.5) * 0.1);
            if (nq_q81(dt)) put_f16(p + 2, (uniform() - 0.5) * 0.5);
        }
    }
    return w;
}

// The prepared legacy token's block b: d_x, aux (s for q8_1 types), q[j] (layout: kernels_native_legacy.c's header).
static double lg_dx(const uint8_t *xt, int64_t b) { float v; memcpy(&v, xt + (b / 8) * 320 + 4 * ((b & 1) * 4 + (b & 7) / 2), 4); return v; }
static double lg_s(const uint8_t *xt, int64_t b) { float v; memcpy(&v, xt + (b / 8) * 320 + 32 + 4 * ((b & 1) * 4 + (b & 7) / 2), 4); return v; }
static int lg_q(const uint8_t *xt, int64_t b, int j) {
    return (int8_t)xt[(b / 8) * 320 + 64 + 64 * ((b & 7) / 2) + (j < 16 ? 0 : 32) + 16 * (b & 1) + (j & 15)];
}

static void check_native_quant(int dt, int64_t rows, int64_t cols, int64_t T) {
    const int k = nq_is_k(dt);
    uint8_t *w = nq_random_rows(dt, rows, cols);
    const size_t rb = pk_row_bytes(dt, cols), xs = pk_native_x_stride(dt, cols), bb = pk_block_bytes(dt);
    const int64_t ldx = cols + 3, ldy = rows + 2, nb = k ? cols / 256 : cols / 32;
    float *x = malloc(4 * (size_t)(T * ldx)), *y = malloc(4 * (size_t)(T * ldy)), *ys = malloc(4 * (size_t)(T * ldy));
    for (int64_t i = 0; i < T * ldx; i++) x[i] = normal() * (i % 7 == 0 ? 4 : 1);
    uint8_t *xn = malloc(xs * (size_t)T);
    pk_native_prepare(dt, x, ldx, cols, xn, 0, T / 2);   // in two token ranges, as the pool does
    pk_native_prepare(dt, x, ldx, cols, xn, T / 2, T);
    // reference sums and bounds per (token, row)
    double *want = malloc(8 * (size_t)(T * rows)), *tol = malloc(8 * (size_t)(T * rows)), *xd = malloc(8 * (size_t)cols);
    float *wf = malloc(4 * (size_t)cols), *wa = malloc(4 * (size_t)cols), *wm = malloc(4 * (size_t)cols);
    uint8_t *tmp = malloc(rb);
    const double off = k || nq_q81(dt) ? 0 : dt == PK_Q4_0 ? 8 : dt == PK_Q5_0 ? 16 : 128;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = w + rb * (size_t)r;
        pk_dequant_row_scalar(dt, row, cols, wf);
        if (k) {   // the scale part (dmin = 0) and the min part (d = 0) separately, for the K bound
            if (nq_m_at(dt) >= 0) {
                memcpy(tmp, row, rb);
                for (int64_t b = 0; b < nb; b++) memset(tmp + b * bb + nq_m_at(dt), 0, 2);
                pk_dequant_row_scalar(dt, tmp, cols, wa);
                memcpy(tmp, row, rb);
                for (int64_t b = 0; b < nb; b++) memset(tmp + b * bb + nq_d_at(dt), 0, 2);
                pk_dequant_row_scalar(dt, tmp, cols, wm);
            } else {
                memcpy(wa, wf, 4 * (size_t)cols);
                memset(wm, 0, 4 * (size_t)cols);
            }
        }
        for (int64_t t = 0; t < T; t++) {
            const uint8_t *xt = xn + xs * (size_t)t;
            double s = 0, size = 0, wx = 0;
            if (k) {
                for (int64_t c = 0; c < cols; c++) {
                    float d; memcpy(&d, xt + cols + 4 * (c / 256), 4);
                    xd[c] = (double)d * (int8_t)xt[c];
                }
                for (int64_t c = 0; c < cols; c++) { s += wf[c] * xd[c]; size += (fabs(wa[c]) + fabs(wm[c])) * fabs(xd[c]); }
                if (dt == PK_IQ1_S || dt == PK_IQ1_M) size *= 9.0 / 7.0;   // grid and shift parts apart (LatticeTypeTests)
                tol[t * rows + r] = (2 * nb + 24) * EPS / 2 * size + 1e-30;
            } else {
                // NativeLegacyKernelTests.swift's bound: (8 nb + 18) u size + u sum |w x|, size counting the codes'
                // offsets; q8_1 types use ggml's f16 s for the m term
                for (int64_t b = 0; b < nb; b++) {
                    const double dw = ref_f16(u16at(row + b * bb)), m = nq_q81(dt) ? ref_f16(u16at(row + b * bb + 2)) : 0, dx = lg_dx(xt, b);
                    int qsum = 0;
                    for (int j = 0; j < 32; j++) {
                        const double q = lg_q(xt, b, j), wj = wf[b * 32 + j];
                        s += wj * dx * q;
                        wx += fabs(wj * dx * q);
                        size += (fabs(wj - m) + 2 * off * fabs(dw)) * fabs(dx * q);
                        qsum += (int)q;
                    }
                    if (nq_q81(dt)) { s += m * (lg_s(xt, b) - dx * qsum); size += fabs(m * lg_s(xt, b)); }
                }
                tol[t * rows + r] = (8 * nb + 18) * EPS / 2 * size + EPS / 2 * wx + 1e-30;
            }
            want[t * rows + r] = s;
        }
    }
    int64_t ranges[2][2] = {{0, rows}, {rows < 3 ? rows : 3, 0}};
    ranges[1][1] = rows - 2 > ranges[1][0] ? rows - 2 : ranges[1][0];   // an odd sub-range, as a thread gets
    const char *level = pk_simd_level();
    for (int g = 0; g < 2; g++) {
        const int64_t r0 = ranges[g][0], r1 = ranges[g][1];
        const float sentinel = -12345.0f;
        for (int64_t i = 0; i < T * ldy; i++) y[i] = ys[i] = sentinel;
        pk_matmul_rows_native(dt, w, cols, xn, T, y, ldy, r0, r1);
        int cmp = strcmp(level, "scalar") != 0;
        if (cmp) {
            pk_simd_set_level("scalar");
            pk_matmul_rows_native(dt, w, cols, xn, T, ys, ldy, r0, r1);
            pk_simd_set_level(level);
        }
        char what[112];
        snprintf(what, sizeof what, "native_%s %s rows %lld cols %lld T %lld [%lld,%lld)", k ? "K" : "legacy", nq_name(dt),
                 (long long)rows, (long long)cols, (long long)T, (long long)r0, (long long)r1);
        int stop = 0;
        for (int64_t t = 0; t < T && !stop; t++)
            for (int64_t r = 0; r < ldy && !stop; r++) {
                float got = y[t * ldy + r];
                if (outside_rows(got, sentinel, t, r, r0, r1, what, &stop)) continue;
                if (!within(got, want[t * rows + r], tol[t * rows + r], what)) stop = 1;
                if (!cmp) continue;
                checks++;
                float gs = ys[t * ldy + r];
                if (k ? memcmp(&got, &gs, 4) != 0 : !(fabs((double)got - gs) <= 2 * tol[t * rows + r])) {
                    FAIL("%s vs scalar at t %lld r %lld: %.9g vs %.9g", what, (long long)t, (long long)r, got, gs);
                    stop = 1;
                }
            }
    }
    free(w); free(x); free(y); free(ys); free(xn); free(want); free(tol); free(xd); free(wf); free(wa); free(wm); free(tmp);
}

// Exact precision (pk_matmul_rows) of every quantised type at the level in use, T = 1 (decode kernels) and T = 3
// (tiles), against the portable rows times x in double. Bound: gamma_{cols+2} times the sum over elements of
// (|scale part| + |min part|) |x| (nq_m_at's field zeroed, then the scale zeroed), since the kernels may sum the
// two parts apart (q4_K / q5_K).
static void check_exact_quant(int dt, int64_t rows, int64_t cols, int64_t T) {
    const int k = nq_is_k(dt);
    uint8_t *w = nq_random_rows(dt, rows, cols);
    const size_t rb = pk_row_bytes(dt, cols), bb = pk_block_bytes(dt);
    const int64_t nb = cols / (k ? 256 : 32), ldx = cols + 1;
    float *x = malloc(4 * (size_t)(T * ldx)), *y = malloc(4 * (size_t)(T * rows));
    for (int64_t i = 0; i < T * ldx; i++) x[i] = normal() * (i % 7 == 0 ? 4 : 1);
    float *wf = malloc(4 * (size_t)cols), *wa = malloc(4 * (size_t)cols), *wm = malloc(4 * (size_t)cols);
    uint8_t *tmp = malloc(rb);
    pk_matmul_rows(dt, w, cols, x, ldx, T, y, rows, 0, rows);
    char what[80]; snprintf(what, sizeof what, "exact %s rows %lld cols %lld T %lld", nq_name(dt), (long long)rows, (long long)cols, (long long)T);
    int stop = 0;
    for (int64_t r = 0; r < rows && !stop; r++) {
        const uint8_t *row = w + rb * (size_t)r;
        pk_dequant_row_scalar(dt, row, cols, wf);
        const int mfield = k ? nq_m_at(dt) : nq_q81(dt) ? 2 : -1, dfield = k ? nq_d_at(dt) : 0;
        if (mfield >= 0) {
            memcpy(tmp, row, rb);
            for (int64_t b = 0; b < nb; b++) memset(tmp + b * bb + mfield, 0, 2);
            pk_dequant_row_scalar(dt, tmp, cols, wa);
            memcpy(tmp, row, rb);
            for (int64_t b = 0; b < nb; b++) memset(tmp + b * bb + dfield, 0, 2);
            pk_dequant_row_scalar(dt, tmp, cols, wm);
        } else {
            memcpy(wa, wf, 4 * (size_t)cols);
            memset(wm, 0, 4 * (size_t)cols);
        }
        for (int64_t t = 0; t < T && !stop; t++) {
            double s = 0, size = 0;
            for (int64_t c = 0; c < cols; c++) {
                s += (double)wf[c] * x[t * ldx + c];
                size += (fabs((double)wa[c]) + fabs((double)wm[c])) * fabs((double)x[t * ldx + c]);
            }
            if (!within(y[t * rows + r], s, (cols + 2) * EPS / 2 * size + 1e-30, what)) stop = 1;
        }
    }
    free(w); free(x); free(y); free(wf); free(wa); free(wm); free(tmp);
}

static void test_exact_quant(void) {
    const int types[] = {PK_Q4_0, PK_Q4_1, PK_Q5_0, PK_Q5_1, PK_IQ4_NL, PK_Q2_K, PK_Q3_K, PK_Q4_K, PK_Q5_K, PK_Q6_K, PK_IQ4_XS,
                         PK_IQ2_XXS, PK_IQ2_XS, PK_IQ2_S, PK_IQ3_XXS, PK_IQ3_S, PK_IQ1_S, PK_IQ1_M};
    for (int i = 0; i < (int)(sizeof types / sizeof *types); i++)
        for (int64_t rows = 1; rows <= 7; rows += 6)
            for (int64_t T = 1; T <= 3; T += 2) check_exact_quant(types[i], rows, nq_is_k(types[i]) ? 768 : 288, T);
}

static void test_native_quant(void) {
    const int legacy[] = {PK_Q4_0, PK_Q4_1, PK_Q5_0, PK_Q5_1, PK_IQ4_NL}, kq[] = {PK_Q2_K, PK_Q3_K, PK_Q4_K, PK_Q5_K, PK_Q6_K, PK_IQ4_XS};
    const int64_t Ts[] = {1, 2, 3, 4, 5, 17}, rowsl[] = {1, 5, 37};
    const int64_t lc[] = {32, 96, 288, 544}, kc[] = {256, 768};
    for (int a = 0; a < 3; a++) for (int c = 0; c < 6; c++) {
        for (int i = 0; i < 5; i++) for (int b = 0; b < 4; b++) check_native_quant(legacy[i], rowsl[a], lc[b], Ts[c]);
        for (int i = 0; i < 6; i++) for (int b = 0; b < 2; b++) check_native_quant(kq[i], rowsl[a], kc[b], Ts[c]);
        for (int dt = PK_IQ2_XXS; dt <= PK_IQ1_M; dt++) check_native_quant(dt, rowsl[a], 768, Ts[c]);
    }
}

// The prepared activations of every quantised native type, byte for byte as the scalar level writes them (the
// vector roundings of kernels_native_legacy.c / kernels_native_k.c against the portable quantisers): zero blocks,
// rounding ties, the largest magnitude twice with opposite signs, huge and tiny blocks, NaN.
static void test_native_prepare_bits(void) {
    const int types[] = {PK_Q4_0, PK_Q4_1, PK_Q5_0, PK_Q5_1, PK_IQ4_NL, PK_Q2_K, PK_Q3_K, PK_Q4_K, PK_Q5_K, PK_Q6_K, PK_IQ4_XS};
    const char *level = pk_simd_level();
    for (size_t k = 0; k < sizeof types / sizeof *types; k++)
        for (int mode = 0; mode < 4; mode++) {
            const int dt = types[k];
            const int64_t cols = nq_is_k(dt) ? 1024 : 544;
            const size_t xs = pk_native_x_stride(dt, cols);
            float *x = malloc(4 * (size_t)cols);
            uint8_t *a = malloc(xs), *b = malloc(xs);
            for (int64_t i = 0; i < cols; i++) x[i] = normal() * 2;
            for (int64_t i = 256; i < 512; i++) x[i] = 0;                         // zero blocks (both block sizes)
            // ties: the first block's largest magnitude is 127, so d = 1 (legacy) and iscale = -1 (K)
            for (int64_t i = 0; i < 32; i++) x[i] = (float)((int)(next_u64() % 254) - 127) + 0.5f;
            x[0] = 127;
            x[600 % cols] = -900; x[610 % cols] = 900;                            // |max| twice, - first
            if (mode == 1) for (int64_t i = 0; i < cols; i++) x[i] *= 1e-30f;    // f16 scales underflow
            if (mode == 2) for (int64_t i = 0; i < cols; i += 7) x[i] *= 1e6f;   // outliers, f16 overflow of s
            if (mode == 3) { x[3] = NAN; x[cols - 5] = NAN; }
            memset(a, 0xAA, xs); memset(b, 0xAA, xs);   // the same filler: the K layout leaves padding unwritten
            pk_native_prepare(dt, x, cols, cols, a, 0, 1);
            pk_simd_set_level("scalar");
            pk_native_prepare(dt, x, cols, cols, b, 0, 1);
            pk_simd_set_level(level);
            // a NaN block's scale is NaN at both levels; compare it as NaN, not by its payload
            int bad = -1;
            for (size_t i = 0; i < xs && bad < 0; i++) if (a[i] != b[i]) bad = (int)i;
            if (bad >= 0 && mode == 3 && (size_t)bad + 4 <= xs) {
                float fa, fb;
                memcpy(&fa, a + (bad & ~3), 4); memcpy(&fb, b + (bad & ~3), 4);
                if (isnan(fa) && isnan(fb)) { memcpy(a + (bad & ~3), b + (bad & ~3), 4); bad = -1; for (size_t i = 0; i < xs && bad < 0; i++) if (a[i] != b[i]) bad = (int)i; }
            }
            checks++;
            if (bad >= 0) FAIL("native prepare %s mode %d: byte %d is %d, the scalar level's %d", nq_name(dt), mode, bad, a[bad], b[bad]);
            free(x); free(a); free(b);
        }
}

// The double softmax-attention of one head: s[j] = exp(score_j - max) over positions j < n of keys K + j * ldk,
// their sum in *sum; returns the relative error bound of the f32 kernels' output against sum_j p_j |v_j|:
// score errors (twice, via the max and via the sum), rounding of s - m, expf (a few ulp), the n-term sum and the
// division, then n axpy roundings.
static double reference_weights(const float *q, const float *K, int64_t ldk, int64_t n, int64_t hd, float scale,
                                float softcap, double *s, double *sum) {
    double m = -INFINITY, emax = 0, smax = 0;
    for (int64_t j = 0; j < n; j++) {
        double d = 0, size = 0;
        for (int64_t i = 0; i < hd; i++) { d += (double)q[i] * K[j * ldk + i]; size += fabs((double)q[i] * K[j * ldk + i]); }
        s[j] = d * scale;
        if (softcap > 0) s[j] = tanh(s[j] / softcap) * softcap;
        // error of the f32 score: the dot (gamma_hd), the scaling, and tanh/divide/multiply (slope <= 1)
        double e = (hd + 2) * EPS / 2 * size * scale + 4 * EPS * fabs(s[j]);
        if (e > emax) emax = e;
        if (fabs(s[j]) > smax) smax = fabs(s[j]);
        if (s[j] > m) m = s[j];
    }
    *sum = 0;
    for (int64_t j = 0; j < n; j++) { s[j] = exp(s[j] - m); *sum += s[j]; }
    return 2 * (2 * emax + EPS * 2 * smax + 4 * EPS) + (n + 4) * EPS + (n + 2) * EPS;
}

// One head (pk_attention_head: the portable loop below 16 positions or at other head sizes, the tile loop from 16
// positions at 64 / 128 / 256), against a double softmax-attention with a rounding bound.
static void test_attention(void) {
    const int64_t ns[] = {1, 5, 16, 37, 300}, hds[] = {1, 7, 64, 67, 128, 256};
    const float caps[] = {0, 30};
    for (int a = 0; a < 5; a++) for (int b = 0; b < 6; b++) for (int c = 0; c < 2; c++) {
        int64_t n = ns[a], hd = hds[b], ldk = hd + 3, ldv = hd + 1;
        float softcap = caps[c], scale = 1.0f / sqrtf((float)hd);
        float *q = malloc(4 * (size_t)hd), *K = malloc(4 * (size_t)(n * ldk)), *V = malloc(4 * (size_t)(n * ldv));
        float *scores = malloc(4 * (size_t)n), *out = malloc(4 * (size_t)hd);
        for (int64_t i = 0; i < hd; i++) q[i] = normal() * 2;
        for (int64_t i = 0; i < n * ldk; i++) K[i] = normal() * 2;
        for (int64_t i = 0; i < n * ldv; i++) V[i] = normal();
        pk_attention_head(q, K, ldk, V, ldv, PK_F32, n, hd, scale, softcap, scores, out);
        double *s = malloc(8 * (size_t)n), sum;
        const double rel = reference_weights(q, K, ldk, n, hd, scale, softcap, s, &sum);
        char what[80]; snprintf(what, sizeof what, "attention n %lld hd %lld softcap %g", (long long)n, (long long)hd, softcap);
        for (int64_t i = 0; i < hd; i++) {
            double o = 0, size = 0;
            for (int64_t j = 0; j < n; j++) { o += s[j] / sum * V[j * ldv + i]; size += s[j] / sum * fabs(V[j * ldv + i]); }
            if (!within(out[i], o, rel * size + 1e-30, what)) break;
        }
        free(q); free(K); free(V); free(scores); free(out); free(s);
    }
}

// A prompt's causal attention (pk_attention_causal: blocks of positions x heads through the tile loop) equals
// pk_attention_head for each position and head over that position's rows, bit for bit: across the 16-row rule,
// partial blocks, the head sizes of the tile loop and an odd one, soft-capping and a sliding window.
static void test_attention_causal(void) {
    const struct { int64_t n0, P, hd, G, window; float cap; } cases[] = {
        {1, 40, 64, 3, 0, 0}, {60, 21, 128, 7, 0, 0}, {1, 35, 256, 2, 0, 30}, {2, 40, 67, 3, 0, 0}, {1, 50, 64, 4, 24, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t n0 = cases[c].n0, P = cases[c].P, hd = cases[c].hd, G = cases[c].G, w = cases[c].window;
        const int64_t rows = n0 + P - 1, ld = 2 * G * hd + 3, ldq = G * hd + 5;
        const float cap = cases[c].cap, scale = 1.0f / sqrtf((float)hd);
        float *q = malloc(4 * (size_t)(P * ldq)), *K = malloc(4 * (size_t)(rows * ld)), *V = malloc(4 * (size_t)(rows * ld));
        float *want = malloc(4 * (size_t)(P * ldq)), *got = malloc(4 * (size_t)(P * ldq)), *scores = malloc(4 * (size_t)rows);
        for (int64_t i = 0; i < P * ldq; i++) { q[i] = normal() * 2; want[i] = got[i] = 0; }
        for (int64_t i = 0; i < rows * ld; i++) { K[i] = normal() * 2; V[i] = normal(); }
        for (int64_t t = 0; t < P; t++) {
            const int64_t n = n0 + t, lo = w > 0 && n > w ? n - w : 0;
            for (int64_t h = 0; h < G; h++)
                pk_attention_head(q + t * ldq + h * hd, K + lo * ld + 1, ld, V + lo * ld + 1, ld, PK_F32, n - lo, hd, scale, cap,
                                  scores, want + t * ldq + h * hd);
        }
        checks++;
        if (pk_attention_causal(q, ldq, P, G, K + 1, ld, V + 1, ld, PK_F32, n0, w, hd, scale, cap, got, ldq) != 0)
            FAIL("attention_causal case %zu: returned an error", c);
        else if (memcmp(want, got, 4 * (size_t)(P * ldq)) != 0)
            FAIL("attention_causal n0 %lld P %lld hd %lld G %lld window %lld: not pk_attention_head's bits",
                 (long long)n0, (long long)P, (long long)hd, (long long)G, (long long)w);
        free(q); free(K); free(V); free(want); free(got); free(scores);
    }
}

// An f16 KV cache: pk_attention_causal and pk_attention_partial reading f16 K / V (the NEON loop widening them as it
// loads) give the bits they give reading f32 K / V holding the same values; pk_f32_to_f16_row (fcvtn) equals
// pk_f32_to_f16 value by value.
static void test_attention_f16(void) {
    const struct { int64_t n0, P, hd, G, window; } cases[] = {{1, 40, 64, 3, 0}, {60, 21, 128, 7, 0}, {1, 35, 256, 2, 0},
                                                              {2, 40, 67, 3, 0}, {1, 50, 64, 4, 24}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const int64_t n0 = cases[c].n0, P = cases[c].P, hd = cases[c].hd, G = cases[c].G, w = cases[c].window;
        const int64_t rows = n0 + P - 1, ld = 2 * G * hd + 3, ldq = G * hd;
        const float scale = 1.0f / sqrtf((float)hd);
        float *q = malloc(4 * (size_t)(P * ldq)), *K = malloc(4 * (size_t)(rows * ld)), *V = malloc(4 * (size_t)(rows * ld));
        uint16_t *Kh = malloc(2 * (size_t)(rows * ld)), *Vh = malloc(2 * (size_t)(rows * ld));
        float *want = malloc(4 * (size_t)(P * ldq)), *got = malloc(4 * (size_t)(P * ldq));
        for (int64_t i = 0; i < P * ldq; i++) q[i] = normal() * 2;
        for (int64_t i = 0; i < rows * ld; i++) {
            Kh[i] = pk_f32_to_f16((float)normal() * 2); Vh[i] = pk_f32_to_f16((float)normal());
            K[i] = pk_f16_to_f32(Kh[i]); V[i] = pk_f16_to_f32(Vh[i]);
        }
        checks++;
        if (pk_attention_causal(q, ldq, P, G, K + 1, ld, V + 1, ld, PK_F32, n0, w, hd, scale, 0, want, ldq) != 0 ||
            pk_attention_causal(q, ldq, P, G, Kh + 1, ld, Vh + 1, ld, PK_F16, n0, w, hd, scale, 0, got, ldq) != 0)
            FAIL("attention_f16 case %zu: returned an error", c);
        else if (memcmp(want, got, 4 * (size_t)(P * ldq)) != 0)
            FAIL("attention_f16 causal n0 %lld P %lld hd %lld G %lld: f16 not the f32 bits", (long long)n0, (long long)P,
                 (long long)hd, (long long)G);
        // one decode query over all rows (G heads of the first KV head), unnormalised partials
        float *s = malloc(4 * (size_t)(G * rows)), m1[16], l1[16], m2[16], l2[16];
        pk_attention_partial(q, G, G, K, V, ld, PK_F32, rows, hd, scale, 0, s, rows, m1, l1, want);
        pk_attention_partial(q, G, G, Kh, Vh, ld, PK_F16, rows, hd, scale, 0, s, rows, m2, l2, got);
        checks++;
        if (memcmp(want, got, 4 * (size_t)(G * hd)) != 0 || memcmp(l1, l2, 4 * (size_t)G) != 0)
            FAIL("attention_f16 partial rows %lld hd %lld G %lld: f16 not the f32 bits", (long long)rows, (long long)hd, (long long)G);
        free(q); free(K); free(V); free(Kh); free(Vh); free(want); free(got); free(s);
    }
    float x[1000]; uint16_t h[1000];
    for (int i = 0; i < 1000; i++) x[i] = (float)normal() * ldexpf(1, i % 48 - 30);
    x[0] = 65520; x[1] = 65519.996f; x[2] = 2.9802322e-8f; x[3] = 1 + 1.0f / 4096; x[4] = -0.0f;
    pk_f32_to_f16_row(x + 1, h + 1, 999);
    for (int i = 1; i < 1000; i++) {
        checks++;
        if (h[i] != pk_f32_to_f16(x[i])) { FAIL("f32_to_f16_row: %g -> 0x%x, want 0x%x", x[i], h[i], pk_f32_to_f16(x[i])); break; }
    }
}

// Decode attention by position chunk: pk_attention_partial over each chunk (query heads sharing key/value heads
// of whole rows), then pk_attention_merge, against the double softmax-attention of each head over all positions.
// The bound: test_attention's for the chunk's own softmax, plus the merge (an exp of each chunk's max offset, the
// C-term sums of weights and of outputs, the division): (2 C + 8) EPS more.
static void test_attention_chunks(void) {
    const struct { int64_t n, hd, H, group, chunks; float cap; } cases[] = {
        {1, 64, 3, 3, 1, 0}, {300, 64, 9, 3, 4, 0}, {47, 128, 4, 2, 3, 0}, {100, 8, 8, 1, 2, 0},
        {65, 256, 2, 2, 2, 40}, {33, 64, 7, 7, 33, 0}};
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        const int64_t n = cases[t].n, hd = cases[t].hd, H = cases[t].H, group = cases[t].group, C = cases[t].chunks;
        const float cap = cases[t].cap, scale = 1.0f / sqrtf((float)hd);
        const int64_t ld = H / group * hd, per = (n + C - 1) / C;
        float *q = malloc(4 * (size_t)(H * hd)), *K = malloc(4 * (size_t)(n * ld)), *V = malloc(4 * (size_t)(n * ld));
        float *scores = malloc(4 * (size_t)(H * n)), *m = malloc(4 * (size_t)(C * H)), *l = malloc(4 * (size_t)(C * H));
        float *o = malloc(4 * (size_t)(C * H * hd)), *out = malloc(4 * (size_t)(H * hd));
        for (int64_t i = 0; i < H * hd; i++) q[i] = normal() * 2;
        for (int64_t i = 0; i < n * ld; i++) { K[i] = normal() * 2; V[i] = normal(); }
        for (int64_t c = 0; c < C; c++) {
            const int64_t a = c * per < n ? c * per : n, b = a + per < n ? a + per : n;
            pk_attention_partial(q, H, group, K + a * ld, V + a * ld, ld, PK_F32, b - a, hd, scale, cap, scores + a, n,
                                 m + c * H, l + c * H, o + c * H * hd);
        }
        pk_attention_merge(C, H, hd, m, l, o, out);
        double *s = malloc(8 * (size_t)n);
        for (int64_t h = 0; h < H; h++) {
            const int64_t col = (h / group) * hd;
            double sum;
            const double rel = reference_weights(q + h * hd, K + col, ld, n, hd, scale, cap, s, &sum) + (2 * C + 8) * EPS;
            char what[96]; snprintf(what, sizeof what, "attention_chunks n %lld hd %lld H %lld group %lld chunks %lld head %lld",
                                    (long long)n, (long long)hd, (long long)H, (long long)group, (long long)C, (long long)h);
            for (int64_t i = 0; i < hd; i++) {
                double y = 0, size = 0;
                for (int64_t j = 0; j < n; j++) { y += s[j] / sum * V[j * ld + col + i]; size += s[j] / sum * fabs(V[j * ld + col + i]); }
                if (!within(out[h * hd + i], y, rel * size + 1e-30, what)) break;
            }
        }
        free(q); free(K); free(V); free(scores); free(m); free(l); free(o); free(out); free(s);
    }
}

// pk_softmax_weights (softmax.c): every weight the same bits as pk_softmax_weight (the portable one), the min-p cut,
// the sum up to the order of its double additions, NaN kept, nothing written past n.
static void test_softmax_weights(void) {
    const int64_t ns[] = {0, 1, 3, 4, 5, 8, 13, 1003, 49155};
    const float ts[] = {1.0f, 0.7f, 1.3f}, cuts[] = {0.0f, 0.0f, 0.05f};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++)
        for (int c = 0; c < 3; c++) {
            const int64_t n = ns[k];
            float *x = malloc(4 * (size_t)n + 4), *out = malloc(4 * (size_t)n + 4);
            for (int64_t i = 0; i < n; i++) x[i] = normal() * 6;
            for (int64_t i = 2; i < n; i += 9) x[i] = 30 - 87.3f - (float)uniform() * 0.1f;   // around e^-87.34
            for (int64_t i = 5; i < n; i += 13) x[i] = -200;
            if (n > 0) x[n / 2] = 30;
            out[n] = 12345;
            const double sum = pk_softmax_weights(x, n, 30, ts[c], cuts[c], out);
            double want = 0;
            char what[80]; snprintf(what, sizeof what, "softmax_weights n %lld t %g cut %g", (long long)n, ts[c], cuts[c]);
            for (int64_t i = 0; i < n; i++) {
                float w = pk_softmax_weight(x[i], 30, ts[c]);
                if (w < cuts[c]) w = 0;
                want += w;
                uint32_t a, b; memcpy(&a, &out[i], 4); memcpy(&b, &w, 4);
                checks++;
                if (a != b) { FAIL("%s: weight %lld of %g is %.9g, the portable code's %.9g", what, (long long)i, x[i], out[i], w); break; }
            }
            checks++; if (out[n] != 12345) FAIL("%s: wrote past the end", what);
            within(sum, want, (double)(n + 1) * 0x1p-53 * want + 1e-300, what);
            free(x); free(out);
        }
    float x[7] = {0, NAN, -1, -2, -3, NAN, -4}, out[7];
    checks++; if (!isnan(pk_softmax_weights(x, 7, 0, 1, 0, out)) || !isnan(out[1]) || !isnan(out[5]) || isnan(out[2]))
        FAIL("softmax_weights: NaN not kept where it was, or spread");
}

static void test_activations(void) {
    const float special[] = {0, -0.0f, 1e-6f, -1e-6f, 0.5f, -0.5f, 20, -20, 87, -87, 88.5f, -88.5f, 100, -100, 1e4f, -1e4f};
    const int64_t ns[] = {1, 3, 5, 7, 17, 1003};
    for (int gelu = 0; gelu < 2; gelu++)
        for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
            int64_t n = ns[k];
            float *g0 = malloc(4 * (size_t)n), *g = malloc(4 * (size_t)n), *u = malloc(4 * (size_t)n);
            for (int64_t i = 0; i < n; i++) {
                g0[i] = n == 1003 && i < 16 ? special[i] : normal() * 6;
                u[i] = normal();
            }
            if (n == 17) g0[16] = -100;   // a clamped value in the tail
            memcpy(g, g0, 4 * (size_t)n);
            if (gelu) pk_gelu_tanh_mul(g, u, n); else pk_silu_mul(g, u, n);
            char what[64]; snprintf(what, sizeof what, "%s n %lld", gelu ? "gelu_tanh_mul" : "silu_mul", (long long)n);
            for (int64_t i = 0; i < n; i++) {
                double x = g0[i];
                // x/2 (1 + tanh z) written as x / (1 + e^{-2z}): in double the first form itself cancels for x << 0
                double act = gelu ? x / (1 + exp(-2 * 0.7978845608028654 * (x + 0.044715 * x * x * x))) : x / (1 + exp(-x));
                double want = act * u[i];
                // a few f32 roundings of each intermediate (exp to ~1 ulp, divide, multiplies): 8 ulps relative, plus
                // for gelu at the other levels an absolute floor where 1 + tanh(z) cancels (tanhf, or 1 - 2/(e^2z + 1):
                // ~1.5 ulp of 1 absolute, times |x/2|), as ThreadPoolTests.swift's check; NEON's x / (1 + e^-2z) has
                // no cancellation, so it gets no floor
                double floor_ = gelu && strcmp(pk_simd_level(), "neon") != 0 ? 1e-7 * fabs(x * u[i]) : 0;
                // gelu's argument 2z is itself an f32 result (about 3 ulp of |2z|, the terms have one sign), and
                // 1 / (1 + e^-2z) has relative condition |2z| e^-2z / (1 + e^-2z) in it
                double z2 = 2 * 0.7978845608028654 * (x + 0.044715 * x * x * x), e = exp(-z2);
                double cond = gelu ? fabs(z2) / (1 + 1 / e) : 0;
                double tol = (8 + 4 * cond) * EPS * fabs(want) + 1e-30 + floor_;
                if (!within(g[i], want, tol, what)) break;
            }
            free(g0); free(g); free(u);
        }
    // NaN must come through (the overflow checks rely on it)
    float g[5] = {1, NAN, 2, 3, NAN}, u[5] = {1, 1, 1, 1, 1};
    pk_silu_mul(g, u, 5);
    checks++; if (!isnan(g[1]) || !isnan(g[4])) FAIL("silu_mul lost a NaN");
    float h[5] = {1, NAN, 2, 3, NAN};
    pk_gelu_tanh_mul(h, u, 5);
    checks++; if (!isnan(h[1]) || !isnan(h[4])) FAIL("gelu_tanh_mul lost a NaN");
}

static void test_read_sum(void) {
    const size_t sizes[] = {64, 128, 192, 1088, 65536 + 64};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        size_t bytes = sizes[k], n = bytes / 4;
        uint32_t *p = malloc(bytes);
        uint64_t want = 0;
        for (size_t i = 0; i < n; i++) { p[i] = (uint32_t)next_u64(); want += p[i]; }
        uint64_t got = pk_read_sum(p, bytes);
        checks++;
        // the header promises the word sum; the x86 levels keep it mod 2^32, scalar and NEON exactly
        if ((uint32_t)got != (uint32_t)want) FAIL("read_sum %zu bytes: %llu vs %llu", bytes, (unsigned long long)got, (unsigned long long)want);
#if defined(__aarch64__)
        checks++;
        if (got != want) FAIL("read_sum %zu bytes not the exact 64-bit sum: %llu vs %llu", bytes, (unsigned long long)got, (unsigned long long)want);
#endif
        free(p);
    }
}

static void test_first_nonfinite(void) {
    const int64_t ns[] = {0, 1, 5, 17, 255, 256, 257, 1000};
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) {
        int64_t n = ns[k];
        float *x = malloc(4 * (size_t)n + 4);
        for (int64_t i = 0; i < n; i++) x[i] = (i % 3 == 0) ? FLT_MAX : (i % 3 == 1) ? -1e-40f : normal();
        checks++;
        if (pk_first_nonfinite(x, n) != -1) FAIL("first_nonfinite n %lld: finite input flagged", (long long)n);
        for (int64_t pos = 0; pos < n; pos += (n > 20 ? n / 7 + 1 : 1)) {
            float keep = x[pos];
            x[pos] = bad[pos % 3];
            if (pos + 2 < n) x[n - 1] = NAN;   // a later one must not win
            checks++;
            int64_t got = pk_first_nonfinite(x, n);
            if (got != pos) FAIL("first_nonfinite n %lld: %lld, want %lld", (long long)n, (long long)got, (long long)pos);
            x[pos] = keep;
            x[n - 1] = normal();
        }
        free(x);
    }
}

// Every matrix product path reads only the bytes of the rows it is given: the matrix ends right before a page that
// may not be read (as a tensor at the end of a memory-mapped file can), so a load of a whole vector where fewer bytes
// remain faults. The last row widened alone, the generic rows (T = 1 and a tile), the laid-out exact path where the
// level has one and the native path; results equal the same calls on the bytes in an ordinary buffer.
static void test_reads_only_rows(void) {
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    for (int dt = PK_F32; dt <= PK_IQ1_M; dt++) {
        const int64_t qk = pk_block_elements(dt);
        const int64_t c1[] = {7, 33, 0}, c32[] = {32, 96, 160, 0}, c256[] = {256, 768, 0};
        const int64_t *cl = qk == 1 ? c1 : qk == 32 ? c32 : c256;
        for (; *cl; cl++) {
            const int64_t cols = *cl, rows = 3, T = 3;
            uint8_t *w = dt <= PK_BF16 ? random_rows(dt, rows, cols) : nq_random_rows(dt, rows, cols);
            const size_t rb = pk_row_bytes(dt, cols), bytes = rb * (size_t)rows, mapped = (bytes + pg - 1) / pg * pg + pg;
            uint8_t *base = mmap(NULL, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (base == MAP_FAILED || mprotect(base + mapped - pg, pg, PROT_NONE)) { printf("FAIL mmap\n"); failures++; return; }
            uint8_t *edge = base + mapped - pg - bytes;
            memcpy(edge, w, bytes);
            float *x = malloc(4 * (size_t)(T * cols)), *a = malloc(4 * (size_t)(T * rows + cols)), *b = malloc(4 * (size_t)(T * rows + cols));
            for (int64_t i = 0; i < T * cols; i++) x[i] = normal();
            char what[96];
            snprintf(what, sizeof what, "reads only its rows: type %d cols %lld", dt, (long long)cols);
            #define SAME(n, label) do { checks++; if (memcmp(a, b, 4 * (size_t)(n))) { printf("FAIL %s %s\n", what, label); failures++; } } while (0)
            pk_dequant_row(dt, edge + rb * (size_t)(rows - 1), cols, a);
            pk_dequant_row(dt, w + rb * (size_t)(rows - 1), cols, b);
            SAME(cols, "last row widened");
            for (int64_t t = 1; t <= T; t += T - 1) {
                pk_matmul_rows(dt, edge, cols, x, cols, t, a, rows, 0, rows);
                pk_matmul_rows(dt, w, cols, x, cols, t, b, rows, 0, rows);
                SAME(t * rows, t == 1 ? "rows T 1" : "rows T 3");
            }
            const int64_t nf = pk_exact_x_floats(dt, cols);
            if (nf > 0) {
                float *xp = aligned_alloc(64, ((size_t)nf * 4 + 63) / 64 * 64);
                pk_exact_prepare(dt, x, cols, xp);
                pk_matvec_exact_prepared(dt, edge, cols, xp, a, 0, rows);
                pk_matvec_exact_prepared(dt, w, cols, xp, b, 0, rows);
                SAME(rows, "exact laid-out");
                free(xp);
            }
            const size_t st = pk_native_x_stride(dt, cols);
            if (st > 0) {
                void *xn = aligned_alloc(64, st * (size_t)T);
                pk_native_prepare(dt, x, cols, cols, xn, 0, T);
                for (int64_t t = 1; t <= T; t += T - 1) {
                    pk_matmul_rows_native(dt, edge, cols, xn, t, a, rows, 0, rows);
                    pk_matmul_rows_native(dt, w, cols, xn, t, b, rows, 0, rows);
                    SAME(t * rows, t == 1 ? "native T 1" : "native T 3");
                }
                free(xn);
            }
            #undef SAME
            free(x); free(a); free(b); free(w);
            munmap(base, mapped);
        }
    }
}

int main(void) {
    const char *want = getenv("PERSONA_SIMD");
#if defined(__aarch64__)
    if (!want || !*want) want = "neon";
#else
    if (!want || !*want) want = pk_simd_level();   // built for the host: whatever it picked
#endif
    test_level(want);
    test_dot_axpy();
    test_dequant();
    test_dequant_bits();
    test_matmul();
    test_native();
    test_native_quant();
    test_native_prepare_bits();
    test_exact_quant();
    test_attention();
    test_attention_chunks();
    test_attention_causal();
    test_attention_f16();
    test_activations();
    test_softmax_weights();
    test_read_sum();
    test_first_nonfinite();
    test_reads_only_rows();
    test_pool();
    for (int k = 0; k < NCAT && cat_name[k][0]; k++)
        printf("  worst error/tolerance %-14s %.3g  (%s)\n", cat_name[k], cat_worst[k], cat_what[k]);
    printf("test_neon: level %s: %ld checks, %ld failures\n", pk_simd_level(), checks, failures);
    return failures ? 1 : 0;
}
