"""`quiet`: run a function with NumPy's floating-point error handling off.

Inf and NaN are results the formulas define, so a caller's np.seterr(all="raise") must not turn
them into exceptions (nor its default "warn" into warnings) in the NumPy arithmetic our calls do:
the NumPy backend's kernels, the linear driver's GEMMs, a few sums in the API layer.
np.errstate as a decorator builds its error state on every call (~1 us, as much as a small
kernel); NumPy 2 keeps that state in a context variable, which `quiet` sets to one state built
once (~0.1 us). NumPy 1 has no such variable, and np.errstate does the work there.
"""

import functools

import numpy as np

try:
    from numpy._core._ufunc_config import _extobj_contextvar, _make_extobj
except ImportError:  # NumPy 1, or a layout this module does not know
    _extobj_contextvar = None


if _extobj_contextvar is not None:
    _IGNORE_ALL = _make_extobj(all="ignore")

    def quiet(fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            token = _extobj_contextvar.set(_IGNORE_ALL)
            try:
                return fn(*args, **kwargs)
            finally:
                _extobj_contextvar.reset(token)

        return run

else:
    quiet = np.errstate(all="ignore")
