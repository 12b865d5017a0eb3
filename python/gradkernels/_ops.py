"""The public ops: validate once, lay the arrays out as the kernel contract says, call the kernel.

Each function here takes the backend's kernels as its first argument; `gradkernels` binds it to
the backend in force and `gradkernels.backend(name)` to a fixed one. Results are fresh arrays
allocated here with NumPy (which asks for huge pages), or `out` when given.

Copies are made only where a kernel could not work on the caller's memory, and are documented:
an input that is not contiguous (or not in the first input's memory order) is copied once to a
contiguous buffer; an `out` that is not contiguous, or that partly overlaps an input, is
written through a scratch buffer.
"""

import functools
import math

import numpy as np

from . import _validate as v
from ._quiet import quiet

OPS = {}


def op(fn):
    OPS[fn.__name__] = fn
    return fn


_INT64 = np.dtype(np.int64)


def _order_of(arr: np.ndarray) -> str:
    return "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C"


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    return a.ctypes.data == b.ctypes.data and a.nbytes == b.nbytes


def _output_buffer(result: np.ndarray, order: str, inputs, *, in_place=()) -> tuple[np.ndarray, bool]:
    """`result` itself when the kernel may write it directly, else a scratch buffer to copy back from.

    The inputs are contiguous in `order`. An output that is the very memory of one of the inputs
    listed in `in_place` is fine (the kernel reads each of their elements before writing it); any
    other overlap never is, nor a misaligned output, which C may not address as its dtype.
    """
    contiguous = result.flags.c_contiguous if order == "C" else result.flags.f_contiguous
    if contiguous and result.flags.aligned and not any(
        isinstance(a, np.ndarray)
        and np.may_share_memory(result, a)
        and not (any(a is b for b in in_place) and _same_memory(result, a))
        for a in inputs
    ):
        return result, True
    return np.empty(result.shape, result.dtype, order=order), False


def _usable(arr: np.ndarray, order: str = "C") -> np.ndarray:
    """`arr` itself when a kernel can address it directly (contiguous in `order` and aligned to its
    dtype), else a copy that is: one byte off, C could not even load it as that dtype."""
    flags = arr.flags
    if (flags.c_contiguous if order == "C" else flags.f_contiguous) and flags.aligned:
        return arr
    return np.require(arr, requirements=(order, "A"))


def _new_or_out(out, shape, dtype, order="C") -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype, order=order)
    return v.out_array(out, shape, dtype)


def _kernel_ready(arrays) -> bool:
    """Whether every array is C-contiguous and aligned, as the kernels take them: then the call
    needs no copy and no overlap check (a fresh result overlaps nothing)."""
    for a in arrays:
        flags = a.flags
        if not (flags.c_contiguous and flags.aligned):
            return False
    return True


def _writable_as_is(out, like: np.ndarray, read, in_place) -> bool:
    """Whether the kernel may write a caller's `out` directly, decided in attribute reads and
    bounds checks: the `op(x, out=x)` of a training step, or a preallocated result. `out` must be
    a C-contiguous, aligned, writable ndarray of `like`'s shape and dtype, and each array in `read`
    (what the kernel reads, kernel-ready) either `out` itself and listed in `in_place`, or apart
    from it. Anything else (a view of an input's memory, a partial overlap, a bad `out`) takes the
    general path, which checks it and says what is wrong."""
    if type(out) is not np.ndarray or out.dtype is not like.dtype or out.shape != like.shape:
        return False
    flags = out.flags
    if not (flags.c_contiguous and flags.aligned and flags.writeable):
        return False
    for a in read:
        if a is out:
            if not any(a is b for b in in_place):
                return False
        elif isinstance(a, np.ndarray) and np.may_share_memory(out, a):
            return False
    return True


def _elementwise(kernel, out, inputs, *, order=None, extra_outputs=(), args=()):
    """Run `kernel(y, *extra_outputs, *inputs, *args)` over flat views; return (y, the kernel's value)."""
    first = inputs[0]
    if _kernel_ready(inputs) and (out is None or _writable_as_is(out, first, inputs + args, inputs)):
        result = np.empty(first.shape, first.dtype) if out is None else out
        if not result.size:
            return result, None
        return result, kernel(result.ravel(), *extra_outputs, *[a.ravel() for a in inputs], *args)
    order = order or _order_of(first)
    flats = [_usable(a, order).ravel(order) for a in inputs]
    result = _new_or_out(out, first.shape, first.dtype, order)
    value = None
    if result.size:
        # a fresh result overlaps nothing; only a caller's `out` needs the check
        buf, direct = (
            (result, True) if out is None else _output_buffer(result, order, flats + list(args), in_place=flats)
        )
        value = kernel(buf.ravel(order), *extra_outputs, *flats, *args)
        if not direct:
            np.copyto(result, buf)
    return result, value


