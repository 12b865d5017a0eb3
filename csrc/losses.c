/* Fused losses: the gradient (already multiplied by grad_scale) and the unreduced losses in one
 * call; the Python layer reduces. A NULL gradient asks for the losses alone: the same losses,
 * without the gradient's passes and stores. Formulas: gradkernels.reference.losses.
 *
 * Cross-entropy, per row: read-only passes take the max and what the loss needs from the logits,
 * then strict passes write the exponentials into the gradient row, sum them read-only and finish
 * the gradient in place (which may overwrite the logits: nothing reads them after the first write).
 *
 * Elementwise losses, per fixed GK_CHUNK (sigmoid + BCE per block of it): a read-only pass sums
 * the losses (before anything is written, as the gradient may overwrite the input), then one pass
 * writes the gradient (and the losses) while the data are still in cache. Chunk sums are added in
 * chunk order, so the total is the same for every thread count. */
#ifdef T

/* Where an exponential times p_scale would give a gradient entry below the smallest normal number,
 * the exponential is taken as 0 before the multiply, so no entry is subnormal. The bound is 8 ulps
 * above that number, which covers its own rounding and the product's: an entry kept is normal, one
 * taken as 0 was below the smallest normal number times 1 + 9 ulps. Large logits make many such
 * entries (11% of a (2048, 32000) float32 gradient with logits of standard deviation 16, mean
 * reduction), and subnormals, in the multiply and in the GEMMs that take the gradient
 * (linear_cross_entropy), made a step 15x slower on an Intel Xeon. A p_scale of 0 gives +Inf (every
 * entry 0, as the products were), a NaN one NaN (no exponential below it: the products stay NaN). */
GK_INLINE T S(smallest_kept_exp)(T p_scale)
{
    return S(gk_from_bits)(((TU)1 << T_MANT_BITS) + 8) / S(gk_abs)(p_scale);
}

/* Writes the gradient row (dz NULL: none) and returns the row's loss, with q = (1 - eps) onehot + eps / C:
 * loss = sum_j w_j q_j (lse - s_j), dz_j = ((sum_k w_k q_k) p_j - w_j q_j) grad_scale. Without dz the
 * sum of the exponentials adds the same terms in the same lane blocks as with it. */
GK_INLINE double S(cross_entropy_row)(T *dz, const T *z, int64_t label, const T *weight, double weight_sum,
                                      int64_t classes, double smoothing, double grad_scale)
{
    T m = S(gk_row_max)(z, classes);
    double label_shift = (double)(z[label] - m);
    double smoothing_shift = smoothing > 0 ? S(gk_weighted_shift)(z, m, weight, classes) : 0.0;
    double sum_exp;
    if (dz) {
        GK_OMP(simd)
        for (int64_t j = 0; j < classes; j++)
            dz[j] = S(gk_exp_nonpositive)(z[j] - m);
        sum_exp = S(gk_total)(dz, classes);
    } else {
        sum_exp = S(gk_sum_exp_shifted)(z, m, classes);
    }
    double lse = gk_log_f64(sum_exp);
    double w_t = (double)weight[label];
    double uniform = smoothing / (double)classes;
    double loss = (1.0 - smoothing) * w_t * (lse - label_shift) + uniform * (lse * weight_sum - smoothing_shift);
    if (!dz)
        return loss;
    T p_scale = (T)(((1.0 - smoothing) * w_t + uniform * weight_sum) / sum_exp * grad_scale);
    T smallest_kept = S(smallest_kept_exp)(p_scale);
    if (smoothing > 0) {
        T w_scale = (T)(uniform * grad_scale);
        GK_OMP(simd)
        for (int64_t j = 0; j < classes; j++)
            dz[j] = (dz[j] < smallest_kept ? (T)0 : dz[j]) * p_scale - weight[j] * w_scale;
    } else { /* the weights enter through w_t alone: no pass over the weight row */
        GK_OMP(simd)
        for (int64_t j = 0; j < classes; j++)
            dz[j] = (dz[j] < smallest_kept ? (T)0 : dz[j]) * p_scale;
    }
    dz[label] -= (T)((1.0 - smoothing) * w_t * grad_scale);
    return loss;
}

