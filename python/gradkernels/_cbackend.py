"""The C backend: the kernels of the contract (gradkernels._backends.KERNELS), each a call into the
cffi extension gradkernels._ckernels built from csrc/.

The API layer has validated and laid out every argument before a kernel runs; this glue still
checks each array's type, dtype, contiguity, size and writability against the sizes it passes to C
(a few attribute reads), so that no call from Python, however it reaches these functions, can make
C read or write outside an array. A nonzero status from C becomes an exception. cffi releases the
GIL for the duration of each C call.
"""

import functools

import numpy as np

from . import _backends, reference
from ._ckernels import ffi, lib
from .reference.linear import input_and_weight_gradients, linear_forward  # noqa: F401 (the same BLAS calls)

_C_TYPES = {np.dtype(np.float32): ("_f32", "float[]"), np.dtype(np.float64): ("_f64", "double[]")}
_INT64, _UINT8 = np.dtype(np.int64), np.dtype(np.uint8)
_C_OF = {_INT64: "int64_t[]", _UINT8: "uint8_t[]"}

OPENMP = bool(lib.gk_openmp())


def _implements(name):
    """Gives a kernel made by a factory the name, parameters and documentation of the reference
    kernel it stands for."""
    return functools.wraps(getattr(reference, name), assigned=("__name__", "__qualname__", "__doc__"))


def _function(name: str, dtype: np.dtype):
    suffix = _C_TYPES[dtype][0]
    return getattr(lib, f"gk_{name}{suffix}")


def _array(arr, dtype: np.dtype, size: int, *, output: bool = False):
    """A pointer to `arr`'s data after checking that C may touch exactly `size` elements of it."""
    if not (
        isinstance(arr, np.ndarray)
        and arr.dtype == dtype
        and arr.size == size
        and arr.flags.c_contiguous
        and (arr.flags.writeable or not output)
    ):
        what = "a writable" if output else "a"
        raise ValueError(f"C kernel argument must be {what} C-contiguous {dtype} array of {size} elements")
    c_type = _C_OF.get(dtype) or _C_TYPES[dtype][1]
    return ffi.from_buffer(c_type, arr, require_writable=output)


def _optional(arr, dtype, size):
    return ffi.NULL if arr is None else _array(arr, dtype, size, output=True)


def _float_dtype(arr) -> np.dtype:
    if not isinstance(arr, np.ndarray) or arr.dtype not in _C_TYPES:
        raise ValueError("C kernel arrays must be float32 or float64 NumPy arrays")
    return arr.dtype


def _threads() -> int:
    return _backends.get_num_threads() if OPENMP else 1


_ERRORS = {
    lib.GK_BAD_LABEL: (ValueError, "a label is outside [0, classes) and is not ignore_index"),
    lib.GK_NO_MEMORY: (MemoryError, "the C kernel could not allocate its scratch memory"),
    lib.GK_BAD_ARGUMENT: (ValueError, "an argument of the C kernel is outside its documented set"),
}


def _check(status: int) -> None:
    if status != lib.GK_OK:
        error, message = _ERRORS.get(status, (RuntimeError, f"the C kernel failed with status {status}"))
        raise error(message)


# ---------------------------------------------------------------------------------------------
# Elementwise activations: 1-D arrays of n elements


def _unary(name):
    def kernel(y, x):
        dt, n = _float_dtype(x), x.size
        _check(_function(name, dt)(_array(y, dt, n, output=True), _array(x, dt, n), n, _threads()))

    return _implements(name)(kernel)


def _binary(name):
    def kernel(dx, a, b):
        dt, n = _float_dtype(a), a.size
        _check(_function(name, dt)(_array(dx, dt, n, output=True), _array(a, dt, n), _array(b, dt, n), n, _threads()))

    return _implements(name)(kernel)


relu_forward = _unary("relu_forward")
relu_backward = _binary("relu_backward")
sigmoid_forward = _unary("sigmoid_forward")
sigmoid_backward = _binary("sigmoid_backward")
tanh_forward = _unary("tanh_forward")
tanh_backward = _binary("tanh_backward")


