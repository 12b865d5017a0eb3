"""The C backend: the kernels of the contract (declared in gradkernels._catalog), each a call into the
cffi extension gradkernels._ckernels built from csrc/.

The extension holds every kernel once per ISA variant of its build (csrc/build_cffi.py): AVX-512,
AVX2 + FMA and the x86-64 baseline, or a single one. VARIANT is the one this process runs: the
best the CPU executes, at most GRADKERNELS_MAX_ISA (avx512, avx2 or baseline) where that is set
when the backend loads; `kernels(variant)` gives any other that the CPU executes (RUNNABLE), for
tests and benchmarks.

The API layer has validated and laid out every argument before a kernel runs; this glue still
checks each array's type, dtype, contiguity, size and writability against the sizes it passes to C
(a few attribute reads), so that no call from Python, however it reaches these functions, can make
C read or write outside an array. A nonzero status from C becomes an exception. cffi releases the
GIL for the duration of each C call.
"""

import functools
import importlib
import os
import types

import numpy as np

from . import _catalog
from ._ckernels import ffi, lib
from ._threads import get_num_threads, parallel_scale
from ._linear import backward_kernels, linear_forward

OPENMP = bool(lib.gk_openmp())

# What GRADKERNELS_MAX_ISA may name, and the x86-64 level (gk_cpu_level) each stands for.
MAX_ISA_LEVELS = {"avx512": 4, "avx2": 3, "baseline": 1}

# The build's variants, best first, and the level a CPU needs to run each (0: any).
VARIANTS: dict[str, int] = {name: int(level) for name, level in
                            (item.split("=") for item in ffi.string(lib.gk_variants()).decode().split())}
CPU_LEVEL = lib.gk_cpu_level()
RUNNABLE = tuple(name for name, level in VARIANTS.items() if level <= CPU_LEVEL)


def choose_variant(max_isa: str | None) -> str:
    """The best runnable variant at or below `max_isa` (None or "": no cap). Every cap allows the
    baseline variant (level 1, or 0 off x86-64) and a native build's single one (level 0)."""
    if not max_isa:
        return RUNNABLE[0]
    if max_isa not in MAX_ISA_LEVELS:
        raise ValueError(f"GRADKERNELS_MAX_ISA={max_isa!r}: choose one of {', '.join(MAX_ISA_LEVELS)}")
    return next(name for name in RUNNABLE if VARIANTS[name] <= MAX_ISA_LEVELS[max_isa])


VARIANT = choose_variant(os.environ.get("GRADKERNELS_MAX_ISA", "").strip().lower())

_FLOAT_POINTERS = {np.dtype(np.float32): ffi.typeof("float[]"), np.dtype(np.float64): ffi.typeof("double[]")}
_SUFFIXES = {np.dtype(np.float32): "_f32", np.dtype(np.float64): "_f64"}
_INT64, _INT64_POINTER = np.dtype(np.int64), ffi.typeof("int64_t[]")
_UINT8, _UINT8_POINTER = np.dtype(np.uint8), ffi.typeof("uint8_t[]")


def _implements(name):
    """Gives a kernel made by a factory the name and documentation of the reference kernel it stands
    for; not its signature, which stays the factory's own for the contract test to check."""

    def named(kernel):
        kernel.__name__ = kernel.__qualname__ = name
        reference = importlib.import_module(f".reference.{_catalog.KERNEL[name].family}", __package__)
        kernel.__doc__ = getattr(reference, name).__doc__
        return kernel

    return named


def functions(name: str, variant: str) -> dict:
    """The C function of kernel `name` in `variant` for each float dtype."""
    return {dtype: getattr(lib, f"gk_{name}{suffix}_{variant}") for dtype, suffix in _SUFFIXES.items()}


def _select(fns: dict, arr):
    """The function for `arr`'s dtype, and that dtype."""
    dtype = getattr(arr, "dtype", None)
    if dtype not in fns:
        raise ValueError("C kernel arrays must be float32 or float64 NumPy arrays")
    return fns[dtype], dtype


def _array(arr, dtype: np.dtype, size: int, output: bool = False, pointer=None):
    """A pointer to `arr`'s data after checking that C may touch exactly `size` elements of it:
    an ndarray of `dtype`, C-contiguous and, if C writes it, writable (cffi's buffer request
    refuses anything else)."""
    try:
        ptr = ffi.from_buffer(pointer or _FLOAT_POINTERS[dtype], arr, output)
        if len(ptr) == size and (arr.dtype is dtype or arr.dtype == dtype):
            return ptr
    except (AttributeError, BufferError, TypeError, ValueError):  # not an array, not contiguous, read-only
        pass
    what = "a writable" if output else "a"
    raise ValueError(f"C kernel argument must be {what} C-contiguous {dtype} array of {size} elements")


