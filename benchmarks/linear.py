from ._common import _OpBenchmark, _PeakMemory


class Linear(_PeakMemory, _OpBenchmark):
    pass


Linear.parametrize(["linear", "linear_backward"])
