/*
 * edgekd_nn: int8 kernels, TFLite reference arithmetic. See edgekd_nn.h.
 * Freestanding C99: no libc calls, no malloc, no float.
 */
#include "edgekd_nn.h"

#if EKD_NN_USE_DSP
#include <arm_acle.h>

/* 4 bytes / 2 int16 from a possibly unaligned address (one LDR on cores with unaligned access). */
static inline int32_t ekd_read4(const void *p)
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
#endif

/* Why the DSP path is exact: the widened operand a + offset lies in [-256, 255] (int8 a, |offset|
 * <= 128), so it is held exactly in an int16 lane; SXTB16 sign-extends int8 weights exactly; SMLAD
 * adds two exact 16x16 products to the 32-bit accumulator. The integer sum is the plain loop's,
 * added in another order, and integer addition is associative. */

/* Widen n int8 values to int16 with the offset added. The DSP path stores each group of four as
 * (x0, x2, x1, x3), the lane order SXTB16 / SXTB16-ROR8 give the weights; a tail of n % 4 values
 * stays in natural order. */
static void ekd_widen(const int8_t *x, int32_t n, int32_t offset, int16_t *dst)
{
    int32_t i = 0;
#if EKD_NN_USE_DSP
    for (; i + 4 <= n; i += 4) {
        dst[i] = (int16_t)(x[i] + offset);
        dst[i + 1] = (int16_t)(x[i + 2] + offset);
        dst[i + 2] = (int16_t)(x[i + 1] + offset);
        dst[i + 3] = (int16_t)(x[i + 3] + offset);
    }
#endif
    for (; i < n; ++i) {
        dst[i] = (int16_t)(x[i] + offset);
    }
}

/* acc[2*i + j] += sum_k a_i[k] * w_j[k] for two widened inputs (a0, a1) and two int8 weight rows. */
static void ekd_mac2x2(const int16_t *a0, const int16_t *a1, const int8_t *w0, const int8_t *w1, int32_t n,
                       int32_t acc[4])
{
    int32_t s00 = acc[0], s01 = acc[1], s10 = acc[2], s11 = acc[3];
    int32_t k = 0;
#if EKD_NN_USE_DSP
    for (; k + 4 <= n; k += 4) {
        const int32_t x0 = ekd_read4(a0 + k), x0b = ekd_read4(a0 + k + 2);
        const int32_t x1 = ekd_read4(a1 + k), x1b = ekd_read4(a1 + k + 2);
        const int32_t v0 = ekd_read4(w0 + k), v1 = ekd_read4(w1 + k);
        const int16x2_t v0e = __sxtb16(v0), v0o = ekd_sxtb16_ror8(v0);
        const int16x2_t v1e = __sxtb16(v1), v1o = ekd_sxtb16_ror8(v1);
        s00 = __smlad(x0, v0e, s00);
        s00 = __smlad(x0b, v0o, s00);
        s01 = __smlad(x0, v1e, s01);
        s01 = __smlad(x0b, v1o, s01);
        s10 = __smlad(x1, v0e, s10);
        s10 = __smlad(x1b, v0o, s10);
        s11 = __smlad(x1, v1e, s11);
        s11 = __smlad(x1b, v1o, s11);
    }
#endif
    for (; k < n; ++k) {
        const int32_t x0 = a0[k], x1 = a1[k], v0 = w0[k], v1 = w1[k];
        s00 += x0 * v0;
        s01 += x0 * v1;
        s10 += x1 * v0;
        s11 += x1 * v1;
    }
    acc[0] = s00;
    acc[1] = s01;
    acc[2] = s10;
    acc[3] = s11;
}

/* acc[j] += sum_k a[k] * w_j[k] for one widened input and two weight rows. */
static void ekd_mac1x2(const int16_t *a, const int8_t *w0, const int8_t *w1, int32_t n, int32_t acc[2])
{
    int32_t s0 = acc[0], s1 = acc[1];
    int32_t k = 0;
#if EKD_NN_USE_DSP
    for (; k + 4 <= n; k += 4) {
        const int32_t x = ekd_read4(a + k), xb = ekd_read4(a + k + 2);
        const int32_t v0 = ekd_read4(w0 + k), v1 = ekd_read4(w1 + k);
        s0 = __smlad(x, __sxtb16(v0), s0);
        s0 = __smlad(xb, ekd_sxtb16_ror8(v0), s0);
        s1 = __smlad(x, __sxtb16(v1), s1);
        s1 = __smlad(xb, ekd_sxtb16_ror8(v1), s1);
    }
#endif
    for (; k < n; ++k) {
        const int32_t x = a[k];
        s0 += x * w0[k];
        s1 += x * w1[k];
    }
    acc[0] = s0;
    acc[1] = s1;
}

int32_t ekd_dot_s8(const int8_t *a, const int8_t *w, int32_t n, int32_t a_offset)
{
    int32_t acc = 0;
    int32_t i;
    for (i = 0; i < n; ++i) {
        acc += ((int32_t)a[i] + a_offset) * (int32_t)w[i];
    }
    return acc;
}

static inline int8_t ekd_requant_out(int32_t acc, int32_t mult, int32_t shift, int32_t out_offset,
                                     int32_t lo, int32_t hi)
{
    return (int8_t)ekd_clamp(ekd_mbqm(acc, mult, shift) + out_offset, lo, hi);
}

/* Kernels copy the parameters they loop on into locals first: every int8 store may alias the
 * parameter struct (char types alias anything), which would force a reload after each store. */

/* The receptive field of output pixel (oy, ox) as k_h * k_w * in_c widened values (x + in_offset)
 * in the weights' (fy, fx, ic) order (then put in ekd_widen's lane order on the DSP path). A tap in
 * the padding gets 0 = zero_point + in_offset, so it adds nothing, exactly as TFLite's reference
 * kernel, which skips it. */
static void ekd_im2col(const ekd_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int16_t *col)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, k_h = p->k_h, k_w = p->k_w;
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w, off = p->in_offset;
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    const int32_t run = k_w * in_c;
    const int rows_whole = dil_w == 1 && ix0 >= 0 && ix0 + k_w <= in_w;
    int16_t *dst = col;
    int32_t fy, fx, c;
    for (fy = 0; fy < k_h; ++fy) {
        const int32_t iy = iy0 + fy * dil_h;
        const int row_inside = iy >= 0 && iy < in_h;
        if (rows_whole) {
            /* the filter row lies inside horizontally: one contiguous run, or all padding */
            const int8_t *src = in + (iy * in_w + ix0) * in_c;
            if (row_inside) {
                for (c = 0; c < run; ++c) {
                    dst[c] = (int16_t)(src[c] + off);
                }
            } else {
                for (c = 0; c < run; ++c) {
                    dst[c] = 0;
                }
            }
            dst += run;
            continue;
        }
        for (fx = 0; fx < k_w; ++fx) {
            const int32_t ix = ix0 + fx * dil_w;
            if (row_inside && ix >= 0 && ix < in_w) {
                const int8_t *src = in + (iy * in_w + ix) * in_c;
                for (c = 0; c < in_c; ++c) {
                    dst[c] = (int16_t)(src[c] + off);
                }
            } else {
                for (c = 0; c < in_c; ++c) {
                    dst[c] = 0;
                }
            }
            dst += in_c;
        }
    }
#if EKD_NN_USE_DSP
    {
        const int32_t k = k_h * k_w * in_c;
        int32_t i;
        for (i = 0; i + 4 <= k; i += 4) {   /* (x0, x1, x2, x3) -> (x0, x2, x1, x3) */
            const int16_t t = col[i + 1];
            col[i + 1] = col[i + 2];
            col[i + 2] = t;
        }
    }
#endif
}

void ekd_conv2d_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                   const int32_t *mult, const int32_t *shift, int8_t *out, int16_t *scratch)
{
    /* scratch: 2 * (K rounded up to even) int16 (two widened receptive fields); 2 pixels x 2
     * channels per pass */
    const int32_t k = p->k_h * p->k_w * p->in_c;
    const int32_t out_w = p->out_w, out_c = p->out_c, npix = p->out_h * p->out_w;
    const int32_t out_offset = p->out_offset, lo = p->act_min, hi = p->act_max;
    int16_t *col0 = scratch;
    int16_t *col1 = scratch + ((k + 1) & ~1);   /* keeps col1 word aligned */
    int32_t pix, oc;
    for (pix = 0; pix < npix; pix += 2) {
        const int two = pix + 1 < npix;
        int8_t *o0 = out + pix * out_c;
        int8_t *o1 = o0 + out_c;
        ekd_im2col(p, in, pix / out_w, pix % out_w, col0);
        if (two) {
            ekd_im2col(p, in, (pix + 1) / out_w, (pix + 1) % out_w, col1);
        }
        for (oc = 0; oc < out_c; oc += 2) {
            const int pair = oc + 1 < out_c;
            const int32_t b0 = bias ? bias[oc] : 0;
            const int32_t b1 = (bias && pair) ? bias[oc + 1] : 0;
            int32_t acc[4];
            acc[0] = b0;
            acc[1] = b1;
            acc[2] = b0;
            acc[3] = b1;
            ekd_mac2x2(col0, two ? col1 : col0, w + oc * k, w + (oc + pair) * k, k, acc);
            o0[oc] = ekd_requant_out(acc[0], mult[oc], shift[oc], out_offset, lo, hi);
            if (two) {
                o1[oc] = ekd_requant_out(acc[2], mult[oc], shift[oc], out_offset, lo, hi);
            }
            if (pair) {
                o0[oc + 1] = ekd_requant_out(acc[1], mult[oc + 1], shift[oc + 1], out_offset, lo, hi);
                if (two) {
                    o1[oc + 1] = ekd_requant_out(acc[3], mult[oc + 1], shift[oc + 1], out_offset, lo, hi);
                }
            }
        }
    }
}

/* Depthwise, general case (any dilation / depth multiplier): taps outside the image are skipped. */
static void ekd_dwconv_generic(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                               const int32_t *mult, const int32_t *shift, int8_t *out)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, out_h = p->out_h, out_w = p->out_w;
    const int32_t out_c = p->out_c, k_h = p->k_h, k_w = p->k_w, dm = p->depth_multiplier;
    const int32_t stride_h = p->stride_h, stride_w = p->stride_w, dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t pad_h = p->pad_h, pad_w = p->pad_w, in_offset = p->in_offset;
    const int32_t out_offset = p->out_offset, lo = p->act_min, hi = p->act_max;
    int32_t oy, ox, ic, m, fy, fx;
    for (oy = 0; oy < out_h; ++oy) {
        const int32_t iy0 = oy * stride_h - pad_h;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t ix0 = ox * stride_w - pad_w;
            int8_t *o = out + (oy * out_w + ox) * out_c;
            for (ic = 0; ic < in_c; ++ic) {
                for (m = 0; m < dm; ++m) {
                    const int32_t oc = ic * dm + m;
                    int32_t acc = bias ? bias[oc] : 0;
                    for (fy = 0; fy < k_h; ++fy) {
                        const int32_t iy = iy0 + fy * dil_h;
                        if (iy < 0 || iy >= in_h) {
                            continue;
                        }
                        for (fx = 0; fx < k_w; ++fx) {
                            const int32_t ix = ix0 + fx * dil_w;
                            if (ix >= 0 && ix < in_w) {
                                acc += ((int32_t)in[(iy * in_w + ix) * in_c + ic] + in_offset)
                                       * (int32_t)w[(fy * k_w + fx) * out_c + oc];
                            }
                        }
                    }
                    o[oc] = ekd_requant_out(acc, mult[oc], shift[oc], out_offset, lo, hi);
                }
            }
        }
    }
}

void ekd_dwconv2d_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                     const int32_t *mult, const int32_t *shift, int8_t *out)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, ch = p->in_c, out_h = p->out_h, out_w = p->out_w;
    const int32_t k_h = p->k_h, k_w = p->k_w, stride_h = p->stride_h, stride_w = p->stride_w;
    const int32_t pad_h = p->pad_h, pad_w = p->pad_w, in_offset = p->in_offset;
    const int32_t out_offset = p->out_offset, lo = p->act_min, hi = p->act_max;
    int32_t oy, ox, c, fy, fx;
    const int32_t dm = p->depth_multiplier, out_c = p->out_c;
    if (p->dil_h != 1 || p->dil_w != 1) {
        ekd_dwconv_generic(p, in, w, bias, mult, shift, out);
        return;
    }
    /* no dilation: the taps inside the image form one rectangle per output pixel */
    for (oy = 0; oy < out_h; ++oy) {
        const int32_t iy0 = oy * stride_h - pad_h;
        const int32_t fy0 = iy0 < 0 ? -iy0 : 0;
        const int32_t fy1 = k_h < in_h - iy0 ? k_h : in_h - iy0;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t ix0 = ox * stride_w - pad_w;
            const int32_t fx0 = ix0 < 0 ? -ix0 : 0;
            const int32_t fx1 = k_w < in_w - ix0 ? k_w : in_w - ix0;
            const int8_t *x0 = in + ((iy0 + fy0) * in_w + ix0 + fx0) * ch;
            const int8_t *w0 = w + (fy0 * k_w + fx0) * out_c;
            int8_t *o = out + (oy * out_w + ox) * out_c;
            c = 0;
#if EKD_NN_USE_DSP
            if (dm == 1) {
                /* four channels per pass: SXTB16 splits a word into channels (c, c+2) and, rotated,
                 * (c+1, c+3); SMLABB / SMLATT multiply-accumulate the bottom / top lanes. */
                const int16x2_t off2 = (int16x2_t)(((uint32_t)(uint16_t)in_offset << 16) | (uint16_t)in_offset);
                for (; c + 4 <= ch; c += 4) {
                    int32_t a0 = bias ? bias[c] : 0, a1 = bias ? bias[c + 1] : 0;
                    int32_t a2 = bias ? bias[c + 2] : 0, a3 = bias ? bias[c + 3] : 0;
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int8_t *xr = x0 + (fy - fy0) * in_w * ch + c;
                        const int8_t *wr = w0 + (fy - fy0) * k_w * ch + c;
                        for (fx = fx0; fx < fx1; ++fx) {
                            const int32_t xv = ekd_read4(xr), wv = ekd_read4(wr);
                            const int16x2_t xe = __sadd16(__sxtb16(xv), off2);
                            const int16x2_t xo = __sadd16(ekd_sxtb16_ror8(xv), off2);
                            const int16x2_t we = __sxtb16(wv), wo = ekd_sxtb16_ror8(wv);
                            a0 = __smlabb(xe, we, a0);
                            a2 = __smlatt(xe, we, a2);
                            a1 = __smlabb(xo, wo, a1);
                            a3 = __smlatt(xo, wo, a3);
                            xr += ch;
                            wr += ch;
                        }
                    }
                    o[c] = ekd_requant_out(a0, mult[c], shift[c], out_offset, lo, hi);
                    o[c + 1] = ekd_requant_out(a1, mult[c + 1], shift[c + 1], out_offset, lo, hi);
                    o[c + 2] = ekd_requant_out(a2, mult[c + 2], shift[c + 2], out_offset, lo, hi);
                    o[c + 3] = ekd_requant_out(a3, mult[c + 3], shift[c + 3], out_offset, lo, hi);
                }
            }