# What a fast check meets when an argument is not an array the kernel can take.
_NOT_AN_ARRAY = (AttributeError, BufferError, KeyError, TypeError, ValueError)


def _optional(arr, dtype, size, *, output=True):
    return ffi.NULL if arr is None else _array(arr, dtype, size, output=output)


def _parallelism() -> tuple[int, int]:
    """Every C kernel's last two arguments: the most threads it may use (one, where the extension
    was built without OpenMP) and the factor on its parallel thresholds."""
    return get_num_threads() if OPENMP else 1, parallel_scale()


_ERRORS = {
    lib.GK_BAD_LABEL: (ValueError, "a label is outside [0, classes) and is not ignore_index"),
    lib.GK_NO_MEMORY: (MemoryError, "the C kernel could not allocate its scratch memory"),
    lib.GK_BAD_ARGUMENT: (ValueError, "an argument of the C kernel is outside its documented set"),
}


def _check(status: int) -> None:
    if status:  # GK_OK is 0
        error, message = _ERRORS.get(status, (RuntimeError, f"the C kernel failed with status {status}"))
        raise error(message)


def _row_shape(z) -> tuple[int, int]:
    if z.ndim != 2:
        raise ValueError("C row kernels take 2-D arrays")
    return z.shape


def _rows(fns, z):
    """The function for z's dtype, that dtype, and z's (rows, classes)."""
    fn, dt = _select(fns, z)
    return fn, dt, *_row_shape(z)


