"""Read-only loops that reduce a row to a few float64 sums. Compiled with reassociation (see
_jit.REDUCE_FASTMATH) so LLVM vectorizes them; they write nothing, so they have a single code path."""

import numpy as np

from . import _vmath
from ._jit import reduction


@reduction
def row_max(z):
    """max(z) over a non-empty row, NaNs skipped (a NaN still reaches the row's sum of exponentials)."""
    m = z[0]
    for j in range(1, z.size):
        m = _vmath.maximum(m, z[j])
    return m


@reduction
def total(a):
    s = 0.0
    for j in range(a.size):
        s += a[j]
    return s


@reduction
def dot(a, b):
    s = 0.0
    for j in range(a.size):
        s += np.float64(a[j]) * b[j]
    return s


@reduction
def sum_exp_shifted(z, m):
    """sum_j exp(z_j - m)."""
    s = 0.0
    for j in range(z.size):
        s += _vmath.exp(z[j] - m)
    return s


@reduction
def sum_exp_and_weighted_shift(z, m, weight):
    """(sum_j exp(z_j - m), sum_j w_j (z_j - m)): what cross-entropy with integer labels needs."""
    s, ws = 0.0, 0.0
    for j in range(z.size):
        shifted = z[j] - m
        s += _vmath.exp(shifted)
        ws += np.float64(weight[j]) * shifted
    return s, ws


@reduction
def soft_target_sums(z, m, q, weight, smoothing):
    """With q' = (1 - eps) q + eps / C: (sum_j exp(z_j - m), sum_j w_j q'_j, sum_j w_j q'_j (z_j - m))."""
    uniform = smoothing / z.size
    s, wq, wq_shift = 0.0, 0.0, 0.0
    for j in range(z.size):
        shifted = z[j] - m
        s += _vmath.exp(shifted)
        wqj = np.float64(weight[j]) * ((1.0 - smoothing) * q[j] + uniform)
        wq += wqj
        wq_shift += wqj * shifted
    return s, wq, wq_shift


@reduction
def bce_loss_sum(z, t):
    """sum_i max(z_i, 0) - z_i t_i + log(1 + exp(-|z_i|))."""
    zero = z.dtype.type(0)
    s = 0.0
    for i in range(z.size):
        v = z[i]
        s += (max(v, zero) - v * t[i]) + _vmath.log1p_unit(_vmath.exp(-abs(v)))
    return s


@reduction
def squared_error_sum(pred, target):
    s = 0.0
    for i in range(pred.size):
        d = pred[i] - target[i]
        s += d * d
    return s
