/* Elementary functions that vectorize: no libm calls, no branches (selects only), so a loop that
 * applies them becomes vector code without -ffast-math, and NaN and Inf keep their IEEE meaning.
 * The algorithms are the Numba backend's (kernels/_vmath.py): range reduction, a Taylor
 * polynomial, a rescaling by powers of two assembled from their bits; only exp's reduction rounds
 * to nearest even (with a shifter constant) and its range is enforced after the fact, and tanh
 * scales by one power of two where Numba's takes two.
 *
 * Worst error against the exact value over the whole input range, float and double alike
 * (tests/test_c.py measures it on dense sweeps): exp 1.25 ulp, sigmoid 2.5 ulp, tanh 3 ulp,
 * log1p on [0, 1] 3.5 ulp, log on [1, max] 3.5 ulp. NaN -> NaN; exp(+Inf) = +Inf, exp(-Inf) = 0,
 * overflow to +Inf and gradual underflow through the subnormals; tanh(+-Inf) = +-1, tanh(-0) = -0;
 * sigmoid(+Inf) = 1, sigmoid(-Inf) = 0. exp_nonpositive, the softmax family's exp, is exp for
 * x <= 0 with results below the smallest normal number flushed to 0. */
#ifdef T

/* ln 2 = hi + lo, hi with trailing zero bits so that n * hi is exact for every n the reduction
 * meets; the polynomial degrees put the truncation error below half an ulp on |r| <= ln(2) / 2. */
#if T_MANT_BITS == 23
#define LN2_HI 0.693145751953125f
#define LN2_LO 1.42860682030941723212e-06f
static const T S(expm1_poly)[] = {
    (T)(1.0 / 5040), (T)(1.0 / 720), (T)(1.0 / 120), (T)(1.0 / 24), (T)(1.0 / 6), (T)(1.0 / 2), (T)1.0,
};
static const T S(atanh_poly)[] = {(T)(1.0 / 11), (T)(1.0 / 9), (T)(1.0 / 7), (T)(1.0 / 5), (T)(1.0 / 3), (T)1.0};
#define FMA_FUNCTION fmaf
#else
#define LN2_HI 6.93147180369123816490e-01
#define LN2_LO 1.90821492927058770002e-10
static const T S(expm1_poly)[] = {
    1.0 / 6227020800, 1.0 / 479001600, 1.0 / 39916800, 1.0 / 3628800, 1.0 / 362880, 1.0 / 40320, 1.0 / 5040,
    1.0 / 720,        1.0 / 120,       1.0 / 24,       1.0 / 6,        1.0 / 2,      1.0,
};
static const T S(atanh_poly)[] = {
    1.0 / 21, 1.0 / 19, 1.0 / 17, 1.0 / 15, 1.0 / 13, 1.0 / 11, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 1.0,
};
#define FMA_FUNCTION fma
#endif
/* A fused multiply-add where the variant's ISA has the instruction. The x86-64 baseline has none:
 * there fma() is a call into libm's software emulation, which keeps every loop around it scalar,
 * so a multiply and an add stand in (one more rounding; the error bounds above hold for both). */
#if defined(__FMA__) || !(defined(__x86_64__) || defined(__i386__))
#define FMA FMA_FUNCTION
#else
#define FMA(a, b, c) ((a) * (b) + (c))
#endif

#define LN2 ((T)0.693147180559945309417232121458176568)
#define LOG2E ((T)1.44269504088896340735992468100189214)
#define SQRT2 ((T)1.41421356237309504880168872420969808)
/* Adding it rounds a float of magnitude < 2^(T_MANT_BITS - 1) to an integer held in its low bits. */
#define SHIFTER ((T)(3.0 * ((TU)1 << (T_MANT_BITS - 1))))
/* Where exp computes (2^n is a product of two normal powers of two there); beyond, it selects its
 * limits. */
