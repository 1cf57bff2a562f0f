#ifndef PERSONA_KERNELS_H
#define PERSONA_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/* dtype codes, same order as Swift's DType.kernelCode */
enum { PK_F32 = 0, PK_F16 = 1, PK_BF16 = 2, PK_Q8_0 = 3, PK_Q4_0 = 4, PK_Q4_K = 5, PK_Q6_K = 6, PK_Q4_1 = 7,
       PK_Q5_0 = 8, PK_Q5_1 = 9, PK_Q2_K = 10, PK_Q3_K = 11, PK_Q5_K = 12, PK_IQ4_NL = 13, PK_IQ4_XS = 14,
       PK_IQ2_XXS = 15, PK_IQ2_XS = 16, PK_IQ2_S = 17, PK_IQ3_XXS = 18, PK_IQ3_S = 19, PK_IQ1_S = 20, PK_IQ1_M = 21,
       PK_MXFP4 = 22 };

/* Elements per block and bytes per block of `dtype` (1 and the element size for plain floats); 0 if unknown. */
int64_t pk_block_elements(int dtype);
size_t pk_block_bytes(int dtype);

/* Bytes of one row of `cols` elements of `dtype` (cols must be a multiple of the block size). */
size_t pk_row_bytes(int dtype, int64_t cols);

/* Dequantise / convert one row of `cols` elements to f32. */
void pk_dequant_row(int dtype, const void *row, int64_t cols, float *out);
/* The same with the portable code, whatever the SIMD level: the reference the SIMD conversions must equal, and
   bit-equal to gguf-py's dequantize for every type. */
void pk_dequant_row_scalar(int dtype, const void *row, int64_t cols, float *out);

/* Y[t*ldy + r] = sum_c W[r, c] * X[t*ldx + c]   for t in [0, T), r in [r0, r1).
   W is row-major [rows, cols] in `dtype` (rows packed, pk_row_bytes(dtype, cols) each).
   T == 1 is matrix-vector (streams the weights once); larger T converts each tile of weight rows once
   and reuses it for all T inputs (register-blocked 4 rows x 4 inputs). Activations stay f32 in every
   path: results differ from an exact sum only by f32 rounding in some summation order. */
void pk_matmul_rows(int dtype, const void *W, int64_t cols,
                    const float *X, int64_t ldx, int64_t T,
                    float *Y, int64_t ldy, int64_t r0, int64_t r1);

/* ---- Native precision (Swift's MatmulPrecision.native): activations rounded as llama.cpp rounds them ----
   q8_0 weights: each token's activations quantised to q8_0 per 32 values exactly as ggml's quantize_row_q8_0
   (d = amax / 127 kept as f16, q = round-half-away(x / d)), then an exact integer dot per block times
   d_w * d_x, summed in f32. bf16 weights: activations rounded to bf16 (round to nearest even, pk_f32_to_bf16),
   products exact, summed in f32. f16 weights: activations rounded to f16 (nearest even, pk_f32_to_f16_row) through
   the exact f16 kernels (ggml's f16 products on x86). Every SIMD level gives these numerics up to f32 summation order (the AVX-512
   BF16 instruction also treats bf16 subnormals, |v| < 2^-126, as zero); levels without VNNI / BF16 are slower,
   not different. Use: pk_native_prepare once per input, then pk_matmul_rows_native per row range (any threads).
   The SIMD level must not change in between. */

/* 1 if `dtype` has a native form (PK_Q8_0, PK_BF16, PK_F16, the quantised types), else 0. */
int pk_native_supported(int dtype);

/* Bytes one token's prepared activations take (a multiple of 64); 0 if `dtype` has no native form or `cols` is
   not a positive multiple of its block size. */
size_t pk_native_x_stride(int dtype, int64_t cols);

/* Prepares tokens [t0, t1) of X (token t at X + t*ldx, `cols` f32 values) for a dtype-`dtype` matrix:
   token t goes to (char *)xn + t * pk_native_x_stride(dtype, cols). Disjoint token ranges may run in parallel. */
