from ._common import _MemoryBound


class Softmax(_MemoryBound):
    pass


Softmax.parametrize(["softmax", "softmax_backward", "log_softmax", "log_softmax_backward"])
