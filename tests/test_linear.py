import numpy as np
import pytest

import gradkernels as gk
from helpers import LAYOUTS, assert_close, layout, product_error, sum_error, unchanged


def _problem(rng, dtype, n=6, d=4, h=3):
    x = rng.standard_normal((n, d)).astype(dtype)
    w = rng.standard_normal((d, h)).astype(dtype)
    b = rng.standard_normal(h).astype(dtype)
    dy = rng.standard_normal((n, h)).astype(dtype)
    return x, w, b, dy


def _f64(*arrays):
    return [np.asarray(a, np.float64) for a in arrays]


@pytest.mark.parametrize("n,d,h", [(6, 4, 3), (1, 1, 1), (33, 17, 9)])
def test_forward_and_backward_match_closed_form(bk, dtype, rng, n, d, h):
    x, w, b, dy = _problem(rng, dtype, n, d, h)
    x64, w64, b64, dy64 = _f64(x, w, b, dy)
    with unchanged(x, w, b, dy):
        y, y_nobias = bk.linear(x, w, b), bk.linear(x, w)
        dx, dw, db = bk.linear_backward(dy, x, w)
    assert y.dtype == dx.dtype == dw.dtype == db.dtype == dtype
    assert_close(y, x64 @ w64 + b64, dtype, error=product_error(x64, w64, dtype, plus=b64))
    assert_close(y_nobias, x64 @ w64, dtype, error=product_error(x64, w64, dtype))
    assert_close(dx, dy64 @ w64.T, dtype, error=product_error(dy64, w64.T, dtype))
    assert_close(dw, x64.T @ dy64, dtype, error=product_error(x64.T, dy64, dtype))
    assert_close(db, dy64.sum(0), dtype, error=sum_error(dy64, dtype))


def _errors(x, w, b, dy, dtype):
    """The product_error of linear(x, w, b) and of linear_backward(dy, x, w)'s dx, dw, db, doubled:
    for two results of the same dtype, each within its own from the exact value."""
    x, w, b, dy = _f64(x, w, b, dy)
    return 2 * product_error(x, w, dtype, plus=b), [2 * product_error(dy, w.T, dtype),
                                                     2 * product_error(x.T, dy, dtype), 2 * sum_error(dy, dtype)]


def test_without_bias_db_is_none(bk, dtype, rng):
    x, w, _, dy = _problem(rng, dtype)
    dx, dw, db = bk.linear_backward(dy, x, w, with_bias=False)
    assert db is None
    dx2, dw2, _ = bk.linear_backward(dy, x, w)
    np.testing.assert_array_equal(dx, dx2)
    np.testing.assert_array_equal(dw, dw2)


def test_without_dx_the_rest_is_the_same(bk, dtype, rng):
    x, w, _, dy = _problem(rng, dtype)
    a = bk.linear_relu(x, w)
    for backward, operands in ((bk.linear_backward, (dy, x, w)), (bk.linear_relu_backward, (dy, a, x, w))):
        full = backward(*operands)
        for with_bias in (True, False):
            dx, *rest = backward(*operands, with_bias=with_bias, with_dx=False)
            assert dx is None
            np.testing.assert_array_equal(rest[0], full[1])
            if with_bias:
                np.testing.assert_array_equal(rest[1], full[2])
            else:
                assert rest[1] is None
        with pytest.raises(TypeError, match="with_dx must be a bool, got int"):
            backward(*operands, with_dx=0)


