import tracemalloc

import numpy as np

import gradkernels as gk
from gradkernels import _bench

from ._common import DTYPES, SIZES, _OpBenchmark, _PeakMemory


class Linear(_PeakMemory, _OpBenchmark):
    pass


Linear.parametrize("linear")


class LinearCrossEntropyPaths:
    """linear_cross_entropy against the unfused path it replaces (linear, softmax_cross_entropy,
    linear_backward, each on the same backend): time, peak memory and the memory beyond the
    results of both. GRADKERNELS_BENCH_SIZES=target runs the README's shape (8192, 1024, 32000)."""

    params = [["fused", "unfused"], ["numpy", "numba", "c"], DTYPES, SIZES]
    param_names = ["path", "backend", "dtype", "size"]
    timeout = 600

    def setup(self, path, backend, dtype, size):
        if not gk.backends()[backend]["available"]:
            raise NotImplementedError(gk.backends()[backend]["reason"])
        case = _bench.cases(None)["linear_cross_entropy"](size)
        x, w, b, labels = case.inputs(np.random.default_rng(0), np.dtype(dtype))
        ops = gk.backend(backend)

        def unfused():
            loss, g = ops.softmax_cross_entropy(ops.linear(x, w, b), labels)
            return (loss, *ops.linear_backward(g, x, w))

        self.call = unfused if path == "unfused" else lambda: ops.linear_cross_entropy(x, w, b, labels)
        self.call()  # compiles a Numba kernel, if any, outside the timings

    def time_path(self, path, backend, dtype, size):
        self.call()

    def peakmem_path(self, path, backend, dtype, size):
        self.call()

    def track_extra_mebibytes(self, path, backend, dtype, size):
        """NumPy's allocations at their peak during a call, less the results it returns."""
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            result = self.call()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        returned = sum(a.nbytes for a in result[1:] if a is not None)
        return (peak - base - returned) / 2**20

    track_extra_mebibytes.unit = "MiB"
