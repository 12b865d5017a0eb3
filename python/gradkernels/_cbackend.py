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
from .reference.linear import backward_kernels, linear_forward

OPENMP = bool(lib.gk_openmp())

_FLOAT_POINTERS = {np.dtype(np.float32): ffi.typeof("float[]"), np.dtype(np.float64): ffi.typeof("double[]")}
_SUFFIXES = {np.dtype(np.float32): "_f32", np.dtype(np.float64): "_f64"}
_INT64, _INT64_POINTER = np.dtype(np.int64), ffi.typeof("int64_t[]")
_UINT8, _UINT8_POINTER = np.dtype(np.uint8), ffi.typeof("uint8_t[]")


def _implements(name):
    """Gives a kernel made by a factory the name, parameters and documentation of the reference
    kernel it stands for."""
    return functools.wraps(getattr(reference, name), assigned=("__name__", "__qualname__", "__doc__"))


def _variants(name: str) -> dict:
    """The C function of kernel `name` for each float dtype."""
    return {dtype: getattr(lib, f"gk_{name}{suffix}") for dtype, suffix in _SUFFIXES.items()}


def _select(variants: dict, arr):
    """The variant for `arr`'s dtype, and that dtype."""
    dtype = getattr(arr, "dtype", None)
    if dtype not in variants:
        raise ValueError("C kernel arrays must be float32 or float64 NumPy arrays")
    return variants[dtype], dtype


def _array(arr, dtype: np.dtype, size: int, *, output: bool = False, pointer=None):
    """A pointer to `arr`'s data after checking that C may touch exactly `size` elements of it:
    an ndarray of `dtype`, C-contiguous (cffi's buffer request refuses anything else), writable
    if C writes it."""
    try:
        if (arr.dtype is dtype or arr.dtype == dtype) and (not output or arr.flags.writeable):
            ptr = ffi.from_buffer(pointer or _FLOAT_POINTERS[dtype], arr)
            if len(ptr) == size:
                return ptr
    except (AttributeError, BufferError, TypeError, ValueError):  # not an array, or not contiguous
        pass
    what = "a writable" if output else "a"
    raise ValueError(f"C kernel argument must be {what} C-contiguous {dtype} array of {size} elements")


def _optional(arr, dtype, size, *, output=True):
    return ffi.NULL if arr is None else _array(arr, dtype, size, output=output)


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
# Kernels over arrays of one dtype and size: activations, softmax family


def _map(name, *, rows=False, option=False):
    """Kernel `name` called as (out, *inputs), or (out, *inputs, option) with a float option passed
    after the sizes (leaky ReLU's slope); the arrays are 1-D of n elements, or with `rows` 2-D
    (rows, classes)."""
    variants = _variants(name)

    def kernel(out, *args):
        inputs, options = (args[:-1], (float(args[-1]),)) if option else (args, ())
        fn, dt = _select(variants, inputs[0])
        n = inputs[0].size
        sizes = _row_shape(inputs[0]) if rows else (n,)
        pointers = [_array(a, dt, n) for a in inputs]
        _check(fn(_array(out, dt, n, output=True), *pointers, *sizes, *options, _threads()))

    return _implements(name)(kernel)


def _row_shape(z) -> tuple[int, int]:
    if z.ndim != 2:
        raise ValueError("C row kernels take 2-D arrays")
    return z.shape


relu_forward = _map("relu_forward")
relu_backward = _map("relu_backward")
leaky_relu_forward = _map("leaky_relu_forward", option=True)
leaky_relu_backward = _map("leaky_relu_backward", option=True)
sigmoid_forward = _map("sigmoid_forward")
sigmoid_backward = _map("sigmoid_backward")
tanh_forward = _map("tanh_forward")
tanh_backward = _map("tanh_backward")

_RELU_FORWARD_MASK = _variants("relu_forward_mask")
_RELU_BACKWARD_MASK = _variants("relu_backward_mask")


