"""How the tests measure the elementary functions of the Numba and C backends, which share their
algorithms and their documented bounds: worst error in ulp on dense sweeps of the whole input
range against long double, and the IEEE special values."""

import numpy as np

LONG_DOUBLE_ENOUGH = np.finfo(np.longdouble).nmant >= 63
FUNCTIONS = ("exp", "expm1", "tanh", "sigmoid", "log1p_unit", "log")

# (input range per dtype, exact reference in long double, documented worst ulp). The bounds are
# the ones documented in kernels/_vmath.py and csrc/vmath.h (measured maxima of the Numba
# backend: exp 1.15 / 1.08, tanh 2.48 / 2.57, sigmoid 2.10 / 2.12, log1p 3.22 / 3.20, log 2.63 /
# 2.71 ulp for float32 / float64).
ULP_CASES = {
    "exp": ({np.float32: (-110, 95), np.float64: (-760, 715)}, np.exp, 1.25),
    "tanh": ({np.float32: (-12, 12), np.float64: (-22, 22)}, np.tanh, 3.0),
    "sigmoid": ({np.float32: (-110, 40), np.float64: (-760, 60)}, lambda x: 1 / (1 + np.exp(-x)), 2.5),
    "log1p_unit": ({np.float32: (0, 1), np.float64: (0, 1)}, np.log1p, 3.5),
    "log": ({np.float32: (1, 3e38), np.float64: (1, 1e308)}, np.log, 3.5),
}


def sweep(name, dtype, n=400_001):
    """Inputs covering the function's whole range: a dense linear sweep plus the tiny magnitudes."""
    lo, hi = ULP_CASES[name][0][dtype]
    if name == "log":  # its domain is [1, max]: the sums of shifted exponentials
        return np.concatenate([np.linspace(1, 64, n // 2), np.geomspace(1, hi, n // 2)]).astype(dtype)
    tiny = np.geomspace(np.finfo(dtype).tiny, 1.0, 20_000)
    x = np.concatenate([np.linspace(lo, hi, n), tiny, -tiny]).astype(dtype)
    return np.abs(x) if name == "log1p_unit" else x


def worst_ulp(name, x, y):
    """The largest error of y = f(x) in units of the last place of the exact value."""
    dtype = x.dtype
    with np.errstate(over="ignore"):  # exact values beyond the dtype's range are left out
        exact = ULP_CASES[name][1](x.astype(np.longdouble))
        exact_rounded = exact.astype(dtype)
    ok = np.isfinite(exact_rounded) & (exact != 0)
    spacing = np.spacing(np.abs(exact_rounded[ok])).astype(np.longdouble)
    return float(np.max(np.abs(y[ok].astype(np.longdouble) - exact[ok]) / spacing))


def check_special_values(apply, dtype):
    """apply(name, x) -> f(x): NaN, infinities, signed zeros, the extremes, gradual underflow."""
    info = np.finfo(dtype)
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, info.max, -info.max], dtype)
    out = {name: apply(name, x) for name in FUNCTIONS}
    nan = np.nan
    np.testing.assert_array_equal(out["exp"], np.array([nan, np.inf, 0, 1, 1, np.inf, 0], dtype))
    np.testing.assert_array_equal(out["expm1"], np.array([nan, np.inf, -1, 0, 0, np.inf, -1], dtype))
    np.testing.assert_array_equal(out["tanh"], np.array([nan, 1, -1, 0, -0.0, 1, -1], dtype))
    assert np.signbit(out["tanh"][4]) and not np.signbit(out["tanh"][3])
    np.testing.assert_array_equal(out["sigmoid"], np.array([nan, 1, 0, 0.5, 0.5, 1, 0], dtype))
    assert np.isnan(out["log1p_unit"][0]) and out["log1p_unit"][3] == 0
    assert np.isnan(out["log"][0]) and out["log"][1] == np.inf and np.isclose(out["log"][5], np.log(info.max), rtol=1e-6)
    # gradual underflow: exp reaches the subnormals and rounds to the nearest
    x = np.array([np.log(info.tiny) - 5], dtype)
    y = apply("exp", x)
    assert 0 < y[0] < info.tiny and abs(y[0] - np.exp(x.astype(np.longdouble))[0]) <= info.smallest_subnormal


def check_exp_nonpositive(apply, dtype):
    """The softmax family's exp (arguments z - max z <= 0): exp's accuracy down to the smallest
    normal result, 0 below it."""
    info = np.finfo(dtype)
    normal_lo = np.log(info.tiny)
    x = np.concatenate([np.linspace(normal_lo, 0, 400_001), -np.geomspace(info.tiny, 1, 20_000)]).astype(dtype)
    x = x[x >= normal_lo]  # the float rounding of the end point may fall just below it
    assert worst_ulp("exp", x, apply("exp_nonpositive", x)) <= ULP_CASES["exp"][2]
    special = np.array([np.nan, -np.inf, -0.0, 0.0, normal_lo - 1, -info.max], dtype)
    np.testing.assert_array_equal(apply("exp_nonpositive", special), np.array([np.nan, 0, 1, 1, 0, 0], dtype))
