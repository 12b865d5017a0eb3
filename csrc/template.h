/* Instantiates the typed half of the file named by GK_TEMPLATE once for float and once for double.
 *
 * In the typed code, T is the element type, S(name) the name with its type suffix (name_f32,
 * name_f64), GK_KERNEL(name) a public kernel's name with its type and ISA variant suffixes
 * (name_f32_avx2; see internal.h), TI/TU the signed/unsigned integers of T's width, and
 * T_MANT_BITS, T_EXP_BIAS, T_MAX_EXP T's binary layout. A family file is its own template: its untyped half (guarded by
 * `#ifndef T`) includes this header, which includes the file back with T defined. */

#define S(name) GK_CONCAT(name, T_SUFFIX)
#define GK_KERNEL(name) GK_CONCAT(S(name), GK_VARIANT)
#define GK_CONCAT(a, b) GK_CONCAT_(a, b)
#define GK_CONCAT_(a, b) a##b

#define T float
#define TI int32_t
#define TU uint32_t
#define T_SUFFIX _f32
#define T_MANT_BITS 23
#define T_EXP_BIAS 127
#define T_MAX_EXP 128
#include GK_TEMPLATE
#undef T
#undef TI
#undef TU
#undef T_SUFFIX
#undef T_MANT_BITS
#undef T_EXP_BIAS
#undef T_MAX_EXP

#define T double
#define TI int64_t
#define TU uint64_t
#define T_SUFFIX _f64
#define T_MANT_BITS 52
#define T_EXP_BIAS 1023
#define T_MAX_EXP 1024
#include GK_TEMPLATE
#undef T
#undef TI
#undef TU
#undef T_SUFFIX
#undef T_MANT_BITS
#undef T_EXP_BIAS
#undef T_MAX_EXP

#undef S
#undef GK_KERNEL
#undef GK_CONCAT
#undef GK_CONCAT_
#undef GK_TEMPLATE
