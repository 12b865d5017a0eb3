"""Elementwise activations. Every array is 1-D, contiguous and of one float dtype; an output
may be the very array of an input (in-place), so each kernel finishes reading before it writes.

ReLU and leaky ReLU backward *select* rather than multiply: dx is exactly dy or exactly +0, so a
NaN or Inf in dy is not spread to positions the activation cut off, and no -0.0 appears.
"""

import numpy as np


def relu_forward(y, x):
    # maximum() propagates NaN, as PyTorch's relu does; x > 0 alone would turn NaN into 0.
    np.maximum(x, 0, out=y)


def relu_forward_mask(y, mask, x):
    # The mask bit is x > 0 (NaN gives 0), packed little-endian: bit i of byte k is element 8k + i.
    mask[...] = np.packbits(x > 0, bitorder="little")
    np.maximum(x, 0, out=y)


def relu_backward(dx, dy, y):
    np.copyto(dx, np.where(y > 0, dy, 0))


def relu_backward_mask(dx, dy, mask):
    passed = np.unpackbits(mask, count=dy.size, bitorder="little").view(np.bool_)
    np.copyto(dx, np.where(passed, dy, 0))


def leaky_relu_forward(y, x, negative_slope):
    np.copyto(y, np.where(x > 0, x, x * negative_slope))


def leaky_relu_backward(dx, dy, x, negative_slope):
    np.copyto(dx, np.where(x > 0, dy, dy * negative_slope))


def sigmoid_forward(y, x):
    # e = exp(-|x|) never overflows; x >= 0 gives 1 / (1 + e), x < 0 gives e / (1 + e).
    e = np.exp(-np.abs(x))
    np.divide(np.where(x >= 0, 1, e), 1 + e, out=y)


def sigmoid_backward(dx, dy, y):
    np.multiply(dy, y * (1 - y), out=dx)


def tanh_forward(y, x):
    np.tanh(x, out=y)


def tanh_backward(dx, dy, y):
    # (1 - y)(1 + y), not 1 - y*y: near |y| = 1 the subtraction 1 - y is exact while 1 - y*y
    # cancels away the rounding of y*y (a 2e-5 relative error in float32 at y = 0.9985).
    np.multiply(dy, (1 - y) * (1 + y), out=dx)
