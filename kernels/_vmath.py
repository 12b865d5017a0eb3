"""Elementary functions that LLVM can vectorize, since PyPI's Numba has no vector math library.

Each is branch-free (selects, not jumps): range reduction, a polynomial, a rescaling by a power of
two built from its bit pattern. All are compiled without fastmath, so they are evaluated exactly as
written wherever they are inlined. Float32 and float64 share the algorithms; only the constants and
the polynomial degree differ, chosen per type at compile time through `overload`.

Worst error against the exact value over the whole input range, float32 and float64 alike
(tests/test_numba.py measures it on dense sweeps): exp 1.25 ulp, sigmoid 2.5 ulp, tanh 3 ulp,
log1p on [0, 1] 3.5 ulp, log on [1, max] 3.5 ulp. NaN -> NaN; exp(+Inf) = +Inf, exp(-Inf) = 0, overflow to +Inf and gradual
underflow through the subnormals (exp_nonpositive: exp's accuracy down to the smallest normal
result, 0 below it); tanh(±Inf) = ±1 and tanh(-0) = -0; sigmoid(±Inf) = 1, 0.
"""

import collections
import decimal
import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ._jit import kernel

decimal.getcontext().prec = 50
_LN2 = decimal.Decimal(2).ln()


Constants = collections.namedtuple(
    "Constants",
    "log2e ln2 ln2_hi ln2_lo lo hi normal_lo expm1_poly atanh_poly sqrt2 zero half one two inf normal_floor")


def _constants(dtype, taylor_degree, atanh_degree):
    dt = dtype.type
    info = np.finfo(dtype)
    # ln 2 = hi + lo with n * hi exact for every n the reduction meets (hi has trailing zeros);
    # lo from a 50-digit ln 2, so the reduction keeps full precision near the overflow bound.
    ln2_hi = {4: 0.693145751953125, 8: float.fromhex("0x1.62e42fee00000p-1")}[dtype.itemsize]
    return Constants(
        log2e=dt(1 / math.log(2)),
        ln2=dt(math.log(2)),
        ln2_hi=dt(ln2_hi),
        ln2_lo=dt(float(_LN2 - decimal.Decimal(ln2_hi))),
        # exp's argument is clamped so that 2**n stays a product of two normal powers of two
        lo=dt(-2 * (info.maxexp - 2) * math.log(2)),
        hi=dt(2 * (info.maxexp - 1) * math.log(2)),
        # the log of the smallest normal number: exp_nonpositive's 2**n is one normal power above it
        normal_lo=dt((2 - info.maxexp) * math.log(2)),
        # exp(r) - 1 = r (1 + r/2! + r^2/3! + ...): Taylor on |r| <= ln(2)/2, highest order first
        expm1_poly=tuple(dt(1 / math.factorial(k + 1)) for k in range(taylor_degree, -1, -1)),
        # atanh(f) / f = 1 + f^2/3 + f^4/5 + ...: Taylor on |f| <= 0.1716, highest order first
        atanh_poly=tuple(dt(1 / (2 * k + 1)) for k in range(atanh_degree, -1, -1)),
        sqrt2=dt(math.sqrt(2)),
        zero=dt(0),
        half=dt(0.5),
        one=dt(1),
        two=dt(2),
        inf=dt(np.inf),
        normal_floor=dt(info.tiny * (1 + 8 * info.eps)),  # 8 ulps above the smallest normal number
    )


# Degrees chosen so that the truncation error is below half an ulp on the reduced interval.
CONSTANTS = {
    types.float32: _constants(np.dtype(np.float32), taylor_degree=6, atanh_degree=5),
    types.float64: _constants(np.dtype(np.float64), taylor_degree=12, atanh_degree=10),
}


def _float_intrinsic_signature(llvm_name, args):
    """Typing and code of one call of the LLVM intrinsic `llvm_name` on floats of one type."""
    if args[0] not in (types.float32, types.float64) or any(a != args[0] for a in args):
        return None

    def codegen(context, builder, signature, values):
        ty = values[0].type
        fn = builder.module.declare_intrinsic(llvm_name, [ty], ir.FunctionType(ty, [ty] * len(values)))
        return builder.call(fn, values)

    return args[0](*args), codegen