#else
            if (dm == 1) {
                /* four channels per pass: four independent accumulators over one tap rectangle */
                for (; c + 4 <= ch; c += 4) {
                    int32_t a0 = bias ? bias[c] : 0, a1 = bias ? bias[c + 1] : 0;
                    int32_t a2 = bias ? bias[c + 2] : 0, a3 = bias ? bias[c + 3] : 0;
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int8_t *xr = x0 + (fy - fy0) * in_w * ch + c;
                        const int8_t *wr = w0 + (fy - fy0) * k_w * ch + c;
                        for (fx = fx0; fx < fx1; ++fx) {
                            a0 += ((int32_t)xr[0] + in_offset) * (int32_t)wr[0];
                            a1 += ((int32_t)xr[1] + in_offset) * (int32_t)wr[1];
                            a2 += ((int32_t)xr[2] + in_offset) * (int32_t)wr[2];
                            a3 += ((int32_t)xr[3] + in_offset) * (int32_t)wr[3];
                            xr += ch;
                            wr += ch;
                        }
                    }
                    o[c] = ekd_requant_out(a0, mult[c], shift[c], out_offset, lo, hi);
                    o[c + 1] = ekd_requant_out(a1, mult[c + 1], shift[c + 1], out_offset, lo, hi);
                    o[c + 2] = ekd_requant_out(a2, mult[c + 2], shift[c + 2], out_offset, lo, hi);
                    o[c + 3] = ekd_requant_out(a3, mult[c + 3], shift[c + 3], out_offset, lo, hi);
                }
            }
#endif
            for (; c < out_c; ++c) {  /* output channel c reads input channel c / dm */
                int32_t acc = bias ? bias[c] : 0;
                for (fy = fy0; fy < fy1; ++fy) {
                    const int8_t *xr = x0 + (fy - fy0) * in_w * ch + c / dm;
                    const int8_t *wr = w0 + (fy - fy0) * k_w * out_c + c;
                    for (fx = fx0; fx < fx1; ++fx) {
                        acc += ((int32_t)*xr + in_offset) * (int32_t)*wr;
                        xr += ch;
                        wr += out_c;
                    }
                }
                o[c] = ekd_requant_out(acc, mult[c], shift[c], out_offset, lo, hi);
            }
        }
    }
}

void ekd_fc_s8(const ekd_fc_params *p, const int8_t *in, const int8_t *w, const int32_t *bias,
               const int32_t *mult, const int32_t *shift, int8_t *out, int16_t *scratch)
{
    /* scratch: in_n int16 (the widened input row) */
    const int32_t in_n = p->in_n, out_n = p->out_n, rows = p->rows;
    const int32_t out_offset = p->out_offset, lo = p->act_min, hi = p->act_max;
    int32_t r, o;
    for (r = 0; r < rows; ++r) {
        int8_t *y = out + r * out_n;
        ekd_widen(in + r * in_n, in_n, p->in_offset, scratch);
        for (o = 0; o < out_n; o += 2) {
            const int pair = o + 1 < out_n;
            int32_t acc[2];
            acc[0] = bias ? bias[o] : 0;
            acc[1] = (bias && pair) ? bias[o + 1] : 0;
            ekd_mac1x2(scratch, w + o * in_n, w + (o + pair) * in_n, in_n, acc);
            y[o] = ekd_requant_out(acc[0], mult[o], shift[o], out_offset, lo, hi);
            if (pair) {
                y[o + 1] = ekd_requant_out(acc[1], mult[o + 1], shift[o + 1], out_offset, lo, hi);
            }
        }
    }
}

/* sign-extend a two's complement field of `bits` bits (portable: no shifts of negative values) */
static inline int32_t ekd_sext(uint32_t field, uint32_t bits)
{
    const uint32_t sign = 1u << (bits - 1u);
    return (int32_t)(field ^ sign) - (int32_t)sign;
}

void ekd_fc_packed_s8(const ekd_packed_fc_params *p, const int8_t *in, const uint8_t *w, const int32_t *bias,
                      const int32_t *mult, const int32_t *shift, int8_t *out)
{
    const int32_t in_n = p->in_n, out_n = p->out_n, bits = p->bits, row_bytes = p->row_bytes;
    const int32_t in_offset = p->in_offset, out_offset = p->out_offset, lo = p->act_min, hi = p->act_max;
    int32_t o, i;
    for (o = 0; o < out_n; ++o) {
        const uint8_t *row = w + o * row_bytes;
        int32_t acc = bias ? bias[o] : 0;
        if (bits == 4) {
            for (i = 0; i + 2 <= in_n; i += 2) {
                const uint32_t b = row[i >> 1];
                acc += ((int32_t)in[i] + in_offset) * ekd_sext(b & 0xFu, 4u);
                acc += ((int32_t)in[i + 1] + in_offset) * ekd_sext(b >> 4, 4u);
            }
        } else if (bits == 2) {
            for (i = 0; i + 4 <= in_n; i += 4) {
                const uint32_t b = row[i >> 2];
                acc += ((int32_t)in[i] + in_offset) * ekd_sext(b & 3u, 2u);
                acc += ((int32_t)in[i + 1] + in_offset) * ekd_sext((b >> 2) & 3u, 2u);
                acc += ((int32_t)in[i + 2] + in_offset) * ekd_sext((b >> 4) & 3u, 2u);
                acc += ((int32_t)in[i + 3] + in_offset) * ekd_sext(b >> 6, 2u);
            }
        } else {
            i = 0;
        }
        for (; i < in_n; ++i) {  /* tail of a row, and the 8-bit case */
            const int32_t per = 8 / bits;
            const uint32_t f = ((uint32_t)row[i / per] >> ((uint32_t)(i % per) * (uint32_t)bits))
                               & ((1u << (uint32_t)bits) - 1u);
            acc += ((int32_t)in[i] + in_offset) * ekd_sext(f, (uint32_t)bits);
        }
        out[o] = ekd_requant_out(acc, mult[o], shift[o], out_offset, lo, hi);
    }
}

static void ekd_pool_s8(const ekd_pool_params *p, const int8_t *in, int8_t *out, int is_max)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, ch = p->c, out_h = p->out_h, out_w = p->out_w;
    const int32_t k_h = p->k_h, k_w = p->k_w, stride_h = p->stride_h, stride_w = p->stride_w;
    const int32_t pad_h = p->pad_h, pad_w = p->pad_w, lo = p->act_min, hi = p->act_max;
    int32_t oy, ox, c, fy, fx;
    for (oy = 0; oy < out_h; ++oy) {
        const int32_t iy0 = oy * stride_h - pad_h;
        const int32_t fy0 = iy0 < 0 ? -iy0 : 0;
        const int32_t fy1 = k_h < in_h - iy0 ? k_h : in_h - iy0;
        for (ox = 0; ox < out_w; ++ox) {
            const int32_t ix0 = ox * stride_w - pad_w;
            const int32_t fx0 = ix0 < 0 ? -ix0 : 0;
            const int32_t fx1 = k_w < in_w - ix0 ? k_w : in_w - ix0;
            const int32_t count = (fy1 - fy0) * (fx1 - fx0);
            int8_t *o = out + (oy * out_w + ox) * ch;
            c = 0;
#if EKD_NN_USE_DSP
            if (!is_max && count <= 255) {
                /* four channels per pass in int16 lanes (|sum| <= 128 * 255 fits): a word of the
                 * window's pixel, SXTB16 into (c, c+2) and (c+1, c+3), SADD16 */
                for (; c + 4 <= ch; c += 4) {
                    int16x2_t se = 0, so = 0;
                    int32_t s[4], i;
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int8_t *x = in + ((iy0 + fy) * in_w + ix0 + fx0) * ch + c;
                        for (fx = fx0; fx < fx1; ++fx) {
                            const int32_t v = ekd_read4(x);
                            se = __sadd16(se, __sxtb16(v));
                            so = __sadd16(so, ekd_sxtb16_ror8(v));
                            x += ch;
                        }
                    }
                    s[0] = (int16_t)se;
                    s[1] = (int16_t)so;
                    s[2] = (int32_t)se >> 16;
                    s[3] = (int32_t)so >> 16;
                    for (i = 0; i < 4; ++i) {
                        const int32_t acc = s[i] > 0 ? (s[i] + count / 2) / count : (s[i] - count / 2) / count;
                        o[c + i] = (int8_t)ekd_clamp(acc, lo, hi);
                    }
                }
            }
#endif
            for (; c < ch; ++c) {
                int32_t acc = is_max ? -128 : 0;
                for (fy = fy0; fy < fy1; ++fy) {
                    const int8_t *x = in + ((iy0 + fy) * in_w + ix0) * ch + c;
                    for (fx = fx0; fx < fx1; ++fx) {
                        const int32_t v = x[fx * ch];
                        if (is_max) {
                            acc = v > acc ? v : acc;
                        } else {
                            acc += v;
                        }
                    }
                }
                if (!is_max && count > 0) {
                    /* TFLite's rounding: half away from zero, C division truncates */
                    acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                }
                o[c] = (int8_t)ekd_clamp(acc, lo, hi);
            }
        }
    }
}

void ekd_avgpool_s8(const ekd_pool_params *p, const int8_t *in, int8_t *out)
{
    ekd_pool_s8(p, in, out, 0);
}

void ekd_maxpool_s8(const ekd_pool_params *p, const int8_t *in, int8_t *out)
{
    ekd_pool_s8(p, in, out, 1);
}

void ekd_add_s8(const ekd_add_params *p, const int8_t *a, const int8_t *b, int8_t *out)
{
    const int32_t size = p->size, off1 = p->in1_offset, off2 = p->in2_offset, out_offset = p->out_offset;
    const int32_t ls = p->left_shift, m1 = p->in1_mult, s1 = p->in1_shift, m2 = p->in2_mult, s2 = p->in2_shift;
    const int32_t mo = p->out_mult, so = p->out_shift, lo = p->act_min, hi = p->act_max;
    int32_t i;
    for (i = 0; i < size; ++i) {
        const int32_t x1 = ((int32_t)a[i] + off1) * (1 << ls);
        const int32_t x2 = ((int32_t)b[i] + off2) * (1 << ls);
        const int32_t raw = ekd_mbqm(ekd_mbqm(x1, m1, s1) + ekd_mbqm(x2, m2, s2), mo, so) + out_offset;
        out[i] = (int8_t)ekd_clamp(raw, lo, hi);
    }
}

