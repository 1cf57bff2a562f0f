#include "kernels.h"
#include <string.h>

/* A float is NaN or +-Inf exactly when its exponent bits are all ones. Works on the bits (not isfinite) so
   that no compiler flag about floating-point semantics can fold the test away; the block loop below is an
   and/compare/or reduction over integers, which compilers vectorise at -O3 even with plain SSE2. */
int64_t pk_first_nonfinite(const float *x, int64_t n) {
    const int64_t block = 256;
    for (int64_t i0 = 0; i0 < n; i0 += block) {
        int64_t m = n - i0 < block ? n - i0 : block;
        uint32_t bad = 0;
        for (int64_t i = 0; i < m; i++) {
            uint32_t b;
            memcpy(&b, x + i0 + i, 4);
            bad |= (b & 0x7f800000u) == 0x7f800000u;
        }
        if (bad) {
            for (int64_t i = 0; i < m; i++) {
                uint32_t b;
                memcpy(&b, x + i0 + i, 4);
                if ((b & 0x7f800000u) == 0x7f800000u) return i0 + i;
            }
        }
    }
    return -1;
}
