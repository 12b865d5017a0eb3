"""What every benchmark module shares (underscored, so that asv does not collect it as benchmarks):
the cases of `python -m gradkernels bench` (the same inputs and calls), parametrized by op,
backend (the C backend as it runs, and each of its ISA variants, "c-avx2" and so on; PyTorch,
when importable, as the outside peer; "plain-numpy", the NumPy a user writes for the op, which
bench's "x numpy" divides by), dtype and size class. A backend or variant that is not
available here skips (NotImplementedError in setup).

GRADKERNELS_BENCH_SIZES and GRADKERNELS_BENCH_DTYPES (comma-separated) narrow the sizes and
dtypes: .ci/run benchmarks small float32 only, to check quickly that every benchmark still runs."""

import os
import time

import numpy as np

import gradkernels as gk
from gradkernels import _bench, _catalog

BACKENDS = ["numpy", "numba", "c", "c-avx512", "c-avx2", "c-baseline", "torch", "plain-numpy"]
DTYPES = os.environ.get("GRADKERNELS_BENCH_DTYPES", "float32,float64").split(",")
SIZES = os.environ.get("GRADKERNELS_BENCH_SIZES", ",".join(_bench.SIZES)).split(",")

# Loads every backend (Numba's import alone takes half a second) here, once, in asv's fork server,
# which imports the suite before it forks a process per benchmark: otherwise every benchmark's setup
# paid for it, whichever backend it times.
gk.backends()


def _torch():
    """PyTorch, imported only by its own benchmarks (asv runs each in a process of its own, and
    the import takes about a second), or None."""
    return _bench._torch()


class _OpBenchmark:
    """Subclasses time the ops of one family (`parametrize`); asv times every (op, backend, dtype, size)."""

    OPS: tuple[str, ...] = ()
    param_names = ["op", "backend", "dtype", "size"]
    timeout = 600

    @classmethod
    def parametrize(cls, family):
        """Every op the catalog declares in `family`."""
        cls.OPS = tuple(op.name for op in _catalog.OPS if op.family == family)
        cls.params = [list(cls.OPS), BACKENDS, DTYPES, SIZES]
        return cls

    def setup(self, op, backend, dtype, size):
        torch = _torch() if backend == "torch" else None
        case = _bench.cases(torch)[op](size)
        inputs = case.inputs(np.random.default_rng(0), np.dtype(dtype))
        if backend == "torch":
            if case.torch_call is None:
                raise NotImplementedError("PyTorch is not installed, or has no such op")
            self.call = lambda: case.torch_call(*inputs)
        elif backend == "plain-numpy":
            self.call = lambda: case.idiom(*inputs)
        else:
            name, _, variant = backend.partition("-")
            if not gk.backends()[name]["available"]:
                raise NotImplementedError(gk.backends()[name]["reason"])
            if variant:
                from gradkernels import _cbackend

                if variant not in _cbackend.RUNNABLE:
                    raise NotImplementedError(f"this CPU does not run the C backend's {variant} variant")
            bound = gk.backend(name, variant or None)
            self.call = lambda: case.call(bound, *inputs)
        self.bytes = case.bytes_moved(inputs)
        self.call()  # compiles a Numba kernel, if any, outside the timings

    def time_op(self, op, backend, dtype, size):
        self.call()


class _MemoryBound(_OpBenchmark):
    """Ops that only stream their arrays: also their effective bandwidth, the bytes they must
    read and write over the median time of a call."""

    def track_gigabytes_per_second(self, op, backend, dtype, size):
        times = []
        for _ in range(7):
            start = time.perf_counter()
            self.call()
            times.append(time.perf_counter() - start)
        return self.bytes / float(np.median(times)) / 1e9

    track_gigabytes_per_second.unit = "GB/s"


class _PeakMemory:
    """Mixin: the process's peak memory during a call (the fused losses' and linear layers' temporaries)."""

    def peakmem_op(self, op, backend, dtype, size):
        self.call()
