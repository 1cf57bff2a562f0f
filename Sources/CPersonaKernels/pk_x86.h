// Private to CPersonaKernels (x86 only): 256-bit helpers shared by the AVX2 kernels of kernels_x86.c and the
// small-batch kernels of kernels_small.c, the field conversions of the exact decode kernels (kernels_x86_exact*.c)
// and the tile transpose of the VNNI prompt kernels (kernels_native*.c).
#ifndef PK_X86_H
#define PK_X86_H
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define T256 __attribute__((target("avx2,fma,f16c")))

/* Sum of the 8 lanes. */
T256 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Largest of the 8 lanes. */
T256 static inline float hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 bf16 / f16 / int8 values widened to f32 (bf16 by a 16-bit shift, f16 by F16C). */
T256 static inline __m256 bf16x8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
T256 static inline __m256 f16x8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
/* A q4_0 / q4_1 block of 32 as gguf-py dequantises it (q4_0 d * (q - 8); q4_1 d * q + m, the product rounded
   first), as 4 vectors of elements 0-7, 8-15 (low nibbles of bytes 0-15), 16-23, 24-31 (their high nibbles). */
T256 static inline void pk_q4_nibbles(const uint8_t *q, __m256 w[4]) {
    for (int h = 0; h < 2; h++) {
        const __m256i v = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * h)));
        w[h] = _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(15)));
        w[2 + h] = _mm256_cvtepi32_ps(_mm256_srli_epi32(v, 4));
    }
}
T256 static inline void pk_q4_0_block(const uint8_t *blk, __m256 w[4]) {
    uint16_t dh; memcpy(&dh, blk, 2);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(dh));
    pk_q4_nibbles(blk + 2, w);
    for (int k = 0; k < 4; k++) w[k] = _mm256_mul_ps(d, _mm256_sub_ps(w[k], _mm256_set1_ps(8.0f)));
}
T256 static inline void pk_q4_1_block(const uint8_t *blk, __m256 w[4]) {
    uint16_t dh, mh; memcpy(&dh, blk, 2); memcpy(&mh, blk + 2, 2);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(dh)), m = _mm256_set1_ps(_cvtsh_ss(mh));
    pk_q4_nibbles(blk + 4, w);
    for (int k = 0; k < 4; k++) w[k] = _mm256_add_ps(_mm256_mul_ps(d, w[k]), m);
}
/* ggml's q8_0 / q8_1 rounding of activations (quantize_row_q8_0_ref / q8_1_ref: roundf, half away from zero),
   NaN to 0, clamped to [-127, 127], for 8 values; integer from a truncation (roundf is a library call). */
T256 static inline __m256i pk_q8_round8(__m256 v) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    __m256 fr = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));             // exact: |v| < 2^23
    __m256 one = _mm256_or_ps(_mm256_and_ps(v, sign), _mm256_set1_ps(1.0f));
    __m256 r = _mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(fr, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one));
    r = _mm256_andnot_ps(_mm256_cmp_ps(r, r, _CMP_UNORD_Q), r);          // NaN -> 0
    r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-127.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvttps_epi32(r);
}
/* One block of 32 activations as ggml quantises it to q8_0 / q8_1: *d = amax / 127 in f32 (NaN if any value is
   NaN; callers round it to f16 as ggml stores it), *sum = the sum of the q, returned: the 32 q in element order. */
T256 static inline __m256i pk_q8_block32(const float *xb, float *d, int32_t *sum) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v0 = _mm256_loadu_ps(xb), v1 = _mm256_loadu_ps(xb + 8), v2 = _mm256_loadu_ps(xb + 16), v3 = _mm256_loadu_ps(xb + 24);
    __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                              _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
    __m256 un = _mm256_or_ps(_mm256_or_ps(_mm256_cmp_ps(v0, v0, _CMP_UNORD_Q), _mm256_cmp_ps(v1, v1, _CMP_UNORD_Q)),
                             _mm256_or_ps(_mm256_cmp_ps(v2, v2, _CMP_UNORD_Q), _mm256_cmp_ps(v3, v3, _CMP_UNORD_Q)));
    float amax = hmax256(mx);
    float dd = _mm256_movemask_ps(un) ? NAN : amax / 127.0f;
    float id = dd != 0 ? 1.0f / dd : 0.0f;
    *d = dd;
    __m256 iv = _mm256_set1_ps(id);
    __m256i i0 = pk_q8_round8(_mm256_mul_ps(v0, iv)), i1 = pk_q8_round8(_mm256_mul_ps(v1, iv));
    __m256i i2 = pk_q8_round8(_mm256_mul_ps(v2, iv)), i3 = pk_q8_round8(_mm256_mul_ps(v3, iv));
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
    *sum = _mm_cvtsi128_si32(s4);
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}
/* f32 -> f16 -> f32, rounding to nearest even as ggml's GGML_FP32_TO_FP16. */
T256 static inline float pk_f16_round(float v) { return _cvtsh_ss(_cvtss_sh(v, _MM_FROUND_TO_NEAREST_INT)); }
T256 static inline __m256 i8x8(const uint8_t *p) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p))); }
/* A q8_0 block of 32 as d * q, the same 4 vectors (dequant_q8_0_256 and the small-batch kernels). */
T256 static inline void pk_q8_0_block(const uint8_t *p, __m256 w[4]) {
    uint16_t dh; memcpy(&dh, p, 2);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(dh));
    for (int k = 0; k < 4; k++) w[k] = _mm256_mul_ps(d, i8x8(p + 2 + 8 * k));
}

