/*
 * edgekd_nn_ops: softmax, mean, broadcasting mul and add/sub, concatenation copies, nearest-neighbour
 * resize, table lookups.
 * TFLite Micro's int8 arithmetic; see edgekd_nn_ops.h.
 * Freestanding C99: no libc calls, no malloc, no float.
 */
#include "edgekd_nn_ops.h"

/* ---- gemmlowp fixed point on int32 raw values ----------------------------------------------
 * A Qm value with m integer bits holds real = raw / 2^(31 - m). Products of Qa and Qb values are
 * Q(a+b) raw values from ekd_srdhm; sums are plain integer sums (no term below can overflow). */

/* x * 2^e for e in [0, 31), saturating to the int32 range (gemmlowp's rounding multiply by a
 * positive power of two; also Rescale to fewer integer bits). */
static int32_t ekd_sat_shl(int32_t x, int32_t e)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - e)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((int64_t)x * ((int64_t)1 << e));
}

/* (a + b) / 2 rounded half away from zero. */
static int32_t ekd_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/* Newton-Raphson for 1 / (1 + a) with a in [0, 1) (Q0): three steps from 48/17 - 32/17 d, where
 * d = (1 + a) / 2; the iterate x is Q2. Returns x, still Q2 (1 / d = 2 / (1 + a)). */
static int32_t ekd_newton_reciprocal_q2(int32_t a)
{
    const int32_t half_denominator = ekd_rounding_half_sum(a, INT32_MAX);
    int32_t x = 1515870810 + ekd_srdhm(half_denominator, -1010580540);
    int32_t i;
    for (i = 0; i < 3; ++i) {
        const int32_t one_minus_dx = ((int32_t)1 << 29) - ekd_srdhm(half_denominator, x);
        x = x + ekd_sat_shl(ekd_srdhm(x, one_minus_dx), 2);
    }
    return x;
}

/* 1 / (1 + a) for a in [0, 1), Q0 in and out. */
static int32_t ekd_one_over_one_plus_x(int32_t a)
{
    return ekd_sat_shl(ekd_newton_reciprocal_q2(a), 1);
}