/* With few classes a row is too short to vectorize along: each pass over it would be a vector
 * loop's setup and a scalar remainder. Up to GK_FEW_CLASSES, rows are taken GK_BATCH at a time
 * and become the vector lanes, on a transposed copy of the batch (so dz may be z): the arithmetic
 * of cross_entropy_row, with the log of the sum taken in T. Rows [first, first + count); dz NULL:
 * the losses alone. */
GK_INLINE void S(cross_entropy_batch)(T *dz, T *losses, const T *z, const int64_t *labels, const T *weight,
                                      int64_t first, int64_t count, int64_t classes, int64_t ignore_index,
                                      double smoothing, double grad_scale, double weight_sum)
{
    T shifted[GK_FEW_CLASSES][GK_BATCH], exps[GK_FEW_CLASSES][GK_BATCH]; /* (class, row): z - max, exp */
    T m[GK_BATCH], sum_exp[GK_BATCH], weighted[GK_BATCH], lse[GK_BATCH], label_weight[GK_BATCH], p_scale[GK_BATCH],
        smallest_kept[GK_BATCH];
    const T *zb = z + first * classes;
    double keep = 1.0 - smoothing, uniform = smoothing / (double)classes;
    for (int64_t j = 0; j < classes; j++) {
        GK_OMP(simd)
        for (int64_t b = 0; b < count; b++)
            shifted[j][b] = zb[b * classes + j];
    }
    for (int64_t b = 0; b < count; b++) {
        m[b] = -(T)INFINITY;
        sum_exp[b] = 0;
        weighted[b] = 0;
    }
    for (int64_t j = 0; j < classes; j++) {
        GK_OMP(simd)
        for (int64_t b = 0; b < count; b++)
            m[b] = shifted[j][b] > m[b] ? shifted[j][b] : m[b];
    }
    for (int64_t j = 0; j < classes; j++) {
        T w = weight[j];
        GK_OMP(simd)
        for (int64_t b = 0; b < count; b++) {
            T v = shifted[j][b] - m[b], e = S(gk_exp_nonpositive)(v);
            shifted[j][b] = v;
            exps[j][b] = e;
            sum_exp[b] += e;
            weighted[b] += w * v;
        }
    }
    GK_OMP(simd)
    for (int64_t b = 0; b < count; b++)
        lse[b] = S(gk_log)(sum_exp[b]);
    for (int64_t b = 0; b < count; b++) { /* per row: the label's weight, and the loss */
        int64_t r = first + b, label = labels[r];
        if (label == ignore_index) {
            label_weight[b] = 0;
            losses[r] = 0;
            continue;
        }
        label_weight[b] = weight[label];
        double w_t = (double)label_weight[b], log_sum = (double)lse[b];
        /* the smoothing term only with smoothing: a masked class (z = -inf) makes it 0 * inf */
        double smoothed = smoothing > 0 ? uniform * (log_sum * weight_sum - (double)weighted[b]) : 0.0;
        losses[r] = (T)(keep * w_t * (log_sum - (double)shifted[label][b]) + smoothed);
    }
    if (!dz)
        return;
    GK_OMP(simd)
    for (int64_t b = 0; b < count; b++) {
        p_scale[b] = (T)((keep * (double)label_weight[b] + uniform * weight_sum) / (double)sum_exp[b] * grad_scale);
        smallest_kept[b] = S(smallest_kept_exp)(p_scale[b]);
    }
    for (int64_t j = 0; j < classes; j++) { /* the gradient, transposed, into `shifted` */
        T w = smoothing > 0 ? (T)((double)weight[j] * uniform * grad_scale) : (T)0;
        GK_OMP(simd)
        for (int64_t b = 0; b < count; b++)
            shifted[j][b] = (exps[j][b] < smallest_kept[b] ? (T)0 : exps[j][b]) * p_scale[b] - w;
    }
    for (int64_t b = 0; b < count; b++) {
        int64_t label = labels[first + b];
        if (label == ignore_index)
            for (int64_t j = 0; j < classes; j++)
                shifted[j][b] = 0;
        else
            shifted[label][b] -= (T)(keep * (double)label_weight[b] * grad_scale);
    }
    T *dzb = dz + first * classes;
    for (int64_t j = 0; j < classes; j++) {
        GK_OMP(simd)
        for (int64_t b = 0; b < count; b++)
            dzb[b * classes + j] = shifted[j][b];
    }
}

