/*
 * edgekd_nn_ops: the int8 operators of the native C export beyond convolution, fully connected
 * and pooling: softmax, mean, broadcasting mul / add / sub, the strided copy behind
 * concatenation, nearest-neighbour resize, and a 256-entry table lookup for elementwise
 * activations (logistic, tanh, hard swish, leaky relu), whose tables firmware_export/fixedpoint.py
 * fills at export time.
 *
 * Same rules as edgekd_nn.h: hand-written C99, freestanding, no malloc, no libc call, no float.
 * Each kernel follows the integer arithmetic of TFLite Micro's int8 kernel for that operator
 * (TFLite's reference integer kernels and gemmlowp's fixed-point functions), so outputs are
 * bit-identical to TFLite Micro. Every multiplier, shift, radius and clamp is computed at export
 * time (firmware_export/targets/c.py) the way the operator's Prepare function computes it.
 */
#ifndef EDGEKD_NN_OPS_H_
#define EDGEKD_NN_OPS_H_

#include "edgekd_nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Softmax over the last axis: rows x depth int8 -> int8 with output scale 1/256, zero point -128.
 * diff = x - row max is scaled by in_mult * 2^in_left_shift into Q5.26 (beta and the input scale
 * folded in); differences below diff_min contribute nothing and give -128. */
typedef struct {
    int32_t rows, depth;
    int32_t in_mult, in_left_shift;
    int32_t diff_min;
} ekd_softmax_params;

/* Mean over any set of axes of a tensor seen as 4-D: each output (indexed over out_shape) sums the
 * input over red_shape (the reduced extents, 1 elsewhere); in_stride are the input's strides.
 * The 1 / count factor is already folded into mult / shift (as TFLite Micro folds it). */
typedef struct {
    int32_t out_shape[4];
    int32_t red_shape[4];
    int32_t in_stride[4];
    int32_t count;
    int32_t in_zero_point, out_zero_point;
    int32_t mult, shift;
} ekd_mean_params;

/* Broadcast of two operands to one 4-D output: operand strides are 0 along broadcast axes. */
typedef struct {
    int32_t out_shape[4];
    int32_t a_stride[4];
    int32_t b_stride[4];
} ekd_bcast4;

typedef struct {
    ekd_bcast4 shape;
    int32_t in1_offset, in2_offset, out_offset;   /* -zero points, output zero point */
    int32_t mult, shift;
    int32_t act_min, act_max;
} ekd_mul_params;

/* ADD (in2_sign 1) and SUB (in2_sign -1): both inputs shifted left by left_shift, rescaled to a
 * common scale, added or subtracted, rescaled to the output. */
typedef struct {
    ekd_bcast4 shape;
    int32_t in1_offset, in2_offset, out_offset;
    int32_t left_shift;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
    int32_t act_min, act_max;
    int32_t in2_sign;
} ekd_addsub_params;

void ekd_softmax_s8(const ekd_softmax_params *p, const int8_t *in, int8_t *out);
/* out[i] = lut[in[i] + 128]: an int8 -> int8 elementwise operator (LOGISTIC, TANH, HARD_SWISH,
 * LEAKY_RELU) tabulated at export time with TFLite Micro's integer arithmetic for every input. */
void ekd_lut_s8(const int8_t *lut, const int8_t *in, int8_t *out, int32_t n);
void ekd_mean_s8(const ekd_mean_params *p, const int8_t *in, int8_t *out);
void ekd_mul_s8(const ekd_mul_params *p, const int8_t *a, const int8_t *b, int8_t *out);
void ekd_addsub_s8(const ekd_addsub_params *p, const int8_t *a, const int8_t *b, int8_t *out);
/* rows blocks of row_len bytes from in (contiguous) to out, out_stride bytes apart: one input of a
 * concatenation (rows = product of the dimensions before the axis). */
void ekd_copy_rows_s8(const int8_t *in, int8_t *out, int32_t rows, int32_t row_len, int32_t out_stride);
/* Nearest-neighbour resize of an NHWC tensor: output pixel (y, x) copies the c bytes at
 * in + row_offset[y] + col_offset[x] (source offsets computed at export time). */
void ekd_resize_nearest_s8(const int8_t *in, int8_t *out, const int32_t *row_offset, int32_t out_h,
                           const int32_t *col_offset, int32_t out_w, int32_t c);

#ifdef __cplusplus
}
#endif

#endif /* EDGEKD_NN_OPS_H_ */
