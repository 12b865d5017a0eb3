/* Elementwise activations, forward and backward. Arrays are contiguous, of n elements; an output
 * may be the very array of an input (never a partial overlap of one), which `omp simd` allows:
 * each element is read before it is written. Results do not depend on how the loop is split. */
#ifdef T

GK_DISPATCH int S(gk_relu_forward)(T *y, const T *x, int64_t n, int threads)
{
    GK_OMP(parallel for simd schedule(static) num_threads(threads) if(gk_parallel(n, threads, GK_PARALLEL_MIN_ELEMENTS)))
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] <= 0 ? (T)0 : x[i]; /* NaN stays NaN */
    return GK_OK;
}

/* Bit k of mask[j] is x[8j + k] > 0: np.packbits(x > 0, bitorder="little"), written together with
 * y from the same read of x. Tasks own whole mask bytes. */
GK_DISPATCH int S(gk_relu_forward_mask)(T *y, uint8_t *mask, const T *x, int64_t n, int threads)
{
    int64_t bytes = n / 8;
    GK_OMP(parallel for schedule(static) num_threads(threads) if(gk_parallel(n, threads, GK_PARALLEL_MIN_ELEMENTS)))
    for (int64_t j = 0; j < bytes; j++) {
        const T *in = x + 8 * j;
        T *out = y + 8 * j;
        uint8_t bits = 0;
        for (int k = 0; k < 8; k++) {
            T v = in[k];
            bits |= (uint8_t)((v > 0) << k);
            out[k] = v <= 0 ? (T)0 : v;
        }
        mask[j] = bits;
    }
    if (n % 8) {
        uint8_t bits = 0;
        for (int64_t i = 8 * bytes; i < n; i++) {
            T v = x[i];
            bits |= (uint8_t)((v > 0) << (i - 8 * bytes));
            y[i] = v <= 0 ? (T)0 : v;
        }
        mask[bytes] = bits;
    }
    return GK_OK;
}

GK_DISPATCH int S(gk_relu_backward)(T *dx, const T *dy, const T *y, int64_t n, int threads)
{
    GK_OMP(parallel for simd schedule(static) num_threads(threads) if(gk_parallel(n, threads, GK_PARALLEL_MIN_ELEMENTS)))
    for (int64_t i = 0; i < n; i++)
        dx[i] = y[i] > 0 ? dy[i] : (T)0;
    return GK_OK;
}

/* A byte of the mask at a time, its 8 bits tested against constants, so the inner loop is
 * unrolled into vector selects (per-element shifts of a gathered byte do not vectorize). */
GK_DISPATCH int S(gk_relu_backward_mask)(T *dx, const T *dy, const uint8_t *mask, int64_t n, int threads)
{
    int64_t bytes = n / 8;
    GK_OMP(parallel for schedule(static) num_threads(threads) if(gk_parallel(n, threads, GK_PARALLEL_MIN_ELEMENTS)))
    for (int64_t j = 0; j < bytes; j++) {
        unsigned bits = mask[j];
        GK_OMP(simd)
        for (int k = 0; k < 8; k++) {
            T g = dy[8 * j + k]; /* read unconditionally, so that the choice is a select */
            dx[8 * j + k] = bits & (1u << k) ? g : (T)0;
        }
    }
    for (int64_t i = 8 * bytes; i < n; i++)
        dx[i] = mask[bytes] & (1u << (i - 8 * bytes)) ? dy[i] : (T)0;
    return GK_OK;
}

GK_DISPATCH int S(gk_leaky_relu_forward)(T *y, const T *x, int64_t n, double negative_slope, int threads)
{
    T a = (T)negative_slope;
    GK_OMP(parallel for simd schedule(static) num_threads(threads) if(gk_parallel(n, threads, GK_PARALLEL_MIN_ELEMENTS)))
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i] > 0 ? x[i] : a * x[i];
    return GK_OK;
}

GK_DISPATCH int S(gk_leaky_relu_backward)(T *dx, const T *dy, const T *x, int64_t n, double negative_slope,
                                          int threads)
{
    T a = (T)negative_slope;
    GK_OMP(parallel for simd schedule(static) num_threads(threads) if(gk_parallel(n, threads, GK_PARALLEL_MIN_ELEMENTS)))
    for (int64_t i = 0; i < n; i++)
        dx[i] = x[i] > 0 ? dy[i] : a * dy[i];
    return GK_OK;
}

GK_DISPATCH int S(gk_sigmoid_forward)(T *y, const T *x, int64_t n, int threads)
{
    GK_OMP(parallel for simd schedule(static) num_threads(threads) if(gk_parallel(n, threads, GK_PARALLEL_MIN_TRANSCENDENTAL)))
    for (int64_t i = 0; i < n; i++)
        y[i] = S(gk_sigmoid)(x[i]);
    return GK_OK;
}

GK_DISPATCH int S(gk_sigmoid_backward)(T *dx, const T *dy, const T *y, int64_t n, int threads)
{
    GK_OMP(parallel for simd schedule(static) num_threads(threads) if(gk_parallel(n, threads, GK_PARALLEL_MIN_ELEMENTS)))
    for (int64_t i = 0; i < n; i++)
        dx[i] = dy[i] * (y[i] * ((T)1 - y[i]));
    return GK_OK;
}

GK_DISPATCH int S(gk_tanh_forward)(T *y, const T *x, int64_t n, int threads)
{
    GK_OMP(parallel for simd schedule(static) num_threads(threads) if(gk_parallel(n, threads, GK_PARALLEL_MIN_TRANSCENDENTAL)))
    for (int64_t i = 0; i < n; i++)
        y[i] = S(gk_tanh)(x[i]);
    return GK_OK;
}

GK_DISPATCH int S(gk_tanh_backward)(T *dx, const T *dy, const T *y, int64_t n, int threads)
{
    GK_OMP(parallel for simd schedule(static) num_threads(threads) if(gk_parallel(n, threads, GK_PARALLEL_MIN_ELEMENTS)))
    for (int64_t i = 0; i < n; i++)
        dx[i] = dy[i] * (((T)1 - y[i]) * ((T)1 + y[i])); /* not 1 - y^2: exact near |y| = 1 */
    return GK_OK;
}

#else
#include "internal.h"
#include "vmath.h"

#define GK_TEMPLATE "activations.c"
#include "template.h"
#endif
