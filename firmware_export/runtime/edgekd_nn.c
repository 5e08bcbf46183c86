/*
 * edgekd_nn: int8 kernels, TFLite reference arithmetic. See edgekd_nn.h.
 * Freestanding C99: no libc calls, no malloc, no float.
 */
#include "edgekd_nn.h"

#if EKD_NN_USE_DSP
#include <arm_acle.h>

/* 4 int8 values from a possibly unaligned address (a single LDR on cores with unaligned access). */
static inline int32_t ekd_read4(const int8_t *p)
{
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

/* SXTB16 of the word rotated by 8 (bytes 1 and 3): one instruction; ACLE has no rotate form. */
static inline int16x2_t ekd_sxtb16_ror8(int32_t x)
{
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* Why the DSP path is exact: SXTB16 sign-extends bytes 0,2 (or 1,3 after ROR #8) into two int16
 * lanes; a + offset lies in [-256, 255] for int8 a and |offset| <= 128, so SADD16 cannot wrap;
 * SMLAD adds both 16x16 products to the 32-bit accumulator. The integer sum is the same as the
 * plain loop's, only the order of additions differs, and integer addition is associative. */
int32_t ekd_dot_s8(const int8_t *a, const int8_t *w, int32_t n, int32_t a_offset)
{
    const int16x2_t off2 = (int16x2_t)(((uint32_t)(uint16_t)a_offset << 16) | (uint16_t)a_offset);
    int32_t acc = 0;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const int32_t av = ekd_read4(a + i);
        const int32_t wv = ekd_read4(w + i);
        const int16x2_t a02 = __sadd16(__sxtb16(av), off2);
        const int16x2_t a13 = __sadd16(ekd_sxtb16_ror8(av), off2);
        acc = __smlad(a02, __sxtb16(wv), acc);
        acc = __smlad(a13, ekd_sxtb16_ror8(wv), acc);
    }
    for (; i < n; ++i) {
        acc += ((int32_t)a[i] + a_offset) * (int32_t)w[i];
    }
    return acc;
}

/* Two dot products sharing one input run (two output channels): the input is widened once. */
static void ekd_dot2_s8(const int8_t *a, const int8_t *w0, const int8_t *w1, int32_t n, int32_t a_offset,
                        int32_t *acc0, int32_t *acc1)
{
    const int16x2_t off2 = (int16x2_t)(((uint32_t)(uint16_t)a_offset << 16) | (uint16_t)a_offset);
    int32_t s0 = *acc0, s1 = *acc1;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const int32_t av = ekd_read4(a + i);
        const int32_t v0 = ekd_read4(w0 + i);
        const int32_t v1 = ekd_read4(w1 + i);
        const int16x2_t a02 = __sadd16(__sxtb16(av), off2);
        const int16x2_t a13 = __sadd16(ekd_sxtb16_ror8(av), off2);
        s0 = __smlad(a02, __sxtb16(v0), s0);
        s0 = __smlad(a13, ekd_sxtb16_ror8(v0), s0);
        s1 = __smlad(a02, __sxtb16(v1), s1);
        s1 = __smlad(a13, ekd_sxtb16_ror8(v1), s1);
    }
    for (; i < n; ++i) {
        const int32_t x = (int32_t)a[i] + a_offset;
        s0 += x * (int32_t)w0[i];
        s1 += x * (int32_t)w1[i];
    }
    *acc0 = s0;
    *acc1 = s1;
}
#else
int32_t ekd_dot_s8(const int8_t *a, const int8_t *w, int32_t n, int32_t a_offset)
{
    int32_t acc = 0;
    int32_t i;
    for (i = 0; i < n; ++i) {
        acc += ((int32_t)a[i] + a_offset) * (int32_t)w[i];
    }
    return acc;
}

static void ekd_dot2_s8(const int8_t *a, const int8_t *w0, const int8_t *w1, int32_t n, int32_t a_offset,
                        int32_t *acc0, int32_t *acc1)
{
    int32_t s0 = *acc0, s1 = *acc1;
    int32_t i;
    for (i = 0; i < n; ++i) {
        const int32_t x = (int32_t)a[i] + a_offset;
        s0 += x * (int32_t)w0[i];
        s1 += x * (int32_t)w1[i];
    }
    *acc0 = s0;
    *acc1 = s1;
}
#endif

static inline int8_t ekd_requant_out(int32_t acc, int32_t mult, int32_t shift, int32_t out_offset,
                                     int32_t lo, int32_t hi)
{
    return (int8_t)ekd_clamp(ekd_mbqm(acc, mult, shift) + out_offset, lo, hi);
}

/* Sum over the filter taps inside the image of (in + in_offset) * w for output channels oc and
 * oc + 1 (pair = 1) or oc alone (pair = 0); taps in the padding are skipped, as in TFLite. */
static void ekd_conv_taps(const ekd_conv_params *p, const int8_t *in, const int8_t *wf0, const int8_t *wf1,
                          int32_t iy0, int32_t ix0, int pair, int32_t *acc0, int32_t *acc1)
{
    const int32_t row = p->k_w * p->in_c;
    int32_t fy, fx;
    for (fy = 0; fy < p->k_h; ++fy) {
        const int32_t iy = iy0 + fy * p->dil_h;
        if (iy < 0 || iy >= p->in_h) {
            continue;
        }
        if (p->dil_w == 1 && ix0 >= 0 && ix0 + p->k_w <= p->in_w) {
            /* the whole filter row is inside: one contiguous run of k_w * in_c values */
            const int8_t *x = in + (iy * p->in_w + ix0) * p->in_c;
            if (pair) {
                ekd_dot2_s8(x, wf0 + fy * row, wf1 + fy * row, row, p->in_offset, acc0, acc1);
            } else {
                *acc0 += ekd_dot_s8(x, wf0 + fy * row, row, p->in_offset);
            }
            continue;
        }
        for (fx = 0; fx < p->k_w; ++fx) {
            const int32_t ix = ix0 + fx * p->dil_w;
            const int32_t t = fy * row + fx * p->in_c;
            if (ix < 0 || ix >= p->in_w) {
                continue;
            }
            if (pair) {
                ekd_dot2_s8(in + (iy * p->in_w + ix) * p->in_c, wf0 + t, wf1 + t, p->in_c, p->in_offset, acc0, acc1);
            } else {
                *acc0 += ekd_dot_s8(in + (iy * p->in_w + ix) * p->in_c, wf0 + t, p->in_c, p->in_offset);
            }
        }
    }
}

void ekd_conv2d_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                   const int32_t *mult, const int32_t *shift, int8_t *out)
{
    const int32_t kstride = p->k_h * p->k_w * p->in_c;
    int32_t oy, ox, oc;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            int8_t *o = out + (oy * p->out_w + ox) * p->out_c;
            for (oc = 0; oc < p->out_c; oc += 2) {
                const int pair = oc + 1 < p->out_c;
                int32_t acc0 = bias ? bias[oc] : 0;
                int32_t acc1 = (pair && bias) ? bias[oc + 1] : 0;
                ekd_conv_taps(p, in, w + oc * kstride, w + (oc + pair) * kstride, iy0, ix0, pair, &acc0, &acc1);
                o[oc] = ekd_requant_out(acc0, mult[oc], shift[oc], p->out_offset, p->act_min, p->act_max);
                if (pair) {
                    o[oc + 1] = ekd_requant_out(acc1, mult[oc + 1], shift[oc + 1], p->out_offset, p->act_min,
                                                p->act_max);
                }
            }
        }
    }
}

