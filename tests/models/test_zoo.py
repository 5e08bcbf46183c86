"""The model zoo: the MLPerf Tiny reference architectures (and MobileNetV2-0.35) as PyTorch users write them.

MAC counts are checked against totals computed by hand from the architectures (layer by layer,
below), not from the code under test; the slow test exports every model to every target with
parity, native C equal to TFLite Micro bit for bit on 64 inputs.
"""
import shutil
import time

import numpy as np
import pytest
import torch
from torch import nn

from edgekd.models import model_names
from edgekd.models.zoo import ZOO, zoo_model


def _dscnn():
    # conv 64 (10x4) stride 2 on 49x10x1 -> 25x5x64; 4 x [dw 3x3, pw 64x64] at 25x5; dense 64 -> 12
    conv = 25 * 5 * 64 * (10 * 4 * 1)
    block = 25 * 5 * 64 * 9 + 25 * 5 * 64 * 64
    return conv + 4 * block + 64 * 12                               # 2,656,768


def _resnet8():
    stem = 32 * 32 * 16 * (3 * 9)
    stage1 = 2 * 32 * 32 * 16 * (16 * 9)                            # identity shortcut
    stage2 = 16 * 16 * 32 * (16 * 9) + 16 * 16 * 32 * (32 * 9) + 16 * 16 * 32 * 16   # + 1x1 s2 shortcut
    stage3 = 8 * 8 * 64 * (32 * 9) + 8 * 8 * 64 * (64 * 9) + 8 * 8 * 64 * 32
    return stem + stage1 + stage2 + stage3 + 64 * 10                # 12,501,632


def _mobilenetv1():
    # alpha 0.25: first conv 8 (3x3 s2) -> 48x48; then (out size, in channels, out channels) per block
    blocks = [(48, 8, 16), (24, 16, 32), (24, 32, 32), (12, 32, 64), (12, 64, 64), (6, 64, 128)] + \
             [(6, 128, 128)] * 5 + [(3, 128, 256), (3, 256, 256)]
    total = 48 * 48 * 8 * 27
    for hw, cin, cout in blocks:
        total += hw * hw * cin * 9 + hw * hw * cout * cin
    return total + 256 * 2                                          # 7,489,664


def _fc_autoencoder():
    return 640 * 128 + 3 * 128 * 128 + 128 * 8 + 8 * 128 + 3 * 128 * 128 + 128 * 640   # 264,192


def _mobilenetv2():
    # width 0.35: stem 16 (3x3 s2 -> 48x48); (expansion, out channels, repeats, stride) with the
    # channels already scaled and rounded to multiples of 8; last 1x1 conv 1280; dense 1280 -> 2
    hw, cin, total = 48, 16, 48 * 48 * 16 * 27
    for t, cout, n, s in [(1, 8, 1, 1), (6, 8, 2, 2), (6, 16, 3, 2), (6, 24, 4, 2), (6, 32, 3, 1), (6, 56, 3, 2),
                          (6, 112, 1, 1)]:
        for i in range(n):
            hidden = cin * t
            expand = hw * hw * hidden * cin if t != 1 else 0
            hw = hw // 2 if (s == 2 and i == 0) else hw
            total += expand + hw * hw * hidden * 9 + hw * hw * cout * hidden
            cin = cout
    return total + hw * hw * 1280 * cin + 1280 * 2                  # 10,656,688


HAND_MACS = {"dscnn_kws": _dscnn(), "resnet8": _resnet8(), "mobilenetv1_vww": _mobilenetv1(),
             "fc_autoencoder": _fc_autoencoder(), "mobilenetv2": _mobilenetv2()}


def _hooked_macs(model, x):
    """MACs of every conv and linear call, counted from the shapes seen in a forward pass."""
    total = []

    def hook(mod, inputs, out):
        if isinstance(mod, nn.Conv2d):
            total.append(out[0].numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1])
        elif isinstance(mod, nn.Linear):
            total.append(mod.in_features * mod.out_features)

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    with torch.no_grad():
        y = model(x)
    for h in handles:
        h.remove()
    return sum(total), y


@pytest.mark.parametrize("name", sorted(ZOO))
def test_macs_match_the_architecture(name):
    assert name in model_names()
    shape, outputs = ZOO[name]
    macs, y = _hooked_macs(zoo_model(name), torch.rand(1, *shape))
    assert macs == HAND_MACS[name]
    assert tuple(y.shape) == (1, outputs)


