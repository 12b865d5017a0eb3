"""The NumPy reference backend: the oracle every faster backend is tested against.

Each kernel follows the contract in `gradkernels._backends` (outputs first, then inputs, then
scalars; arrays already validated and laid out by the API layer). Written for clarity and
numerical care first, with idiomatic NumPy speed.
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
from .losses import (
    mse,
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    softmax_cross_entropy_soft,
)
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
