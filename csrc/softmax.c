/* Softmax and log-softmax along rows, forward and backward. Arrays are C-contiguous (rows, classes);
 * an output may be the very array of an input. Per row: a pass for the max, one that writes the
 * exponentials, one that sums them, one that scales (each exponential computed once); the row
 * stays in cache between passes, so memory sees one read and one write of it. Summing as the
 * exponentials are written measured 25-40% slower here. Rows are independent: parallel over rows. */
#ifdef T

GK_INLINE void S(softmax_row)(T *p, const T *z, int64_t n)
{
    T m = S(gk_row_max)(z, n);
    GK_OMP(simd)
    for (int64_t j = 0; j < n; j++)
        p[j] = S(gk_exp_nonpositive)(z[j] - m);
    T inverse = (T)(1.0 / S(gk_total)(p, n));
    GK_OMP(simd)
    for (int64_t j = 0; j < n; j++)
        p[j] *= inverse;
}

int GK_KERNEL(gk_softmax_forward)(T *p, const T *z, int64_t rows, int64_t classes, int threads, int64_t parallel_scale)
{
    GK_FOR(gk_parallel_rows(rows, classes, threads, parallel_scale), r, rows,
           S(softmax_row)(p + r * classes, z + r * classes, classes););
    return GK_OK;
}

/* dz = p (dp - <dp, p>) */
GK_INLINE void S(softmax_grad_row)(T *dz, const T *dp, const T *p, int64_t n)
{
    T d = (T)S(gk_dot)(dp, p, n);
    GK_OMP(simd)
    for (int64_t j = 0; j < n; j++)
        dz[j] = p[j] * (dp[j] - d);
}

int GK_KERNEL(gk_softmax_backward)(T *dz, const T *dp, const T *p, int64_t rows, int64_t classes, int threads,
                                   int64_t parallel_scale)
{
    GK_FOR(gk_parallel_rows(rows, classes, threads, parallel_scale), r, rows,
           S(softmax_grad_row)(dz + r * classes, dp + r * classes, p + r * classes, classes););
    return GK_OK;
}

GK_INLINE void S(log_softmax_row)(T *logp, const T *z, int64_t n)
{
    T m = S(gk_row_max)(z, n);
    T log_total = (T)gk_log_f64(S(gk_sum_exp_shifted)(z, m, n));
    GK_OMP(simd)
    for (int64_t j = 0; j < n; j++)
        logp[j] = (z[j] - m) - log_total;
}

int GK_KERNEL(gk_log_softmax_forward)(T *logp, const T *z, int64_t rows, int64_t classes, int threads,
                                      int64_t parallel_scale)
{
    GK_FOR(gk_parallel_rows(rows, classes, threads, parallel_scale), r, rows,
           S(log_softmax_row)(logp + r * classes, z + r * classes, classes););
    return GK_OK;
}

/* dz = dlogp - exp(logp) sum(dlogp) */
GK_INLINE void S(log_softmax_grad_row)(T *dz, const T *dlogp, const T *logp, int64_t n)
{
    T s = (T)S(gk_total)(dlogp, n);
    GK_OMP(simd)
    for (int64_t j = 0; j < n; j++)
        dz[j] = dlogp[j] - S(gk_exp)(logp[j]) * s;
}

int GK_KERNEL(gk_log_softmax_backward)(T *dz, const T *dlogp, const T *logp, int64_t rows, int64_t classes,
                                       int threads, int64_t parallel_scale)
{
    GK_FOR(gk_parallel_rows(rows, classes, threads, parallel_scale), r, rows,
           S(log_softmax_grad_row)(dz + r * classes, dlogp + r * classes, logp + r * classes, classes););
    return GK_OK;
}

#else
#include "internal.h"
#include "reductions.h"
#include "vmath.h"

#define GK_TEMPLATE "softmax.c"
#include "template.h"
#endif
