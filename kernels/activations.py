"""Elementwise activations, Numba. Arrays are 1-D contiguous of one float dtype (the API layer
sees to it); an output may be the very array of an input. Each op is a serial kernel over whole
arrays, a parallel driver that runs it over `chunk`-element slices, and the entry point that
picks one (_jit.parallel_split)."""

import numpy as np
from numba import prange

from . import _vmath
from ._jit import PARALLEL_MIN_ELEMENTS_TRANSCENDENTAL, kernel, parallel_kernel, parallel_split

# ---------------------------------------------------------------------------------------------
# ReLU: the forward keeps NaN (as PyTorch does); the backwards select, so dx is dy or +0.


@kernel
def _relu(y, x):
    zero = x.dtype.type(0)
    for i in range(x.size):
        v = x[i]
        y[i] = zero if v <= zero else v


@parallel_kernel
def _relu_chunks(y, x, chunk):
    n = x.size
    for c in prange((n + chunk - 1) // chunk):
        s, e = c * chunk, min(n, (c + 1) * chunk)
        _relu(y[s:e], x[s:e])


def relu_forward(y, x):
    chunk = parallel_split(x.size)
    if chunk:
        _relu_chunks(y, x, chunk)
    else:
        _relu(y, x)


@kernel
def _pack_positive(mask, x):
    """Bit k of byte j is x[8j + k] > 0: np.packbits(x > 0, bitorder="little"). uint8 arithmetic
    throughout, so LLVM vectorizes it (Numba would widen Python ints to int64)."""
    zero = x.dtype.type(0)
    n = x.size
    for j in range(n // 8):
        bits = np.uint8(0)
        for k in range(8):
            bits |= np.uint8(x[8 * j + k] > zero) << np.uint8(k)
        mask[j] = bits
    if n % 8:
        bits = np.uint8(0)
        for k in range(n % 8):
            bits |= np.uint8(x[n - n % 8 + k] > zero) << np.uint8(k)
        mask[n // 8] = bits


@kernel
def _relu_mask(y, mask, x):
    _pack_positive(mask, x)  # first: the bits come from x, which y may overwrite
    _relu(y, x)


@parallel_kernel
def _relu_mask_chunks(y, mask, x, chunk):
    n = x.size  # chunk is a multiple of 8, so each task owns whole mask bytes
    for c in prange((n + chunk - 1) // chunk):
        s, e = c * chunk, min(n, (c + 1) * chunk)
        _relu_mask(y[s:e], mask[s // 8 : (e + 7) // 8], x[s:e])


def relu_forward_mask(y, mask, x):
    chunk = parallel_split(x.size)
    if chunk:
        _relu_mask_chunks(y, mask, x, chunk)
    else:
        _relu_mask(y, mask, x)


@kernel
def _relu_grad(dx, dy, y):
    zero = dy.dtype.type(0)
    for i in range(dy.size):
        dx[i] = dy[i] if y[i] > zero else zero


@parallel_kernel
def _relu_grad_chunks(dx, dy, y, chunk):
    n = dy.size
    for c in prange((n + chunk - 1) // chunk):
        s, e = c * chunk, min(n, (c + 1) * chunk)
        _relu_grad(dx[s:e], dy[s:e], y[s:e])


def relu_backward(dx, dy, y):
    chunk = parallel_split(dy.size)
    if chunk:
        _relu_grad_chunks(dx, dy, y, chunk)
    else:
        _relu_grad(dx, dy, y)


@kernel
def _relu_grad_mask(dx, dy, mask):
    zero, one = dy.dtype.type(0), np.uint8(1)
    n = dy.size
    for j in range((n + 7) // 8):
        bits = mask[j]
        for k in range(min(8, n - 8 * j)):
            dx[8 * j + k] = dy[8 * j + k] if (bits >> np.uint8(k)) & one else zero


@parallel_kernel
def _relu_grad_mask_chunks(dx, dy, mask, chunk):
    n = dy.size
    for c in prange((n + chunk - 1) // chunk):
        s, e = c * chunk, min(n, (c + 1) * chunk)
        _relu_grad_mask(dx[s:e], dy[s:e], mask[s // 8 : (e + 7) // 8])


def relu_backward_mask(dx, dy, mask):
    chunk = parallel_split(dy.size)
    if chunk:
        _relu_grad_mask_chunks(dx, dy, mask, chunk)
    else:
        _relu_grad_mask(dx, dy, mask)


# ---------------------------------------------------------------------------------------------
# Leaky ReLU: y = x if x > 0 else a x; dx = dy if x > 0 else a dy.


@kernel
def _leaky_relu(y, x, negative_slope):
    zero, a = x.dtype.type(0), x.dtype.type(negative_slope)
    for i in range(x.size):
        v = x[i]
        y[i] = v if v > zero else a * v


@parallel_kernel
def _leaky_relu_chunks(y, x, negative_slope, chunk):
    n = x.size
    for c in prange((n + chunk - 1) // chunk):
        s, e = c * chunk, min(n, (c + 1) * chunk)
        _leaky_relu(y[s:e], x[s:e], negative_slope)


def leaky_relu_forward(y, x, negative_slope):
    chunk = parallel_split(x.size)
    if chunk:
        _leaky_relu_chunks(y, x, negative_slope, chunk)
    else:
        _leaky_relu(y, x, negative_slope)


@kernel
def _leaky_relu_grad(dx, dy, x, negative_slope):
    zero, a = x.dtype.type(0), x.dtype.type(negative_slope)
    for i in range(x.size):
        g = dy[i]
        dx[i] = g if x[i] > zero else a * g


@parallel_kernel
def _leaky_relu_grad_chunks(dx, dy, x, negative_slope, chunk):
    n = x.size
    for c in prange((n + chunk - 1) // chunk):
        s, e = c * chunk, min(n, (c + 1) * chunk)
        _leaky_relu_grad(dx[s:e], dy[s:e], x[s:e], negative_slope)


def leaky_relu_backward(dx, dy, x, negative_slope):
    chunk = parallel_split(x.size)
    if chunk:
        _leaky_relu_grad_chunks(dx, dy, x, negative_slope, chunk)
    else:
        _leaky_relu_grad(dx, dy, x, negative_slope)


# ---------------------------------------------------------------------------------------------
# Sigmoid and tanh, with the vectorizable functions of _vmath.


# In place (y is x), the loop reads and writes y alone: LLVM guards a loop over two with a runtime
# check that they do not overlap, and an output that is its input would run the scalar loop
# (6x slower). The same arithmetic either way, so the same bits.
@kernel
def _sigmoid(y, x):
    if y.ctypes.data == x.ctypes.data:
        for i in range(x.size):
            y[i] = _vmath.sigmoid(y[i])
    else:
        for i in range(x.size):
            y[i] = _vmath.sigmoid(x[i])


@parallel_kernel
def _sigmoid_chunks(y, x, chunk):
    n = x.size
    for c in prange((n + chunk - 1) // chunk):
        s, e = c * chunk, min(n, (c + 1) * chunk)
        _sigmoid(y[s:e], x[s:e])


def sigmoid_forward(y, x):
    chunk = parallel_split(x.size, PARALLEL_MIN_ELEMENTS_TRANSCENDENTAL)
    if chunk:
        _sigmoid_chunks(y, x, chunk)
    else:
        _sigmoid(y, x)


@kernel
def _sigmoid_grad(dx, dy, y):
    one = y.dtype.type(1)
    for i in range(y.size):
        v = y[i]
        dx[i] = dy[i] * (v * (one - v))


@parallel_kernel
def _sigmoid_grad_chunks(dx, dy, y, chunk):
    n = y.size
    for c in prange((n + chunk - 1) // chunk):
        s, e = c * chunk, min(n, (c + 1) * chunk)
        _sigmoid_grad(dx[s:e], dy[s:e], y[s:e])


def sigmoid_backward(dx, dy, y):
    chunk = parallel_split(y.size)
    if chunk:
        _sigmoid_grad_chunks(dx, dy, y, chunk)
    else:
        _sigmoid_grad(dx, dy, y)


@kernel
def _tanh(y, x):
    if y.ctypes.data == x.ctypes.data:  # in place: one array, as _sigmoid
        for i in range(x.size):
            y[i] = _vmath.tanh(y[i])
    else:
        for i in range(x.size):
            y[i] = _vmath.tanh(x[i])


@parallel_kernel
def _tanh_chunks(y, x, chunk):
    n = x.size
    for c in prange((n + chunk - 1) // chunk):
        s, e = c * chunk, min(n, (c + 1) * chunk)
        _tanh(y[s:e], x[s:e])


def tanh_forward(y, x):
    chunk = parallel_split(x.size, PARALLEL_MIN_ELEMENTS_TRANSCENDENTAL)
    if chunk:
        _tanh_chunks(y, x, chunk)
    else:
        _tanh(y, x)


@kernel
def _tanh_grad(dx, dy, y):
    one = y.dtype.type(1)
    for i in range(y.size):
        v = y[i]
        dx[i] = dy[i] * ((one - v) * (one + v))  # not 1 - v*v: exact subtraction near |v| = 1


@parallel_kernel
def _tanh_grad_chunks(dx, dy, y, chunk):
    n = y.size
    for c in prange((n + chunk - 1) // chunk):
        s, e = c * chunk, min(n, (c + 1) * chunk)
        _tanh_grad(dx[s:e], dy[s:e], y[s:e])


def tanh_backward(dx, dy, y):
    chunk = parallel_split(y.size)
    if chunk:
        _tanh_grad_chunks(dx, dy, y, chunk)
    else:
        _tanh_grad(dx, dy, y)
