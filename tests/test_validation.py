"""Every rule of the shared validation layer: bad input in, the documented error out, nothing touched."""

import re

import numpy as np
import pytest

f32, f64 = np.float32, np.float64


def a(shape=(3, 4), dtype=f64):
    return np.ones(shape, dtype)


LABELS = np.array([0, 1, 2])

# op name -> (positional args builder by dtype, names of the float arguments in order)
FLOAT_ARGS = {
    "relu": (lambda d: (a(dtype=d),), ["x"]),
    "relu_backward": (lambda d: (a(dtype=d), a(dtype=d)), ["dy", "y"]),
    "relu_with_mask": (lambda d: (a(dtype=d),), ["x"]),
    "leaky_relu": (lambda d: (a(dtype=d),), ["x"]),
    "leaky_relu_backward": (lambda d: (a(dtype=d), a(dtype=d)), ["dy", "x"]),
    "sigmoid": (lambda d: (a(dtype=d),), ["x"]),
    "sigmoid_backward": (lambda d: (a(dtype=d), a(dtype=d)), ["dy", "y"]),
    "tanh": (lambda d: (a(dtype=d),), ["x"]),
    "tanh_backward": (lambda d: (a(dtype=d), a(dtype=d)), ["dy", "y"]),
    "softmax": (lambda d: (a(dtype=d),), ["z"]),
    "softmax_backward": (lambda d: (a(dtype=d), a(dtype=d)), ["dp", "p"]),
    "log_softmax": (lambda d: (a(dtype=d),), ["z"]),
    "log_softmax_backward": (lambda d: (a(dtype=d), a(dtype=d)), ["dlogp", "logp"]),
    "sigmoid_binary_cross_entropy": (lambda d: (a(dtype=d), a(dtype=d)), ["logits", "targets"]),
    "mse": (lambda d: (a(dtype=d), a(dtype=d)), ["pred", "target"]),
    "linear": (lambda d: (a((3, 4), d), a((4, 2), d), a((2,), d)), ["x", "w", "b"]),
    "linear_backward": (lambda d: (a((3, 2), d), a((3, 4), d), a((4, 2), d)), ["dy", "x", "w"]),
    "softmax_cross_entropy": (lambda d: (a(dtype=d), a(dtype=d) / 4), ["logits", "labels"]),
    "relu_backward_from_mask": (lambda d: (a(dtype=d), np.packbits(np.ones(12, bool), bitorder="little")), ["dy"]),
    "linear_relu": (lambda d: (a((3, 4), d), a((4, 2), d), a((2,), d)), ["x", "w", "b"]),
    "linear_relu_backward": (lambda d: (a((3, 2), d), a((3, 2), d), a((3, 4), d), a((4, 2), d)), ["da", "a", "x", "w"]),
    "linear_cross_entropy": (lambda d: (a((3, 4), d), a((4, 2), d), a((2,), d), np.array([0, 1, 1])), ["x", "w", "b"]),
}