def _unary(kernel, x, out, *args):
    """`kernel(y, x, *args)` elementwise, y fresh or `out`: the common call (contiguous x, no out)
    in a few attribute reads, the rest through _elementwise."""
    flags = x.flags
    if flags.c_contiguous and flags.aligned and (out is None or (out is x and flags.writeable)):
        y = np.empty(x.shape, x.dtype) if out is None else x
        if x.size:
            kernel(y.ravel(), x.ravel(), *args)
        return y
    return _elementwise(kernel, out, (x,), args=args)[0]


def _binary(kernel, a, b, out, *args):
    """`kernel(y, a, b, *args)` elementwise, as _unary."""
    a_flags, b_flags = a.flags, b.flags
    if out is None and a_flags.c_contiguous and a_flags.aligned and b_flags.c_contiguous and b_flags.aligned:
        y = np.empty(a.shape, a.dtype)
        if a.size:
            kernel(y.ravel(), a.ravel(), b.ravel(), *args)
        return y
    return _elementwise(kernel, out, (a, b), args=args)[0]


def _rowwise(kernel, out, inputs, *, extra_outputs=(), args=(), in_place=None):
    """Run `kernel(y, *extra_outputs, *inputs, *args)` over (rows, classes) C-contiguous views; `y`
    may be the very memory of the inputs at the indices `in_place` (default: all). Returns (y, the
    kernel's value)."""
    first = inputs[0]
    if first.ndim == 2 and _kernel_ready(inputs) and (
        out is None or _writable_as_is(out, first, inputs + args, inputs if in_place is None else
                                       [inputs[i] for i in in_place])
    ):
        result = np.empty(first.shape, first.dtype) if out is None else out
        return result, kernel(result, *extra_outputs, *inputs, *args) if result.size else None
    rows, classes = math.prod(first.shape[:-1]), first.shape[-1]
    mats = [_usable(a).reshape(rows, classes) for a in inputs]
    result = _new_or_out(out, first.shape, first.dtype)
    value = None
    if result.size:
        overwritable = mats if in_place is None else [mats[i] for i in in_place]
        buf, direct = (
            (result, True) if out is None else _output_buffer(result, "C", mats + list(args), in_place=overwritable)
        )
        value = kernel(buf.reshape(rows, classes), *extra_outputs, *mats, *args)
        if not direct:
            np.copyto(result, buf)
    return result, value


def _pair(first_name, first, second_name, second):
    """Two same-shape float arrays of one dtype, e.g. (dy, y)."""
    a = v.float_array(first_name, first)
    b = v.float_array(second_name, second, like=(first_name, a))
    v.same_shape(second_name, b, first_name, a)
    return a, b


# ---------------------------------------------------------------------------------------------
# Elementwise activations (any shape)


@op
def relu(kernels, x, *, out=None):
    """y = max(0, x); NaN stays NaN."""
    x = v.float_array("x", x)
    return _unary(kernels.relu_forward, x, out)


@op
def relu_backward(kernels, dy, y, *, out=None):
    """dx = dy where y > 0, else 0 (the derivative at 0 is 0)."""
    dy, y = _pair("dy", dy, "y", y)
    return _binary(kernels.relu_backward, dy, y, out)


