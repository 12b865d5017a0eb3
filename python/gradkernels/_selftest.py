"""The self-test behind `python -m gradkernels check`, and the tolerances it and the tests use.

For every op, backend and dtype: the forward and backward against the NumPy reference in float64
(on the same input values), and, in float64, the backward against central finite differences of
the backend's own forward. Errors are shown as a fraction of the allowed error: <= 1 passes.
"""

import dataclasses
from typing import Callable

import numpy as np

from . import _backends
from ._dispatch import backend
from ._gradcheck import GradcheckError, gradcheck

# Allowed |result - reference| per element: rtol * |reference| + atol * max|reference|. float32
# results are compared with the float64 reference computed on the same input values.
TOLERANCES = {
    np.dtype(np.float64): {"rtol": 1e-12, "atol": 1e-13},
    np.dtype(np.float32): {"rtol": 5e-6, "atol": 5e-7},
}
# Central differences with step 1e-6 on O(1) inputs are good to about 1e-9.
GRADCHECK_TOLERANCES = {"eps": 1e-6, "rtol": 1e-6, "atol": 1e-8}


def error_ratio(actual, expected, dtype) -> float:
    """The worst element's error as a fraction of its allowed error (inf where NaN or Inf disagree)."""
    tol = TOLERANCES[np.dtype(dtype)]
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return np.inf
    finite = np.isfinite(expected)
    if not np.array_equal(actual[~finite], expected[~finite], equal_nan=True):
        return np.inf
    if not finite.any():
        return 0.0
    a, e = actual[finite], expected[finite]
    allowed = tol["rtol"] * np.abs(e) + tol["atol"] * np.max(np.abs(e)) + np.finfo(dtype).tiny
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(a == e, 0.0, np.abs(a - e) / allowed)
    ratio[np.isnan(ratio)] = np.inf
    return float(np.max(ratio))


def _away_from_kinks(x):
    """Keep samples at least 0.1 from 0, where ReLU-like ops have no derivative."""
    return np.where(np.abs(x) < 0.1, x + np.copysign(0.2, x), x)


@dataclasses.dataclass(frozen=True)
class Case:
    """One op as a forward and a vector-Jacobian product; `make` draws its float64 inputs."""

    name: str
    make: Callable
    forward: Callable
    backward: Callable


def _loss_case(name, make, loss):
    return Case(
        name,
        make,
        lambda bk, *a: loss(bk, *a)[0],
        lambda bk, g, z, *rest: (g * loss(bk, z, *rest)[1],) + (None,) * len(rest),
    )


def _labels_with_ignored(rng, rows, classes):
    labels = rng.integers(0, classes, rows)
    labels[1] = -100
    return labels