@pytest.mark.parametrize("n", [6, 0])
def test_dw_is_laid_out_like_w(bk, dtype, rng, n):
    x, w, b, dy = _problem(rng, dtype, n=n)
    labels = rng.integers(0, w.shape[1], n)
    w_f = np.asfortranarray(w)
    for got, want in ((bk.linear_backward(dy, x, w_f)[1], bk.linear_backward(dy, x, w)[1]),
                      (bk.linear_relu_backward(dy, bk.linear_relu(x, w), x, w_f)[1],
                       bk.linear_relu_backward(dy, bk.linear_relu(x, w), x, w)[1]),
                      (bk.linear_cross_entropy(x, w_f, b, labels, chunk_size=4)[2],
                       bk.linear_cross_entropy(x, w, b, labels, chunk_size=4)[2])):
        assert got.flags.f_contiguous and want.flags.c_contiguous
        # the GEMM's other operand is dy, its masked dz or a cross-entropy gradient: |each| <= |dy| + 1
        assert_close(got, want, dtype, error=2 * product_error(*_f64(x.T, np.abs(dy) + 1), dtype))
    strided = np.ones((w.shape[0], 2 * w.shape[1]), dtype)[:, ::2]
    assert bk.linear_backward(dy, x, strided)[1].flags.c_contiguous


def test_against_finite_differences(bk, rng):
    x, w, b, _ = _problem(rng, np.float64)
    gk.gradcheck(bk.linear, lambda g, x_, w_, b_: bk.linear_backward(g, x_, w_), x, w, b)
    gk.gradcheck(bk.linear, lambda g, x_, w_: bk.linear_backward(g, x_, w_, with_bias=False)[:2], x, w)


@pytest.mark.parametrize("kind", LAYOUTS)
def test_layouts(bk, dtype, rng, kind):
    x, w, b, dy = _problem(rng, dtype)
    y = bk.linear(x, w, b)
    grads = bk.linear_backward(dy, x, w)
    y_error, grad_errors = _errors(x, w, b, dy, dtype)
    assert_close(bk.linear(layout(x, kind), layout(w, kind), layout(b, kind)), y, dtype, error=y_error)
    got_grads = bk.linear_backward(layout(dy, kind), layout(x, kind), layout(w, kind))
    for got, want, error in zip(got_grads, grads, grad_errors, strict=True):
        assert_close(got, want, dtype, error=error)


def test_out_receives_the_result(bk, dtype, rng):
    x, w, b, dy = _problem(rng, dtype)
    expected = bk.linear(x, w, b)
    for out in (np.empty((6, 3), dtype), np.empty((6, 3), dtype, order="F"), np.empty((6, 6), dtype)[:, ::2]):
        assert bk.linear(x, w, b, out=out) is out
        assert_close(out, expected, dtype, error=_errors(x, w, b, dy, dtype)[0])


def test_out_overlapping_an_input_is_still_correct(bk, dtype, rng):
    x = rng.standard_normal((4, 4)).astype(dtype)
    w = rng.standard_normal((4, 4)).astype(dtype)
    expected, error = bk.linear(x, w), 2 * product_error(x, w, dtype)
    bk.linear(x, w, out=x)  # BLAS must not read x while writing it
    assert_close(x, expected, dtype, error=error)


@pytest.mark.parametrize("n,d,h", [(0, 3, 2), (4, 0, 2), (4, 3, 0), (0, 0, 0)])
def test_degenerate_shapes(bk, dtype, rng, n, d, h):
    x, w, b, dy = _problem(rng, dtype, n, d, h)
    y = bk.linear(x, w, b)
    assert y.shape == (n, h)
    assert_close(y, np.broadcast_to(b.astype(np.float64), (n, h)) + (x.astype(float) @ w.astype(float)), dtype)
    dx, dw, db = bk.linear_backward(dy, x, w)
    assert (dx.shape, dw.shape, db.shape) == ((n, d), (d, h), (h,))
    assert np.all(dx == 0) and np.all(dw == 0)
    assert_close(db, dy.astype(np.float64).sum(0), dtype)


def test_bias_sum_is_accurate_in_float32(bk):
    # A million equal float32 rows: the rounding of a float32 running sum all goes one way and
    # ends about 1% off; float64 accumulation is exact to the tolerance.
    n = 1_000_000
    dy = np.full((n, 2), 0.1, np.float32)
    x, w = np.ones((n, 1), np.float32), np.ones((1, 2), np.float32)
    _, _, db = bk.linear_backward(dy, x, w)
    assert_close(db, np.full(2, n * np.float64(np.float32(0.1))), np.float32)  # not sum_error: far tighter
