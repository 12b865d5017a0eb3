"""Property-based fuzzing (hypothesis) of every op on every backend and dtype.

Each case draws shapes with empty and size-1 axes; values mixing ordinary numbers with ±0, ±Inf,
NaN, subnormals and the dtype's extremes; for every array, one of the layouts a caller can hand
over (C, Fortran, negative strides, every other element, a zero-stride broadcast view, a buffer
one byte off its alignment, read-only); and an `out` that is fresh, laid out in any of those ways,
the very memory of an input, or partly overlapping one. The case must give what the NumPy backend
gives on plain C-contiguous copies of the same values, within the documented tolerances, or raise
the same error with the same message before any kernel runs, even under np.seterr(all="raise");
and no input that was not passed as `out` may change.

Where a kernel sums many terms (a matrix product, the sums in the softmax backwards), a partial
sum that overflows depends on the order of summation, which each backend is free to choose: those
inputs draw their finite values from small multiples of 1/4, which every order sums exactly, and
keep ±0, ±Inf, NaN and subnormals, but not the dtype's extremes. And a cross-entropy's soft
targets are normal numbers: each backend multiplies a target by a weight and by a log-probability
in its own order, and a subnormal target, which has only a few bits, comes out of those products
rounded differently (50% apart, magnified by a large log-probability), which no tolerance on the
result can bound.
"""

import inspect
import types

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import gradkernels as gk
from gradkernels import _catalog, _samples
from gradkernels._ops import OPS
from helpers import assert_close, unchanged

REFERENCE = gk.backend("numpy")

# ---------------------------------------------------------------------------------------------
# Values


def _specials(dtype, extremes=True):
    f = np.finfo(dtype)
    values = [0.0, -0.0, np.inf, -np.inf, np.nan, f.smallest_subnormal, -f.smallest_subnormal, f.tiny, -f.tiny]
    return values + [f.max, -f.max] if extremes else values


def _pool(kind, dtype):
    """The element strategy of an input of `kind`, in `dtype`."""
    width = np.dtype(dtype).itemsize * 8
    if kind in ("any", "relu_output"):  # wherever the arithmetic is elementwise or max-shifted; a ReLU
        # backward masks by y > 0, which any value has an answer for
        return st.one_of(
            st.floats(-30, 30, width=width),
            st.sampled_from(_specials(dtype)),
            st.floats(allow_nan=False, allow_infinity=False, width=width),
        )
    if kind == "summed":  # operands of a sum over many terms
        return st.one_of(st.integers(-64, 64).map(lambda k: k / 4), st.sampled_from(_specials(dtype, extremes=False)))
    if kind == "probability":  # a sigmoid's output, a target probability
        return st.one_of(st.floats(0, 1, width=width), st.sampled_from([0.0, 1.0, 0.5, np.finfo(dtype).smallest_subnormal, np.nan]))
    if kind == "class_probability":  # a cross-entropy's soft target: normal numbers only (see above)
        return st.one_of(st.floats(0, 1, width=width, allow_subnormal=False), st.sampled_from([0.0, 1.0, 0.5, np.nan]))
    if kind == "tanh":  # a tanh's output
        return st.one_of(st.floats(-1, 1, width=width), st.sampled_from([-1.0, 1.0, 0.0, -0.0, np.nan]))
    if kind == "log_probability":  # a log_softmax's output
        return st.one_of(st.floats(-60, 0, width=width), st.sampled_from([-np.inf, 0.0, -0.0, np.nan]))
    if kind == "weight":  # class weights
        return st.one_of(st.floats(0, 10, width=width), st.just(0.0))
    raise ValueError(kind)


# ---------------------------------------------------------------------------------------------
# Layouts: each array is drawn as its values (C order) and the way the caller holds them.

LAYOUTS = ["C", "F", "reversed", "strided", "broadcast", "misaligned", "read-only"]


def _misaligned(values):
    raw = np.empty(values.nbytes + 1, np.uint8)
    arr = raw[1:].view(values.dtype).reshape(values.shape)
    arr[...] = values
    return arr