CASES = [
    Case("relu", lambda r: (_away_from_kinks(r.standard_normal((5, 7))),),
         lambda bk, x: bk.relu(x), lambda bk, g, x: bk.relu_backward(g, bk.relu(x))),
    Case("relu_with_mask", lambda r: (_away_from_kinks(r.standard_normal((5, 7))),),
         lambda bk, x: bk.relu_with_mask(x)[0], lambda bk, g, x: bk.relu_backward_from_mask(g, bk.relu_with_mask(x)[1])),
    Case("leaky_relu", lambda r: (_away_from_kinks(r.standard_normal((5, 7))),),
         lambda bk, x: bk.leaky_relu(x, 0.1), lambda bk, g, x: bk.leaky_relu_backward(g, x, 0.1)),
    Case("sigmoid", lambda r: (3 * r.standard_normal((5, 7)),),
         lambda bk, x: bk.sigmoid(x), lambda bk, g, x: bk.sigmoid_backward(g, bk.sigmoid(x))),
    Case("tanh", lambda r: (2 * r.standard_normal((5, 7)),),
         lambda bk, x: bk.tanh(x), lambda bk, g, x: bk.tanh_backward(g, bk.tanh(x))),
    Case("softmax", lambda r: (2 * r.standard_normal((4, 6)),),
         lambda bk, z: bk.softmax(z), lambda bk, g, z: bk.softmax_backward(g, bk.softmax(z))),
    Case("log_softmax", lambda r: (2 * r.standard_normal((4, 6)),),
         lambda bk, z: bk.log_softmax(z), lambda bk, g, z: bk.log_softmax_backward(g, bk.log_softmax(z))),
    _loss_case("softmax_cross_entropy",
               lambda r: (2 * r.standard_normal((6, 5)), _labels_with_ignored(r, 6, 5)),
               lambda bk, z, t: bk.softmax_cross_entropy(z, t)),
    _loss_case("softmax_cross_entropy weight+smoothing",
               lambda r: (2 * r.standard_normal((6, 5)), _labels_with_ignored(r, 6, 5), r.uniform(0.5, 2, 5)),
               lambda bk, z, t, w: bk.softmax_cross_entropy(z, t, weight=w, label_smoothing=0.1)),
    _loss_case("softmax_cross_entropy soft targets",
               lambda r: (2 * r.standard_normal((6, 5)), r.dirichlet(np.ones(5), 6)),
               lambda bk, z, q: bk.softmax_cross_entropy(z, q, reduction="sum")),
    _loss_case("sigmoid_binary_cross_entropy",
               lambda r: (3 * r.standard_normal((5, 7)), r.uniform(0, 1, (5, 7))),
               lambda bk, z, t: bk.sigmoid_binary_cross_entropy(z, t)),
    _loss_case("mse", lambda r: (r.standard_normal((5, 7)), r.standard_normal((5, 7))),
               lambda bk, y, t: bk.mse(y, t)),
    Case("linear", lambda r: (r.standard_normal((5, 4)), r.standard_normal((4, 3)), r.standard_normal(3)),
         lambda bk, x, w, b: bk.linear(x, w, b), lambda bk, g, x, w, b: bk.linear_backward(g, x, w)),
    Case("linear_relu", lambda r: (r.standard_normal((5, 4)), r.standard_normal((4, 3)), r.standard_normal(3)),
         lambda bk, x, w, b: bk.linear_relu(x, w, b),
         lambda bk, g, x, w, b: bk.linear_relu_backward(g, bk.linear_relu(x, w, b), x, w)),
    Case("linear_cross_entropy",
         lambda r: (r.standard_normal((6, 4)), r.standard_normal((4, 5)), r.standard_normal(5), _labels_with_ignored(r, 6, 5)),
         lambda bk, x, w, b, t: bk.linear_cross_entropy(x, w, b, t)[0],
         lambda bk, g, x, w, b, t: tuple(g * d for d in bk.linear_cross_entropy(x, w, b, t)[1:]) + (None,)),
]


def _cast(values, dtype):
    return tuple(a.astype(dtype) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in values)


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


@dataclasses.dataclass(frozen=True)
class Row:
    op: str
    backend: str
    dtype: str
    forward: float | None  # error / tolerance against the reference; None where not compared
    backward: float | None
    finite_differences: float | None  # gradcheck's worst ratio (float64 only)
    note: str = ""
    is_reference: bool = False  # the float64 NumPy backend is the reference itself

    @property
    def ok(self) -> bool:
        ratios = [r for r in (self.forward, self.backward, self.finite_differences) if r is not None]
        return not self.note and all(r <= 1.0 for r in ratios)


def check_case(case: Case, backend_name: str, dtype, seed: int = 0) -> Row:
    dtype = np.dtype(dtype)
    bk, ref = backend(backend_name), backend("numpy")
    rng = np.random.default_rng(seed)
    inputs = case.make(rng)
    cast = _cast(inputs, dtype)
    is_reference = backend_name == "numpy" and dtype == np.float64
    forward_ratio = backward_ratio = fd_ratio = None
    note = ""
    try:
        expected = np.asarray(case.forward(ref, *inputs))
        g = np.random.default_rng(seed + 1).standard_normal(expected.shape)
        if not is_reference:
            forward_ratio = error_ratio(case.forward(bk, *cast), expected, dtype)
            got = _as_tuple(case.backward(bk, g.astype(dtype), *cast))
            want = _as_tuple(case.backward(ref, g, *inputs))
            backward_ratio = max(error_ratio(a, e, dtype) for a, e in zip(got, want, strict=True) if e is not None)
        if dtype == np.float64:
            fd_ratio = gradcheck(
                lambda *a: case.forward(bk, *a), lambda gg, *a: case.backward(bk, gg, *a), *inputs,
                seed=seed + 1, **GRADCHECK_TOLERANCES,
            ).ratio
    except GradcheckError as exc:
        fd_ratio, note = exc.report.ratio, f"finite differences: {exc}"
    except Exception as exc:  # a crashing op is a failed row, and the table goes on
        note = f"{type(exc).__name__}: {exc}"
    return Row(case.name, backend_name, dtype.name, forward_ratio, backward_ratio, fd_ratio, note, is_reference)