/* The exact decode kernels' software prefetch of the row stream (kernels_x86_exact*.c, rows one at a time):
   `lines` cache lines ~3 KB ahead of p (from memory: +5-10% at 4864 columns, +40% at 8192 before those rows were
   grouped, PK_EXACT_ROWS). Rows are read one after another, so it runs past a row's end into the next row; a
   prefetch never faults. */
static inline void pk_prefetch_ahead(const void *p, int lines) {
    for (int i = 0; i < lines; i++) _mm_prefetch((const char *)p + 3072 + 64 * i, _MM_HINT_T0);
}

/* Rows whose prepared x passes WIDE floats (16 KiB for the blocks of 32, 24 KiB for the K types, about half the
   L1d, which the weight stream shares; Llama-3.2-1B's 8192-wide ffn_down: 34 KiB for q4_K) lose 25-55% from
   memory when run one at a time, x coming back from L2 for every row.
   There the exact kernels take PK_EXACT_WIDE_ROWS rows together over PK_EXACT_WIDE_COLS columns at a time, so
   each chunk of x stays in L1 for all of them, and prefetch the next group of rows in file order (it is one
   contiguous run of bytes) instead of ahead in the row. Each row keeps its accumulators across chunks and runs
   the same operations in the same order as alone: the same bits whichever rows share a group. 8192
   columns, two cores, from memory (GB/s, 2026-12-05, this Zen 4): q8_0 18.1 -> 26.3-29.4, q4_0 15.1-16.1 -> 20.5-23.3, q6_K 18.6-21.2 ->
   23.5-26.2, q4_K 17.2-18.9 -> 19.3-25.5; q8_0 at 5632-7168 columns 18.3-21.7 -> 28.6-30.0. The K types are left
   one row at a time up to 24 KiB: at 4864 columns (Qwen2.5-0.5B's ffn_down) q4_K measured 10-15% slower grouped. */
#define PK_EXACT_WIDE_32 4096
#define PK_EXACT_WIDE_K 6144
#define PK_EXACT_WIDE_ROWS 8
#define PK_EXACT_WIDE_COLS 2048
/* Prefetch the `bytes` from f on, a line at a time. */
static inline void pk_prefetch_span(const uint8_t *f, int bytes) {
    for (int i = 0; i < bytes; i += 64) _mm_prefetch((const char *)f + i, _MM_HINT_T0);
}
/* The packed tile GEMMs (T > 1) read R rows x KB blocks of `bs` bytes, pack them, then run every token over the
   pack. The R short row streams are read at memory latency, not bandwidth, while nothing else runs (the pack was 20%
   of a 20-sequence SmolLM2 Q4_1 extraction, its time on the loads), so the chunk after (r, b0) - the next KB
   blocks of the same rows, or the next rows' first ones - is asked for before the current one is used. */
