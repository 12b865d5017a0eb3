"""Linear layers: the shared driver (`gradkernels._linear`) with the bias gradient and ReLU mask
written in NumPy."""

import numpy as np

from .._linear import backward_kernels, linear_forward
from .activations import relu_backward
from .losses import softmax_cross_entropy


def linear_relu_forward(y, x, w, b):
    linear_forward(y, x, w, b)
    np.maximum(y, 0, out=y)  # NaN stays NaN, as in relu_forward


def bias_gradient(db, dy):
    # Column sums of a row-major dy accumulate row after row; float64 keeps float32 accurate.
    np.copyto(db, np.sum(dy, axis=0, dtype=np.float64), casting="same_kind")


def _masked_bias_gradient(db, dz, da, a):
    np.copyto(dz, np.where(a > 0, da, 0))  # selected, as relu_backward does
    bias_gradient(db, dz)


linear_backward, linear_relu_backward, linear_cross_entropy = backward_kernels(
    bias_gradient, _masked_bias_gradient, relu_backward, softmax_cross_entropy)