void ekd_requant_s8(const ekd_requant_params *p, const int8_t *in, int8_t *out)
{
    const int32_t size = p->size, zi = p->in_zero_point, zo = p->out_zero_point;
    const int32_t m = p->mult, sh = p->shift, lo = p->act_min, hi = p->act_max;
    int32_t i;
    for (i = 0; i < size; ++i) {
        out[i] = (int8_t)ekd_clamp(zo + ekd_mbqm((int32_t)in[i] - zi, m, sh), lo, hi);
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

/* ---- folded-offset kernels (see edgekd_nn.h) ------------------------------------------------- */

/* Why the requantization is exact: with |acc| < 2^30 (proven at export), TFLite's saturating
 * rounding doubling high multiply (acc * m + 2^30) >> 31 cannot saturate, and its rounding divide
 * by 2^r (ties away from zero) equals (t + 2^(r-1) - (t < 0)) >> r for r >= 1; adding
 * out_zero_point * 2^r before the shift adds out_zero_point after it. On the DSP path
 * t = SMMULR(2 acc, m) = (2 acc m + 2^31) >> 32, the same integer. */
static inline int32_t ekd_rq_out(int32_t acc, const int32_t *rq, int32_t lo, int32_t hi)
{
#if EKD_NN_USE_DSP
    int32_t t;
    __asm__("smmulr %0, %1, %2" : "=r"(t) : "r"(acc * 2), "r"(rq[0]));
#else
    const int32_t t = (int32_t)(((int64_t)acc * rq[0] + ((int64_t)1 << 30)) >> 31);
#endif
    return ekd_clamp((t + rq[2] + (t >> 31)) >> rq[1], lo, hi);
}

/* Receptive field of output pixel (oy, ox) in the weights' (fy, fx, ic) order as raw values; a tap
 * in the padding reads the input zero point (= -in_offset), which the folded bias expects. Calls
 * put(ctx, src, n) for each run of n input bytes and pad(ctx, n) for n padded values. */
#define EKD_GATHER(p, in, oy, ox, RUN, PAD)                                                          \
    do {                                                                                             \
        const int32_t in_h_ = (p)->in_h, in_w_ = (p)->in_w, in_c_ = (p)->in_c, k_h_ = (p)->k_h;     \
        const int32_t k_w_ = (p)->k_w, dil_h_ = (p)->dil_h, dil_w_ = (p)->dil_w;                   \
        const int32_t iy0_ = (oy) * (p)->stride_h - (p)->pad_h, ix0_ = (ox) * (p)->stride_w - (p)->pad_w; \
        const int whole_ = dil_w_ == 1 && ix0_ >= 0 && ix0_ + k_w_ <= in_w_;                        \
        int32_t fy_, fx_;                                                                            \
        for (fy_ = 0; fy_ < k_h_; ++fy_) {                                                           \
            const int32_t iy_ = iy0_ + fy_ * dil_h_;                                                 \
            if (iy_ < 0 || iy_ >= in_h_) {                                                           \
                PAD(k_w_ * in_c_);                                                                   \
            } else if (whole_) {                                                                     \
                RUN((in) + (iy_ * in_w_ + ix0_) * in_c_, k_w_ * in_c_);                              \
            } else {                                                                                 \
                for (fx_ = 0; fx_ < k_w_; ++fx_) {                                                   \
                    const int32_t ix_ = ix0_ + fx_ * dil_w_;                                         \
                    if (ix_ < 0 || ix_ >= in_w_) {                                                   \
                        PAD(in_c_);                                                                  \
                    } else {                                                                         \
                        RUN((in) + (iy_ * in_w_ + ix_) * in_c_, in_c_);                              \
                    }                                                                                \
                }                                                                                    \
            }                                                                                        \
        }                                                                                            \
    } while (0)

/* Bytes between a convolution's input values along y, x and channels: NHWC, or NCHW where the
 * export folded the input's TRANSPOSE into the convolution (in_planar). */
static void ekd_in_strides(const ekd_conv_params *p, int32_t *sy, int32_t *sx, int32_t *sc)
{
    *sc = p->in_planar ? p->in_h * p->in_w : 1;
    *sx = p->in_planar ? 1 : p->in_c;
    *sy = p->in_planar ? p->in_w : p->in_w * p->in_c;
}


#if EKD_NN_USE_DSP

/* The hot loops are hand-scheduled Thumb-2 (file-scope asm, so no optimization level or frame
 * pointer setting can run the compiler out of registers). The convolution GEMM's 4 x 2 block keeps
 * 8 accumulators, 2 column words, 2 weight words and the two stream pointers in the 14 usable
 * registers; its weights are int16, doubled at export (no SXTB16 in the loop, and the doubled
 * accumulator is what SMMLAR needs). */
typedef struct {
    const int32_t *cols;    /* 0: 2 columns interleaved per step of 2 taps: pixel 0's pair, pixel 1's */
    const int32_t *w;       /* 4: per block of 4 channels, per step, the 4 channels' int16 pairs (2 w) */
    const int32_t *rq;      /* 8: EKD_RQ_WORDS per channel, the bias doubled */
    int8_t *out;            /* 12: pixel 0, first channel */
    int32_t out_stride;     /* 16: bytes from one pixel's outputs to the next */
    int32_t steps;          /* 20: taps / 2, >= 2 */
    int32_t blocks;         /* 24: blocks of 4 channels, >= 1 */
    int32_t lo4, hi4;       /* 28, 32: activation clamp in all four bytes */
} ekd_gemm_job;

typedef struct {
    const int32_t *x;       /* 0: input as (x0,x2), (x1,x3) per step of 4 */
    const int8_t *w;        /* 4: 4-row blocked weights */
    const int32_t *rq;      /* 8 */
    int8_t *out;            /* 12 */
    int32_t steps;          /* 16: inputs / 4, >= 1 */
    int32_t blocks;         /* 20: blocks of 4 outputs, >= 1 */
    int32_t lo4, hi4;       /* 24, 28: activation clamp in all four bytes */
} ekd_gemv_job;

/* the asm reads these offsets: fail the build if a port changes them (a negative array size) */
typedef char ekd_check_gemm_job[(offsetof(ekd_gemm_job, hi4) == 32 && offsetof(ekd_gemm_job, blocks) == 24
                                 && offsetof(ekd_gemv_job, hi4) == 28 && offsetof(ekd_gemv_job, blocks) == 20)
                                ? 1 : -1];

void ekd_gemm_4x2_sat_dsp(const ekd_gemm_job *job);
void ekd_gemm_4x2_round_dsp(const ekd_gemm_job *job);
void ekd_gemm_4x2_clamp_dsp(const ekd_gemm_job *job);
void ekd_gemv_4x1_dsp(const ekd_gemv_job *job);

__asm__(
    "    .syntax unified\n"
    "    .thumb\n"
    /* requantize one accumulator: acc = ssat8(((t + round + (t < 0)) >> r)), t = SMMULR(2 acc, m) */
    "    .macro EKD_RQ acc, m, r, rnd, tmp\n"
    "    lsl     \\acc, \\acc, #1\n"
    "    smmulr  \\acc, \\acc, \\m\n"
    "    add     \\tmp, \\rnd, \\acc, asr #31\n"
    "    add     \\acc, \\acc, \\tmp\n"
    "    asr     \\acc, \\acc, \\r\n"
    "    ssat    \\acc, #8, \\acc\n"
    "    .endm\n"
    /* one step of 4 inputs for 4 output rows: 16 MACs */
    "    .macro EKD_STEP41\n"
    "    ldrd    r4, r5, [r11], #8\n"
    "    ldmia   r12!, {r6-r9}\n"
    "    sxtb16  r10, r6\n"
    "    smlad   r0, r4, r10, r0\n"
    "    sxtb16  r6, r6, ror #8\n"
    "    smlad   r0, r5, r6, r0\n"
    "    sxtb16  r10, r7\n"
    "    smlad   r1, r4, r10, r1\n"
    "    sxtb16  r7, r7, ror #8\n"
    "    smlad   r1, r5, r7, r1\n"
    "    sxtb16  r10, r8\n"
    "    smlad   r2, r4, r10, r2\n"
    "    sxtb16  r8, r8, ror #8\n"
    "    smlad   r2, r5, r8, r2\n"
    "    sxtb16  r10, r9\n"
    "    smlad   r3, r4, r10, r3\n"
    "    sxtb16  r9, r9, ror #8\n"
    "    smlad   r3, r5, r9, r3\n"
    "    .endm\n"
    "    .section .text.ekd_gemv_4x1_dsp,\"ax\",%progbits\n"
    "    .p2align 2\n"
    "    .global ekd_gemv_4x1_dsp\n"
    "    .type   ekd_gemv_4x1_dsp, %function\n"
    "    .thumb_func\n"
    "ekd_gemv_4x1_dsp:\n"
    "    push    {r4-r11, lr}\n"
    "    sub     sp, sp, #20\n"              /* 0 x, 4 rq, 8 out, 12 blocks left, 16 job */
    "    ldr     r1, [r0, #0]\n"
    "    ldr     r2, [r0, #8]\n"
    "    ldr     r3, [r0, #12]\n"
    "    ldr     r4, [r0, #20]\n"
    "    ldr     r12, [r0, #4]\n"
    "    str     r1, [sp, #0]\n"
    "    str     r2, [sp, #4]\n"
    "    str     r3, [sp, #8]\n"
    "    str     r4, [sp, #12]\n"
    "    str     r0, [sp, #16]\n"
    "1:  ldr     r11, [sp, #0]\n"
    "    ldr     r10, [sp, #16]\n"
    "    ldr     lr, [r10, #16]\n"
    "    ldr     r10, [sp, #4]\n"
    "    ldr     r0, [r10, #12]\n"
    "    ldr     r1, [r10, #28]\n"
    "    ldr     r2, [r10, #44]\n"
    "    ldr     r3, [r10, #60]\n"
    "    tst     lr, #1\n"
    "    add     lr, r11, lr, lsl #3\n"      /* end of the input */
    "    beq     2f\n"
    "    EKD_STEP41\n"                       /* odd step count: one step first, then pairs */
    "    cmp     r11, lr\n"
    "    beq     3f\n"
    "2:  EKD_STEP41\n"
    "    EKD_STEP41\n"
    "    cmp     r11, lr\n"
    "    bne     2b\n"
    "3:  ldr     r10, [sp, #4]\n"
    "    ldmia   r10!, {r4-r7}\n"
    "    EKD_RQ  r0, r4, r5, r6, r8\n"
    "    ldmia   r10!, {r4-r7}\n"
    "    EKD_RQ  r1, r4, r5, r6, r8\n"
    "    ldmia   r10!, {r4-r7}\n"
    "    EKD_RQ  r2, r4, r5, r6, r8\n"
    "    ldmia   r10!, {r4-r7}\n"
    "    EKD_RQ  r3, r4, r5, r6, r8\n"
    "    str     r10, [sp, #4]\n"
    "    pkhbt   r0, r0, r2, lsl #16\n"
    "    pkhbt   r1, r1, r3, lsl #16\n"
    "    uxtb16  r0, r0\n"
    "    uxtb16  r1, r1\n"
    "    orr     r0, r0, r1, lsl #8\n"       /* bytes: out0, out1, out2, out3 */
    "    ldr     r10, [sp, #16]\n"
    "    ldr     r4, [r10, #24]\n"
    "    ldr     r5, [r10, #28]\n"
    "    ssub8   r6, r0, r4\n"
    "    sel     r0, r0, r4\n"
    "    ssub8   r6, r5, r0\n"
    "    sel     r0, r0, r5\n"
    "    ldr     r10, [sp, #8]\n"
    "    str     r0, [r10], #4\n"
    "    str     r10, [sp, #8]\n"
    "    ldr     r10, [sp, #12]\n"
    "    subs    r10, r10, #1\n"
    "    str     r10, [sp, #12]\n"
    "    bne     1b\n"
    "    add     sp, sp, #20\n"
    "    pop     {r4-r11, pc}\n"
    "    .size   ekd_gemv_4x1_dsp, . - ekd_gemv_4x1_dsp\n"
    "    .text\n");

/* The convolution GEMM: per block of 4 output channels, the first step adds to the biases, the
 * other steps-1 run a 16-step unrolled body entered (steps - 1) % 16 steps before its end (Duff's
 * device: a table of entry offsets in words), then the 8 outputs are requantized and stored as two words.
 * Three epilogues: sat (output zero point -128, no clamp: no rounding correction), round (the
 * (acc < 0) correction), clamp (correction and the activation clamp). */
__asm__(
    "    .syntax unified\n"
    "    .thumb\n"
    /* one step of 2 taps for 4 channels x 2 pixels: 16 MACs (all 32-bit encodings: the Duff
     * entry below jumps into the unrolled body by a fixed size per step, 14 words) */
    "    .macro EKD_STEP42\n"
    "    ldr.w   r8, [r12], #4\n"
    "    ldr.w   r9, [r12], #4\n"
    "    ldr.w   r10, [lr], #4\n"
    "    ldr.w   r11, [lr], #4\n"
    "    smlad   r0, r8, r10, r0\n"
    "    smlad   r1, r9, r10, r1\n"
    "    smlad   r2, r8, r11, r2\n"
    "    smlad   r3, r9, r11, r3\n"
    "    ldr.w   r10, [lr], #4\n"
    "    ldr.w   r11, [lr], #4\n"
    "    smlad   r4, r8, r10, r4\n"
    "    smlad   r5, r9, r10, r5\n"
    "    smlad   r6, r8, r11, r6\n"
    "    smlad   r7, r9, r11, r7\n"
    "    .endm\n"
    /* requantize one channel's two doubled accumulators a, b with its record at r12 + off:
     * SMMLAR adds the rounding term to t = (2 acc m + 2^31) >> 32; mode 0 leaves out the
     * (acc < 0) correction (exact when the output zero point is -128 and nothing is clamped) */
    "    .macro EKD_RQ42 a, b, off, mode\n"
    "    ldr     r8, [r12, #\\off]\n"
    "    ldr     r9, [r12, #\\off + 4]\n"
    "    ldr     r10, [r12, #\\off + 8]\n"
    "    .if \\mode == 0\n"
    "    smmlar  \\a, \\a, r8, r10\n"
    "    smmlar  \\b, \\b, r8, r10\n"
    "    .else\n"
    "    smmlar  r11, \\a, r8, r10\n"
    "    add     \\a, r11, \\a, asr #31\n"
    "    smmlar  r11, \\b, r8, r10\n"
    "    add     \\b, r11, \\b, asr #31\n"
    "    .endif\n"
    "    asr     \\a, \\a, r9\n"
    "    asr     \\b, \\b, r9\n"
    "    ssat    \\a, #8, \\a\n"
    "    ssat    \\b, #8, \\b\n"
    "    .endm\n"
    "    .macro EKD_GEMM42 name, mode\n"
    "    .section .text.\\name,\"ax\",%progbits\n"
    "    .p2align 2\n"
    "    .global \\name\n"
    "    .type   \\name, %function\n"
    "    .thumb_func\n"
    "\\name:\n"
    "    push    {r4-r11, lr}\n"
    "    sub     sp, sp, #40\n"              /* 4 cols, 8 rq, 12 out, 16 stride, 20 entry, 24 cols end, 28 w end, 32 lo4, 36 hi4 */
    "    ldr     r1, [r0, #0]\n"
    "    ldr     r2, [r0, #8]\n"
    "    ldr     r3, [r0, #12]\n"
    "    ldr     r4, [r0, #16]\n"
    "    ldr     r5, [r0, #20]\n"
    "    ldr     r6, [r0, #24]\n"
    "    ldr     r7, [r0, #28]\n"
    "    ldr     r8, [r0, #32]\n"
    "    ldr     lr, [r0, #4]\n"
    "    str     r1, [sp, #4]\n"
    "    str     r2, [sp, #8]\n"
    "    str     r3, [sp, #12]\n"
    "    str     r4, [sp, #16]\n"
    "    str     r7, [sp, #32]\n"
    "    str     r8, [sp, #36]\n"
    "    add     r9, r1, r5, lsl #3\n"
    "    str     r9, [sp, #24]\n"
    "    mul     r6, r6, r5\n"
    "    add     r6, lr, r6, lsl #4\n"
    "    str     r6, [sp, #28]\n"
    "    sub     r5, r5, #1\n"               /* steps after the first, entered (steps - 1) % 16 from the end */
    "    and     r5, r5, #15\n"
    "    adr.w   r9, 9f\n"
    "    ldrb    r5, [r9, r5]\n"
    "    adr.w   r9, 2f\n"
    "    add     r9, r9, r5, lsl #2\n"
    "    orr     r9, r9, #1\n"
    "    str     r9, [sp, #20]\n"
    "1:  ldr     r10, [sp, #8]\n"            /* per block of 4 channels: the first step adds to the biases */
    "    ldr     r12, [sp, #4]\n"
    "    ldr     r0, [r10, #12]\n"
    "    ldr     r2, [r10, #28]\n"
    "    ldr     r4, [r10, #44]\n"
    "    ldr     r6, [r10, #60]\n"
    "    ldr     r8, [r12], #4\n"
    "    ldr     r9, [r12], #4\n"
    "    ldr     r10, [lr], #4\n"
    "    ldr     r11, [lr], #4\n"
    "    smlad   r1, r9, r10, r0\n"
    "    smlad   r0, r8, r10, r0\n"
    "    smlad   r3, r9, r11, r2\n"
    "    smlad   r2, r8, r11, r2\n"
    "    ldr     r10, [lr], #4\n"
    "    ldr     r11, [lr], #4\n"
    "    smlad   r5, r9, r10, r4\n"
    "    smlad   r4, r8, r10, r4\n"
    "    smlad   r7, r9, r11, r6\n"
    "    smlad   r6, r8, r11, r6\n"
    "    ldr     r8, [sp, #20]\n"
    "    bx      r8\n"
    "2:  EKD_STEP42\n"
    "21: EKD_STEP42\n"
    "22: EKD_STEP42\n"
    "23: EKD_STEP42\n"
    "24: EKD_STEP42\n"
    "25: EKD_STEP42\n"
    "26: EKD_STEP42\n"
    "27: EKD_STEP42\n"
    "28: EKD_STEP42\n"
    "29: EKD_STEP42\n"
    "30: EKD_STEP42\n"
    "31: EKD_STEP42\n"
    "32: EKD_STEP42\n"
    "33: EKD_STEP42\n"
    "34: EKD_STEP42\n"
    "35: EKD_STEP42\n"
    "    ldr     r8, [sp, #24]\n"
    "    cmp     r12, r8\n"
    "    bne     2b\n"
    "    ldr     r12, [sp, #8]\n"
    "    EKD_RQ42 r0, r1, 0, \\mode\n"
    "    EKD_RQ42 r2, r3, 16, \\mode\n"
    "    EKD_RQ42 r4, r5, 32, \\mode\n"
    "    EKD_RQ42 r6, r7, 48, \\mode\n"
    "    bfi     r0, r2, #8, #8\n"           /* pixel 0's four channels as one word, pixel 1's likewise */
    "    bfi     r0, r4, #16, #8\n"
    "    bfi     r0, r6, #24, #8\n"
    "    bfi     r1, r3, #8, #8\n"
    "    bfi     r1, r5, #16, #8\n"
    "    bfi     r1, r7, #24, #8\n"
    "    .if \\mode == 2\n"
    "    ldr     r8, [sp, #32]\n"            /* activation clamp on the four bytes: max by SSUB8 + SEL, then min */
    "    ldr     r9, [sp, #36]\n"
    "    ssub8   r10, r0, r8\n"
    "    sel     r0, r0, r8\n"
    "    ssub8   r10, r9, r0\n"
    "    sel     r0, r0, r9\n"
    "    ssub8   r10, r1, r8\n"
    "    sel     r1, r1, r8\n"
    "    ssub8   r10, r9, r1\n"
    "    sel     r1, r1, r9\n"
    "    .endif\n"
    "    ldr     r8, [sp, #12]\n"
    "    ldr     r9, [sp, #16]\n"
    "    ldr     r10, [sp, #28]\n"
    "    str     r0, [r8]\n"
    "    str     r1, [r8, r9]\n"
    "    add     r8, r8, #4\n"
    "    add     r12, r12, #64\n"
    "    str     r8, [sp, #12]\n"
    "    str     r12, [sp, #8]\n"
    "    cmp     lr, r10\n"
    "    bne     1b\n"
    "    add     sp, sp, #40\n"
    "    pop     {r4-r11, pc}\n"
    "9:  .byte   0, (35b - 2b) / 4, (34b - 2b) / 4, (33b - 2b) / 4, (32b - 2b) / 4, (31b - 2b) / 4, (30b - 2b) / 4, (29b - 2b) / 4, (28b - 2b) / 4, (27b - 2b) / 4, (26b - 2b) / 4, (25b - 2b) / 4, (24b - 2b) / 4, (23b - 2b) / 4, (22b - 2b) / 4, (21b - 2b) / 4\n"
    "    .p2align 1\n"
    "    .size   \\name, . - \\name\n"
    "    .endm\n"
    "    EKD_GEMM42 ekd_gemm_4x2_sat_dsp, 0\n"
    "    EKD_GEMM42 ekd_gemm_4x2_round_dsp, 1\n"
    "    EKD_GEMM42 ekd_gemm_4x2_clamp_dsp, 2\n"
    "    .text\n");

typedef struct {
    const int16_t *plane;   /* 0: the first channel's plane */
    const int32_t *rec;     /* 4: the first channel's record: EKD_DW_REC_WORDS */
    int8_t *out;            /* 8: the first channel's first output */
    int32_t plane_bytes;    /* 12: from one channel's plane to the next */
    int32_t row_bytes;      /* 16: plane row stride */
    int32_t rows;           /* 20: output rows, >= 1 */
    int32_t groups;         /* 24: whole groups of 4 outputs per row */
    int32_t rem;            /* 28: outputs of a last, partial group (0..3) */
    int32_t out_step;       /* 32: bytes between the outputs of a row */
    int32_t out_row;        /* 36: bytes between output rows */
    int32_t channels;       /* 40: channels in this call, >= 1 */
    int32_t stride;         /* 44: 1 or 2 */
    int32_t lo4, hi4;       /* 48, 52: activation clamp in all four bytes */
} ekd_dw_job;

typedef struct {
    const int8_t *src;      /* 0: channel c of a row's first input value (used up by the call) */
    int16_t *dst;           /* 4: its slot in plane c (used up) */
    int32_t pairs;          /* 8: pairs of values per row after a lone first one */
    int32_t rows;           /* 12: >= 1 */
    int32_t step;           /* 16: input bytes between the values of a row */
    int32_t src_row;        /* 20: input bytes between rows */
    int32_t dst_row;        /* 24: plane row bytes */
    int32_t plane_bytes;    /* 28: from one plane to the next (4 planes: channels c..c+3) */
    int32_t lead, trail;    /* 32, 36: a lone value before the pairs (dst not word aligned) / after them */
} ekd_fill4_job;

typedef char ekd_check_dw_job[(offsetof(ekd_dw_job, hi4) == 52 && offsetof(ekd_dw_job, stride) == 44
                               && offsetof(ekd_fill4_job, trail) == 36) ? 1 : -1];

void ekd_dw3x3_s1_sat_dsp(const ekd_dw_job *job);
void ekd_dw3x3_s1_round_dsp(const ekd_dw_job *job);
void ekd_dw3x3_s1_clamp_dsp(const ekd_dw_job *job);
void ekd_dw3x3_s2_sat_dsp(const ekd_dw_job *job);
void ekd_dw3x3_s2_round_dsp(const ekd_dw_job *job);
void ekd_dw3x3_s2_clamp_dsp(const ekd_dw_job *job);
void ekd_plane_fill4_dsp(ekd_fill4_job *job);

typedef struct {
    const int8_t *src;      /* 0: channel c of the first input pixel copied */
    int16_t *dst;           /* 4: its place in the plane */
    int32_t n;              /* 8: pixels per row, >= 1 */
    int32_t rows;           /* 12: >= 1 (used up by the call) */
    int32_t step;           /* 16: bytes between input pixels (the channel count) */
    int32_t src_row;        /* 20: bytes between input rows */
    int32_t dst_row;        /* 24: bytes between plane rows */
} ekd_fill_job;

typedef char ekd_check_fill_job[(offsetof(ekd_fill_job, dst_row) == 24) ? 1 : -1];

void ekd_plane_fill_dsp(ekd_fill_job *job);   /* counts job->rows down */

/* Depthwise 3x3 over channel planes: each output row in groups of 4 outputs, the group's 4
 * accumulators in registers, the three filter rows' plane words loaded once per group (stride 1:
 * A, B, C = P[x..x+5]: out[x] = SMLAD(A, w01) + SMLABT(B, w12), out[x+1] = SMLATB(A, w01) +
 * SMLAD(B, w12), out[x+2], out[x+3] likewise from B, C; stride 2: A..E = P[2x..2x+9], out[x+i] =
 * SMLAD(P pair 2i, w01) + SMLABT(pair 2i+1, w12)), then requantized at once (the GEMM's three
 * epilogues) and stored a channel count (or a row) apart. The channel's weight pairs and
 * requantization record are copied onto the stack, so the loads chain with the plane's. */
__asm__(
    "    .syntax unified\n"
    "    .thumb\n"
    /* stride 1, one filter row of a group of 4 outputs: A, B, C = plane values x..x+5 of row p,
     * the row's weight pairs (w0, w1), (w1, w2) from the channel record on the stack */
    "    .macro EKD_DW_ROW1 p, wo, first\n"
    "    .if \\first\n"
    "    ldr     r0, [sp, #36]\n"
    "    .endif\n"
    "    ldr     r4, [\\p], #8\n"
    "    ldr     r5, [\\p, #-4]\n"
    "    ldr     r6, [\\p]\n"
    "    ldr     r7, [sp, #\\wo]\n"
    "    ldr     r8, [sp, #\\wo + 4]\n"
    "    .if \\first\n"
    "    smlatb  r1, r4, r7, r0\n"
    "    smlad   r2, r5, r7, r0\n"
    "    smlatb  r3, r5, r7, r0\n"
    "    smlad   r0, r4, r7, r0\n"
    "    .else\n"
    "    smlad   r0, r4, r7, r0\n"
    "    smlatb  r1, r4, r7, r1\n"
    "    smlad   r2, r5, r7, r2\n"
    "    smlatb  r3, r5, r7, r3\n"
    "    .endif\n"
    "    smlabt  r0, r5, r8, r0\n"
    "    smlad   r1, r5, r8, r1\n"
    "    smlabt  r2, r6, r8, r2\n"
    "    smlad   r3, r6, r8, r3\n"
    "    .endm\n"
    /* stride 2: A..E = plane values 2x..2x+9 */
    "    .macro EKD_DW_ROW2 p, wo, first\n"
    "    .if \\first\n"
    "    ldr     r0, [sp, #36]\n"
    "    .endif\n"
    "    ldr     r4, [\\p], #16\n"
    "    ldr     r5, [\\p, #-12]\n"
    "    ldr     r6, [\\p, #-8]\n"
    "    ldr     r7, [sp, #\\wo]\n"
    "    ldr     r8, [sp, #\\wo + 4]\n"
    "    .if \\first\n"
    "    smlad   r1, r5, r7, r0\n"
    "    smlad   r2, r6, r7, r0\n"
    "    mov     r3, r0\n"
    "    smlad   r0, r4, r7, r0\n"
    "    .else\n"
    "    smlad   r0, r4, r7, r0\n"
    "    smlad   r1, r5, r7, r1\n"
    "    smlad   r2, r6, r7, r2\n"
    "    .endif\n"
    "    smlabt  r0, r5, r8, r0\n"
    "    smlabt  r1, r6, r8, r1\n"
    "    ldr     r4, [\\p, #-4]\n"
    "    ldr     r5, [\\p]\n"
    "    smlabt  r2, r4, r8, r2\n"
    "    smlad   r3, r4, r7, r3\n"
    "    smlabt  r3, r5, r8, r3\n"
    "    .endm\n"
    /* a group of 2 outputs (a row's last 1 or 2): stride 1 from A, B = P[x..x+3], stride 2 from
     * A, B, C = P[2x..2x+5]; the pointer still advances by a whole group */
    "    .macro EKD_DW_PAIR p, wo, first, s\n"
    "    .if \\first\n"
    "    ldr     r0, [sp, #36]\n"
    "    .endif\n"
    "    .if \\s == 1\n"
    "    ldr     r4, [\\p], #8\n"
    "    ldr     r5, [\\p, #-4]\n"
    "    .else\n"
    "    ldr     r4, [\\p], #16\n"
    "    ldr     r5, [\\p, #-12]\n"
    "    ldr     r6, [\\p, #-8]\n"
    "    .endif\n"
    "    ldr     r7, [sp, #\\wo]\n"
    "    ldr     r8, [sp, #\\wo + 4]\n"
    "    .if \\s == 1\n"
    "    .if \\first\n"
    "    smlatb  r1, r4, r7, r0\n"
    "    smlad   r0, r4, r7, r0\n"
    "    .else\n"
    "    smlad   r0, r4, r7, r0\n"
    "    smlatb  r1, r4, r7, r1\n"
    "    .endif\n"
    "    smlabt  r0, r5, r8, r0\n"
    "    smlad   r1, r5, r8, r1\n"
    "    .else\n"
    "    .if \\first\n"
    "    smlad   r1, r5, r7, r0\n"
    "    smlad   r0, r4, r7, r0\n"
    "    .else\n"
    "    smlad   r0, r4, r7, r0\n"
    "    smlad   r1, r5, r7, r1\n"
    "    .endif\n"
    "    smlabt  r0, r5, r8, r0\n"
    "    smlabt  r1, r6, r8, r1\n"
    "    .endif\n"
    "    .endm\n"
    /* n (2 or 4) doubled accumulators r0.. to int8 (the mode as in the GEMM) */
    "    .macro EKD_DW_RQ n, mode\n"
    "    ldr     r4, [sp, #24]\n"
    "    ldr     r5, [sp, #28]\n"
    "    ldr     r6, [sp, #32]\n"
    "    .if \\mode == 0\n"
    "    smmlar  r0, r0, r4, r6\n"
    "    smmlar  r1, r1, r4, r6\n"
    "    .if \\n == 4\n"
    "    smmlar  r2, r2, r4, r6\n"
    "    smmlar  r3, r3, r4, r6\n"
    "    .endif\n"
    "    .else\n"
    "    smmlar  r7, r0, r4, r6\n"
    "    add     r0, r7, r0, asr #31\n"
    "    smmlar  r7, r1, r4, r6\n"
    "    add     r1, r7, r1, asr #31\n"
    "    .if \\n == 4\n"
    "    smmlar  r7, r2, r4, r6\n"
    "    add     r2, r7, r2, asr #31\n"
    "    smmlar  r7, r3, r4, r6\n"
    "    add     r3, r7, r3, asr #31\n"
    "    .endif\n"
    "    .endif\n"
    "    asr     r0, r0, r5\n"
    "    asr     r1, r1, r5\n"
    "    .if \\n == 4\n"
    "    asr     r2, r2, r5\n"
    "    asr     r3, r3, r5\n"
    "    .endif\n"
    "    ssat    r0, #8, r0\n"
    "    ssat    r1, #8, r1\n"
    "    .if \\n == 4\n"
    "    ssat    r2, #8, r2\n"
    "    ssat    r3, #8, r3\n"
    "    .endif\n"
    "    .if \\mode == 2\n"
    "    bfi     r0, r1, #8, #8\n"
    "    .if \\n == 4\n"
    "    bfi     r0, r2, #16, #8\n"
    "    bfi     r0, r3, #24, #8\n"
    "    .endif\n"
    "    ldr     r4, [sp, #64]\n"
    "    ldr     r5, [sp, #68]\n"
    "    ssub8   r6, r0, r4\n"
    "    sel     r0, r0, r4\n"
    "    ssub8   r6, r5, r0\n"
    "    sel     r0, r0, r5\n"
    "    lsr     r1, r0, #8\n"
    "    .if \\n == 4\n"
    "    lsr     r2, r0, #16\n"
    "    lsr     r3, r0, #24\n"
    "    .endif\n"
    "    .endif\n"
    "    .endm\n"
    "    .macro EKD_DW_STORE4\n"
    "    strb    r0, [r12]\n"
    "    strb    r1, [r12, lr]\n"
    "    add     r12, r12, lr, lsl #1\n"
    "    strb    r2, [r12]\n"
    "    strb    r3, [r12, lr]\n"
    "    add     r12, r12, lr, lsl #1\n"
    "    .endm\n"
    "    .macro EKD_DW3X3 name, mode, s\n"
    "    .section .text.\\name,\"ax\",%progbits\n"
    "    .p2align 2\n"
    "    .global \\name\n"
    "    .type   \\name, %function\n"
    "    .thumb_func\n"
    "\\name:\n"
    "    push    {r4-r11, lr}\n"
    "    sub     sp, sp, #112\n"             /* 0..39 channel record, 40 job, 44 row's whole-group end, 52 row's output, 56 plane end, 60 channels left, 64 lo4, 68 hi4, 72 plane, 76 record, 80 output, 84 rem, 88 whole-group span, 92 plane bytes per output row, 96 skip to the next row, 100 output row, 104 plane span */
    "    str     r0, [sp, #40]\n"
    "    ldr     r1, [r0, #0]\n"
    "    ldr     r2, [r0, #4]\n"
    "    ldr     r3, [r0, #8]\n"
    "    ldr     r4, [r0, #40]\n"
    "    ldr     r5, [r0, #48]\n"
    "    ldr     r6, [r0, #52]\n"
    "    ldr     r7, [r0, #28]\n"
    "    ldr     r8, [r0, #24]\n"
    "    ldr     r9, [r0, #16]\n"
    "    ldr     r10, [r0, #36]\n"
    "    ldr     r11, [r0, #20]\n"
    "    str     r1, [sp, #72]\n"
    "    str     r2, [sp, #76]\n"
    "    str     r3, [sp, #80]\n"
    "    str     r4, [sp, #60]\n"
    "    str     r5, [sp, #64]\n"
    "    str     r6, [sp, #68]\n"
    "    str     r7, [sp, #84]\n"
    "    str     r10, [sp, #100]\n"
    "    lsl     r1, r8, #3 + (\\s - 1)\n"   /* whole groups x 8 x stride */
    "    str     r1, [sp, #88]\n"
    "    lsl     r2, r9, #\\s - 1\n"         /* plane bytes per output row */
    "    str     r2, [sp, #92]\n"
    "    cmp     r7, #0\n"
    "    it      ne\n"
    "    addne   r1, r1, #8 * \\s\n"         /* the pointers' advance over a row */
    "    sub     r3, r2, r1\n"
    "    str     r3, [sp, #96]\n"
    "    mul     r11, r11, r2\n"
    "    str     r11, [sp, #104]\n"
    "1:  ldr     r0, [sp, #76]\n"            /* next channel: its record onto the stack */
    "    ldmia   r0!, {r1-r10}\n"
    "    str     r0, [sp, #76]\n"
    "    stmia   sp, {r1-r10}\n"
    "    ldr     r0, [sp, #40]\n"
    "    ldr     r9, [sp, #72]\n"
    "    ldr     r1, [sp, #88]\n"
    "    ldr     r2, [sp, #104]\n"
    "    ldr     r4, [r0, #16]\n"
    "    ldr     lr, [r0, #32]\n"
    "    ldr     r12, [sp, #80]\n"
    "    add     r10, r9, r4\n"
    "    add     r11, r10, r4\n"
    "    add     r1, r9, r1\n"
    "    add     r2, r9, r2\n"
    "    str     r1, [sp, #44]\n"
    "    str     r2, [sp, #56]\n"
    "    str     r12, [sp, #52]\n"
    "2:  ldr     r4, [sp, #44]\n"            /* next output row */
    "    cmp     r9, r4\n"
    "    beq     4f\n"
    "3:  .if \\s == 1\n"                     /* groups of 4 outputs */
    "    EKD_DW_ROW1 r9, 0, 1\n"
    "    EKD_DW_ROW1 r10, 8, 0\n"
    "    EKD_DW_ROW1 r11, 16, 0\n"
    "    .else\n"
    "    EKD_DW_ROW2 r9, 0, 1\n"
    "    EKD_DW_ROW2 r10, 8, 0\n"
    "    EKD_DW_ROW2 r11, 16, 0\n"
    "    .endif\n"
    "    EKD_DW_RQ 4, \\mode\n"
    "    EKD_DW_STORE4\n"
    "    ldr     r4, [sp, #44]\n"
    "    cmp     r9, r4\n"
    "    bne     3b\n"
    "4:  ldr     r4, [sp, #84]\n"            /* the row's last 1..3 outputs */
    "    cmp     r4, #2\n"
    "    bgt     5f\n"
    "    cmp     r4, #0\n"
    "    beq     7f\n"
    "    EKD_DW_PAIR r9, 0, 1, \\s\n"
    "    EKD_DW_PAIR r10, 8, 0, \\s\n"
    "    EKD_DW_PAIR r11, 16, 0, \\s\n"
    "    EKD_DW_RQ 2, \\mode\n"
    "    ldr     r4, [sp, #84]\n"
    "    strb    r0, [r12]\n"
    "    cmp     r4, #2\n"
    "    bne     7f\n"
    "    strb    r1, [r12, lr]\n"
    "    b       7f\n"
    "5:  .if \\s == 1\n"
    "    EKD_DW_ROW1 r9, 0, 1\n"
    "    EKD_DW_ROW1 r10, 8, 0\n"
    "    EKD_DW_ROW1 r11, 16, 0\n"
    "    .else\n"
    "    EKD_DW_ROW2 r9, 0, 1\n"
    "    EKD_DW_ROW2 r10, 8, 0\n"
    "    EKD_DW_ROW2 r11, 16, 0\n"
    "    .endif\n"
    "    EKD_DW_RQ 4, \\mode\n"
    "    strb    r0, [r12]\n"
    "    strb    r1, [r12, lr]\n"
    "    add     r12, r12, lr, lsl #1\n"
    "    strb    r2, [r12]\n"
    "7:  ldr     r4, [sp, #96]\n"            /* row done: the pointers to the next row */
    "    ldr     r5, [sp, #92]\n"
    "    ldr     r6, [sp, #44]\n"
    "    ldr     r12, [sp, #52]\n"
    "    ldr     r7, [sp, #100]\n"
    "    ldr     r8, [sp, #56]\n"
    "    add     r9, r9, r4\n"
    "    add     r10, r10, r4\n"
    "    add     r11, r11, r4\n"
    "    add     r6, r6, r5\n"
    "    add     r12, r12, r7\n"
    "    str     r6, [sp, #44]\n"
    "    str     r12, [sp, #52]\n"
    "    cmp     r9, r8\n"
    "    bne     2b\n"
    "    ldr     r0, [sp, #40]\n"            /* channel done */
    "    ldr     r1, [sp, #72]\n"
    "    ldr     r2, [r0, #12]\n"
    "    ldr     r3, [sp, #80]\n"
    "    ldr     r4, [sp, #60]\n"
    "    add     r1, r1, r2\n"
    "    add     r3, r3, #1\n"
    "    str     r1, [sp, #72]\n"
    "    str     r3, [sp, #80]\n"
    "    subs    r4, r4, #1\n"
    "    str     r4, [sp, #60]\n"
    "    bne     1b\n"
    "    add     sp, sp, #112\n"
    "    pop     {r4-r11, pc}\n"
    "    .size   \\name, . - \\name\n"
    "    .endm\n"
    "    EKD_DW3X3 ekd_dw3x3_s1_sat_dsp, 0, 1\n"
    "    EKD_DW3X3 ekd_dw3x3_s1_round_dsp, 1, 1\n"
    "    EKD_DW3X3 ekd_dw3x3_s1_clamp_dsp, 2, 1\n"
    "    EKD_DW3X3 ekd_dw3x3_s2_sat_dsp, 0, 2\n"
    "    EKD_DW3X3 ekd_dw3x3_s2_round_dsp, 1, 2\n"
    "    EKD_DW3X3 ekd_dw3x3_s2_clamp_dsp, 2, 2\n"
    /* one value of four channels (a word of the HWC input at r1) into the four planes' slots at
     * r2 (planes 0, 1) and r3 (planes 2, 3); both advance a halfword */
    "    .macro EKD_FILL1\n"
    "    ldr     r4, [r1]\n"
    "    add     r1, r1, r12\n"
    "    sxtb16  r5, r4\n"
    "    sxtb16  r4, r4, ror #8\n"
    "    strh    r4, [r2, lr]\n"
    "    strh    r5, [r2], #2\n"
    "    lsr     r5, r5, #16\n"
    "    lsr     r4, r4, #16\n"
    "    strh    r4, [r3, lr]\n"
    "    strh    r5, [r3], #2\n"
    "    .endm\n"
    /* four channels' planes from HWC input, row by row: a lone first value (when the row starts
     * between two words of the plane), pairs of input pixels (two words give (c0, c2) and (c1, c3)
     * by SXTB16, regrouped by PKHBT / PKHTB into one int16 pair per plane), a lone last value */
    "    .section .text.ekd_plane_fill4_dsp,\"ax\",%progbits\n"
    "    .p2align 2\n"
    "    .global ekd_plane_fill4_dsp\n"
    "    .type   ekd_plane_fill4_dsp, %function\n"
    "    .thumb_func\n"
    "ekd_plane_fill4_dsp:\n"
    "    push    {r4-r11, lr}\n"
    "    ldr     r12, [r0, #16]\n"
    "    ldr     lr, [r0, #28]\n"
    "    ldr     r11, [r0, #12]\n"
    "1:  ldr     r1, [r0, #0]\n"
    "    ldr     r2, [r0, #4]\n"
    "    ldr     r10, [r0, #8]\n"
    "    ldr     r4, [r0, #32]\n"
    "    add     r3, r2, lr, lsl #1\n"
    "    cbz     r4, 2f\n"
    "    EKD_FILL1\n"
    "2:  cmp     r10, #0\n"
    "    beq     4f\n"
    "3:  ldr     r4, [r1]\n"
    "    ldr     r5, [r1, r12]\n"
    "    add     r1, r1, r12, lsl #1\n"
    "    sxtb16  r6, r4\n"
    "    sxtb16  r7, r5\n"
    "    sxtb16  r4, r4, ror #8\n"
    "    sxtb16  r5, r5, ror #8\n"
    "    pkhbt   r8, r6, r7, lsl #16\n"
    "    pkhtb   r9, r7, r6, asr #16\n"
    "    pkhbt   r6, r4, r5, lsl #16\n"
    "    pkhtb   r7, r5, r4, asr #16\n"
    "    str     r6, [r2, lr]\n"
    "    str     r8, [r2], #4\n"
    "    str     r7, [r3, lr]\n"
    "    str     r9, [r3], #4\n"
    "    subs    r10, r10, #1\n"
    "    bne     3b\n"
    "4:  ldr     r4, [r0, #36]\n"
    "    cbz     r4, 5f\n"
    "    EKD_FILL1\n"
    "5:  ldr     r4, [r0, #0]\n"
    "    ldr     r5, [r0, #20]\n"
    "    ldr     r6, [r0, #4]\n"
    "    ldr     r7, [r0, #24]\n"
    "    add     r4, r4, r5\n"
    "    add     r6, r6, r7\n"
    "    str     r4, [r0, #0]\n"
    "    str     r6, [r0, #4]\n"
    "    subs    r11, r11, #1\n"
    "    bne     1b\n"
    "    pop     {r4-r11, pc}\n"
    "    .size   ekd_plane_fill4_dsp, . - ekd_plane_fill4_dsp\n"
    "    .text\n");

__asm__(
    "    .syntax unified\n"
    "    .thumb\n"
    /* one channel of the input into the plane: four loads, then two halfword pairs per pass */
    "    .section .text.ekd_plane_fill_dsp,\"ax\",%progbits\n"
    "    .p2align 2\n"
    "    .global ekd_plane_fill_dsp\n"
    "    .type   ekd_plane_fill_dsp, %function\n"
    "    .thumb_func\n"
    "ekd_plane_fill_dsp:\n"
    "    push    {r4-r11, lr}\n"
    "    ldr     r1, [r0, #0]\n"
    "    ldr     r2, [r0, #4]\n"
    "    ldr     r5, [r0, #16]\n"
    "    ldr     r7, [r0, #12]\n"
    "    add     r8, r5, r5\n"
    "    add     r9, r8, r5\n"
    "    lsl     r10, r5, #2\n"
    "1:  mov     r11, r1\n"
    "    mov     r12, r2\n"
    "    ldr     lr, [r0, #8]\n"
    "    subs    lr, lr, #4\n"
    "    blt     3f\n"
    "2:  ldrsb   r3, [r11]\n"
    "    ldrsb   r4, [r11, r5]\n"
    "    ldrsb   r6, [r11, r8]\n"
    "    ldrsb   r7, [r11, r9]\n"
    "    add     r11, r11, r10\n"
    "    pkhbt   r3, r3, r4, lsl #16\n"
    "    pkhbt   r6, r6, r7, lsl #16\n"
    "    str     r3, [r12]\n"
    "    str     r6, [r12, #4]\n"
    "    add     r12, r12, #8\n"
    "    subs    lr, lr, #4\n"
    "    bge     2b\n"
    "3:  adds    lr, lr, #4\n"
    "    beq     5f\n"
    "4:  ldrsb   r3, [r11]\n"
    "    add     r11, r11, r5\n"
    "    strh    r3, [r12], #2\n"
    "    subs    lr, lr, #1\n"
    "    bne     4b\n"
    "5:  ldr     r3, [r0, #20]\n"
    "    ldr     r4, [r0, #24]\n"
    "    ldr     r7, [r0, #12]\n"
    "    add     r1, r1, r3\n"
    "    add     r2, r2, r4\n"
    "    subs    r7, r7, #1\n"
    "    str     r7, [r0, #12]\n"
    "    bne     1b\n"
    "    pop     {r4-r11, pc}\n"
    "    .size   ekd_plane_fill_dsp, . - ekd_plane_fill_dsp\n"
    "    .text\n");

int32_t *ekd_col_pairs_dsp(const int8_t *src, int32_t n, int32_t *dst);
int32_t *ekd_col_rows_dsp(const int8_t *src, int32_t run, int32_t rows, int32_t row_step, int32_t *dst);
void ekd_col_gather_dsp(const int8_t *base, const int32_t *off, int32_t groups, int32_t *dst);

/* The convolution's columns (see ekd_conv_gemm_s8): whole-word runs of the window (one, or the
 * rows of a window inside the input), and the scattered bytes of a window through a table of
 * offsets (a first layer's few channels, or NCHW input), all widened by SXTB16 into the column's
 * slots. */
__asm__(
    "    .syntax unified\n"
    "    .thumb\n"
    /* n (r1, a multiple of 4) bytes from r0 into column slots at r2 (per group of 4: SXTB16 gives
     * (x0, x2) for word 0 and (x1, x3) for word 2; the next group is 4 words on); r0, r2 advance */
    "    .macro EKD_COL_RUN\n"
    "    tst     r1, #4\n"
    "    beq     1f\n"
    "    ldr     r3, [r0], #4\n"
    "    sxtb16  r4, r3\n"
    "    sxtb16  r3, r3, ror #8\n"
    "    str     r4, [r2]\n"
    "    str     r3, [r2, #8]\n"
    "    add     r2, r2, #16\n"
    "1:  tst     r1, #8\n"
    "    beq     2f\n"
    "    ldr     r3, [r0], #4\n"
    "    ldr     r5, [r0], #4\n"
    "    sxtb16  r4, r3\n"
    "    sxtb16  r3, r3, ror #8\n"
    "    sxtb16  r6, r5\n"
    "    sxtb16  r5, r5, ror #8\n"
    "    str     r4, [r2]\n"
    "    str     r3, [r2, #8]\n"
    "    str     r6, [r2, #16]\n"
    "    str     r5, [r2, #24]\n"
    "    add     r2, r2, #32\n"
    "2:  bics    r12, r1, #15\n"
    "    beq     4f\n"
    "3:  ldr     r3, [r0], #4\n"
    "    ldr     r5, [r0], #4\n"
    "    ldr     r7, [r0], #4\n"
    "    ldr     r9, [r0], #4\n"
    "    sxtb16  r4, r3\n"
    "    sxtb16  r3, r3, ror #8\n"
    "    sxtb16  r6, r5\n"
    "    sxtb16  r5, r5, ror #8\n"
    "    sxtb16  r8, r7\n"
    "    sxtb16  r7, r7, ror #8\n"
    "    sxtb16  r10, r9\n"
    "    sxtb16  r9, r9, ror #8\n"
    "    str     r4, [r2]\n"
    "    str     r3, [r2, #8]\n"
    "    str     r6, [r2, #16]\n"
    "    str     r5, [r2, #24]\n"
    "    str     r8, [r2, #32]\n"
    "    str     r7, [r2, #40]\n"
    "    str     r10, [r2, #48]\n"
    "    str     r9, [r2, #56]\n"
    "    add     r2, r2, #64\n"
    "    subs    r12, r12, #16\n"
    "    bne     3b\n"
    "4:\n"
    "    .endm\n"
    /* ekd_col_pairs_dsp(src, n, dst): one run; returns the next slot */
    "    .section .text.ekd_col_pairs_dsp,\"ax\",%progbits\n"
    "    .p2align 2\n"
    "    .global ekd_col_pairs_dsp\n"
    "    .type   ekd_col_pairs_dsp, %function\n"
    "    .thumb_func\n"
    "ekd_col_pairs_dsp:\n"
    "    push    {r4-r10}\n"
    "    EKD_COL_RUN\n"
    "    mov     r0, r2\n"
    "    pop     {r4-r10}\n"
    "    bx      lr\n"
    "    .size   ekd_col_pairs_dsp, . - ekd_col_pairs_dsp\n"
    /* ekd_col_rows_dsp(src, run, rows, row_step, dst): rows runs of run bytes, row_step apart (a
     * window inside the input, NHWC, whole-word runs) */
    "    .section .text.ekd_col_rows_dsp,\"ax\",%progbits\n"
    "    .p2align 2\n"
    "    .global ekd_col_rows_dsp\n"
    "    .type   ekd_col_rows_dsp, %function\n"
    "    .thumb_func\n"
    "ekd_col_rows_dsp:\n"
    "    push    {r4-r11, lr}\n"
    "    mov     r11, r2\n"
    "    sub     lr, r3, r1\n"               /* from a run's end to the next run */
    "    ldr     r2, [sp, #36]\n"
    "5:  EKD_COL_RUN\n"
    "    add     r0, r0, lr\n"
    "    subs    r11, r11, #1\n"
    "    bne     5b\n"
    "    pop     {r4-r11, pc}\n"
    "    .size   ekd_col_rows_dsp, . - ekd_col_rows_dsp\n"
    /* ekd_col_gather_dsp(base, off, groups, dst): groups x 4 taps of a window inside the input,
     * the bytes at base + off[t], paired as above */
    "    .section .text.ekd_col_gather_dsp,\"ax\",%progbits\n"
    "    .p2align 2\n"
    "    .global ekd_col_gather_dsp\n"
    "    .type   ekd_col_gather_dsp, %function\n"
    "    .thumb_func\n"
    "ekd_col_gather_dsp:\n"
    "    push    {r4-r7}\n"
    "1:  ldr     r4, [r1], #4\n"
    "    ldr     r5, [r1], #4\n"
    "    ldr     r6, [r1], #4\n"
    "    ldr     r7, [r1], #4\n"
    "    ldrsb   r4, [r0, r4]\n"
    "    ldrsb   r6, [r0, r6]\n"
    "    ldrsb   r5, [r0, r5]\n"
    "    ldrsb   r7, [r0, r7]\n"
    "    pkhbt   r4, r4, r6, lsl #16\n"
    "    pkhbt   r5, r5, r7, lsl #16\n"
    "    str     r4, [r3]\n"
    "    str     r5, [r3, #8]\n"
    "    add     r3, r3, #16\n"
    "    subs    r2, r2, #1\n"
    "    bne     1b\n"
    "    pop     {r4-r7}\n"
    "    bx      lr\n"
    "    .size   ekd_col_gather_dsp, . - ekd_col_gather_dsp\n"
    "    .text\n");

static int32_t ekd_dup16(int32_t v)
{
    return (int32_t)(((uint32_t)(uint16_t)v << 16) | (uint16_t)v);
}

static int32_t ekd_dup8(int32_t v)
{
    return (int32_t)((uint32_t)(uint8_t)v * 0x01010101u);
}

/* n raw int8 values (n % 4 == 0) widened by SXTB16: each group of 4 gives (x0,x2) at dst[0] and
 * (x1,x3) at dst[gap], the next group stride words further */
static int32_t *ekd_pairs(const int8_t *x, int32_t n, int32_t *dst, int32_t gap, int32_t stride)
{
    const int8_t *end = x + n;
    if (n & 4) {
        const int32_t v = ekd_read4(x);
        dst[0] = (int32_t)__sxtb16(v);
        dst[gap] = (int32_t)ekd_sxtb16_ror8(v);
        dst += stride;
        x += 4;
    }
    while (x < end) {   /* two words per pass: the loads pipeline */
        const int32_t v = ekd_read4(x), u = ekd_read4(x + 4);
        dst[0] = (int32_t)__sxtb16(v);
        dst[gap] = (int32_t)ekd_sxtb16_ror8(v);
        dst[stride] = (int32_t)__sxtb16(u);
        dst[stride + gap] = (int32_t)ekd_sxtb16_ror8(u);
        dst += 2 * stride;
        x += 8;
    }
    return dst;
}

static int32_t *ekd_pad_pairs(int32_t pair, int32_t n, int32_t *dst, int32_t gap, int32_t stride)
{
    int32_t i;
    for (i = 0; i < n; i += 4) {
        dst[0] = pair;
        dst[gap] = pair;
        dst += stride;
    }
    return dst;
}


/* one column of the 2-column block (NHWC input, in_c % 4 == 0): per group of 4 taps, words 0 and 2
 * (pixel 0) or 1 and 3 (pixel 1); every run of the (fy, fx, ic) order is whole words */
static void ekd_column_dsp(const ekd_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int32_t *col)
{
    const int32_t pad = ekd_dup16(-p->in_offset);
    int32_t *d = col;
#define EKD_RUN_DSP(src, n) d = ekd_col_pairs_dsp((src), (n), d)
#define EKD_PAD_DSP(n) d = ekd_pad_pairs(pad, (n), d, 2, 4)
    EKD_GATHER(p, in, oy, ox, EKD_RUN_DSP, EKD_PAD_DSP);
#undef EKD_RUN_DSP
#undef EKD_PAD_DSP
}

#else /* plain C */

/* The window of output pixel (oy, ox) as k_h * k_w * in_c raw bytes in (fy, fx, ic) order; a tap
 * in the padding reads the input zero point (see the folded-offset kernels). */
static void ekd_window_bytes(const ekd_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int8_t *dst)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, k_h = p->k_h, k_w = p->k_w;
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    const int8_t zp = (int8_t)(-p->in_offset);
    int32_t sy, sx, sc, fy, fx, c;
    ekd_in_strides(p, &sy, &sx, &sc);
    for (fy = 0; fy < k_h; ++fy) {
        const int32_t iy = iy0 + fy * dil_h;
        for (fx = 0; fx < k_w; ++fx) {
            const int32_t ix = ix0 + fx * dil_w;
            if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                const int8_t *src = in + iy * sy + ix * sx;
                for (c = 0; c < in_c; ++c) {
                    dst[c] = src[c * sc];
                }
            } else {
                for (c = 0; c < in_c; ++c) {
                    dst[c] = zp;
                }
            }
            dst += in_c;
        }
    }
}

