/*
 * edgekd_nn: int8 neural-network kernels for the native C export of edgekd.
 *
 * Hand-written C99, freestanding (stdint.h and stddef.h only): no malloc, no libc calls, no float.
 * The arithmetic follows TFLite's reference integer kernels (gemmlowp fixed-point rounding), so a
 * model generated from an int8 .tflite gives bit-identical outputs to TFLite's reference kernels.
 * Layout is NHWC with batch 1; weights are OHWI (conv), 1HWO (depthwise), OI (fully connected).
 *
 * Define EDGEKD_NN_NO_DSP to force the plain C inner loops on a core that has the DSP extension.
 */
#ifndef EDGEKD_NN_H_
#define EDGEKD_NN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EKD_NN_VERSION 1

/* 1 when the int8 dot products use the Arm DSP extension (SMLAD: two 16-bit MACs per instruction). */
#if defined(__ARM_FEATURE_DSP) && defined(__ARM_FEATURE_SIMD32) && !defined(EDGEKD_NN_NO_DSP)
#define EKD_NN_USE_DSP 1
#else
#define EKD_NN_USE_DSP 0
#endif

/* ---- fixed-point helpers (same rounding as TFLite's reference kernels / gemmlowp) ---------- */

/* TFLite's SaturatingRoundingDoublingHighMul: (a * b + nudge) / 2^31 truncated, with nudge 2^30
 * for a * b >= 0 and 1 - 2^30 otherwise. For a * b < 0, truncation is a ceiling, and
 * ceil((ab + 1 - 2^30) / 2^31) = floor((ab + 2^30) / 2^31), so both signs reduce to one
 * arithmetic shift (checked against the two-branch form in tests/export). Saturates the
 * single overflow case. Relies on >> of a negative value being arithmetic, as TFLite does. */
static inline int32_t ekd_srdhm(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* x / 2^exponent rounded to nearest, ties away from zero (exponent in [0, 31]). */
static inline int32_t ekd_rdbpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * multiplier * 2^shift with multiplier a Q31 value in [2^30, 2^31) (TFLite's
 * MultiplyByQuantizedMultiplier: left shift first, then doubling high mul, then rounding shift). */
static inline int32_t ekd_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return ekd_rdbpot(ekd_srdhm((int32_t)((int64_t)x * ((int64_t)1 << left)), multiplier), right);
}

static inline int32_t ekd_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* sum_i (a[i] + a_offset) * w[i] over n int8 pairs (exact integer sum; DSP and plain paths agree). */
int32_t ekd_dot_s8(const int8_t *a, const int8_t *w, int32_t n, int32_t a_offset);

/* ---- operator parameters (filled in by the generated model.c) ------------------------------ */

typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_h, pad_w;        /* top / left padding; bottom / right follow from the sizes */
    int32_t depth_multiplier;    /* depthwise only */
    int32_t in_offset;           /* -input zero point */
    int32_t out_offset;          /* output zero point */
    int32_t act_min, act_max;    /* fused activation clamp, in output quantized units */
    int32_t in_planar;           /* ekd_conv_gemm_s8: 1 when the input is NCHW (a TRANSPOSE folded in) */
} ekd_conv_params;

typedef struct {
    int32_t in_n, out_n;         /* input features, output features (rows = batch folded in) */
    int32_t rows;
    int32_t in_offset, out_offset;
    int32_t act_min, act_max;
} ekd_fc_params;

typedef struct {
    int32_t in_h, in_w, c;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    int32_t act_min, act_max;
} ekd_pool_params;

typedef struct {
    int32_t size;
    int32_t in1_offset, in2_offset, out_offset;
    int32_t left_shift;
    int32_t in1_mult, in1_shift, in2_mult, in2_shift, out_mult, out_shift;
    int32_t act_min, act_max;
} ekd_add_params;

typedef struct {
    int32_t size;
    int32_t in_zero_point, out_zero_point;
    int32_t mult, shift;
    int32_t act_min, act_max;
} ekd_requant_params;

typedef struct {
    int32_t in_n, out_n;
    int32_t bits;                /* weight bit width: 2, 4 or 8 (8 / bits weights per byte) */
    int32_t row_bytes;           /* bytes per packed weight row (rows start on a byte) */
    int32_t in_offset, out_offset;
    int32_t act_min, act_max;
} ekd_packed_fc_params;

/* ---- kernels --------------------------------------------------------------------------------- */

/* scratch: EKD_CONV_SCRATCH(k_h * k_w * in_c) int16 values, planned in the arena */
#define EKD_CONV_SCRATCH(k) (2 * (((k) + 1) & ~1))
void ekd_conv2d_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                   const int32_t *mult, const int32_t *shift, int8_t *out, int16_t *scratch);
void ekd_dwconv2d_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                     const int32_t *mult, const int32_t *shift, int8_t *out);
/* scratch: in_n int16 values, planned in the arena */
void ekd_fc_s8(const ekd_fc_params *p, const int8_t *in, const int8_t *w, const int32_t *bias,
               const int32_t *mult, const int32_t *shift, int8_t *out, int16_t *scratch);
/* Fully connected with sub-8-bit weights packed little-end first: weight i of a row sits in byte
 * i / (8 / bits) at bit (i % (8 / bits)) * bits, two's complement. */
void ekd_fc_packed_s8(const ekd_packed_fc_params *p, const int8_t *in, const uint8_t *w, const int32_t *bias,
                      const int32_t *mult, const int32_t *shift, int8_t *out);
void ekd_avgpool_s8(const ekd_pool_params *p, const int8_t *in, int8_t *out);
void ekd_maxpool_s8(const ekd_pool_params *p, const int8_t *in, int8_t *out);
void ekd_add_s8(const ekd_add_params *p, const int8_t *a, const int8_t *b, int8_t *out);
/* out = clamp(out_zp + x * 2^shift * mult / 2^31 where x = in - in_zp): standalone RELU/RELU6 and
 * int8 -> int8 QUANTIZE. */
