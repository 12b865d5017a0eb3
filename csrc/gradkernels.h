/* The C API of gradkernels: every function the Python package calls through cffi.
 *
 * This header is also the cffi cdef (csrc/build_cffi.py reads it, dropping preprocessor
 * lines), so declarations live in exactly one place. Keep it to plain C declarations
 * that cffi can parse: no macros in declarations, no inline functions.
 */
#ifndef GRADKERNELS_H
#define GRADKERNELS_H

#include <stdint.h>

/* Instruction-set extensions, as bits of gk_cpu_features(). */
enum gk_cpu_feature {
    GK_CPU_SSE42 = 1,
    GK_CPU_AVX = 2,
    GK_CPU_AVX2 = 4,
    GK_CPU_FMA = 8,
    GK_CPU_AVX512F = 16,
    GK_CPU_AVX512BW = 32,
    GK_CPU_AVX512VL = 64,
    GK_CPU_AVX512BF16 = 128,
    GK_CPU_NEON = 256
};

/* The extensions the running processor offers (not the ones this build was compiled for):
 * what runtime dispatch between kernel variants keys on. */
uint32_t gk_cpu_features(void);

#endif
