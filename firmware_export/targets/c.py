"""Native C target: generate ``{name}.h``/``{name}.c`` from a fully integer int8 .tflite.

The generated code runs the same quantized graph as the .tflite (same weights, biases, scales and
zero points) through the hand-written runtime in ``firmware_export/runtime`` (edgekd_nn.c/.h for
convolution, fully connected and pooling; edgekd_nn_ops.c/.h for softmax, logistic, tanh, hard
swish, leaky relu, mean, broadcasting mul/add/sub and concatenation), whose arithmetic is TFLite's
reference integer arithmetic, so outputs are bit-identical to TFLite Micro (and, for the ops both
share, to LiteRT with ``OpResolverType.BUILTIN_REF``). Everything that needs float (fixed-point
multipliers and shifts, activation clamps, padding) is computed here, at export time.

C ABI of ``{name}.h`` (one input, one output)::

    #define {NAME}_INPUT_SIZE / _OUTPUT_SIZE / _ARENA_SIZE / _MACS / _NUM_INPUTS / _NUM_OUTPUTS
    #define {NAME}_INPUT_ZERO_POINT / _OUTPUT_ZERO_POINT  (scales as float macros, unused by C)
    int {name}_invoke(const int8_t *input, int8_t *output);   /* 0 on success */
    static inline void {name}_quantize_input(const float *x, int8_t *q);      /* firmware.c_io_helpers */
    static inline void {name}_dequantize_output(const int8_t *q, float *y);

The declarations sit inside ``extern "C"`` guards, so C++ includes the header as it is.

Several inputs or outputs: one pointer each, inputs first, then outputs, in the .tflite graph's
order, named input0, input1, ... / output0, output1, ...; the macros are indexed the same way
({NAME}_OUTPUT1_SIZE, {NAME}_OUTPUT1_ZERO_POINT, ...)::

    int {name}_invoke(const int8_t *input, int8_t *output0, int8_t *output1);
"""
from __future__ import annotations

import hashlib
import math
import re
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import cgen, fixedpoint
from ..errors import ExportError, UnsupportedOpError
from ..firmware import c_abi_doc, c_io_helpers
from ..tflite_reader import Graph, Operator, Tensor, read_tflite
from .arena import (ELEMENTWISE_OVERLAP, ArenaPlan, channel_planes_overlap, gathered_groups_overlap,  # noqa: F401
                    plan_arena, rows_overlap, window_overlap)

RUNTIME_DIR = Path(__file__).resolve().parent.parent / "runtime"
RUNTIME_FILES = ("edgekd_nn.h", "edgekd_nn.c", "edgekd_nn_ops.h", "edgekd_nn_ops.c")
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic")

RESHAPE_OPS = ("RESHAPE", "SQUEEZE", "EXPAND_DIMS")
SUPPORTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D",
                 "ADD", "SUB", "MUL", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH", "LOGISTIC", "TANH", "SOFTMAX",
                 "MEAN", "CONCATENATION", "RESIZE_NEAREST_NEIGHBOR", "QUANTIZE", "TRANSPOSE", "PAD", "PADV2"
                 ) + RESHAPE_OPS
_ACT = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


# ---- export-time quantization arithmetic (TFLite's quantization_util / kernel_util) --------------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """Q31 multiplier and power-of-two shift with real = m * 2^shift / 2^31 (TFLite QuantizeMultiplier)."""
    if real == 0.0:
        return 0, 0
    if not math.isfinite(real) or real < 0:
        raise ExportError(f"cannot quantize the multiplier {real!r}: expected a finite non-negative scale ratio")
    q, shift = math.frexp(real)
    q_fixed = math.floor(q * (1 << 31) + 0.5)  # std::round, exact for q in [0.5, 1)
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return int(q_fixed), int(shift)


def mbqm(x: int, multiplier: int, shift: int) -> int:
    """TFLite's MultiplyByQuantizedMultiplier on Python ints (int32 inputs): left shift, saturating
    rounding doubling high multiply, rounding divide by a power of two (ties away from zero)."""
    left, right = max(shift, 0), max(-shift, 0)
    x = int(x) * (1 << left)
    if x == multiplier == -(1 << 31):
        high = (1 << 31) - 1
    else:
        high = (x * int(multiplier) + (1 << 30)) >> 31
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (1 if high < 0 else 0)
    return (high >> right) + (1 if (high & mask) > threshold else 0)


def _round_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def _nearest_neighbor(i: int, in_size: int, out_size: int, align_corners: bool, half_pixel: bool) -> int:
    """Source index of output index i (TFLite's GetNearestNeighbor, its float32 arithmetic)."""
    f32 = np.float32
    if align_corners and out_size > 1:
        scale = f32(in_size - 1) / f32(out_size - 1)
    else:
        scale = f32(in_size) / f32(out_size)
    v = (f32(i) + f32(0.5 if half_pixel else 0.0)) * scale
    src = min(_round_away(float(v)) if align_corners else math.floor(float(v)), in_size - 1)
    return max(0, src) if half_pixel else src


def _q15(multiplier: int) -> int:
    """A Q31 multiplier rounded to Q15 (TFLite's DownScaleInt32ToInt16Multiplier, saturating)."""
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (multiplier + (1 << 15)) >> 16


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int]:
    """Clamp bounds of a fused activation in int8 output units (CalculateActivationRangeQuantized)."""
    def q(f):  # zero_point + round(f / scale), the division in float32 as in TFLite
        return int(zero_point) + _round_away(float(np.float32(f) / np.float32(scale)))

    name = _ACT.get(int(act))
    if name == "NONE":
        return -128, 127
    if name == "RELU":
        return max(-128, q(0.0)), 127
    if name == "RELU6":
        return max(-128, q(0.0)), min(127, q(6.0))
    if name == "RELU_N1_TO_1":
        return max(-128, q(-1.0)), min(127, q(1.0))
    raise ExportError(f"unsupported fused activation code {act} (supported: {sorted(_ACT.values())})")