void ekd_dwconv2d_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                     const int32_t *mult, const int32_t *shift, int8_t *out)
{
    int32_t oy, ox, ic, m, fy, fx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            int8_t *o = out + (oy * p->out_w + ox) * p->out_c;
            for (ic = 0; ic < p->in_c; ++ic) {
                for (m = 0; m < p->depth_multiplier; ++m) {
                    const int32_t oc = ic * p->depth_multiplier + m;
                    int32_t acc = 0;
                    for (fy = 0; fy < p->k_h; ++fy) {
                        const int32_t iy = iy0 + fy * p->dil_h;
                        if (iy < 0 || iy >= p->in_h) {
                            continue;
                        }
                        for (fx = 0; fx < p->k_w; ++fx) {
                            const int32_t ix = ix0 + fx * p->dil_w;
                            if (ix < 0 || ix >= p->in_w) {
                                continue;
                            }
                            acc += ((int32_t)in[(iy * p->in_w + ix) * p->in_c + ic] + p->in_offset)
                                   * (int32_t)w[(fy * p->k_w + fx) * p->out_c + oc];
                        }
                    }
                    if (bias) {
                        acc += bias[oc];
                    }
                    o[oc] = ekd_requant_out(acc, mult[oc], shift[oc], p->out_offset, p->act_min, p->act_max);
                }
            }
        }
    }
}