void pk_native_prepare(int dtype, const float *X, int64_t ldx, int64_t cols, void *xn, int64_t t0, int64_t t1);

/* Y[t*ldy + r] = sum_c W[r, c] * x_t[c] for t in [0, T), r in [r0, r1), with x_t the prepared (rounded)
   activations of token t. W as in pk_matmul_rows. T == 1 streams the weights once; T > 1 reuses each tile of
   weight rows for all T tokens. */
void pk_matmul_rows_native(int dtype, const void *W, int64_t cols, const void *xn, int64_t T,
                           float *Y, int64_t ldy, int64_t r0, int64_t r1);

/* A grow-only scratch buffer of at least `bytes` bytes (64-byte aligned) owned by the calling thread, or NULL
   if memory runs out. Valid until this thread's next call; freed when the thread exits. Per thread, so that
   matmuls running at the same time on different threads (different models) never share it, and a decode loop
   that has warmed it up allocates nothing. */
void *pk_thread_scratch(size_t bytes);
/* The same with one buffer per use, so that one use never overwrites another's live data:
   PK_SCRATCH_NATIVE (pk_thread_scratch's), PK_SCRATCH_EXACT (the exact kernels' laid-out activations),
   PK_SCRATCH_GEMM (the converted weight rows of the exact prompt GEMM), PK_SCRATCH_ATTENTION (the scores of
   pk_attention_causal's queries), PK_SCRATCH_KV (pk_attention_causal's f16 rows widened to f32). */
enum { PK_SCRATCH_NATIVE = 0, PK_SCRATCH_EXACT = 1, PK_SCRATCH_GEMM = 2, PK_SCRATCH_ATTENTION = 3, PK_SCRATCH_KV = 4,
       PK_SCRATCH_SLOTS = 5 };
void *pk_thread_scratch_slot(int slot, size_t bytes);

/* Exact precision at T == 1 for the quantised types whose current SIMD level has a kernel that reads x in an
   order of its own (AVX-512; AVX2 but for q8_0, iq4_nl, q2_K, q3_K): pk_exact_x_floats gives the floats that
   layout takes (0: no such kernel; use pk_matmul_rows, which then does the same per call), pk_exact_prepare
   writes it once per input (xp 64-byte aligned), pk_matvec_exact_prepared computes y[r] = W[r, :] . x for r in
   [r0, r1) from it (any threads). The result equals the weights dequantised to f32 times x within f32 summation
   rounding (per-block scales are applied to partial sums). */
int64_t pk_exact_x_floats(int dtype, int64_t cols);
void pk_exact_prepare(int dtype, const float *x, int64_t cols, float *xp);
void pk_matvec_exact_prepared(int dtype, const void *W, int64_t cols, const float *xp, float *y, int64_t r0, int64_t r1);

/* f32 dot product and axpy helpers used by attention and hooks. */
float pk_dot_f32(const float *a, const float *b, int64_t n);
void pk_axpy_f32(float a, const float *x, float *y, int64_t n);

/* f16 / bf16 <-> f32 scalar conversions (bit exact, round-to-nearest-even on the way down). */
float pk_f16_to_f32(uint16_t h);
uint16_t pk_f32_to_f16(float f);
float pk_bf16_to_f32(uint16_t h);
uint16_t pk_f32_to_bf16(float f);

/* Quantise one row of f32 to q8_0 (cols multiple of 32), as ggml does. */
void pk_quantize_row_q8_0(const float *x, int64_t cols, void *out);

/* 1 if pk_quantize_row can write `dtype` (q8_0, q4_0, q4_1, q5_0, q5_1, q4_K, q5_K, q6_K), else 0 (quantize.c). */
int pk_quantize_supported(int dtype);
/* Quantises one row of `cols` f32 values (a multiple of the block size) to `dtype` with llama.cpp's reference
   quantiser (no importance matrix): the same bytes as llama-quantize. Returns 0, or -1 for an unsupported type
   or shape. */