/* Integer labels, each in [0, classes) or equal to ignore_index, checked here before anything is
 * written: a bad label returns GK_BAD_LABEL and leaves the outputs untouched. */
/* The row losses added in row order, the same for every thread count. */
GK_INLINE double S(row_losses_total)(const T *losses, int64_t rows)
{
    double total = 0;
    for (int64_t r = 0; r < rows; r++)
        total += (double)losses[r];
    return total;
}

int GK_KERNEL(gk_softmax_cross_entropy)(T *dz, T *losses, double *loss_sum, const T *z, const int64_t *labels,
                                        const T *weight, int64_t rows, int64_t classes, int64_t ignore_index,
                                        double smoothing, double grad_scale, int threads, int64_t parallel_scale)
{
    for (int64_t r = 0; r < rows; r++)
        if (labels[r] != ignore_index && (labels[r] < 0 || labels[r] >= classes))
            return GK_BAD_LABEL;
    double weight_sum = S(gk_total)(weight, classes);
    if (classes <= GK_FEW_CLASSES) {
        int64_t batches = (rows + GK_BATCH - 1) / GK_BATCH;
        GK_FOR(gk_parallel_rows(rows, classes, threads, parallel_scale), k, batches,
               S(cross_entropy_batch)(dz, losses, z, labels, weight, k * GK_BATCH, GK_MIN(GK_BATCH, rows - k * GK_BATCH),
                                      classes, ignore_index, smoothing, grad_scale, weight_sum););
        *loss_sum = S(row_losses_total)(losses, rows);
        return GK_OK;
    }
    GK_FOR(gk_parallel_rows(rows, classes, threads, parallel_scale), r, rows, {
        T *dz_row = dz ? dz + r * classes : NULL;
        if (labels[r] == ignore_index) {
            if (dz_row)
                memset(dz_row, 0, (size_t)classes * sizeof(T));
            losses[r] = 0;
        } else {
            losses[r] = (T)S(cross_entropy_row)(dz_row, z + r * classes, labels[r], weight, weight_sum, classes,
                                                smoothing, grad_scale);
        }
    });
    *loss_sum = S(row_losses_total)(losses, rows);
    return GK_OK;
}

/* Class-probability targets: the same formulas with q' = (1 - eps) q + eps / C. */
GK_INLINE double S(soft_cross_entropy_row)(T *dz, const T *z, const T *q, const T *weight, int64_t classes,
                                           double smoothing, double grad_scale)
{
    T m = S(gk_row_max)(z, classes);
    T keep = (T)(1.0 - smoothing), uniform = (T)(smoothing / (double)classes);
    double wq = 0, wq_shift = 0; /* sum_j w_j q'_j and sum_j w_j q'_j (z_j - m) */
    for (int64_t b = 0; b < classes; b += GK_BLOCK) {
        int64_t e = GK_MIN(classes, b + GK_BLOCK);
        T t = 0, u = 0;
        GK_OMP(simd reduction(+ : t, u))
        for (int64_t j = b; j < e; j++) {
            T wq_j = weight[j] * (keep * q[j] + uniform);
            t += wq_j;
            u += wq_j * (z[j] - m);
        }
        wq += (double)t;
        wq_shift += (double)u;
    }
    if (!dz) /* the same sum as below's, without storing its terms */
        return gk_log_f64(S(gk_sum_exp_shifted)(z, m, classes)) * wq - wq_shift;
    GK_OMP(simd)
    for (int64_t j = 0; j < classes; j++)
        dz[j] = S(gk_exp_nonpositive)(z[j] - m);
    double sum_exp = S(gk_total)(dz, classes);
    T p_scale = (T)(wq / sum_exp * grad_scale), smallest_kept = S(smallest_kept_exp)(p_scale);
    T q_scale = (T)((1.0 - smoothing) * grad_scale), u_scale = (T)(smoothing / (double)classes * grad_scale);
    GK_OMP(simd)
    for (int64_t j = 0; j < classes; j++)
        dz[j] = (dz[j] < smallest_kept ? (T)0 : dz[j]) * p_scale - weight[j] * (q[j] * q_scale + u_scale);
    return gk_log_f64(sum_exp) * wq - wq_shift;
}

