"""Binding the ops of `_ops` to a backend: the module-level functions follow the backend in force,
`backend(name)` returns an object whose methods are fixed to one backend."""

import functools
import inspect
import types
from typing import Callable

import numpy

from . import _backends, _tuning
from ._ops import OPS

# Resolved kernels by backend name; availability does not change within a process.
_kernels_by_name: dict[str, types.SimpleNamespace] = {}


def _kernels(name: str) -> types.SimpleNamespace:
    try:
        return _kernels_by_name[name]
    except KeyError:
        kernels = _backends.resolve(name).kernels
        _kernels_by_name[name] = kernels
        return kernels


def _bind(impl: Callable, kernels_for_call: Callable[[tuple, dict], types.SimpleNamespace]) -> Callable:
    @functools.wraps(impl)
    def bound(*args, **kwargs):
        return impl(kernels_for_call(args, kwargs), *args, **kwargs)

    params = list(inspect.signature(impl).parameters.values())[1:]  # drop `kernels`
    bound.__signature__ = inspect.Signature(params)
    return bound


def _in_force(op_name: str) -> Callable[[tuple, dict], types.SimpleNamespace]:
    """The kernels of the backend in force for a call of `op_name`: under "auto", the one tuned for
    the op, the dtype and the size class of its first array (see `_tuning`), remembered per dtype
    and size class until the table changes."""
    tuned: dict[tuple, types.SimpleNamespace] = {}
    generation = _tuning.generation

    def tuned_kernels(first) -> types.SimpleNamespace:
        nonlocal generation
        if generation != _tuning.generation:
            tuned.clear()
            generation = _tuning.generation
        key = (first.dtype, _tuning.size_class(first.size))
        try:
            return tuned[key]
        except KeyError:
            kernels = tuned[key] = _kernels(_tuning.choose(op_name, first))
            return kernels

    def kernels_for_call(args, kwargs):
        name = _backends.get_backend()
        if name != "auto":
            return _kernels(name)
        first = args[0] if args else next(iter(kwargs.values()), None)
        return tuned_kernels(first) if isinstance(first, numpy.ndarray) else _kernels(name)

    return kernels_for_call


def public_ops() -> dict[str, Callable]:
    """Every op, dispatching on each call to the backend in force (see `use_backend`)."""
    return {name: _bind(impl, _in_force(name)) for name, impl in OPS.items()}


class Backend:
    """Every op of the public API bound to one backend: `gk.backend("numpy").softmax(z)`; for the C
    backend, optionally to one of its ISA variants that this CPU runs (`variant="baseline"`)."""

    def __init__(self, name: str, variant: str | None = None):
        resolved = _backends.resolve(name)
        if variant is None or variant == resolved.variant:
            kernels = _kernels(resolved.name)
        elif resolved.name == "c":
            from . import _cbackend

            kernels = _cbackend.kernels(variant)
        else:
            raise ValueError(f"backend {resolved.name!r} has no variants to choose from")
        self.name = resolved.name
        self.variant = resolved.variant if variant is None else variant
        for op_name, impl in OPS.items():
            setattr(self, op_name, _bind(impl, lambda args, kwargs: kernels))

    def __repr__(self) -> str:
        variant = f" ({self.variant})" if self.variant else ""
        return f"<gradkernels backend {self.name!r}{variant}>"


@functools.lru_cache(maxsize=None)
def backend(name: str, variant: str | None = None) -> Backend:
    """The ops bound to backend `name` ("auto" resolves to its default, the first available of
    c, numba, numpy; only the module-level ops follow the tuned table), and for "c" to `variant`
    when given (one that this CPU runs; by default the one the process runs). Made once per name
    and variant (binding every op takes about a millisecond, which a Dask task calling it per
    chunk would pay)."""
    return Backend(name, variant)