@op
def relu_with_mask(kernels, x, *, out=None):
    """(y, mask): y = relu(x) and mask = np.packbits(x.ravel() > 0, bitorder="little"), one pass."""
    x = v.float_array("x", x)
    mask = np.empty((x.size + 7) // 8, np.uint8)
    # The mask follows x.ravel(), i.e. C order, so the flat views must be C order too.
    y, _ = _elementwise(kernels.relu_forward_mask, out, (x,), order="C", extra_outputs=(mask,))
    return y, mask


@op
def relu_backward_from_mask(kernels, dy, mask, *, out=None):
    """dx = dy where the packed bit (C order over dy) is set, else 0."""
    dy = v.float_array("dy", dy)
    mask = np.ascontiguousarray(v.mask_array(mask, dy.size))
    return _elementwise(kernels.relu_backward_mask, out, (dy,), order="C", args=(mask,))[0]


@op
def leaky_relu(kernels, x, negative_slope=0.01, *, out=None):
    """y = x if x > 0 else negative_slope * x."""
    x = v.float_array("x", x)
    slope = v.negative_slope(negative_slope)
    return _unary(kernels.leaky_relu_forward, x, out, slope)


@op
def leaky_relu_backward(kernels, dy, x, negative_slope=0.01, *, out=None):
    """dx = dy if x > 0 else negative_slope * dy."""
    dy, x = _pair("dy", dy, "x", x)
    slope = v.negative_slope(negative_slope)
    return _binary(kernels.leaky_relu_backward, dy, x, out, slope)


@op
def sigmoid(kernels, x, *, out=None):
    """y = 1 / (1 + exp(-x)), computed without overflow for any x."""
    x = v.float_array("x", x)
    return _unary(kernels.sigmoid_forward, x, out)


@op
def sigmoid_backward(kernels, dy, y, *, out=None):
    """dx = dy * y * (1 - y), from the forward's output y."""
    dy, y = _pair("dy", dy, "y", y)
    return _binary(kernels.sigmoid_backward, dy, y, out)


@op
def tanh(kernels, x, *, out=None):
    """y = tanh(x)."""
    x = v.float_array("x", x)
    return _unary(kernels.tanh_forward, x, out)


@op
def tanh_backward(kernels, dy, y, *, out=None):
    """dx = dy * (1 - y^2), from the forward's output y."""
    dy, y = _pair("dy", dy, "y", y)
    return _binary(kernels.tanh_backward, dy, y, out)


# ---------------------------------------------------------------------------------------------
# Softmax family (last axis, any leading axes)


@op
def softmax(kernels, z, *, out=None):
    """p = exp(z - max z) / sum exp(z - max z) along the last axis."""
    z = v.float_array("z", z)
    v.at_least_1d("z", z)
    return _rowwise(kernels.softmax_forward, out, (z,))[0]


@op
def softmax_backward(kernels, dp, p, *, out=None):
    """dz = p * (dp - sum(dp * p)) along the last axis."""
    dp, p = _pair("dp", dp, "p", p)
    v.at_least_1d("dp", dp)
    return _rowwise(kernels.softmax_backward, out, (dp, p))[0]


@op
def log_softmax(kernels, z, *, out=None):
    """log p = z - max z - log sum exp(z - max z) along the last axis."""
    z = v.float_array("z", z)
    v.at_least_1d("z", z)
    return _rowwise(kernels.log_softmax_forward, out, (z,))[0]


@op
def log_softmax_backward(kernels, dlogp, logp, *, out=None):
    """dz = dlogp - exp(logp) * sum(dlogp) along the last axis."""
    dlogp, logp = _pair("dlogp", dlogp, "logp", logp)
    v.at_least_1d("dlogp", dlogp)
    return _rowwise(kernels.log_softmax_backward, out, (dlogp, logp))[0]


# ---------------------------------------------------------------------------------------------
# Fused losses: (loss, gradient) from one call


def _grad_scale(reduction: str, denominator: float) -> float:
    """What the gradient of each loss term is multiplied by. A "mean" over nothing (or over a zero
    total weight) has a NaN loss and, by our convention, a zero gradient."""
    if reduction != "mean":
        return 1.0
    return 1.0 / denominator if denominator else 0.0


# The float64 values from which rounding to float32 gives Inf: its largest finite value plus half
# its last place (the tie rounds to the even neighbour, 2^128).
_FLOAT32_OVERFLOW = float.fromhex("0x1.ffffffp127")


def _scalar(value: float, dtype: np.dtype):
    """`value` rounded to a NumPy scalar of `dtype`: Inf where it is beyond float32's range, which
    NumPy's cast would report as an overflow (an exception under np.seterr(all="raise"))."""
    if dtype is v.FLOAT32 and abs(value) >= _FLOAT32_OVERFLOW:
        value = math.copysign(math.inf, value)
    return dtype.type(value)


def _reduced(losses, total: float, reduction: str, denominator: float, dtype: np.dtype):
    """The loss to return: the per-term losses for "none", else a NumPy scalar of `dtype`."""
    if reduction == "none":
        return losses
    if reduction == "sum":
        return _scalar(total, dtype)
    return _scalar(total / denominator if denominator else math.nan, dtype)


@quiet
def _total(values: np.ndarray) -> float:
    """The float64 sum of `values` (Inf plus -Inf is NaN, not an exception)."""
    return float(np.sum(values, dtype=np.float64))


@functools.lru_cache(maxsize=64)
def _unit_weights(classes: int, dtype: np.dtype) -> np.ndarray:
    """The weights of an unweighted cross-entropy, made once per class count and dtype (read-only,
    since every call shares them)."""
    ones = np.ones(classes, dtype)
    ones.flags.writeable = False
    return ones


def _class_weights(weight, like_name: str, like: np.ndarray) -> np.ndarray:
    """The per-class weights (ones for None) of a cross-entropy over `like`'s last axis."""
    classes = like.shape[-1]
    if weight is None:
        return _unit_weights(classes, like.dtype)
    weight_vec = v.float_array("weight", weight, like=(like_name, like))
    if weight_vec.shape != (classes,):
        raise ValueError(
            f"weight has shape {weight_vec.shape} but {like_name} has shape {like.shape}; "
            f"weight must have shape ({classes},)"
        )
    return _usable(weight_vec)


def _class_labels(labels, like_name: str, shape: tuple, ignore: int, weight, weight_vec):
    """(the integer labels of rows of `shape` as a flat int64 array, the denominator of their
    mean): the number of counted rows, or their total weight."""
    labels = v.integer_array("labels", labels)
    row_shape, classes = shape[:-1], shape[-1]
    if labels.shape != row_shape:
        raise ValueError(
            f"labels has shape {labels.shape} but {like_name} has shape {shape}; "
            f"integer labels must have shape {row_shape}"
        )
    may_ignore = v.labels_in_range(labels, classes, ignore)
    labels64 = labels.reshape(-1) if labels.dtype is _INT64 and _kernel_ready((labels,)) else (
        _usable(labels.astype(np.int64, copy=False)).reshape(-1))
    return labels64, class_denominator(labels64, ignore, None if weight is None else weight_vec, may_ignore)


def class_denominator(labels: np.ndarray, ignore: int, weight_vec: np.ndarray | None, may_ignore: bool = True):
    """The denominator of a cross-entropy mean over integer `labels`: the number of rows whose label
    is not `ignore`, or with class weights their total weight. A label outside the weights' range
    weighs nothing here: the op that gets it raises. `may_ignore` False: no label equals `ignore`."""
    counted = labels[labels != ignore] if may_ignore else labels
    if weight_vec is None:
        return counted.size
    return _total(weight_vec[counted[(counted >= 0) & (counted < weight_vec.size)]])


def _loss_only(with_grad, out) -> bool:
    """Whether a fused loss is asked for its loss alone (with_grad False): then it has no gradient
    to write to `out`."""
    if v.flag("with_grad", with_grad):
        return False
    if out is not None:
        raise ValueError("out receives the gradient, and with_grad=False computes none: pass one or the other")
    return True


@op
def softmax_cross_entropy(
    kernels, logits, labels, *, weight=None, reduction="mean", ignore_index=-100, label_smoothing=0.0, out=None,
    denominator=None, with_grad=True,
):
    """(loss, dlogits) of softmax + cross-entropy over the last axis, with PyTorch's F.cross_entropy
    semantics; labels are integer classes of shape logits.shape[:-1] or float class probabilities
    of logits' shape. A "mean" divides by `denominator` when given, instead of this call's counted
    rows (or their total weight): the rows of one batch split across calls, each a part of the mean.
    with_grad False: (loss, None), the same loss without the gradient's passes and memory."""
    logits = v.float_array("logits", logits)
    v.at_least_1d("logits", logits)
    classes = logits.shape[-1]
    if classes == 0:
        raise ValueError(f"logits must have at least one class; its last axis is empty (shape {logits.shape})")
    reduction = v.reduction(reduction)
    denominator = v.denominator(denominator, reduction)
    smoothing = v.label_smoothing(label_smoothing)
    ignore = v.ignore_index(ignore_index)
    weight_vec = _class_weights(weight, "logits", logits)
    loss_only = _loss_only(with_grad, out)
    if out is not None:
        v.out_array(out, logits.shape, logits.dtype)

    row_shape = logits.shape[:-1]
    rows = logits.size // classes
    targets = np.asarray(labels)
    if targets.dtype.kind == "f":
        targets = v.float_array("labels", targets, like=("logits", logits))
        v.same_shape("labels", targets, "logits", logits)
        counted = rows
        inputs, args = (logits, targets), (weight_vec, smoothing)
        kernel = kernels.softmax_cross_entropy_soft
    elif targets.dtype.kind in "iu":
        labels64, counted = _class_labels(targets, "logits", logits.shape, ignore, weight, weight_vec)
        inputs, args = (logits,), (labels64, weight_vec, ignore, smoothing)
        kernel = kernels.softmax_cross_entropy
    else:
        raise TypeError(
            f"labels must be integer class indices or float class probabilities, got {targets.dtype}"
        )

    denominator = counted if denominator is None else denominator
    losses = np.empty(rows, logits.dtype)
    args += (_grad_scale(reduction, denominator),)
    if loss_only:
        mats = [_usable(a).reshape(rows, classes) for a in inputs]
        grad, total = None, kernel(None, losses, *mats, *args) if rows else 0.0
    else:
        # out may be the logits' memory, not the targets': the kernel reads them after writing a row
        grad, total = _rowwise(kernel, out, inputs, extra_outputs=(losses,), args=args, in_place=(0,))
    losses = losses if logits.ndim == 2 else losses.reshape(row_shape)
    return _reduced(losses, total or 0.0, reduction, denominator, logits.dtype), grad


def _elementwise_loss(kernel, first_name, first, second_name, second, reduction, out, denominator, with_grad):
    pred, target = _pair(first_name, first, second_name, second)
    reduction = v.reduction(reduction)
    denominator = v.denominator(denominator, reduction)
    loss_only = _loss_only(with_grad, out)
    n = pred.size if denominator is None else denominator
    order = _order_of(pred)
    losses = np.empty(pred.shape, pred.dtype, order=order) if reduction == "none" else None
    flat_losses = None if losses is None else np.ravel(losses, order)
    scale = _grad_scale(reduction, n)
    if loss_only:
        flats = [_usable(a, order).ravel(order) for a in (pred, target)]
        grad, total = None, kernel(None, flat_losses, *flats, scale) if pred.size else None
    else:
        grad, total = _elementwise(kernel, out, (pred, target), order=order, extra_outputs=(flat_losses,), args=(scale,))
    return _reduced(losses, 0.0 if total is None else total, reduction, n, pred.dtype), grad


@op
def sigmoid_binary_cross_entropy(kernels, logits, targets, *, reduction="mean", out=None, denominator=None,
                                 with_grad=True):
    """(loss, dlogits) of sigmoid + binary cross-entropy, elementwise, from the logits:
    loss = max(z, 0) - z t + log(1 + exp(-|z|)), dlogits = sigmoid(z) - t (scaled by the reduction).
    A "mean" divides by `denominator` when given, instead of the number of elements. with_grad
    False: (loss, None), the same loss without the gradient's pass and memory."""
    return _elementwise_loss(kernels.sigmoid_binary_cross_entropy, "logits", logits, "targets", targets, reduction, out,
                             denominator, with_grad)


@op
def mse(kernels, pred, target, *, reduction="mean", out=None, denominator=None, with_grad=True):
    """(loss, dpred) of the squared error (pred - target)^2, elementwise; dpred = 2 (pred - target).
    A "mean" divides by `denominator` when given, instead of the number of elements. with_grad
    False: (loss, None), as in sigmoid_binary_cross_entropy."""
    return _elementwise_loss(kernels.mse, "pred", pred, "target", target, reduction, out, denominator, with_grad)


# ---------------------------------------------------------------------------------------------
# Linear layer y = x @ w + b, weights (D, H)


def _blas_ready(arr: np.ndarray) -> np.ndarray:
    return arr if (arr.flags.c_contiguous or arr.flags.f_contiguous) and arr.flags.aligned else _usable(arr)


def _matrix(name, value, like=None, what="") -> np.ndarray:
    arr = v.float_array(name, value, like)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 2-D {what}, got shape {arr.shape}")
    return arr


def _linear_operands(x, w, b):
    """x (N, D), w (D, H) and b (H,) or None, checked against each other; b contiguous."""
    x = _matrix("x", x, what="(N, D)")
    w = _matrix("w", w, like=("x", x), what="(D, H)")
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"x has shape {x.shape} and w has shape {w.shape}: x's columns must equal w's rows")
    if b is not None:
        b = v.float_array("b", b, like=("x", x))
        if b.shape != (w.shape[1],):
            raise ValueError(f"b has shape {b.shape} but w has shape {w.shape}; b must have shape ({w.shape[1]},)")
        b = _usable(b)
    return x, w, b


