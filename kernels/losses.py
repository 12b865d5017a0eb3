"""Fused losses, Numba: the gradient (already multiplied by `grad_scale`) and the unreduced losses
in one call, returning the losses' float64 sum; the API layer reduces. A gradient of None asks for
the losses alone (Numba compiles that case apart, without the gradient's passes). Formulas:
gradkernels.reference.losses.

Cross-entropy, per row: read-only passes take the max and what the loss needs from the logits,
then strict passes write the exponentials into the gradient row, sum them read-only and finish
the gradient in place (which may overwrite the logits: nothing reads them after the first write).

Elementwise losses, per fixed CHUNK: a read-only pass sums the losses (before anything is written,
as the gradient may overwrite the input), then one pass writes the gradient (and the losses) while
the chunk is still in cache. Chunk sums are added in chunk order, the same for every thread count."""

import math

import numpy as np
from numba import prange

from . import _vmath
from ._jit import (
    CHUNK,
    PARALLEL_MIN_ELEMENTS,
    PARALLEL_MIN_ELEMENTS_TRANSCENDENTAL,
    go_parallel,
    kernel,
    parallel_kernel,
    row_kernel,
)
from ._reductions import (
    bce_loss_sum,
    row_max,
    soft_target_sums,
    squared_error_sum,
    sum_exp_shifted,
    total,
    weighted_shift,
)
from .softmax import parallel_rows

# ---------------------------------------------------------------------------------------------
# softmax + cross-entropy


@row_kernel
def _smallest_kept_exp(p_scale):
    """Where an exponential times p_scale would give a gradient entry below the smallest normal
    number, the exponential is taken as 0 before the multiply, so no entry is subnormal. The bound
    is 8 ulps above that number, which covers its own rounding and the product's: an entry kept is
    normal, one taken as 0 was below the smallest normal number times 1 + 9 ulps. Large logits make
    many such entries (17% of a (2048, 32000) float32 gradient with logits of standard deviation 16,
    mean reduction), and subnormals, in the multiply and in the GEMMs that take the gradient
    (linear_cross_entropy), made a step 15x slower on an Intel Xeon. A p_scale of 0 gives +Inf
    (every entry 0, as the products were), a NaN one NaN (the products stay NaN)."""
    return _vmath.constants(p_scale).normal_floor / abs(p_scale)


@row_kernel
def _cross_entropy_row(dz, z, label, weight, weight_sum, smoothing, grad_scale):
    """Writes the gradient row (unless dz is None) and returns the row's loss, with
    q = (1 - eps) onehot + eps / C: loss = sum_j w_j q_j (lse - s_j),
    dz_j = (sum_k w_k q_k) p_j - w_j q_j, times grad_scale."""
    m = row_max(z)
    label_shift = np.float64(z[label] - m)
    smoothing_shift = weighted_shift(z, m, weight) if smoothing > 0.0 else 0.0
    if dz is None:
        sum_exp = sum_exp_shifted(z, m)
    else:
        for j in range(z.size):
            dz[j] = _vmath.exp_nonpositive(z[j] - m)
        sum_exp = total(dz)
    lse = math.log(sum_exp)
    w_t = np.float64(weight[label])
    uniform = smoothing / z.size
    loss = (1.0 - smoothing) * w_t * (lse - label_shift) + uniform * (lse * weight_sum - smoothing_shift)
    if dz is None:
        return loss
    t = z.dtype.type
    p_scale = t(((1.0 - smoothing) * w_t + uniform * weight_sum) / sum_exp * grad_scale)
    smallest_kept, zero = _smallest_kept_exp(p_scale), t(0)
    if smoothing > 0.0:
        w_scale = t(uniform * grad_scale)
        for j in range(z.size):
            dz[j] = (zero if dz[j] < smallest_kept else dz[j]) * p_scale - weight[j] * w_scale
    else:  # without smoothing the weights enter through w_t alone: no pass over the weight row
        for j in range(z.size):
            dz[j] = (zero if dz[j] < smallest_kept else dz[j]) * p_scale
    dz[label] -= t((1.0 - smoothing) * w_t * grad_scale)
    return loss