int GK_KERNEL(gk_softmax_cross_entropy_soft)(T *dz, T *losses, double *loss_sum, const T *z, const T *targets,
                                             const T *weight, int64_t rows, int64_t classes, double smoothing,
                                             double grad_scale, int threads, int64_t parallel_scale)
{
    GK_FOR(gk_parallel_rows(rows, classes, threads, parallel_scale), r, rows,
           losses[r] = (T)S(soft_cross_entropy_row)(dz ? dz + r * classes : NULL, z + r * classes,
                                                    targets + r * classes, weight, classes, smoothing, grad_scale););
    *loss_sum = S(row_losses_total)(losses, rows);
    return GK_OK;
}

/* The loss of sigmoid + binary cross-entropy, max(z, 0) - z t + log(1 + e), given e = exp(-|z|). */
GK_INLINE T S(bce_loss)(T z, T t, T e)
{
    return ((z > 0 ? z : (T)0) - z * t) + S(gk_log1p_unit)(e);
}

/* The sum of n loss terms. Each may be as large as T's largest value, so the 4 terms of a block, or
 * the tail, can overflow T where their sum in double would not: then the chunk is summed again in
 * double, which costs 10-40% on every chunk if done always (measured for float MSE and BCE). */
#define GK_LOSS_SUM(n, TERM, result)                                                                                   \
    do {                                                                                                               \
        GK_LANE_SUM(n, TERM, T, result);                                                                               \
        if (!isfinite(result))                                                                                         \
            GK_LANE_SUM(n, TERM, double, result);                                                                      \
    } while (0)

/* The gradient of sigmoid + binary cross-entropy, (sigmoid(z) - t) grad_scale, given bce_loss's e. */
GK_INLINE T S(bce_gradient)(T z, T t, T e, T grad_scale)
{
    return ((z >= 0 ? (T)1 : e) / ((T)1 + e) - t) * grad_scale;
}

/* One chunk of sigmoid + binary cross-entropy, GK_BCE_BLOCK elements at a time: e = exp(-|z|)
 * into a block on the stack, the block's losses summed read-only (dz may be z), then its dz and
 * losses (each unless NULL) while it is in L1, so each exponential is computed once. The choice
 * of loop is outside the loops: a store under a condition inside one keeps it scalar where the
 * ISA has no masked stores (the SSE2 baseline). */
GK_INLINE double S(bce_chunk)(T *dz, T *losses, const T *z, const T *t, int64_t n, T grad_scale)
{
    double s = 0;
    for (int64_t first = 0; first < n; first += GK_BCE_BLOCK) {
        int64_t m = GK_MIN(GK_BCE_BLOCK, n - first);
        const T *zb = z + first, *tb = t + first;
        T *dzb = dz ? dz + first : NULL, *lb = losses ? losses + first : NULL;
        T e[GK_BCE_BLOCK];
        GK_OMP(simd)
        for (int64_t i = 0; i < m; i++)
            e[i] = S(gk_exp)(-S(gk_abs)(zb[i]));
        double block_sum;
#define TERM(i) S(bce_loss)(zb[i], tb[i], e[i])
        GK_LOSS_SUM(m, TERM, block_sum);
#undef TERM
        s += block_sum;
        if (!dzb) {
            if (lb) {
                GK_OMP(simd)
                for (int64_t i = 0; i < m; i++)
                    lb[i] = S(bce_loss)(zb[i], tb[i], e[i]);
            }
        } else if (lb) {
            GK_OMP(simd)
            for (int64_t i = 0; i < m; i++) {
                T v = zb[i], target = tb[i];
                lb[i] = S(bce_loss)(v, target, e[i]);
                dzb[i] = S(bce_gradient)(v, target, e[i], grad_scale);
            }
        } else {
            GK_OMP(simd)
            for (int64_t i = 0; i < m; i++)
                dzb[i] = S(bce_gradient)(zb[i], tb[i], e[i], grad_scale);
        }
    }
    return s;
}

