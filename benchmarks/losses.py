from ._common import _MemoryBound, _PeakMemory


class Losses(_PeakMemory, _MemoryBound):
    pass


Losses.parametrize("losses")