@row_kernel
def _row_losses_total(losses):
    """The row losses added in row order in float64, the same for every thread count."""
    s = 0.0
    for r in range(losses.size):
        s += np.float64(losses[r])
    return s


@row_kernel
def _cross_entropy_one(dz, losses, z, labels, weight, ignore_index, smoothing, grad_scale, weight_sum, r):
    if labels[r] == ignore_index:
        if dz is not None:
            dz[r, :] = 0
        losses[r] = 0
    else:
        losses[r] = _cross_entropy_row(None if dz is None else dz[r], z[r], labels[r], weight, weight_sum, smoothing,
                                       grad_scale)


@kernel
def _cross_entropy(dz, losses, z, labels, weight, ignore_index, smoothing, grad_scale):
    weight_sum = total(weight)
    for r in range(z.shape[0]):
        _cross_entropy_one(dz, losses, z, labels, weight, ignore_index, smoothing, grad_scale, weight_sum, r)
    return _row_losses_total(losses)


@parallel_kernel
def _cross_entropy_rows(dz, losses, z, labels, weight, ignore_index, smoothing, grad_scale):
    weight_sum = total(weight)
    for r in prange(z.shape[0]):
        _cross_entropy_one(dz, losses, z, labels, weight, ignore_index, smoothing, grad_scale, weight_sum, r)
    return _row_losses_total(losses)


# With few classes a row is too short to vectorize along: each pass over it pays a vector loop's
# setup and a scalar remainder, and the log is a libm call per row (130-160 ns a row measured at
# 10 classes). Up to SMALL_CLASSES, rows are taken BATCH at a time and become the vector lanes,
# which cut softmax + cross-entropy at (4096, 10) float32 from 0.49 to about 0.2 ms a call here.
# The transposes in and out are scalar and now take half the time; gathers would be next.
SMALL_CLASSES = 16
BATCH = 64
_BATCHES_PER_TASK = 4


@kernel
def _cross_entropy_batched(dz, losses, z, labels, weight, ignore_index, smoothing, grad_scale, start, stop):
    """Rows [start, stop) of a few classes, BATCH at a time with the rows as vector lanes: the
    arithmetic of _cross_entropy_row for a whole batch, on a transposed copy of it (so dz may be z)."""
    classes = z.shape[1]
    dt = z.dtype.type
    shifted = np.empty((classes, BATCH), z.dtype)  # z - max, then the gradient, transposed
    exps = np.empty((classes, BATCH), z.dtype)
    m, sum_exp, weighted = np.empty(BATCH, z.dtype), np.empty(BATCH, z.dtype), np.empty(BATCH, z.dtype)
    label_weight, p_scale, lse = np.empty(BATCH, z.dtype), np.empty(BATCH, z.dtype), np.empty(BATCH, z.dtype)
    smallest_kept = np.empty(BATCH, z.dtype)
    weight_sum = total(weight)
    keep, uniform = 1.0 - smoothing, smoothing / classes
    w_scale = dt(uniform * grad_scale)
    for first in range(start, stop, BATCH):
        count = min(BATCH, stop - first)
        for b in range(count):
            for j in range(classes):
                shifted[j, b] = z[first + b, j]
        m[:count] = shifted[0, :count]
        for j in range(1, classes):
            for b in range(count):
                m[b] = _vmath.maximum(m[b], shifted[j, b])
        sum_exp[:count] = 0
        weighted[:count] = 0
        for j in range(classes):
            w = weight[j]
            for b in range(count):
                v = shifted[j, b] - m[b]
                shifted[j, b] = v
                e = _vmath.exp_nonpositive(v)
                exps[j, b] = e
                sum_exp[b] += e
                weighted[b] += w * v
        for b in range(count):
            lse[b] = _vmath.log(sum_exp[b])
        for b in range(count):  # per row: the label's weight and logit, and the loss
            r = first + b
            label = labels[r]
            if label == ignore_index:
                label_weight[b] = 0
                losses[r] = 0
                continue
            w_t = weight[label]
            label_weight[b] = w_t
            log_sum = np.float64(lse[b])
            # the smoothing term only with smoothing: a masked class (z = -inf) makes it 0 * inf
            smoothed = uniform * (log_sum * weight_sum - weighted[b]) if smoothing > 0.0 else 0.0
            losses[r] = keep * w_t * (log_sum - shifted[label, b]) + smoothed
        if dz is None:
            continue
        for b in range(count):
            p_scale[b] = dt((keep * label_weight[b] + uniform * weight_sum) / sum_exp[b] * grad_scale)
            smallest_kept[b] = _smallest_kept_exp(p_scale[b])
        for j in range(classes):  # the gradient, transposed, into `shifted`
            w = weight[j] * w_scale
            for b in range(count):
                e = exps[j, b]
                shifted[j, b] = (dt(0) if e < smallest_kept[b] else e) * p_scale[b] - w
        for b in range(count):
            r = first + b
            label = labels[r]
            if label == ignore_index:
                dz[r, :] = 0
                continue
            shifted[label, b] -= dt(keep * label_weight[b] * grad_scale)
            for j in range(classes):
                dz[r, j] = shifted[j, b]
    return _row_losses_total(losses[start:stop])