def _float_intrinsic(llvm_name, arity):
    # Numba's intrinsic typers take fixed parameters, hence one definition per arity.
    if arity == 2:
        return intrinsic(lambda typingctx, a, b: _float_intrinsic_signature(llvm_name, (a, b)))
    return intrinsic(lambda typingctx, a, b, c: _float_intrinsic_signature(llvm_name, (a, b, c)))


# llvm.maxnum / llvm.minnum: the larger / smaller of a and b, the other one if either is NaN. Unlike
# Numba's max() and min() each is one instruction, so a max-reduction over a row vectorizes (15x
# faster here) and a clamp costs two instructions.
maximum = _float_intrinsic("llvm.maxnum", 2)
minimum = _float_intrinsic("llvm.minnum", 2)
# a * b + c as llvm.fmuladd: one fused rounding where the CPU has FMA (then in the scalar and the
# vector loop alike, so results do not depend on which runs), a multiply and an add elsewhere.
_muladd = _float_intrinsic("llvm.fmuladd", 3)


@intrinsic
def _pow2(typingctx, n):
    """2.0**n for an integral float n in the normal exponent range, assembled from its bits."""
    layout = {types.float32: (32, 23, 127), types.float64: (64, 52, 1023)}.get(n)
    if layout is None:
        return None
    bits, mantissa_bits, bias = layout

    def codegen(context, builder, signature, args):
        int_type = ir.IntType(bits)
        biased = builder.add(builder.fptosi(args[0], int_type), ir.Constant(int_type, bias))
        shifted = builder.shl(biased, ir.Constant(int_type, mantissa_bits))
        return builder.bitcast(shifted, context.get_value_type(signature.return_type))

    return n(n), codegen


@intrinsic
def _exponent_and_mantissa(typingctx, x):
    """(e, m) with x = m 2**e, m in [1, 2), for a positive normal float, read from its bits."""
    layout = {types.float32: (32, 23, 127), types.float64: (64, 52, 1023)}.get(x)
    if layout is None:
        return None
    bits, mantissa_bits, bias = layout

    def codegen(context, builder, signature, args):
        int_type, float_type = ir.IntType(bits), args[0].type
        raw = builder.bitcast(args[0], int_type)
        exponent = builder.sub(builder.lshr(raw, ir.Constant(int_type, mantissa_bits)), ir.Constant(int_type, bias))
        fraction_mask = ir.Constant(int_type, (1 << mantissa_bits) - 1)
        one_bits = ir.Constant(int_type, bias << mantissa_bits)
        mantissa = builder.bitcast(builder.or_(builder.and_(raw, fraction_mask), one_bits), float_type)
        return context.make_tuple(builder, signature.return_type, [builder.sitofp(exponent, float_type), mantissa])

    return types.UniTuple(x, 2)(x), codegen


def _exp_reduction(x):
    """(q, n) with exp(x) = (1 + q) 2**n and q = expm1(r), |r| <= ln(2)/2; x not NaN."""


def _reduced_exp(x):
    """(q, s1, s2) with exp(x) = (1 + q) s1 s2 and q = expm1(r), |r| <= ln(2)/2; x not NaN."""


def constants(x):
    """The Constants of x's float type (float32 constants keep float32 arithmetic in float32)."""


@overload(constants)
def _constants_typed(x):
    c = CONSTANTS.get(x)
    if c is None:
        return None
    return lambda x: c


def _horner(poly, x):
    """poly[0] x^(d) + ... + poly[d], coefficients highest order first."""


@overload(_horner, jit_options={"error_model": "numpy"})
def _horner_typed(poly, x):
    def impl(poly, x):
        p = poly[0]
        for k in range(1, len(poly)):
            p = _muladd(p, x, poly[k])
        return p

    return impl


