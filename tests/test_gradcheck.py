import re

import numpy as np
import pytest

import gradkernels as gk


def test_identities_of_math_section_5(rng):
    x = rng.standard_normal(5)
    A = rng.standard_normal((5, 5))
    B = rng.standard_normal((5, 3))
    gk.gradcheck(lambda v: v @ v, lambda g, v: g * 2 * v, x)
    gk.gradcheck(lambda v: v @ A @ v, lambda g, v: g * (A + A.T) @ v, x)
    gk.gradcheck(lambda v: np.sum((B.T @ v) ** 2), lambda g, v: g * 2 * B @ B.T @ v, x)
    gk.gradcheck(lambda M: np.sum((M.T @ x) ** 2), lambda g, M: g * 2 * np.outer(x, x) @ M, B)
    a = rng.standard_normal(4)
    gk.gradcheck(lambda v: np.log(gk.sigmoid(v)), lambda g, v: g * (1 - gk.sigmoid(v)), a)
    gk.gradcheck(gk.tanh, lambda g, v: g * (1 - np.tanh(v) ** 2), a)


def test_gates_of_a_computation_graph(rng):
    u, v = rng.standard_normal(4), rng.standard_normal(4)
    gk.gradcheck(lambda p, q: p + q, lambda g, p, q: (g, g), u, v)
    gk.gradcheck(lambda p, q: p * q, lambda g, p, q: (g * q, g * p), u, v)
    gk.gradcheck(np.maximum, lambda g, p, q: (g * (p > q), g * (q > p)), u, v)


def test_a_wrong_gradient_raises_naming_the_worst_element():
    x = np.array([0.5, -1.0, 2.0])
    with pytest.raises(gk.GradcheckError, match=r"input 0 at index \(2,\): analytic \S+, numeric \S+") as caught:
        gk.gradcheck(lambda v: v @ v, lambda g, v: g * np.array([2 * v[0], 2 * v[1], 4 * v[2]]), x)
    analytic, numeric = re.search(r"analytic (\S+), numeric (\S+),", str(caught.value)).groups()
    assert float(analytic) == pytest.approx(2 * float(numeric))


def test_a_small_error_within_tolerance_passes_and_is_reported():
    x = np.array([1.0, 2.0])
    report = gk.gradcheck(lambda v: v @ v, lambda g, v: g * 2 * v * (1 + 1e-8), x, rtol=1e-6)
    assert isinstance(report, gk.GradcheckReport) and 0 < report.ratio < 1


def test_nan_gradient_fails(rng):
    with pytest.raises(gk.GradcheckError):
        gk.gradcheck(lambda v: v @ v, lambda g, v: np.full_like(v, np.nan), rng.standard_normal(3))


def test_inputs_are_not_modified_and_labels_pass_through(rng):
    z = rng.standard_normal((3, 4))
    labels = np.array([0, 3, 1])
    z0 = z.copy()
    gk.gradcheck(lambda a, t: gk.softmax_cross_entropy(a, t)[0],
                 lambda g, a, t: (g * gk.softmax_cross_entropy(a, t)[1], None), z, labels)
    np.testing.assert_array_equal(z, z0)


def test_float32_inputs_are_refused():
    with pytest.raises(TypeError, match="float64; input 0 is float32"):
        gk.gradcheck(gk.relu, lambda g, x: g, np.ones(3, np.float32))


def test_backward_returning_the_wrong_shape_or_count_is_an_error():
    x = np.ones(3)
    with pytest.raises(ValueError, match=r"shape \(2,\), input 0 has \(3,\)"):
        gk.gradcheck(lambda v: v @ v, lambda g, v: np.ones(2), x)
    with pytest.raises(ValueError, match="2 gradients for 1 inputs"):
        gk.gradcheck(lambda v: v @ v, lambda g, v: (v, v), x)


def test_the_documented_tolerances_reject_real_errors():
    # The suite's tolerances come from one table; this pins that table to what README documents,
    # so loosening it cannot go unnoticed.
    from gradkernels._selftest import TOLERANCES, error_ratio

    assert TOLERANCES[np.dtype(np.float32)] == {"rtol": 5e-6, "atol": 5e-7}
    assert TOLERANCES[np.dtype(np.float64)] == {"rtol": 1e-12, "atol": 1e-13}
    assert error_ratio(np.float32(1.0001), 1.0, np.float32) > 1
    assert error_ratio(1.0 + 1e-10, 1.0, np.float64) > 1
    assert error_ratio(np.float32(1.000001), 1.0, np.float32) <= 1