def _linear_layer(kernel, x, w, b, out, activation=lambda y: y):
    x, w, b = _linear_operands(x, w, b)
    (n, d), h = x.shape, w.shape[1]
    result = _new_or_out(out, (n, h), x.dtype)
    if result.size == 0:
        return result
    if d == 0:  # an empty sum: only the bias remains
        result[...] = 0 if b is None else activation(b)
        return result
    x, w = _blas_ready(x), _blas_ready(w)
    # a fresh result overlaps nothing; only a caller's `out` needs the check
    buf, direct = (result, True) if out is None else _output_buffer(result, "C", (x, w, b))
    kernel(buf, x, w, b)
    if not direct:
        np.copyto(result, buf)
    return result


@op
def linear(kernels, x, w, b=None, *, out=None):
    """y = x @ w + b with x (N, D), w (D, H), b (H,) or None."""
    return _linear_layer(kernels.linear_forward, x, w, b, out)


@op
def linear_relu(kernels, x, w, b=None, *, out=None):
    """a = relu(x @ w + b) with x (N, D), w (D, H), b (H,) or None: the bias add and the ReLU in one
    pass over the GEMM's output. NaN stays NaN, as in relu."""
    return _linear_layer(kernels.linear_relu_forward, x, w, b, out, activation=lambda b: np.maximum(b, 0))


