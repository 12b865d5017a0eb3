/* The linear layer's own pass: the bias gradient, the sums of dy over its rows. The GEMMs are
 * BLAS's (the Python layer calls NumPy's); this pass is deliberately serial: it runs right after
 * a GEMM, while BLAS's threads still spin on every core, and a parallel region there
 * oversubscribes them (measured with the Numba backend: 7.8 ms in parallel against 0.8 ms serial
 * at (4096, 1024) float32), for a memory-bound pass that a second thread does not speed up. */
#ifdef T

/* Rows added in T before each partial goes into the double totals: at most 16 roundings per
 * partial keeps float column sums within 1e-6 relative, at full vector width. */
#define ROWS_PER_PARTIAL 16

/* db = the sums over the rows of a C-ordered (rows, cols) dy. */
GK_DISPATCH int S(gk_column_sums)(T *db, const T *dy, int64_t rows, int64_t cols)
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
            const T *row = dy + i * cols;
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

/* db[j] = sum_i dy_t[j, i]: the bias gradient of a Fortran-ordered dy, read as its C-ordered
 * transpose (rows = dy's columns). */
GK_DISPATCH int S(gk_row_sums)(T *db, const T *dy_t, int64_t rows, int64_t cols)
{
    for (int64_t j = 0; j < rows; j++)
        db[j] = (T)S(gk_total)(dy_t + j * cols, cols);
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