def _mask(mask, n, *, output=False):
    return _array(mask, _UINT8, (n + 7) // 8, output=output, pointer=_UINT8_POINTER)


def relu_forward_mask(y, mask, x):
    fn, dt = _select(_RELU_FORWARD_MASK, x)
    n = x.size
    _check(fn(_array(y, dt, n, output=True), _mask(mask, n, output=True), _array(x, dt, n), n, _threads()))


def relu_backward_mask(dx, dy, mask):
    fn, dt = _select(_RELU_BACKWARD_MASK, dy)
    n = dy.size
    _check(fn(_array(dx, dt, n, output=True), _array(dy, dt, n), _mask(mask, n), n, _threads()))


softmax_forward = _map("softmax_forward", rows=True)
softmax_backward = _map("softmax_backward", rows=True)
log_softmax_forward = _map("log_softmax_forward", rows=True)
log_softmax_backward = _map("log_softmax_backward", rows=True)


# ---------------------------------------------------------------------------------------------
# Fused losses


def _rows(variants, z):
    fn, dt = _select(variants, z)
    return fn, dt, *_row_shape(z)


_CROSS_ENTROPY = _variants("softmax_cross_entropy")
_CROSS_ENTROPY_SOFT = _variants("softmax_cross_entropy_soft")


def softmax_cross_entropy(dz, losses, z, labels, weight, ignore_index, label_smoothing, grad_scale):
    fn, dt, rows, classes = _rows(_CROSS_ENTROPY, z)
    n = z.size
    _check(fn(_array(dz, dt, n, output=True), _array(losses, dt, rows, output=True), _array(z, dt, n),
              _array(labels, _INT64, rows, pointer=_INT64_POINTER), _array(weight, dt, classes), rows, classes,
              int(ignore_index), float(label_smoothing), float(grad_scale), _threads()))


def softmax_cross_entropy_soft(dz, losses, z, targets, weight, label_smoothing, grad_scale):
    fn, dt, rows, classes = _rows(_CROSS_ENTROPY_SOFT, z)
    n = z.size
    _check(fn(_array(dz, dt, n, output=True), _array(losses, dt, rows, output=True), _array(z, dt, n),
              _array(targets, dt, n), _array(weight, dt, classes), rows, classes, float(label_smoothing),
              float(grad_scale), _threads()))


def _elementwise_loss(name):
    variants = _variants(name)

    def kernel(grad, losses, a, b, grad_scale):
        fn, dt = _select(variants, a)
        n = a.size
        total = ffi.new("double *")
        _check(fn(_array(grad, dt, n, output=True), _optional(losses, dt, n), total, _array(a, dt, n),
                  _array(b, dt, n), n, float(grad_scale), _threads()))
        return total[0]

    return _implements(name)(kernel)


sigmoid_binary_cross_entropy = _elementwise_loss("sigmoid_binary_cross_entropy")
mse = _elementwise_loss("mse")


# ---------------------------------------------------------------------------------------------
# Linear layers: the GEMMs are NumPy's BLAS, the passes around them serial C

_BIAS_GRADIENT = _variants("bias_gradient")
_BIAS_GRADIENT_TRANSPOSED = _variants("bias_gradient_transposed")
_BIAS_RELU = _variants("bias_relu")


def _bias_gradient(db, dz, dy, relu_output):
    """db = dy summed over its rows; with relu_output, of dz = dy masked by it (written to dz)."""
    transposed = not dy.flags.c_contiguous
    if transposed:  # Fortran-ordered: its transpose is C-ordered, one row per column of dy
        dz, dy, relu_output = (None if a is None else a.T for a in (dz, dy, relu_output))
    fn, dt, rows, cols = _rows(_BIAS_GRADIENT_TRANSPOSED if transposed else _BIAS_GRADIENT, dy)
    n = dy.size
    _check(fn(_array(db, dt, rows if transposed else cols, output=True), _optional(dz, dt, n), _array(dy, dt, n),
              _optional(relu_output, dt, n, output=False), rows, cols))


def bias_gradient(db, dy):
    _bias_gradient(db, None, dy, None)


def linear_relu_forward(y, x, w, b):
    fn, dt, rows, cols = _rows(_BIAS_RELU, y)
    linear_forward(y, x, w, None)
    _check(fn(_array(y, dt, y.size, output=True), _optional(b, dt, cols, output=False), rows, cols))


linear_backward, linear_relu_backward, linear_cross_entropy = backward_kernels(
    bias_gradient, _bias_gradient, relu_backward, softmax_cross_entropy)
