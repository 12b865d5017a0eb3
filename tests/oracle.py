"""Naive float64 formulas, written independently of gradkernels' kernels, used as the oracle.

Clarity over speed and over range: the softmax oracle does not shift by the row max, so it is
valid only for moderate logits (|z| < 300); the cross-entropy oracle loops over rows and classes
and follows PyTorch's documented rules term by term.
"""

import math

import numpy as np


def f64(a):
    return np.asarray(a, dtype=np.float64)


def relu(x):
    x = f64(x)
    return np.where(np.isnan(x), x, np.where(x > 0, x, 0.0))


def relu_grad(dy, y):
    return np.where(f64(y) > 0, f64(dy), 0.0)


def leaky_relu(x, a):
    x = f64(x)
    return np.where(x > 0, x, a * x)


def leaky_relu_grad(dy, x, a):
    return np.where(f64(x) > 0, f64(dy), a * f64(dy))


def sigmoid(x):
    return np.vectorize(otypes=[float], pyfunc=lambda v: 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v)))(f64(x))


def tanh(x):
    return np.vectorize(math.tanh, otypes=[float])(f64(x))


def softmax(z):
    e = np.exp(f64(z))
    return e / e.sum(axis=-1, keepdims=True)


def log_softmax(z):
    return np.log(softmax(z))


def cross_entropy(z, labels, weight=None, reduction="mean", ignore_index=-100, label_smoothing=0.0):
    """PyTorch's F.cross_entropy over the last axis, row by row. Returns (loss, grad of the reduced loss)."""
    z = f64(z)
    classes = z.shape[-1]
    rows = z.reshape(-1, classes)
    soft = np.asarray(labels).dtype.kind == "f"
    targets = f64(labels).reshape(-1, classes) if soft else np.asarray(labels).reshape(-1)
    w = np.ones(classes) if weight is None else f64(weight)
    eps = label_smoothing
    losses = np.zeros(len(rows))
    grads = np.zeros_like(rows)
    denominator = 0.0
    for r, row in enumerate(rows):
        p = softmax(row)
        logp = np.log(p)
        if soft:
            q = (1 - eps) * targets[r] + eps / classes
            denominator += 1
        else:
            t = int(targets[r])
            if t == ignore_index:
                continue
            q = np.full(classes, eps / classes)
            q[t] += 1 - eps
            denominator += w[t]
        losses[r] = -sum(w[j] * q[j] * logp[j] for j in range(classes))
        grads[r] = sum(w * q) * p - w * q
    shape = z.shape[:-1]
    if reduction == "none":
        return losses.reshape(shape), grads.reshape(z.shape)
    if reduction == "sum":
        return losses.sum(), grads.reshape(z.shape)
    if denominator == 0:
        return math.nan, np.zeros(z.shape)
    return losses.sum() / denominator, (grads / denominator).reshape(z.shape)


def bce_with_logits(z, t):
    """Per-element loss -t log sigmoid(z) - (1 - t) log(1 - sigmoid(z)) and its derivative."""
    z, t = f64(z), f64(t)
    s = sigmoid(z)
    loss = np.vectorize(otypes=[float], pyfunc=lambda zi, ti: max(zi, 0.0) - zi * ti + math.log1p(math.exp(-abs(zi))))(z, t)
    return loss, s - t


def reduce_elementwise(loss, grad, reduction):
    if reduction == "none":
        return loss, grad
    if reduction == "sum":
        return loss.sum(), grad
    n = loss.size
    return (loss.sum() / n if n else math.nan), grad / max(n, 1)
