"""Linear layer y = x w + b with weights (D, H). The GEMMs go to NumPy's BLAS; x, w and dy arrive
C- or Fortran-contiguous (BLAS takes either without a copy), outputs C-contiguous."""

import numpy as np


def linear_forward(y, x, w, b):
    np.matmul(x, w, out=y)
    if b is not None:
        y += b


def input_and_weight_gradients(dx, dw, dy, x, w):
    """dx = dy w^T and dw = x^T dy: the two GEMMs of every backend's linear_backward."""
    np.matmul(dy, w.T, out=dx)
    np.matmul(x.T, dy, out=dw)


def linear_backward(dx, dw, db, dy, x, w):
    input_and_weight_gradients(dx, dw, dy, x, w)
    if db is not None:
        # Column sums of a row-major dy accumulate row after row; float64 keeps float32 accurate.
        np.copyto(db, np.sum(dy, axis=0, dtype=np.float64), casting="same_kind")