def relu_forward_mask(y, mask, x):
    dt, n = _float_dtype(x), x.size
    fn = _function("relu_forward_mask", dt)
    _check(fn(_array(y, dt, n, output=True), _array(mask, _UINT8, (n + 7) // 8, output=True), _array(x, dt, n), n,
              _threads()))


def relu_backward_mask(dx, dy, mask):
    dt, n = _float_dtype(dy), dy.size
    fn = _function("relu_backward_mask", dt)
    _check(fn(_array(dx, dt, n, output=True), _array(dy, dt, n), _array(mask, _UINT8, (n + 7) // 8), n, _threads()))


def leaky_relu_forward(y, x, negative_slope):
    dt, n = _float_dtype(x), x.size
    fn = _function("leaky_relu_forward", dt)
    _check(fn(_array(y, dt, n, output=True), _array(x, dt, n), n, float(negative_slope), _threads()))


def leaky_relu_backward(dx, dy, x, negative_slope):
    dt, n = _float_dtype(x), x.size
    fn = _function("leaky_relu_backward", dt)
    _check(fn(_array(dx, dt, n, output=True), _array(dy, dt, n), _array(x, dt, n), n, float(negative_slope),
              _threads()))


# ---------------------------------------------------------------------------------------------
# Rows: 2-D C-contiguous (rows, classes) arrays


def _shape(arr) -> tuple[int, int]:
    if not isinstance(arr, np.ndarray) or arr.ndim != 2:
        raise ValueError("C row kernels take 2-D arrays")
    return arr.shape


def _row_unary(name):
    def kernel(p, z):
        dt, (rows, classes) = _float_dtype(z), _shape(z)
        n = rows * classes
        _check(_function(name, dt)(_array(p, dt, n, output=True), _array(z, dt, n), rows, classes, _threads()))

    return _implements(name)(kernel)


def _row_binary(name):
    def kernel(dz, a, b):
        dt, (rows, classes) = _float_dtype(a), _shape(a)
        n = rows * classes
        fn = _function(name, dt)
        _check(fn(_array(dz, dt, n, output=True), _array(a, dt, n), _array(b, dt, n), rows, classes, _threads()))

    return _implements(name)(kernel)


softmax_forward = _row_unary("softmax_forward")
softmax_backward = _row_binary("softmax_backward")
log_softmax_forward = _row_unary("log_softmax_forward")
log_softmax_backward = _row_binary("log_softmax_backward")


# ---------------------------------------------------------------------------------------------
# Fused losses


def softmax_cross_entropy(dz, losses, z, labels, weight, ignore_index, label_smoothing, grad_scale):
    dt, (rows, classes) = _float_dtype(z), _shape(z)
    n = rows * classes
    fn = _function("softmax_cross_entropy", dt)
    _check(fn(_array(dz, dt, n, output=True), _array(losses, dt, rows, output=True), _array(z, dt, n),
              _array(labels, _INT64, rows), _array(weight, dt, classes), rows, classes, int(ignore_index),
              float(label_smoothing), float(grad_scale), _threads()))


def softmax_cross_entropy_soft(dz, losses, z, targets, weight, label_smoothing, grad_scale):
    dt, (rows, classes) = _float_dtype(z), _shape(z)
    n = rows * classes
    fn = _function("softmax_cross_entropy_soft", dt)
    _check(fn(_array(dz, dt, n, output=True), _array(losses, dt, rows, output=True), _array(z, dt, n),
              _array(targets, dt, n), _array(weight, dt, classes), rows, classes, float(label_smoothing),
              float(grad_scale), _threads()))


def _elementwise_loss(name):
    def kernel(grad, losses, a, b, grad_scale):
        dt, n = _float_dtype(a), a.size
        total = ffi.new("double *")
        fn = _function(name, dt)
        _check(fn(_array(grad, dt, n, output=True), _optional(losses, dt, n), total, _array(a, dt, n),
                  _array(b, dt, n), n, float(grad_scale), _threads()))
        return total[0]

    return _implements(name)(kernel)


sigmoid_binary_cross_entropy = _elementwise_loss("sigmoid_binary_cross_entropy")
mse = _elementwise_loss("mse")


# ---------------------------------------------------------------------------------------------
# Linear layer: the GEMMs are NumPy's BLAS, the bias gradient one serial C pass over dy


def linear_backward(dx, dw, db, dy, x, w):
    input_and_weight_gradients(dx, dw, dy, x, w)
    if db is None:
        return
    dt = _float_dtype(dy)
    rows, cols = _shape(dy)
    if dy.flags.c_contiguous:
        _check(_function("column_sums", dt)(_array(db, dt, cols, output=True), _array(dy, dt, dy.size), rows, cols))
    else:  # Fortran-ordered: its transpose is C-ordered
        dy_t = dy.T
        _check(_function("row_sums", dt)(_array(db, dt, cols, output=True), _array(dy_t, dt, dy.size), cols, rows))
