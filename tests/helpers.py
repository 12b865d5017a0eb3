"""Shared test helpers: documented tolerances, layouts, and input-preservation checks."""

import contextlib

import numpy as np

from gradkernels._selftest import TOLERANCES


def assert_close(actual, expected, dtype, *, scale=None):
    """|actual - expected| <= rtol |expected| + atol * scale + tiny elementwise, with the dtype's
    documented tolerances; `scale` defaults to max |expected| (so atol is relative to the array's
    magnitude), and tiny is the dtype's smallest normal number (subnormal results carry fewer bits)."""
    tol = TOLERANCES[np.dtype(dtype)]
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg="NaN positions differ")
    np.testing.assert_array_equal(actual[~finite], expected[~finite], err_msg="non-finite values differ")
    if scale is None:
        scale = np.max(np.abs(expected[finite]), initial=0.0)
    bound = tol["rtol"] * np.abs(expected[finite]) + tol["atol"] * scale + np.finfo(dtype).tiny
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