/* raw receptive field as int16 (pad: the input zero point) */
static void ekd_column_plain(const ekd_conv_params *p, const int8_t *in, int32_t oy, int32_t ox, int16_t *col)
{
    const int16_t zp = (int16_t)(-p->in_offset);
    int16_t *d = col;
    int32_t i;
    if (p->in_planar) {   /* gathered as bytes at the column's end, then widened from the front */
        const int32_t k = p->k_h * p->k_w * p->in_c;
        int8_t *b = (int8_t *)(col + k) - k;
        ekd_window_bytes(p, in, oy, ox, b);
        for (i = 0; i < k; ++i) {
            d[i] = b[i];
        }
        return;
    }
#define EKD_RUN_PLAIN(src, n) do { for (i = 0; i < (n); ++i) d[i] = (src)[i]; d += (n); } while (0)
#define EKD_PAD_PLAIN(n) do { for (i = 0; i < (n); ++i) d[i] = zp; d += (n); } while (0)
    EKD_GATHER(p, in, oy, ox, EKD_RUN_PLAIN, EKD_PAD_PLAIN);
#undef EKD_RUN_PLAIN
#undef EKD_PAD_PLAIN
}

/* acc[j] += sum_k c_j[k] * w[k] for 2 columns; blocks of 16 keep a constant trip count so that
 * compilers vectorize it at -O2 */