/* exp(a) for a in [-1/4, 0), Q0: fourth-order Taylor expansion around -1/8. */
static int32_t ekd_exp_quarter(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668;
    const int32_t one_third = 715827883;
    const int32_t x = a + ((int32_t)1 << 28);
    const int32_t x2 = ekd_srdhm(x, x);
    const int32_t x3 = ekd_srdhm(x2, x);
    const int32_t x4 = ekd_srdhm(x2, x2);
    const int32_t x4_over_4 = ekd_rdbpot(x4, 2);
    const int32_t poly = ekd_rdbpot(ekd_srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth + ekd_srdhm(exp_minus_one_eighth, x + poly);
}

/* exp(a) for a <= 0 with integer_bits (4 or 5) integer bits, result Q0: exp of a mod 1/4 times
 * exp(-2^k) for each set bit k of the rest. */
static int32_t ekd_exp_on_negative_values(int32_t a, int32_t integer_bits)
{
    /* Q0 values of exp(-1/4), exp(-1/2), exp(-1), exp(-2), exp(-4), exp(-8), exp(-16) */
    static const int32_t factors[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t a_mod_quarter_minus_quarter = (a & (one_quarter - 1)) - one_quarter;
    const int32_t remainder = a_mod_quarter_minus_quarter - a;
    int32_t result = ekd_exp_quarter(ekd_sat_shl(a_mod_quarter_minus_quarter, integer_bits));
    int32_t k;
    for (k = 0; k < 7; ++k) {
        const int32_t exponent = k - 2;     /* the factor is exp(-2^exponent) */
        if (integer_bits > exponent && (remainder & ((int32_t)1 << (fractional_bits + exponent)))) {
            result = ekd_srdhm(result, factors[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

static int32_t ekd_clz32(uint32_t x)
{
    int32_t n = 0;
    if (x == 0) {
        return 32;
    }
    while (!(x & 0x80000000u)) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* ---- softmax ------------------------------------------------------------------------------ */

/* exp(diff * beta * scale) in Q0 for a difference already known to be >= diff_min. */
static int32_t ekd_softmax_exp(const ekd_softmax_params *p, int32_t diff)
{
    const int32_t scaled_q5 = ekd_srdhm(diff * ((int32_t)1 << p->in_left_shift), p->in_mult);
    return ekd_exp_on_negative_values(scaled_q5, 5);
}

void ekd_softmax_s8(const ekd_softmax_params *p, const int8_t *in, int8_t *out)
{
    const int32_t depth = p->depth, diff_min = p->diff_min;
    int32_t r, c;
    for (r = 0; r < p->rows; ++r) {
        const int8_t *x = in + r * depth;
        int8_t *y = out + r * depth;
        int32_t max = -128, sum_q12 = 0, headroom_plus_one, exponent, reciprocal;
        for (c = 0; c < depth; ++c) {
            max = x[c] > max ? x[c] : max;
        }
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max;
            if (diff >= diff_min) {
                sum_q12 += ekd_rdbpot(ekd_softmax_exp(p, diff), 12);
            }
        }
        /* 1 / sum: normalise the sum (> 0: the maximum contributes exp(0)) into 1 + [0, 1) */
        headroom_plus_one = ekd_clz32((uint32_t)sum_q12);
        reciprocal = ekd_one_over_one_plus_x(
            (int32_t)(((uint32_t)sum_q12 << headroom_plus_one) - ((uint32_t)1 << 31)));
        exponent = 12 - headroom_plus_one + 31 - 8;
        /* TFLite Micro stops on exponent > 31 (sums of 512 or more maximal entries); keep the shift
         * in range there instead */
        exponent = exponent > 31 ? 31 : exponent;
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max;
            int32_t v = -128;
            if (diff >= diff_min) {
                v = ekd_rdbpot(ekd_srdhm(reciprocal, ekd_softmax_exp(p, diff)), exponent) - 128;
                v = ekd_clamp(v, -128, 127);
            }
            y[c] = (int8_t)v;
        }
    }
}

/* ---- int8 -> int8 table lookup ------------------------------------------------------------ */

void ekd_lut_s8(const int8_t *lut, const int8_t *in, int8_t *out, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = lut[(int32_t)in[i] + 128];
    }
}

/* ---- mean ----------------------------------------------------------------------------------- */

void ekd_mean_s8(const ekd_mean_params *p, const int8_t *in, int8_t *out)
{
    const int32_t *os = p->out_shape, *rs = p->red_shape, *st = p->in_stride;
    int32_t o0, o1, o2, o3, r0, r1, r2, r3;
    for (o0 = 0; o0 < os[0]; ++o0) {
        for (o1 = 0; o1 < os[1]; ++o1) {
            for (o2 = 0; o2 < os[2]; ++o2) {
                for (o3 = 0; o3 < os[3]; ++o3) {
                    const int8_t *base = in + o0 * st[0] + o1 * st[1] + o2 * st[2] + o3 * st[3];
                    int32_t acc = 0;
                    for (r0 = 0; r0 < rs[0]; ++r0) {
                        for (r1 = 0; r1 < rs[1]; ++r1) {
                            for (r2 = 0; r2 < rs[2]; ++r2) {
                                const int8_t *x = base + r0 * st[0] + r1 * st[1] + r2 * st[2];
                                for (r3 = 0; r3 < rs[3]; ++r3) {
                                    acc += x[r3 * st[3]];
                                }
                            }
                        }
                    }
                    acc -= p->in_zero_point * p->count;
                    *out++ = (int8_t)ekd_clamp(ekd_mbqm(acc, p->mult, p->shift) + p->out_zero_point, -128, 127);
                }
            }
        }
    }
}

/* ---- broadcasting binary operators ---------------------------------------------------------- */

/* One innermost row of a broadcast binary operator: n outputs from operands read with strides
 * sa, sb (0 repeats one value). Called once per row, not per element. */
typedef void (*ekd_row_fn)(const void *params, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                           int8_t *out, int32_t n);

static void ekd_bcast_rows(const ekd_bcast4 *s, const int8_t *a, const int8_t *b, int8_t *out, ekd_row_fn row,
                           const void *params)
{
    const int32_t n = s->out_shape[3];
    int32_t i0, i1, i2;
    for (i0 = 0; i0 < s->out_shape[0]; ++i0) {
        for (i1 = 0; i1 < s->out_shape[1]; ++i1) {
            for (i2 = 0; i2 < s->out_shape[2]; ++i2) {
                const int8_t *ra = a + i0 * s->a_stride[0] + i1 * s->a_stride[1] + i2 * s->a_stride[2];
                const int8_t *rb = b + i0 * s->b_stride[0] + i1 * s->b_stride[1] + i2 * s->b_stride[2];
                row(params, ra, s->a_stride[3], rb, s->b_stride[3], out, n);
                out += n;
            }
        }
    }
}

static void ekd_mul_row(const void *params, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                        int8_t *out, int32_t n)
{
    const ekd_mul_params *p = (const ekd_mul_params *)params;
    const int32_t off1 = p->in1_offset, off2 = p->in2_offset, off_out = p->out_offset;
    const int32_t m = p->mult, sh = p->shift, lo = p->act_min, hi = p->act_max;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t prod = ((int32_t)a[i * sa] + off1) * ((int32_t)b[i * sb] + off2);
        out[i] = (int8_t)ekd_clamp(off_out + ekd_mbqm(prod, m, sh), lo, hi);
    }
}

void ekd_mul_s8(const ekd_mul_params *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    ekd_bcast_rows(&p->shape, a, b, out, ekd_mul_row, p);
}

static void ekd_addsub_row(const void *params, const int8_t *a, int32_t sa, const int8_t *b, int32_t sb,
                           int8_t *out, int32_t n)
{
    const ekd_addsub_params *p = (const ekd_addsub_params *)params;
    const int32_t off1 = p->in1_offset, off2 = p->in2_offset, ls = p->left_shift;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t x1 = ekd_mbqm(((int32_t)a[i * sa] + off1) * (1 << ls), p->in1_mult, p->in1_shift);
        const int32_t x2 = ekd_mbqm(((int32_t)b[i * sb] + off2) * (1 << ls), p->in2_mult, p->in2_shift);
        const int32_t raw = ekd_mbqm(x1 + p->in2_sign * x2, p->out_mult, p->out_shift) + p->out_offset;
        out[i] = (int8_t)ekd_clamp(raw, p->act_min, p->act_max);
    }
}

void ekd_addsub_s8(const ekd_addsub_params *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    ekd_bcast_rows(&p->shape, a, b, out, ekd_addsub_row, p);
}

/* ---- concatenation ---------------------------------------------------------------------------- */

void ekd_copy_rows_s8(const int8_t *in, int8_t *out, int32_t rows, int32_t row_len, int32_t out_stride)
{
    int32_t r, i;
    for (r = 0; r < rows; ++r) {
        for (i = 0; i < row_len; ++i) {
            out[i] = in[i];
        }
        in += row_len;
        out += out_stride;
    }
}

/* ---- nearest-neighbour resize ---------------------------------------------------------------- */

void ekd_resize_nearest_s8(const int8_t *in, int8_t *out, const int32_t *row_offset, int32_t out_h,
                           const int32_t *col_offset, int32_t out_w, int32_t c)
{
    int32_t y, x, i;
    for (y = 0; y < out_h; ++y) {
        const int8_t *row = in + row_offset[y];
        for (x = 0; x < out_w; ++x) {
            const int8_t *px = row + col_offset[x];
            for (i = 0; i < c; ++i) {
                *out++ = px[i];
            }
        }
    }
}
