"""Linear layer, Numba backend: the GEMMs go to NumPy's BLAS (never a hand-rolled matmul); the bias
gradient is one float64 pass over dy, parallel over column blocks (so no reduction across
threads, and the same result for every thread count)."""

import numpy as np
from numba import prange

from ._jit import go_parallel, kernel, parallel_kernel
from ._reductions import total

_COLUMN_BLOCK = 256


@kernel
def _column_sums(db, dy):
    """db[j] = sum_i dy[i, j] for C-ordered dy, accumulated in float64."""
    acc = np.zeros(dy.shape[1])
    for i in range(dy.shape[0]):
        for j in range(dy.shape[1]):
            acc[j] += dy[i, j]
    for j in range(dy.shape[1]):
        db[j] = acc[j]


@parallel_kernel
def _column_sums_blocks(db, dy):
    h = dy.shape[1]
    for b in prange((h + _COLUMN_BLOCK - 1) // _COLUMN_BLOCK):
        s, e = b * _COLUMN_BLOCK, min(h, (b + 1) * _COLUMN_BLOCK)
        _column_sums(db[s:e], dy[:, s:e])


@kernel
def _row_sums(db, dy_t):
    """db[j] = sum_i dy_t[j, i]: the bias gradient of a Fortran-ordered dy, read as its transpose."""
    for j in range(dy_t.shape[0]):
        db[j] = total(dy_t[j])


def linear_forward(y, x, w, b):
    np.matmul(x, w, out=y)
    if b is not None:
        y += b


def linear_backward(dx, dw, db, dy, x, w):
    np.matmul(dy, w.T, out=dx)
    np.matmul(x.T, dy, out=dw)
    if db is None:
        return
    if dy.flags.c_contiguous:
        (_column_sums_blocks if go_parallel(dy.size) else _column_sums)(db, dy)
    else:
        _row_sums(db, dy.T)
