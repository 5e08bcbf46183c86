"""Native C for brevitas low-bit MLP students, with sub-8-bit weights packed (2 x int4 or 4 x int2
per byte), something no interpreter offers.

Accepted model: the modules of a ``nn.Sequential`` (in order) ``QuantIdentity`` (signed input
quantizer) -> [``QuantLinear`` -> ``QuantReLU``]* -> ``QuantLinear`` (``nn.Flatten``/``nn.Identity``
anywhere). Integer pipeline, all constants computed here:

    acc[o]  = bias_int[o] + sum_i x[i] * w_int[o, i]       bias_int = round(b / (s_in * s_w[o]))
    hidden  = clamp(mbqm(acc, M[o], S[o]), 0, 2^bits - 1)  M, S from s_in * s_w[o] / s_act
    output  = clamp(mbqm(acc, M[o], S[o]), -128, 127)      M, S from s_in * s_w[o] / s_out

with ``mbqm`` TFLite's fixed-point multiply (same runtime helpers as the int8 target).
:func:`integer_reference` is the same pipeline in numpy; the C output equals it exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import cgen
from ..errors import ExportError, UnsupportedOpError
from .c import RUNTIME_DIR, RUNTIME_FILES, CModel, _struct, plan_arena, quantize_multiplier

SUPPORTED = ("QuantIdentity (input)", "QuantLinear (2/4/8-bit weights)", "QuantReLU (<= 7 bits)", "Flatten",
             "Identity")


@dataclass
class PackedLayer:
    name: str
    w_int: np.ndarray        # (out, in) int, within the bit width
    bits: int
    bias_int: np.ndarray     # (out,) int64
    mult: np.ndarray         # (out,) Q31 multipliers
    shift: np.ndarray        # (out,)
    act_min: int
    act_max: int
    out_scale: float


def pack_weights(w_int: np.ndarray, bits: int) -> np.ndarray:
    """Pack rows of small signed ints into bytes, ``8 // bits`` per byte, first weight in the low bits;
    each row starts on a byte boundary."""
    if bits not in (2, 4, 8):
        raise ExportError(f"packed weights need 2, 4 or 8 bits, got {bits}")
    w = np.asarray(w_int, dtype=np.int64)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if w.min() < lo or w.max() > hi:
        raise ExportError(f"weights out of the {bits}-bit range [{lo}, {hi}]: [{w.min()}, {w.max()}]")
    per = 8 // bits
    out_n, in_n = w.shape
    row_bytes = -(-in_n // per)
    fields = np.zeros((out_n, row_bytes * per), dtype=np.int64)
    fields[:, :in_n] = w & ((1 << bits) - 1)
    fields = fields.reshape(out_n, row_bytes, per) << (np.arange(per) * bits)
    return fields.sum(axis=2).astype(np.uint8)


def unpack_weights(packed: np.ndarray, bits: int, in_n: int) -> np.ndarray:
    """Inverse of :func:`pack_weights` (for tests and inspection)."""
    per = 8 // bits
    f = (packed[..., None].astype(np.int64) >> (np.arange(per) * bits)) & ((1 << bits) - 1)
    f = f.reshape(packed.shape[0], -1)[:, :in_n]
    sign = 1 << (bits - 1)
    return (f ^ sign) - sign


def _mbqm_np(x: np.ndarray, m: np.ndarray, s: np.ndarray) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier on int64 arrays (the C runtime's ekd_mbqm)."""
    x = x.astype(np.int64)
    m = np.broadcast_to(np.asarray(m, np.int64), x.shape)
    s = np.broadcast_to(np.asarray(s, np.int64), x.shape)
    left = np.where(s > 0, s, 0)
    right = np.where(s > 0, 0, -s)
    a = (x * (1 << left)).astype(np.int64)
    a = ((a << 32) >> 32)  # wrap to int32 like the C cast
    ab = a * m
    hi = (ab + (1 << 30)) >> 31
    hi = np.where((a == m) & (a == -(2**31)), 2**31 - 1, hi)
    mask = (1 << right) - 1
    rem = hi & mask
    thr = (mask >> 1) + (hi < 0)
    return (hi >> right) + (rem > thr)


