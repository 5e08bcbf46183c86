"""Packed sub-8-bit weights (brevitas students) in the native C target: the C output equals the
integer pipeline computed in numpy exactly, and that pipeline tracks brevitas' own quantized model."""
import shutil

import numpy as np
import pytest

pytest.importorskip("brevitas")
if shutil.which("gcc") is None:
    pytest.skip("gcc is needed to compile the generated C", allow_module_level=True)

import torch  # noqa: E402
from torch import nn  # noqa: E402

from firmware_export.errors import ExportError, UnsupportedOpError  # noqa: E402
from firmware_export.targets.c_packed import (build_packed_c, integer_reference, pack_weights,  # noqa: E402
                                              unpack_weights)


def brevitas_mlp(w_bits, n_in=37, hidden=19, n_out=5, act_bits=4, per_channel=False, seed=0):
    from brevitas.nn import QuantIdentity, QuantLinear, QuantReLU

    torch.manual_seed(seed)
    kw = dict(weight_bit_width=w_bits)
    if per_channel:
        kw["weight_scaling_per_output_channel"] = True
    return nn.Sequential(
        QuantIdentity(bit_width=8, return_quant_tensor=True),
        QuantLinear(n_in, hidden, bias=True, **kw),
        QuantReLU(bit_width=act_bits, return_quant_tensor=True),
        QuantLinear(hidden, 11, bias=True, **kw),
        QuantReLU(bit_width=act_bits, return_quant_tensor=True),
        QuantLinear(11, n_out, bias=True, **kw),
    ).eval()


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_pack_roundtrip_and_density(bits):
    rng = np.random.default_rng(bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    w = rng.integers(lo, hi + 1, size=(7, 13))
    p = pack_weights(w, bits)
    assert p.dtype == np.uint8 and p.shape == (7, -(-13 // (8 // bits)))
    np.testing.assert_array_equal(unpack_weights(p, bits, 13), w)
    # first weight in the low bits
    assert (int(p[0, 0]) & ((1 << bits) - 1)) == (int(w[0, 0]) & ((1 << bits) - 1))
    with pytest.raises(ExportError, match="range"):
        pack_weights(np.full((1, 3), hi + 1), bits)


@pytest.mark.parametrize("w_bits,per_channel", [(4, False), (2, False), (4, True), (8, True)])
def test_packed_c_equals_integer_reference_exactly(tmp_path, w_bits, per_channel):
    model = brevitas_mlp(w_bits, per_channel=per_channel, seed=w_bits)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 37)).astype(np.float32)
    cm, layers = build_packed_c(model, tmp_path / "c", name="lowbit", calibration=x[:50])
    assert [L.bits for L in layers] == [w_bits] * 3
    s_in = cm.input_scale
    x_int = np.clip(np.round(x / s_in), -128, 127).astype(np.int8)
    y_c = cm.predict_int8(x_int)
    y_ref = integer_reference(layers, x_int)
    np.testing.assert_array_equal(y_c, y_ref)
    assert len(np.unique(y_ref)) > 10
    # packed flash: weights take bits/8 of a byte each (+ row padding)
    h = (tmp_path / "c" / "lowbit.h").read_text()
    weight_bytes = int(h.split("LOWBIT_WEIGHT_BYTES (")[1].split(")")[0])
    n_weights = sum(L.w_int.size for L in layers)
    assert weight_bytes <= n_weights * w_bits / 8 + sum(L.w_int.shape[0] for L in layers)
    # the integer pipeline tracks brevitas' quantized model: same class for nearly every input
    with torch.no_grad():
        y_bv = model(torch.from_numpy(x_int.astype(np.float32) * s_in)).numpy()
    agree = np.mean(np.argmax(y_bv, 1) == np.argmax(y_ref, 1))
    assert agree >= 0.9, agree
    # logits within a few output steps (2-bit weights amplify a 1-step tie-rounding difference of a
    # hidden activation: brevitas rounds half to even in float, the integer pipeline half away)
    err = np.abs(y_ref.astype(np.float64) * cm.output_scale - y_bv)
    assert np.median(err) <= 4 * cm.output_scale


def test_packed_hidden_activations_match_brevitas_within_one_step(tmp_path):
    """First hidden layer: C-side integers vs brevitas' QuantReLU integers (rounding may differ at ties)."""
    model = brevitas_mlp(4, seed=3)
    x = np.random.default_rng(1).normal(size=(64, 37)).astype(np.float32)
    _, layers = build_packed_c(model, tmp_path / "c", calibration=x)
    s_in = float(model[0].act_quant.scale())
    x_int = np.clip(np.round(x / s_in), -128, 127).astype(np.int8)
    h_ref = integer_reference(layers[:1], x_int).astype(int)
    with torch.no_grad():
        q = model[2](model[1](model[0](torch.from_numpy(x_int.astype(np.float32) * s_in))))
    h_bv = q.int().numpy().astype(int)
    assert np.max(np.abs(h_ref - h_bv)) <= 1
    assert np.mean(h_ref == h_bv) > 0.95


def test_packed_refuses_unsupported_layers(tmp_path):
    from brevitas.nn import QuantIdentity, QuantLinear

    bad = nn.Sequential(QuantIdentity(bit_width=8, return_quant_tensor=True), QuantLinear(4, 4, weight_bit_width=4),
                        nn.Sigmoid(), QuantLinear(4, 2, weight_bit_width=4)).eval()
    with pytest.raises(UnsupportedOpError, match="Sigmoid"):
        build_packed_c(bad, tmp_path / "c", out_scale=0.1)
    no_input_q = nn.Sequential(QuantLinear(4, 2, weight_bit_width=4)).eval()
    with pytest.raises(ExportError, match="QuantIdentity"):
        build_packed_c(no_input_q, tmp_path / "c", out_scale=0.1)
