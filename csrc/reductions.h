/* Read-only loops that reduce a row to a max or to double sums, shared by the row and loss kernels.
 *
 * They keep GK_LANES partial results, one per lane of an AVX-512 float vector, and feed each, per
 * block of GK_BLOCK = 4 GK_LANES elements, the combination of 4 elements. The compiler vectorizes
 * across the lanes; the order of operations is the code's, so a sum comes out the same on every
 * ISA, and several independent vectors per block keep the loop off the latency of one chain (2.5x
 * faster than a single `omp simd` reduction here). Sum partials are doubles fed sums of 4 terms,
 * so float rows lose nothing to rounding in their length. The last n % GK_BLOCK elements go
 * through an `omp simd` reduction. The 4 terms and the tail are added in T (at T's full vector
 * width: in double, the 36-element tail of a 100-class row made log_softmax 20% slower), or in
 * double where the caller asks (a loss sum that overflowed in T). */
#ifdef T

GK_INLINE T S(gk_larger)(T a, T b)
{
    return b > a ? b : a;
}

/* max over a non-empty row of numbers; -Inf if they are all NaN. With a NaN in the row the result
 * is one of its numbers but not necessarily the largest: no matter, as that row's sum of
 * exponentials, and so every result of it, is NaN. */
GK_INLINE T S(gk_row_max)(const T *z, int64_t n)
{
    T lanes[GK_LANES];
    for (int l = 0; l < GK_LANES; l++)
        lanes[l] = -(T)INFINITY;
    int64_t full = n - n % GK_BLOCK;
    for (int64_t b = 0; b < full; b += GK_BLOCK) {
        GK_OMP(simd)
        for (int64_t i = b; i < b + GK_LANES; i++) {
            T block_max = S(gk_larger)(S(gk_larger)(z[i], z[i + GK_LANES]),
                                       S(gk_larger)(z[i + 2 * GK_LANES], z[i + 3 * GK_LANES]));
            lanes[i - b] = S(gk_larger)(lanes[i - b], block_max);
        }
    }
    T m = -(T)INFINITY;
    GK_OMP(simd reduction(max : m))
    for (int64_t i = full; i < n; i++)
        m = z[i] > m ? z[i] : m;
    for (int l = 0; l < GK_LANES; l++)
        m = S(gk_larger)(m, lanes[l]);
    return m;
}

GK_INLINE double S(gk_total)(const T *a, int64_t n)
{
    double s;
#define TERM(i) a[i]
    GK_LANE_SUM(n, TERM, T, s);
#undef TERM
    return s;
}

GK_INLINE double S(gk_dot)(const T *a, const T *b, int64_t n)
{
    double s;
#define TERM(i) (a[i] * b[i])
    GK_LANE_SUM(n, TERM, T, s);
#undef TERM
    return s;
}

/* sum_j exp(z_j - m), m the row's max */
GK_INLINE double S(gk_sum_exp_shifted)(const T *z, T m, int64_t n)
{
    double s;
#define TERM(i) S(gk_exp_nonpositive)(z[i] - m)
    GK_LANE_SUM(n, TERM, T, s);
#undef TERM
    return s;
}

/* sum_j w_j (z_j - m): the label-smoothing term of cross-entropy. */
GK_INLINE double S(gk_weighted_shift)(const T *z, T m, const T *weight, int64_t n)
{
    double s;
#define TERM(i) (weight[i] * (z[i] - m))
    GK_LANE_SUM(n, TERM, T, s);
#undef TERM
    return s;
}

#elif !defined(GK_REDUCTIONS_H)
#define GK_REDUCTIONS_H
#include "internal.h"
#include "vmath.h"

/* The sum of the lanes' partial sums, in a fixed order. */
static inline double gk_lanes_total(const double *lanes)
{
    double half[GK_LANES / 2];
    for (int l = 0; l < GK_LANES / 2; l++)
        half[l] = lanes[l] + lanes[l + GK_LANES / 2];
    double s = 0;
    for (int l = 0; l < GK_LANES / 2; l++)
        s += half[l];
    return s;
}

/* sum over i in [0, n) of TERM(i), a T expression, into `result` (double); the 4 terms of a block,
 * and the tail, are added in W (T or double). */
#define GK_LANE_SUM(n, TERM, W, result)                                                                                \
    do {                                                                                                               \
        double gk_lanes_[GK_LANES] = {0};                                                                              \
        int64_t gk_full_ = (n) - (n) % GK_BLOCK;                                                                       \
        for (int64_t gk_b_ = 0; gk_b_ < gk_full_; gk_b_ += GK_BLOCK) {                                                 \
            GK_OMP(simd)                                                                                               \
            for (int64_t gk_i_ = gk_b_; gk_i_ < gk_b_ + GK_LANES; gk_i_++)                                             \
                gk_lanes_[gk_i_ - gk_b_] += (double)(((W)TERM(gk_i_) + (W)TERM(gk_i_ + GK_LANES)) +                    \
                                                     ((W)TERM(gk_i_ + 2 * GK_LANES) + (W)TERM(gk_i_ + 3 * GK_LANES))); \
        }                                                                                                              \
        W gk_tail_ = 0;                                                                                                \
        GK_OMP(simd reduction(+ : gk_tail_))                                                                           \
        for (int64_t gk_i_ = gk_full_; gk_i_ < (n); gk_i_++)                                                           \
            gk_tail_ += (W)TERM(gk_i_);                                                                                \
        (result) = gk_lanes_total(gk_lanes_) + (double)gk_tail_;                                                       \
    } while (0)

#define GK_TEMPLATE "reductions.h"
#include "template.h"
#endif
