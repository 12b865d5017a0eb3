"""Every rule of the shared validation layer: bad input in, the documented error out, nothing touched."""

import inspect
import re

import numpy as np
import pytest

from gradkernels import _catalog, _samples
from gradkernels._ops import OPS

f32, f64 = np.float32, np.float64


def a(shape=(3, 4), dtype=f64):
    return np.ones(shape, dtype)


LABELS = np.array([0, 1, 2])



def _args(op, dtype):
    """Valid positional arrays for `op`, made from its declaration; a cross-entropy's targets are
    class probabilities (float, so that the dtype rules apply to them)."""
    declared = _catalog.OP[op]
    made = list(_samples.arguments(declared, _samples.small(declared), dtype, np.random.default_rng(0)))
    for i, arg in enumerate(declared.arrays):
        if arg.values == "targets":
            made[i] = np.full(made[0].shape, 1 / made[0].shape[-1], dtype)
    return made


# op name -> the (position, name) of each argument the op takes as a float array only (or, for a
# cross-entropy's targets, as float probabilities when not integer classes)
FLOAT_ARGS = {op.name: [(i, arg.name) for i, arg in enumerate(op.arrays) if arg.is_float or arg.values == "targets"]
              for op in _catalog.OPS}


@pytest.mark.parametrize("bad", [np.int64, np.int32, np.float16, np.bool_, np.complex128], ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("op", FLOAT_ARGS)
def test_non_float_data_raises_type_error_naming_the_argument(bk, op, bad):
    for i, name in FLOAT_ARGS[op]:
        if _catalog.OP[op].arrays[i].values == "targets" and np.dtype(bad).kind in "iu":
            continue  # integer labels are class indices, not an error
        args = _args(op, f64)
        args[i] = args[i].astype(bad)
        with pytest.raises(TypeError, match=rf"^{name} "):
            getattr(bk, op)(*args)


@pytest.mark.parametrize("op", FLOAT_ARGS)
def test_mixed_float_dtypes_raise_type_error_naming_the_argument(bk, op):
    (_, first), *others = FLOAT_ARGS[op]
    for i, name in others:
        args = _args(op, f64)
        args[i] = args[i].astype(f32)
        with pytest.raises(TypeError, match=rf"^{name} is float32 but {first} is float64: mixed float dtypes"):
            getattr(bk, op)(*args)


# The ops of two float arrays of one shape
PAIRS = [op.name for op in _catalog.OPS
         if len(op.arrays) == 2 and all(arg.is_float for arg in op.arrays) and op.arrays[0].shape == op.arrays[1].shape]


@pytest.mark.parametrize("op", PAIRS)
def test_shape_mismatch_names_both_shapes(bk, op):
    first, second = (arg.name for arg in _catalog.OP[op].arrays)
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


# The ops that take out= (`_args` makes their results (3, 4))
OUT_OPS = [name for name, impl in OPS.items() if "out" in inspect.signature(impl).parameters]


@pytest.mark.parametrize("op", OUT_OPS)
def test_bad_out(bk, op):
    def call(bk, **kwargs):
        return getattr(bk, op)(*_args(op, f64), **kwargs)

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
    args = _args(op, f64)
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


@pytest.mark.parametrize("rows", [5, 3000], ids=["one bincount", "a min and a max"])
def test_the_label_check_answers_alike_below_and_above_its_bincount_bound(rows):
    from gradkernels import _validate

    labels = np.zeros(rows, np.int64)
    labels[1:4] = [1, 2, 3]
    assert _validate.labels_in_range(labels, 4, -100) is False  # no label can be the ignored one
    assert _validate.labels_in_range(labels, 4, 2) is True  # some label is
    assert _validate.labels_in_range(labels.astype(np.uint64), 4, 5) is False
    assert _validate.labels_in_range(labels.astype(np.uint8), 1000, -100) is False  # 1000 > uint8's range
    labels[2] = -100
    assert _validate.labels_in_range(labels, 4, -100) is True
    for bad in (4, -1, 2**62):  # the last would ask a histogram of every value for 32 EiB
        labels[-1] = bad
        with pytest.raises(ValueError, match=re.escape(f"labels[{rows - 1}] = {bad} is outside [0, 4)")):
            _validate.labels_in_range(labels, 4, -100)
    labels[2], labels[-1] = 2, 4  # a label beyond the classes that is ignore_index is fine
    assert _validate.labels_in_range(labels, 4, 4) is True