static inline void pk_prefetch_next_tile(const uint8_t *W, size_t rb, int64_t bs, int64_t nb, int KB, int R,
                                         int64_t r, int64_t r1, int64_t b0) {
    if (b0 + KB < nb) b0 += KB;
    else if (r + R < r1) { r += R; b0 = 0; }
    else return;
    const int nr = r1 - r < R ? (int)(r1 - r) : R;
    const int64_t bytes = (nb - b0 < KB ? nb - b0 : KB) * bs;
    for (int i = 0; i < nr; i++) {
        const uintptr_t a = (uintptr_t)(W + (size_t)(r + i) * rb + b0 * bs), e = a + (uintptr_t)bytes;
        for (uintptr_t l = a & ~(uintptr_t)63; l < e; l += 64) _mm_prefetch((const char *)l, _MM_HINT_T1);
    }
}
/* A row's result from its NACC accumulators, summed in order. */
__attribute__((target("avx512f"))) static inline float pk_sum_accumulators(const __m512 *a, int n) {
    __m512 s = a[0];
    for (int k = 1; k < n; k++) s = _mm512_add_ps(s, a[k]);
    return _mm512_reduce_add_ps(s);
}
/* The row loop of an exact kernel whose one-block step is BLOCK(p, xb, acc) on NACC accumulators (summed in order
   at the end): blocks of QK elements and BB bytes, XBF prepared floats each, cols / QK of them, then
   TAIL(p, xb, acc, cols) for the columns left (PK_NO_TAIL: none); LINES lines prefetched ahead in the row when x is
   narrow (x up to WIDE floats). Expands inside a matvec (W, rb, cols, xp, y, r0, r1) compiled for AVX-512. */
#define PK_NO_TAIL(p, xb, acc, cols) ((void)0)
#define PK_EXACT_ROWS(BLOCK, NACC, QK, BB, XBF, LINES, XFLOATS, TAIL, WIDE)                                           \
    do {                                                                                                           \
        const int64_t nb_ = cols / (QK);                                                                           \
        if (XFLOATS(cols) <= (WIDE)) {                                                                             \
            for (int64_t r_ = r0; r_ < r1; r_++) {                                                                 \
                const uint8_t *p_ = W + (size_t)r_ * rb;                                                           \
                const float *xb_ = xp;                                                                             \
                __m512 a_[NACC];                                                                                   \
                for (int k_ = 0; k_ < (NACC); k_++) a_[k_] = _mm512_setzero_ps();                                  \
                for (int64_t b_ = 0; b_ < nb_; b_++, p_ += (BB), xb_ += (XBF)) {                                   \
                    pk_prefetch_ahead(p_, LINES);                                                                  \
                    BLOCK(p_, xb_, a_);                                                                            \
                }                                                                                                  \
                TAIL(p_, xb_, a_, cols);                                                                           \
                y[r_] = pk_sum_accumulators(a_, NACC);                                                             \
            }                                                                                                      \
            break;                                                                                                 \
        }                                                                                                          \
        const int64_t ch_ = PK_EXACT_WIDE_COLS / (QK);                                                             \
        for (int64_t r_ = r0; r_ < r1; r_ += PK_EXACT_WIDE_ROWS) {                                                 \
            const int nr_ = r1 - r_ < PK_EXACT_WIDE_ROWS ? (int)(r1 - r_) : PK_EXACT_WIDE_ROWS;                    \
            __m512 t_[PK_EXACT_WIDE_ROWS][NACC];                                                                   \
            for (int i_ = 0; i_ < nr_; i_++) for (int k_ = 0; k_ < (NACC); k_++) t_[i_][k_] = _mm512_setzero_ps(); \
            const uint8_t *f_ = W + (size_t)(r_ + PK_EXACT_WIDE_ROWS) * rb;   /* the next group, in file order */ \
            for (int64_t c_ = 0; c_ < nb_; c_ += ch_) {                                                            \
                const int64_t n_ = nb_ - c_ < ch_ ? nb_ - c_ : ch_;                                                \
                for (int i_ = 0; i_ < nr_; i_++) {                                                                 \
                    const uint8_t *p_ = W + (size_t)(r_ + i_) * rb + c_ * (BB);                                    \
                    const float *xb_ = xp + c_ * (XBF);                                                            \
                    __m512 a_[NACC];                                                                               \
                    for (int k_ = 0; k_ < (NACC); k_++) a_[k_] = t_[i_][k_];                                       \
                    for (int64_t b_ = 0; b_ < n_; b_++, p_ += (BB), xb_ += (XBF), f_ += (BB)) {                    \
                        pk_prefetch_span(f_, BB);                                                                  \
                        BLOCK(p_, xb_, a_);                                                                        \
                    }                                                                                              \
                    for (int k_ = 0; k_ < (NACC); k_++) t_[i_][k_] = a_[k_];                                       \
                }                                                                                                  \
            }                                                                                                      \
            for (int i_ = 0; i_ < nr_; i_++) {                                                                     \
                TAIL(W + (size_t)(r_ + i_) * rb + nb_ * (BB), xp + nb_ * (XBF), t_[i_], cols);                        \
                y[r_ + i_] = pk_sum_accumulators(t_[i_], NACC);                                                    \
            }                                                                                                      \
        }                                                                                                          \
    } while (0)