static void ekd_dot2(const int16_t *c0, const int16_t *c1, const int8_t *w, int32_t n, int32_t acc[2])
{
    int32_t s0 = acc[0], s1 = acc[1], k = 0, j;
    for (; k + 16 <= n; k += 16) {
        int32_t t0 = 0, t1 = 0;
        for (j = 0; j < 16; ++j) {
            const int32_t v = w[k + j];
            t0 += c0[k + j] * v;
            t1 += c1[k + j] * v;
        }
        s0 += t0;
        s1 += t1;
    }
    for (; k < n; ++k) {
        const int32_t v = w[k];
        s0 += c0[k] * v;
        s1 += c1[k] * v;
    }
    acc[0] = s0;
    acc[1] = s1;
}

static int32_t ekd_dot1(const int16_t *c, const int8_t *w, int32_t n)
{
    int32_t s = 0, k = 0, j;
    for (; k + 16 <= n; k += 16) {
        int32_t t = 0;
        for (j = 0; j < 16; ++j) {
            t += c[k + j] * w[k + j];
        }
        s += t;
    }
    for (; k < n; ++k) {
        s += c[k] * w[k];
    }
    return s;
}

#endif

#if EKD_NN_USE_DSP

enum { EKD_COL_POINTWISE, EKD_COL_ROWS, EKD_COL_RUNS, EKD_COL_GATHER };

