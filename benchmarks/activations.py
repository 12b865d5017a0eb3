from ._common import _MemoryBound


class Activations(_MemoryBound):
    pass


Activations.parametrize([
    "relu", "relu_backward", "relu_with_mask", "relu_backward_from_mask", "leaky_relu", "leaky_relu_backward",
    "sigmoid", "sigmoid_backward", "tanh", "tanh_backward",
])