def _mask(mask, n, *, output=False):
    return _array(mask, _UINT8, (n + 7) // 8, output=output, pointer=_UINT8_POINTER)


# ---------------------------------------------------------------------------------------------
# Kernel factories: each takes the C functions of one kernel in one variant (dtype -> function)


def _mappable(kernel: _catalog.Kernel) -> bool:
    """Whether `_map` makes the kernel: one output and one or two float inputs of its size."""
    return (len(kernel.outputs) == 1 and kernel.layout in ("elementwise", "rows") and len(kernel.inputs) <= 2
            and "mask" not in kernel.inputs)


def _map(kernel: _catalog.Kernel, fns):
    """A `_mappable` kernel called as (out, x) or (out, a, b), arrays of n elements, then any float
    options (leaky ReLU's slope, which C takes after n); in the "rows" layout, of 2-D (rows, classes)
    arrays.

    Each form checks its arrays inline, in the few operations a call on small arrays can afford (a
    helper call per array costs more than the C kernel there); when that fails, the full checks
    run and raise what is wrong."""
    rows = kernel.layout == "rows"
    plans = {dt: (fn, _FLOAT_POINTERS[dt]) for dt, fn in fns.items()}

    def checked(out, first, *others):
        fn, dt = _select(fns, first)
        if rows:
            _row_shape(first)
        n = first.size
        return fn, _array(out, dt, n, True), _array(first, dt, n), *(_array(a, dt, n) for a in others)

    def unary(out, x, *options):
        try:
            fn, array = plans[x.dtype]
            n = x.size
            out_ptr, x_ptr = ffi.from_buffer(array, out, True), ffi.from_buffer(array, x)
            ready = len(out_ptr) == n == len(x_ptr) and out.dtype == x.dtype
        except _NOT_AN_ARRAY:
            ready = False
        if not ready:
            fn, out_ptr, x_ptr = checked(out, x)
        _check(fn(out_ptr, x_ptr, n, *options, *_parallelism()))

    def binary(out, a, b, *options):
        try:
            fn, array = plans[a.dtype]
            n = a.size
            out_ptr, a_ptr, b_ptr = ffi.from_buffer(array, out, True), ffi.from_buffer(array, a), ffi.from_buffer(array, b)
            ready = len(out_ptr) == n == len(a_ptr) == len(b_ptr) and out.dtype == a.dtype == b.dtype
        except _NOT_AN_ARRAY:
            ready = False
        if not ready:
            fn, out_ptr, a_ptr, b_ptr = checked(out, a, b)
        _check(fn(out_ptr, a_ptr, b_ptr, n, *options, *_parallelism()))

    def unary_rows(out, x):
        fn, out_ptr, x_ptr = checked(out, x)
        _check(fn(out_ptr, x_ptr, *x.shape, *_parallelism()))

    def binary_rows(out, a, b):
        fn, out_ptr, a_ptr, b_ptr = checked(out, a, b)
        _check(fn(out_ptr, a_ptr, b_ptr, *a.shape, *_parallelism()))

    forms = {(1, False): unary, (2, False): binary, (1, True): unary_rows, (2, True): binary_rows}
    return _implements(kernel.name)(forms[len(kernel.inputs), rows])


def _relu_forward_mask(fns):
    def relu_forward_mask(y, mask, x):
        fn, dt = _select(fns, x)
        n = x.size
        _check(fn(_array(y, dt, n, output=True), _mask(mask, n, output=True), _array(x, dt, n), n, *_parallelism()))

    return relu_forward_mask


def _relu_backward_mask(fns):
    def relu_backward_mask(dx, dy, mask):
        fn, dt = _select(fns, dy)
        n = dy.size
        _check(fn(_array(dx, dt, n, output=True), _array(dy, dt, n), _mask(mask, n), n, *_parallelism()))

    return relu_backward_mask


def _softmax_cross_entropy(fns):
    def softmax_cross_entropy(dz, losses, z, labels, weight, ignore_index, label_smoothing, grad_scale):
        fn, dt, rows, classes = _rows(fns, z)
        n = z.size
        total = ffi.new("double *")
        _check(fn(_optional(dz, dt, n), _array(losses, dt, rows, True), total, _array(z, dt, n),
                  _array(labels, _INT64, rows, pointer=_INT64_POINTER), _array(weight, dt, classes), rows, classes,
                  int(ignore_index), float(label_smoothing), float(grad_scale), *_parallelism()))
        return total[0]

    return softmax_cross_entropy


def _softmax_cross_entropy_soft(fns):
    def softmax_cross_entropy_soft(dz, losses, z, targets, weight, label_smoothing, grad_scale):
        fn, dt, rows, classes = _rows(fns, z)
        n = z.size
        total = ffi.new("double *")
        _check(fn(_optional(dz, dt, n), _array(losses, dt, rows, True), total, _array(z, dt, n),
                  _array(targets, dt, n), _array(weight, dt, classes), rows, classes, float(label_smoothing),
                  float(grad_scale), *_parallelism()))
        return total[0]

    return softmax_cross_entropy_soft


def _elementwise_loss(name, fns):
    def kernel(grad, losses, a, b, grad_scale):
        fn, dt = _select(fns, a)
        n = a.size
        total = ffi.new("double *")
        _check(fn(_optional(grad, dt, n), _optional(losses, dt, n), total, _array(a, dt, n),
                  _array(b, dt, n), n, float(grad_scale), *_parallelism()))
        return total[0]

    return _implements(name)(kernel)


# Linear layers: the GEMMs are NumPy's BLAS, the passes around them serial C


def _masked_bias_gradient(fns, transposed_fns):
    def masked_bias_gradient(db, dz, dy, relu_output):
        """db = dy summed over its rows; with relu_output, of dz = dy masked by it (written to dz)."""
        transposed = not dy.flags.c_contiguous
        if transposed:  # Fortran-ordered: its transpose is C-ordered, one row per column of dy
            dz, dy, relu_output = (None if a is None else a.T for a in (dz, dy, relu_output))
        fn, dt, rows, cols = _rows(transposed_fns if transposed else fns, dy)
        n = dy.size
        _check(fn(_array(db, dt, rows if transposed else cols, output=True), _optional(dz, dt, n),
                  _array(dy, dt, n), _optional(relu_output, dt, n, output=False), rows, cols))

    return masked_bias_gradient


def _linear_relu_forward(fns):
    def linear_relu_forward(y, x, w, b):
        fn, dt, rows, cols = _rows(fns, y)
        linear_forward(y, x, w, None)
        _check(fn(_array(y, dt, y.size, output=True), _optional(b, dt, cols, output=False), rows, cols))

    return linear_relu_forward


@functools.cache
def kernels(variant: str) -> types.SimpleNamespace:
    """Every kernel of the contract, running the C functions of `variant` (one of RUNNABLE)."""
    if variant not in RUNNABLE:
        raise ValueError(f"variant {variant!r} does not run here; these do: {', '.join(RUNNABLE)}")

    def fns(name):
        return functions(name, variant)

    k = types.SimpleNamespace(**{kernel.name: _map(kernel, fns(kernel.name))
                                 for kernel in _catalog.KERNELS if _mappable(kernel)})
    k.relu_forward_mask = _relu_forward_mask(fns("relu_forward_mask"))
    k.relu_backward_mask = _relu_backward_mask(fns("relu_backward_mask"))
    k.softmax_cross_entropy = _softmax_cross_entropy(fns("softmax_cross_entropy"))
    k.softmax_cross_entropy_soft = _softmax_cross_entropy_soft(fns("softmax_cross_entropy_soft"))
    for name in ("sigmoid_binary_cross_entropy", "mse"):
        setattr(k, name, _elementwise_loss(name, fns(name)))
    masked_bias_gradient = _masked_bias_gradient(fns("bias_gradient"), fns("bias_gradient_transposed"))
    k.linear_forward = linear_forward
    k.linear_relu_forward = _linear_relu_forward(fns("bias_relu"))
    k.linear_backward, k.linear_relu_backward, k.linear_cross_entropy = backward_kernels(
        lambda db, dy: masked_bias_gradient(db, None, dy, None), masked_bias_gradient, k.relu_backward,
        k.softmax_cross_entropy)
    return k