/* The same row loop for the 256-bit matvecs (AVX2 level) whose step is SPAN(row, x, u0, u1, acc, f): units
   u0..u1 of one row (elements or blocks, UB bytes each, N of them) into NACC __m256 accumulators, prefetching from
   f on when f is set; FINISH(row, x, cols, acc) gives y. Rows go one at a time unless WIDE, then
   PK_EXACT_WIDE_ROWS rows over CH units at a time with the next group prefetched in file order, as PK_EXACT_ROWS:
   the same operations in the same order for each row either way, so the bits do not depend on the grouping.
   Expands inside a matvec (W, rb, cols, x, y, r0, r1) compiled for AVX2. */
#define PK_ROWS_256(NACC, N, CH, UB, WIDE, SPAN, FINISH)                                                       \
    do {                                                                                                       \
        if (!(WIDE)) {                                                                                         \
            for (int64_t r_ = r0; r_ < r1; r_++) {                                                             \
                const uint8_t *w_ = W + (size_t)r_ * rb;                                                       \
                __m256 a_[NACC];                                                                               \
                for (int k_ = 0; k_ < (NACC); k_++) a_[k_] = _mm256_setzero_ps();                              \
                SPAN(w_, x, 0, (N), a_, (const uint8_t *)NULL);                                                \
                y[r_] = FINISH(w_, x, cols, a_);                                                               \
            }                                                                                                  \
            break;                                                                                             \
        }                                                                                                      \
        for (int64_t r_ = r0; r_ < r1; r_ += PK_EXACT_WIDE_ROWS) {                                             \
            const int nr_ = r1 - r_ < PK_EXACT_WIDE_ROWS ? (int)(r1 - r_) : PK_EXACT_WIDE_ROWS;                \
            __m256 t_[PK_EXACT_WIDE_ROWS][NACC];                                                               \
            for (int i_ = 0; i_ < nr_; i_++)                                                                   \
                for (int k_ = 0; k_ < (NACC); k_++) t_[i_][k_] = _mm256_setzero_ps();                          \
            const uint8_t *f_ = W + (size_t)(r_ + PK_EXACT_WIDE_ROWS) * rb;   /* the next group, in file order */ \
            for (int64_t u0_ = 0; u0_ < (N); u0_ += (CH)) {                                                    \
                const int64_t u1_ = (N) - u0_ < (CH) ? (N) : u0_ + (CH);                                       \
                for (int i_ = 0; i_ < nr_; i_++, f_ += (u1_ - u0_) * (UB))                                     \
                    SPAN(W + (size_t)(r_ + i_) * rb, x, u0_, u1_, t_[i_], f_);                                 \
            }                                                                                                  \
            for (int i_ = 0; i_ < nr_; i_++)                                                                   \
                y[r_ + i_] = FINISH(W + (size_t)(r_ + i_) * rb, x, cols, t_[i_]);                              \
        }                                                                                                      \
    } while (0)

/* Exact conversions of a bit field of every dword lane to f32, in place (the decode kernels on laid-out x,
   kernels_x86_exact32.c, kernels_x86_exactk.c, kernels_x86_exactk23.c): */
#define PK_T512F __attribute__((target("avx512f")))
/* the field under `mask` as q * 2^(mask's lowest bit): AND, unsigned convert (at most 8 significant bits: exact). */
PK_T512F static inline __m512 pk_field_u(__m512i v, uint32_t mask) {
    return _mm512_cvtepu32_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)mask)));
}
/* the field under `mask` (lowest bit o, the field inside bits 0..22) minus `off`: one vpternlogd puts the field
   into the mantissa of C = 2^(23 - o), where its unit is the mantissa's unit, and flips the `flip` bits inside the
   mask (a signed byte's sign bit makes it byte + 128); one subtract of C + off then gives q - off exactly. */
PK_T512F static inline __m512 pk_field_off(__m512i v, uint32_t mask, int o, float off, uint32_t flip) {
    const uint32_t c = 0x4B000000u - ((uint32_t)o << 23);   // bits of 2^(23 - o)
    __m512i t = _mm512_ternarylogic_epi32(v, _mm512_set1_epi32((int)mask), _mm512_set1_epi32((int)(c | flip)), 0x6A);   // mask ? v ^ flip : C
    return _mm512_sub_ps(_mm512_castsi512_ps(t), _mm512_set1_ps((float)(1u << (23 - o)) + off));
}

