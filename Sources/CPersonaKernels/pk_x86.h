// Private to CPersonaKernels (x86 only): 256-bit helpers shared by the AVX2 kernels of kernels_x86.c and the
// small-batch kernels of kernels_small.c.
#ifndef PK_X86_H
#define PK_X86_H
#if defined(__x86_64__)
#include <immintrin.h>
#include <stdint.h>

#define T256 __attribute__((target("avx2,fma,f16c")))

/* Sum of the 8 lanes. */
T256 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 bf16 / f16 / int8 values widened to f32 (bf16 by a 16-bit shift, f16 by F16C). */
T256 static inline __m256 bf16x8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}
T256 static inline __m256 f16x8(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
T256 static inline __m256 i8x8(const uint8_t *p) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p))); }

#endif
#endif
