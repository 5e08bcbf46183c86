"""A hand-written int8 fully connected layer in the native-C export's ABI, for the MCU harness.

It lets the cross-build / emulation / cost-model chain be tested and calibrated without a
trained model: ``{name}_invoke(const int8_t *in, int8_t *out)``, ``{NAME}_INPUT_SIZE`` etc.,
with a plain C loop and an SMLAD path under ``__ARM_FEATURE_DSP`` (bit-exact with each other).
:func:`fc_reference` computes the same integers with numpy, independently of any C build.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from firmware_export.cgen import array_declare, banner, check_identifier, constant, include_guard

SHIFT = 20


@dataclass
class FCKernel:
    """Weights and requantization of the reference layer: out = clamp(round((W x + b) M / 2^S))."""

    weight: np.ndarray      # (n_out, n_in) int8
    bias: np.ndarray        # (n_out,) int32
    multiplier: int
    shift: int = SHIFT

    @property
    def macs(self) -> int:
        return int(self.weight.size)


def make_fc(n_in=256, n_out=64, seed=0) -> FCKernel:
    """Random int8 weights; the multiplier maps the typical accumulator range onto int8."""
    if n_in % 4:
        raise ValueError(f"n_in must be a multiple of 4 (SMLAD path reads 4 bytes), got {n_in}")
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, size=(n_out, n_in), dtype=np.int64).astype(np.int8)
    b = rng.integers(-2000, 2000, size=n_out).astype(np.int32)
    typical = 127 * 73 * np.sqrt(n_in)            # ~1 sigma of sum w x for uniform int8
    return FCKernel(w, b, int(round(2 ** SHIFT * 40.0 / typical)))


def fc_reference(kernel: FCKernel, x: np.ndarray) -> np.ndarray:
    """The layer's int8 output for int8 input ``x`` (numpy, int64 arithmetic)."""
    acc = kernel.weight.astype(np.int64) @ x.astype(np.int64) + kernel.bias
    y = (acc * kernel.multiplier + (1 << (kernel.shift - 1))) >> kernel.shift
    return np.clip(y, -128, 127).astype(np.int8)


_BODY = r"""
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
/* Input expanded once to sign-extended halfword pairs (bytes 0,2 and 1,3 of each word). */
static int32_t {name}_arena[{NAME}_INPUT_SIZE / 2];
#endif

static int8_t {name}_requant(int32_t acc) {
    int64_t y = ((int64_t)acc * {NAME}_MULTIPLIER + ((int64_t)1 << ({NAME}_SHIFT - 1))) >> {NAME}_SHIFT;
    if (y < -128) y = -128;
    if (y > 127) y = 127;
    return (int8_t)y;
}

int {name}_invoke(const int8_t *input, int8_t *output) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    for (int i = 0; i < {NAME}_INPUT_SIZE; i += 4) {
        uint32_t xw;
        __builtin_memcpy(&xw, input + i, 4);
        {name}_arena[i / 2] = (int32_t)__sxtb16(xw);
        {name}_arena[i / 2 + 1] = (int32_t)__sxtb16(((xw >> 8) | (xw << 24)));
    }
    for (int o = 0; o < {NAME}_OUTPUT_SIZE; ++o) {
        const int8_t *w = {name}_weight + o * {NAME}_INPUT_SIZE;
        const int32_t *xp = {name}_arena;
        int32_t acc = {name}_bias[o];
        for (int i = 0; i < {NAME}_INPUT_SIZE; i += 4) {
            uint32_t ww;
            __builtin_memcpy(&ww, w + i, 4);
            acc = __smlad(__sxtb16(ww), (uint32_t)xp[0], acc);
            acc = __smlad(__sxtb16(((ww >> 8) | (ww << 24))), (uint32_t)xp[1], acc);
            xp += 2;
        }
        output[o] = {name}_requant(acc);
    }
#else
    for (int o = 0; o < {NAME}_OUTPUT_SIZE; ++o) {
        const int8_t *w = {name}_weight + o * {NAME}_INPUT_SIZE;
        int32_t acc = {name}_bias[o];
        for (int i = 0; i < {NAME}_INPUT_SIZE; ++i) acc += (int32_t)w[i] * (int32_t)input[i];
        output[o] = {name}_requant(acc);
    }
#endif
    return 0;
}
"""


def write_fc_kernel(out_dir, kernel: FCKernel, name="ref") -> Path:
    """Write ``{name}.h`` and ``{name}.c`` (the export ABI) into ``out_dir``; returns the folder."""
    name = check_identifier(name)
    up = name.upper()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_out, n_in = kernel.weight.shape
    config = {"kernel": "fully_connected", "n_in": n_in, "n_out": n_out}
    header = "\n".join([
        "#include <stdint.h>",
        constant(f"{up}_INPUT_SIZE", n_in), constant(f"{up}_OUTPUT_SIZE", n_out),
        constant(f"{up}_ARENA_SIZE", 2 * n_in), constant(f"{up}_MACS", kernel.macs),
        constant(f"{up}_INPUT_ZERO_POINT", 0), constant(f"{up}_OUTPUT_ZERO_POINT", 0),
        f"int {name}_invoke(const int8_t *input, int8_t *output);", ""])
    (out / f"{name}.h").write_text(banner("reference int8 fully connected layer", config)
                                   + include_guard(f"{name}.h", header))
    source = "\n".join([
        banner("reference int8 fully connected layer", config),
        "#include <stdint.h>", f'#include "{name}.h"',
        constant(f"{up}_MULTIPLIER", kernel.multiplier), constant(f"{up}_SHIFT", kernel.shift),
        array_declare(f"{name}_weight", kernel.weight.reshape(-1).tolist(), "int8_t", align=4),
        array_declare(f"{name}_bias", kernel.bias.tolist(), "int32_t", align=4),
        _BODY.replace("{name}", name).replace("{NAME}", up)])
    (out / f"{name}.c").write_text(source)
    return out
