/* The linear layers' own passes around the GEMMs: the bias gradient (the sums of dy over its rows,
 * for linear_relu with the ReLU's mask applied in the same pass) and linear_relu's bias add and
 * ReLU. The GEMMs are BLAS's (the Python layer calls NumPy's). These passes are deliberately
 * serial: they run right before or after a GEMM, while BLAS's threads still spin on every core,
 * and a parallel region there oversubscribes them (measured with the Numba backend: 7.8 ms in
 * parallel against 0.8 ms serial at (4096, 1024) float32), for a memory-bound pass that a second
 * thread does not speed up. */
#ifdef T

/* Rows added in T before each partial goes into the double totals: at most 16 roundings per
 * partial keeps float column sums within 1e-6 relative, at full vector width. */
#define ROWS_PER_PARTIAL 16

/* The row of the gradient the bias sums: dy's own, or with relu_output (linear_relu's output, in
 * dy's layout) dz = dy where relu_output > 0 and +0 elsewhere, as relu_backward selects, written
 * to dz for the GEMMs that follow. */
GK_INLINE const T *S(gk_gradient_row)(T *dz, const T *dy, const T *relu_output, int64_t n)
{
    if (!relu_output)
        return dy;
    GK_OMP(simd)
    for (int64_t j = 0; j < n; j++) {
        T g = dy[j]; /* read unconditionally, so that the choice is a select */
        dz[j] = relu_output[j] > 0 ? g : (T)0;
    }
    return dz;
}

/* db = the sums over the rows of a C-ordered (rows, cols) dy, or of its masked dz (see
 * gk_gradient_row; relu_output and dz are NULL for a plain linear layer). */
int GK_KERNEL(gk_bias_gradient)(T *db, T *dz, const T *dy, const T *relu_output, int64_t rows, int64_t cols)
{
    double *totals = calloc((size_t)cols, sizeof *totals);
    T *partial = malloc((size_t)cols * sizeof *partial);
    if (!totals || !partial) {
        free(totals);
        free(partial);
        return GK_NO_MEMORY;
    }
    for (int64_t first = 0; first < rows; first += ROWS_PER_PARTIAL) {
        memset(partial, 0, (size_t)cols * sizeof *partial);
        for (int64_t i = first; i < GK_MIN(rows, first + ROWS_PER_PARTIAL); i++) {
            int64_t at = i * cols;
            const T *row = S(gk_gradient_row)(dz + (relu_output ? at : 0), dy + at,
                                              relu_output ? relu_output + at : NULL, cols);
            GK_OMP(simd)
            for (int64_t j = 0; j < cols; j++)
                partial[j] += row[j];
        }
        GK_OMP(simd)
        for (int64_t j = 0; j < cols; j++)
            totals[j] += (double)partial[j];
    }
    for (int64_t j = 0; j < cols; j++)
        db[j] = (T)totals[j];
    free(totals);
    free(partial);
    return GK_OK;
}

/* The same for a Fortran-ordered dy (and relu_output, dz), read as C-ordered transposes: row j of
 * dy_t is column j of dy, and db[j] its sum. */
int GK_KERNEL(gk_bias_gradient_transposed)(T *db, T *dz_t, const T *dy_t, const T *relu_output_t, int64_t rows,
                                           int64_t cols)
{
    for (int64_t j = 0; j < rows; j++) {
        int64_t at = j * cols;
        const T *row = S(gk_gradient_row)(dz_t + (relu_output_t ? at : 0), dy_t + at,
                                          relu_output_t ? relu_output_t + at : NULL, cols);
        db[j] = (T)S(gk_total)(row, cols);
    }
    return GK_OK;
}

/* y = relu(y + b) in place over a C-ordered (rows, cols) y, b NULL for none: linear_relu's bias
 * add and ReLU in one pass over the GEMM's output. NaN stays NaN, as in relu. */
int GK_KERNEL(gk_bias_relu)(T *y, const T *b, int64_t rows, int64_t cols)
{
    for (int64_t i = 0; i < rows; i++) {
        T *row = y + i * cols;
        if (b) {
            GK_OMP(simd)
            for (int64_t j = 0; j < cols; j++) {
                T v = row[j] + b[j];
                row[j] = v <= 0 ? (T)0 : v;
            }
        } else {
            GK_OMP(simd)
            for (int64_t j = 0; j < cols; j++)
                row[j] = row[j] <= 0 ? (T)0 : row[j];
        }
    }
    return GK_OK;
}

#undef ROWS_PER_PARTIAL

#else
#include <stdlib.h>

#include "internal.h"
#include "reductions.h"

#define GK_TEMPLATE "linear.c"
#include "template.h"
#endif
