#ifndef PERSONA_KERNELS_SMALL_H
#define PERSONA_KERNELS_SMALL_H
#include <stdint.h>

/* pk_matmul_rows for small batches, 2 <= T <= 8, f32 / f16 / bf16 / q8_0 / q4_0 / q4_1 weights with f32 activations (the same
   contract and numerics class: f32 rounding in some summation order): each weight row is converted once and
   dotted with all T inputs. Returns 0 when done, -1 when this case is not handled here (other T or dtype, the
   scalar SIMD level, a CPU that is neither x86-64 nor AArch64): the caller then uses pk_matmul_rows. */
int pk_matmul_rows_small(int dtype, const void *W, int64_t cols, const float *X, int64_t ldx, int64_t T,
                         float *Y, int64_t ldy, int64_t r0, int64_t r1);

#endif
