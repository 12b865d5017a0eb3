"""The fused linear ops against the unfused ones they replace: linear_relu (= relu(linear)),
linear_relu_backward (= linear_backward of relu_backward) and linear_cross_entropy (= linear, then
softmax_cross_entropy, then linear_backward), on every backend, and chunk by chunk."""

import itertools

import numpy as np
import pytest

import gradkernels as gk
from gradkernels import _ops
from helpers import LAYOUTS, assert_close, layout, linear_cross_entropy_error, product_error, sum_error, unchanged


def _layer(rng, dtype, n=9, d=5, h=7):
    x = rng.standard_normal((n, d)).astype(dtype)
    w = rng.standard_normal((d, h)).astype(dtype)
    b = rng.standard_normal(h).astype(dtype)
    return x, w, b


def _f64(*arrays):
    return [None if a is None else np.asarray(a, np.float64) for a in arrays]


# ---------------------------------------------------------------------------------------------
# linear_relu and its backward


@pytest.mark.parametrize("n,d,h", [(9, 5, 7), (1, 1, 1), (40, 33, 70)])
def test_linear_relu_is_relu_of_linear(bk, dtype, rng, n, d, h):
    x, w, b = _layer(rng, dtype, n, d, h)
    x64, w64, b64 = _f64(x, w, b)
    with unchanged(x, w, b):
        a, a_nobias = bk.linear_relu(x, w, b), bk.linear_relu(x, w)
    assert a.dtype == dtype and a.shape == (n, h)
    assert_close(a, np.maximum(x64 @ w64 + b64, 0), dtype, error=product_error(x64, w64, dtype, plus=b64))
    assert_close(a_nobias, np.maximum(x64 @ w64, 0), dtype, error=product_error(x64, w64, dtype))
    assert np.all(a >= 0) and np.any(a == 0)


@pytest.mark.parametrize("n,d,h", [(9, 5, 7), (1, 1, 1), (40, 33, 70)])
def test_linear_relu_backward_masks_then_backpropagates(bk, dtype, rng, n, d, h):
    x, w, b = _layer(rng, dtype, n, d, h)
    a = bk.linear_relu(x, w, b)
    da = rng.standard_normal(a.shape).astype(dtype)
    with unchanged(da, a, x, w):
        dx, dw, db = bk.linear_relu_backward(da, a, x, w)
    dz = np.where(a > 0, da, 0).astype(np.float64)
    x64, w64 = _f64(x, w)
    assert dx.dtype == dw.dtype == db.dtype == dtype
    assert_close(dx, dz @ w64.T, dtype, error=product_error(dz, w64.T, dtype))
    assert_close(dw, x64.T @ dz, dtype, error=product_error(x64.T, dz, dtype))
    assert_close(db, dz.sum(0), dtype, error=sum_error(dz, dtype))
    dx2, dw2, no_db = bk.linear_relu_backward(da, a, x, w, with_bias=False)
    assert no_db is None
    np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_array_equal(dw2, dw)


def test_linear_relu_against_finite_differences(bk, rng):
    x, w, b = _layer(rng, np.float64)
    # Finite differences (steps of 1e-6) see the derivative only away from the kink at 0.
    assert np.abs(x @ w + b).min() > 1e-3

    def backward(g, x_, w_, b_):
        return bk.linear_relu_backward(g, bk.linear_relu(x_, w_, b_), x_, w_)

    gk.gradcheck(bk.linear_relu, backward, x, w, b)


def test_linear_relu_backward_selects_so_a_nan_gradient_is_cut_off(bk, dtype):
    x = np.array([[1.0], [-1.0]], dtype)
    w = np.ones((1, 1), dtype)
    a = bk.linear_relu(x, w)
    da = np.array([[2.0], [np.nan]], dtype)
    dx, dw, db = bk.linear_relu_backward(da, a, x, w)
    assert dx.tolist() == [[2.0], [0.0]] and dw.tolist() == [[2.0]] and db.tolist() == [2.0]


def test_linear_relu_keeps_nan(bk, dtype):
    x = np.array([[np.nan, 1.0]], dtype)
    a = bk.linear_relu(x, np.ones((2, 2), dtype), np.array([-5.0, 1.0], dtype))
    assert np.isnan(a).all()


