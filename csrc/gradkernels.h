/* The C API of gradkernels: every function the Python package calls through cffi.
 *
 * This header is also the cffi cdef (csrc/build_cffi.py reads it, dropping preprocessor
 * lines), so declarations live in exactly one place. Keep it to plain C declarations
 * that cffi can parse: no macros in declarations, no inline functions.
 */
#ifndef GRADKERNELS_H
#define GRADKERNELS_H

#include <stdint.h>

/* Instruction-set extensions, as bits of gk_cpu_features(). */
enum gk_cpu_feature {
    GK_CPU_SSE42 = 1,
    GK_CPU_AVX = 2,
    GK_CPU_AVX2 = 4,
    GK_CPU_FMA = 8,
    GK_CPU_AVX512F = 16,
    GK_CPU_AVX512BW = 32,
    GK_CPU_AVX512VL = 64,
    GK_CPU_AVX512BF16 = 128,
    GK_CPU_NEON = 256
};

/* The extensions the running processor offers (not the ones this build was compiled for): what
 * `python -m gradkernels info` lists, and part of the key of this machine's tuned table. */
uint32_t gk_cpu_features(void);

/* The x86-64 microarchitecture level of the running processor: 4 (AVX-512: x86-64-v4), 3 (AVX2 +
 * FMA: x86-64-v3), 2 or 1 (the baseline); 0 on other architectures. A kernel variant runs where
 * this is at least its level. */
int gk_cpu_level(void);

/* Whether this build runs kernels on several threads (it was compiled with OpenMP). */
int gk_openmp(void);

/* What every kernel returns. */
enum gk_status {
    GK_OK = 0,
    GK_BAD_LABEL = 1,    /* a class label outside [0, classes) that is not ignore_index */
    GK_NO_MEMORY = 2,    /* a small scratch allocation failed */
    GK_BAD_ARGUMENT = 3  /* an argument outside its documented set */
};

/* The kernels. Every one comes as _f32 (float) and _f64 (double), and each of those once per ISA
 * variant of the build, whose name it carries as a further suffix (gk_relu_forward_f32_avx2; the
 * cffi cdef declares each variant, see csrc/build_cffi.py). Every kernel takes its outputs first,
 * then its inputs, then sizes, then scalar options, then `threads`, the most threads it may use, and
 * `parallel_scale`, the factor (at least 1) on the sizes below which it runs on one thread (the
 * sizes measured with the pool's threads asleep; a larger factor where its threads would compete
 * with BLAS's). Arrays are contiguous; sizes are positive element counts; an output may be the
 * very array of an input of the same shape, never a partial overlap of one. Formulas: the Python
 * package's gradkernels.reference. */

/* Elementwise activations over n elements (activations.c). mask: ceil(n / 8) bytes, bit k of
 * byte j for element 8j + k (np.packbits(x > 0, bitorder="little")). */
int gk_relu_forward_f32(float *y, const float *x, int64_t n, int threads, int64_t parallel_scale);
int gk_relu_forward_f64(double *y, const double *x, int64_t n, int threads, int64_t parallel_scale);
int gk_relu_forward_mask_f32(float *y, uint8_t *mask, const float *x, int64_t n, int threads, int64_t parallel_scale);
int gk_relu_forward_mask_f64(double *y, uint8_t *mask, const double *x, int64_t n, int threads, int64_t parallel_scale);
int gk_relu_backward_f32(float *dx, const float *dy, const float *y, int64_t n, int threads, int64_t parallel_scale);
int gk_relu_backward_f64(double *dx, const double *dy, const double *y, int64_t n, int threads, int64_t parallel_scale);
int gk_relu_backward_mask_f32(float *dx, const float *dy, const uint8_t *mask, int64_t n, int threads,
                              int64_t parallel_scale);
int gk_relu_backward_mask_f64(double *dx, const double *dy, const uint8_t *mask, int64_t n, int threads,
                              int64_t parallel_scale);
int gk_leaky_relu_forward_f32(float *y, const float *x, int64_t n, double negative_slope, int threads,
                              int64_t parallel_scale);
int gk_leaky_relu_forward_f64(double *y, const double *x, int64_t n, double negative_slope, int threads,
                              int64_t parallel_scale);
int gk_leaky_relu_backward_f32(float *dx, const float *dy, const float *x, int64_t n, double negative_slope,
                               int threads, int64_t parallel_scale);
int gk_leaky_relu_backward_f64(double *dx, const double *dy, const double *x, int64_t n, double negative_slope,
                               int threads, int64_t parallel_scale);
int gk_sigmoid_forward_f32(float *y, const float *x, int64_t n, int threads, int64_t parallel_scale);
int gk_sigmoid_forward_f64(double *y, const double *x, int64_t n, int threads, int64_t parallel_scale);
int gk_sigmoid_backward_f32(float *dx, const float *dy, const float *y, int64_t n, int threads, int64_t parallel_scale);
int gk_sigmoid_backward_f64(double *dx, const double *dy, const double *y, int64_t n, int threads,
                            int64_t parallel_scale);
int gk_tanh_forward_f32(float *y, const float *x, int64_t n, int threads, int64_t parallel_scale);
int gk_tanh_forward_f64(double *y, const double *x, int64_t n, int threads, int64_t parallel_scale);
int gk_tanh_backward_f32(float *dx, const float *dy, const float *y, int64_t n, int threads, int64_t parallel_scale);
int gk_tanh_backward_f64(double *dx, const double *dy, const double *y, int64_t n, int threads, int64_t parallel_scale);

