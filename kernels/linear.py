"""Linear layers, Numba backend: the GEMMs go to NumPy's BLAS (never a hand-rolled matmul); the
passes around them (the bias gradient, with linear_relu's mask; linear_relu's bias add and ReLU)
are deliberately serial. Right after a GEMM, BLAS's worker threads are still spinning on every
core, and a parallel Numba region there oversubscribes them: measured at (4096, 1024) float32,
7.8 ms in parallel against 0.8 ms serial, with the GEMMs taking ~100 ms. A memory-bound pass
that small gains nothing from a second thread pool."""

import numpy as np

from .._linear import backward_kernels, linear_forward
from ._jit import kernel
from ._reductions import total
from .activations import relu_backward
from .losses import softmax_cross_entropy

# Rows added in the data's dtype before the partial goes into the float64 total: at most 16
# roundings per partial keeps float32 column sums within 1e-6 relative, at full vector width.
_ROWS_PER_PARTIAL = 16


@kernel
def _gradient_row(dz, dy, relu_output):
    """The row of the gradient the bias sums: dy's own, or with relu_output (linear_relu's output)
    dz = dy where relu_output > 0 and +0 elsewhere, written to dz for the GEMMs that follow. With
    relu_output None, Numba compiles only the first branch."""
    if relu_output is None:
        return dy
    zero = dy.dtype.type(0)
    for j in range(dy.size):
        dz[j] = dy[j] if relu_output[j] > zero else zero
    return dz


@kernel
def _column_sums(db, dz, dy, relu_output):
    """db = the sums over the rows of C-ordered dy, or of its masked dz (see _gradient_row)."""
    n, h = dy.shape
    totals = np.zeros(h)
    partial = np.empty(h, dy.dtype)
    for first in range(0, n, _ROWS_PER_PARTIAL):
        partial[:] = 0
        for i in range(first, min(n, first + _ROWS_PER_PARTIAL)):
            row = _gradient_row(None if dz is None else dz[i], dy[i], None if relu_output is None else relu_output[i])
            for j in range(h):
                partial[j] += row[j]
        for j in range(h):
            totals[j] += partial[j]
    for j in range(h):
        db[j] = totals[j]


@kernel
def _row_sums(db, dz_t, dy_t, relu_output_t):
    """db[j] = the sum of row j of dy_t (or of its masked dz_t): the bias gradient of Fortran-ordered
    arrays, read as their C-ordered transposes."""
    for j in range(dy_t.shape[0]):
        row = _gradient_row(None if dz_t is None else dz_t[j], dy_t[j],
                            None if relu_output_t is None else relu_output_t[j])
        db[j] = total(row)


@kernel
def _bias_relu(y, b):
    """y = relu(y + b) in place over C-ordered y (b None: no bias): the bias add and ReLU in one
    pass. NaN stays NaN."""
    zero = y.dtype.type(0)
    for i in range(y.shape[0]):
        row = y[i]
        for j in range(y.shape[1]):
            v = row[j] if b is None else row[j] + b[j]
            row[j] = zero if v <= zero else v


def _bias_gradient(db, dz, dy, relu_output):
    if dy.flags.c_contiguous:
        _column_sums(db, dz, dy, relu_output)
    else:
        _row_sums(db, *(None if a is None else a.T for a in (dz, dy, relu_output)))


def bias_gradient(db, dy):
    _bias_gradient(db, None, dy, None)


def linear_relu_forward(y, x, w, b):
    linear_forward(y, x, w, None)
    _bias_relu(y, b)


linear_backward, linear_relu_backward, linear_cross_entropy = backward_kernels(
    bias_gradient, _bias_gradient, relu_backward, softmax_cross_entropy)
