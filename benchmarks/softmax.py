from ._common import _MemoryBound


class Softmax(_MemoryBound):
    pass


Softmax.parametrize("softmax")