# The math §6 (README): a one-hidden-layer regression net with the bias folded into the inputs.
WORKED_EXAMPLE = {
    "X": [[1, 1, 2], [1, 1, 3], [1, 2, 2]],
    "W": [[0.01, 0.03, 0.02], [0.02, 0.01, 0.03], [0.03, 0.02, 0.01]],
    "v": [0.01, 0.02, 0.03, 0.04],
    "y": [8, 11, 10],
}
WORKED_EXAMPLE_EXPECTED = {
    "y_hat": [0.05674909, 0.05714823, 0.05722316],
    "L": 281.70005118,
    "dL/dv": [-57.65775904, -30.38817107, -30.14025049, -30.04098558],
    "dL/dW": [[-0.287435, -0.43153148, -0.57553703],
              [-0.3865626, -0.58037153, -0.77389626],
              [-0.68390552, -1.02679606, -1.3695813]],
}


def worked_example(bk) -> dict[str, np.ndarray]:
    """Forward and backward of the §6 net composed from the ops of backend object `bk`, in float64."""
    X, W = np.array(WORKED_EXAMPLE["X"], float), np.array(WORKED_EXAMPLE["W"], float)
    v, y = np.array(WORKED_EXAMPLE["v"], float)[:, None], np.array(WORKED_EXAMPLE["y"], float)
    Z = bk.sigmoid(bk.linear(X, W))
    Z_hat = np.hstack([np.ones((len(X), 1)), Z])
    y_hat = bk.linear(Z_hat, v)[:, 0]
    L, dy_hat = bk.mse(y_hat, y, reduction="sum")
    dZ_hat, dv, _ = bk.linear_backward(dy_hat[:, None], Z_hat, v, with_bias=False)
    dA = bk.sigmoid_backward(dZ_hat[:, 1:], Z)
    _, dW, _ = bk.linear_backward(dA, X, W, with_bias=False, with_dx=False)
    return {"y_hat": y_hat, "L": np.float64(L), "dL/dv": dv[:, 0], "dL/dW": dW}


# The published values carry 8 decimals: agreement to 1e-8 relative (or absolute, below 1) is exact.
WORKED_EXAMPLE_TOLERANCE = 1e-8


def worked_example_errors(got: dict[str, np.ndarray]) -> dict[str, float]:
    """Per quantity, the largest difference from the published value, relative to it (absolute
    below 1); WORKED_EXAMPLE_TOLERANCE passes."""
    return {k: float(np.max(np.abs(got[k] - np.asarray(e)) / np.maximum(1, np.abs(e))))
            for k, e in WORKED_EXAMPLE_EXPECTED.items()}


def check_worked_example(backend_name: str) -> Row:
    try:
        errors = worked_example_errors(worked_example(backend(backend_name)))
        worst = max(errors.values()) / WORKED_EXAMPLE_TOLERANCE
        return Row("worked example (The math §6)", backend_name, "float64", worst, None, None)
    except Exception as exc:
        return Row("worked example (The math §6)", backend_name, "float64", None, None, None, f"{type(exc).__name__}: {exc}")


def run(backend_names=None, dtypes=("float32", "float64"), seed: int = 0) -> list[Row]:
    if backend_names is None:
        backend_names = [name for name, b in _backends.backends().items() if b["available"]]
    rows = []
    for name in backend_names:
        for dtype in dtypes:
            rows.extend(check_case(case, name, dtype, seed) for case in CASES)
        if "float64" in dtypes:
            rows.append(check_worked_example(name))
    return rows
