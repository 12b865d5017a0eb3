"""Read-only loops that reduce a row to float64 sums. Compiled with reassociation (see
_jit.REDUCE_FASTMATH) so LLVM vectorizes them; they write nothing, so they have a single code path.

Sums of float32 data run in blocks of BLOCK elements summed in the data's own dtype, at full vector
width, and the block sums are added in float64. A float64 accumulator in the inner loop would make
LLVM vectorize the whole loop at the width of doubles, halving the throughput of everything in it
(exp included); a positive block sum of 64 terms carries at most ~8 roundings (vector lanes plus
their final combination), far inside the float32 tolerance, and the float64 outer sum keeps long
rows from drifting."""

import math

from . import _vmath
from ._jit import reduction

BLOCK = 64


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
    n = a.size
    for b in range(0, n, BLOCK):
        block = a[b : min(n, b + BLOCK)]
        t = a.dtype.type(0)
        for j in range(block.size):
            t += block[j]
        s += t
    return s


@reduction
def dot(a, b):
    s = 0.0
    n = a.size
    for k in range(0, n, BLOCK):
        x, y = a[k : min(n, k + BLOCK)], b[k : min(n, k + BLOCK)]
        t = a.dtype.type(0)
        for j in range(x.size):
            t += x[j] * y[j]
        s += t
    return s


@reduction
def sum_exp_shifted(z, m):
    """sum_j exp(z_j - m)."""
    s = 0.0
    n = z.size
    for b in range(0, n, BLOCK):
        block = z[b : min(n, b + BLOCK)]
        t = z.dtype.type(0)
        for j in range(block.size):
            t += _vmath.exp_nonpositive(block[j] - m)
        s += t
    return s


@reduction
def weighted_shift(z, m, weight):
    """sum_j w_j (z_j - m): the label-smoothing term of cross-entropy."""
    s = 0.0
    n = z.size
    for b in range(0, n, BLOCK):
        e = min(n, b + BLOCK)
        block, w = z[b:e], weight[b:e]
        t = z.dtype.type(0)
        for j in range(block.size):
            t += w[j] * (block[j] - m)
        s += t
    return s


@reduction
def soft_target_sums(z, m, q, weight, smoothing):
    """With q' = (1 - eps) q + eps / C: (sum_j w_j q'_j, sum_j w_j q'_j (z_j - m))."""
    dt = z.dtype.type
    keep, uniform = dt(1.0 - smoothing), dt(smoothing / z.size)
    wq, wq_shift = 0.0, 0.0
    n = z.size
    for b in range(0, n, BLOCK):
        e = min(n, b + BLOCK)
        block, w, qb = z[b:e], weight[b:e], q[b:e]
        t, u = dt(0), dt(0)
        for j in range(block.size):
            wqj = w[j] * (keep * qb[j] + uniform)
            t += wqj
            u += wqj * (block[j] - m)
        wq += t
        wq_shift += u
    return wq, wq_shift


@reduction
def _bce_loss_blocks(z, t, block_zero):
    zero = z.dtype.type(0)
    s = 0.0
    n = z.size
    for b in range(0, n, BLOCK):
        e = min(n, b + BLOCK)
        block, tb = z[b:e], t[b:e]
        acc = block_zero
        for i in range(block.size):
            v = block[i]
            acc += (max(v, zero) - v * tb[i]) + _vmath.log1p_unit(_vmath.exp(-abs(v)))
        s += acc
    return s


@reduction
def _squared_error_blocks(pred, target, block_zero):
    s = 0.0
    n = pred.size
    for b in range(0, n, BLOCK):
        e = min(n, b + BLOCK)
        p, t = pred[b:e], target[b:e]
        acc = block_zero
        for i in range(p.size):
            d = p[i] - t[i]
            acc += d * d
        s += acc
    return s


# Each loss term may be as large as the dtype's largest value, so a block sum in float32 can
# overflow where the float64 total would not: then the terms are summed again with float64 block
# sums (slower: always doing so would halve the vector width).


@reduction
def bce_loss_sum(z, t):
    """sum_i max(z_i, 0) - z_i t_i + log(1 + exp(-|z_i|))."""
    s = _bce_loss_blocks(z, t, z.dtype.type(0))
    return s if math.isfinite(s) else _bce_loss_blocks(z, t, 0.0)


@reduction
def squared_error_sum(pred, target):
    s = _squared_error_blocks(pred, target, pred.dtype.type(0))
    return s if math.isfinite(s) else _squared_error_blocks(pred, target, 0.0)