def test_published_sizes():
    """The MACs quoted for the MLPerf Tiny models: 2.66 M, 12.5 M, 7.49 M, 0.26 M."""
    assert [round(HAND_MACS[n] / 1e6, 2) for n in ("dscnn_kws", "resnet8", "mobilenetv1_vww", "fc_autoencoder")] \
        == [2.66, 12.5, 7.49, 0.26]


def test_written_in_everyday_idioms():
    """The zoo is the canonicalization pass's test: its exported graphs hold the idioms users write."""
    seen = set()
    for name in ZOO:
        ep = torch.export.export(zoo_model(name), (torch.rand(2, *ZOO[name][0]),))
        seen |= {n.target._opname for n in ep.graph_module.graph.nodes if n.op == "call_function"}
    assert {"relu_", "batch_norm", "adaptive_avg_pool2d", "mean", "clamp", "hardtanh_", "add_", "dropout",
            "flatten"} <= seen, seen


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_exports_to_every_target_with_parity(name, tmp_path):
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("no host C compiler for the native C target")
    for module in ("litert_torch", "tflite_micro", "onnxruntime", "onnxscript"):
        pytest.importorskip(module)
    import firmware_export as fe

    t0 = time.perf_counter()
    model, shape = zoo_model(name), ZOO[name][0]
    g = torch.Generator().manual_seed(1)
    calibration, held = torch.randn(32, *shape, generator=g), torch.randn(64, *shape, generator=g)
    graph = fe.quantize(model, held[:1], calibration)  # ONE int8 graph for every int8 target
    arts = {"onnx/fp32": fe.export(model, "onnx", example_input=held[:1], out_dir=tmp_path / "onnx_fp32",
                                   parity_inputs=held)}
    for target in ("onnx", "tflite", "tflm", "c"):
        arts[f"{target}/int8"] = fe.export(graph, target, precision="int8", example_input=held[:1],
                                           out_dir=tmp_path / f"{target}_int8", parity_inputs=held,
                                           float_reference=model)
    assert all(a.parity["passed"] for a in arts.values())
    c_vs_tflm = arts["c/int8"].parity["checks"]["c_vs_tflm"]
    assert arts["c/int8"].parity["n_inputs"] == 64
    assert c_vs_tflm["max_lsb_diff"] == 0 and c_vs_tflm["exact_fraction"] == 1.0
    assert arts["c/int8"].config["macs"] == HAND_MACS[name]  # the C generator's own count
    ops = set(arts["tflite/int8"].config["tflite_ops"])
    assert not ops & {"DEQUANTIZE", "MEAN"}, ops               # no float island; global pools as AVERAGE_POOL_2D
    # the same int8 codes through the native C, TFLM and LiteRT's reference kernels, re-opened from disk
    x_q = fe.interp.quantize(held[:8].numpy(), *arts["c/int8"].input_quant)
    c_out = fe.load(arts["c/int8"].path).predict_raw(x_q)
    np.testing.assert_array_equal(c_out, arts["tflm/int8"].predict_raw(x_q))
    assert np.abs(c_out.astype(int) - arts["tflite/int8"].predict_raw(x_q, "litert_ref")).max() <= 1
    checks = {k: a.parity["checks"] for k, a in arts.items()}
    ref, qdq = checks["tflm/int8"]["tflm_vs_litert_ref"], checks["onnx/int8"]["onnxruntime_ref_vs_torch_pt2e"]
    print(f"\n{name}: 5 exports in {time.perf_counter() - t0:.0f} s; MACs {arts['c/int8'].config['macs']:,}; "
          f"c==tflm {100 * c_vs_tflm['exact_fraction']:.1f}% exact; tflm vs litert_ref max {ref['max_lsb_diff']} LSB "
          f"{100 * ref['exact_fraction']:.1f}% exact; xnnpack max {checks['c/int8']['c_vs_litert_xnnpack']['max_lsb_diff']}"
          f" LSB; onnx qdq vs torch max {qdq['max_lsb_diff']} mean {qdq['mean_lsb_diff']:.3f} LSB; onnx fp32 rel "
          f"{checks['onnx/fp32']['onnxruntime_vs_torch']['rel_err']:.1e}; arena c {arts['c/int8'].config['arena_bytes']:,}"
          f" B tflm {arts['tflm/int8'].config['arena_bytes']:,} B")
