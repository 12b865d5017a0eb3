/* What every kernel source shares: status codes, ISA variants, OpenMP spelling, sizes. */
#ifndef GK_INTERNAL_H
#define GK_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "gradkernels.h"

/* One build, fast here and safe anywhere: the kernel sources are compiled once per ISA variant
 * (AVX-512, AVX2 + FMA, the x86-64 baseline), each translation unit under its own `#pragma GCC
 * target` (csrc/build_cffi.py writes them), and every public kernel's name carries its variant's
 * suffix, GK_VARIANT: gk_sigmoid_forward_f32_avx2. The Python package picks the variant per
 * process from what the CPU runs and what GRADKERNELS_MAX_ISA allows (gk_cpu_level below). */
#ifndef GK_VARIANT
#error "compile the kernel sources through a variant unit that defines GK_VARIANT (csrc/build_cffi.py)"
#endif

/* The per-element and per-row helpers are inlined into each kernel: a call would stop the caller's
 * loop from vectorizing. */
#define GK_INLINE static inline __attribute__((always_inline))

#define GK_STRINGIFY(x) #x
/* `#pragma omp ...` from inside a macro. Without OpenMP the parallel pragmas are ignored and the
 * loops they mark run serially; the simd ones still apply (-fopenmp-simd). */
#define GK_OMP(directive) _Pragma(GK_STRINGIFY(omp directive))

/* Below these sizes, times the kernel's `parallel_scale` argument, a parallel region costs more
 * than it saves where kernels run in training: between two GEMMs. With a short libgomp spin the
 * pool's threads are asleep by then and waking one costs ~100 us on a VM; measured so on a 2-core
 * Zen 3, serial against 2 threads: sigmoid 0.70x at 2^17 elements, 1.26x at 2^18; relu_backward
 * 0.96x at 2^20, 1.29x at 2^21 (cheap elementwise ops, and ops that evaluate an exponential per
 * element). The Python package chooses the scale per call (gradkernels._threads). The Numba
 * backend uses the same crossovers. */
#define GK_PARALLEL_MIN_ELEMENTS ((int64_t)1 << 21)
#define GK_PARALLEL_MIN_TRANSCENDENTAL ((int64_t)1 << 18)

/* Elements per task of the kernels that sum (the elementwise losses): fixed, so the per-chunk
 * partial sums, added in chunk order, are the same for every thread count. */
#define GK_CHUNK ((int64_t)1 << 14)

/* Reductions keep GK_LANES partials (the floats of an AVX-512 vector) and take GK_BLOCK elements
 * at a time (reductions.h). */
#define GK_LANES 16
#define GK_BLOCK (4 * GK_LANES)

#define GK_MIN(a, b) ((a) < (b) ? (a) : (b))

/* Whether a loop of n elements with this threshold, times `scale`, should use `threads` threads. */
static inline int gk_parallel(int64_t n, int threads, int64_t scale, int64_t threshold)
{
    return threads > 1 && n >= threshold * scale;
}

/* Whether a row kernel (an exponential per element) should split its rows over `threads` threads. */
static inline int gk_parallel_rows(int64_t rows, int64_t classes, int threads, int64_t scale)
{
    return rows > 1 && gk_parallel(rows * classes, threads, scale, GK_PARALLEL_MIN_TRANSCENDENTAL);
}

/* `for (int64_t i = 0; i < n; i++) body` on `threads` threads (static schedule) when `in_parallel` is
 * true, else on the calling thread alone without entering OpenMP: libgomp builds a team even for a
 * region whose if clause is false, ~0.8 us a call measured here, more than the work of a call on the
 * seed networks' arrays. GK_FOR_SIMD vectorizes the loop in both cases (each element's iteration
 * independent of the others); GK_FOR leaves its body's own loops to do so. `threads` is the
 * kernel's argument. */
#define GK_FOR_SIMD(in_parallel, i, n, ...)                                                                            \
    do {                                                                                                               \
        if (in_parallel) {                                                                                             \
            GK_OMP(parallel for simd schedule(static) num_threads(threads))                                            \
            for (int64_t i = 0; i < (n); i++) { __VA_ARGS__ }                                                          \
        } else {                                                                                                       \
            GK_OMP(simd)                                                                                               \
            for (int64_t i = 0; i < (n); i++) { __VA_ARGS__ }                                                          \
        }                                                                                                              \
    } while (0)
#define GK_FOR(in_parallel, i, n, ...)                                                                                 \
    do {                                                                                                               \
        if (in_parallel) {                                                                                             \
            GK_OMP(parallel for schedule(static) num_threads(threads))                                                 \
            for (int64_t i = 0; i < (n); i++) { __VA_ARGS__ }                                                          \
        } else {                                                                                                       \
            for (int64_t i = 0; i < (n); i++) { __VA_ARGS__ }                                                          \
        }                                                                                                              \
    } while (0)

#endif