def integer_reference(layers: list, x_int: np.ndarray) -> np.ndarray:
    """The packed model's integer pipeline in numpy: int8 inputs (N, in) -> int8 outputs (N, out)."""
    h = np.asarray(x_int, dtype=np.int64).reshape(len(x_int), -1)
    for L in layers:
        acc = h @ L.w_int.astype(np.int64).T + L.bias_int[None, :]
        h = np.clip(_mbqm_np(acc, L.mult[None, :], L.shift[None, :]), L.act_min, L.act_max)
    return h.astype(np.int8)


def lower_brevitas(model, *, out_scale: float | None = None, calibration=None):
    """Turn a brevitas MLP into :class:`PackedLayer` s and the input scale."""
    import torch
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU
    from torch import nn

    known = (QuantIdentity, QuantLinear, QuantReLU)

    def walk(module, prefix):  # layers in registration order; brevitas layers are not entered
        for n, child in module.named_children():
            full = f"{prefix}{n}"
            if isinstance(child, known) or not list(child.children()):
                yield full, child
            else:
                yield from walk(child, full + ".")

    mods = [(n, m) for n, m in walk(model, "") if not isinstance(m, (nn.Flatten, nn.Identity, nn.Dropout))]
    if not mods or not isinstance(mods[0][1], QuantIdentity):
        raise ExportError("packed C target: the model must start with a QuantIdentity (signed 8-bit input quantizer)")
    for n, m in mods:
        if not isinstance(m, (QuantIdentity, QuantLinear, QuantReLU)):
            raise UnsupportedOpError(type(m).__name__, n, SUPPORTED)
    in_q = mods[0][1].act_quant
    s_in = float(in_q.scale().detach())
    if int(in_q.bit_width()) != 8 or not in_q.is_signed:
        raise ExportError(f"layer {mods[0][0]!r}: the input quantizer must be signed 8-bit")
    linears = [(i, n, m) for i, (n, m) in enumerate(mods) if isinstance(m, QuantLinear)]
    if not linears:
        raise ExportError("packed C target: no QuantLinear layer")
    layers = []
    s_cur = s_in
    last_i = linears[-1][0]
    for i, n, m in linears:
        qw = m.quant_weight()
        w_int = qw.int().detach().cpu().numpy().astype(np.int64)
        bits = int(qw.bit_width)
        if bits not in (2, 4, 8):
            raise ExportError(f"layer {n!r}: {bits}-bit weights; the packed target supports 2, 4 and 8")
        s_w = qw.scale.detach().reshape(-1).cpu().numpy().astype(np.float64)
        s_w = np.broadcast_to(s_w, (w_int.shape[0],)) if s_w.size == 1 else s_w
        prod = s_cur * s_w
        b = m.bias.detach().cpu().numpy().astype(np.float64) if m.bias is not None else np.zeros(w_int.shape[0])
        bias_int = np.round(b / prod).astype(np.int64)
        if i == last_i:
            if out_scale is None:
                if calibration is None:
                    raise ExportError("packed C target: give out_scale or calibration data for the logits' int8 scale")
                with torch.no_grad():
                    logits = model(torch.as_tensor(calibration, dtype=torch.float32))
                logits = getattr(logits, "value", logits)
                out_scale = float(logits.abs().max()) / 127.0 or 1.0
            s_next, lo, hi = float(out_scale), -128, 127
        else:
            nxt = mods[i + 1][1] if i + 1 < len(mods) else None
            if not isinstance(nxt, QuantReLU):
                raise ExportError(f"layer {n!r}: a hidden QuantLinear must be followed by a QuantReLU")
            abits = int(nxt.act_quant.bit_width())
            if abits > 7:
                raise ExportError(f"layer {mods[i + 1][0]!r}: QuantReLU with {abits} bits; at most 7 (int8 storage)")
            s_next, lo, hi = float(nxt.act_quant.scale().detach()), 0, (1 << abits) - 1
        ms = [quantize_multiplier(float(p) / s_next) for p in prod]
        layers.append(PackedLayer(n, w_int, bits, bias_int, np.array([a for a, _ in ms], np.int64),
                                  np.array([c for _, c in ms], np.int64), lo, hi, s_next))
        s_cur = s_next
    return layers, s_in


