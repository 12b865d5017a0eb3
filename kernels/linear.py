"""Linear layer, Numba backend: the GEMMs go to NumPy's BLAS (never a hand-rolled matmul); the bias
gradient is one pass over dy, deliberately serial. Right after a GEMM, BLAS's worker threads are
still spinning on every core, and a parallel Numba region there oversubscribes them: measured at
(4096, 1024) float32, 7.8 ms in parallel against 0.8 ms serial, with the GEMMs taking ~100 ms.
A memory-bound pass that small gains nothing from a second thread pool."""

import numpy as np

from ..reference.linear import input_and_weight_gradients, linear_forward  # noqa: F401 (the same BLAS calls)
from ._jit import kernel
from ._reductions import total

# Rows added in the data's dtype before the partial goes into the float64 total: at most 16
# roundings per partial keeps float32 column sums within 1e-6 relative, at full vector width.
_ROWS_PER_PARTIAL = 16


@kernel
def _column_sums(db, dy):
    """db = the sums over the rows of C-ordered dy."""
    n, h = dy.shape
    totals = np.zeros(h)
    partial = np.empty(h, dy.dtype)
    for first in range(0, n, _ROWS_PER_PARTIAL):
        partial[:] = 0
        for i in range(first, min(n, first + _ROWS_PER_PARTIAL)):
            row = dy[i]
            for j in range(h):
                partial[j] += row[j]
        for j in range(h):
            totals[j] += partial[j]
    for j in range(h):
        db[j] = totals[j]


@kernel
def _row_sums(db, dy_t):
    """db[j] = sum_i dy_t[j, i]: the bias gradient of a Fortran-ordered dy, read as its transpose."""
    for j in range(dy_t.shape[0]):
        db[j] = total(dy_t[j])


def linear_backward(dx, dw, db, dy, x, w):
    input_and_weight_gradients(dx, dw, dy, x, w)
    if db is None:
        return
    if dy.flags.c_contiguous:
        _column_sums(db, dy)
    else:
        _row_sums(db, dy.T)
