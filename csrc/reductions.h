/* Read-only loops that reduce a row to a max or to double sums, shared by the row and loss kernels.
 * `omp simd reduction` lets them keep one partial per vector lane without -ffast-math, the only
 * place where the order of floating-point additions is the compiler's choice (it is fixed for a
 * given build and CPU). Sums of float data run in GK_BLOCK-element blocks in the data's type, at
 * full vector width, and the block sums are added in double. */
#ifdef T

/* max over a non-empty row, NaNs skipped (a NaN still reaches the row's sum of exponentials); -Inf
 * for a row of NaNs, which gives the same NaN results as NaN would. */
GK_INLINE T S(gk_row_max)(const T *z, int64_t n)
{
    T m = -(T)INFINITY;
    GK_OMP(simd reduction(max : m))
    for (int64_t j = 0; j < n; j++)
        m = z[j] > m ? z[j] : m;
    return m;
}

GK_INLINE double S(gk_total)(const T *a, int64_t n)
{
    double s = 0;
    for (int64_t b = 0; b < n; b += GK_BLOCK) {
        int64_t e = GK_MIN(n, b + GK_BLOCK);
        T t = 0;
        GK_OMP(simd reduction(+ : t))
        for (int64_t j = b; j < e; j++)
            t += a[j];
        s += (double)t;
    }
    return s;
}

GK_INLINE double S(gk_dot)(const T *a, const T *b, int64_t n)
{
    double s = 0;
    for (int64_t k = 0; k < n; k += GK_BLOCK) {
        int64_t e = GK_MIN(n, k + GK_BLOCK);
        T t = 0;
        GK_OMP(simd reduction(+ : t))
        for (int64_t j = k; j < e; j++)
            t += a[j] * b[j];
        s += (double)t;
    }
    return s;
}

/* sum_j exp(z_j - m) */
GK_INLINE double S(gk_sum_exp_shifted)(const T *z, T m, int64_t n)
{
    double s = 0;
    for (int64_t b = 0; b < n; b += GK_BLOCK) {
        int64_t e = GK_MIN(n, b + GK_BLOCK);
        T t = 0;
        GK_OMP(simd reduction(+ : t))
        for (int64_t j = b; j < e; j++)
            t += S(gk_exp_nonpositive)(z[j] - m);
        s += (double)t;
    }
    return s;
}

/* sum_j w_j (z_j - m): the label-smoothing term of cross-entropy. */
GK_INLINE double S(gk_weighted_shift)(const T *z, T m, const T *weight, int64_t n)
{
    double s = 0;
    for (int64_t b = 0; b < n; b += GK_BLOCK) {
        int64_t e = GK_MIN(n, b + GK_BLOCK);
        T t = 0;
        GK_OMP(simd reduction(+ : t))
        for (int64_t j = b; j < e; j++)
            t += weight[j] * (z[j] - m);
        s += (double)t;
    }
    return s;
}

#else
#include "internal.h"
#include "vmath.h"

#define GK_TEMPLATE "reductions.h"
#include "template.h"
#endif
