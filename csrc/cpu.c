/* What this build and the processor it runs on can do: runtime CPU features, OpenMP. */
#include "gradkernels.h"

uint32_t gk_cpu_features(void)
{
    uint32_t features = 0;
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) features |= GK_CPU_SSE42;
    if (__builtin_cpu_supports("avx")) features |= GK_CPU_AVX;
    if (__builtin_cpu_supports("avx2")) features |= GK_CPU_AVX2;
    if (__builtin_cpu_supports("fma")) features |= GK_CPU_FMA;
    if (__builtin_cpu_supports("avx512f")) features |= GK_CPU_AVX512F;
    if (__builtin_cpu_supports("avx512bw")) features |= GK_CPU_AVX512BW;
    if (__builtin_cpu_supports("avx512vl")) features |= GK_CPU_AVX512VL;
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
    if (__builtin_cpu_supports("avx512bf16")) features |= GK_CPU_AVX512BF16;
#endif
#elif defined(__aarch64__)
    /* Advanced SIMD is part of the AArch64 base architecture. */
    features |= GK_CPU_NEON;
#endif
    return features;
}

int gk_cpu_level(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
    __builtin_cpu_init();
    /* The same tests as GCC's own dispatch: every feature each level names, and the OS's support
     * for the wider registers. */
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    if (__builtin_cpu_supports("x86-64-v3")) return 3;
    if (__builtin_cpu_supports("x86-64-v2")) return 2;
    return 1;
#elif defined(__x86_64__)
    return 1;
#else
    return 0;
#endif
}

int gk_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
