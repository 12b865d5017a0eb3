"""Linear layers y = x w + b with weights (D, H). The GEMMs go to NumPy's BLAS; x, w and dy arrive
C- or Fortran-contiguous (BLAS takes either without a copy), outputs C-contiguous.

Every backend shares linear_forward and builds its backward kernels with `backward_kernels` from
its own passes (the bias gradient, the ReLU mask, cross-entropy)."""

import numpy as np

from .._threads import thread_limit
from .._blas import accumulate
from .._blas import direct as direct_gemm
from .activations import relu_backward
from .losses import softmax_cross_entropy


def linear_forward(y, x, w, b):
    if b is not None and direct_gemm():
        # y = b, then y += x w inside the GEMM (beta = 1): no separate pass over y for the bias.
        np.copyto(y, b)
        accumulate(y, x, w)
    else:
        np.matmul(x, w, out=y)
        if b is not None:
            y += b


def linear_relu_forward(y, x, w, b):
    linear_forward(y, x, w, b)
    np.maximum(y, 0, out=y)  # NaN stays NaN, as in relu_forward


def bias_gradient(db, dy):
    # Column sums of a row-major dy accumulate row after row; float64 keeps float32 accurate.
    np.copyto(db, np.sum(dy, axis=0, dtype=np.float64), casting="same_kind")


def _masked_bias_gradient(db, dz, da, a):
    np.copyto(dz, np.where(a > 0, da, 0))  # selected, as relu_backward does
    bias_gradient(db, dz)


def backward_kernels(bias_gradient, masked_bias_gradient, relu_backward, softmax_cross_entropy):
    """A backend's linear_backward, linear_relu_backward and linear_cross_entropy, from its own
    passes: bias_gradient(db, dy) sums dy over its rows; masked_bias_gradient(db, dz, da, a) writes
    dz = da where a > 0, else +0, and sums dz; relu_backward and softmax_cross_entropy are its
    kernels of those names. The GEMMs are NumPy's BLAS in every backend."""

    def linear_backward(dx, dw, db, dy, x, w):
        np.matmul(dy, w.T, out=dx)
        np.matmul(x.T, dy, out=dw)
        if db is not None:
            bias_gradient(db, dy)

    def linear_relu_backward(dx, dw, db, dz, da, a, x, w):
        if db is None:
            relu_backward(dz.ravel("K"), da.ravel("K"), a.ravel("K"))
        else:
            masked_bias_gradient(db, dz, da, a)
        linear_backward(dx, dw, None, dz, x, w)

    def linear_cross_entropy(dx, dw, db, losses, logits, x, w, b, labels, weight, ignore_index, label_smoothing,
                             grad_scale):
        """MATH.md section 4 over chunks of as many rows as `logits` holds: the chunk's logits
        b + x_c w, turned in place into its gradient g, then dx_c = g w^T, dw += x_c^T g and
        db += g summed over rows (the chunks' sums add in float64)."""
        rows, chunk = x.shape[0], logits.shape[0]
        db_total = None if db is None else np.zeros(db.shape)
        db_chunk = None if db is None else np.empty_like(db)
        for first in range(0, rows, chunk):
            last = min(rows, first + chunk)
            x_c, g = x[first:last], logits[: last - first]
            linear_forward(g, x_c, w, b)
            # Serially: BLAS's threads still spin after the GEMM, and a parallel region here fights
            # them (measured, C backend: 18 against 24 ms at (2048, 256, 1000), 0.91 against 1.06 s
            # at (4096, 1024, 8000)).
            with thread_limit(1):
                softmax_cross_entropy(g, losses[first:last], g, labels[first:last], weight, ignore_index,
                                      label_smoothing, grad_scale)
            np.matmul(g, w.T, out=dx[first:last])
            if first == 0:
                np.matmul(x_c.T, g, out=dw)
            else:
                accumulate(dw, x_c.T, g)
            if db is not None:
                bias_gradient(db_chunk, g)
                db_total += db_chunk
        if db is not None:
            np.copyto(db, db_total, casting="same_kind")

    return linear_backward, linear_relu_backward, linear_cross_entropy


linear_backward, linear_relu_backward, linear_cross_entropy = backward_kernels(
    bias_gradient, _masked_bias_gradient, relu_backward, softmax_cross_entropy)
