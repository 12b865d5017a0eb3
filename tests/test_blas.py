"""c += a @ b through NumPy's own BLAS (beta = 1), and the scratch-block fallback."""

import numpy as np
import pytest

import gradkernels as gk
from gradkernels import _blas
from helpers import assert_close


def _numpy_blas_name() -> str:
    try:
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    except Exception:  # the layout of NumPy's build info differs between releases
        return "unknown"


def test_numpys_bundled_openblas_is_called_directly():
    if _numpy_blas_name() != "scipy-openblas":
        pytest.skip(f"NumPy runs {_numpy_blas_name()}, not the bundled OpenBLAS")
    assert _blas.direct()


def _operands(rng, dtype, kind, m=7, k=5, n=9):
    a = rng.standard_normal((m, k)).astype(dtype)
    b = rng.standard_normal((k, n)).astype(dtype)
    if kind == "F":
        a, b = np.asfortranarray(a), np.asfortranarray(b)
    elif kind == "transposed":  # a.T and b.T of C arrays: what the backward passes
        a, b = np.ascontiguousarray(a.T).T, np.ascontiguousarray(b.T).T
    elif kind == "row slice of F":
        a = np.asfortranarray(np.vstack([a, a]))[:m]
    elif kind == "strided":  # no unit stride: BLAS cannot take it as it is
        a = np.repeat(np.repeat(a, 2, 0), 2, 1)[::2, ::2]
    return a, b


@pytest.mark.parametrize("direct", [True, False], ids=["blas", "fallback"])
@pytest.mark.parametrize("kind", ["C", "F", "transposed", "row slice of F", "strided"])
def test_accumulate_adds_the_product(monkeypatch, rng, dtype, direct, kind):
    if direct and not _blas.direct():
        pytest.skip("no BLAS found to call directly")
    if not direct:
        monkeypatch.setattr(_blas, "_GEMM", {})
        monkeypatch.setattr(_blas, "SCRATCH_BYTES", 7 * 4 * dtype.itemsize)  # blocks of 4 columns and a rest
    a, b = _operands(rng, dtype, kind)
    c = rng.standard_normal((a.shape[0], b.shape[1])).astype(dtype)
    expected = c.astype(np.float64) + a.astype(np.float64) @ b.astype(np.float64)
    before = a.copy(), b.copy()
    _blas.accumulate(c, a, b)
    assert_close(c, expected, dtype)
    np.testing.assert_array_equal(a, before[0])
    np.testing.assert_array_equal(b, before[1])


def test_accumulate_with_an_empty_inner_dimension_leaves_c(rng):
    c = rng.standard_normal((3, 4))
    expected = c.copy()
    _blas.accumulate(c, np.empty((3, 0)), np.empty((0, 4)))
    np.testing.assert_array_equal(c, expected)


def test_linear_is_the_same_with_and_without_the_direct_gemm(monkeypatch, rng, dtype):
    x = rng.standard_normal((40, 30)).astype(dtype)
    w = rng.standard_normal((30, 20)).astype(dtype)
    b = rng.standard_normal(20).astype(dtype)
    direct = gk.backend("numpy").linear(x, w, b)
    monkeypatch.setattr(_blas, "_GEMM", {})
    assert_close(direct, gk.backend("numpy").linear(x, w, b), dtype)
    assert_close(direct, x.astype(float) @ w.astype(float) + b, dtype)