def _backward_operands(dy_name, dy, x, w, with_bias, with_dx):
    """The checked operands of a layer's backward and its fresh gradients (dx, dw, db): dw laid out
    like w, so that an update w -= lr * dw is one pass in one order (and a Fortran-ordered w, the
    transpose of a C-ordered (H, D) weight as PyTorch stores it, gets the transpose of a C-ordered
    gradient); dx None unless with_dx, db None unless with_bias."""
    dy = _matrix(dy_name, dy, what="(N, H)")
    x = _matrix("x", x, like=(dy_name, dy), what="(N, D)")
    w = _matrix("w", w, like=(dy_name, dy), what="(D, H)")
    with_bias, with_dx = v.flag("with_bias", with_bias), v.flag("with_dx", with_dx)
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"x has shape {x.shape} and w has shape {w.shape}: x's columns must equal w's rows")
    if dy.shape != (x.shape[0], w.shape[1]):
        raise ValueError(
            f"{dy_name} has shape {dy.shape} but x has shape {x.shape} and w has shape {w.shape}; "
            f"{dy_name} must have shape {(x.shape[0], w.shape[1])}"
        )
    (n, d), h = x.shape, w.shape[1]
    dx = np.empty((n, d), dy.dtype) if with_dx else None
    dw = np.empty((d, h), dy.dtype, order=_order_of(w))
    return dy, x, w, dx, dw, np.empty(h, dy.dtype) if with_bias else None