void ekd_requant_s8(const ekd_requant_params *p, const int8_t *in, int8_t *out);
/* 4-D transpose: out[i0][i1][i2][i3] = in[...] with out axis k = in axis perm[k]. */
void ekd_transpose_s8(const int8_t *in, int8_t *out, const int32_t in_shape[4], const int32_t perm[4]);
/* 4-D constant pad with value (the output zero point). */
void ekd_pad_s8(const int8_t *in, int8_t *out, const int32_t in_shape[4], const int32_t before[4],
                const int32_t after[4], int8_t value);
void ekd_copy_s8(const int8_t *in, int8_t *out, int32_t n);

/* ---- folded-offset kernels ------------------------------------------------------------------
 * The export folds the input zero point into the bias (bias - in_zp * sum(w)), so the MAC loops
 * multiply raw int8 inputs, and a padded tap reads the input zero point itself. Requantization
 * uses one record of EKD_RQ_WORDS int32 per output channel:
 *   [0] Q31 multiplier m, [1] right shift r >= 1, [2] 2^(r-1) + out_zero_point * 2^r, [3] bias.
 * out = clamp(((t + [2] - (t < 0)) >> r), lo, hi) with t = (acc * m + 2^30) >> 31: TFLite's
 * MultiplyByQuantizedMultiplier (no left shift) plus the output offset, exact when |acc| < 2^30
 * and no channel shifts left; the export proves both for every input before it picks these
 * kernels (else it emits the ekd_conv2d_s8 / ekd_fc_s8 forms above).
 * Weights: the DSP build (EKD_NN_USE_DSP) takes them blocked (see ekd_conv_gemm_s8 and
 * ekd_fc_gemv_s8), the plain build in TFLite's order; the generated model declares both under #if. */
#define EKD_RQ_WORDS 4

/* Convolution as a GEMM over groups of EKD_GEMM_PIXELS output pixels (any kernel size, stride,
 * dilation, padding). DSP weights: int16, each weight doubled, per block of 4 output channels
 * (zero rows complete the last block), for each group of 4 taps in (fy, fx, ic) order (zero padded
 * to a multiple of 4), two steps: taps (0, 2) then taps (1, 3), each the 4 channels' int16 pairs;
 * DSP requantization records hold the bias doubled. Scratch: EKD_CONV_GEMM_SCRATCH(k_h * k_w * in_c,
 * out_c, gather) bytes, gather = in_planar or in_c % 4 != 0 (a table of the window's offsets). */
#define EKD_GEMM_PIXELS 2
#define EKD_CONV_GEMM_SCRATCH(k, out_c, gather) \
    (20 * (((k) + 3) / 4) + 4 * ((2 * (out_c) + 3) / 4) + 8 + ((gather) ? 16 * (((k) + 3) / 4) : 0))
void ekd_conv_gemm_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *rq,
                      int8_t *out, int32_t *scratch);

/* Depthwise 3x3 (multiplier 1, no dilation, stride 1 or 2, any padding) through padded int16
 * channel planes, where the taps of a filter row sit side by side for SMLAD (TinyEngine's idea).
 * Plain weights: TFLite's [1, 3, 3, C] with rq. DSP weights (rq unused): one word, 1 when the
 * planes are transposed (plane rows along the output's columns: a narrow map gets long rows),
 * then EKD_DW_REC_WORDS per channel: the 3 filter rows' int16 pairs (2 w0, 2 w1), (2 w1, 2 w2)
 * (filter columns when transposed), then [m, r, round, 2 bias]. A plane holds
 * ((rows - 1) * stride + 3) x EKD_DW3X3_PLANE_W(cols, stride) int16 (rows x cols: the output map as
 * the planes see it); scratch: EKD_DW3X3_SCRATCH(rows, cols, stride, planes) bytes, 4 planes on the
 * DSP path when there are at least 4 channels, else 1. */
#define EKD_DW_REC_WORDS 10
#define EKD_DW3X3_PLANE_W(cols, stride) ((stride) * (((cols) + 3) & ~3) + 2)
#define EKD_DW3X3_SCRATCH(rows, cols, stride, planes) \
    (4 * (planes) * ((EKD_DW3X3_PLANE_W(cols, stride) * (((rows) - 1) * (stride) + 3) + 1) / 2))
void ekd_dwconv3x3_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *rq,
                      int8_t *out, int32_t *scratch);

/* ADD with each input's rescaling (TFLite's left shift 20 and per-input multiplier) read from
 * a table of 256 int32 per input (lut[0..255] for a + 128, lut[256..511] for b + 128), then the
 * output requantization of one EKD_RQ_WORDS record (its bias unused). The DSP build takes the
 * tables doubled (the doubled sum is what its SMMLAR requantization needs). */
void ekd_add_lut_s8(const ekd_add_params *p, const int8_t *a, const int8_t *b, const int32_t *lut,
                    const int32_t *rq, int8_t *out);

/* Fully connected, four outputs per pass. DSP weights: per block of 4 output rows (zero rows
 * complete the last), for each step of 4 inputs (zero padded), the 4 rows' 4 bytes in row order.
 * Scratch: EKD_FC_GEMV_SCRATCH(in_n) bytes. */
#define EKD_FC_GEMV_SCRATCH(in_n) (8 * (((in_n) + 3) / 4))
void ekd_fc_gemv_s8(const ekd_fc_params *p, const int8_t *in, const int8_t *w, const int32_t *rq, int8_t *out,
                    int32_t *scratch);

#ifdef __cplusplus
}
#endif

#endif /* EDGEKD_NN_H_ */
