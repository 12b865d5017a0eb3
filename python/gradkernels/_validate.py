"""Argument checks shared by every backend. They run once, in the API layer, before any kernel."""

import math
import numbers
import operator

import numpy as np

FLOAT32, FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)
FLOAT_DTYPES = (FLOAT32, FLOAT64)
REDUCTIONS = ("mean", "sum", "none")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _native(arr: np.ndarray) -> np.ndarray:
    # Byte-swapped data (e.g. read from a big-endian file) is converted once, so kernels see one layout.
    return arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))


def float_array(name: str, value, like: tuple[str, np.ndarray] | None = None) -> np.ndarray:
    """`value` as an ndarray of float32 or float64; `like` is the (name, array) whose dtype it must share."""
    if type(value) is np.ndarray:
        # The common call, in two identity tests: NumPy's native float dtypes are singletons.
        dtype = value.dtype
        if (dtype is FLOAT32 or dtype is FLOAT64) and (like is None or dtype is like[1].dtype):
            return value
    arr = _native(np.asarray(value))
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be float32 or float64, got {arr.dtype}")
    if like is not None and arr.dtype != like[1].dtype:
        raise TypeError(
            f"{name} is {arr.dtype} but {like[0]} is {like[1].dtype}: mixed float dtypes are not supported"
        )
    return arr


def integer_array(name: str, value) -> np.ndarray:
    arr = _native(np.asarray(value))
    if arr.dtype.kind not in "iu":
        raise TypeError(f"{name} must have an integer dtype, got {arr.dtype}")
    return arr


def same_shape(name: str, arr: np.ndarray, ref_name: str, ref: np.ndarray) -> None:
    if arr.shape != ref.shape:
        raise ValueError(f"{name} has shape {arr.shape} but {ref_name} has shape {ref.shape}; they must match")


def at_least_1d(name: str, arr: np.ndarray) -> None:
    if arr.ndim == 0:
        raise ValueError(f"{name} must have at least one axis (the last is the class axis), got a 0-d array")


def out_array(out, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape} but the result has shape {shape}")
    if out.dtype != dtype:
        raise ValueError(f"out has dtype {out.dtype} but the result has dtype {dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def real_scalar(name: str, value) -> float:
    if type(value) is float or type(value) is int:  # before the slower check against numbers.Real
        return float(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    return float(value)


def flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def integer_scalar(name: str, value) -> int:
    if type(value) is int:
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    return result


def negative_slope(value) -> float:
    slope = real_scalar("negative_slope", value)
    if not math.isfinite(slope):
        raise ValueError(f"negative_slope must be finite, got {slope}")
    return slope


def reduction(value) -> str:
    if value not in REDUCTIONS:
        raise ValueError(f"reduction must be one of 'mean', 'sum', 'none', got {value!r}")
    return value


def label_smoothing(value) -> float:
    eps = real_scalar("label_smoothing", value)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {eps}")
    return eps


def denominator(value, reduction: str):
    """The caller's denominator of a mean (None: the call's own count)."""
    if value is None:
        return None
    d = real_scalar("denominator", value)
    if reduction != "mean":
        raise ValueError(f"denominator is for reduction='mean', not {reduction!r}")
    if not (math.isfinite(d) and d >= 0):
        raise ValueError(f"denominator must be finite and >= 0, got {d}")
    return d


def ignore_index(value) -> int:
    index = integer_scalar("ignore_index", value)
    if not INT64_MIN <= index <= INT64_MAX:
        raise ValueError(f"ignore_index must fit in int64, got {index}")
    return index


# Up to this many labels over this many classes, np.bincount (a plain C loop) checks the range in
# 0.55-0.95 of the time a min and a max take (NumPy's reductions cost ~2 us each however short the
# array; measured on a Zen 3, 0.55 at 32 labels, 0.93 at 512 over 4096 classes); from ~1024 labels
# on, the histogram it writes costs more. The labels are clipped to n_classes first (included in
# those figures), so that no label, however large, can make it allocate more than n_classes + 1
# counts.
_BINCOUNT_MAX_LABELS, _BINCOUNT_MAX_CLASSES = 512, 4096


def labels_in_range(labels: np.ndarray, n_classes: int, ignore: int) -> bool:
    """Every label in [0, n_classes) or equal to `ignore`, else ValueError naming the first bad one.
    Returns whether any label may equal `ignore` (False when none can)."""
    if labels.size == 0:
        return False
    if labels.size <= _BINCOUNT_MAX_LABELS and n_classes <= _BINCOUNT_MAX_CLASSES:
        try:
            counts = np.bincount(np.minimum(labels.reshape(-1), n_classes, dtype=np.int64))
        except (TypeError, ValueError):  # a negative label, or one of uint64: the general path below
            counts = None
        if counts is not None and len(counts) <= n_classes:
            return 0 <= ignore < len(counts) and bool(counts[ignore])
    lo, hi = int(labels.min()), int(labels.max())
    if 0 <= lo and hi < n_classes:  # the common case, in two cheap reductions
        return lo <= ignore <= hi
    bad = ((labels < 0) | (labels >= n_classes)) & (labels != ignore)
    if bad.any():
        position = np.unravel_index(np.argmax(bad), labels.shape)
        where = ", ".join(str(int(i)) for i in position)
        raise ValueError(
            f"labels[{where}] = {labels[position]} is outside [0, {n_classes}) and is not ignore_index ({ignore})"
        )
    return True


def mask_array(mask, size: int) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.dtype != np.uint8:
        raise TypeError(f"mask must be uint8 (the packed bits from relu_with_mask), got {arr.dtype}")
    expected = (size + 7) // 8
    if arr.ndim != 1 or arr.size != expected:
        raise ValueError(
            f"mask has shape {arr.shape} but dy has {size} elements, which pack into ({expected},) bytes"
        )
    return arr