@pytest.mark.parametrize("bad", [np.int64, np.int32, np.float16, np.bool_, np.complex128], ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("op", FLOAT_ARGS)
def test_non_float_data_raises_type_error_naming_the_argument(bk, op, bad):
    build, names = FLOAT_ARGS[op]
    for i, name in enumerate(names):
        if op == "softmax_cross_entropy" and name == "labels" and np.dtype(bad).kind in "iu":
            continue  # integer labels are class indices, not an error
        args = list(build(f64))
        args[i] = args[i].astype(bad)
        with pytest.raises(TypeError, match=rf"^{name} "):
            getattr(bk, op)(*args)


@pytest.mark.parametrize("op", FLOAT_ARGS)
def test_mixed_float_dtypes_raise_type_error_naming_the_argument(bk, op):
    build, names = FLOAT_ARGS[op]
    for i, name in enumerate(names[1:], start=1):
        args = list(build(f64))
        args[i] = args[i].astype(f32)
        with pytest.raises(TypeError, match=rf"^{name} is float32 but {names[0]} is float64: mixed float dtypes"):
            getattr(bk, op)(*args)


PAIRS = ["relu_backward", "leaky_relu_backward", "sigmoid_backward", "tanh_backward", "softmax_backward",
         "log_softmax_backward", "sigmoid_binary_cross_entropy", "mse"]


@pytest.mark.parametrize("op", PAIRS)
def test_shape_mismatch_names_both_shapes(bk, op):
    first, second = FLOAT_ARGS[op][1]
    with pytest.raises(ValueError, match=re.escape(f"{second} has shape (3, 5) but {first} has shape (3, 4)")):
        getattr(bk, op)(a((3, 4)), a((3, 5)))


def test_linear_shape_mismatches(bk):
    with pytest.raises(ValueError, match=re.escape("x has shape (3, 4) and w has shape (5, 2)")):
        bk.linear(a((3, 4)), a((5, 2)))
    with pytest.raises(ValueError, match=re.escape("b has shape (3,) but w has shape (4, 2); b must have shape (2,)")):
        bk.linear(a((3, 4)), a((4, 2)), a((3,)))
    with pytest.raises(ValueError, match=re.escape("b has shape () but w has shape (4, 1); b must have shape (1,)")):
        bk.linear(a((3, 4)), a((4, 1)), a(()))  # a 0-d bias is not taken for a 1-element one
    with pytest.raises(ValueError, match=re.escape("x must be 2-D (N, D), got shape (4,)")):
        bk.linear(a((4,)), a((4, 2)))
    with pytest.raises(ValueError, match=re.escape("w must be 2-D (D, H), got shape (4, 2, 1)")):
        bk.linear(a((3, 4)), a((4, 2, 1)))
    with pytest.raises(ValueError, match=re.escape("dy has shape (3, 3) but x has shape (3, 4) and w has shape (4, 2)")):
        bk.linear_backward(a((3, 3)), a((3, 4)), a((4, 2)))
    with pytest.raises(ValueError, match=re.escape("x has shape (3, 4) and w has shape (5, 2)")):
        bk.linear_backward(a((3, 2)), a((3, 4)), a((5, 2)))
    with pytest.raises(TypeError, match="with_bias must be a bool, got int"):
        bk.linear_backward(a((3, 2)), a((3, 4)), a((4, 2)), with_bias=1)


def test_softmax_family_needs_an_axis(bk):
    for op in ("softmax", "log_softmax"):
        with pytest.raises(ValueError, match="z must have at least one axis"):
            getattr(bk, op)(np.float64(1.0))
    with pytest.raises(ValueError, match="logits must have at least one axis"):
        bk.softmax_cross_entropy(np.float64(1.0), np.int64(0))


def test_label_out_of_range_names_position_and_value(bk):
    z = a((2, 3, 4))
    labels = np.zeros((2, 3), int)
    labels[1, 2] = 4
    with pytest.raises(ValueError, match=re.escape("labels[1, 2] = 4 is outside [0, 4) and is not ignore_index (-100)")):
        bk.softmax_cross_entropy(z, labels)
    labels[1, 2] = -1
    with pytest.raises(ValueError, match=re.escape("labels[1, 2] = -1 is outside [0, 4)")):
        bk.softmax_cross_entropy(z, labels)
    labels[1, 2] = -100
    bk.softmax_cross_entropy(z, labels)  # the ignore_index itself is fine
    with pytest.raises(ValueError, match=re.escape("labels[1, 2] = -100 is outside [0, 4) and is not ignore_index (-1)")):
        bk.softmax_cross_entropy(z, labels, ignore_index=-1)
    with pytest.raises(ValueError, match=re.escape("labels[0] = 200 is outside [0, 4)")):
        bk.softmax_cross_entropy(a((3, 4)), np.array([200, 0, 1], np.uint8))
    with pytest.raises(ValueError, match=re.escape(f"labels[0] = {2**63 + 1} is outside [0, 4)")):
        bk.softmax_cross_entropy(a((3, 4)), np.array([2**63 + 1, 0, 1], np.uint64))


def test_label_shapes_and_types(bk):
    with pytest.raises(ValueError, match=re.escape("labels has shape (4,) but logits has shape (3, 4); integer labels must have shape (3,)")):
        bk.softmax_cross_entropy(a((3, 4)), np.zeros(4, int))
    with pytest.raises(ValueError, match=re.escape("labels has shape (3, 5) but logits has shape (3, 4)")):
        bk.softmax_cross_entropy(a((3, 4)), a((3, 5)))
    with pytest.raises(TypeError, match="labels must be integer class indices or float class probabilities, got bool"):
        bk.softmax_cross_entropy(a((3, 4)), np.zeros(3, bool))
    with pytest.raises(ValueError, match=re.escape("logits must have at least one class; its last axis is empty (shape (3, 0))")):
        bk.softmax_cross_entropy(a((3, 0)), np.zeros(3, int))


def test_cross_entropy_options(bk):
    z, t = a((3, 4)), LABELS
    with pytest.raises(ValueError, match=re.escape("weight has shape (3,) but logits has shape (3, 4); weight must have shape (4,)")):
        bk.softmax_cross_entropy(z, t, weight=a((3,)))
    with pytest.raises(ValueError, match=re.escape("weight has shape () but logits has shape (3, 1)")):
        bk.softmax_cross_entropy(a((3, 1)), [0, 0, 0], weight=a(()))
    with pytest.raises(TypeError, match="weight is float32 but logits is float64"):
        bk.softmax_cross_entropy(z, t, weight=a((4,), f32))
    for eps in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="label_smoothing must be in \\[0, 1\\]"):
            bk.softmax_cross_entropy(z, t, label_smoothing=eps)
    with pytest.raises(TypeError, match="label_smoothing must be a real number, got str"):
        bk.softmax_cross_entropy(z, t, label_smoothing="0.1")
    with pytest.raises(TypeError, match="ignore_index must be an int, got float"):
        bk.softmax_cross_entropy(z, t, ignore_index=-100.0)
    with pytest.raises(ValueError, match="ignore_index must fit in int64"):
        bk.softmax_cross_entropy(z, t, ignore_index=2**64)


