"""The linear-layer driver every backend shares: y = x w + b with weights (D, H), its backward and
the chunked linear + cross-entropy. The GEMMs go to NumPy's BLAS; x, w and dy arrive C- or
Fortran-contiguous (BLAS takes either without a copy), outputs C-contiguous but dw, which is laid
out like w (BLAS writes either order in place).

A backend builds its kernels with `backward_kernels` from its own passes (the bias gradient, the
ReLU mask, cross-entropy). NumPy checks the floating-point flags after each GEMM and reduction,
so these functions run `quiet`.
"""

import numpy as np

from ._blas import accumulate
from ._blas import direct as direct_gemm
from ._quiet import quiet
from ._threads import thread_limit

# From this many outputs on, y = b then y += x w (beta = 1) saves the second pass over y that
# y = x w then y += b makes; below, the direct GEMM call's fixed cost is the larger. Measured on a
# Zen 3, float32, (N, D) @ (D, H): 0.5x at (32, 10, 6), 0.85-0.91x at (128, 64, 64), 1.00-1.03x at
# (256, 64, 128), 1.06x at (200, 64, 256), 1.00-1.04x from there to (1024, 1024, 1024).
DIRECT_BIAS_MIN = 1 << 15


@quiet
def linear_forward(y, x, w, b):
    if b is not None and y.size >= DIRECT_BIAS_MIN and direct_gemm():
        # y = b, then y += x w inside the GEMM (beta = 1): no separate pass over y for the bias.
        np.copyto(y, b)
        accumulate(y, x, w)
    else:
        np.matmul(x, w, out=y)
        if b is not None:
            y += b


def weight_gradient(dw, x, dy):
    """dw = x^T dy into C- or Fortran-ordered dw. NumPy's matmul hands BLAS a C-ordered output
    only (a Fortran one goes through its loop without BLAS): Fortran-ordered dw is written as the
    C-ordered dw^T = dy^T x."""
    if dw.flags.c_contiguous:
        np.matmul(x.T, dy, out=dw)
    else:
        np.matmul(dy.T, x, out=dw.T)


def backward_kernels(bias_gradient, masked_bias_gradient, relu_backward, softmax_cross_entropy):
    """A backend's linear_backward, linear_relu_backward and linear_cross_entropy, from its own
    passes: bias_gradient(db, dy) sums dy over its rows; masked_bias_gradient(db, dz, da, a) writes
    dz = da where a > 0, else +0, and sums dz; relu_backward and softmax_cross_entropy are its
    kernels of those names."""

    def gemms(dx, dw, dy, x, w):
        if dx is not None:
            np.matmul(dy, w.T, out=dx)
        weight_gradient(dw, x, dy)

    @quiet
    def linear_backward(dx, dw, db, dy, x, w):
        gemms(dx, dw, dy, x, w)
        if db is not None:
            bias_gradient(db, dy)

    @quiet
    def linear_relu_backward(dx, dw, db, dz, da, a, x, w):
        if db is None:
            relu_backward(dz.ravel("K"), da.ravel("K"), a.ravel("K"))
        else:
            masked_bias_gradient(db, dz, da, a)
        gemms(dx, dw, dz, x, w)

    @quiet
    def linear_cross_entropy(dx, dw, db, losses, logits, x, w, b, labels, weight, ignore_index, label_smoothing,
                             grad_scale):
        """Over chunks of as many rows as `logits` holds: the chunk's logits b + x_c w, turned in
        place into its gradient g, then dx_c = g w^T, dw += x_c^T g and db += g summed over rows
        (the chunks' sums add in float64); with dx, dw and db None, the chunks' losses alone.
        Returns the float64 sum of the losses."""
        rows, chunk = x.shape[0], logits.shape[0]
        if chunk >= rows and dx is not None:  # one chunk: its gradients are the whole ones
            linear_forward(logits, x, w, b)
            with thread_limit(1):  # see the loop below
                total = softmax_cross_entropy(logits, losses, logits, labels, weight, ignore_index, label_smoothing,
                                              grad_scale)
            gemms(dx, dw, logits, x, w)
            if db is not None:
                bias_gradient(db, logits)
            return total
        total = 0.0
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
                total += softmax_cross_entropy(None if dx is None else g, losses[first:last], g, labels[first:last],
                                               weight, ignore_index, label_smoothing, grad_scale)
            if dx is None:  # the losses alone
                continue
            np.matmul(g, w.T, out=dx[first:last])
            if first == 0:
                weight_gradient(dw, x_c, g)
            else:
                accumulate(dw, x_c.T, g)
            if db is not None:
                bias_gradient(db_chunk, g)
                db_total += db_chunk
        if db is not None:
            np.copyto(db, db_total, casting="same_kind")
        return total

    return linear_backward, linear_relu_backward, linear_cross_entropy