/* What building one pixel's column needs, computed once per layer. */
typedef struct {
    const ekd_conv_params *p;
    const int8_t *in;
    const int32_t *off;     /* EKD_COL_GATHER: the window's byte offsets */
    int8_t *bytes;          /* EKD_COL_GATHER: a border window's bytes */
    int32_t kind, sy, sx, stride_h, stride_w, pad_h, pad_w, iy_max, ix_max, in_h, in_w;
    int32_t run, rows, row_step, k, k4;
} ekd_col_ctx;

/* Output pixel (oy, ox)'s column into its slots, for a window over the border (or with dilated
 * rows): per filter row a pad, one run, a pad (NHWC, in_c % 4 == 0), run by run (dilated rows),
 * or as bytes through the offset table (gather). */
__attribute__((noinline)) static void ekd_column_border(const ekd_col_ctx *c, int32_t oy, int32_t ox, int32_t *col)
{
    const ekd_conv_params *p = c->p;
    const int32_t iy0 = oy * c->stride_h - c->pad_h, ix0 = ox * c->stride_w - c->pad_w;
    const int32_t dil_h = p->dil_h, dil_w = p->dil_w, k_h = p->k_h, k_w = p->k_w, in_c = p->in_c;
    int32_t fy, i;
    if (c->kind == EKD_COL_ROWS) {   /* over the border: per filter row a pad, one run, a pad */
        const int32_t pad = ekd_dup16(-p->in_offset);
        const int32_t fx0 = ix0 < 0 ? -ix0 : 0, fx1 = k_w < c->in_w - ix0 ? k_w : c->in_w - ix0;
        int32_t *d = col;
        for (fy = 0; fy < k_h; ++fy) {
            const int32_t iy = iy0 + fy * dil_h;
            if (iy < 0 || iy >= c->in_h || fx1 <= fx0) {
                d = ekd_pad_pairs(pad, c->run, d, 2, 4);
                continue;
            }
            if (fx0) {
                d = ekd_pad_pairs(pad, fx0 * in_c, d, 2, 4);
            }
            d = ekd_col_pairs_dsp(c->in + iy * c->sy + (ix0 + fx0) * c->sx, (fx1 - fx0) * in_c, d);
            if (fx1 < k_w) {
                d = ekd_pad_pairs(pad, (k_w - fx1) * in_c, d, 2, 4);
            }
        }
        return;
    }
    if (c->kind != EKD_COL_GATHER) {
        ekd_column_dsp(p, c->in, oy, ox, col);
        return;
    }
    {   /* over the border: the zero point everywhere, then the taps inside through the offsets
         * (locals: a store through int8_t * could alias the context) */
        const int32_t zp4 = ekd_dup8(-p->in_offset), in_h = c->in_h, in_w = c->in_w, k = c->k, k4 = c->k4;
        const int8_t *in = c->in;
        const int32_t origin = iy0 * c->sy + ix0 * c->sx;   /* the window's origin, maybe outside */
        const int32_t *off = c->off;
        int8_t *bytes = c->bytes;
        int32_t *w = (int32_t *)(void *)bytes;
        for (i = 0; i < k4; ++i) {
            w[i] = zp4;
        }
        /* the filter columns inside: fx0 <= fx < fx1 (dilation: the first and last inside) */
        const int32_t fx0 = ix0 < 0 ? (-ix0 + dil_w - 1) / dil_w : 0;
        const int32_t fx1 = ix0 + (k_w - 1) * dil_w < in_w ? k_w : ix0 >= in_w ? 0 : (in_w - 1 - ix0) / dil_w + 1;
        for (fy = 0; fy < k_h; ++fy) {
            const int32_t iy = iy0 + fy * dil_h, end = (fy * k_w + fx1) * in_c;
            if (iy < 0 || iy >= in_h) {
                continue;
            }
            for (i = (fy * k_w + fx0) * in_c; i < end; ++i) {
                bytes[i] = in[origin + off[i]];
            }
        }
        for (i = k; i < 4 * k4; ++i) {   /* zero taps to a multiple of 4 */
            bytes[i] = 0;
        }
        ekd_col_pairs_dsp(bytes, 4 * k4, col);
    }
}