#define PK_T512X __attribute__((target("avx512f,avx512dq")))
/* The one gather the K-type layouts (kernels_x86_exactk.c, kernels_x86_exactk23.c) are made of: from two 32-float
   runs A = a0 ‖ a1 and B = b0 ‖ b1 (16 floats each), out[m] lane L = (L < 8 ? A : B)[4 (L & 7) + m], m = 0..3: the element of byte m of dword lane L when
   lanes 0-7 cover A's 32 bytes and lanes 8-15 B's. */
PK_T512X static inline void pk_gather4(__m512 a0, __m512 a1, __m512 b0, __m512 b1, __m512 out[4]) {
    const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i i23 = _mm512_setr_epi32(2, 6, 10, 14, 18, 22, 26, 30, 3, 7, 11, 15, 19, 23, 27, 31);
    __m512 p = _mm512_permutex2var_ps(a0, i01, a1), q = _mm512_permutex2var_ps(a0, i23, a1);
    __m512 r = _mm512_permutex2var_ps(b0, i01, b1), s = _mm512_permutex2var_ps(b0, i23, b1);
    out[0] = _mm512_shuffle_f32x4(p, r, 0x44);
    out[1] = _mm512_shuffle_f32x4(p, r, 0xEE);
    out[2] = _mm512_shuffle_f32x4(q, s, 0x44);
    out[3] = _mm512_shuffle_f32x4(q, s, 0xEE);
}

/* Sums of the 16 lanes of u[0..7], in lanes 0..7 (transpose-and-add: 3 levels). */
PK_T512X static inline __m256 pk_hsum8(const __m512 u[8]) {
    __m512 t[4], v[2];
    for (int i = 0; i < 4; i++)
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(u[2 * i], u[2 * i + 1]), _mm512_unpackhi_ps(u[2 * i], u[2 * i + 1]));
    for (int i = 0; i < 2; i++)   // per 128-bit lane: the sums of u[4i .. 4i + 3] in that lane
        v[i] = _mm512_add_ps(_mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0x44), _mm512_shuffle_ps(t[2 * i], t[2 * i + 1], 0xEE));
    // 128-bit lanes: v0.L0 + v0.L1, v0.L2 + v0.L3, v1.L0 + v1.L1, v1.L2 + v1.L3
    __m512 w = _mm512_add_ps(_mm512_shuffle_f32x4(v[0], v[1], 0x88), _mm512_shuffle_f32x4(v[0], v[1], 0xDD));
    __m512 f = _mm512_add_ps(_mm512_shuffle_f32x4(w, w, 0x08), _mm512_shuffle_f32x4(w, w, 0x0D));
    return _mm512_castps512_ps256(f);
}

/* q6_K half hh (128 values) of block w as 4 x 32 unsigned 6-bit codes in element order, ql nibbles | qh bit pairs
   (the AVX2 native dot products and tiles, kernels_native_k.c, and the AVX2 exact kernel, kernels_x86_exact256.c):
   u[i] byte j is the code of element 32 i + j of the half. */