#define EXP_LO ((T)(-2.0 * (T_MAX_EXP - 2) * 0.693147180559945309417232121458176568))
#define EXP_HI ((T)(2.0 * (T_MAX_EXP - 1) * 0.693147180559945309417232121458176568))
/* log of the smallest normal number: from there up, exp's n is at least 2 - T_MAX_EXP */
#define EXP_NORMAL_LO ((T)((2 - T_MAX_EXP) * 0.693147180559945309417232121458176568))

GK_INLINE TU S(gk_bits)(T x)
{
    TU u;
    memcpy(&u, &x, sizeof u);
    return u;
}

GK_INLINE T S(gk_from_bits)(TU u)
{
    T x;
    memcpy(&x, &u, sizeof x);
    return x;
}

GK_INLINE T S(gk_horner)(const T *coefficients, int count, T x)
{
    T p = coefficients[0];
    for (int k = 1; k < count; k++)
        p = FMA(p, x, coefficients[k]);
    return p;
}

/* Returns q = expm1(r) and sets *n_bits to the two's-complement bits of the integer n, with
 * x = n ln 2 + r, |r| <= ln(2) / 2. For x in [EXP_LO, EXP_HI]; beyond that range (and for NaN) the
 * results are meaningless but harmless (unsigned integer arithmetic), and the callers select the
 * right limits afterwards. Clamping x first costs more: GCC turns a clamp's selects into masked
 * copies of the whole computation. */
GK_INLINE T S(gk_exp_reduce)(T x, TU *n_bits)
{
    T shifted = x * LOG2E + SHIFTER;
    T n = shifted - SHIFTER;
    *n_bits = S(gk_bits)(shifted) - S(gk_bits)(SHIFTER);
    T r = FMA(-n, LN2_LO, FMA(-n, LN2_HI, x));
    return S(gk_horner)(S(expm1_poly), sizeof S(expm1_poly) / sizeof(T), r) * r;
}

/* 2^k for k (two's-complement bits) in the normal exponent range. */
GK_INLINE T S(gk_pow2)(TU k)
{
    return S(gk_from_bits)((k + T_EXP_BIAS) << T_MANT_BITS);
}

/* 2^n as two normal factors, so that a result beyond the normal range rounds once. */
GK_INLINE T S(gk_pow2_split)(TU n_bits, T *high)
{
    TU n_low = (TU)((TI)n_bits >> 1); /* floor(n / 2): GCC shifts signed integers arithmetically */
    *high = S(gk_pow2)(n_bits - n_low);
    return S(gk_pow2)(n_low);
}

/* y at x beyond [EXP_LO, EXP_HI]: `low` below, +Inf above. A NaN x needs no select: it makes r,
 * and so y, NaN. */
GK_INLINE T S(gk_exp_limits)(T x, T y, T low)
{
    y = x < EXP_LO ? low : y;
    return x > EXP_HI ? (T)INFINITY : y;
}

GK_INLINE T S(gk_exp)(T x)
{
    TU n_bits;
    T q = S(gk_exp_reduce)(x, &n_bits), high;
    T low = S(gk_pow2_split)(n_bits, &high);
    return S(gk_exp_limits)(x, ((q + (T)1) * low) * high, (T)0);
}

/* exp(x) for x <= 0 (and NaN): the exponentials of softmax and cross-entropy, whose arguments are
 * z - max z. Results below the smallest normal number are flushed to 0, which saves the second
 * scale factor (~20% of the function): such a term is below the last bit of any row sum, which
 * is at least 1, so no result moves beyond its tolerance. 1.25 ulp above that. */
GK_INLINE T S(gk_exp_nonpositive)(T x)
{
    TU n_bits;
    T q = S(gk_exp_reduce)(x, &n_bits);
    return x < EXP_NORMAL_LO ? (T)0 : (q + (T)1) * S(gk_pow2)(n_bits); /* NaN: r and y are NaN */
}

/* e^x - 1 without cancellation near 0: 2^n expm1(r) + (2^n - 1). */
GK_INLINE T S(gk_expm1)(T x)
{
    TU n_bits;
    T q = S(gk_exp_reduce)(x, &n_bits), high;
    T scale = S(gk_pow2_split)(n_bits, &high) * high;
    return S(gk_exp_limits)(x, q * scale + (scale - (T)1), (T)-1);
}

