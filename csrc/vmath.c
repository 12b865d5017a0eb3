/* The elementary functions of vmath.h over arrays: how the tests measure their worst error, and a
 * vectorized exp/tanh/... for users who want one. y may be x. */
#ifdef T

int GK_KERNEL(gk_vmath)(T *y, const T *x, int64_t n, int function)
{
    switch (function) {
#define APPLY(id, f)                                                                                                   \
    case id:                                                                                                           \
        GK_OMP(simd)                                                                                                   \
        for (int64_t i = 0; i < n; i++)                                                                                \
            y[i] = f(x[i]);                                                                                            \
        return GK_OK;
        APPLY(GK_EXP, S(gk_exp))
        APPLY(GK_EXP_NONPOSITIVE, S(gk_exp_nonpositive))
        APPLY(GK_EXPM1, S(gk_expm1))
        APPLY(GK_TANH, S(gk_tanh))
        APPLY(GK_SIGMOID, S(gk_sigmoid))
        APPLY(GK_LOG, S(gk_log))
        APPLY(GK_LOG1P_UNIT, S(gk_log1p_unit))
#undef APPLY
    default:
        return GK_BAD_ARGUMENT;
    }
}

#else
#include "internal.h"
#include "vmath.h"

#define GK_TEMPLATE "vmath.c"
#include "template.h"
#endif
