from ._common import _MemoryBound, _PeakMemory


class Losses(_PeakMemory, _MemoryBound):
    pass


Losses.parametrize(["softmax_cross_entropy", "sigmoid_binary_cross_entropy", "mse"])
