// Placeholder: no type of this family has a native form yet (pk_internal.h describes the contract).
#include "pk_internal.h"

size_t pk_native_k_x_stride(int dtype, int64_t cols) { (void)dtype; (void)cols; return 0; }
void pk_native_k_prepare(int dtype, const float *x, int64_t cols, uint8_t *out) { (void)dtype; (void)x; (void)cols; (void)out; }
void pk_native_k_matmul(int dtype, const uint8_t *W, size_t rb, int64_t cols, const uint8_t *xn, size_t xs, int64_t T,
                        float *Y, int64_t ldy, int64_t r0, int64_t r1) {
    (void)dtype; (void)W; (void)rb; (void)cols; (void)xn; (void)xs; (void)T; (void)Y; (void)ldy; (void)r0; (void)r1;
}
