"""Fused losses: each kernel writes the gradient and the unreduced losses in one call, and returns
their float64 sum; the API layer reduces.

`grad_scale` is what the gradient is multiplied by (1 / denominator for "mean", 1 otherwise), so
the kernel writes the final gradient in its one pass. The gradient output may be the very array
of the logits (in-place), or None: then only the losses are computed, the same as with it.
"""

import numpy as np


def softmax_cross_entropy(dz, losses, z, labels, weight, ignore_index, label_smoothing, grad_scale):
    """Integer labels. z, dz: (rows, classes) C-contiguous; labels: int64 (rows,), every entry in
    [0, classes) or equal to ignore_index; weight: (classes,); losses: (rows,) per-row losses
    before reduction, 0 on ignored rows.

    With the smoothed target q = (1 - eps) onehot(t) + eps / C and s = z - max(z), lse = log sum exp s:
      loss = (1 - eps) w_t (lse - s_t) + (eps / C) (lse sum_j w_j - sum_j w_j s_j)
      dz_j = (sum_k w_k q_k) p_j - w_j q_j
    """
    rows, classes = z.shape
    counted = labels != ignore_index
    t = np.where(counted, labels, 0)
    r = np.arange(rows)
    work = np.empty_like(z) if dz is None else dz

    np.subtract(z, z.max(axis=1, keepdims=True), out=work)  # work holds s from here, then exp(s)
    s_t = work[r, t]
    smooth = label_smoothing / classes
    w_s = work @ weight if label_smoothing else 0.0
    np.exp(work, out=work)
    sum_exp = work.sum(axis=1)
    lse = np.log(sum_exp)
    w_t = weight[t]
    w_sum = weight.sum()

    row_loss = (1 - label_smoothing) * w_t * (lse - s_t)
    if label_smoothing:
        row_loss += smooth * (lse * w_sum - w_s)
    losses[...] = np.where(counted, row_loss, 0)
    if dz is None:
        return float(np.sum(losses, dtype=np.float64))

    coef = (1 - label_smoothing) * w_t + smooth * w_sum
    dz *= ((coef / sum_exp) * grad_scale)[:, None]  # p_j times sum_k w_k q_k, scaled
    if label_smoothing:
        dz -= (smooth * grad_scale) * weight
    dz[r, t] -= (1 - label_smoothing) * w_t * grad_scale
    dz[~counted] = 0
    return float(np.sum(losses, dtype=np.float64))


def softmax_cross_entropy_soft(dz, losses, z, targets, weight, label_smoothing, grad_scale):
    """Class-probability targets of z's shape, with q = (1 - eps) targets + eps / C:
      loss = sum_j w_j q_j (lse - s_j),   dz_j = (sum_k w_k q_k) p_j - w_j q_j
    """
    # w q as one array, as PyTorch forms it: the target and the smoothing parts kept apart would
    # make 0 * (-inf) = NaN of a zero target next to an infinitely unlikely class, where the
    # smoothed q_j > 0 gives the loss its true +Inf.
    wq_rows = (1 - label_smoothing) * targets + label_smoothing / z.shape[1]
    wq_rows *= weight
    work = np.empty_like(z) if dz is None else dz
    np.subtract(z, z.max(axis=1, keepdims=True), out=work)  # work holds s from here, then exp(s)
    wq_s = np.einsum("rc,rc->r", wq_rows, work)
    np.exp(work, out=work)
    sum_exp = work.sum(axis=1)
    wq = wq_rows.sum(axis=1)
    losses[...] = np.log(sum_exp) * wq - wq_s
    if dz is None:
        return float(np.sum(losses, dtype=np.float64))
    dz *= ((wq / sum_exp) * grad_scale)[:, None]
    wq_rows *= grad_scale
    dz -= wq_rows
    return float(np.sum(losses, dtype=np.float64))


def sigmoid_binary_cross_entropy(dz, losses, z, targets, grad_scale):
    """Elementwise on 1-D arrays: loss = max(z, 0) - z t + log(1 + exp(-|z|)), dz = (sigmoid(z) - t).
    Writes losses and dz when each is an array (None skips it); returns the losses' sum in float64."""
    e = np.exp(-np.abs(z))
    elementwise = np.maximum(z, 0) - z * targets + np.log1p(e)
    if dz is not None:
        sigmoid = np.where(z >= 0, 1, e) / (1 + e)
        np.multiply(sigmoid - targets, grad_scale, out=dz)
    if losses is not None:
        losses[...] = elementwise
    return float(np.sum(elementwise, dtype=np.float64))


def mse(dpred, losses, pred, target, grad_scale):
    """Elementwise on 1-D arrays: loss = (pred - target)^2, dpred = 2 (pred - target).
    Writes losses and dpred when each is an array (None skips it); returns the losses' sum in float64."""
    diff = pred - target
    if dpred is not None:
        np.multiply(diff, 2 * grad_scale, out=dpred)
    squared = np.square(diff, out=diff if losses is None else losses)
    return float(np.sum(squared, dtype=np.float64))