@pytest.mark.parametrize("op", ["softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mse"])
def test_unknown_reduction(bk, op):
    args = (a(), LABELS) if op == "softmax_cross_entropy" else (a(), a())
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum', 'none', got 'avg'"):
        getattr(bk, op)(*args, reduction="avg")


def test_negative_slope(bk):
    with pytest.raises(ValueError, match="negative_slope must be finite, got nan"):
        bk.leaky_relu(a(), float("nan"))
    with pytest.raises(TypeError, match="negative_slope must be a real number, got NoneType"):
        bk.leaky_relu_backward(a(), a(), None)


def test_mask_checks(bk):
    dy = a((3, 5))  # 15 elements pack into 2 bytes
    with pytest.raises(TypeError, match="mask must be uint8"):
        bk.relu_backward_from_mask(dy, np.zeros(2, np.int8))
    with pytest.raises(ValueError, match=re.escape("mask has shape (3,) but dy has 15 elements, which pack into (2,) bytes")):
        bk.relu_backward_from_mask(dy, np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match=re.escape("mask has shape (1, 2)")):
        bk.relu_backward_from_mask(dy, np.zeros((1, 2), np.uint8))


OUT_OPS = {
    "relu": lambda bk, **kw: bk.relu(a(), **kw),
    "relu_backward": lambda bk, **kw: bk.relu_backward(a(), a(), **kw),
    "relu_with_mask": lambda bk, **kw: bk.relu_with_mask(a(), **kw),
    "relu_backward_from_mask": lambda bk, **kw: bk.relu_backward_from_mask(a(), np.zeros(2, np.uint8), **kw),
    "leaky_relu": lambda bk, **kw: bk.leaky_relu(a(), **kw),
    "leaky_relu_backward": lambda bk, **kw: bk.leaky_relu_backward(a(), a(), **kw),
    "sigmoid": lambda bk, **kw: bk.sigmoid(a(), **kw),
    "sigmoid_backward": lambda bk, **kw: bk.sigmoid_backward(a(), a(), **kw),
    "tanh": lambda bk, **kw: bk.tanh(a(), **kw),
    "tanh_backward": lambda bk, **kw: bk.tanh_backward(a(), a(), **kw),
    "softmax": lambda bk, **kw: bk.softmax(a(), **kw),
    "softmax_backward": lambda bk, **kw: bk.softmax_backward(a(), a(), **kw),
    "log_softmax": lambda bk, **kw: bk.log_softmax(a(), **kw),
    "log_softmax_backward": lambda bk, **kw: bk.log_softmax_backward(a(), a(), **kw),
    "softmax_cross_entropy": lambda bk, **kw: bk.softmax_cross_entropy(a(), LABELS, **kw),
    "sigmoid_binary_cross_entropy": lambda bk, **kw: bk.sigmoid_binary_cross_entropy(a(), a(), **kw),
    "mse": lambda bk, **kw: bk.mse(a(), a(), **kw),
    "linear": lambda bk, **kw: bk.linear(a((3, 2)), a((2, 4)), **kw),
}


@pytest.mark.parametrize("op", OUT_OPS)
def test_bad_out(bk, op):
    call = OUT_OPS[op]
    with pytest.raises(ValueError, match=re.escape("out has shape (4, 3) but the result has shape (3, 4)")):
        call(bk, out=a((4, 3)))
    with pytest.raises(ValueError, match="out has dtype float32 but the result has dtype float64"):
        call(bk, out=a((3, 4), f32))
    read_only = a((3, 4))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="out is read-only"):
        call(bk, out=read_only)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray, got list"):
        call(bk, out=[[0.0] * 4] * 3)


@pytest.mark.parametrize("op", FLOAT_ARGS)
def test_read_only_inputs_are_fine(bk, op):
    args = FLOAT_ARGS[op][0](f64)
    expected = getattr(bk, op)(*[np.copy(arg) for arg in args])
    for arg in args:
        arg.flags.writeable = False
    result = getattr(bk, op)(*args)
    parts = lambda r: [np.asarray(p) for p in (r if isinstance(r, tuple) else (r,)) if p is not None]
    for got, want in zip(parts(result), parts(expected), strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_bad_call_writes_nothing(bk):
    out = np.full((3, 4), 7.0)
    with pytest.raises(ValueError):
        bk.softmax_cross_entropy(a(), np.array([0, 9, 1]), out=out)
    assert np.all(out == 7.0)
