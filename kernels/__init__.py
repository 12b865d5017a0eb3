"""The Numba backend: every kernel of the contract in gradkernels._backends, one file per op family.

Importing this package compiles nothing: each kernel compiles (or loads from Numba's cache) on
its first call, for the dtypes it is called with.
"""

from .activations import (
    leaky_relu_backward,
    leaky_relu_forward,
    relu_backward,
    relu_backward_mask,
    relu_forward,
    relu_forward_mask,
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from .linear import (
    linear_backward,
    linear_cross_entropy,
    linear_forward,
    linear_relu_backward,
    linear_relu_forward,
)
from .losses import mse, sigmoid_binary_cross_entropy, softmax_cross_entropy, softmax_cross_entropy_soft
from .softmax import log_softmax_backward, log_softmax_forward, softmax_backward, softmax_forward

__all__ = [
    "leaky_relu_backward",
    "leaky_relu_forward",
    "linear_backward",
    "linear_cross_entropy",
    "linear_forward",
    "linear_relu_backward",
    "linear_relu_forward",
    "log_softmax_backward",
    "log_softmax_forward",
    "mse",
    "relu_backward",
    "relu_backward_mask",
    "relu_forward",
    "relu_forward_mask",
    "sigmoid_backward",
    "sigmoid_binary_cross_entropy",
    "sigmoid_forward",
    "softmax_backward",
    "softmax_cross_entropy",
    "softmax_cross_entropy_soft",
    "softmax_forward",
    "tanh_backward",
    "tanh_forward",
]