void ekd_fc_s8(const ekd_fc_params *p, const int8_t *in, const int8_t *w, const int32_t *bias,
               const int32_t *mult, const int32_t *shift, int8_t *out)
{
    int32_t r, o;
    for (r = 0; r < p->rows; ++r) {
        const int8_t *x = in + r * p->in_n;
        int8_t *y = out + r * p->out_n;
        for (o = 0; o + 2 <= p->out_n; o += 2) {
            int32_t acc0 = bias ? bias[o] : 0;
            int32_t acc1 = bias ? bias[o + 1] : 0;
            ekd_dot2_s8(x, w + o * p->in_n, w + (o + 1) * p->in_n, p->in_n, p->in_offset, &acc0, &acc1);
            y[o] = ekd_requant_out(acc0, mult[o], shift[o], p->out_offset, p->act_min, p->act_max);
            y[o + 1] = ekd_requant_out(acc1, mult[o + 1], shift[o + 1], p->out_offset, p->act_min, p->act_max);
        }
        for (; o < p->out_n; ++o) {
            int32_t acc = ekd_dot_s8(x, w + o * p->in_n, p->in_n, p->in_offset);
            if (bias) {
                acc += bias[o];
            }
            y[o] = ekd_requant_out(acc, mult[o], shift[o], p->out_offset, p->act_min, p->act_max);
        }
    }
}

void ekd_avgpool_s8(const ekd_pool_params *p, const int8_t *in, int8_t *out)
{
    int32_t oy, ox, c, fy, fx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        const int32_t fy0 = iy0 < 0 ? -iy0 : 0;
        const int32_t fy1 = p->k_h < p->in_h - iy0 ? p->k_h : p->in_h - iy0;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            const int32_t fx0 = ix0 < 0 ? -ix0 : 0;
            const int32_t fx1 = p->k_w < p->in_w - ix0 ? p->k_w : p->in_w - ix0;
            for (c = 0; c < p->c; ++c) {
                int32_t acc = 0;
                int32_t count = 0;
                for (fy = fy0; fy < fy1; ++fy) {
                    for (fx = fx0; fx < fx1; ++fx) {
                        acc += in[((iy0 + fy) * p->in_w + ix0 + fx) * p->c + c];
                        ++count;
                    }
                }
                if (count > 0) {
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                }
                out[(oy * p->out_w + ox) * p->c + c] = (int8_t)ekd_clamp(acc, p->act_min, p->act_max);
            }
        }
    }
}

void ekd_maxpool_s8(const ekd_pool_params *p, const int8_t *in, int8_t *out)
{
    int32_t oy, ox, c, fy, fx;
    for (oy = 0; oy < p->out_h; ++oy) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        const int32_t fy0 = iy0 < 0 ? -iy0 : 0;
        const int32_t fy1 = p->k_h < p->in_h - iy0 ? p->k_h : p->in_h - iy0;
        for (ox = 0; ox < p->out_w; ++ox) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            const int32_t fx0 = ix0 < 0 ? -ix0 : 0;
            const int32_t fx1 = p->k_w < p->in_w - ix0 ? p->k_w : p->in_w - ix0;
            for (c = 0; c < p->c; ++c) {
                int32_t best = -128;
                for (fy = fy0; fy < fy1; ++fy) {
                    for (fx = fx0; fx < fx1; ++fx) {
                        const int32_t v = in[((iy0 + fy) * p->in_w + ix0 + fx) * p->c + c];
                        best = v > best ? v : best;
                    }
                }
                out[(oy * p->out_w + ox) * p->c + c] = (int8_t)ekd_clamp(best, p->act_min, p->act_max);
            }
        }
    }
}