def _empty_layer(x, w) -> bool:
    """Whether a layer has no rows, inputs or outputs, so that no GEMM has work."""
    return not (x.size and w.size)


@quiet
def _empty_layer_gradients(dx, dw, db, dy) -> None:
    """The gradients of an empty layer: empty sums are zero."""
    if dx is not None:
        dx[...] = 0
    dw[...] = 0
    if db is not None:
        np.copyto(db, np.sum(dy, axis=0, dtype=np.float64), casting="same_kind")


@op
def linear_backward(kernels, dy, x, w, *, with_bias=True, with_dx=True):
    """(dx, dw, db) = (dy @ w.T, x.T @ dy, dy summed over rows); db is None when with_bias is False,
    dx None when with_dx is False (a first layer, whose input needs no gradient: one GEMM less).
    dw is laid out like w (Fortran order for a Fortran-ordered w, else C)."""
    dy, x, w, dx, dw, db = _backward_operands("dy", dy, x, w, with_bias, with_dx)
    if _empty_layer(x, w):
        _empty_layer_gradients(dx, dw, db, dy)
    else:
        kernels.linear_backward(dx, dw, db, _blas_ready(dy), _blas_ready(x), _blas_ready(w))
    return dx, dw, db


@op
def linear_relu_backward(kernels, da, a, x, w, *, with_bias=True, with_dx=True):
    """(dx, dw, db) of a = linear_relu(x, w, b), from da = dL/da and the forward's output a: with
    dz = da where a > 0, else 0, (dz @ w.T, x.T @ dz, dz summed over rows). The mask and the bias
    sum are one pass over da; dz is the only temporary (the GEMMs read it). db and dx as in
    linear_backward. a is copied once if it is not laid out like da."""
    da, x, w, dx, dw, db = _backward_operands("da", da, x, w, with_bias, with_dx)
    a = v.float_array("a", a, like=("da", da))
    v.same_shape("a", a, "da", da)
    if _empty_layer(x, w):
        _empty_layer_gradients(dx, dw, db, np.where(a > 0, da, 0))
        return dx, dw, db
    da = _blas_ready(da)
    order = _order_of(da)
    a = _usable(a, order)
    dz = np.empty(da.shape, da.dtype, order=order)
    kernels.linear_relu_backward(dx, dw, db, dz, da, a, _blas_ready(x), _blas_ready(w))
    return dx, dw, db


