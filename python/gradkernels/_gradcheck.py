"""Checking a backward against central finite differences, in float64."""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class GradcheckReport:
    """The worst element over all checked inputs: `ratio` is its error over the allowed error (≤ 1 passes)."""

    input: int
    index: tuple[int, ...]
    analytic: float
    numeric: float
    ratio: float


class GradcheckError(AssertionError):
    """A backward disagrees with the finite differences of its forward; `report` is the worst element."""

    def __init__(self, message: str, report: GradcheckReport):
        super().__init__(message)
        self.report = report


def _as_input(i: int, value):
    if isinstance(value, np.ndarray) and value.dtype.kind in "iub":
        return value, False  # labels, masks: passed through, not differentiated
    arr = np.asarray(value)
    if arr.dtype.kind != "f":
        return value, False
    if arr.dtype != np.float64:
        raise TypeError(f"gradcheck works in float64; input {i} is {arr.dtype}")
    return arr.copy(), True


def gradcheck(forward, backward, *inputs, eps=1e-6, atol=1e-8, rtol=1e-6, seed=0) -> GradcheckReport:
    """Check `backward` against central finite differences of `forward`, in float64.

    `forward(*inputs)` returns an array or a scalar. `backward(g, *inputs)` returns the gradient
    of sum(g * forward(*inputs)) with respect to each input: one array per input (a bare array
    when there is one input), or None for an input it does not differentiate (labels, say).
    `g` is a fixed random upstream gradient of the forward's shape, so vector-valued ops are
    checked through one vector-Jacobian product.

    Float inputs must be float64; integer and boolean inputs pass through unchanged. The inputs
    are copied, never modified. An element passes when |analytic - numeric| <= atol + rtol |numeric|.
    Raises GradcheckError naming the worst element; returns the worst element's report otherwise.
    """
    if not (eps > 0 and atol >= 0 and rtol >= 0):
        raise ValueError(f"eps must be > 0 and atol, rtol >= 0, got eps={eps}, atol={atol}, rtol={rtol}")
    args, differentiable = zip(*(_as_input(i, a) for i, a in enumerate(inputs)), strict=True) if inputs else ((), ())
    args = list(args)

    out = np.asarray(forward(*args), dtype=np.float64)
    g = np.random.default_rng(seed).standard_normal(out.shape)
    grads = backward(g if out.ndim else float(g), *args)
    if len(args) == 1 and not isinstance(grads, (tuple, list)):
        grads = (grads,)
    if len(grads) != len(args):
        raise ValueError(f"backward returned {len(grads)} gradients for {len(args)} inputs")

    def objective() -> float:
        return float(np.sum(g * np.asarray(forward(*args), dtype=np.float64)))

    worst = None
    for i, (x, grad) in enumerate(zip(args, grads, strict=True)):
        if grad is None:
            continue
        if not differentiable[i]:
            raise ValueError(f"backward returned a gradient for input {i}, which is not a float array")
        analytic = np.asarray(grad, dtype=np.float64)
        if analytic.shape != x.shape:
            raise ValueError(f"backward's gradient for input {i} has shape {analytic.shape}, input {i} has {x.shape}")
        numeric = np.empty(x.shape)
        for idx in np.ndindex(x.shape):
            original = x[idx]
            up, down = original + eps, original - eps
            x[idx] = up
            f_up = objective()
            x[idx] = down
            f_down = objective()
            x[idx] = original
            numeric[idx] = (f_up - f_down) / (up - down)
        ratio = np.abs(analytic - numeric) / (atol + rtol * np.abs(numeric))
        ratio[np.isnan(ratio)] = np.inf  # a NaN on either side is a failure
        if ratio.size == 0:
            continue
        idx = np.unravel_index(np.argmax(ratio), ratio.shape)
        report = GradcheckReport(i, tuple(int(k) for k in idx), float(analytic[idx]), float(numeric[idx]), float(ratio[idx]))
        if worst is None or report.ratio > worst.ratio:
            worst = report
    if worst is None:
        raise ValueError("backward returned no gradient to check")
    if not worst.ratio <= 1.0:
        raise GradcheckError(
            f"gradient of input {worst.input} at index {worst.index}: analytic {worst.analytic!r}, "
            f"numeric {worst.numeric!r}, |error| {abs(worst.analytic - worst.numeric):.3g} "
            f"> atol + rtol*|numeric| = {atol + rtol * abs(worst.numeric):.3g}",
            worst,
        )
    return worst