void ekd_add_s8(const ekd_add_params *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        const int32_t x1 = ((int32_t)a[i] + p->in1_offset) * (1 << p->left_shift);
        const int32_t x2 = ((int32_t)b[i] + p->in2_offset) * (1 << p->left_shift);
        const int32_t s1 = ekd_mbqm(x1, p->in1_mult, p->in1_shift);
        const int32_t s2 = ekd_mbqm(x2, p->in2_mult, p->in2_shift);
        const int32_t raw = ekd_mbqm(s1 + s2, p->out_mult, p->out_shift) + p->out_offset;
        out[i] = (int8_t)ekd_clamp(raw, p->act_min, p->act_max);
    }
}

void ekd_requant_s8(const ekd_requant_params *p, const int8_t *in, int8_t *out)
{
    int32_t i;
    for (i = 0; i < p->size; ++i) {
        const int32_t v = p->out_zero_point + ekd_mbqm((int32_t)in[i] - p->in_zero_point, p->mult, p->shift);
        out[i] = (int8_t)ekd_clamp(v, p->act_min, p->act_max);
    }
}

void ekd_transpose_s8(const int8_t *in, int8_t *out, const int32_t in_shape[4], const int32_t perm[4])
{
    int32_t in_stride[4];
    int32_t out_shape[4];
    int32_t s[4];
    int32_t i0, i1, i2, i3, k;
    in_stride[3] = 1;
    for (k = 2; k >= 0; --k) {
        in_stride[k] = in_stride[k + 1] * in_shape[k + 1];
    }
    for (k = 0; k < 4; ++k) {
        out_shape[k] = in_shape[perm[k]];
        s[k] = in_stride[perm[k]];
    }
    for (i0 = 0; i0 < out_shape[0]; ++i0) {
        for (i1 = 0; i1 < out_shape[1]; ++i1) {
            for (i2 = 0; i2 < out_shape[2]; ++i2) {
                const int8_t *src = in + i0 * s[0] + i1 * s[1] + i2 * s[2];
                for (i3 = 0; i3 < out_shape[3]; ++i3) {
                    *out++ = src[i3 * s[3]];
                }
            }
        }
    }
}

void ekd_pad_s8(const int8_t *in, int8_t *out, const int32_t in_shape[4], const int32_t before[4],
                const int32_t after[4], int8_t value)
{
    int32_t o[4];
    int32_t i0, i1, i2, i3, k;
    for (k = 0; k < 4; ++k) {
        o[k] = before[k] + in_shape[k] + after[k];
    }
    for (i0 = 0; i0 < o[0]; ++i0) {
        for (i1 = 0; i1 < o[1]; ++i1) {
            for (i2 = 0; i2 < o[2]; ++i2) {
                for (i3 = 0; i3 < o[3]; ++i3) {
                    const int32_t j0 = i0 - before[0], j1 = i1 - before[1];
                    const int32_t j2 = i2 - before[2], j3 = i3 - before[3];
                    const int inside = j0 >= 0 && j0 < in_shape[0] && j1 >= 0 && j1 < in_shape[1]
                                       && j2 >= 0 && j2 < in_shape[2] && j3 >= 0 && j3 < in_shape[3];
                    *out++ = inside ? in[((j0 * in_shape[1] + j1) * in_shape[2] + j2) * in_shape[3] + j3] : value;
                }
            }
        }
    }
}

void ekd_copy_s8(const int8_t *in, int8_t *out, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        out[i] = in[i];
    }
}
