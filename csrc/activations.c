/* Elementwise activations, forward and backward. Arrays are contiguous, of n elements; an output
 * may be the very array of an input (never a partial overlap of one), which `omp simd` allows:
 * each element is read before it is written. Results do not depend on how the loop is split. */
#ifdef T

int GK_KERNEL(gk_relu_forward)(T *y, const T *x, int64_t n, int threads, int64_t parallel_scale)
{
    GK_FOR_SIMD(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_ELEMENTS), i, n,
                y[i] = x[i] <= 0 ? (T)0 : x[i]; /* NaN stays NaN */);
    return GK_OK;
}

/* Bit k of mask[j] is x[8j + k] > 0: np.packbits(x > 0, bitorder="little"), written together with
 * y from the same read of x, GK_MASK_BLOCK mask bytes (8 times as many elements) at a time; tasks
 * own whole blocks. Vector loops write y and a byte per element, 1 where it is positive; then each
 * 8 of those bytes, read as one 64-bit word, become a mask byte by one multiply (GK_GATHER_BITS).
 * A reduction of 8 comparisons per mask byte stayed scalar on the SSE2 baseline, which GCC found
 * unprofitable to vectorize (1.8x the AVX2 variant's time there). */
int GK_KERNEL(gk_relu_forward_mask)(T *y, uint8_t *mask, const T *x, int64_t n, int threads, int64_t parallel_scale)
{
    int64_t bytes = n / 8, blocks = (bytes + GK_MASK_BLOCK - 1) / GK_MASK_BLOCK;
    GK_FOR(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_ELEMENTS), b, blocks, {
        int64_t first = b * GK_MASK_BLOCK, count = GK_MIN(GK_MASK_BLOCK, bytes - first);
        const T *in = x + 8 * first;
        T *out = y + 8 * first;
        uint8_t positive[8 * GK_MASK_BLOCK];
        GK_OMP(simd)
        for (int64_t i = 0; i < 8 * count; i++)
            positive[i] = in[i] > 0;
        GK_OMP(simd)
        for (int64_t i = 0; i < 8 * count; i++)
            out[i] = in[i] <= 0 ? (T)0 : in[i];
        for (int64_t j = 0; j < count; j++) {
            uint64_t word;
            memcpy(&word, positive + 8 * j, sizeof word);
            mask[first + j] = (uint8_t)((word * GK_GATHER_BITS) >> 56);
        }
    });
    if (n % 8) {
        uint8_t bits = 0;
        for (int64_t i = 8 * bytes; i < n; i++) {
            T v = x[i];
            bits |= (uint8_t)((v > 0) << (i - 8 * bytes));
            y[i] = v <= 0 ? (T)0 : v;
        }
        mask[bytes] = bits;
    }
    return GK_OK;
}

int GK_KERNEL(gk_relu_backward)(T *dx, const T *dy, const T *y, int64_t n, int threads, int64_t parallel_scale)
{
    GK_FOR_SIMD(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_ELEMENTS), i, n, {
        T g = dy[i]; /* read unconditionally, so that the choice is a select */
        dx[i] = y[i] > 0 ? g : (T)0;
    });
    return GK_OK;
}

/* A byte of the mask at a time: its row of S(mask_lanes) has all bits set in the lanes whose bit is
 * set, so each element is dy's bits and-ed with its lane, +0 where the bit is clear. Plain
 * contiguous loads and an and vectorize on every ISA; a select per bit of a byte stayed scalar on
 * the SSE2 baseline (no 64-bit lane compare there). */
#define LANE(b, k) ((((b) >> (k)) & 1) ? ~(TU)0 : (TU)0)
#define ROW(b) {LANE(b, 0), LANE(b, 1), LANE(b, 2), LANE(b, 3), LANE(b, 4), LANE(b, 5), LANE(b, 6), LANE(b, 7)}
#define ROWS4(b) ROW(b), ROW((b) + 1), ROW((b) + 2), ROW((b) + 3)
#define ROWS16(b) ROWS4(b), ROWS4((b) + 4), ROWS4((b) + 8), ROWS4((b) + 12)
#define ROWS64(b) ROWS16(b), ROWS16((b) + 16), ROWS16((b) + 32), ROWS16((b) + 48)
static const TU S(mask_lanes)[256][8] = {ROWS64(0), ROWS64(64), ROWS64(128), ROWS64(192)};
#undef LANE
#undef ROW
#undef ROWS4
#undef ROWS16
#undef ROWS64