/* One chunk of the squared error: loss = d^2, dpred = 2 d grad_scale with d = pred - target; losses
 * and dpred each unless NULL. */
GK_INLINE double S(mse_chunk)(T *dpred, T *losses, const T *pred, const T *target, int64_t n, T grad_scale)
{
    double s;
#define TERM(i) ((pred[i] - target[i]) * (pred[i] - target[i]))
    GK_LOSS_SUM(n, TERM, s);
#undef TERM
    T g = (T)2 * grad_scale;
    if (losses && dpred) { /* the choice of loop outside the loops, as in bce_chunk */
        GK_OMP(simd)
        for (int64_t i = 0; i < n; i++) {
            T d = pred[i] - target[i];
            losses[i] = d * d;
            dpred[i] = d * g;
        }
    } else if (dpred) {
        GK_OMP(simd)
        for (int64_t i = 0; i < n; i++)
            dpred[i] = (pred[i] - target[i]) * g;
    } else if (losses) {
        GK_OMP(simd)
        for (int64_t i = 0; i < n; i++)
            losses[i] = (pred[i] - target[i]) * (pred[i] - target[i]);
    }
    return s;
}

/* In the two drivers below, each chunk's loss sum lands in partial[c]; gk_sum_chunks adds them in
 * chunk order. */

/* losses may be NULL (a reduced loss needs only the sum), and dz (the loss alone). */
int GK_KERNEL(gk_sigmoid_binary_cross_entropy)(T *dz, T *losses, double *loss_sum, const T *z, const T *targets,
                                               int64_t n, double grad_scale, int threads, int64_t parallel_scale)
{
    double *partial = malloc((size_t)gk_chunks(n) * sizeof *partial);
    if (!partial)
        return GK_NO_MEMORY;
    GK_FOR(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_TRANSCENDENTAL), c, gk_chunks(n), {
        int64_t s = c * GK_CHUNK;
        partial[c] = S(bce_chunk)(dz ? dz + s : NULL, losses ? losses + s : NULL, z + s, targets + s,
                                  GK_MIN(n - s, GK_CHUNK), (T)grad_scale);
    });
    *loss_sum = gk_sum_chunks(partial, n);
    return GK_OK;
}

int GK_KERNEL(gk_mse)(T *dpred, T *losses, double *loss_sum, const T *pred, const T *target, int64_t n,
                      double grad_scale, int threads, int64_t parallel_scale)
{
    double *partial = malloc((size_t)gk_chunks(n) * sizeof *partial);
    if (!partial)
        return GK_NO_MEMORY;
    GK_FOR(gk_parallel(n, threads, parallel_scale, GK_PARALLEL_MIN_ELEMENTS), c, gk_chunks(n), {
        int64_t s = c * GK_CHUNK;
        partial[c] = S(mse_chunk)(dpred ? dpred + s : NULL, losses ? losses + s : NULL, pred + s, target + s,
                                  GK_MIN(n - s, GK_CHUNK), (T)grad_scale);
    });
    *loss_sum = gk_sum_chunks(partial, n);
    return GK_OK;
}

#else
#include <stdlib.h>

#include "internal.h"
#include "reductions.h"
#include "vmath.h"

/* Cross-entropy with at most this many classes runs GK_BATCH rows at a time, rows as lanes. */
#define GK_FEW_CLASSES 16
#define GK_BATCH 64
/* Elements whose exponentials sigmoid + binary cross-entropy keeps at a time (4 or 8 KiB of stack). */
#define GK_BCE_BLOCK 1024

static int64_t gk_chunks(int64_t n)
{
    return (n + GK_CHUNK - 1) / GK_CHUNK;
}

/* The chunk sums of n elements, added in chunk order; frees them. */
static double gk_sum_chunks(double *partial, int64_t n)
{
    double total = 0;
    for (int64_t c = 0; c < gk_chunks(n); c++)
        total += partial[c];
    free(partial);
    return total;
}

#define GK_TEMPLATE "losses.c"
#include "template.h"
#endif