def build_packed_c(model, out_dir, *, name: str = "model", out_scale: float | None = None, calibration=None,
                   config: dict | None = None) -> tuple[CModel, list]:
    """Write ``{name}.h``/``{name}.c`` (packed weights) + runtime into ``out_dir``; return (CModel, layers)."""
    from edgekd.io import atomic_write_text

    name = cgen.check_identifier(name)
    NAME = name.upper()
    layers, s_in = lower_brevitas(model, out_scale=out_scale, calibration=calibration)
    n_in, n_out = layers[0].w_int.shape[1], layers[-1].w_int.shape[0]
    # arena: each layer output lives from its layer to the next one; the last writes `output`
    bufs = {k: (L.w_int.shape[0], k, k + 1) for k, L in enumerate(layers[:-1])}
    plan = plan_arena(bufs)
    body, calls = [], []
    packed_bytes = 0
    for k, L in enumerate(layers):
        packed = pack_weights(L.w_int, L.bits)
        packed_bytes += packed.size
        out_n, in_n = L.w_int.shape
        body += [cgen.comment(f"layer {k}: {_safe(L.name)}, {L.bits}-bit weights [{out_n} x {in_n}] packed "
                              f"in {packed.size} bytes"),
                 cgen.array_declare(f"l{k}_w", packed.reshape(-1), "uint8_t"),
                 cgen.array_declare(f"l{k}_b", L.bias_int, "int32_t"),
                 cgen.array_declare(f"l{k}_mult", L.mult, "int32_t"),
                 cgen.array_declare(f"l{k}_shift", L.shift, "int32_t"),
                 _struct("ekd_packed_fc_params", f"l{k}_p",
                         dict(in_n=in_n, out_n=out_n, bits=L.bits, row_bytes=packed.shape[1], in_offset=0,
                              out_offset=0, act_min=L.act_min, act_max=L.act_max)), "\n"]
        src = "input" if k == 0 else f"({name}_arena.bytes + {plan.offsets[k - 1]})"
        dst = "output" if k == len(layers) - 1 else f"({name}_arena.bytes + {plan.offsets[k]})"
        calls.append(f"    ekd_fc_packed_s8(&l{k}_p, {src}, l{k}_w, l{k}_b, l{k}_mult, l{k}_shift, {dst});\n")
    macs = int(sum(L.w_int.size for L in layers))
    cfg = dict(config or {})
    header = cgen.include_guard(name, "".join([
        cgen.banner(f"packed low-bit native C model '{name}'", cfg), "#include <stdint.h>\n",
        cgen.comment(f"input [{n_in}] int8 (scale {s_in!r}, zero point 0); output [{n_out}] int8 "
                     f"(scale {layers[-1].out_scale!r}, zero point 0); packed weights {packed_bytes} bytes"),
        cgen.constant(f"{NAME}_INPUT_SIZE", n_in), cgen.constant(f"{NAME}_OUTPUT_SIZE", n_out),
        cgen.constant(f"{NAME}_ARENA_SIZE", plan.size), cgen.constant(f"{NAME}_MACS", macs),
        cgen.constant(f"{NAME}_INPUT_ZERO_POINT", 0), cgen.constant(f"{NAME}_OUTPUT_ZERO_POINT", 0),
        cgen.constant(f"{NAME}_WEIGHT_BYTES", packed_bytes),
        f"#define {NAME}_INPUT_SCALE ({s_in!r}f)\n", f"#define {NAME}_OUTPUT_SCALE ({layers[-1].out_scale!r}f)\n",
        f"int {name}_invoke(const int8_t *input, int8_t *output);\n"]))
    source = "".join([cgen.banner(f"packed low-bit native C model '{name}'", cfg),
                      f'#include <stddef.h>\n#include "{name}.h"\n#include "edgekd_nn.h"\n\n',
                      (f"static union {{\n    int32_t align_;\n    int8_t bytes[{NAME}_ARENA_SIZE];\n}} {name}_arena;\n\n"
                       if plan.size else ""),
                      *body, f"int {name}_invoke(const int8_t *input, int8_t *output)\n{{\n",
                      "    if (input == NULL || output == NULL) {\n        return -1;\n    }\n", *calls,
                      "    return 0;\n}\n"])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / f"{name}.h", header)
    atomic_write_text(out_dir / f"{name}.c", source)
    for f in RUNTIME_FILES:
        atomic_write_text(out_dir / f, (RUNTIME_DIR / f).read_text())
    cm = CModel(out_dir, name, [out_dir / f for f in (f"{name}.h", f"{name}.c", *RUNTIME_FILES)], plan.size, macs,
                (n_in,), (n_out,), s_in, 0, layers[-1].out_scale, 0)
    return cm, layers


def _safe(text):
    from .c import _safe_text

    return _safe_text(text)