int pk_quantize_row(int dtype, const float *x, int64_t cols, void *out);

/* Which SIMD path is in use ("avx512bf16", "avx512vnni", "avx512", "avx2", "neon", "scalar"; the avx512*
   levels share the exact kernels and differ in the native ones). Chosen once at first use: the best
   the CPU supports, or the one named by the environment variable PERSONA_SIMD if it is available. */
const char *pk_simd_level(void);

/* 1 if this CPU (and OS) can run SIMD level `name`, else 0. */
int pk_simd_level_available(const char *name);

/* Selects SIMD level `name` for all later calls (NULL: back to the automatic choice).
   Returns 0, or -1 if the level is unknown or unavailable here. Not thread-safe: call while no kernel runs. */
int pk_simd_set_level(const char *name);

/* Sum of 4-byte words of `bytes` bytes at p (bytes multiple of 64): a read-bandwidth probe. */
uint64_t pk_read_sum(const void *p, size_t bytes);

/* The attention functions below read keys and values of element type `kv`: PK_F32, or PK_F16 (an f16 KV cache,
   as llama.cpp keeps by default: half the bytes to read, each element widened exactly to f32 as it is loaded, so
   the results are those of an f32 cache holding the same f16-rounded values, bit for bit). K, V and the strides
   ldk, ldv, ldkv count elements of that type. pk_f32_to_f16_row writes such a cache row: n values rounded to
   nearest even, as pk_f32_to_f16 (and F16C / NEON's conversion) rounds them. */
void pk_f32_to_f16_row(const float *x, uint16_t *out, int64_t n);

/* One attention head, one query, over keys/values at positions [0, n):
   scores[j] = (q . k_j) * scale (then cap * tanh(s / cap) when softcap > 0), softmax over j,
   out[0, hd) = sum_j p_j v_j.  k_j = K + j * ldk, v_j = V + j * ldv.  `scores` has room for n floats. */
void pk_attention_head(const float *q, const void *K, int64_t ldk, const void *V, int64_t ldv, int kv,
                       int64_t n, int64_t hd, float scale, float softcap, float *scores, float *out);

/* log sum_j exp(s_j) over the scores pk_attention_head computes for q over positions [0, n) (gpt-oss's attention
   sinks: a head's output times 1 / (1 + exp(sink - this)) is the softmax with the sink's logit beside the scores). */
float pk_attention_lse(const float *q, const void *K, int64_t ldk, int kv, int64_t n, int64_t hd, float scale,
                       float softcap);

/* G query heads that share one key/value head (q + h * hd, out + h * hd for h < G; K, V at that head's column):
   for each head exactly what pk_attention_head writes, bit for bit, with each K / V row read once for the group.
   `scores` has G rows of lds >= n floats. Up to PK_ATTENTION_GROUP_MAX heads at once (more go one by one). */
#define PK_ATTENTION_GROUP_MAX 16
void pk_attention_group(const float *q, int64_t G, const void *K, int64_t ldk, const void *V, int64_t ldv, int kv,
                        int64_t n, int64_t hd, float scale, float softcap, float *scores, int64_t lds, float *out);

/* A prompt's causal attention for the G query heads that share one key/value head, P consecutive positions:
   position t's heads at q + t * ldq + h * hd (h < G) attend rows [lo, n0 + t) of K, V (at that head's column),
   lo = max(0, n0 + t - window) (window 0: lo = 0), and write out + t * ldo + h * hd: each exactly what
   pk_attention_head writes for its rows, bit for bit, with each K / V tile read once for a block of queries.
   Scores go to a per-thread scratch (PK_SCRATCH_ATTENTION, 64 (n0 + P) bytes or G times that past 16 heads).
   With an f16 cache and P > 1 the rows read are first widened into another (PK_SCRATCH_KV, 8 hd (n0 + P) bytes;
   without it they are widened as loaded, the same bits). Returns 0, or -1 (nothing written) if the scores'
   scratch cannot be had. */
