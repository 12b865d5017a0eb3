"""c += a @ b with the BLAS NumPy runs, which NumPy's matmul cannot do (it has no beta = 1).

NumPy's wheels bundle OpenBLAS as the scipy-openblas library; where it is found, its cblas GEMM is
called with beta = 1 through cffi in ABI mode (no compiler needed). dlopen returns the library
NumPy has already loaded, so it is the same code and the same thread pool as NumPy's matmul.
Elsewhere (a NumPy built against another BLAS, or operands BLAS cannot take as they are), the
product goes through a scratch block of c's columns and is added: the same result up to the
rounding of one more addition, at the cost of a pass over c.
"""

import glob
import os

import cffi
import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

# The ILP64 build (64-bit integers, symbol suffix 64_) that NumPy >= 2 ships, and the LP64 one.
_GEMM_SYMBOLS = {
    np.dtype(np.float32): ("scipy_cblas_sgemm64_", "scipy_cblas_sgemm"),
    np.dtype(np.float64): ("scipy_cblas_dgemm64_", "scipy_cblas_dgemm"),
}
_CDEF = "\n".join(
    f"void {name}(int, int, int, {i}, {i}, {i}, {t}, const {t} *, {i}, const {t} *, {i}, {t}, {t} *, {i});"
    for t, names in (("float", _GEMM_SYMBOLS[np.dtype(np.float32)]), ("double", _GEMM_SYMBOLS[np.dtype(np.float64)]))
    for name, i in zip(names, ("int64_t", "int"))
)
_INT_LIMITS = {"int64_t": 2**63 - 1, "int": 2**31 - 1}


def _numpy_openblas() -> list[str]:
    """The scipy-openblas libraries next to NumPy: numpy.libs (Linux, Windows), numpy/.dylibs (macOS)."""
    here = os.path.dirname(np.__file__)
    patterns = [os.path.join(here, "..", "numpy.libs", "*scipy_openblas*"), os.path.join(here, ".dylibs", "*scipy_openblas*")]
    return sorted(path for pattern in patterns for path in glob.glob(pattern))


def _load() -> dict:
    """dtype -> (the GEMM function, the largest integer it takes, the array type of its matrices,
    the FFI); {} without the library."""
    ffi = cffi.FFI()
    ffi.cdef(_CDEF)
    for path in _numpy_openblas():
        try:
            lib = ffi.dlopen(path)
        except OSError:
            continue
        found = {}
        for dtype, names in _GEMM_SYMBOLS.items():
            for name, integer in zip(names, ("int64_t", "int")):
                try:
                    fn = getattr(lib, name)
                    element = ffi.typeof(fn).args[12].item.cname  # c's: float or double
                    found[dtype] = (fn, _INT_LIMITS[integer], ffi.typeof(f"{element}[]"), ffi)
                    break
                except AttributeError:  # not in this build
                    continue
        if len(found) == len(_GEMM_SYMBOLS):
            return found
    return {}


_GEMM = _load()


def direct() -> bool:
    """Whether accumulate() calls BLAS with beta = 1 here (else it goes through a scratch block)."""
    return bool(_GEMM)


def _operand(arr: np.ndarray):
    """(transpose flag, leading dimension) under which row-major BLAS reads `arr` in place, or None."""
    rows, cols = arr.shape
    item = arr.itemsize
    row_stride, col_stride = arr.strides
    if (col_stride == item or cols == 1) and row_stride % item == 0 and row_stride >= max(1, cols) * item:
        return _NO_TRANS, row_stride // item
    if (row_stride == item or rows == 1) and col_stride % item == 0 and col_stride >= max(1, rows) * item:
        return _TRANS, col_stride // item
    return None


def _address(arr: np.ndarray, matrix, ffi):
    """A pointer to `arr`'s first element for BLAS: the buffer of a contiguous array or of its
    transpose (~0.3 us), through `ctypes` (~2 us) only for a block of a larger matrix."""
    if arr.flags.c_contiguous:
        return ffi.from_buffer(matrix, arr)
    if arr.flags.f_contiguous:
        return ffi.from_buffer(matrix, arr.T)
    return ffi.cast(f"{matrix.item.cname} *", arr.ctypes.data)


# The largest scratch block accumulate() allocates when BLAS cannot add into c itself.
SCRATCH_BYTES = 64 << 20


def accumulate(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """c += a @ b for 2-D arrays of c's dtype, c overlapping neither; BLAS adds into a C- or
    Fortran-contiguous c itself."""
    if c.flags.f_contiguous and not c.flags.c_contiguous:  # as the C-ordered c^T += b^T a^T
        accumulate(c.T, b.T, a.T)
        return
    (m, k), n = a.shape, b.shape[1]
    if c.size == 0 or k == 0:
        return
    gemm = _GEMM.get(c.dtype)
    ops = (_operand(a), _operand(b))
    if gemm is not None and None not in ops and c.flags.c_contiguous:
        fn, limit, matrix, ffi = gemm
        (trans_a, lda), (trans_b, ldb) = ops
        if max(m, n, k, lda, ldb) <= limit:
            fn(_ROW_MAJOR, trans_a, trans_b, m, n, k, 1.0, _address(a, matrix, ffi), lda, _address(b, matrix, ffi),
               ldb, 1.0, _address(c, matrix, ffi), n)
            return
    width = max(1, min(n, SCRATCH_BYTES // (m * c.itemsize)))
    scratch = np.empty((m, width), c.dtype)
    for first in range(0, n, width):
        block = scratch[:, : min(width, n - first)]
        np.matmul(a, b[:, first : first + width], out=block)
        c[:, first : first + width] += block
