"""Arrays of more than 2^31 elements, on every backend: an index or a size held in 32 bits anywhere
(a C `int`, a Numba loop bound, a chunk offset, a row offset) would wrap and write to the wrong
place. Float32, one 8.6 GB array at a time, updated in place, so that the test fits this machine's
24 GiB; the answers are checked block by block against closed forms of position-dependent inputs
(a write shifted by 2^31 or 2^32 elements lands on a different value)."""

import numpy as np
import pytest

from gradkernels._selftest import TOLERANCES
from helpers import assert_close

# in one group, so that under pytest-xdist two of them never hold their 8.6 GB at once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("huge arrays")]

HUGE = 2**31 + 2**20 + 3  # past 2^31, with a tail that is not a multiple of any vector width
BLOCK = 1 << 24
PERIOD = 11  # 2^31 and 2^32 are not multiples of 11
# Element i holds i % 11 - 5; a block starting at s is a slice of this, from s % 11 on.
PATTERN = (np.arange(BLOCK + PERIOD) % PERIOD - 5).astype(np.float32)


def _pattern(start, stop):
    return PATTERN[start % PERIOD : start % PERIOD + stop - start]


def _blocks(n, block=BLOCK):
    for start in range(0, n, block):
        yield start, min(n, start + block)


def test_relu_with_mask_past_2_to_the_31(bk):
    x = np.empty(HUGE, np.float32)
    for s, e in _blocks(HUGE):
        x[s:e] = _pattern(s, e)
    y, mask = bk.relu_with_mask(x, out=x)
    assert y is x and mask.shape == ((HUGE + 7) // 8,)
    for s, e in _blocks(HUGE):  # BLOCK is a multiple of 8, so blocks start on a mask byte
        values = _pattern(s, e)
        assert np.array_equal(x[s:e], np.maximum(values, 0)), f"relu, elements {s}..{e}"
        assert np.array_equal(mask[s // 8 : (e + 7) // 8], np.packbits(values > 0, bitorder="little")), \
            f"mask, elements {s}..{e}"


# A (65537, 32769) float32 matrix: 2^31 + 98305 elements, the row offsets of its last rows past 2^31.
ROWS, CLASSES = 2**16 + 1, 2**15 + 1


def test_softmax_cross_entropy_past_2_to_the_31(bk):
    # Row r is all zeros but for a_r = r % 5 - 2 in column t_r = 7919 r mod C, its label; so its
    # softmax is 1 / S_r off the label and e^a_r / S_r at it, with S_r = C - 1 + e^a_r.
    rows = np.arange(ROWS)
    a, labels = rows % 5 - 2.0, (rows * 7919) % CLASSES
    z = np.zeros((ROWS, CLASSES), np.float32)
    z[rows, labels] = a
    loss, grad = bk.softmax_cross_entropy(z, labels, reduction="sum", out=z)
    assert grad is z

    total = CLASSES - 1 + np.exp(a)
    assert_close(loss, np.sum(np.log(total) - a), np.float32)
    assert_close(z[rows, labels], np.exp(a) / total - 1, np.float32, scale=1.0)
    # with the label entries checked and set to the off-label value, every row is one constant
    off_label = 1 / total
    z[rows, labels] = off_label
    tol = TOLERANCES[np.dtype(np.float32)]
    bound = tol["rtol"] * off_label + tol["atol"]
    for s, e in _blocks(ROWS, 2048):
        error = np.abs(z[s:e] - off_label[s:e, None].astype(np.float32)).max(axis=1)
        bad = ~(error <= bound[s:e])  # NaN is bad too
        assert not bad.any(), f"row {s + np.argmax(bad)}: off-label error {error[np.argmax(bad)]:.3g}"
