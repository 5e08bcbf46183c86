"""The executorch target: .pte programs on the XNNPACK delegate, checked against torch in executorch.runtime."""
import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("executorch", reason="executorch not installed (pip install executorch)")

import firmware_export as fe  # noqa: E402
from firmware_export.errors import ExportError  # noqa: E402
from firmware_export.targets import executorch as et  # noqa: E402

X = torch.rand(1, 2, 10, 10)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 6, 3, groups=6),
                         nn.ReLU(), nn.Flatten(), nn.Linear(54, 5)).eval()


@pytest.fixture(scope="module")
def calib():
    return torch.rand(64, 2, 10, 10, generator=torch.Generator().manual_seed(1))


def test_fp32_program_equals_torch(tmp_path):
    model = _net()
    art = fe.export(model, "executorch", precision="fp32", example_input=X, out_dir=tmp_path / "et")
    assert art.parity["passed"] and art.file(".pte").stat().st_size > 0
    x = torch.rand(7, 2, 10, 10)
    with torch.no_grad():
        ref = model(x).numpy()
    # an independent runtime (ExecuTorch's XNNPACK kernels) against torch's own float kernels
    np.testing.assert_allclose(art.predict(x), ref, rtol=1e-5, atol=1e-5)
    # reopened from disk, the folder runs the same program
    np.testing.assert_array_equal(fe.load(tmp_path / "et").predict(x), art.predict(x))


def test_int8_program_follows_the_pt2e_graph_within_one_step(tmp_path, calib):
    from firmware_export.targets.tflite import quantize_pt2e

    model = _net()
    graph = quantize_pt2e(model, X, calib)
    art = fe.export(graph, "executorch", example_input=X, out_dir=tmp_path / "q", float_reference=model)
    check = art.parity["checks"]["executorch_vs_torch_pt2e"]
    assert art.parity["passed"] and check["max_lsb_diff"] <= 1
    scale, zero = art.config["internal_output_quant"]
    x = torch.rand(32, 2, 10, 10, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = graph(x).numpy()
    out = art.predict(x)
    # outputs are dequantized int8 codes of the same scale: on the grid, and at most one step off
    codes = (out / scale) + zero
    np.testing.assert_allclose(codes, np.round(codes), atol=1e-3)
    assert np.max(np.abs(out - ref)) <= scale * 1.01
    # a real quantized program, not the float one: it differs from the float model by more than a step
    with torch.no_grad():
        assert np.max(np.abs(out - model(x).numpy())) > scale


def test_weight_folding_keeps_the_graph_outputs(calib):
    from firmware_export.targets.tflite import quantize_pt2e

    graph = quantize_pt2e(_net(), X, calib)
    folded = et.fold_weights(graph)
    names = lambda g: [getattr(n.target, "_opname", "") for n in g.graph.nodes]  # noqa: E731
    assert "quantize_per_channel" in names(graph) and "quantize_per_channel" not in names(folded)
    x = torch.rand(4, 2, 10, 10)
    with torch.no_grad():
        np.testing.assert_array_equal(folded(x).numpy(), graph(x).numpy())


def test_corrupt_program_is_one_line(tmp_path):
    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"\x00not a program" * 10)
    with pytest.raises(ExportError) as info:
        et._Program(bad)
    assert str(bad) in str(info.value) and "\n" not in str(info.value)
