from ._common import _MemoryBound


class Activations(_MemoryBound):
    pass


Activations.parametrize("activations")
