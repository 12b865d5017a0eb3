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


def _signed(bound: Callable, impl: Callable) -> Callable:
    """`bound` with the name, documentation and signature of `impl` less its `kernels` argument."""
    functools.update_wrapper(bound, impl)
    params = list(inspect.signature(impl).parameters.values())[1:]
    bound.__signature__ = inspect.Signature(params)
    return bound


def _bind(impl: Callable, kernels: types.SimpleNamespace) -> Callable:
    """`impl` on fixed kernels."""

    def bound(*args, **kwargs):
        return impl(kernels, *args, **kwargs)

    return _signed(bound, impl)


def _follow(op_name: str, impl: Callable) -> Callable:
    """`impl` on the kernels of the backend in force at each call: under "auto", those tuned for the
    op, the dtype and the size class of its first array (see `_tuning`), remembered per dtype and
    power of two of the size (a size class is a range of them) until the table changes."""
    tuned: dict[tuple, types.SimpleNamespace] = {}
    generation = _tuning.generation

    def tuned_kernels(first) -> types.SimpleNamespace:
        nonlocal generation
        if generation != _tuning.generation:
            tuned.clear()
            generation = _tuning.generation
        key = (first.dtype, first.size.bit_length())
        try:
            return tuned[key]
        except KeyError:
            kernels = tuned[key] = _kernels(_tuning.choose(op_name, first))
            return kernels

    def bound(*args, **kwargs):
        name = _backends.get_backend()
        if name != "auto":
            return impl(_kernels(name), *args, **kwargs)
        first = args[0] if args else next(iter(kwargs.values()), None)
        kernels = tuned_kernels(first) if isinstance(first, numpy.ndarray) else _kernels(name)
        return impl(kernels, *args, **kwargs)

    return _signed(bound, impl)


def public_ops() -> dict[str, Callable]:
    """Every op, dispatching on each call to the backend in force (see `use_backend`)."""
    return {name: _follow(name, impl) for name, impl in OPS.items()}


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
            setattr(self, op_name, _bind(impl, kernels))

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
