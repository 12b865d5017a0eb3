"""Linear layers y = x w + b with weights (D, H). The GEMMs go to NumPy's BLAS; x, w and dy arrive
C- or Fortran-contiguous (BLAS takes either without a copy), outputs C-contiguous.

`chunked_linear_cross_entropy` is every backend's linear_cross_entropy, with the backend's own
cross-entropy and bias-gradient kernels."""

import numpy as np

from .._blas import accumulate
from .._blas import direct as direct_gemm
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


def input_and_weight_gradients(dx, dw, dy, x, w):
    """dx = dy w^T and dw = x^T dy: the two GEMMs of every backend's linear_backward."""
    np.matmul(dy, w.T, out=dx)
    np.matmul(x.T, dy, out=dw)


def bias_gradient(db, dy):
    # Column sums of a row-major dy accumulate row after row; float64 keeps float32 accurate.
    np.copyto(db, np.sum(dy, axis=0, dtype=np.float64), casting="same_kind")


def linear_backward(dx, dw, db, dy, x, w):
    input_and_weight_gradients(dx, dw, dy, x, w)
    if db is not None:
        bias_gradient(db, dy)


def linear_relu_forward(y, x, w, b):
    linear_forward(y, x, w, b)
    np.maximum(y, 0, out=y)  # NaN stays NaN, as in relu_forward


def linear_relu_backward(dx, dw, db, dz, da, a, x, w):
    """The linear layer's backward on dz = da where a > 0, else +0 (selected, as relu_backward)."""
    np.copyto(dz, np.where(a > 0, da, 0))
    linear_backward(dx, dw, db, dz, x, w)


def chunked_linear_cross_entropy(cross_entropy, column_sums, dx, dw, db, losses, logits, x, w, b, labels, weight,
                                 ignore_index, label_smoothing, grad_scale):
    """MATH.md section 4 over chunks of as many rows as `logits` holds: the chunk's logits
    x_c w + b, turned in place into its gradient g by `cross_entropy` (a softmax_cross_entropy
    kernel), then dx_c = g w^T, dw += x_c^T g and db += g summed over rows (`column_sums`, a
    bias_gradient kernel; the chunks' sums add in float64)."""
    rows, chunk = x.shape[0], logits.shape[0]
    db_total = None if db is None else np.zeros(db.shape)
    db_chunk = None if db is None else np.empty_like(db)
    for first in range(0, rows, chunk):
        last = min(rows, first + chunk)
        x_c, g = x[first:last], logits[: last - first]
        linear_forward(g, x_c, w, b)
        cross_entropy(g, losses[first:last], g, labels[first:last], weight, ignore_index, label_smoothing, grad_scale)
        np.matmul(g, w.T, out=dx[first:last])
        if first == 0:
            np.matmul(x_c.T, g, out=dw)
        else:
            accumulate(dw, x_c.T, g)
        if db is not None:
            column_sums(db_chunk, g)
            db_total += db_chunk
    if db is not None:
        np.copyto(db, db_total, casting="same_kind")


def linear_cross_entropy(dx, dw, db, losses, logits, x, w, b, labels, weight, ignore_index, label_smoothing,
                         grad_scale):
    chunked_linear_cross_entropy(softmax_cross_entropy, bias_gradient, dx, dw, db, losses, logits, x, w, b, labels,
                                 weight, ignore_index, label_smoothing, grad_scale)
