"""Softmax and log-softmax along rows. Arrays are 2-D (rows, classes), C-contiguous, one float
dtype, with at least one row and one class; an output may be the very array of an input."""

import numpy as np


def softmax_forward(p, z):
    # Shifting by the row max keeps every exponent <= 0: nothing overflows.
    row_max = z.max(axis=1, keepdims=True)
    np.subtract(z, row_max, out=p)
    np.exp(p, out=p)
    p /= p.sum(axis=1, keepdims=True)


def softmax_backward(dz, dp, p):
    # dz = p * (dp - <dp, p>) per row; the Jacobian is never built.
    row_dot = np.einsum("rc,rc->r", dp, p)[:, None]
    np.multiply(p, dp - row_dot, out=dz)


def log_softmax_forward(logp, z):
    row_max = z.max(axis=1, keepdims=True)
    np.subtract(z, row_max, out=logp)
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))


def log_softmax_backward(dz, dlogp, logp):
    # dz = dlogp - exp(logp) * sum(dlogp) per row.
    row_sum = dlogp.sum(axis=1, keepdims=True)
    np.subtract(dlogp, np.exp(logp) * row_sum, out=dz)