# Bytes of logits linear_cross_entropy holds at once when no chunk_size is given (a chunk of rows).
LINEAR_CROSS_ENTROPY_CHUNK_BYTES = 128 << 20


@op
def linear_cross_entropy(kernels, x, w, b, labels, *, weight=None, reduction="mean", ignore_index=-100,
                         label_smoothing=0.0, chunk_size=None, denominator=None, with_grad=True):
    """(loss, dx, dw, db) of softmax_cross_entropy(x @ w + b, labels, ...) without the (N, C) logits:
    rows go through in chunks of `chunk_size` (default: as many as LINEAR_CROSS_ENTROPY_CHUNK_BYTES
    of logits hold), each chunk's logits becoming its gradient in place before the GEMMs of the
    backward use them. Integer class labels of shape (N,); b may be None (then db is None). The
    result is that of the unfused ops up to float rounding, for any chunk size. `denominator` as in
    softmax_cross_entropy; dw laid out like w, as in linear_backward. with_grad False: (loss, None,
    None, None), the same loss from the chunks' logits without any gradient or backward GEMM."""
    x, w, b = _linear_operands(x, w, b)
    (n, d), classes = x.shape, w.shape[1]
    if classes == 0:
        raise ValueError(f"w must have at least one column (class); its shape is {w.shape}")
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(
            f"labels must be integer class indices, got {labels.dtype}; for class probabilities, "
            f"call linear and then softmax_cross_entropy"
        )
    reduction = v.reduction(reduction)
    denominator = v.denominator(denominator, reduction)
    smoothing = v.label_smoothing(label_smoothing)
    ignore = v.ignore_index(ignore_index)
    with_grad = v.flag("with_grad", with_grad)
    weight_vec = _class_weights(weight, "w", w)
    labels64, counted = _class_labels(labels, "x @ w", (n, classes), ignore, weight, weight_vec)
    denominator = counted if denominator is None else denominator
    if chunk_size is None:
        chunk = max(1, LINEAR_CROSS_ENTROPY_CHUNK_BYTES // (classes * x.dtype.itemsize))
    else:
        chunk = v.integer_scalar("chunk_size", chunk_size)
        if chunk < 1:
            raise ValueError(f"chunk_size must be a positive number of rows, got {chunk}")
    losses = np.empty(n, x.dtype)
    dx = np.empty((n, d), x.dtype) if with_grad else None
    dw = np.empty((d, classes), x.dtype, order=_order_of(w)) if with_grad else None
    db = np.empty(classes, x.dtype) if with_grad and b is not None else None
    if n == 0:
        for empty_sum in (dw, db):
            if empty_sum is not None:
                empty_sum[...] = 0
        total = 0.0
    else:
        logits = np.empty((min(chunk, n), classes), x.dtype)
        total = kernels.linear_cross_entropy(dx, dw, db, losses, logits, _blas_ready(x), _blas_ready(w), b, labels64,
                                             weight_vec, ignore, smoothing, _grad_scale(reduction, denominator))
    return _reduced(losses, total, reduction, denominator, x.dtype), dx, dw, db