def _held(values, kind):
    """(the values the caller's array holds, the caller's array) for layout `kind`. A broadcast
    view repeats its first row, so the values it stands for are changed to match."""
    if kind == "C":
        return values, values.copy()
    if kind == "F":
        return values, np.copy(values, order="F")
    if kind == "reversed":
        flip = tuple(slice(None, None, -1) for _ in values.shape) + (Ellipsis,)  # a 0-d view, not a scalar
        return values, np.copy(values[flip], order="C")[flip]
    if kind == "strided":
        big = np.zeros(tuple(2 * s + 1 for s in values.shape), values.dtype)
        view = big[tuple(slice(1, None, 2) for _ in values.shape) + (Ellipsis,)]
        view[...] = values
        return values, view
    if kind == "broadcast":
        if values.ndim == 0 or values.shape[0] == 0:
            return _held(values, "read-only")
        view = np.broadcast_to(values[:1], values.shape)
        return view.copy(), view
    if kind == "misaligned":
        return values, _misaligned(values)
    if kind == "read-only":
        arr = values.copy()
        arr.setflags(write=False)
        return arr.copy(), arr
    raise ValueError(kind)


@st.composite
def _arrays(draw, dtype, shape, pool="any"):
    values = draw(hnp.arrays(dtype, shape, elements=_pool(pool, dtype)))
    return _held(values, draw(st.sampled_from(LAYOUTS)))


# ---------------------------------------------------------------------------------------------
# Cases: (positional arrays as (values, held) pairs, other keyword arguments, whether out= exists)


def _shapes(min_dims=0):
    return hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=0, max_side=5)


def _same_shape(draw, dtype, pools, min_dims=0):
    shape = draw(_shapes(min_dims))
    return [draw(_arrays(dtype, shape, pool)) for pool in pools]


def _slope(draw):
    return draw(st.sampled_from([0.01, 0.0, 1.0, -0.5, 2.0]))


def _reduction(draw):
    return draw(st.sampled_from(["mean", "sum", "none"]))


# The keyword options the fuzz suite varies, by name, wherever an op takes them
_OPTIONS = {"negative_slope": _slope, "reduction": _reduction, "with_bias": lambda draw: draw(st.booleans()),
            "with_dx": lambda draw: draw(st.booleans()), "with_grad": lambda draw: draw(st.booleans())}


def _declared(op):
    """The case of an op whose arguments are all float arrays, drawn as its declaration says: every
    dimension it names 0 to 5 long ("..." up to 3 axes, 2 beside a class axis), values of the
    declared kind, an optional array sometimes None, and any option in _OPTIONS."""
    names = {name for arg in op.arrays for name in arg.shape}
    options = [name for name in inspect.signature(OPS[op.name]).parameters if name in _OPTIONS]

    def case(draw, dtype):
        dims = {"...": draw(hnp.array_shapes(min_dims=0, max_dims=2 if "C" in names else 3, min_side=0, max_side=5))}
        dims.update((name, draw(st.integers(0, 5))) for name in sorted(names - {"..."}))
        arrays = [(None, None) if arg.optional and draw(st.booleans())
                  else draw(_arrays(dtype, _samples.shape_of(arg, dims), arg.values)) for arg in op.arrays]
        return arrays, {name: _OPTIONS[name](draw) for name in options}

    return case


def _relu_backward_from_mask(draw, dtype):
    (dy,) = _same_shape(draw, dtype, ["any"])
    n_bytes = (dy[0].size + 7) // 8 + draw(st.sampled_from([0, 0, 0, 1]))  # sometimes the wrong length
    mask = draw(hnp.arrays(np.uint8, n_bytes))
    held = draw(st.sampled_from(["C", "reversed", "strided", "read-only"]))
    return [dy, _held(mask, held)], {}


def _class_options(draw, dtype, classes):
    options = {"reduction": _reduction(draw), "label_smoothing": draw(st.sampled_from([0.0, 0.0, 0.1, 1.0]))}
    if draw(st.booleans()):
        options["weight"] = draw(_arrays(dtype, (classes,), "weight"))[1]
    return options


