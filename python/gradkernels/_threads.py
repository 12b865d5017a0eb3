"""Threads: how many our kernels may use, and how the OpenMP runtime that the C backend and
Numba's OpenMP layer share is loaded. A leaf module: the backends import it, it imports none of
them."""

import contextlib
import contextvars
import os
from typing import Iterator

from ._validate import integer_scalar


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not every OS has affinity masks
        return os.cpu_count() or 1


MAX_THREADS = _cpu_count()
_num_threads = MAX_THREADS


def set_num_threads(n: int) -> None:
    """Threads for the parallel backends' kernels, 1 to the number of cores this process may use."""
    global _num_threads
    n = integer_scalar("n", n)
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n must be between 1 and {MAX_THREADS} (the cores this process may use), got {n}")
    _num_threads = n


def get_num_threads() -> int:
    limit = _thread_limit.get()
    return _num_threads if limit is None else min(limit, _num_threads)


_thread_limit: contextvars.ContextVar[int | None] = contextvars.ContextVar("gradkernels_thread_limit", default=None)


@contextlib.contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """Kernels called in the block, in this thread (and context) only, run on at most n threads:
    one between two GEMMs of a fused loop, or per task of a Dask worker that runs several tasks
    at once."""
    n = integer_scalar("n", n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    token = _thread_limit.set(n)
    try:
        yield
    finally:
        _thread_limit.reset(token)


# After a parallel region libgomp's threads spin before they sleep: 300,000 pause instructions by
# default, milliseconds, on the very cores BLAS's threads need for the GEMM that usually comes
# next. A layer step (GEMM, parallel sigmoid, GEMMs) ran 8x slower than with our kernels serial,
# measured on a 2-core Zen 3. 1,000 spins (tens of microseconds) still carry a thread across the
# gap between two of our calls from Python; sleeping at once (0) costs ~100 us per parallel call
# on a VM, where waking a thread is slow.
OPENMP_SPIN_COUNT = 1000
OPENMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

openmp_wait = "libgomp not loaded"  # how libgomp's idle threads wait, as `info` reports it


def _libgomp_loaded() -> bool:
    try:
        with open("/proc/self/maps") as maps:
            return "libgomp" in maps.read()
    except OSError:  # not Linux: no way to tell, and then nothing is set
        return True


@contextlib.contextmanager
def loading_openmp() -> Iterator[None]:
    """Around an import that may load libgomp (the C extension, Numba's OpenMP layer): libgomp
    reads its wait settings from the environment once, as it loads. Unless the user set
    OMP_WAIT_POLICY or GOMP_SPINCOUNT, or libgomp is already loaded, it loads with
    GOMP_SPINCOUNT=OPENMP_SPIN_COUNT; os.environ is as it was again afterwards, so child processes
    and the user's own code never see the variable."""
    global openmp_wait
    chosen = [f"{name}={os.environ[name]}" for name in OPENMP_VARIABLES if name in os.environ]
    if chosen:
        openmp_wait = f"{', '.join(chosen)} (set by the user)"
        yield
        return
    if _libgomp_loaded():
        if openmp_wait == "libgomp not loaded":
            openmp_wait = "libgomp's own defaults (it was loaded before gradkernels)"
        yield
        return
    os.environ["GOMP_SPINCOUNT"] = str(OPENMP_SPIN_COUNT)
    try:
        yield
    finally:
        del os.environ["GOMP_SPINCOUNT"]
        if _libgomp_loaded():
            openmp_wait = f"GOMP_SPINCOUNT={OPENMP_SPIN_COUNT} (gradkernels' default)"