@overload(_exp_reduction, jit_options={"error_model": "numpy"})
def _exp_reduction_typed(x):
    def impl(x):
        c = constants(x)
        n = np.floor(x * c.log2e + c.half)
        r = _muladd(-n, c.ln2_lo, _muladd(-n, c.ln2_hi, x))
        return _horner(c.expm1_poly, r) * r, n

    return impl


@overload(_reduced_exp, jit_options={"error_model": "numpy"})
def _reduced_exp_typed(x):
    def impl(x):
        c = constants(x)
        q, n = _exp_reduction(minimum(maximum(x, c.lo), c.hi))  # NaN becomes lo here; exp() restores it
        n_low = np.floor(n * c.half)  # 2**n as two factors: overflow and underflow round once
        return q, _pow2(n_low), _pow2(n - n_low)

    return impl


@kernel
def exp(x):
    q, s1, s2 = _reduced_exp(x)
    y = ((q + constants(x).one) * s1) * s2
    return y if x == x else x


@kernel
def exp_nonpositive(x):
    """exp(x) for x <= 0 (and NaN): the exponentials of softmax and cross-entropy, whose arguments
    are z - max z. Results below the smallest normal number are flushed to 0, which saves exp's
    second power of two and keeps subnormal numbers (slow arithmetic on many CPUs) out of the sums
    and gradients built from them; next to a row's largest term, exp(0) = 1, they are far below
    half an ulp anyway."""
    c = constants(x)
    kept = x >= c.normal_lo  # False for -Inf and NaN
    # a dropped lane computes exp(0), not exp(normal_lo): a product that rounds to a subnormal
    # number takes a slow microcode path on many CPUs, even in a lane selected away (Zen 3 ran this
    # loop 1.9x slower where a fifth of the arguments lay below normal_lo and were clamped to it)
    q, n = _exp_reduction(x if kept else c.zero)
    y = (q + c.one) * _pow2(n) if kept else c.zero
    return y if x == x else x


@kernel
def expm1(x):
    """e**x - 1 without cancellation near 0: 2**n expm1(r) + (2**n - 1)."""
    q, s1, s2 = _reduced_exp(x)
    scale = s1 * s2
    y = q * scale + (scale - constants(x).one)
    return y if x == x else x


@kernel
def tanh(x):
    # tanh|x| = -expm1(-2|x|) / (2 + expm1(-2|x|)): no cancellation anywhere, exact limits at ±Inf.
    c = constants(x)
    m = expm1(-c.two * abs(x))
    return math.copysign(-m / (c.two + m), x)


@kernel
def sigmoid(x):
    # e = exp(-|x|) never overflows: 1 / (1 + e) for x >= 0, e / (1 + e) below.
    c = constants(x)
    e = exp(-abs(x))
    return (c.one if x >= c.zero else e) / (c.one + e)


@kernel
def log(x):
    """log x for x >= 1 (and NaN, +Inf): what a sum of exponentials shifted by their max needs,
    since its largest term is exp(0) = 1. log x = e ln 2 + 2 atanh((m - 1) / (m + 1)), x = m 2**e."""
    c = constants(x)
    e, m = _exponent_and_mantissa(x)
    upper = m > c.sqrt2
    m = m * c.half if upper else m  # m in [sqrt(2)/2, sqrt(2)]
    e = e + c.one if upper else e
    f = (m - c.one) / (m + c.one)
    y = e * c.ln2 + c.two * f * _horner(c.atanh_poly, f * f)
    return y if x < c.inf else x  # NaN and +Inf pass through


@kernel
def log1p_unit(x):
    """log(1 + x) for 0 <= x <= 1 (and NaN), what sigmoid + BCE needs for log(1 + exp(-|z|))."""
    c = constants(x)
    u = c.one + x
    correction = (x - (u - c.one)) / u  # the rounding of 1 + x, carried to first order
    upper = u > c.sqrt2
    m = u * c.half if upper else u  # m in [sqrt(2)/2, sqrt(2)]: log u = k ln 2 + log m
    f = (m - c.one) / (m + c.one)  # log m = 2 atanh f, |f| <= 0.1716
    return ((c.ln2 if upper else c.zero) + c.two * f * _horner(c.atanh_poly, f * f)) + correction