__attribute__((target("avx2"))) static inline void pk_q6_codes_avx2(const uint8_t *w, int hh, __m256i u[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)(w + 64 * hh));
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(w + 64 * hh + 32));
    const __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * hh));
    u[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
    u[1] = _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
    u[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(qh, m30));
    u[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
}

/* The 8-row tiles of the AVX2 prompt kernels: out[g] receives dword g of each z[j] (rows 0..7), so one vpmaddubsw
   against 4 broadcast activation bytes gives 8 rows' pair sums. */
__attribute__((target("avx2"))) static inline void pk_tile8_transpose(const __m256i z[8], uint8_t out[8][32]) {
    __m256i t0 = _mm256_unpacklo_epi32(z[0], z[1]), t1 = _mm256_unpackhi_epi32(z[0], z[1]);
    __m256i t2 = _mm256_unpacklo_epi32(z[2], z[3]), t3 = _mm256_unpackhi_epi32(z[2], z[3]);
    __m256i t4 = _mm256_unpacklo_epi32(z[4], z[5]), t5 = _mm256_unpackhi_epi32(z[4], z[5]);
    __m256i t6 = _mm256_unpacklo_epi32(z[6], z[7]), t7 = _mm256_unpackhi_epi32(z[6], z[7]);
    __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
    __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
    _mm256_store_si256((__m256i *)out[0], _mm256_permute2x128_si256(u0, u4, 0x20));
    _mm256_store_si256((__m256i *)out[1], _mm256_permute2x128_si256(u1, u5, 0x20));
    _mm256_store_si256((__m256i *)out[2], _mm256_permute2x128_si256(u2, u6, 0x20));
    _mm256_store_si256((__m256i *)out[3], _mm256_permute2x128_si256(u3, u7, 0x20));
    _mm256_store_si256((__m256i *)out[4], _mm256_permute2x128_si256(u0, u4, 0x31));
    _mm256_store_si256((__m256i *)out[5], _mm256_permute2x128_si256(u1, u5, 0x31));
    _mm256_store_si256((__m256i *)out[6], _mm256_permute2x128_si256(u2, u6, 0x31));
    _mm256_store_si256((__m256i *)out[7], _mm256_permute2x128_si256(u3, u7, 0x31));
}

/* The 8 row sums of an AVX2 tile to o[0..nr) (nr <= 8), added to what is there if `accumulate`. */
__attribute__((target("avx2"))) static inline void pk_store8_rows(float *o, __m256 f, int nr, int accumulate) {
    if (nr >= 8) { _mm256_storeu_ps(o, accumulate ? _mm256_add_ps(f, _mm256_loadu_ps(o)) : f); return; }
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(nr), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(o, m, accumulate ? _mm256_add_ps(f, _mm256_maskload_ps(o, m)) : f);
}

/* The 16 row sums of an AVX-512 tile to o[0..nr) (nr <= 16), added to what is there if `accumulate`. */
__attribute__((target("avx512f"))) static inline void pk_store16_rows(float *o, __m512 f, int nr, int accumulate) {
    const __mmask16 m = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1u);
    _mm512_mask_storeu_ps(o, m, accumulate ? _mm512_add_ps(f, _mm512_maskz_loadu_ps(m, o)) : f);
}

/* The 16-row tiles of the VNNI prompt kernels: z[j] holds 8 dwords of row j in its low half and of row j + 8 in its
   high half; out[g] receives dword g of rows 0..7 | of rows 8..15 (an 8 x 8 dword transpose inside each half), so one
   vpdpbusd against 4 broadcast activation bytes gives 16 row sums. */
__attribute__((target("avx512f"))) static inline void pk_tile16_transpose(const __m512i z[8], uint8_t out[8][64]) {
    const __m512i lo = _mm512_setr_epi64(0, 1, 8, 9, 4, 5, 12, 13), hi = _mm512_setr_epi64(2, 3, 10, 11, 6, 7, 14, 15);
    __m512i t0 = _mm512_unpacklo_epi32(z[0], z[1]), t1 = _mm512_unpackhi_epi32(z[0], z[1]);
    __m512i t2 = _mm512_unpacklo_epi32(z[2], z[3]), t3 = _mm512_unpackhi_epi32(z[2], z[3]);
    __m512i t4 = _mm512_unpacklo_epi32(z[4], z[5]), t5 = _mm512_unpackhi_epi32(z[4], z[5]);
    __m512i t6 = _mm512_unpacklo_epi32(z[6], z[7]), t7 = _mm512_unpackhi_epi32(z[6], z[7]);
    __m512i u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
    __m512i u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
    __m512i u4 = _mm512_unpacklo_epi64(t4, t6), u5 = _mm512_unpackhi_epi64(t4, t6);
    __m512i u6 = _mm512_unpacklo_epi64(t5, t7), u7 = _mm512_unpackhi_epi64(t5, t7);
    _mm512_store_si512((__m512i *)out[0], _mm512_permutex2var_epi64(u0, lo, u4));
    _mm512_store_si512((__m512i *)out[1], _mm512_permutex2var_epi64(u1, lo, u5));
    _mm512_store_si512((__m512i *)out[2], _mm512_permutex2var_epi64(u2, lo, u6));
    _mm512_store_si512((__m512i *)out[3], _mm512_permutex2var_epi64(u3, lo, u7));
    _mm512_store_si512((__m512i *)out[4], _mm512_permutex2var_epi64(u0, hi, u4));
    _mm512_store_si512((__m512i *)out[5], _mm512_permutex2var_epi64(u1, hi, u5));
    _mm512_store_si512((__m512i *)out[6], _mm512_permutex2var_epi64(u2, hi, u6));
    _mm512_store_si512((__m512i *)out[7], _mm512_permutex2var_epi64(u3, hi, u7));
}

#endif
#endif