int GK_KERNEL(gk_relu_backward_mask)(T *dx, const T *dy, const uint8_t *mask, int64_t n, int threads,
                                     int64_t parallel_scale)
{
    int64_t bytes = n / 8;
    GK_FOR(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_ELEMENTS), j, bytes, {
        const TU *lanes = S(mask_lanes)[mask[j]];
        GK_OMP(simd)
        for (int k = 0; k < 8; k++)
            dx[8 * j + k] = S(gk_from_bits)(S(gk_bits)(dy[8 * j + k]) & lanes[k]);
    });
    for (int64_t i = 8 * bytes; i < n; i++)
        dx[i] = mask[bytes] & (1u << (i - 8 * bytes)) ? dy[i] : (T)0;
    return GK_OK;
}

int GK_KERNEL(gk_leaky_relu_forward)(T *y, const T *x, int64_t n, double negative_slope, int threads,
                                     int64_t parallel_scale)
{
    T a = (T)negative_slope;
    GK_FOR_SIMD(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_ELEMENTS), i, n,
                y[i] = x[i] > 0 ? x[i] : a * x[i];);
    return GK_OK;
}

int GK_KERNEL(gk_leaky_relu_backward)(T *dx, const T *dy, const T *x, int64_t n, double negative_slope,
                                      int threads, int64_t parallel_scale)
{
    T a = (T)negative_slope;
    GK_FOR_SIMD(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_ELEMENTS), i, n,
                dx[i] = x[i] > 0 ? dy[i] : a * dy[i];);
    return GK_OK;
}

int GK_KERNEL(gk_sigmoid_forward)(T *y, const T *x, int64_t n, int threads, int64_t parallel_scale)
{
    GK_FOR_SIMD(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_TRANSCENDENTAL), i, n,
                y[i] = S(gk_sigmoid)(x[i]););
    return GK_OK;
}

int GK_KERNEL(gk_sigmoid_backward)(T *dx, const T *dy, const T *y, int64_t n, int threads, int64_t parallel_scale)
{
    GK_FOR_SIMD(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_ELEMENTS), i, n,
                dx[i] = dy[i] * (y[i] * ((T)1 - y[i])););
    return GK_OK;
}

int GK_KERNEL(gk_tanh_forward)(T *y, const T *x, int64_t n, int threads, int64_t parallel_scale)
{
    GK_FOR_SIMD(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_TRANSCENDENTAL), i, n,
                y[i] = S(gk_tanh)(x[i]););
    return GK_OK;
}

int GK_KERNEL(gk_tanh_backward)(T *dx, const T *dy, const T *y, int64_t n, int threads, int64_t parallel_scale)
{
    GK_FOR_SIMD(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_ELEMENTS), i, n,
                dx[i] = dy[i] * (((T)1 - y[i]) * ((T)1 + y[i])); /* not 1 - y^2: exact near |y| = 1 */);
    return GK_OK;
}

#else
#include "internal.h"
#include "vmath.h"

/* Mask bytes that relu_forward_mask takes at a time (its per-element bytes: 512 on the stack). */
#define GK_MASK_BLOCK 64
/* Times a 64-bit word of bytes that are each 0 or 1, it moves the bit of the word's byte k to bit
 * 56 + k; the word's byte k is the k-th in memory on a little-endian machine, the (7 - k)-th on a
 * big-endian one. No two partial products meet in a bit, so nothing carries. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define GK_GATHER_BITS UINT64_C(0x8040201008040201)
#else
#define GK_GATHER_BITS UINT64_C(0x0102040810204080)
#endif

#define GK_TEMPLATE "activations.c"
#include "template.h"
#endif