def _labels(draw, rows_shape, classes):
    """Integer labels, some ignored, and sometimes one out of range (the documented ValueError)."""
    ignore = draw(st.sampled_from([-100, 0, classes - 1]))
    valid = st.one_of(st.integers(0, classes - 1), st.just(ignore))
    labels = draw(hnp.arrays(np.int64, rows_shape, elements=valid))
    if labels.size and draw(st.integers(0, 9)) == 0:
        labels.flat[draw(st.integers(0, labels.size - 1))] = draw(st.sampled_from([-1, classes, 10**6]))
    dtype = draw(st.sampled_from([np.int64, np.int32, np.uint16])) if labels.min(initial=0) >= 0 else np.int64
    return labels.astype(dtype), ignore


def _softmax_cross_entropy(draw, dtype):
    shape = draw(_shapes(min_dims=1).filter(lambda s: s[-1] > 0))
    logits = draw(_arrays(dtype, shape))
    options = _class_options(draw, dtype, shape[-1])
    if draw(st.booleans()):
        target = draw(_arrays(dtype, shape, "class_probability"))
    else:
        labels, options["ignore_index"] = _labels(draw, shape[:-1], shape[-1])
        target = (labels, labels)
    return [logits, target], options


def _matrices(draw, dtype, *shapes):
    return [draw(_arrays(dtype, shape, "summed")) for shape in shapes]


def _linear_cross_entropy(draw, dtype):
    n, d, h = draw(st.integers(0, 5)), draw(st.integers(0, 5)), draw(st.integers(1, 5))
    x, w = _matrices(draw, dtype, (n, d), (d, h))
    b = _matrices(draw, dtype, (h,))[0] if draw(st.booleans()) else (None, None)
    labels, ignore = _labels(draw, (n,), h)
    options = _class_options(draw, dtype, h)
    options.update(ignore_index=ignore, chunk_size=draw(st.sampled_from([None, 1, 2, 7])))
    return [x, w, b, (labels, labels)], options


# The ops whose arguments are not all float arrays, with their own cases
_OWN_CASES = {
    "relu_backward_from_mask": _relu_backward_from_mask,
    "softmax_cross_entropy": _softmax_cross_entropy,
    "linear_cross_entropy": _linear_cross_entropy,
}
# op name -> (case builder, whether the op takes out=)
CASES = {
    op.name: (_OWN_CASES.get(op.name) or _declared(op), "out" in inspect.signature(OPS[op.name]).parameters)
    for op in _catalog.OPS
}


def test_every_op_with_other_than_float_arrays_has_its_own_case():
    assert set(_OWN_CASES) == {op.name for op in _catalog.OPS if not all(arg.is_float for arg in op.arrays)}


# ---------------------------------------------------------------------------------------------
# out=


def _out_shape(name, arrays):
    if name in ("linear", "linear_relu"):
        return arrays[0][0].shape[0], arrays[1][0].shape[1]
    return arrays[0][0].shape


@st.composite
def _out(draw, name, arrays, dtype):
    """(how out is made, out for the fuzzed call, out for the reference call or None). The
    reference gets a fresh array with out's writability, so that its errors are the same."""
    shape = _out_shape(name, arrays)
    aliases = [i for i, (values, held) in enumerate(arrays) if held is not None and held.shape == shape
               and held.dtype == dtype and held.flags.writeable]
    kind = draw(st.sampled_from(["none", "none", "fresh", "alias", "overlap"]))
    if kind == "alias" and aliases:
        i = draw(st.sampled_from(aliases))
        return f"alias {i}", arrays[i][1], np.empty(shape, dtype)
    if kind == "overlap" and np.prod(shape) > 1 and "linear" not in name:
        # the first input and out share one buffer, out one element further along
        size = int(np.prod(shape))
        raw = np.empty(size + 1, dtype)
        first = raw[:size].reshape(shape)
        first[...] = arrays[0][0]
        arrays[0] = (arrays[0][0], first)
        return "overlap 0", raw[1:].reshape(shape), np.empty(shape, dtype)
    if kind in ("fresh", "alias", "overlap"):
        out_values = np.zeros(shape, dtype)
        held = draw(st.sampled_from(LAYOUTS[:4] + ["misaligned", "read-only"]))
        out = _held(out_values, held)[1]
        reference_out = np.empty(shape, dtype)
        reference_out.setflags(write=out.flags.writeable)
        return held, out, reference_out
    return "none", None, None


# ---------------------------------------------------------------------------------------------
# The property


