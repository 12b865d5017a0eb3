"""Threads: how many our kernels may use. A leaf module: the backends import it, it imports none
of them."""

import contextvars
import os

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


class thread_limit:
    """`with thread_limit(n):` kernels called in the block, in this thread (and context) only, run
    on at most n threads: one between two GEMMs of a fused loop, or per task of a Dask worker that
    runs several tasks at once. A class rather than a generator: entering one costs a fraction of
    a microsecond, which the fused loop pays per chunk."""

    def __init__(self, n: int):
        n = integer_scalar("n", n)
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        self._n = n

    def __enter__(self) -> None:
        self._token = _thread_limit.set(self._n)

    def __exit__(self, *exc_info) -> None:
        _thread_limit.reset(self._token)


# After each parallel region libgomp's idle threads spin before they sleep: by default ~10 ms of a
# core (measured on a 2-core Zen 3), right through the GEMM that usually follows in training, whose
# BLAS threads then share their cores with them. A layer step with a parallel activation between
# its GEMMs ran 1.1x (4096 x 1024) to 8x (200 x 256) slower than with our kernels serial. So the
# kernels' parallel thresholds (measured with the threads asleep, internal.h and kernels/_jit.py)
# are scaled up 64x, to sizes whose second thread saves more than that costs, unless the process
# started with a short spin. libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT once, as it loads,
# and PyTorch's pool follows them too when it shares that libgomp: gradkernels sets neither, since
# a short spin made PyTorch's own layer step 2.3x slower here.
SHORT_SPIN_COUNT = 1000
DEFAULT_SPIN_SCALE = 64


def _spin_count(env) -> int | None:
    """The spins libgomp will make, from the environment as it reads it; None: its default."""
    value = env.get("GOMP_SPINCOUNT", "").strip().lower()
    if value:
        if value in ("infinite", "infinity"):
            return 2**63 - 1
        multiplier = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}.get(value[-1:], 1)
        digits = value[:-1] if multiplier > 1 else value
        if digits.isdigit():
            return int(digits) * multiplier
    policy = env.get("OMP_WAIT_POLICY", "").strip().lower()
    return {"passive": 0, "active": 2**63 - 1}.get(policy)


def parallel_scale_for(env) -> int:
    spins = _spin_count(env)
    return 1 if spins is not None and spins <= SHORT_SPIN_COUNT else DEFAULT_SPIN_SCALE


process_parallel_scale = parallel_scale_for(os.environ)

_parallel_scale: contextvars.ContextVar[int | None] = contextvars.ContextVar("gradkernels_parallel_scale",
                                                                            default=None)


def parallel_scale() -> int:
    """The factor on the parallel thresholds of a kernel called now: the process's, or the one an
    `at_parallel_scale` function running in this thread (and context) chose."""
    scale = _parallel_scale.get()
    return process_parallel_scale if scale is None else scale


# gradkernels.torch's activations and losses run with the thresholds as measured: their neighbours
# are PyTorch's kernels, which run on the process's one libgomp pool, as ours do (PyTorch's
# libgomp.so.1 and the system's share a name, so the process loads one), not on OpenBLAS's
# spinning threads. Measured on a 2-core AVX-512 Xeon under libgomp's default spin: relu forward +
# backward at 4096 x 4096 through gradkernels.torch took 17.5 ms at 1 against 34.0 at 64, and a
# torch.nn MLP step (3 layers, 1024 x 256 to 32768 x 64) took no longer with them than with 64.
BESIDE_PYTORCH_SCALE = 1


def at_parallel_scale(n: int, fn):
    """fn, calling its kernels with their parallel thresholds scaled by n instead of by the
    process's factor (in the calling thread and context only)."""

    def scaled(*args):
        token = _parallel_scale.set(n)
        try:
            return fn(*args)
        finally:
            _parallel_scale.reset(token)

    return scaled


def openmp_wait() -> str:
    """How libgomp's idle threads wait, and what that makes of the parallel thresholds (for `info`)."""
    chosen = [f"{name}={os.environ[name]}" for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if name in os.environ]
    setting = ", ".join(chosen) if chosen else "libgomp's default spin"
    scale = process_parallel_scale
    beside_pytorch = f", x{BESIDE_PYTORCH_SCALE} in gradkernels.torch's activations and losses"
    return f"{setting}: parallel thresholds x{scale}" + (beside_pytorch if scale != BESIDE_PYTORCH_SCALE else "")