/* Softmax family along the rows of C-ordered (rows, classes) arrays (softmax.c). */
int gk_softmax_forward_f32(float *p, const float *z, int64_t rows, int64_t classes, int threads,
                           int64_t parallel_scale);
int gk_softmax_forward_f64(double *p, const double *z, int64_t rows, int64_t classes, int threads,
                           int64_t parallel_scale);
int gk_softmax_backward_f32(float *dz, const float *dp, const float *p, int64_t rows, int64_t classes, int threads,
                            int64_t parallel_scale);
int gk_softmax_backward_f64(double *dz, const double *dp, const double *p, int64_t rows, int64_t classes,
                            int threads, int64_t parallel_scale);
int gk_log_softmax_forward_f32(float *logp, const float *z, int64_t rows, int64_t classes, int threads,
                               int64_t parallel_scale);
int gk_log_softmax_forward_f64(double *logp, const double *z, int64_t rows, int64_t classes, int threads,
                               int64_t parallel_scale);
int gk_log_softmax_backward_f32(float *dz, const float *dlogp, const float *logp, int64_t rows, int64_t classes,
                                int threads, int64_t parallel_scale);
int gk_log_softmax_backward_f64(double *dz, const double *dlogp, const double *logp, int64_t rows,
                                int64_t classes, int threads, int64_t parallel_scale);

/* Fused losses (losses.c): the gradient times grad_scale, the unreduced losses and their float64
 * sum. Cross-entropy takes (rows, classes) logits, one int64 label per row (or class probabilities
 * of the logits' shape) and a weight per class, and sums its row losses in row order. The
 * elementwise losses take n elements and write their losses only when `losses` is not NULL. A NULL
 * gradient asks for the losses alone (the same losses). */
int gk_softmax_cross_entropy_f32(float *dz, float *losses, double *loss_sum, const float *z, const int64_t *labels,
                                 const float *weight, int64_t rows, int64_t classes, int64_t ignore_index,
                                 double label_smoothing, double grad_scale, int threads, int64_t parallel_scale);
int gk_softmax_cross_entropy_f64(double *dz, double *losses, double *loss_sum, const double *z,
                                 const int64_t *labels, const double *weight, int64_t rows, int64_t classes,
                                 int64_t ignore_index, double label_smoothing, double grad_scale, int threads,
                                 int64_t parallel_scale);
int gk_softmax_cross_entropy_soft_f32(float *dz, float *losses, double *loss_sum, const float *z,
                                      const float *targets, const float *weight, int64_t rows, int64_t classes,
                                      double label_smoothing, double grad_scale, int threads, int64_t parallel_scale);
int gk_softmax_cross_entropy_soft_f64(double *dz, double *losses, double *loss_sum, const double *z,
                                      const double *targets, const double *weight, int64_t rows, int64_t classes,
                                      double label_smoothing, double grad_scale, int threads, int64_t parallel_scale);
int gk_sigmoid_binary_cross_entropy_f32(float *dz, float *losses, double *loss_sum, const float *z,
                                        const float *targets, int64_t n, double grad_scale, int threads,
                                        int64_t parallel_scale);
int gk_sigmoid_binary_cross_entropy_f64(double *dz, double *losses, double *loss_sum, const double *z,
                                        const double *targets, int64_t n, double grad_scale, int threads,
                                        int64_t parallel_scale);
int gk_mse_f32(float *dpred, float *losses, double *loss_sum, const float *pred, const float *target, int64_t n,
               double grad_scale, int threads, int64_t parallel_scale);
int gk_mse_f64(double *dpred, double *losses, double *loss_sum, const double *pred, const double *target,
               int64_t n, double grad_scale, int threads, int64_t parallel_scale);

/* The linear layers' passes around the GEMMs (linear.c), serial. gk_bias_gradient: db = the sums
 * over the rows of a C-ordered (rows, cols) dy; with relu_output (linear_relu's output, same
 * layout) of dz = dy where relu_output > 0, else +0, written to dz (relu_output and dz NULL for a
 * plain linear layer). gk_bias_gradient_transposed: the same for Fortran-ordered arrays, read as
 * their C-ordered transposes (rows = dy's columns). gk_bias_relu: y = relu(y + b) in place, b
 * NULL for none. */
int gk_bias_gradient_f32(float *db, float *dz, const float *dy, const float *relu_output, int64_t rows, int64_t cols);
int gk_bias_gradient_f64(double *db, double *dz, const double *dy, const double *relu_output, int64_t rows,
                         int64_t cols);
int gk_bias_gradient_transposed_f32(float *db, float *dz_t, const float *dy_t, const float *relu_output_t,
                                    int64_t rows, int64_t cols);
int gk_bias_gradient_transposed_f64(double *db, double *dz_t, const double *dy_t, const double *relu_output_t,
                                    int64_t rows, int64_t cols);
int gk_bias_relu_f32(float *y, const float *b, int64_t rows, int64_t cols);
int gk_bias_relu_f64(double *y, const double *b, int64_t rows, int64_t cols);

/* An elementary function of vmath.h over n elements (vmath.c); log is for x >= 1, log1p_unit for
 * 0 <= x <= 1, exp_nonpositive for x <= 0 (results below the smallest normal number are 0). */
enum gk_function {
    GK_EXP = 0,
    GK_EXPM1 = 1,
    GK_TANH = 2,
    GK_SIGMOID = 3,
    GK_LOG = 4,
    GK_LOG1P_UNIT = 5,
    GK_EXP_NONPOSITIVE = 6
};
int gk_vmath_f32(float *y, const float *x, int64_t n, int function);
int gk_vmath_f64(double *y, const double *x, int64_t n, int function);

#endif