def same_padding(in_size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """(output size, leading pad) for TFLite SAME padding (ComputePaddingHeightWidth)."""
    out = (in_size + stride - 1) // stride
    eff = (k - 1) * dilation + 1
    total = max(0, (out - 1) * stride + eff - in_size)
    return out, total // 2


def valid_out(in_size: int, k: int, stride: int, dilation: int) -> int:
    eff = (k - 1) * dilation + 1
    return (in_size - eff + stride) // stride


# ---- folded-offset kernels: export-time layouts and exactness proof -------------------------------

ACC_LIMIT = 1 << 30      # |acc| below this: doubling for SMMULR and the rounding stay within int32


def folded_requant(w2d, bias, zin: int, zout: int, mult, shift):
    """Per output channel ``[m, r, round, bias']`` for the runtime's folded-offset kernels
    (``EKD_RQ_WORDS``), or None where they would not be exact.

    ``bias' = bias - zin * sum(w)`` takes the input offset out of the MAC loop (a padded tap then
    reads ``zin``); every int8 input keeps ``|acc| <= |bias'| + 128 sum|w|``.
    """
    w = np.asarray(w2d, dtype=np.int64).reshape(len(mult), -1)
    b = np.zeros(len(w), np.int64) if bias is None else np.asarray(bias.data, np.int64).reshape(-1)
    folded = b - int(zin) * w.sum(1)
    return requant_records(mult, shift, zout, np.abs(folded) + 128 * np.abs(w).sum(1), folded)


def requant_records(mult, shift, zout: int, acc_max, bias):
    """``[m, r, 2^(r-1) + zout 2^r, bias]`` per channel, or None unless, for every channel, there is
    no left shift (``shift <= -1``), ``|acc| <= acc_max < 2^30`` and ``|t| + |round| + 1 < 2^31``
    for the high product ``t`` (then the runtime's single-shift requantization equals TFLite's)."""
    m, s = np.asarray(mult, np.int64), np.asarray(shift, np.int64)
    acc_max = np.broadcast_to(np.asarray(acc_max, np.int64), m.shape)
    if np.any(acc_max >= ACC_LIMIT) or np.any(s > -1) or np.any(s < -31) or np.any(m <= 0):
        return None
    r = -s
    rnd = (np.int64(1) << (r - 1)) + int(zout) * (np.int64(1) << r)
    t_max = ((acc_max * m + (1 << 30)) >> 31) + 1
    if np.any(t_max + np.abs(rnd) + 1 >= 1 << 31):
        return None
    return np.stack([m, r, rnd, np.broadcast_to(np.asarray(bias, np.int64), m.shape)], axis=1)


def rq_records(rq, multiple: int) -> np.ndarray:
    """Requantization records padded with inert channels to a multiple of ``multiple`` channels
    (the DSP kernels load whole channel blocks)."""
    pad = (-len(rq)) % multiple
    inert = np.tile(np.array([[0, 1, 0, 0]], np.int64), (pad, 1))
    return np.concatenate([rq, inert]) if pad else np.asarray(rq)


def _pad_to(a, axis, multiple):
    pad = (-a.shape[axis]) % multiple
    if not pad:
        return a
    widths = [(0, 0)] * a.ndim
    widths[axis] = (0, pad)
    return np.pad(a, widths)


def conv_weights_dsp(w2d) -> np.ndarray:
    """(out_c, K) int8 -> ekd_conv_gemm_s8's DSP order, as little-endian bytes of int16 values 2 w:
    blocks of 4 channels, groups of 4 taps, the steps (taps 0, 2) and (taps 1, 3), the block's 4
    channels' pairs (zero taps to a multiple of 4, zero rows to a multiple of 4 channels)."""
    w = _pad_to(_pad_to(np.asarray(w2d, np.int16), 1, 4), 0, 4) * 2
    blocks, k4 = w.shape[0] // 4, w.shape[1] // 4
    w = w.reshape(blocks, 4, k4, 2, 2)                      # (block, channel, group, tap pair, odd tap)
    return w.transpose(0, 2, 4, 1, 3).astype("<i2").reshape(-1).view(np.int8)


def fc_weights_dsp(w2d) -> np.ndarray:
    """(out_n, in_n) int8 -> ekd_fc_gemv_s8's DSP order: blocks of 4 rows, steps of 4 inputs, the
    block's four 4-byte groups (zero padded)."""
    w = _pad_to(_pad_to(np.asarray(w2d, np.int8), 1, 4), 0, 4)
    blocks, k4 = w.shape[0] // 4, w.shape[1] // 4
    return w.reshape(blocks, 4, k4, 4).transpose(0, 2, 1, 3).reshape(-1)


def dw3x3_transposed(out_h: int, out_w: int, stride: int) -> bool:
    """Whether ekd_dwconv3x3_s8's DSP planes run along the output's columns: its rows cost about 72
    cycles per group of 4 outputs (a last partial group as much) plus about 25 per row."""
    def cost(rows, cols):
        return rows * (72 * -(-cols // 4) + 25)
    return cost(out_w, out_h) < cost(out_h, out_w)


def dw3x3_weights_dsp(w, rq, transposed: bool) -> np.ndarray:
    """[1, 3, 3, C] int8 weights and per-channel ``[m, r, round, bias]`` -> ekd_dwconv3x3_s8's DSP
    array as bytes: the transposition word, then per channel the filter rows' int16 pairs
    (2 w0, 2 w1), (2 w1, 2 w2) (filter columns when transposed) and ``[m, r, round, 2 bias]``."""
    w = np.asarray(w, np.int64).reshape(3, 3, -1).transpose(2, 0, 1) * 2     # (C, fy, fx)
    if transposed:
        w = w.transpose(0, 2, 1)
    lo = np.stack([w[..., 0], w[..., 1]], axis=-1), np.stack([w[..., 1], w[..., 2]], axis=-1)
    pairs = np.stack(lo, axis=2)                                              # (C, row, pair, 2)
    words = (pairs[..., 0] & 0xFFFF) | ((pairs[..., 1] & 0xFFFF) << 16)       # (C, row, pair)
    words = np.where(words >= 1 << 31, words - (1 << 32), words).reshape(len(w), 6)
    rec = np.asarray(rq, np.int64) * np.array([1, 1, 1, 2])
    body = np.concatenate([words, rec], axis=1).reshape(-1)
    return np.concatenate([[int(transposed)], body]).astype("<i4").view(np.int8)


def dw3x3_scratch(out_h: int, out_w: int, stride: int, channels: int) -> int:
    """Bytes of scratch for ekd_dwconv3x3_s8: the DSP path's planes (4 when there are 4 channels or
    more, in its orientation) or the plain path's one plane, whichever is larger."""
    def planes(rows, cols, n):       # EKD_DW3X3_SCRATCH
        plane_w = stride * ((cols + 3) & ~3) + 2
        return 4 * n * ((plane_w * ((rows - 1) * stride + 3) + 1) // 2)
    rows, cols = (out_w, out_h) if dw3x3_transposed(out_h, out_w, stride) else (out_h, out_w)
    return max(planes(rows, cols, 4 if channels >= 4 else 1), planes(out_h, out_w, 1))


def conv_gemm_scratch(k: int, out_c: int, gather: bool = False) -> int:
    """Bytes of EKD_CONV_GEMM_SCRATCH(k, out_c, gather)."""
    return 20 * ((k + 3) // 4) + 4 * ((2 * out_c + 3) // 4) + 8 + (16 * ((k + 3) // 4) if gather else 0)


def fc_gemv_scratch(in_n: int) -> int:
    """Bytes of EKD_FC_GEMV_SCRATCH(in_n)."""
    return 8 * ((in_n + 3) // 4)


def _dsp_or_plain(name: str, dsp, plain, ctype: str = "int8_t") -> list:
    """One array in two layouts: the DSP kernels' (blocked order, int16 weights as bytes, doubled
    biases), or TFLite's for the plain build."""
    return ["#if EKD_NN_USE_DSP\n", cgen.array_declare(name, dsp, ctype, align=4), "#else\n",
            cgen.array_declare(name, plain, ctype, align=4), "#endif\n"]


# ---- lowering ----------------------------------------------------------------------------------

@dataclass
class _Step:
    """One emitted call: C statement template with {in0}/{in1}/{out} placeholders."""
    op: Operator
    layer: str
    call: str
    inputs: list            # activation tensor indices read
    output: int
    decls: list = field(default_factory=list)
    macs: int = 0
    alias: bool = False     # reshape-like: output shares the input's storage, no call
    scratch: int = 0        # bytes of arena scratch the kernel needs during this step only
    overlap: dict = field(default_factory=dict)   # input tensor -> allowed offset(out) - offset(in) (arena.py)


def _q1(t: Tensor, what: str, layer: str) -> tuple[float, int]:
    if t.scale is None:
        raise ExportError(f"layer {layer!r}: {what} tensor {t.name!r} is not quantized; the C target needs a fully integer int8 .tflite")
    if len(t.scale) != 1:
        raise ExportError(f"layer {layer!r}: {what} tensor {t.name!r} is per-channel quantized; expected per-tensor")
    return float(t.scale[0]), int(t.zero_point[0])


def _nhwc(t: Tensor, layer: str) -> tuple[int, int, int]:
    if len(t.shape) != 4 or t.shape[0] != 1:
        raise ExportError(f"layer {layer!r}: tensor {t.name!r} has shape {t.shape}; expected NHWC with batch 1")
    return t.shape[1], t.shape[2], t.shape[3]


def _shape4(shape) -> list:
    shape = list(shape)
    if len(shape) > 4:
        raise ExportError(f"tensors of rank {len(shape)} are not supported (at most 4)")
    return [1] * (4 - len(shape)) + shape


class _Lowering:
    def __init__(self, graph: Graph):
        self.g = graph
        self.steps: list[_Step] = []

    def ident(self, k: int, suffix: str) -> str:
        return cgen.check_identifier(f"op{k}_{suffix}")

    def layer_name(self, op: Operator) -> str:
        return _safe_text(self.g.tensors[op.outputs[0]].name if op.outputs else f"op{op.index}")

    def run(self) -> list:
        self.fused_pads = self._fusable_pads()
        self.fused_transposes = self._fusable_transposes()
        skip = {v[3] for v in self.fused_pads.values()} | {v[1] for v in self.fused_transposes.values()}
        for op in self.g.operators:
            layer = self.layer_name(op)
            if op.op in ("DEQUANTIZE", "QUANTIZE") and any(
                    self.g.tensors[i].dtype == "FLOAT32" for i in op.inputs + op.outputs if i >= 0):
                raise UnsupportedOpError(f"{op.op} (a float island: the quantizer left this layer in float; "
                                         "the C target needs a fully integer int8 graph)", layer, SUPPORTED_OPS)
            if op.op not in SUPPORTED_OPS:
                raise UnsupportedOpError(op.op, layer, SUPPORTED_OPS)
            for i in list(op.outputs) + [i for i in op.inputs if i >= 0 and not self.g.tensors[i].is_constant]:
                t = self.g.tensors[i]
                if t.dtype != "INT8":
                    raise UnsupportedOpError(f"{op.op} on {t.dtype}", layer, SUPPORTED_OPS)
            if op.index not in skip:
                getattr(self, "lower_" + op.op.lower())(op, layer)
        return self.steps

    def _readers(self) -> dict:
        """{tensor index: the operators reading it}."""
        readers: dict = {}
        for op in self.g.operators:
            for i in op.inputs:
                if i >= 0:
                    readers.setdefault(i, []).append(op)
        return readers

    def _fusable_pads(self) -> dict:
        """PAD ops whose only reader is a convolution: {padded tensor: (source tensor, top, left, pad op
        index)}. The convolution then reads the source with the extra padding (its padded taps read
        the zero point, which is the PAD's value), so neither the copy nor its buffer exist."""
        readers = self._readers()
        fused = {}
        for op in self.g.operators:
            if op.op not in ("PAD", "PADV2") or len(op.inputs) < 2:
                continue
            padded = op.outputs[0]
            users = readers.get(padded, [])
            if (padded in self.g.outputs or len(users) != 1 or users[0].op not in ("CONV_2D", "DEPTHWISE_CONV_2D")
                    or users[0].inputs[0] != padded):
                continue
            src, pads_t, dst = self.g.tensors[op.inputs[0]], self.g.tensors[op.inputs[1]], self.g.tensors[padded]
            if pads_t.data is None or len(src.shape) != 4 or src.scale is None or dst.scale is None:
                continue
            pads = pads_t.data.reshape(-1, 2).astype(int)
            if (pads.shape != (4, 2) or pads[0].any() or pads[3].any() or (pads < 0).any()
                    or not np.array_equal(src.scale, dst.scale) or not np.array_equal(src.zero_point, dst.zero_point)):
                continue
            if op.op == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
                value = self.g.tensors[op.inputs[2]].data
                if value is None or int(value.reshape(-1)[0]) != int(dst.zero_point[0]):
                    continue
            fused[padded] = (op.inputs[0], int(pads[1, 0]), int(pads[2, 0]), op.index)
        return fused

    def _fusable_transposes(self) -> dict:
        """NCHW -> NHWC TRANSPOSEs (perm 0, 2, 3, 1: a torch model's image input) whose only reader is
        a CONV_2D that runs on ekd_conv_gemm_s8, directly or through a PAD it fuses:
        {transposed tensor: (source tensor, op index)}. The convolution reads the NCHW source itself
        (in_planar), so neither the copy nor its buffer exist."""
        readers = self._readers()
        fused = {}
        for op in self.g.operators:
            if op.op != "TRANSPOSE" or len(op.inputs) < 2:
                continue
            out = op.outputs[0]
            users = readers.get(out, [])
            src, perm_t, dst = self.g.tensors[op.inputs[0]], self.g.tensors[op.inputs[1]], self.g.tensors[out]
            if len(users) == 1 and users[0].op in ("PAD", "PADV2") and users[0].outputs[0] in self.fused_pads:
                users = readers[users[0].outputs[0]]       # the fused PAD's convolution, reading it as input 0
                reads = True
            else:
                reads = len(users) == 1 and users[0].inputs[0] == out
            if (out in self.g.outputs or len(users) != 1 or users[0].op != "CONV_2D" or not reads
                    or perm_t.data is None or [int(v) for v in perm_t.data.reshape(-1)] != [0, 2, 3, 1]
                    or len(src.shape) != 4 or src.shape[0] != 1 or src.scale is None or dst.scale is None
                    or not np.array_equal(src.scale, dst.scale) or not np.array_equal(src.zero_point, dst.zero_point)
                    or not self._runs_on_gemm(users[0])):
                continue
            fused[out] = (op.inputs[0], op.index)
        return fused

    def _runs_on_gemm(self, op) -> bool:
        """Whether a CONV_2D gets ekd_conv_gemm_s8 (its requantization records exist, see _conv)."""
        inp, w, out = (self.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        if not w.is_constant or w.scale is None or inp.scale is None or out.scale is None or len(w.shape) != 4:
            return False
        try:
            mult, shift = self._per_channel(op, self.layer_name(op), inp, w, out, w.shape[0])
        except ExportError:
            return False
        return folded_requant(w.data.reshape(w.shape[0], -1), self._bias(op), int(inp.zero_point[0]),
                              int(out.zero_point[0]), mult, shift) is not None

    # conv-like ---------------------------------------------------------------------------------
    def _per_channel(self, op, layer, inp, w, out, n_out):
        s_in, _ = _q1(inp, "input", layer)
        s_out, _ = _q1(out, "output", layer)
        if w.scale is None:
            raise ExportError(f"layer {layer!r}: weights {w.name!r} are not quantized")
        if np.any(w.zero_point != 0):
            raise ExportError(f"layer {layer!r}: weights {w.name!r} have non-zero zero points; expected symmetric int8 weights")
        scales = w.scale if len(w.scale) > 1 else np.repeat(w.scale, n_out)
        if len(scales) != n_out:
            raise ExportError(f"layer {layer!r}: {len(scales)} weight scales for {n_out} output channels")
        if len(w.scale) == 1 and op.op == "FULLY_CONNECTED":
            # per-tensor FC: GetQuantizedConvolutionMultipler multiplies the scales in float32 first
            reals = [float(np.float32(s_in) * np.float32(s)) / float(np.float32(s_out)) for s in scales]
        else:
            reals = [float(np.float32(s_in)) * float(np.float32(s)) / float(np.float32(s_out)) for s in scales]
        ms = [quantize_multiplier(r) for r in reals]
        return [m for m, _ in ms], [s for _, s in ms]

    def _weights_decls(self, k, w, bias, mult, shift, n_out):
        if w.dtype != "INT8":
            raise ExportError(f"weights {w.name!r}: {w.dtype}; expected INT8")
        decls = [cgen.comment(f"weights of {_safe_text(w.name)}, shape {list(w.shape)}"),
                 cgen.array_declare(self.ident(k, "w"), w.data.reshape(-1), "int8_t")]
        bname = "NULL"
        if bias is not None:
            if bias.dtype != "INT32" or bias.data is None or bias.size != n_out:
                raise ExportError(f"bias {bias.name!r}: expected {n_out} constant INT32 values, got {bias.dtype} {bias.shape}")
            bname = self.ident(k, "b")
            decls.append(cgen.array_declare(bname, bias.data.reshape(-1), "int32_t"))
        decls.append(cgen.array_declare(self.ident(k, "mult"), mult, "int32_t"))
        decls.append(cgen.array_declare(self.ident(k, "shift"), shift, "int32_t"))
        return decls, bname

    def _bias(self, op):
        if len(op.inputs) > 2 and op.inputs[2] >= 0:
            return self.g.tensors[op.inputs[2]]
        return None

    def _conv(self, op, layer, depthwise):
        k = op.index
        inp, w, out = (self.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        if not w.is_constant:
            raise ExportError(f"layer {layer!r}: weights must be constant")
        ih, iw, ic = _nhwc(inp, layer)
        oh, ow, oc = _nhwc(out, layer)
        o = op.options
        sh, sw = int(o.get("strideH", 1)), int(o.get("strideW", 1))
        dh, dw = int(o.get("dilationHFactor", 1) or 1), int(o.get("dilationWFactor", 1) or 1)
        if depthwise:
            _, kh, kw, woc = w.shape
            dm = int(o.get("depthMultiplier", 1) or 1)
            if woc != oc or ic * dm != oc:
                dm = oc // ic
            if ic * dm != oc:
                raise ExportError(f"layer {layer!r}: depthwise output channels {oc} != input channels {ic} x multiplier")
        else:
            woc, kh, kw, wic = w.shape
            dm = 1
            if wic != ic or woc != oc:
                raise ExportError(f"layer {layer!r}: weights {w.shape} do not match input channels {ic} / output {oc}"
                                  " (grouped convolutions other than depthwise are not supported)")
        if int(o.get("padding", 0)) == 0:
            eoh, ph = same_padding(ih, kh, sh, dh)
            eow, pw = same_padding(iw, kw, sw, dw)
        else:
            eoh, eow, ph, pw = valid_out(ih, kh, sh, dh), valid_out(iw, kw, sw, dw), 0, 0
        if (eoh, eow) != (oh, ow):
            raise ExportError(f"layer {layer!r}: output {oh}x{ow} does not match the computed {eoh}x{eow}")
        src, planar = op.inputs[0], 0
        if src in self.fused_pads:     # read the PAD's input; its padding joins the convolution's
            src, top, left, _ = self.fused_pads[src]
            ih, iw, _ = _nhwc(self.g.tensors[src], layer)
            ph, pw = ph + top, pw + left
        if src in self.fused_transposes:   # read the NCHW tensor the TRANSPOSE would have copied
            src, planar = self.fused_transposes[src][0], 1
        _, zin = _q1(inp, "input", layer)
        s_out, zout = _q1(out, "output", layer)
        lo, hi = activation_range(o.get("fusedActivationFunction", 0), s_out, zout)
        mult, shift = self._per_channel(op, layer, inp, w, out, oc)
        if depthwise and ic == 1 and dh == 1 and dw == 1:
            # one input channel: the depthwise layer is an ordinary convolution; OHWI weights
            # [oc, kh, kw, 1] from [1, kh, kw, oc] give the same integer sums on the faster kernel
            w = Tensor(w.index, w.name, (oc, kh, kw, 1), w.dtype, w.scale, w.zero_point, 0,
                       np.ascontiguousarray(w.data.reshape(kh, kw, oc).transpose(2, 0, 1)[..., None]))
            depthwise, dm = False, 1
        pname = self.ident(k, "p")
        fields = dict(in_h=ih, in_w=iw, in_c=ic, out_h=oh, out_w=ow, out_c=oc, k_h=kh, k_w=kw, stride_h=sh,
                      stride_w=sw, dil_h=dh, dil_w=dw, pad_h=ph, pad_w=pw, depth_multiplier=dm,
                      in_offset=-zin, out_offset=zout, act_min=lo, act_max=hi, in_planar=planar)
        macs = oh * ow * oc * kh * kw * (1 if depthwise else ic)
        w_oc = w.data.reshape(kh * kw, oc).T if depthwise else w.data.reshape(oc, -1)   # (oc, taps)
        rq = folded_requant(w_oc, self._bias(op), zin, zout, mult, shift)
        if rq is not None and depthwise and (kh, kw, dm, dh, dw) == (3, 3, 1, 1, 1) and sh == sw and sh in (1, 2):
            decls = [cgen.comment(f"weights of {_safe_text(w.name)}, shape {list(w.shape)}; input zero point "
                                  "folded into the bias")]
            decls += _dsp_or_plain(self.ident(k, "w"), dw3x3_weights_dsp(w.data, rq, dw3x3_transposed(oh, ow, sh)),
                                   w.data.reshape(-1))
            decls += _dsp_or_plain(self.ident(k, "rq"), [0], rq.reshape(-1), "int32_t")   # in the DSP array
            decls.append(_struct("ekd_conv_params", pname, fields))
            call = (f"ekd_dwconv3x3_s8(&{pname}, {{in0}}, {self.ident(k, 'w')}, {self.ident(k, 'rq')}, {{out}}, "
                    "{scratch32});")
            self.steps.append(_Step(op, layer, call, [src], op.outputs[0], decls, macs,
                                    scratch=dw3x3_scratch(oh, ow, sh, oc),
                                    overlap={src: channel_planes_overlap(ih * iw, oh * ow, oc)}))
            return
        if rq is not None and not depthwise:
            kk = kh * kw * ic
            decls = [cgen.comment(f"weights of {_safe_text(w.name)}, shape {list(w.shape)}; input zero point "
                                  "folded into the bias")]
            decls += _dsp_or_plain(self.ident(k, "w"), conv_weights_dsp(w.data.reshape(oc, -1)), w.data.reshape(-1))
            rq4 = rq_records(rq, 4)
            decls += _dsp_or_plain(self.ident(k, "rq"), (rq4 * np.array([1, 1, 1, 2])).reshape(-1), rq4.reshape(-1),
                                   "int32_t")
            decls.append(_struct("ekd_conv_params", pname, fields))
            call = (f"ekd_conv_gemm_s8(&{pname}, {{in0}}, {self.ident(k, 'w')}, {self.ident(k, 'rq')}, {{out}}, "
                    "{scratch32});")
            self.steps.append(_Step(op, layer, call, [src], op.outputs[0], decls, macs,
                                    scratch=conv_gemm_scratch(kk, oc, gather=bool(planar) or ic % 4 != 0),
                                    overlap={} if planar else {src: gathered_groups_overlap(
                                        (ih, iw, ic), (oh, ow, oc), (sh, sw), (ph, pw), 2)}))
            return
        decls, bname = self._weights_decls(k, w, self._bias(op), mult, shift, oc)
        decls.append(_struct("ekd_conv_params", pname, fields))
        w_args = f"{self.ident(k, 'w')}, {bname}, {self.ident(k, 'mult')}, {self.ident(k, 'shift')}"
        if depthwise:
            call, scratch = f"ekd_dwconv2d_s8(&{pname}, {{in0}}, {w_args}, {{out}});", 0
        else:
            kk = kh * kw * ic
            call, scratch = f"ekd_conv2d_s8(&{pname}, {{in0}}, {w_args}, {{out}}, {{scratch}});", 4 * (kk + kk % 2)
        # the older forms: ekd_conv2d_s8 gathers 2 pixels into scratch first; ekd_dwconv2d_s8 shares nothing
        overlap = {} if depthwise else {src: gathered_groups_overlap((ih, iw, ic), (oh, ow, oc), (sh, sw), (ph, pw), 2)}
        self.steps.append(_Step(op, layer, call, [src], op.outputs[0], decls, macs, scratch=scratch, overlap=overlap))

    def lower_conv_2d(self, op, layer):
        self._conv(op, layer, depthwise=False)

    def lower_depthwise_conv_2d(self, op, layer):
        self._conv(op, layer, depthwise=True)

    def lower_fully_connected(self, op, layer):
        k = op.index
        inp, w, out = (self.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        if not w.is_constant or len(w.shape) != 2:
            raise ExportError(f"layer {layer!r}: fully connected weights must be a constant 2-D tensor")
        n_out, n_in = w.shape
        if inp.size % n_in or out.size != (inp.size // n_in) * n_out:
            raise ExportError(f"layer {layer!r}: input {inp.shape} / output {out.shape} do not fit weights {w.shape}")
        _, zin = _q1(inp, "input", layer)
        s_out, zout = _q1(out, "output", layer)
        lo, hi = activation_range(op.options.get("fusedActivationFunction", 0), s_out, zout)
        mult, shift = self._per_channel(op, layer, inp, w, out, n_out)
        pname = self.ident(k, "p")
        rows = inp.size // n_in
        params = _struct("ekd_fc_params", pname, dict(in_n=n_in, out_n=n_out, rows=rows, in_offset=-zin,
                                                       out_offset=zout, act_min=lo, act_max=hi))
        rq = folded_requant(w.data, self._bias(op), zin, zout, mult, shift)
        if rq is not None:
            decls = [cgen.comment(f"weights of {_safe_text(w.name)}, shape {list(w.shape)}; input zero point "
                                  "folded into the bias")]
            decls += _dsp_or_plain(self.ident(k, "w"), fc_weights_dsp(w.data), w.data.reshape(-1))
            decls += [cgen.array_declare(self.ident(k, "rq"), rq_records(rq, 4).reshape(-1), "int32_t", align=4),
                      params]
            call = f"ekd_fc_gemv_s8(&{pname}, {{in0}}, {self.ident(k, 'w')}, {self.ident(k, 'rq')}, {{out}}, {{scratch32}});"
            self.steps.append(_Step(op, layer, call, [op.inputs[0]], op.outputs[0], decls, rows * n_in * n_out,
                                    scratch=fc_gemv_scratch(n_in), overlap={op.inputs[0]: rows_overlap(rows, n_in, n_out)}))
            return
        decls, bname = self._weights_decls(k, w, self._bias(op), mult, shift, n_out)
        decls.append(params)
        call = (f"ekd_fc_s8(&{pname}, {{in0}}, {self.ident(k, 'w')}, {bname}, {self.ident(k, 'mult')}, "
                f"{self.ident(k, 'shift')}, {{out}}, {{scratch}});")
        self.steps.append(_Step(op, layer, call, [op.inputs[0]], op.outputs[0], decls, rows * n_in * n_out,
                                scratch=2 * n_in, overlap={op.inputs[0]: rows_overlap(rows, n_in, n_out)}))

    # pooling -----------------------------------------------------------------------------------
    def _pool(self, op, layer, fn):
        k = op.index
        inp, out = self.g.tensors[op.inputs[0]], self.g.tensors[op.outputs[0]]
        ih, iw, c = _nhwc(inp, layer)
        oh, ow, oc = _nhwc(out, layer)
        o = op.options
        kh, kw = int(o["filterHeight"]), int(o["filterWidth"])
        sh, sw = int(o.get("strideH", 1)), int(o.get("strideW", 1))
        if int(o.get("padding", 0)) == 0:
            eoh, ph = same_padding(ih, kh, sh, 1)
            eow, pw = same_padding(iw, kw, sw, 1)
        else:
            eoh, eow, ph, pw = valid_out(ih, kh, sh, 1), valid_out(iw, kw, sw, 1), 0, 0
        if (eoh, eow, c) != (oh, ow, oc):
            raise ExportError(f"layer {layer!r}: pool output {out.shape} does not match the computed {eoh}x{eow}x{c}")
        s_in, z_in = _q1(inp, "input", layer)
        s_out, z_out = _q1(out, "output", layer)
        if (np.float32(s_in), z_in) != (np.float32(s_out), z_out):
            raise ExportError(f"layer {layer!r}: pooling with different input/output quantization is not supported")
        lo, hi = activation_range(o.get("fusedActivationFunction", 0), s_out, z_out)
        pname = self.ident(k, "p")
        decls = [_struct("ekd_pool_params", pname, dict(in_h=ih, in_w=iw, c=c, out_h=oh, out_w=ow, k_h=kh, k_w=kw,
                                                         stride_h=sh, stride_w=sw, pad_h=ph, pad_w=pw,
                                                         act_min=lo, act_max=hi))]
        overlap = {op.inputs[0]: window_overlap((ih, iw, c), (oh, ow, c), (sh, sw), (ph, pw))}
        self.steps.append(_Step(op, layer, f"{fn}(&{pname}, {{in0}}, {{out}});", [op.inputs[0]], op.outputs[0], decls,
                                overlap=overlap))

    def lower_average_pool_2d(self, op, layer):
        self._pool(op, layer, "ekd_avgpool_s8")

    def lower_max_pool_2d(self, op, layer):
        self._pool(op, layer, "ekd_maxpool_s8")

    # elementwise -------------------------------------------------------------------------------
    def lower_add(self, op, layer):
        k = op.index
        a, b, out = (self.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        fields = self._addsub_fields(op, layer, subtract=False)
        if a.is_constant or b.is_constant or a.shape != b.shape or a.size != out.size:
            self._binary(op, layer, "ekd_addsub_s8", "ekd_addsub_params", fields)
            return
        del fields["in2_sign"]  # same shapes: the plain elementwise kernel (or its table form)
        pname = self.ident(k, "p")
        call, tables = self._add_call(k, pname, fields)
        decls = [_struct("ekd_add_params", pname, dict(size=out.size, **fields))] + tables
        self.steps.append(_Step(op, layer, call, [op.inputs[0], op.inputs[1]], op.outputs[0], decls,
                                overlap={op.inputs[0]: ELEMENTWISE_OVERLAP, op.inputs[1]: ELEMENTWISE_OVERLAP}))

    def _add_call(self, k, pname, fields):
        """The call of a same-shape ADD with ``ekd_add_params`` fields, and the tables it needs: each
        input's rescaling depends on its int8 value only, so a table of 256 per input computed here
        (ekd_add_lut_s8) where the output requantization allows the folded form, else ekd_add_s8."""
        ls = fields["left_shift"]
        lut = np.array([[mbqm((v + off) * (1 << ls), m, sh) for v in range(-128, 128)]
                        for off, m, sh in ((fields["in1_offset"], fields["in1_mult"], fields["in1_shift"]),
                                           (fields["in2_offset"], fields["in2_mult"], fields["in2_shift"]))], np.int64)
        rq = requant_records([fields["out_mult"]], [fields["out_shift"]], fields["out_offset"],
                             2 * int(np.abs(lut).max()), 0)
        if rq is None:
            return f"ekd_add_s8(&{pname}, {{in0}}, {{in1}}, {{out}});", []
        tables = _dsp_or_plain(self.ident(k, "lut"), 2 * lut.reshape(-1), lut.reshape(-1), "int32_t")
        tables.append(cgen.array_declare(self.ident(k, "rq"), rq.reshape(-1), "int32_t", align=4))
        return (f"ekd_add_lut_s8(&{pname}, {{in0}}, {{in1}}, {self.ident(k, 'lut')}, {self.ident(k, 'rq')}, {{out}});",
                tables)

    def _requant(self, op, layer, lo_hi, real_from_scales):
        k = op.index
        inp, out = self.g.tensors[op.inputs[0]], self.g.tensors[op.outputs[0]]
        si, zi = _q1(inp, "input", layer)
        so, zo = _q1(out, "output", layer)
        m, s = quantize_multiplier(real_from_scales(si, so))
        lo, hi = lo_hi(so, zo)
        pname = self.ident(k, "p")
        decls = [_struct("ekd_requant_params", pname, dict(size=out.size, in_zero_point=zi, out_zero_point=zo,
                                                            mult=m, shift=s, act_min=lo, act_max=hi))]
        self.steps.append(_Step(op, layer, f"ekd_requant_s8(&{pname}, {{in0}}, {{out}});", [op.inputs[0]],
                                op.outputs[0], decls, overlap={op.inputs[0]: ELEMENTWISE_OVERLAP}))

    @staticmethod
    def _f32_ratio(si, so):  # float32 division, then widened (ReluPrepare / QuantizePrepare)
        return float(np.float32(si) / np.float32(so))

    def lower_relu(self, op, layer):
        self._requant(op, layer, lambda s, z: activation_range(1, s, z), self._f32_ratio)

    def lower_relu6(self, op, layer):
        self._requant(op, layer, lambda s, z: activation_range(3, s, z), self._f32_ratio)

    def lower_quantize(self, op, layer):
        self._requant(op, layer, lambda s, z: (-128, 127), self._f32_ratio)

    # more int8 operators (runtime/edgekd_nn_ops.c) ----------------------------------------------
    def _operand(self, k, j, t, layer, decls, inputs):
        """C expression for operand j of step k: a placeholder for an activation, a static array
        for a constant int8 tensor (declared in decls)."""
        if t.is_constant:
            if t.dtype != "INT8":
                raise ExportError(f"layer {layer!r}: constant operand {t.name!r} is {t.dtype}; expected INT8")
            name = self.ident(k, f"c{j}")
            decls.append(cgen.array_declare(name, t.data.reshape(-1), "int8_t"))
            return name
        inputs.append(t.index)
        return f"{{in{len(inputs) - 1}}}"

    def _binary(self, op, layer, kernel, params_type, fields):
        """A broadcasting binary operator: operand strides (0 along broadcast axes) into the params."""
        k = op.index
        a, b, out = (self.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        if a.is_constant and b.is_constant:
            raise ExportError(f"layer {layer!r}: {op.op} of two constants (fold it before export)")
        if max(len(a.shape), len(b.shape), len(out.shape)) > 4:
            raise ExportError(f"layer {layer!r}: {op.op} on rank {len(out.shape)} tensors; at most 4 dimensions are supported")
        sa, sb, so = _shape4(a.shape), _shape4(b.shape), _shape4(out.shape)
        for d in range(4):
            if max(sa[d], sb[d]) != so[d] or sa[d] not in (1, so[d]) or sb[d] not in (1, so[d]):
                raise ExportError(f"layer {layer!r}: {op.op} cannot broadcast {list(a.shape)} and {list(b.shape)} "
                                  f"to {list(out.shape)}")

        def strides(shape):
            st = [int(np.prod(shape[d + 1:])) for d in range(4)]
            return [st[d] if shape[d] == so[d] else 0 for d in range(4)]

        decls, inputs = [], []
        ra = self._operand(k, 0, a, layer, decls, inputs)
        rb = self._operand(k, 1, b, layer, decls, inputs)
        pname = self.ident(k, "p")
        shape = dict(out_shape=so, a_stride=strides(sa), b_stride=strides(sb))
        decls.append(_struct(params_type, pname, dict(shape=shape, **fields)))
        self.steps.append(_Step(op, layer, f"{kernel}(&{pname}, {ra}, {rb}, {{out}});", inputs, op.outputs[0], decls))

    def _addsub_fields(self, op, layer, subtract):
        a, b, out = (self.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        sa, za = _q1(a, "input", layer)
        sb, zb = _q1(b, "input", layer)
        so, zo = _q1(out, "output", layer)
        left_shift = 20
        # AddPrepare / SubPrepare in double from the float32 scales (SUB too: checked on scales where
        # a float32 preparation gives other outputs, see tests/export/test_c_ops.py)
        twice_max = 2.0 * float(max(np.float32(sa), np.float32(sb)))
        m1, s1 = quantize_multiplier(float(np.float32(sa)) / twice_max)
        m2, s2 = quantize_multiplier(float(np.float32(sb)) / twice_max)
        mo, so_ = quantize_multiplier(twice_max / ((1 << left_shift) * float(np.float32(so))))
        lo, hi = activation_range(op.options.get("fusedActivationFunction", 0), so, zo)
        return dict(in1_offset=-za, in2_offset=-zb, out_offset=zo, left_shift=left_shift, in1_mult=m1, in1_shift=s1,
                    in2_mult=m2, in2_shift=s2, out_mult=mo, out_shift=so_, act_min=lo, act_max=hi,
                    in2_sign=-1 if subtract else 1)

    def lower_sub(self, op, layer):
        self._binary(op, layer, "ekd_addsub_s8", "ekd_addsub_params", self._addsub_fields(op, layer, True))

    def lower_mul(self, op, layer):
        a, b, out = (self.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        sa, za = _q1(a, "input", layer)
        sb, zb = _q1(b, "input", layer)
        so, zo = _q1(out, "output", layer)
        f32 = np.float32
        m, s = quantize_multiplier(float(f32(sa)) * float(f32(sb)) / float(f32(so)))  # MulPrepare: double
        lo, hi = activation_range(op.options.get("fusedActivationFunction", 0), so, zo)
        self._binary(op, layer, "ekd_mul_s8", "ekd_mul_params",
                     dict(in1_offset=-za, in2_offset=-zb, out_offset=zo, mult=m, shift=s, act_min=lo, act_max=hi))

    def _table(self, op, layer, table):
        """An int8 -> int8 elementwise op as a lookup in its 256-entry table (flash): the table holds
        TFLite Micro's integer result for each input (firmware_export/fixedpoint.py)."""
        k = op.index
        inp, out = self.g.tensors[op.inputs[0]], self.g.tensors[op.outputs[0]]
        if inp.size != out.size:
            raise ExportError(f"layer {layer!r}: {op.op} input {list(inp.shape)} and output {list(out.shape)} differ in size")
        name = self.ident(k, "lut")
        decls = [cgen.comment(f"{op.op} of each int8 input -128..127, TFLite Micro's integer arithmetic"),
                 cgen.array_declare(name, np.asarray(table, np.int8), "int8_t")]
        self.steps.append(_Step(op, layer, f"ekd_lut_s8({name}, {{in0}}, {{out}}, {out.size});", [op.inputs[0]],
                                op.outputs[0], decls))

    def _sigmoid_like(self, op, layer, table, out_q):
        """LOGISTIC / TANH: TFLite Micro's Prepare maps the input into Q4.27 (frexp of s_in * 2^27).
        Its int8 kernels write the fixed output quantization out_q whatever the tensor declares;
        the C does the same (it must equal TFLM) and says so when the .tflite declares another."""
        inp, out = self.g.tensors[op.inputs[0]], self.g.tensors[op.outputs[0]]
        si, zi = _q1(inp, "input", layer)
        so, zo = _q1(out, "output", layer)
        if op.op == "LOGISTIC" and zo != out_q[1]:
            raise ExportError(f"layer {layer!r}: int8 LOGISTIC output zero point must be {out_q[1]} "
                              f"(TFLite Micro refuses others), got {zo}")
        if (np.float32(so), zo) != (np.float32(out_q[0]), out_q[1]):
            from edgekd.log import logger

            logger.warning("layer %r: the .tflite declares %s output scale %r, zero point %d, but TFLite Micro's "
                           "int8 kernel (and so the C) writes scale %r, zero point %d; outputs are exact against "
                           "TFLM but off against the float model (quantize %s with fixed output parameters)",
                           layer, op.op, so, zo, out_q[0], out_q[1], op.op.lower())
        q, shift = math.frexp(float(np.float32(si)) * float(1 << 27))
        mult = _round_away(q * float(1 << 31))
        if mult >= 1 << 31 or not 0 <= shift <= 30:
            raise ExportError(f"layer {layer!r}: {op.op} input scale {si} is outside the range TFLite's int8 kernel handles")
        radius = (15 << 27) >> shift  # CalculateInputRadius(4 integer bits, shift): floor(15 * 2^27 / 2^shift)
        self._table(op, layer, table(zi, radius, mult, shift))

    def lower_logistic(self, op, layer):
        self._sigmoid_like(op, layer, fixedpoint.logistic_table, (1.0 / 256, -128))

    def lower_tanh(self, op, layer):
        self._sigmoid_like(op, layer, fixedpoint.tanh_table, (1.0 / 128, 0))

    def lower_softmax(self, op, layer):
        k = op.index
        inp, out = self.g.tensors[op.inputs[0]], self.g.tensors[op.outputs[0]]
        si, _ = _q1(inp, "input", layer)
        so, zo = _q1(out, "output", layer)
        if (np.float32(so), zo) != (np.float32(1.0 / 256), -128) or inp.shape != out.shape or not inp.shape:
            raise ExportError(f"layer {layer!r}: int8 SOFTMAX needs equal input/output shapes and output scale 1/256, "
                              f"zero point -128, as TFLite Micro does (got {list(inp.shape)} -> {list(out.shape)}, "
                              f"{so}, {zo}); quantize the softmax output with those fixed parameters")
        depth = int(inp.shape[-1])
        if depth >= 4096:
            raise ExportError(f"layer {layer!r}: SOFTMAX over {depth} values; the int32 sum of exponentials "
                              "overflows from 4096 on")
        beta = float(np.float32(op.options.get("beta", 1.0)))
        # PreprocessSoftmaxScaling with 5 integer bits: beta * s_in * 2^26 (capped), a multiplier > 1
        real = min(beta * float(np.float32(si)) * float(1 << 26), float((1 << 31) - 1))
        mult, shift = quantize_multiplier(real)
        if not 0 <= shift <= 30:
            raise ExportError(f"layer {layer!r}: SOFTMAX beta {beta} x input scale {si} is outside the range "
                              "TFLite's int8 kernel handles")
        diff_min = -((31 << 26) >> shift)  # -CalculateInputRadius(5 integer bits, shift)
        pname = self.ident(k, "p")
        decls = [_struct("ekd_softmax_params", pname, dict(rows=inp.size // depth, depth=depth, in_mult=mult,
                                                            in_left_shift=shift, diff_min=diff_min))]
        self.steps.append(_Step(op, layer, f"ekd_softmax_s8(&{pname}, {{in0}}, {{out}});", [op.inputs[0]],
                                op.outputs[0], decls))

    def lower_hard_swish(self, op, layer):
        inp, out = self.g.tensors[op.inputs[0]], self.g.tensors[op.outputs[0]]
        si, zi = _q1(inp, "input", layer)
        so, zo = _q1(out, "output", layer)
        # HardSwishPrepare, in double as TFLite Micro computes it (tests/export/test_c_ops.py has scales
        # where a float32 preparation gives other outputs); s_in / 128 is exact in both
        hires = float(np.float32(si)) / 128.0
        m_out, e_out = quantize_multiplier(hires / float(np.float32(so)))
        m_rel, e_rel = quantize_multiplier(hires / (3.0 / 32768.0))
        if not -15 <= e_out <= 0 or not -15 <= e_rel <= 30:
            raise ExportError(f"layer {layer!r}: HARD_SWISH scales {si} -> {so} need shifts ({e_out}, {e_rel}) outside "
                              "the 16-bit range of TFLite's int8 kernel")
        self._table(op, layer, fixedpoint.hard_swish_table(zi, zo, _q15(m_out), e_out, _q15(m_rel), e_rel))

    def lower_leaky_relu(self, op, layer):
        inp, out = self.g.tensors[op.inputs[0]], self.g.tensors[op.outputs[0]]
        si, zi = _q1(inp, "input", layer)
        so, zo = _q1(out, "output", layer)
        f32 = np.float32
        alpha = f32(op.options.get("alpha", 0.0))
        real_alpha = float(f32(si)) * float(alpha) / float(f32(so))  # as TFLite Micro computes it: in double
        m_alpha, s_alpha = quantize_multiplier(abs(real_alpha))
        if real_alpha < 0 and _round_away(math.frexp(-real_alpha)[0] * float(1 << 31)) == 1 << 31:
            # a negative multiplier rounding to -2^31 has no carry in TFLite: its magnitude overflows
            raise ExportError(f"layer {layer!r}: LEAKY_RELU alpha {float(alpha)} gives a multiplier TFLite cannot negate")
        m_id, s_id = quantize_multiplier(float(f32(si)) / float(f32(so)))
        self._table(op, layer, fixedpoint.leaky_relu_table(zi, zo, m_id, s_id, m_alpha, s_alpha, real_alpha < 0))

    def lower_mean(self, op, layer):
        k = op.index
        inp, axes_t, out = (self.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        if axes_t.data is None:
            raise ExportError(f"layer {layer!r}: MEAN needs constant axes")
        rank = len(inp.shape)
        if rank > 4:
            raise ExportError(f"layer {layer!r}: MEAN of a rank-{rank} tensor; at most 4 dimensions are supported")
        axes = {int(a) + rank if int(a) < 0 else int(a) for a in axes_t.data.reshape(-1)}
        if not axes or min(axes) < 0 or max(axes) >= rank:
            raise ExportError(f"layer {layer!r}: MEAN axes {axes_t.data.reshape(-1).tolist()} out of range for {list(inp.shape)}")
        shape4 = _shape4(inp.shape)
        reduced = [d - (4 - rank) in axes for d in range(4)]
        out_shape = [1 if r else n for r, n in zip(reduced, shape4)]
        red_shape = [n if r else 1 for r, n in zip(reduced, shape4)]
        count = int(np.prod(red_shape))
        if int(np.prod(out_shape)) != out.size:
            raise ExportError(f"layer {layer!r}: MEAN of {list(inp.shape)} over {sorted(axes)} does not give {list(out.shape)}")
        si, zi = _q1(inp, "input", layer)
        so, zo = _q1(out, "output", layer)
        mult, shift = quantize_multiplier(float(np.float32(si)) / float(np.float32(so)))
        # fold 1 / count into the multiplier as TFLite Micro's QuantizedMeanOrSum does
        bits = min(count.bit_length() - 1, 32, 31 + shift)
        mult, shift = (mult << bits) // count, shift - bits
        pname = self.ident(k, "p")
        strides = [int(np.prod(shape4[d + 1:])) for d in range(4)]
        decls = [_struct("ekd_mean_params", pname, dict(out_shape=out_shape, red_shape=red_shape, in_stride=strides,
                                                         count=count, in_zero_point=zi, out_zero_point=zo,
                                                         mult=mult, shift=shift))]
        self.steps.append(_Step(op, layer, f"ekd_mean_s8(&{pname}, {{in0}}, {{out}});", [op.inputs[0]],
                                op.outputs[0], decls))

    def lower_concatenation(self, op, layer):
        k = op.index
        out = self.g.tensors[op.outputs[0]]
        rank = len(out.shape)
        axis = int(op.options.get("axis", 0))
        axis = axis + rank if axis < 0 else axis
        if not 0 <= axis < rank or int(op.options.get("fusedActivationFunction", 0)) != 0:
            raise ExportError(f"layer {layer!r}: CONCATENATION axis {op.options.get('axis')} of rank {rank} "
                              "(or a fused activation, which TFLite refuses)")
        parts = [self.g.tensors[i] for i in op.inputs]
        for t in parts:
            if len(t.shape) != rank or any(t.shape[d] != out.shape[d] for d in range(rank) if d != axis):
                raise ExportError(f"layer {layer!r}: CONCATENATION input {list(t.shape)} does not fit output "
                                  f"{list(out.shape)} along axis {axis}")
            (s_in, z_in), (s_out, z_out) = _q1(t, "input", layer), _q1(out, "output", layer)
            if (np.float32(s_in), z_in) != (np.float32(s_out), z_out):
                raise ExportError(f"layer {layer!r}: CONCATENATION input {t.name!r} is quantized differently from "
                                  "the output; int8 concatenation in TFLite and TFLite Micro copies values, so the "
                                  "converter must requantize such inputs with QUANTIZE ops first")
        if sum(t.shape[axis] for t in parts) != out.shape[axis]:
            raise ExportError(f"layer {layer!r}: CONCATENATION inputs do not add up to {list(out.shape)} along axis {axis}")
        if all(t.is_constant for t in parts):
            raise ExportError(f"layer {layer!r}: CONCATENATION of constants only (fold it before export)")
        outer = int(np.prod(out.shape[:axis]))
        inner = int(np.prod(out.shape[axis + 1:]))
        decls, inputs, calls, offset = [], [], [], 0
        for j, t in enumerate(parts):
            src = self._operand(k, j, t, layer, decls, inputs)
            n = t.shape[axis] * inner
            calls.append(f"ekd_copy_rows_s8({src}, {{out}} + {offset}, {outer}, {n}, {out.shape[axis] * inner});")
            offset += n
        self.steps.append(_Step(op, layer, "\n    ".join(calls), inputs, op.outputs[0], decls))

    def lower_resize_nearest_neighbor(self, op, layer):
        """Nearest-neighbour resize of H and W: TFLite's GetNearestNeighbor (float32 scale and
        offset) evaluated here for every output row and column; the device copies pixels."""
        k = op.index
        inp, out = self.g.tensors[op.inputs[0]], self.g.tensors[op.outputs[0]]
        ih, iw, c = _nhwc(inp, layer)
        oh, ow, oc = _nhwc(out, layer)
        if oc != c:
            raise ExportError(f"layer {layer!r}: RESIZE_NEAREST_NEIGHBOR changes channels {c} -> {oc}")
        _check_same_q(inp, out, layer)
        align = bool(op.options.get("alignCorners", False))
        half = bool(op.options.get("halfPixelCenters", False))
        rows = [_nearest_neighbor(y, ih, oh, align, half) * iw * c for y in range(oh)]
        cols = [_nearest_neighbor(x, iw, ow, align, half) * c for x in range(ow)]
        decls = [cgen.array_declare(self.ident(k, "rows"), rows, "int32_t"),
                 cgen.array_declare(self.ident(k, "cols"), cols, "int32_t")]
        call = (f"ekd_resize_nearest_s8({{in0}}, {{out}}, {self.ident(k, 'rows')}, {oh}, {self.ident(k, 'cols')}, "
                f"{ow}, {c});")
        self.steps.append(_Step(op, layer, call, [op.inputs[0]], op.outputs[0], decls))

    # data movement -----------------------------------------------------------------------------
    def lower_transpose(self, op, layer):
        k = op.index
        inp, perm_t, out = (self.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        if perm_t.data is None:
            raise ExportError(f"layer {layer!r}: TRANSPOSE needs a constant permutation")
        perm = [int(p) for p in perm_t.data.reshape(-1)]
        r = len(perm)
        shape4 = _shape4(inp.shape)
        perm4 = list(range(4 - r)) + [p + 4 - r for p in perm]
        if [shape4[p] for p in perm4] != _shape4(out.shape):
            raise ExportError(f"layer {layer!r}: TRANSPOSE of {inp.shape} by {perm} does not give {out.shape}")
        _check_same_q(inp, out, layer)
        decls = [cgen.array_declare(self.ident(k, "shape"), shape4, "int32_t"),
                 cgen.array_declare(self.ident(k, "perm"), perm4, "int32_t")]
        call = f"ekd_transpose_s8({{in0}}, {{out}}, {self.ident(k, 'shape')}, {self.ident(k, 'perm')});"
        self.steps.append(_Step(op, layer, call, [op.inputs[0]], op.outputs[0], decls))

    def lower_pad(self, op, layer):
        k = op.index
        inp, pads_t, out = (self.g.tensors[i] for i in (op.inputs[0], op.inputs[1], op.outputs[0]))
        if pads_t.data is None:
            raise ExportError(f"layer {layer!r}: PAD needs constant paddings")
        pads = pads_t.data.reshape(-1, 2).astype(int)
        r = pads.shape[0]
        before = [0] * (4 - r) + pads[:, 0].tolist()
        after = [0] * (4 - r) + pads[:, 1].tolist()
        shape4 = _shape4(inp.shape)
        if [b + s + a for b, s, a in zip(before, shape4, after)] != _shape4(out.shape) or min(before + after) < 0:
            raise ExportError(f"layer {layer!r}: PAD of {inp.shape} by {pads.tolist()} does not give {out.shape}")
        _check_same_q(inp, out, layer)
        _, zo = _q1(out, "output", layer)
        value = zo
        if op.op == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            cv = self.g.tensors[op.inputs[2]]
            if cv.data is None:
                raise ExportError(f"layer {layer!r}: PADV2 needs a constant pad value")
            value = int(cv.data.reshape(-1)[0])
        decls = [cgen.array_declare(self.ident(k, "shape"), shape4, "int32_t"),
                 cgen.array_declare(self.ident(k, "before"), before, "int32_t"),
                 cgen.array_declare(self.ident(k, "after"), after, "int32_t")]
        call = (f"ekd_pad_s8({{in0}}, {{out}}, {self.ident(k, 'shape')}, {self.ident(k, 'before')}, "
                f"{self.ident(k, 'after')}, (int8_t)({value}));")
        self.steps.append(_Step(op, layer, call, [op.inputs[0]], op.outputs[0], decls))

    lower_padv2 = lower_pad

    def _reshape(self, op, layer):
        inp, out = self.g.tensors[op.inputs[0]], self.g.tensors[op.outputs[0]]
        if inp.size != out.size:
            raise ExportError(f"layer {layer!r}: reshape of {inp.shape} to {out.shape} changes the size")
        _check_same_q(inp, out, layer)
        self.steps.append(_Step(op, layer, f"ekd_copy_s8({{in0}}, {{out}}, {out.size});", [op.inputs[0]],
                                op.outputs[0], [], alias=True))

    lower_reshape = lower_squeeze = lower_expand_dims = _reshape


def _safe_text(text) -> str:
    """Layer/file names as they may appear inside C comments: printable ASCII without backslashes,
    '?' (trigraphs) or line breaks, so no splice or trigraph can close the comment early."""
    return re.sub(r"[^A-Za-z0-9_ .,;:/()\[\]<>=+\-#@!%&|~^{}'\"]", "_", str(text))[:200]


def _check_same_q(a: Tensor, b: Tensor, layer: str):
    if a.scale is None or b.scale is None or not np.array_equal(a.scale, b.scale) or not np.array_equal(a.zero_point, b.zero_point):
        raise ExportError(f"layer {layer!r}: input and output quantization differ for a data-movement op")


def _struct(ctype: str, name: str, fields: dict) -> str:
    cgen.check_identifier(name)
    body = ",\n".join(f"    .{cgen.check_identifier(k)} = {_initializer(v)}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{\n{body}\n}};\n"


def _initializer(v) -> str:
    """An integer, an array (list/tuple) or a nested struct (dict) as a C99 initializer."""
    if isinstance(v, dict):
        return "{" + ", ".join(f".{cgen.check_identifier(k)} = {_initializer(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(_initializer(x) for x in v) + "}"
    return str(int(v))


# ---- model object -------------------------------------------------------------------------------

@dataclass
class CModel:
    """A generated native C model: its files, arena, MACs and a host-compiled runner.

    ``input_shape`` / ``output_shape`` and the scalar quantization fields describe the first graph
    input / output; ``input_shapes`` / ``output_shapes`` / ``input_quant`` / ``output_quant`` list
    every one, in the .tflite graph's order (the order of ``{name}_invoke``'s pointers)."""
    out_dir: Path
    name: str
    files: list
    arena_bytes: int
    macs: int
    input_shape: tuple
    output_shape: tuple
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    input_shapes: tuple = ()
    output_shapes: tuple = ()
    input_quant: tuple = ()      # ((scale, zero point), ...)
    output_quant: tuple = ()

    def __post_init__(self):
        self.input_shapes = tuple(tuple(s) for s in self.input_shapes) or (tuple(self.input_shape),)
        self.output_shapes = tuple(tuple(s) for s in self.output_shapes) or (tuple(self.output_shape),)
        self.input_quant = tuple(self.input_quant) or ((self.input_scale, self.input_zero_point),)
        self.output_quant = tuple(self.output_quant) or ((self.output_scale, self.output_zero_point),)

    @property
    def input_size(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def output_size(self) -> int:
        return int(np.prod(self.output_shape))

    def build_host(self, extra_flags=()) -> Path:
        """Compile the host harness (cached by the hash of the sources and flags); return the binary."""
        return compile_harness(self.out_dir, self.name, extra_flags, len(self.input_shapes), len(self.output_shapes))

    def _input_bytes(self, x, batched=True) -> tuple[bytes, int]:
        """Samples of every input, interleaved per sample as the harness reads them."""
        xs = list(x) if len(self.input_shapes) > 1 else [x]
        if len(xs) != len(self.input_shapes):
            raise ExportError(f"{self.name}: expected {len(self.input_shapes)} input arrays, got {len(xs)}")
        rows = []
        for k, (xk, shape) in enumerate(zip(xs, self.input_shapes)):
            xk = np.asarray(xk)
            if xk.dtype != np.int8:
                raise ExportError(f"predict_int8: expected int8 input, got {xk.dtype}")
            if tuple(xk.shape[1:]) != shape:
                if tuple(xk.shape) != shape:
                    raise ExportError(f"predict_int8: input {k} shape {xk.shape[1:]} != the model's {shape}")
                xk = xk[None]
            rows.append(np.ascontiguousarray(xk).reshape(len(xk), -1))
        n = len(rows[0])
        if any(len(r) != n for r in rows):
            raise ExportError(f"predict_int8: the inputs hold different numbers of samples {[len(r) for r in rows]}")
        return np.concatenate(rows, axis=1).tobytes(), n

    def predict_int8(self, x):
        """Run the compiled C on int8 inputs (N, *input_shape) -> int8 outputs (N, *output_shape).
        Several inputs: pass a list/tuple of arrays; several outputs: returns a tuple of arrays."""
        data, n = self._input_bytes(x)
        exe = self.build_host()
        with tempfile.TemporaryDirectory(prefix="edgekd_c_run_") as tmp:
            fin, fout = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            fin.write_bytes(data)
            res = subprocess.run([str(exe), str(fin), str(fout), str(n)], capture_output=True, text=True)
            if res.returncode != 0:
                raise ExportError(f"{self.name}_invoke failed (exit {res.returncode}): {res.stderr.strip()}")
            y = np.frombuffer(fout.read_bytes(), dtype=np.int8).reshape(n, -1)
        sizes = [int(np.prod(s)) for s in self.output_shapes]
        parts = np.split(y, np.cumsum(sizes)[:-1], axis=1)
        outs = tuple(p.reshape((n,) + s).copy() for p, s in zip(parts, self.output_shapes))
        return outs if len(outs) > 1 else outs[0]

    def time_invoke(self, x, repeats: int = 100) -> float:
        """Median wall time of one ``{name}_invoke`` in seconds on the host (x: one int8 input, or a
        list of one sample per input)."""
        xs = list(x) if len(self.input_shapes) > 1 else [x]
        xs = [np.asarray(xk, dtype=np.int8).reshape((1,) + s) for xk, s in zip(xs, self.input_shapes)]
        data, _ = self._input_bytes(xs if len(xs) > 1 else xs[0])
        exe = self.build_host()
        with tempfile.TemporaryDirectory(prefix="edgekd_c_run_") as tmp:
            fin, fout = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            fin.write_bytes(data)
            res = subprocess.run([str(exe), str(fin), str(fout), "1", str(int(repeats))],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise ExportError(f"timing run failed: {res.stderr.strip()}")
            return float(res.stdout.strip().split()[-1]) * 1e-9


HARNESS = r"""/* edgekd host harness: argv in.bin out.bin N [repeats]; prints median ns per invoke when timing.
 * Each sample is every input's bytes in order; each result every output's bytes in order. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "{name}.h"

static int cmp_ll(const void *a, const void *b)
{{
    const long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}}

{buffers}
int main(int argc, char **argv)
{{
    FILE *fi, *fo;
    long n, i, repeats = 0;
    if (argc < 4) {{
        fprintf(stderr, "usage: %s in.bin out.bin N [repeats]\n", argv[0]);
        return 2;
    }}
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) {{
        fprintf(stderr, "cannot open input/output file\n");
        return 2;
    }}
    n = strtol(argv[3], NULL, 10);
    if (argc > 4) {{
        repeats = strtol(argv[4], NULL, 10);
    }}
    for (i = 0; i < n; ++i) {{
{reads}        if ({call} != 0) {{
            fprintf(stderr, "{name}_invoke failed at sample %ld\n", i);
            return 3;
        }}
{writes}    }}
    if (repeats > 0) {{
        long long *t = (long long *)malloc(sizeof(long long) * (size_t)repeats);
        struct timespec a, b;
        long r;
        if (!t) {{
            return 2;
        }}
        for (r = 0; r < 10; ++r) {{
            (void){call};
        }}
        for (r = 0; r < repeats; ++r) {{
            clock_gettime(CLOCK_MONOTONIC, &a);
            (void){call};
            clock_gettime(CLOCK_MONOTONIC, &b);
            t[r] = (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
        }}
        qsort(t, (size_t)repeats, sizeof(long long), cmp_ll);
        printf("%lld\n", t[repeats / 2]);
        free(t);
    }}
    fclose(fi);
    fclose(fo);
    return 0;
}}
"""


def harness_source(name: str, n_inputs: int = 1, n_outputs: int = 1) -> str:
    """The host harness for ``{name}_invoke`` with that many input and output buffers."""
    NAME = name.upper()
    ins, outs = _io_names("input", n_inputs), _io_names("output", n_outputs)
    buffers = "".join(f"static int8_t {b}[{NAME}_{b.upper()}_SIZE];\n" for b in ins + outs)
    reads = "".join(f"        if (fread({b}, 1, sizeof {b}, fi) != sizeof {b}) {{\n"
                    f"            fprintf(stderr, \"short input at sample %ld\\n\", i);\n"
                    f"            return 2;\n        }}\n" for b in ins)
    writes = "".join(f"        if (fwrite({b}, 1, sizeof {b}, fo) != sizeof {b}) {{\n            return 2;\n        }}\n"
                     for b in outs)
    call = f"{name}_invoke({', '.join(ins + outs)})"
    return HARNESS.format(name=name, buffers=buffers, reads=reads, writes=writes, call=call)


def find_cc() -> str:
    env = os.environ.get("CC")
    cc = shutil.which(env) if env else (shutil.which("gcc") or shutil.which("cc"))
    if not cc:
        where = f"CC={env!r} is not an executable" if env else "no gcc or cc on PATH"
        raise ExportError(f"no C compiler found ({where}): install gcc (e.g. 'apt-get install gcc') "
                          "or set CC to build and run the native C target")
    return cc


def compile_harness(src_dir, name: str = "model", extra_flags=(), n_inputs: int = 1, n_outputs: int = 1) -> Path:
    """Compile ``{name}.c`` + runtime + harness with -Werror -pedantic into a cache folder keyed by content."""
    src_dir = Path(src_dir)
    cc = find_cc()
    sources = [src_dir / f"{name}.c", src_dir / f"{name}.h"] + [src_dir / f for f in RUNTIME_FILES]
    harness = harness_source(name, n_inputs, n_outputs)
    h = hashlib.sha256()
    for p in sources:
        h.update(p.read_bytes())
    h.update(harness.encode())
    h.update(" ".join((cc,) + CFLAGS + tuple(extra_flags)).encode())
    build = Path(tempfile.gettempdir()) / "edgekd_c_build" / h.hexdigest()[:24]
    exe = build / f"{name}_harness"
    if exe.exists():
        return exe
    build.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build_", dir=build))
    for p in sources:
        shutil.copy(p, tmp / p.name)
    (tmp / "harness.c").write_text(harness)
    runtime_c = [str(tmp / f) for f in RUNTIME_FILES if f.endswith(".c")]
    cmd = [cc, *CFLAGS, *extra_flags, "-I", str(tmp), str(tmp / f"{name}.c"), *runtime_c,
           str(tmp / "harness.c"), "-o", str(tmp / exe.name)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise ExportError(f"compiling the generated C failed ({' '.join(cmd[:8])} ...):\n{res.stderr.strip()}")
    os.replace(tmp / exe.name, exe)
    shutil.rmtree(tmp, ignore_errors=True)
    return exe


# ---- generation ---------------------------------------------------------------------------------

def _io_names(kind: str, n: int) -> list:
    """C parameter names of the graph inputs / outputs: ``input`` / ``output`` when there is one,
    ``input0``, ``input1``, ... otherwise."""
    return [kind] if n == 1 else [f"{kind}{k}" for k in range(n)]


def generate_c(graph: Graph, name: str = "model", config: dict | None = None) -> tuple[dict, CModel]:
    """Lower ``graph`` to {filename: text} for ``{name}.h`` and ``{name}.c`` and the model facts."""
    name = cgen.check_identifier(name)
    NAME = name.upper()
    if not graph.inputs or not graph.outputs:
        raise ExportError(f"{graph.path}: the model has {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; "
                          "expected at least one of each")
    if len(set(graph.outputs)) != len(graph.outputs) or set(graph.outputs) & set(graph.inputs):
        raise ExportError(f"{graph.path}: a tensor is listed twice among the model inputs/outputs; "
                          "the C target needs distinct input and output tensors")
    tins = [graph.tensors[i] for i in graph.inputs]
    touts = [graph.tensors[i] for i in graph.outputs]
    for ts, what in ((tins, "input"), (touts, "output")):
        for t in ts:
            if t.dtype != "INT8":
                raise ExportError(f"{graph.path}: model {what} {t.name!r} is {t.dtype}; the C target needs a fully integer int8 .tflite")
            if not t.shape or t.shape[0] != 1:
                raise ExportError(f"{graph.path}: model {what} {t.name!r} has shape {t.shape}; expected batch 1")
    in_names, out_names = _io_names("input", len(tins)), _io_names("output", len(touts))
    steps = _Lowering(graph).run()

    # storage: graph input / output pointers, or arena buffers; reshape-like ops alias their input.
    # Outputs live in the caller's buffers (never in the arena); later ops may read them from there.
    root = {t: ("input", k) for k, t in enumerate(graph.inputs)}
    out_index = {t: k for k, t in enumerate(graph.outputs)}
    for s in steps:
        for i in s.inputs:
            if i not in root:
                raise ExportError(f"layer {s.layer!r}: reads tensor {graph.tensors[i].name!r} that no earlier op produced")
        if s.alias and s.output not in out_index:
            root[s.output] = root[s.inputs[0]]
            s.call = ""
        else:
            root[s.output] = ("output", out_index[s.output]) if s.output in out_index else s.output
    for t in graph.outputs:
        if t not in root:
            raise ExportError(f"{graph.path}: no op produces the model output {graph.tensors[t].name!r}")
    buffers = {}
    for k, s in enumerate(steps):
        for t in [s.output] + s.inputs:
            r = root.get(t)
            if isinstance(r, int):
                size, first, last = buffers.get(r, (graph.tensors[r].size, k, k))
                buffers[r] = (size, min(first, k), max(last, k))
        if s.scratch:
            buffers[("scratch", k)] = (s.scratch, k, k)
    overlaps = {}      # a kernel writing over the part of a dying input it no longer reads
    for k, s in enumerate(steps):
        o = root.get(s.output)
        for t, allowed in s.overlap.items():
            x = root.get(t)
            if isinstance(o, int) and isinstance(x, int) and o != x and buffers[x][2] == k:
                overlaps[(o, x)] = allowed
    plan = plan_arena(buffers, overlaps=overlaps)

    def ref(t):
        r = root[t]
        if isinstance(r, tuple):
            return (in_names if r[0] == "input" else out_names)[r[1]]
        return f"({name}_arena.bytes + {plan.offsets[r]})"

    macs = sum(s.macs for s in steps)
    in_q = [_q1(t, "input", "model input") for t in tins]
    out_q = [_q1(t, "output", "model output") for t in touts]
    cfg = dict(config or {})

    # header
    def io_macros(kind, tensors, quant):
        names = _io_names(kind.upper(), len(tensors))
        lines = [cgen.constant(f"{NAME}_NUM_{kind.upper()}S", len(tensors))]
        for mname, t, (s, z) in zip(names, tensors, quant):
            lines.append(cgen.comment(f"{kind} {t.name!r}: {list(t.shape)} int8, scale {float(s)!r}, zero point {z}"))
            lines.append(cgen.constant(f"{NAME}_{mname}_SIZE", t.size))
            lines.append(cgen.constant(f"{NAME}_{mname}_ZERO_POINT", z))
            lines.append(f"#define {NAME}_{mname}_SCALE ({float(s)!r}f)\n")
        return lines

    params = [f"const int8_t *{n}" for n in in_names] + [f"int8_t *{n}" for n in out_names]
    signature = f"int {name}_invoke({', '.join(params)})"
    sizes = [f"{n}[{NAME}_{n.upper()}_SIZE]" for n in in_names + out_names]
    hbody = [cgen.banner(f"native C model '{name}' from {_safe_text(Path(graph.path).name)}", cfg),
             c_abi_doc(name, len(tins), len(touts)),
             "#include <stdint.h>\n",
             cgen.comment("scales are for callers that quantize/dequantize; the int8 path never uses float"),
             *io_macros("input", tins, in_q),
             *io_macros("output", touts, out_q),
             cgen.comment(f"static arena planned at export time: {plan.size} bytes for {len(buffers)} buffers, "
                          f"kernel scratch included (sum without reuse: {sum(plan.sizes.values())} bytes)"),
             cgen.constant(f"{NAME}_ARENA_SIZE", plan.size),
             cgen.constant(f"{NAME}_MACS", macs),
             "\n",
             cgen.comment(f"Run one inference: {', '.join(sizes[:len(in_names)])} -> {', '.join(sizes[len(in_names):])}, "
                          "int8, same layout as the .tflite tensors; inputs first, then outputs, each in the "
                          ".tflite graph's order. Returns 0 on success, -1 on a NULL pointer. Not reentrant "
                          "(uses one static arena)."),
             "#ifdef __cplusplus\nextern \"C\" {\n#endif\n",
             f"{signature};\n\n",
             c_io_helpers(name, len(tins), len(touts)),
             "#ifdef __cplusplus\n}\n#endif\n"]
    header = cgen.include_guard(name, "".join(hbody))

    # source
    cbody = [cgen.banner(f"native C model '{name}' from {_safe_text(Path(graph.path).name)}", cfg),
             f'#include "{name}.h"\n#include "edgekd_nn.h"\n#include "edgekd_nn_ops.h"\n#include <stddef.h>\n\n']
    if plan.size:
        cbody.append(f"static union {{\n    int32_t w[{NAME}_ARENA_SIZE / 4];\n    int16_t h[{NAME}_ARENA_SIZE / 2];\n"
                     f"    int8_t bytes[{NAME}_ARENA_SIZE];\n}} {name}_arena;\n\n")
    calls = []
    for k, s in enumerate(steps):
        head = f"step {k}: {s.op.op if s.op is not None else 'COPY'} {s.layer}"
        if s.decls:
            cbody.append(cgen.comment(head))
            cbody.extend(d if d.endswith("\n") else d + "\n" for d in s.decls)
            cbody.append("\n")
        if s.call:
            fmt = {"out": ref(s.output)}
            if s.scratch:
                fmt["scratch"] = f"({name}_arena.h + {plan.offsets[('scratch', k)] // 2})"
                fmt["scratch32"] = f"({name}_arena.w + {plan.offsets[('scratch', k)] // 4})"
            for j, i in enumerate(s.inputs):
                fmt[f"in{j}"] = ref(i)
            calls.append("    " + cgen.comment(head).strip() + "\n    " + s.call.format(**fmt) + "\n")
    null_test = " || ".join(f"{n} == NULL" for n in in_names + out_names)
    cbody.append(f"{signature}\n{{\n")
    cbody.append(f"    if ({null_test}) {{\n        return -1;\n    }}\n")
    cbody.extend(calls)
    cbody.append("    return 0;\n}\n")
    files = {f"{name}.h": header, f"{name}.c": "".join(cbody)}
    shapes_in = tuple(tuple(t.shape[1:]) for t in tins)
    shapes_out = tuple(tuple(t.shape[1:]) for t in touts)
    model = CModel(Path("."), name, [], plan.size, macs, shapes_in[0], shapes_out[0], float(in_q[0][0]), in_q[0][1],
                   float(out_q[0][0]), out_q[0][1], input_shapes=shapes_in, output_shapes=shapes_out,
                   input_quant=tuple((float(s), z) for s, z in in_q), output_quant=tuple((float(s), z) for s, z in out_q))
    return files, model


def build_c(tflite_path, out_dir, *, name: str = "model", config: dict | None = None, verbose=None) -> CModel:
    """Generate the native C model for an int8 .tflite into ``out_dir`` (a self-contained folder:
    ``{name}.h``, ``{name}.c``, ``edgekd_nn.h``, ``edgekd_nn.c``); return a :class:`CModel`."""
    from edgekd.io import atomic_write_text
    from edgekd.log import logger, set_log_level

    if verbose is not None:
        set_log_level(verbose)
    graph = read_tflite(tflite_path)
    files, model = generate_c(graph, name=name, config=config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        atomic_write_text(out_dir / fname, text)
    for fname in RUNTIME_FILES:
        atomic_write_text(out_dir / fname, (RUNTIME_DIR / fname).read_text())
    model.out_dir = out_dir
    model.files = [out_dir / f for f in list(files) + list(RUNTIME_FILES)]
    logger.info("native C model %s: %d MACs, arena %d bytes -> %s", name, model.macs, model.arena_bytes, out_dir)
    return model
