import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradkernels as gk
import oracle
from helpers import LAYOUTS, assert_close, layout, unchanged

SHAPES = [(1,), (6,), (1, 1), (4, 7), (2, 3, 5), (3, 1), (0, 4), (2, 0, 3), (3, 0)]


def _logits(rng, shape, dtype, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_softmax_and_log_softmax_match_closed_form(bk, dtype, rng, shape):
    z = _logits(rng, shape, dtype)
    with unchanged(z):
        p, logp = bk.softmax(z), bk.log_softmax(z)
    assert p.dtype == logp.dtype == dtype and p.shape == logp.shape == shape
    assert_close(p, oracle.softmax(z), dtype)
    assert_close(logp, oracle.log_softmax(z), dtype)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_backwards_match_closed_form(bk, dtype, rng, shape):
    z, g = _logits(rng, shape, dtype), _logits(rng, shape, dtype)
    p, logp = bk.softmax(z), bk.log_softmax(z)
    with unchanged(g, p, logp):
        dz_soft, dz_log = bk.softmax_backward(g, p), bk.log_softmax_backward(g, logp)
    p64, g64 = oracle.f64(p), oracle.f64(g)
    assert_close(dz_soft, p64 * (g64 - (g64 * p64).sum(-1, keepdims=True)), dtype)
    assert_close(dz_log, g64 - np.exp(oracle.f64(logp)) * g64.sum(-1, keepdims=True), dtype)


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 2, 3)], ids=str)
def test_backwards_against_finite_differences(bk, rng, shape):
    z = 2 * rng.standard_normal(shape)
    gk.gradcheck(bk.softmax, lambda g, a: bk.softmax_backward(g, bk.softmax(a)), z)
    gk.gradcheck(bk.log_softmax, lambda g, a: bk.log_softmax_backward(g, bk.log_softmax(a)), z)


@pytest.mark.parametrize("kind", LAYOUTS)
def test_layouts(bk, dtype, rng, kind):
    z, g = _logits(rng, (5, 6), dtype), _logits(rng, (5, 6), dtype)
    p, logp = bk.softmax(z), bk.log_softmax(z)
    np.testing.assert_array_equal(bk.softmax(layout(z, kind)), p)
    np.testing.assert_array_equal(bk.log_softmax(layout(z, kind)), logp)
    np.testing.assert_array_equal(bk.softmax_backward(layout(g, kind), layout(p, kind)), bk.softmax_backward(g, p))
    np.testing.assert_array_equal(bk.log_softmax_backward(layout(g, kind), logp), bk.log_softmax_backward(g, logp))


def test_extreme_logits_stay_finite(bk, dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [3e38, 0.0, -3e37]], dtype)
    with np.errstate(all="raise"):  # IEEE results, never floating-point exceptions
        p, logp = bk.softmax(z), bk.log_softmax(z)
    assert np.all(np.isfinite(p)) and np.all(np.isfinite(logp))
    np.testing.assert_array_equal(p[0], [1, 0, 0])
    assert_close(p[1], [1 / 3] * 3, dtype)
    assert_close(logp[0], [0, -2e4, -1e4], dtype)
    assert_close(logp[2], [0, -3e38, -3.3e38], dtype)
    assert_close(p.sum(-1), np.ones(3), dtype)


def test_log_softmax_overflows_to_minus_inf_like_the_exact_value(bk, dtype):
    # The exact log p of the last class is -6e38, beyond float32's range: -inf is its rounding.
    z = np.array([3e38, 0.0, -3e38], dtype)
    logp = bk.log_softmax(z)
    assert logp[0] == 0 and logp[2] == (-np.inf if dtype == np.float32 else -6e38)


def test_nan_poisons_only_its_row(bk, dtype):
    z = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]], dtype)
    for result in (bk.softmax(z), bk.log_softmax(z)):
        assert np.all(np.isnan(result[0])) and np.all(np.isfinite(result[1]))
    g = np.ones_like(z)
    dz = bk.softmax_backward(g, bk.softmax(z))
    assert np.all(np.isnan(dz[0])) and np.all(np.isfinite(dz[1]))


def test_rows_sum_to_one_for_long_rows(bk, dtype, rng):
    z = _logits(rng, (3, 32000), dtype, scale=5.0)
    p = bk.softmax(z)
    assert_close(p.sum(-1, dtype=np.float64), np.ones(3), dtype)
    assert_close(p, oracle.softmax(z), dtype)


def test_out_and_in_place(bk, dtype, rng):
    z = _logits(rng, (4, 5), dtype)
    expected = bk.softmax(z)
    out = np.empty((4, 10), dtype)[:, ::2]
    assert bk.softmax(z, out=out) is out
    np.testing.assert_array_equal(out, expected)
    assert bk.softmax(z, out=z) is z
    np.testing.assert_array_equal(z, expected)
    g = _logits(rng, (4, 5), dtype)
    expected = bk.log_softmax_backward(g, z)
    bk.log_softmax_backward(g, z, out=g)
    np.testing.assert_array_equal(g, expected)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # bk is the same for every example
@given(z=hnp.arrays(st.sampled_from([np.float32, np.float64]), hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=6),
                    elements=st.floats(-30, 30, width=32)))
def test_random_shapes(bk, z):
    assert_close(bk.softmax(z), oracle.softmax(z), z.dtype)
    assert_close(bk.log_softmax(z), oracle.log_softmax(z), z.dtype)
