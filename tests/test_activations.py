import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradkernels as gk
import oracle
from helpers import LAYOUTS, assert_close, layout, unchanged

SHAPES = [(), (1,), (7,), (3, 5), (2, 3, 4), (0,), (4, 0, 3)]

FORWARD = {
    "relu": (lambda bk, x: bk.relu(x), oracle.relu),
    "leaky_relu": (lambda bk, x: bk.leaky_relu(x, 0.2), lambda x: oracle.leaky_relu(x, 0.2)),
    "sigmoid": (lambda bk, x: bk.sigmoid(x), oracle.sigmoid),
    "tanh": (lambda bk, x: bk.tanh(x), oracle.tanh),
}

# backward(bk, dy, x) and its closed form closed(bk, dy, x). Backwards that start from the forward's
# output get, in the closed form too, the y the backend computed (so float32 rounding of y is shared).
BACKWARD = {
    "relu": (lambda bk, dy, x: bk.relu_backward(dy, bk.relu(x)), lambda bk, dy, x: oracle.relu_grad(dy, x)),
    "relu_from_mask": (lambda bk, dy, x: bk.relu_backward_from_mask(dy, bk.relu_with_mask(x)[1]),
                       lambda bk, dy, x: oracle.relu_grad(dy, x)),
    "leaky_relu": (lambda bk, dy, x: bk.leaky_relu_backward(dy, x, 0.2),
                   lambda bk, dy, x: oracle.leaky_relu_grad(dy, x, 0.2)),
    "sigmoid": (lambda bk, dy, x: bk.sigmoid_backward(dy, bk.sigmoid(x)),
                lambda bk, dy, x: oracle.f64(dy) * oracle.f64(bk.sigmoid(x)) * (1 - oracle.f64(bk.sigmoid(x)))),
    "tanh": (lambda bk, dy, x: bk.tanh_backward(dy, bk.tanh(x)),
             lambda bk, dy, x: oracle.f64(dy) * (1 - oracle.f64(bk.tanh(x))) * (1 + oracle.f64(bk.tanh(x)))),
}