/* Output pixel (oy, ox)'s column into its slots: a window inside the input by whole rows (NHWC,
 * in_c % 4 == 0, no horizontal dilation) or through the offset table, in one asm call. */
static inline void ekd_column(const ekd_col_ctx *c, int32_t oy, int32_t ox, int32_t *col)
{
    const int32_t iy0 = oy * c->stride_h - c->pad_h, ix0 = ox * c->stride_w - c->pad_w;
    if (c->kind != EKD_COL_RUNS && iy0 >= 0 && ix0 >= 0 && iy0 <= c->iy_max && ix0 <= c->ix_max) {
        const int8_t *base = c->in + iy0 * c->sy + ix0 * c->sx;
        if (c->kind == EKD_COL_ROWS) {
            ekd_col_rows_dsp(base, c->run, c->rows, c->row_step, col);
        } else {
            ekd_col_gather_dsp(base, c->off, c->k4, col);
        }
        return;
    }
    ekd_column_border(c, oy, ox, col);
}

void ekd_conv_gemm_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *rq,
                      int8_t *out, int32_t *scratch)
{
    const int32_t k = p->k_h * p->k_w * p->in_c, k4 = (k + 3) / 4;
    const int32_t out_w = p->out_w, out_c = p->out_c, npix = p->out_h * p->out_w;
    const int32_t lo = p->act_min, hi = p->act_max;
    int8_t *tmp = (int8_t *)(scratch + 4 * k4);        /* outputs of a last, partial group */
    int8_t *last = tmp + 4 * ((2 * out_c + 3) / 4);   /* a last block of fewer than 4 channels */
    int8_t *bytes = last + 8;                          /* a border window's bytes (gather) */
    int32_t *off = (int32_t *)(void *)(bytes + 4 * k4);   /* the window's byte offsets (gather) */
    const int32_t blocks = out_c / 4, rest = out_c % 4, steps = 2 * k4;
    const int full = lo == -128 && hi == 127;
    void (*gemm)(const ekd_gemm_job *) = !full ? ekd_gemm_4x2_clamp_dsp
                                         : p->out_offset == -128 ? ekd_gemm_4x2_sat_dsp : ekd_gemm_4x2_round_dsp;
    ekd_gemm_job job, tail;
    ekd_col_ctx cc;
    int32_t pix, j, oy = 0, ox = 0, sc;
    cc.p = p;
    cc.in = in;
    cc.off = off;
    cc.bytes = bytes;
    ekd_in_strides(p, &cc.sy, &cc.sx, &sc);
    cc.stride_h = p->stride_h;
    cc.stride_w = p->stride_w;
    cc.pad_h = p->pad_h;
    cc.pad_w = p->pad_w;
    cc.iy_max = p->in_h - 1 - (p->k_h - 1) * p->dil_h;   /* the last window origin inside */
    cc.ix_max = p->in_w - 1 - (p->k_w - 1) * p->dil_w;
    cc.in_h = p->in_h;
    cc.in_w = p->in_w;
    cc.run = p->k_w * p->in_c;
    cc.rows = p->k_h;
    cc.row_step = p->dil_h * cc.sy;
    cc.k = k;
    cc.k4 = k4;
    if (p->in_planar || (p->in_c & 3) != 0) {   /* a first layer's few channels or NCHW input */
        int32_t fy, fx, c, t = 0;
        cc.kind = EKD_COL_GATHER;
        for (fy = 0; fy < p->k_h; ++fy) {
            for (fx = 0; fx < p->k_w; ++fx) {
                for (c = 0; c < p->in_c; ++c) {
                    off[t++] = fy * p->dil_h * cc.sy + fx * p->dil_w * cc.sx + c * sc;
                }
            }
        }
        for (; t < 4 * k4; ++t) {   /* taps past K have zero weights: any byte of the window */
            off[t] = 0;
        }
    } else if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0
               && p->pad_w == 0 && p->in_h == p->out_h && p->in_w == p->out_w) {
        cc.kind = EKD_COL_POINTWISE;   /* a 1x1 kernel over every pixel: the column is the pixel */
    } else {
        cc.kind = p->dil_w == 1 ? EKD_COL_ROWS : EKD_COL_RUNS;
    }
    job.cols = scratch;
    job.w = (const int32_t *)(const void *)w;
    job.rq = rq;
    job.out_stride = out_c;
    job.steps = steps;
    job.blocks = blocks;
    job.lo4 = ekd_dup8(lo);
    job.hi4 = ekd_dup8(hi);
    tail = job;
    tail.w = job.w + 4 * steps * blocks;
    tail.rq = rq + 4 * EKD_RQ_WORDS * blocks;
    tail.out = last;
    tail.out_stride = 4;
    tail.blocks = 1;
    for (pix = 0; pix < npix; pix += EKD_GEMM_PIXELS) {
        const int32_t n = npix - pix < EKD_GEMM_PIXELS ? npix - pix : EKD_GEMM_PIXELS;
        int8_t *dst = n == EKD_GEMM_PIXELS ? out + pix * out_c : tmp;
        if (cc.kind == EKD_COL_POINTWISE) {   /* a partial group computes a stale column into tmp */
            ekd_col_pairs_dsp(in + pix * k, 4 * k4, scratch);
            if (n == 2) {
                ekd_col_pairs_dsp(in + (pix + 1) * k, 4 * k4, scratch + 1);
            }
        } else {
            for (j = 0; j < n; ++j) {
                ekd_column(&cc, oy, ox, scratch + j);
                if (++ox == out_w) {
                    ox = 0;
                    ++oy;
                }
            }
        }
        if (blocks) {
            job.out = dst;
            gemm(&job);
        }
        if (rest) {
            gemm(&tail);
            for (j = 0; j < rest; ++j) {
                dst[4 * blocks + j] = last[j];
                dst[out_c + 4 * blocks + j] = last[4 + j];
            }
        }
        if (n < EKD_GEMM_PIXELS) {
            for (j = 0; j < n * out_c; ++j) {
                out[pix * out_c + j] = tmp[j];
            }
        }
    }
}

#else /* plain C */

void ekd_conv_gemm_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *rq,
                      int8_t *out, int32_t *scratch)
{
    const int32_t k = p->k_h * p->k_w * p->in_c, k4 = (k + 3) / 4;
    const int32_t out_w = p->out_w, out_c = p->out_c, npix = p->out_h * p->out_w;
    const int32_t lo = p->act_min, hi = p->act_max;
    int8_t *tmp = (int8_t *)(scratch + 4 * k4);        /* outputs of a last, partial group */
    int16_t *col = (int16_t *)scratch;                /* 2 columns of k int16 */
    int32_t pix, j, c;
    for (pix = 0; pix < npix; pix += EKD_GEMM_PIXELS) {
        const int32_t n = npix - pix < EKD_GEMM_PIXELS ? npix - pix : EKD_GEMM_PIXELS;
        int8_t *dst = n == EKD_GEMM_PIXELS ? out + pix * out_c : tmp;
        for (j = 0; j < n; ++j) {
            ekd_column_plain(p, in, (pix + j) / out_w, (pix + j) % out_w, col + j * k);
        }
        for (c = 0; c < out_c; ++c) {
            const int32_t *r = rq + EKD_RQ_WORDS * c;
            int32_t acc[2];
            acc[0] = acc[1] = r[3];
            if (n == 2) {
                ekd_dot2(col, col + k, w + c * k, k, acc);
            } else {
                acc[0] += ekd_dot1(col, w + c * k, k);
            }
            for (j = 0; j < n; ++j) {
                dst[j * out_c + c] = (int8_t)ekd_rq_out(acc[j], r, lo, hi);
            }
        }
        if (n < EKD_GEMM_PIXELS) {
            for (j = 0; j < n * out_c; ++j) {
                out[pix * out_c + j] = tmp[j];
            }
        }
    }
}

#endif

void ekd_fc_gemv_s8(const ekd_fc_params *p, const int8_t *in, const int8_t *w, const int32_t *rq, int8_t *out,
                    int32_t *scratch)
{
    const int32_t in_n = p->in_n, out_n = p->out_n, rows = p->rows, lo = p->act_min, hi = p->act_max;
    int32_t r, i;
#if EKD_NN_USE_DSP
    const int32_t k4 = (in_n + 3) / 4, blocks = out_n / 4, rest = out_n % 4;
    ekd_gemv_job job;
    int8_t last[4];
    job.x = scratch;
    job.steps = k4;
    job.lo4 = ekd_dup8(lo);
    job.hi4 = ekd_dup8(hi);
    for (r = 0; r < rows; ++r) {
        const int8_t *x = in + r * in_n;
        int8_t *y = out + r * out_n;
        int32_t *d = ekd_pairs(x, in_n & ~3, scratch, 1, 2);
        if (in_n & 3) {
            int8_t t[4] = {0, 0, 0, 0};
            for (i = 0; i < (in_n & 3); ++i) {
                t[i] = x[(in_n & ~3) + i];
            }
            ekd_pairs(t, 4, d, 1, 2);
        }
        job.w = w;
        job.rq = rq;
        if (blocks) {
            job.out = y;
            job.blocks = blocks;
            ekd_gemv_4x1_dsp(&job);
        }
        if (rest) {
            job.w = w + 16 * k4 * blocks;
            job.rq = rq + 4 * EKD_RQ_WORDS * blocks;
            job.out = last;
            job.blocks = 1;
            ekd_gemv_4x1_dsp(&job);
            for (i = 0; i < rest; ++i) {
                y[4 * blocks + i] = last[i];
            }
        }
    }
#else
    int16_t *x16 = (int16_t *)scratch;
    for (r = 0; r < rows; ++r) {
        const int8_t *x = in + r * in_n;
        int8_t *y = out + r * out_n;
        for (i = 0; i < in_n; ++i) {
            x16[i] = x[i];
        }
        for (i = 0; i < out_n; ++i) {
            const int32_t *q = rq + EKD_RQ_WORDS * i;
            y[i] = (int8_t)ekd_rq_out(q[3] + ekd_dot1(x16, w + i * in_n, in_n), q, lo, hi);
        }
    }
#endif
}