@pytest.mark.parametrize("kind", LAYOUTS)
def test_linear_relu_layouts(bk, dtype, rng, kind):
    x, w, b = _layer(rng, dtype)
    a = bk.linear_relu(x, w, b)
    da = rng.standard_normal(a.shape).astype(dtype)
    grads = bk.linear_relu_backward(da, a, x, w)
    x64, w64, b64 = _f64(x, w, b)
    assert_close(bk.linear_relu(layout(x, kind), layout(w, kind), layout(b, kind)), a, dtype,
                 error=2 * product_error(x64, w64, dtype, plus=b64))
    dz = np.where(a > 0, da, 0).astype(np.float64)
    errors = [2 * product_error(dz, w64.T, dtype), 2 * product_error(x64.T, dz, dtype), 2 * sum_error(dz, dtype)]
    for da_kind, a_kind in ((kind, kind), (kind, "C"), ("C", kind)):
        got = bk.linear_relu_backward(layout(da, da_kind), layout(a, a_kind), layout(x, kind), layout(w, kind))
        for g, want, error in zip(got, grads, errors, strict=True):
            assert_close(g, want, dtype, error=error)


def test_linear_relu_out(bk, dtype, rng):
    x, w, b = _layer(rng, dtype)
    expected = bk.linear_relu(x, w, b)
    for out in (np.empty((9, 7), dtype), np.empty((9, 7), dtype, order="F"), np.empty((9, 14), dtype)[:, ::2]):
        assert bk.linear_relu(x, w, b, out=out) is out
        np.testing.assert_array_equal(out, expected)
    square = rng.standard_normal((4, 4)).astype(dtype)
    expected = bk.linear_relu(square, square.T.copy())
    bk.linear_relu(square, square.T.copy(), out=square)  # out is an input of the GEMM
    np.testing.assert_array_equal(square, expected)


@pytest.mark.parametrize("n,d,h", [(0, 3, 2), (4, 0, 2), (4, 3, 0)])
def test_linear_relu_degenerate_shapes(bk, dtype, rng, n, d, h):
    x, w, b = _layer(rng, dtype, n, d, h)
    a = bk.linear_relu(x, w, b)
    assert_close(a, np.maximum(x.astype(float) @ w.astype(float) + b, 0), dtype)  # no products: exact
    da = rng.standard_normal((n, h)).astype(dtype)
    dx, dw, db = bk.linear_relu_backward(da, a, x, w)
    assert (dx.shape, dw.shape, db.shape) == ((n, d), (d, h), (h,))
    assert np.all(dx == 0) and np.all(dw == 0)
    dz = np.where(a > 0, da, 0).astype(float)
    assert_close(db, dz.sum(0), dtype, error=sum_error(dz, dtype))


def test_linear_relu_validation(bk):
    x, w = np.ones((3, 2)), np.ones((2, 4))
    a = bk.linear_relu(x, w)
    with pytest.raises(ValueError, match="a has shape"):
        bk.linear_relu_backward(np.ones((3, 4)), np.ones((4, 3)), x, w)
    with pytest.raises(ValueError, match="da has shape"):
        bk.linear_relu_backward(np.ones((3, 5)), a, x, w)
    with pytest.raises(TypeError, match="dtype"):
        bk.linear_relu_backward(np.ones((3, 4)), a.astype(np.float32), x, w)
    with pytest.raises(ValueError, match="x's columns"):
        bk.linear_relu(x, np.ones((3, 4)))


# ---------------------------------------------------------------------------------------------
# linear_cross_entropy