def _sample(rng, shape, dtype, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(dtype)


@pytest.mark.parametrize("name", FORWARD)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward_matches_closed_form(bk, dtype, rng, name, shape):
    run, closed = FORWARD[name]
    x = _sample(rng, shape, dtype)
    with unchanged(x):
        y = run(bk, x)
    assert y.dtype == dtype and y.shape == shape
    assert_close(y, closed(x), dtype)


@pytest.mark.parametrize("name", BACKWARD)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_backward_matches_closed_form(bk, dtype, rng, name, shape):
    run, closed = BACKWARD[name]
    x, dy = _sample(rng, shape, dtype), _sample(rng, shape, dtype)
    with unchanged(x, dy):
        dx = run(bk, dy, x)
    assert dx.dtype == dtype and dx.shape == shape
    assert_close(dx, closed(bk, dy, x), dtype)


@pytest.mark.parametrize("name", BACKWARD)
def test_backward_against_finite_differences(bk, rng, name):
    forward = {"relu_from_mask": "relu"}.get(name, name)
    x = rng.standard_normal((4, 5))
    x = np.where(np.abs(x) < 0.1, 0.5, x)  # no samples at the kinks of (leaky) ReLU
    gk.gradcheck(lambda a: FORWARD[forward][0](bk, a), lambda g, a: BACKWARD[name][0](bk, g, a), x)


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("name", BACKWARD)
def test_layouts_give_the_contiguous_result(bk, dtype, rng, name, kind):
    x, dy = _sample(rng, (6, 5), dtype), _sample(rng, (6, 5), dtype)
    expected = BACKWARD[name][0](bk, dy, x)
    x_l, dy_other = layout(x, kind), layout(dy, "F" if kind == "C" else "C")
    np.testing.assert_array_equal(BACKWARD[name][0](bk, dy_other, x_l), expected)
    if name in FORWARD:
        np.testing.assert_array_equal(FORWARD[name][0](bk, x_l), FORWARD[name][0](bk, x))


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # bk is the same for every example
@given(data=st.data())
def test_random_shapes_all_activations(bk, data):
    x = data.draw(hnp.arrays(st.sampled_from([np.float32, np.float64]),
                             hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
                             elements=st.floats(-50, 50, width=32)), label="x")
    dy = data.draw(hnp.arrays(x.dtype, x.shape, elements=st.floats(-50, 50, width=32)), label="dy")
    for run, closed in FORWARD.values():
        assert_close(run(bk, x), closed(x), x.dtype)
    for run, closed in BACKWARD.values():
        assert_close(run(bk, dy, x), closed(bk, dy, x), x.dtype)


def test_relu_mask_bits_are_packbits_of_the_c_order(bk, rng, dtype):
    for shape in [(13,), (3, 5), (2, 3, 7), (8,), (0,)]:
        x = _sample(rng, shape, dtype)
        x.flat[::4] = 0  # zero is not > 0: its bit is clear
        for arr in (x, np.asfortranarray(x), layout(x, "strided")):
            y, mask = bk.relu_with_mask(arr)
            assert mask.dtype == np.uint8 and mask.shape == ((x.size + 7) // 8,)
            np.testing.assert_array_equal(mask, np.packbits(x.ravel() > 0, bitorder="little"))
            np.testing.assert_array_equal(y, bk.relu(x))


def test_relu_from_mask_equals_relu_backward_on_every_layout(bk, rng, dtype):
    x, dy = _sample(rng, (5, 9), dtype), _sample(rng, (5, 9), dtype)
    _, mask = bk.relu_with_mask(x)
    expected = bk.relu_backward(dy, bk.relu(x))
    for kind in LAYOUTS:
        np.testing.assert_array_equal(bk.relu_backward_from_mask(layout(dy, kind), mask), expected)


def test_relu_derivative_at_zero_is_zero(bk, dtype):
    x = np.array([-1.0, -0.0, 0.0, 1e-30, 2.0], dtype)
    dy = np.ones_like(x)
    np.testing.assert_array_equal(bk.relu_backward(dy, bk.relu(x)), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(bk.relu_backward_from_mask(dy, bk.relu_with_mask(x)[1]), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(bk.leaky_relu_backward(dy, x, 0.25), [0.25, 0.25, 0.25, 1, 1])


def test_relu_backward_selects_so_nan_does_not_leak_through_the_cut(bk, dtype):
    y = np.array([0.0, 0.0, 1.0, np.nan], dtype)
    dy = np.array([np.nan, np.inf, np.nan, 5.0], dtype)
    dx = bk.relu_backward(dy, y)
    np.testing.assert_array_equal(dx, np.array([0, 0, np.nan, 0], dtype))
    assert not np.signbit(bk.relu_backward(np.array([-3.0], dtype), np.array([0.0], dtype))[0])


def test_nan_and_inf_follow_the_formulas(bk, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 1e4, -1e4, 0.0], dtype)
    np.testing.assert_array_equal(bk.relu(x), np.array([np.nan, np.inf, 0, 1e4, 0, 0], dtype))
    np.testing.assert_array_equal(bk.sigmoid(x), np.array([np.nan, 1, 0, 1, 0, 0.5], dtype))
    np.testing.assert_array_equal(bk.tanh(x), np.array([np.nan, 1, -1, 1, -1, 0], dtype))
    np.testing.assert_array_equal(bk.leaky_relu(x, 0.5), np.array([np.nan, np.inf, -np.inf, 1e4, -5e3, 0], dtype))
    assert np.isnan(bk.relu_with_mask(x)[0][0]) and bk.relu_with_mask(x)[1][0] == 0b00001010


def test_sigmoid_is_accurate_in_both_tails(bk, dtype):
    x = np.array([-80.0, -30.0, -10.0, 10.0, 30.0], dtype)
    assert_close(bk.sigmoid(x), oracle.sigmoid(x), dtype)
    assert bk.sigmoid(x)[0] > 0  # e^-80 is a normal number in float32 and float64


@pytest.mark.parametrize("name", FORWARD)
def test_out_receives_the_result_and_is_returned(bk, dtype, rng, name):
    run = FORWARD[name][0]
    x = _sample(rng, (4, 6), dtype)
    expected = run(bk, x)
    kwargs = {"negative_slope": 0.2} if name == "leaky_relu" else {}
    fn = getattr(bk, name)
    for out in (np.empty_like(x), np.empty((4, 6), dtype, order="F"), np.empty((4, 12), dtype)[:, ::2]):
        result = fn(x, out=out, **kwargs)
        assert result is out
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("name", FORWARD)
def test_out_may_be_the_input(bk, dtype, rng, name):
    kwargs = {"negative_slope": 0.2} if name == "leaky_relu" else {}
    x = _sample(rng, (5, 7), dtype)
    expected = getattr(bk, name)(x, **kwargs)
    assert getattr(bk, name)(x, out=x, **kwargs) is x
    np.testing.assert_array_equal(x, expected)


def test_out_partially_overlapping_the_input_is_still_correct(bk, dtype, rng):
    buf = _sample(rng, 20, dtype)
    x = buf[:15].copy()
    dy = buf[:15]
    expected = bk.tanh_backward(x, dy.copy())
    out = buf[5:]
    bk.tanh_backward(x, dy, out=out)
    np.testing.assert_array_equal(out, expected)


def test_backward_out_may_be_an_input(bk, dtype, rng):
    x, dy = _sample(rng, 33, dtype), _sample(rng, 33, dtype)
    y = bk.sigmoid(x)
    expected = bk.sigmoid_backward(dy, y)
    bk.sigmoid_backward(dy, y, out=y)
    np.testing.assert_array_equal(y, expected)
    _, mask = bk.relu_with_mask(x)
    expected = bk.relu_backward_from_mask(dy, mask)
    bk.relu_backward_from_mask(dy, mask, out=dy)
    np.testing.assert_array_equal(dy, expected)


def test_array_likes_are_accepted(bk):
    np.testing.assert_array_equal(bk.relu([-1.0, 2.0]), [0.0, 2.0])
    assert bk.sigmoid(0.0).shape == ()


def test_byte_swapped_input_is_read_correctly(bk, rng):
    x = rng.standard_normal(10)
    np.testing.assert_array_equal(bk.tanh(x.astype(">f8")), bk.tanh(x))
