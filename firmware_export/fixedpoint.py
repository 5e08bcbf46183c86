"""TFLite's and gemmlowp's integer arithmetic in Python, exact (numpy int64 on int32 values).

The native C target uses it at export time to tabulate int8 -> int8 activations: an elementwise
int8 operator is a function of its 256 possible inputs, so LOGISTIC, TANH, HARD_SWISH and
LEAKY_RELU run on the device as one 256-byte table lookup per element, and the table holds what
TFLite Micro's int8 kernel computes for each input (its reference integer arithmetic, step by
step, below). Tests compare every table entry with TFLite Micro for many quantizations.

A Qm value (m integer bits) of int32 raw r is r / 2^(31 - m).
"""
from __future__ import annotations

import numpy as np

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1
I16_MIN, I16_MAX = -(1 << 15), (1 << 15) - 1


def _i64(x):
    return np.asarray(x, dtype=np.int64)


def wrap32(x):
    """Two's complement wrap-around to int32 (what a C cast of a wider value gives)."""
    return ((_i64(x) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a, b):
    """SaturatingRoundingDoublingHighMul: a * b / 2^31 rounded half away from zero (int32)."""
    a, b = _i64(a), _i64(b)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.abs(ab + nudge) // (1 << 31) * np.sign(ab + nudge)  # C++ integer division truncates
    return np.where((a == I32_MIN) & (b == I32_MIN), I32_MAX, q)


def rdbpot(x, exponent: int):
    """RoundingDivideByPOT: x / 2^exponent rounded half away from zero."""
    x = _i64(x)
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def sat_shl(x, exponent: int):
    """x * 2^exponent saturated to int32 (SaturatingRoundingMultiplyByPOT, positive exponent)."""
    x = _i64(x)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, I32_MAX, np.where(x < -threshold, I32_MIN, x * (1 << exponent)))


def mbqm(x, multiplier: int, shift: int):
    """MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^shift / 2^31."""
    left, right = max(shift, 0), max(-shift, 0)
    return rdbpot(srdhm(wrap32(_i64(x) * (1 << left)), multiplier), right)


def _newton_reciprocal_q2(a):
    """Three Newton steps for 2 / (1 + a), a in [0, 1) as Q0; result Q2."""
    total = _i64(a) + I32_MAX
    half = np.abs(total + np.where(total >= 0, 1, -1)) // 2 * np.sign(total)  # RoundingHalfSum
    x = 1515870810 + srdhm(half, -1010580540)
    for _ in range(3):
        x = x + sat_shl(srdhm(x, (1 << 29) - srdhm(half, x)), 2)
    return x


def one_over_one_plus_x(a):
    return sat_shl(_newton_reciprocal_q2(a), 1)


def one_minus_x_over_one_plus_x(a):
    return sat_shl(_newton_reciprocal_q2(a) - (1 << 29), 2)


def _exp_quarter(a):
    """exp(a) for a in [-1/4, 0), Q0: Taylor expansion around -1/8."""
    c, third = 1895147668, 715827883
    x = _i64(a) + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    poly = rdbpot(srdhm(rdbpot(x4, 2) + x3, third) + x2, 1)
    return c + srdhm(c, x + poly)


_EXP_FACTORS = (1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242)  # exp(-2^k), k=-2..4


def exp_on_negative_values(a, integer_bits: int):
    """exp(a) for a <= 0 held with integer_bits integer bits (4 or 5); Q0 result."""
    a = _i64(a)
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter
    remainder = a_mod - a
    result = _exp_quarter(sat_shl(a_mod, integer_bits))
    for k, factor in enumerate(_EXP_FACTORS):
        exponent = k - 2
        if integer_bits > exponent:
            result = np.where(remainder & (1 << (frac + exponent)), srdhm(result, factor), result)
    return np.where(a == 0, I32_MAX, result)


def logistic_q4(a):
    a = _i64(a)
    positive = one_over_one_plus_x(exp_on_negative_values(-np.abs(a), 4))
    return np.where(a == 0, 1 << 30, np.where(a > 0, positive, I32_MAX - positive))


def tanh_q4(a):
    a = _i64(a)
    t = one_minus_x_over_one_plus_x(exp_on_negative_values(-np.abs(a), 5))  # -|a| as Q5 is -2|a| as Q4
    return np.where(a == 0, 0, np.where(a < 0, -t, t))


INT8_VALUES = np.arange(-128, 128, dtype=np.int64)


def _to_int8(v):
    return np.clip(v, -128, 127).astype(np.int8)


def logistic_table(in_zero_point, radius, multiplier, shift) -> np.ndarray:
    """TFLite Micro's int8 LOGISTIC (reference_integer_ops::Logistic) for every int8 input."""
    x = INT8_VALUES - in_zero_point
    inside = _to_int8(rdbpot(logistic_q4(mbqm(x, multiplier, shift)), 23) - 128)
    return np.where(x <= -radius, -128, np.where(x >= radius, 127, inside)).astype(np.int8)


def tanh_table(in_zero_point, radius, multiplier, shift) -> np.ndarray:
    """TFLite Micro's int8 TANH (reference_integer_ops::Tanh) for every int8 input."""
    x = INT8_VALUES - in_zero_point
    inside = _to_int8(rdbpot(tanh_q4(mbqm(x, multiplier, shift)), 24))
    return np.where(x <= -radius, -128, np.where(x >= radius, 127, inside)).astype(np.int8)


def _srdhm16(a, b):
    ab = _i64(a) * _i64(b)
    v = ab + np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    q = np.abs(v) // (1 << 15) * np.sign(v)
    return np.where((_i64(a) == I16_MIN) & (_i64(b) == I16_MIN), I16_MAX, q)


def _sdhm16(a, b):
    ab = _i64(a) * _i64(b)
    q = np.abs(ab) // (1 << 15) * np.sign(ab)
    return np.where((_i64(a) == I16_MIN) & (_i64(b) == I16_MIN), I16_MAX, q)


def hard_swish_table(in_zero_point, out_zero_point, out_mult16, out_exp, reluish_mult16, reluish_exp) -> np.ndarray:
    """TFLite's int8 HARD_SWISH (reference_ops::HardSwish, 16-bit fixed point) for every int8 input."""
    hires = (INT8_VALUES - in_zero_point) * 128
    preshift = _srdhm16(hires, out_mult16)
    r = hires
    if reluish_exp > 0:
        r = np.clip(r * (1 << (reluish_exp - 1)), I16_MIN, I16_MAX)
    r = _srdhm16(r, reluish_mult16)
    if reluish_exp > 0:
        r = np.clip(r * 2, I16_MIN, I16_MAX)
    if reluish_exp < 0:
        r = rdbpot(r, -reluish_exp)
    r = (r + (1 << 15)) >> 1
    v = rdbpot(_sdhm16(r, preshift), -out_exp) + out_zero_point
    v = ((v + (1 << 15)) & 0xFFFF) - (1 << 15)  # TFLite adds the zero point in int16
    return _to_int8(v)


def leaky_relu_table(in_zero_point, out_zero_point, identity_mult, identity_shift, alpha_mult, alpha_shift,
                     alpha_negative) -> np.ndarray:
    """TFLite's int8 LEAKY_RELU (reference_ops::QuantizeLeakyRelu) for every int8 input."""
    x = INT8_VALUES - in_zero_point
    negative = mbqm(x, alpha_mult, alpha_shift)
    negative = -negative if alpha_negative else negative
    return _to_int8(out_zero_point + np.where(x >= 0, mbqm(x, identity_mult, identity_shift), negative))