#if EKD_NN_USE_DSP

void ekd_dwconv3x3_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *rq,
                      int8_t *out, int32_t *scratch)
{
    /* w: a word saying whether the planes are transposed (the export transposes a narrow map so
     * that plane rows are long), then EKD_DW_REC_WORDS per channel; rq is not used */
    const int32_t *wv = (const int32_t *)(const void *)w;
    const int tr = wv[0] != 0;
    const int32_t ch = p->in_c, s = p->stride_h, lo = p->act_min, hi = p->act_max;
    const int32_t rows = tr ? p->out_w : p->out_h, cols = tr ? p->out_h : p->out_w;
    const int32_t pad_r = tr ? p->pad_w : p->pad_h, pad_c = tr ? p->pad_h : p->pad_w;
    const int32_t in_rows = tr ? p->in_w : p->in_h, in_cols = tr ? p->in_h : p->in_w;
    const int32_t in_row = tr ? ch : p->in_w * ch, in_col = tr ? p->in_w * ch : ch;   /* input bytes per plane row / column */
    const int32_t pw = EKD_DW3X3_PLANE_W(cols, s), ph = (rows - 1) * s + 3, plane_words = (pw * ph + 1) / 2;
    /* the input rows / columns that land in the plane (the rest is padding or never read) */
    const int32_t y0 = pad_r, y1 = pad_r + in_rows < ph ? pad_r + in_rows : ph;
    const int32_t x0 = pad_c, x1 = pad_c + in_cols < pw ? pad_c + in_cols : pw;
    const int32_t lead = x0 & 1, pairs = x1 > x0 + lead ? (x1 - x0 - lead) / 2 : 0;   /* word-aligned pairs */
    const int32_t trail = x1 > x0 + lead + 2 * pairs;                                    /* a last odd column */
    const int32_t planes = ch >= 4 ? 4 : 1, zp2 = ekd_dup16(-p->in_offset);
    const int mode = lo != -128 || hi != 127 ? 2 : p->out_offset == -128 ? 0 : 1;
    static void (*const kernels[6])(const ekd_dw_job *) = {
        ekd_dw3x3_s1_sat_dsp, ekd_dw3x3_s1_round_dsp, ekd_dw3x3_s1_clamp_dsp,
        ekd_dw3x3_s2_sat_dsp, ekd_dw3x3_s2_round_dsp, ekd_dw3x3_s2_clamp_dsp};
    void (*run)(const ekd_dw_job *) = kernels[3 * (s - 1) + mode];
    int16_t *plane = (int16_t *)scratch;
    ekd_dw_job job;
    int32_t c, i, y;
    for (i = 0; i < planes; ++i) {   /* the border (never filled) reads the input zero point */
        int32_t *q = scratch + i * plane_words, k;
        int16_t *h = (int16_t *)q;
        for (k = 0; k < (y0 * pw) / 2; ++k) {                       /* whole rows above (pw is even) */
            q[k] = zp2;
        }
        for (k = (y1 * pw) / 2; k < plane_words; ++k) {             /* whole rows below */
            q[k] = zp2;
        }
        for (y = y0; y < y1; ++y) {                                  /* left and right of the input */
            for (k = 0; k < x0; ++k) {
                h[y * pw + k] = (int16_t)zp2;
            }
            for (k = x1; k < pw; ++k) {
                h[y * pw + k] = (int16_t)zp2;
            }
        }
    }
    job.plane_bytes = 4 * plane_words;
    job.row_bytes = 2 * pw;
    job.rows = rows;
    job.groups = cols / 4;
    job.rem = cols % 4;
    job.out_step = tr ? p->out_w * ch : ch;
    job.out_row = tr ? ch : p->out_w * ch;
    job.stride = s;
    job.lo4 = ekd_dup8(lo);
    job.hi4 = ekd_dup8(hi);
    job.plane = plane;
    for (c = 0; c < ch; c += planes == 4 && c + 4 <= ch ? 4 : 1) {
        const int32_t n = planes == 4 && c + 4 <= ch ? 4 : 1;
        const int8_t *src = in + (y0 - pad_r) * in_row + c;   /* the first copied row, plane column pad_c */
        if (y1 > y0 && x1 > x0) {
            if (n == 4) {
                ekd_fill4_job fill;
                fill.src = src + (x0 - pad_c) * in_col;
                fill.dst = plane + y0 * pw + x0;
                fill.pairs = pairs;
                fill.rows = y1 - y0;
                fill.step = in_col;
                fill.src_row = in_row;
                fill.dst_row = 2 * pw;
                fill.plane_bytes = 4 * plane_words;
                fill.lead = lead;
                fill.trail = trail;
                ekd_plane_fill4_dsp(&fill);
            } else {
                ekd_fill_job fill;
                fill.src = src + (x0 - pad_c) * in_col;
                fill.dst = plane + y0 * pw + x0;
                fill.n = x1 - x0;
                fill.rows = y1 - y0;
                fill.step = in_col;
                fill.src_row = in_row;
                fill.dst_row = 2 * pw;
                ekd_plane_fill_dsp(&fill);
            }
        }
        job.rec = wv + 1 + EKD_DW_REC_WORDS * c;
        job.out = out + c;
        job.channels = n;
        run(&job);
    }
    (void)rq;
}

#else

void ekd_dwconv3x3_s8(const ekd_conv_params *p, const int8_t *in, const int8_t *w, const int32_t *rq,
                      int8_t *out, int32_t *scratch)
{
    const int32_t in_h = p->in_h, in_w = p->in_w, ch = p->in_c, out_h = p->out_h, out_w = p->out_w;
    const int32_t s = p->stride_h, pad_t = p->pad_h, pad_l = p->pad_w, lo = p->act_min, hi = p->act_max;
    const int32_t pw = EKD_DW3X3_PLANE_W(out_w, s), ph = (out_h - 1) * s + 3;
    /* the input rows / columns that land in the plane (the rest is padding or never read) */
    const int32_t y0 = pad_t, y1 = pad_t + in_h < ph ? pad_t + in_h : ph;
    const int32_t x0 = pad_l, x1 = pad_l + in_w < pw ? pad_l + in_w : pw;
    const int16_t zp = (int16_t)(-p->in_offset);
    int16_t *plane = (int16_t *)scratch;
    int32_t c, y;
    for (y = 0; y < ph * pw; ++y) {   /* the border reads the input zero point, for every channel */
        plane[y] = zp;
    }
    for (c = 0; c < ch; ++c) {
        const int32_t *r = rq + EKD_RQ_WORDS * c;
        int8_t *o = out + c;
        int32_t x;
        for (y = y0; y < y1; ++y) {
            const int8_t *src = in + ((y - pad_t) * in_w + (x0 - pad_l)) * ch + c;
            int16_t *dst = plane + y * pw;
            for (x = x0; x < x1; ++x) {
                dst[x] = *src;
                src += ch;
            }
        }
        for (y = 0; y < out_h; ++y) {
            for (x = 0; x < out_w; ++x) {
                const int16_t *q = plane + y * s * pw + x * s;
                const int8_t *wc = w + c;
                int32_t acc = r[3], fy;
                for (fy = 0; fy < 3; ++fy) {
                    acc += q[0] * wc[0] + q[1] * wc[ch] + q[2] * wc[2 * ch];
                    q += pw;
                    wc += 3 * ch;
                }
                *o = (int8_t)ekd_rq_out(acc, r, lo, hi);
                o += ch;
            }
        }
    }
}

#endif

#if EKD_NN_USE_DSP

typedef struct {
    const int8_t *a;        /* 0 */
    const int8_t *b;        /* 4 */
    const int32_t *lut_a;   /* 8: the entry of value 0 (indexed by the signed value) */
    const int32_t *lut_b;   /* 12 */
    int8_t *out;            /* 16 */
    int32_t n;              /* 20: elements, a multiple of 4, >= 4 */
    int32_t m, r, rnd;      /* 24, 28, 32: the output's requantization */
    int32_t lo4, hi4;       /* 36, 40: activation clamp in all four bytes */
} ekd_add_job;

typedef char ekd_check_add_job[(offsetof(ekd_add_job, hi4) == 40 && offsetof(ekd_add_job, rnd) == 32) ? 1 : -1];

void ekd_add_lut_sat_dsp(const ekd_add_job *job);
void ekd_add_lut_round_dsp(const ekd_add_job *job);
void ekd_add_lut_clamp_dsp(const ekd_add_job *job);

/* Four elements per pass: a word of each input, each byte SXTB'd into its (doubled) table entry,
 * the sum requantized as in the GEMM's epilogues and packed back into a word. */
__asm__(
    "    .syntax unified\n"
    "    .thumb\n"
    /* one element: byte k of A and B through the tables, their sum requantized into byte k of r11 */
    "    .macro EKD_ADD1 rot, pos, mode\n"
    "    .if \\rot == 0\n"
    "    sxtb    r12, r4\n"
    "    sxtb    lr, r5\n"
    "    .else\n"
    "    sxtb    r12, r4, ror #\\rot\n"
    "    sxtb    lr, r5, ror #\\rot\n"
    "    .endif\n"
    "    ldr     r12, [r2, r12, lsl #2]\n"
    "    ldr     lr, [r3, lr, lsl #2]\n"
    "    add     r12, r12, lr\n"
    "    .if \\mode == 0\n"
    "    smmlar  r12, r12, r8, r10\n"
    "    .else\n"
    "    smmlar  lr, r12, r8, r10\n"
    "    add     r12, lr, r12, asr #31\n"
    "    .endif\n"
    "    asr     r12, r12, r9\n"
    "    ssat    r12, #8, r12\n"
    "    .if \\pos == 0\n"
    "    mov     r11, r12\n"
    "    .else\n"
    "    bfi     r11, r12, #\\pos, #8\n"
    "    .endif\n"
    "    .endm\n"
    "    .macro EKD_ADDLUT name, mode\n"
    "    .section .text.\\name,\"ax\",%progbits\n"
    "    .p2align 2\n"
    "    .global \\name\n"
    "    .type   \\name, %function\n"
    "    .thumb_func\n"
    "\\name:\n"
    "    push    {r4-r11, lr}\n"
    "    sub     sp, sp, #8\n"
    "    ldr     r7, [r0, #36]\n"
    "    ldr     r4, [r0, #40]\n"
    "    str     r7, [sp, #0]\n"
    "    str     r4, [sp, #4]\n"
    "    ldr     r1, [r0, #4]\n"
    "    ldr     r2, [r0, #8]\n"
    "    ldr     r3, [r0, #12]\n"
    "    ldr     r6, [r0, #16]\n"
    "    ldr     r7, [r0, #20]\n"
    "    ldr     r8, [r0, #24]\n"
    "    ldr     r9, [r0, #28]\n"
    "    ldr     r10, [r0, #32]\n"
    "    ldr     r0, [r0, #0]\n"
    "    add     r7, r6, r7\n"               /* the output's end */
    "1:  ldr     r4, [r0], #4\n"
    "    ldr     r5, [r1], #4\n"
    "    EKD_ADD1 0, 0, \\mode\n"
    "    EKD_ADD1 8, 8, \\mode\n"
    "    EKD_ADD1 16, 16, \\mode\n"
    "    EKD_ADD1 24, 24, \\mode\n"
    "    .if \\mode == 2\n"
    "    ldr     r12, [sp, #0]\n"
    "    ldr     lr, [sp, #4]\n"
    "    ssub8   r4, r11, r12\n"
    "    sel     r11, r11, r12\n"
    "    ssub8   r4, lr, r11\n"
    "    sel     r11, r11, lr\n"
    "    .endif\n"
    "    str     r11, [r6], #4\n"
    "    cmp     r6, r7\n"
    "    bne     1b\n"
    "    add     sp, sp, #8\n"
    "    pop     {r4-r11, pc}\n"
    "    .size   \\name, . - \\name\n"
    "    .endm\n"
    "    EKD_ADDLUT ekd_add_lut_sat_dsp, 0\n"
    "    EKD_ADDLUT ekd_add_lut_round_dsp, 1\n"
    "    EKD_ADDLUT ekd_add_lut_clamp_dsp, 2\n"
    "    .text\n");

#endif

void ekd_add_lut_s8(const ekd_add_params *p, const int8_t *a, const int8_t *b, const int32_t *lut,
                    const int32_t *rq, int8_t *out)
{
    /* DSP: the tables hold twice TFLite's rescaled values (the doubled accumulator SMMLAR needs) */
    const int32_t size = p->size, lo = p->act_min, hi = p->act_max;
    const int32_t *lut_a = lut + 128, *lut_b = lut + 384;
    int32_t i = 0;
#if EKD_NN_USE_DSP
    const int full = lo == -128 && hi == 127;
    ekd_add_job job;
    job.a = a;
    job.b = b;
    job.lut_a = lut_a;
    job.lut_b = lut_b;
    job.out = out;
    job.n = size & ~3;
    job.m = rq[0];
    job.r = rq[1];
    job.rnd = rq[2];
    job.lo4 = ekd_dup8(lo);
    job.hi4 = ekd_dup8(hi);
    if (job.n) {
        (!full ? ekd_add_lut_clamp_dsp : p->out_offset == -128 ? ekd_add_lut_sat_dsp : ekd_add_lut_round_dsp)(&job);
    }
    for (i = job.n; i < size; ++i) {
        out[i] = (int8_t)ekd_rq_out((lut_a[a[i]] + lut_b[b[i]]) / 2, rq, lo, hi);
    }
#else
    for (; i < size; ++i) {
        out[i] = (int8_t)ekd_rq_out(lut_a[a[i]] + lut_b[b[i]], rq, lo, hi);
    }
#endif
}
