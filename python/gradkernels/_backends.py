"""Backend registry and selection.

A backend is a set of kernels with the names `_catalog` declares. Every kernel takes its
outputs first, then its inputs, then scalars; the API layer has validated every
argument and laid the arrays out as the kernel expects before calling it (see `gradkernels._ops`):

- elementwise kernels get 1-D contiguous arrays of equal length,
- row kernels (softmax family, cross-entropy) get 2-D C-contiguous (rows, classes) arrays,
- linear kernels get C- or Fortran-contiguous 2-D arrays (BLAS reads either) and C-contiguous
  outputs, except dw, laid out like w, linear_relu_backward's dz (a scratch output), da and a,
  which share one of the two layouts, and linear_cross_entropy's logits, a C-contiguous scratch
  block of as many rows as a chunk has; linear_backward's and linear_relu_backward's dx may be
  None (not wanted), and linear_cross_entropy's dx, dw and db all three (the losses alone),
- a fused loss's gradient output may be None (the losses alone),
- no kernel is called with a zero-size array,
- an elementwise or row kernel's output may be the very array of an input (in-place), never a
  partial overlap of one; a linear kernel's outputs never overlap its inputs.
"""

import contextlib
import contextvars
import dataclasses
import importlib
import importlib.metadata
import threading
import types
from typing import Callable, Iterator

import numpy

from . import _catalog
from ._threads import get_num_threads

# "auto" takes the first available backend in this order.
AUTO_PREFERENCE = ("c", "numba", "numpy")
NAMES = ("numpy", "numba", "c")


@dataclasses.dataclass(frozen=True)
class BackendInfo:
    name: str
    kernels: types.SimpleNamespace | None
    reason: str | None
    version: str | None
    parallel: bool = False  # whether its kernels follow set_num_threads
    variant: str | None = None  # the code its kernels run: the C build's ISA variant, Numba's target CPU

    @property
    def available(self) -> bool:
        return self.kernels is not None

    @property
    def threads(self) -> int:
        if not self.available:
            return 0
        return get_num_threads() if self.parallel else 1


def _namespace(package: str, wrap: Callable = lambda kernel: kernel) -> types.SimpleNamespace:
    """The kernels of the contract, each taken from its family's module of a backend's package (and
    passed through `wrap`)."""
    return types.SimpleNamespace(**{
        k.name: wrap(getattr(importlib.import_module(f"{package}.{k.family}", __package__), k.name))
        for k in _catalog.KERNELS})


def _load_numpy() -> BackendInfo:
    # Every kernel runs `quiet`, since all its arithmetic is NumPy's. (The other backends' kernels
    # compute outside NumPy's error handling, but for the linear driver's GEMMs, quiet themselves.)
    # NumPy's ufuncs run on one thread; its BLAS (linear layers) keeps its own pool.
    from ._quiet import quiet

    return BackendInfo("numpy", _namespace(".reference", quiet), None, numpy.__version__)


def _load_numba() -> BackendInfo:
    try:
        numba = importlib.import_module("numba")
    except ImportError as exc:
        return BackendInfo("numba", None, f"numba is not installed ({exc})", None)
    if numba.config.DISABLE_JIT:
        return BackendInfo("numba", None, "NUMBA_DISABLE_JIT is set: the kernels would run as plain Python", numba.__version__)
    from .kernels._jit import THREAD_SAFE

    import llvmlite.binding

    target = numba.config.CPU_NAME or llvmlite.binding.get_host_cpu_name()
    return BackendInfo("numba", _namespace(".kernels"), None, numba.__version__, parallel=THREAD_SAFE, variant=target)


def _load_c() -> BackendInfo:
    try:
        from . import _cbackend
    except ImportError as exc:  # not built (no C compiler at install time) or not loadable
        return BackendInfo("c", None, f"the C extension failed to import: {exc}", None)
    except ValueError as exc:  # GRADKERNELS_MAX_ISA names no ISA
        return BackendInfo("c", None, str(exc), None)
    # Built without OpenMP, its kernels run on one thread.
    return BackendInfo("c", _cbackend.kernels(_cbackend.VARIANT), None, _version(), parallel=_cbackend.OPENMP,
                       variant=_cbackend.VARIANT)


def _version() -> str:
    try:
        return importlib.metadata.version("gradkernels")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


_LOADERS: dict[str, Callable[[], BackendInfo]] = {"numpy": _load_numpy, "numba": _load_numba, "c": _load_c}
_loaded: dict[str, BackendInfo] = {}
_load_lock = threading.Lock()


def info(name: str) -> BackendInfo:
    """The backend's info, loading it on first use (importing numba costs ~0.3 s, so only on demand)."""
    check_name(name, allow_auto=False)
    with _load_lock:
        if name not in _loaded:
            _loaded[name] = _LOADERS[name]()
        return _loaded[name]


def check_name(name: object, *, allow_auto: bool = True) -> None:
    valid = NAMES + ("auto",) if allow_auto else NAMES
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a str, got {type(name).__name__}")
    if name not in valid:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(map(repr, valid))}")


def resolve(name: str) -> BackendInfo:
    """The available backend that `name` stands for; RuntimeError if it is not available."""
    check_name(name)
    if name == "auto":
        for candidate in AUTO_PREFERENCE:
            found = info(candidate)
            if found.available:
                return found
        raise AssertionError("the numpy backend is always available")
    found = info(name)
    if not found.available:
        raise RuntimeError(f"backend {name!r} is not available: {found.reason}")
    return found


# The process-wide choice, and a per-context override that `use_backend` sets, so that a
# `with use_backend(...)` block in one thread leaves every other thread's choice alone.
_default_name = "auto"
_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("gradkernels_backend", default=None)


def set_backend(name: str) -> None:
    """Choose the backend for every later call in the process: "numpy", "numba", "c" or "auto"."""
    global _default_name
    resolve(name)
    _default_name = name


def get_backend() -> str:
    """The name in force here: the innermost `use_backend`, else the last `set_backend` ("auto" by default)."""
    override = _override.get()
    return _default_name if override is None else override


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Use backend `name` inside the block (this thread and context only)."""
    resolve(name)
    token = _override.set(name)
    try:
        yield
    finally:
        _override.reset(token)


def backends() -> dict[str, dict[str, object]]:
    """Every backend by name: whether it is available, why not, its version, thread count and
    variant (the C backend's ISA variant, Numba's target CPU; None for NumPy)."""
    return {
        name: {"available": b.available, "reason": b.reason, "version": b.version, "threads": b.threads,
               "variant": b.variant}
        for name in NAMES
        for b in (info(name),)
    }
