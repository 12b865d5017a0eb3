"""Softmax and log-softmax along rows, Numba. Arrays are 2-D C-contiguous (rows, classes), one float
dtype; an output may be the very array of an input. Per row, read-only passes (_reductions) take
the max and the sums, and strict passes write; each exponential is computed once. The row stays in
cache between passes, so memory sees one read and one write of it. Rows are independent: parallel
over rows."""

import math

from numba import prange

from . import _vmath
from ._jit import PARALLEL_MIN_ELEMENTS_TRANSCENDENTAL, go_parallel, kernel, parallel_kernel, row_kernel
from ._reductions import dot, row_max, sum_exp_shifted, total


def parallel_rows(z) -> bool:
    return z.shape[0] > 1 and go_parallel(z.size, PARALLEL_MIN_ELEMENTS_TRANSCENDENTAL)


@row_kernel
def _softmax_row(p, z):
    m = row_max(z)
    for j in range(z.size):
        p[j] = _vmath.exp_nonpositive(z[j] - m)
    inverse = p.dtype.type(1.0 / total(p))
    for j in range(p.size):
        p[j] *= inverse


@kernel
def _softmax(p, z):
    for r in range(z.shape[0]):
        _softmax_row(p[r], z[r])


@parallel_kernel
def _softmax_rows(p, z):
    for r in prange(z.shape[0]):
        _softmax_row(p[r], z[r])


def softmax_forward(p, z):
    (_softmax_rows if parallel_rows(z) else _softmax)(p, z)


@row_kernel
def _log_softmax_row(logp, z):
    m = row_max(z)
    log_total = logp.dtype.type(math.log(sum_exp_shifted(z, m)))
    for j in range(z.size):
        logp[j] = (z[j] - m) - log_total


@kernel
def _log_softmax(logp, z):
    for r in range(z.shape[0]):
        _log_softmax_row(logp[r], z[r])


@parallel_kernel
def _log_softmax_rows(logp, z):
    for r in prange(z.shape[0]):
        _log_softmax_row(logp[r], z[r])


def log_softmax_forward(logp, z):
    (_log_softmax_rows if parallel_rows(z) else _log_softmax)(logp, z)


@row_kernel
def _softmax_grad_row(dz, dp, p):
    # dz = p (dp - <dp, p>)
    d = p.dtype.type(dot(dp, p))
    for j in range(p.size):
        dz[j] = p[j] * (dp[j] - d)


@kernel
def _softmax_grad(dz, dp, p):
    for r in range(p.shape[0]):
        _softmax_grad_row(dz[r], dp[r], p[r])


@parallel_kernel
def _softmax_grad_rows(dz, dp, p):
    for r in prange(p.shape[0]):
        _softmax_grad_row(dz[r], dp[r], p[r])


def softmax_backward(dz, dp, p):
    (_softmax_grad_rows if parallel_rows(p) else _softmax_grad)(dz, dp, p)


@row_kernel
def _log_softmax_grad_row(dz, dlogp, logp):
    # dz = dlogp - exp(logp) sum(dlogp)
    s = logp.dtype.type(total(dlogp))
    for j in range(logp.size):
        dz[j] = dlogp[j] - _vmath.exp(logp[j]) * s


@kernel
def _log_softmax_grad(dz, dlogp, logp):
    for r in range(logp.shape[0]):
        _log_softmax_grad_row(dz[r], dlogp[r], logp[r])


@parallel_kernel
def _log_softmax_grad_rows(dz, dlogp, logp):
    for r in prange(logp.shape[0]):
        _log_softmax_grad_row(dz[r], dlogp[r], logp[r])


def log_softmax_backward(dz, dlogp, logp):
    (_log_softmax_grad_rows if parallel_rows(logp) else _log_softmax_grad)(dz, dlogp, logp)