int pk_attention_causal(const float *q, int64_t ldq, int64_t P, int64_t G, const void *K, int64_t ldk, const void *V,
                        int64_t ldv, int kv, int64_t n0, int64_t window, int64_t hd, float scale, float softcap, float *out,
                        int64_t ldo);

/* Decode attention by position chunk: each K/V row is read once, whole, for all query heads (a head's own slice of
   a row is a strided stream that one core reads at a third of its bandwidth), and the chunks of a long context go
   to different threads (long contexts are bound by reading the cache).
   pk_attention_partial: query heads h < H at q + h * hd, head h reading key/value head h / group at column
   (h / group) * hd of the rows K + j * ldkv, V + j * ldkv, positions j in [0, n) (K, V offset to the chunk):
   scores (scaled, capped as pk_attention_head) to scores + h * lds, then m[h] = max_j s_j,
   l[h] = sum_j exp(s_j - m[h]), o[h * hd, +hd) = sum_j exp(s_j - m[h]) v_j (not normalised).
   pk_attention_merge: C partials of H heads, partial c of head h at index c * H + h of m / l and at
   o + (c * H + h) * hd, into out + h * hd: sum_c exp(m_c - M) o_c / sum_c exp(m_c - M) l_c, M = max_c m_c. */
void pk_attention_partial(const float *q, int64_t H, int64_t group, const void *K, const void *V, int64_t ldkv,
                          int kv, int64_t n, int64_t hd, float scale, float softcap, float *scores, int64_t lds,
                          float *m, float *l, float *o);
void pk_attention_merge(int64_t C, int64_t H, int64_t hd, const float *m, const float *l, const float *o, float *out);

/* Gated activations of the MLP, in place over n values: g = act(g) * u.
   silu(x) = x / (1 + e^-x); gelu_tanh(x) = x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). SIMD levels use a
   polynomial exp accurate to a few ulp. */
void pk_silu_mul(float *g, const float *u, int64_t n);
void pk_gelu_tanh_mul(float *g, const float *u, int64_t n);

/* Softmax weights for sampling and log-probabilities: e_i = exp((x[i] - shift) / t), set to 0 where e_i < cut
   (min-p; 0 keeps all), written to out[i] unless out is NULL; returns the sum of the e_i kept, in double.
   Meant for shift >= max x (then e_i <= 1). Every SIMD level computes each e_i with the same operations (a
   polynomial exp with fused multiply-adds, about 1 ulp from e^x; 0 where e^x is below the normal f32 range,
   x < -87.34), so the weights have the same bits everywhere and only the order of the sum differs.
   pk_softmax_weight: one weight, the same bits. */
double pk_softmax_weights(const float *x, int64_t n, float shift, float t, float cut, float *out);
float pk_softmax_weight(float v, float shift, float t);

/* A persistent pool of worker threads for data-parallel loops. The caller takes part in the work, so a pool of
   `threads` starts threads - 1 workers. Idle workers spin briefly (the next matmul of a decode step usually
   follows within microseconds) and then sleep on a condition variable. */
typedef struct pk_pool pk_pool;
typedef void (*pk_task_fn)(void *ctx, int64_t index);
pk_pool *pk_pool_create(int threads);
void pk_pool_destroy(pk_pool *pool);
int pk_pool_threads(const pk_pool *pool);
/* Runs fn(ctx, i) for i in [0, n), spread over the pool; returns when all are done. A call made from inside a
   task, or while another thread is using the pool, runs its loop on the calling thread instead of waiting. */
void pk_pool_run(pk_pool *pool, int64_t n, pk_task_fn fn, void *ctx);

/* Index of the first NaN or +-Inf among x[0, n), or -1 if all are finite (finite.c). */
int64_t pk_first_nonfinite(const float *x, int64_t n);

#endif
