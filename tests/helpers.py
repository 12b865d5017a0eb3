"""Shared test helpers: documented tolerances, layouts, and input-preservation checks."""

import contextlib

import numpy as np

from gradkernels._selftest import TOLERANCES


def assert_close(actual, expected, dtype, *, scale=None, error=None):
    """|actual - expected| <= rtol |expected| + atol * scale + tiny elementwise, with the dtype's
    documented tolerances; `scale` defaults to max |expected| (so atol is relative to the array's
    magnitude), and tiny is the dtype's smallest normal number (subnormal results carry fewer bits).
    A result that comes out of a matrix product passes `error`, the elementwise bound of its
    rounding (product_error), in place of atol * scale."""
    tol = TOLERANCES[np.dtype(dtype)]
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg="NaN positions differ")
    np.testing.assert_array_equal(actual[~finite], expected[~finite], err_msg="non-finite values differ")
    if scale is None:
        scale = np.max(np.abs(expected[finite]), initial=0.0)
    allowance = tol["atol"] * scale if error is None else np.broadcast_to(error, expected.shape)[finite]
    bound = tol["rtol"] * np.abs(expected[finite]) + allowance + np.finfo(dtype).tiny
    err = np.abs(actual[finite] - expected[finite])
    if err.size and not np.all(err <= bound):
        i = int(np.argmax(err - bound))
        raise AssertionError(
            f"max violation at flat index {i}: actual {actual[finite][i]!r}, expected {expected[finite][i]!r}, "
            f"error {err[i]:.3g} > bound {bound[i]:.3g} ({np.dtype(dtype)} tolerances {tol})"
        )


def layout(arr, kind):
    """`arr`'s values in the memory layout `kind`: C, F, strided (every other element of a larger
    buffer along each axis) or reversed (negative strides)."""
    if kind == "C":
        return np.ascontiguousarray(arr)
    if kind == "F":
        return np.asfortranarray(arr)
    if kind == "strided":
        big = np.zeros(tuple(2 * s for s in arr.shape), arr.dtype)
        view = big[tuple(slice(None, None, 2) for _ in arr.shape)]
        view[...] = arr
        return view
    if kind == "reversed":
        rev = np.ascontiguousarray(arr[tuple(slice(None, None, -1) for _ in arr.shape)])
        return rev[tuple(slice(None, None, -1) for _ in arr.shape)]
    raise ValueError(kind)


LAYOUTS = ["C", "F", "strided", "reversed"]


@contextlib.contextmanager
def unchanged(*arrays):
    """Assert that the block leaves every given array bit-for-bit as it was."""
    before = [a.copy() for a in arrays]
    yield
    for i, (a, b) in enumerate(zip(arrays, before, strict=True)):
        assert np.array_equal(a, b, equal_nan=True), f"input {i} was modified"


def product_error(a, b, dtype, *, plus=None):
    """The most that any evaluation of a @ b (+ plus) in `dtype` can be off, elementwise: k u (|a| @
    |b| + |plus|), u the dtype's unit roundoff and k the length of each sum (plus one for `plus`).
    It holds for every summation order, blocking and fused multiply-add, so for any BLAS kernel and
    thread count, where a bound from the result's own size does not: terms of either sign cancel
    to a result far smaller than they are. a and b are the exact operands (float64 copies)."""
    a, b = np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(b, np.float64))
    terms = a @ b
    length = a.shape[-1]
    if plus is not None:
        terms = terms + np.abs(np.asarray(plus, np.float64))
        length += 1
    return length * (np.finfo(dtype).eps / 2) * terms


def sum_error(a, dtype, axis=0):
    """product_error of the sum of `a` along `axis`."""
    a = np.abs(np.asarray(a, np.float64))
    return a.shape[axis] * (np.finfo(dtype).eps / 2) * a.sum(axis)


def linear_cross_entropy_error(x, w, b, labels, dtype, *, weight=None, reduction="mean", ignore_index=-100,
                               label_smoothing=0.0):
    """product_error's bounds for (loss, dx, dw, db) of linear_cross_entropy, or of the unfused
    linear -> softmax_cross_entropy -> linear_backward: the logits' own bound, carried through
    the softmax (whose gradient moves by at most 2 P max|dz| where P is the gradient's softmax
    term), then the backward products' bounds on the gradient's magnitude."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    b = None if b is None else np.asarray(b, np.float64)
    u = np.finfo(dtype).eps / 2
    z = x @ w if b is None else x @ w + b
    dz = product_error(x, w, dtype, plus=b) if x.shape[1] or b is not None else np.zeros_like(z)
    rows, classes = z.shape
    weight = np.ones(classes) if weight is None else np.asarray(weight, np.float64)
    labels = np.asarray(labels)
    kept = labels != ignore_index
    q = np.zeros_like(z)  # the smoothed targets of the kept rows
    q[kept] = label_smoothing / classes
    q[np.flatnonzero(kept), labels[kept]] += 1 - label_smoothing
    scale = 1.0
    if reduction == "mean" and kept.any():
        scale = 1.0 / weight[labels[kept]].sum()
    p = np.exp(z - z.max(axis=1, keepdims=True)) if rows and classes else z
    p = p / p.sum(axis=1, keepdims=True) if rows and classes else p
    softmax_term = scale * (q * weight).sum(axis=1, keepdims=True) * p  # P
    magnitude = softmax_term + scale * weight * q  # |gradient| <= this
    shift = dz.max(axis=1, keepdims=True, initial=0.0)
    dg = 2 * softmax_term * shift + 4 * u * magnitude
    loss = (magnitude * dz).sum() if reduction != "none" else (magnitude * dz).sum(axis=1) / scale
    dx = product_error(magnitude, w.T, dtype) + dg @ np.abs(w.T)
    dw = product_error(x.T, magnitude, dtype) + np.abs(x.T) @ dg
    db = sum_error(magnitude, dtype) + dg.sum(axis=0)
    return loss, dx, dw, db