def _classification(rng, dtype, n=23, d=6, c=11):
    x, w, b = _layer(rng, dtype, n, d, c)
    labels = rng.integers(0, c, n)
    labels[1 : n : max(1, n // 2)] = -100  # two ignored rows
    weight = rng.uniform(0.5, 2.0, c).astype(dtype)
    return x, w, b, labels, weight


def _unfused(bk, x, w, b, labels, **options):
    loss, g = bk.softmax_cross_entropy(bk.linear(x, w, b), labels, **options)
    return (loss, *bk.linear_backward(g, x, w, with_bias=b is not None))


def _assert_results_close(got, want, dtype, x, w, b, labels, **options):
    """Two results of (loss, dx, dw, db) for these operands, each within linear_cross_entropy_error
    of the exact value."""
    assert len(got) == len(want) == 4
    errors = linear_cross_entropy_error(x, w, b, labels, dtype, **options)
    for g, w_, error in zip(got, want, errors, strict=True):
        if w_ is None:
            assert g is None
        else:
            assert np.asarray(g).dtype == dtype
            assert_close(g, w_, dtype, error=2 * error)


@pytest.mark.parametrize("reduction,smoothing,weighted",
                         list(itertools.product(("mean", "sum", "none"), (0.0, 0.2), (False, True))))
def test_linear_cross_entropy_is_the_unfused_path(bk, dtype, rng, reduction, smoothing, weighted):
    x, w, b, labels, weight = _classification(rng, dtype)
    options = dict(reduction=reduction, label_smoothing=smoothing, weight=weight if weighted else None)
    with unchanged(x, w, b, labels, weight):
        got = bk.linear_cross_entropy(x, w, b, labels, chunk_size=5, **options)
    _assert_results_close(got, _unfused(bk, x, w, b, labels, **options), dtype, x, w, b, labels, **options)


@pytest.mark.parametrize("chunk_size", [1, 2, 7, 22, 23, 24, 1000, None])
def test_linear_cross_entropy_is_the_same_for_every_chunk_size(bk, dtype, rng, chunk_size):
    x, w, b, labels, weight = _classification(rng, dtype)
    whole = bk.linear_cross_entropy(x, w, b, labels, weight=weight, chunk_size=len(x))
    _assert_results_close(bk.linear_cross_entropy(x, w, b, labels, weight=weight, chunk_size=chunk_size), whole, dtype,
                          x, w, b, labels, weight=weight)


@pytest.mark.parametrize("chunk_size", [5, None])
def test_linear_cross_entropy_with_grad_false_is_the_loss_alone(bk, dtype, rng, chunk_size):
    x, w, b, labels, weight = _classification(rng, dtype)
    for reduction, bias in itertools.product(("mean", "sum", "none"), (b, None)):
        options = dict(reduction=reduction, label_smoothing=0.1, weight=weight)
        with unchanged(x, w, b, labels, weight):
            got = bk.linear_cross_entropy(x, w, bias, labels, chunk_size=chunk_size, with_grad=False, **options)
        assert got[1:] == (None, None, None)
        want = bk.linear_cross_entropy(x, w, bias, labels, chunk_size=chunk_size, **options)
        assert_close(got[0], want[0], dtype, error=linear_cross_entropy_error(x, w, bias, labels, dtype, **options)[0])
    assert bk.linear_cross_entropy(x[:0], w, b, labels[:0], reduction="sum", with_grad=False) == (0, None, None, None)
    with pytest.raises(TypeError, match="with_grad must be a bool, got int"):
        bk.linear_cross_entropy(x, w, b, labels, with_grad=0)


def test_linear_cross_entropy_default_chunk_follows_the_memory_budget(bk, monkeypatch, rng):
    x, w, b, labels, _ = _classification(rng, np.float64, n=50, c=8)
    seen = []
    real = np.empty

    def spy(shape, *args, **kwargs):
        seen.append(shape)
        return real(shape, *args, **kwargs)

    monkeypatch.setattr(_ops, "LINEAR_CROSS_ENTROPY_CHUNK_BYTES", 3 * 8 * 8)
    monkeypatch.setattr(_ops.np, "empty", spy)
    bk.linear_cross_entropy(x, w, b, labels)
    assert (3, 8) in seen  # the logits of 3 rows of 8 float64 classes, never (50, 8)
    assert (50, 8) not in seen


def test_linear_cross_entropy_without_bias(bk, dtype, rng):
    x, w, _, labels, _ = _classification(rng, dtype)
    got = bk.linear_cross_entropy(x, w, None, labels, chunk_size=4)
    assert got[3] is None
    _assert_results_close(got, _unfused(bk, x, w, None, labels), dtype, x, w, None, labels)


def test_linear_cross_entropy_against_finite_differences(bk, rng):
    x, w, b, labels, weight = _classification(rng, np.float64, n=7, d=3, c=5)
    for reduction, smoothing in (("mean", 0.0), ("sum", 0.1)):
        def forward(x_, w_, b_, reduction=reduction, smoothing=smoothing):
            return bk.linear_cross_entropy(x_, w_, b_, labels, weight=weight, reduction=reduction,
                                           label_smoothing=smoothing, chunk_size=3)[0]

        def backward(g, x_, w_, b_, reduction=reduction, smoothing=smoothing):
            _, dx, dw, db = bk.linear_cross_entropy(x_, w_, b_, labels, weight=weight, reduction=reduction,
                                                    label_smoothing=smoothing, chunk_size=3)
            return g * dx, g * dw, g * db

        gk.gradcheck(forward, backward, x, w, b)


@pytest.mark.parametrize("kind", LAYOUTS)
def test_linear_cross_entropy_layouts(bk, dtype, rng, kind):
    x, w, b, labels, _ = _classification(rng, dtype)
    want = bk.linear_cross_entropy(x, w, b, labels, chunk_size=6)
    got = bk.linear_cross_entropy(layout(x, kind), layout(w, kind), layout(b, kind), layout(labels, kind), chunk_size=6)
    _assert_results_close(got, want, dtype, x, w, b, labels)


def test_linear_cross_entropy_all_rows_ignored(bk, dtype, rng):
    x, w, b, _, _ = _classification(rng, dtype)
    loss, dx, dw, db = bk.linear_cross_entropy(x, w, b, np.full(len(x), -100), chunk_size=4)
    assert np.isnan(loss)
    assert not dx.any() and not dw.any() and not db.any()


@pytest.mark.parametrize("n,d", [(0, 3), (5, 0), (0, 0)])
def test_linear_cross_entropy_degenerate_shapes(bk, dtype, rng, n, d):
    x, w, b, labels, _ = _classification(rng, dtype, n=n, d=d, c=4)
    got = bk.linear_cross_entropy(x, w, b, labels, chunk_size=2)
    assert (got[1].shape, got[2].shape, got[3].shape) == ((n, d), (d, 4), (4,))
    _assert_results_close(got, _unfused(bk, x, w, b, labels), dtype, x, w, b, labels)


def test_linear_cross_entropy_validation(bk, rng):
    x, w, b, labels, _ = _classification(rng, np.float64)
    with pytest.raises(ValueError, match="chunk_size"):
        bk.linear_cross_entropy(x, w, b, labels, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        bk.linear_cross_entropy(x, w, b, labels, chunk_size=2.5)
    with pytest.raises(TypeError, match="integer class indices"):
        bk.linear_cross_entropy(x, w, b, np.zeros((len(x), w.shape[1])))
    with pytest.raises(ValueError, match="labels has shape"):
        bk.linear_cross_entropy(x, w, b, labels[:-1])
    with pytest.raises(ValueError, match="outside"):
        bk.linear_cross_entropy(x, w, b, np.full(len(x), w.shape[1]))
    with pytest.raises(ValueError, match="weight"):
        bk.linear_cross_entropy(x, w, b, labels, weight=np.ones(3))
    with pytest.raises(ValueError, match="at least one column"):
        bk.linear_cross_entropy(x, w[:, :0], b[:0], labels)
    with pytest.raises(ValueError, match="b has shape"):
        bk.linear_cross_entropy(x, w, b[:-1], labels)


def test_linear_cross_entropy_split_across_calls_with_the_whole_denominator(bk, dtype, rng):
    x = rng.standard_normal((9, 5)).astype(dtype)
    w = rng.standard_normal((5, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    labels = np.array([0, 3, -100, 1, 2, 2, -100, 0, 1])
    whole = bk.linear_cross_entropy(x, w, b, labels)
    parts = [bk.linear_cross_entropy(x[s], w, b, labels[s], denominator=7) for s in (slice(0, 4), slice(4, 9))]
    parted = (dtype.type(sum(float(p[0]) for p in parts)), np.concatenate([p[1] for p in parts]), parts[0][2] + parts[1][2],
              parts[0][3] + parts[1][3])
    # the two parts' sums add one more rounding of their magnitudes, inside the doubled bounds
    _assert_results_close(parted, whole, dtype, x, w, b, labels)