def _outcome(call):
    """(result, None) or (None, the documented error). Under np.seterr(all="raise"): Inf and NaN
    are results, never a FloatingPointError."""
    try:
        with np.errstate(all="raise"):
            return call(), None
    except (TypeError, ValueError) as exc:
        return None, exc


def _gradient_unit(args, options):
    """The size of the terms a cross-entropy's gradient is the difference of: the largest class
    weight times the reduction's scale. A row's gradient can cancel to zero (a single class, say),
    where the float32 reference keeps a rounding residue of that size, so its atol is relative to
    this rather than to the gradient itself."""
    weight = options.get("weight")
    largest = 1.0 if weight is None else float(np.max(weight, initial=0.0))
    if options.get("reduction", "mean") != "mean":
        return largest
    labels = args[-1]
    if labels.dtype.kind == "f":
        denominator = labels.size // max(labels.shape[-1], 1)
    else:
        counted = labels[labels != options.get("ignore_index", -100)].astype(np.int64)
        denominator = counted.size if weight is None else float(np.sum(np.asarray(weight, np.float64)[counted]))
    return largest / denominator if denominator else largest


def _scales(name, args, options, expected):
    """Per result, the magnitude its atol is relative to (None: the result's own largest value)."""
    if name == "softmax_cross_entropy":
        return [None, max(_gradient_unit(args, options), np.max(np.abs(expected[1]), initial=0.0))]
    if name == "linear_cross_entropy":
        x, w, _, labels = args
        with np.errstate(all="ignore"):
            unit = _gradient_unit((labels,), options)
            scales = [unit * np.sum(np.abs(w), axis=1).max(initial=0.0),
                      unit * np.sum(np.abs(x), axis=0).max(initial=0.0), unit * len(x)]
        return [None] + [np.nan_to_num(v, nan=np.inf) for v in scales]  # 0 * Inf: no finite bound
    return None


def _compare(actual, expected, dtype, what="result", scale=None):
    if expected is None or isinstance(expected, (int, str)):
        assert actual == expected, what
    elif isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), what
        for i, (a, e) in enumerate(zip(actual, expected)):
            _compare(a, e, dtype, f"{what}[{i}]", None if scale is None else scale[i])
    elif expected.dtype == np.uint8:  # a ReLU mask: bits, exactly
        np.testing.assert_array_equal(actual, expected, err_msg=what)
    else:
        assert type(actual) is type(expected) and actual.shape == expected.shape and actual.dtype == expected.dtype, what
        assert_close(actual, expected, dtype, scale=scale)


@pytest.mark.parametrize("name", CASES)
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz(bk, dtype, name, data):
    build, takes_out = CASES[name]
    arrays, options = build(data.draw, dtype)
    arrays = [pair if isinstance(pair, tuple) else (pair, pair) for pair in arrays]
    out_kind, out, reference_out = data.draw(_out(name, arrays, dtype)) if takes_out else ("none", None, None)
    note(f"out: {out_kind}; layouts: {[None if h is None else (h.strides, h.flags.aligned, h.flags.writeable) for _, h in arrays]}")

    reference_args = [None if values is None else np.copy(values, order="C") for values, _ in arrays]
    reference_options = dict(options, out=reference_out) if out is not None else options
    expected, expected_error = _outcome(lambda: getattr(REFERENCE, name)(*reference_args, **reference_options))

    held = [h for _, h in arrays]
    untouched = [h for h in held if h is not None and not (out is not None and np.may_share_memory(h, out))]
    with unchanged(*untouched):
        actual, error = _outcome(lambda: getattr(bk, name)(*held, **(dict(options, out=out) if out is not None else options)))

    if expected_error is not None:
        assert type(error) is type(expected_error) and str(error) == str(expected_error), (error, expected_error)
        # and before any work: the same call on kernels that only record being called runs none
        called = []
        recording = types.SimpleNamespace(**{k: (lambda *_, k=k: called.append(k)) for k in _catalog.KERNEL_NAMES})
        _outcome(lambda: OPS[name](recording, *held, **(dict(options, out=out) if out is not None else options)))
        assert not called, called
        return
    assert error is None, error
    if out is not None:
        written = actual if not isinstance(actual, tuple) else actual[0] if name == "relu_with_mask" else actual[1]
        assert written is out
    _compare(actual, expected, dtype, scale=_scales(name, reference_args, options, expected))