/* tanh|x| = -expm1(-2|x|) / (2 + expm1(-2|x|)): no cancellation anywhere, exact limits at +-Inf.
 * The argument of expm1 is never positive, and below the log of the smallest normal number its
 * result is -1 to the last bit: so 2^n is one normal factor, not gk_expm1's two, and the limits
 * one select. NaN: r, and so y, is NaN. */
GK_INLINE T S(gk_tanh)(T x)
{
    T a = (T)-2 * S(gk_abs)(x);
    TU n_bits;
    T q = S(gk_exp_reduce)(a, &n_bits);
    T scale = S(gk_pow2)(n_bits);
    T m = a < EXP_NORMAL_LO ? (T)-1 : q * scale + (scale - (T)1);
    T y = -m / ((T)2 + m);
    return S(gk_copysign)(y, x);
}

/* e = exp(-|x|) never overflows: 1 / (1 + e) for x >= 0, e / (1 + e) below. */
GK_INLINE T S(gk_sigmoid)(T x)
{
    T e = S(gk_exp)(-S(gk_abs)(x));
    return (x >= 0 ? (T)1 : e) / ((T)1 + e);
}

/* 2 atanh(f) = log((1 + f) / (1 - f)) for |f| <= 0.1716. */
GK_INLINE T S(gk_two_atanh)(T f)
{
    return (T)2 * f * S(gk_horner)(S(atanh_poly), sizeof S(atanh_poly) / sizeof(T), f * f);
}

/* log x for x >= 1 (and NaN, +Inf): what a sum of exponentials shifted by their max needs, since
 * its largest term is exp(0) = 1. x = m 2^e with m in [sqrt(2)/2, sqrt(2)]. */
GK_INLINE T S(gk_log)(T x)
{
    TU bits = S(gk_bits)(x);
    TI e = (TI)(bits >> T_MANT_BITS) - T_EXP_BIAS;
    T m = S(gk_from_bits)((bits & (((TU)1 << T_MANT_BITS) - 1)) | ((TU)T_EXP_BIAS << T_MANT_BITS));
    int upper = m > SQRT2;
    m = upper ? m * (T)0.5 : m;
    T exponent = (T)(int32_t)e + (upper ? (T)1 : (T)0); /* SSE2 and AVX2 convert only 32-bit integers */
    T y = exponent * LN2 + S(gk_two_atanh)((m - (T)1) / (m + (T)1));
    return x < (T)INFINITY ? y : x; /* NaN and +Inf pass through */
}

/* log(1 + x) for 0 <= x <= 1 (and NaN): log(1 + exp(-|z|)) in sigmoid + binary cross-entropy. */
GK_INLINE T S(gk_log1p_unit)(T x)
{
    T u = (T)1 + x;
    T correction = (x - (u - (T)1)) / u; /* the rounding of 1 + x, carried to first order */
    int upper = u > SQRT2;
    T m = upper ? u * (T)0.5 : u;
    return ((upper ? LN2 : (T)0) + S(gk_two_atanh)((m - (T)1) / (m + (T)1))) + correction;
}

#undef LN2_HI
#undef LN2_LO
#undef FMA_FUNCTION
#undef FMA
#undef LN2
#undef LOG2E
#undef SQRT2
#undef SHIFTER
#undef EXP_LO
#undef EXP_HI
#undef EXP_NORMAL_LO

#elif !defined(GK_VMATH_H)
#define GK_VMATH_H
#include <math.h>

#include "internal.h"

GK_INLINE float gk_abs_f32(float x) { return fabsf(x); }
GK_INLINE double gk_abs_f64(double x) { return fabs(x); }
GK_INLINE float gk_copysign_f32(float x, float sign) { return copysignf(x, sign); }
GK_INLINE double gk_copysign_f64(double x, double sign) { return copysign(x, sign); }

#define GK_TEMPLATE "vmath.h"
#include "template.h"
#endif
