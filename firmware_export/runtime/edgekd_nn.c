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
            for (c = 0; c < ch; ++c) {
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