@parallel_kernel
def _cross_entropy_batched_tasks(dz, losses, z, labels, weight, ignore_index, smoothing, grad_scale):
    rows, task = z.shape[0], BATCH * _BATCHES_PER_TASK
    for k in prange((rows + task - 1) // task):
        _cross_entropy_batched(dz, losses, z, labels, weight, ignore_index, smoothing, grad_scale,
                               k * task, min(rows, (k + 1) * task))
    return _row_losses_total(losses)


def softmax_cross_entropy(dz, losses, z, labels, weight, ignore_index, label_smoothing, grad_scale):
    args = (dz, losses, z, labels, weight, ignore_index, label_smoothing, grad_scale)
    if z.shape[1] <= SMALL_CLASSES:
        if z.shape[0] > BATCH * _BATCHES_PER_TASK and go_parallel(z.size, PARALLEL_MIN_ELEMENTS_TRANSCENDENTAL):
            return _cross_entropy_batched_tasks(*args)
        return _cross_entropy_batched(*args, 0, z.shape[0])
    return (_cross_entropy_rows if parallel_rows(z) else _cross_entropy)(*args)


@row_kernel
def _soft_cross_entropy_row(dz, z, q, weight, smoothing, grad_scale):
    """Class-probability targets: the same formulas with q' = (1 - eps) q + eps / C."""
    m = row_max(z)
    wq, wq_shift = soft_target_sums(z, m, q, weight, smoothing)
    if dz is None:
        return math.log(sum_exp_shifted(z, m)) * wq - wq_shift
    for j in range(z.size):
        dz[j] = _vmath.exp_nonpositive(z[j] - m)
    sum_exp = total(dz)
    t = z.dtype.type
    p_scale = t(wq / sum_exp * grad_scale)
    smallest_kept, zero = _smallest_kept_exp(p_scale), t(0)
    q_scale, u_scale = t((1.0 - smoothing) * grad_scale), t(smoothing / z.size * grad_scale)
    for j in range(z.size):
        dz[j] = (zero if dz[j] < smallest_kept else dz[j]) * p_scale - weight[j] * (q[j] * q_scale + u_scale)
    return math.log(sum_exp) * wq - wq_shift


@kernel
def _soft_cross_entropy(dz, losses, z, targets, weight, smoothing, grad_scale):
    for r in range(z.shape[0]):
        losses[r] = _soft_cross_entropy_row(None if dz is None else dz[r], z[r], targets[r], weight, smoothing,
                                            grad_scale)
    return _row_losses_total(losses)


@parallel_kernel
def _soft_cross_entropy_rows(dz, losses, z, targets, weight, smoothing, grad_scale):
    for r in prange(z.shape[0]):
        losses[r] = _soft_cross_entropy_row(None if dz is None else dz[r], z[r], targets[r], weight, smoothing,
                                            grad_scale)
    return _row_losses_total(losses)


def softmax_cross_entropy_soft(dz, losses, z, targets, weight, label_smoothing, grad_scale):
    run = _soft_cross_entropy_rows if parallel_rows(z) else _soft_cross_entropy
    return run(dz, losses, z, targets, weight, label_smoothing, grad_scale)


# ---------------------------------------------------------------------------------------------
# sigmoid + binary cross-entropy, MSE


@kernel
def _bce_chunk(dz, losses, z, t, grad_scale):
    s = bce_loss_sum(z, t)
    zero, one, g = z.dtype.type(0), z.dtype.type(1), z.dtype.type(grad_scale)
    for i in range(z.size):
        v, target = z[i], t[i]
        e = _vmath.exp(-abs(v))
        if losses is not None:
            losses[i] = (max(v, zero) - v * target) + _vmath.log1p_unit(e)
        if dz is not None:
            dz[i] = ((one if v >= zero else e) / (one + e) - target) * g
    return s


@kernel
def _bce(dz, losses, z, t, grad_scale):
    n, s = z.size, 0.0
    for c in range((n + CHUNK - 1) // CHUNK):
        a, b = c * CHUNK, min(n, (c + 1) * CHUNK)
        s += _bce_chunk(None if dz is None else dz[a:b], None if losses is None else losses[a:b], z[a:b], t[a:b],
                        grad_scale)
    return s


@parallel_kernel
def _bce_chunks(dz, losses, z, t, grad_scale):
    n = z.size
    partial = np.empty((n + CHUNK - 1) // CHUNK)
    for c in prange(partial.size):
        a, b = c * CHUNK, min(n, (c + 1) * CHUNK)
        partial[c] = _bce_chunk(None if dz is None else dz[a:b], None if losses is None else losses[a:b], z[a:b],
                                t[a:b], grad_scale)
    s = 0.0
    for c in range(partial.size):  # in chunk order: the same sum as _bce's
        s += partial[c]
    return s


def sigmoid_binary_cross_entropy(dz, losses, z, targets, grad_scale):
    run = _bce_chunks if go_parallel(z.size, PARALLEL_MIN_ELEMENTS_TRANSCENDENTAL) else _bce
    return run(dz, losses, z, targets, grad_scale)


@kernel
def _mse_chunk(dpred, losses, pred, target, grad_scale):
    s = squared_error_sum(pred, target)
    g = pred.dtype.type(2.0 * grad_scale)
    for i in range(pred.size):
        d = pred[i] - target[i]
        if losses is not None:
            losses[i] = d * d
        if dpred is not None:
            dpred[i] = d * g
    return s


@kernel
def _mse(dpred, losses, pred, target, grad_scale):
    n, s = pred.size, 0.0
    for c in range((n + CHUNK - 1) // CHUNK):
        a, b = c * CHUNK, min(n, (c + 1) * CHUNK)
        s += _mse_chunk(None if dpred is None else dpred[a:b], None if losses is None else losses[a:b], pred[a:b],
                        target[a:b], grad_scale)
    return s


@parallel_kernel
def _mse_chunks(dpred, losses, pred, target, grad_scale):
    n = pred.size
    partial = np.empty((n + CHUNK - 1) // CHUNK)
    for c in prange(partial.size):
        a, b = c * CHUNK, min(n, (c + 1) * CHUNK)
        partial[c] = _mse_chunk(None if dpred is None else dpred[a:b], None if losses is None else losses[a:b],
                                pred[a:b], target[a:b], grad_scale)
    s = 0.0
    for c in range(partial.size):
        s += partial[c]
    return s


def mse(dpred, losses, pred, target, grad_scale):
    return (_mse_chunks if go_parallel(pred.size, PARALLEL_MIN_ELEMENTS) else _mse)(
        dpred, losses, pred, target, grad_scale)
