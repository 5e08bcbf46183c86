"""ONNX target: every supported op through torch.onnx (dynamo) and onnxruntime, parity asserted."""
import json

import numpy as np
import pytest
import torch

import firmware_export as fe
from toys import AllOpsNet, randomize_bn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.mark.slow
def test_all_ops_round_trip(tmp_path):
    torch.manual_seed(1)
    net = randomize_bn(AllOpsNet())
    held = torch.rand(32, 1, 12, 12)
    art = fe.export(net, "onnx", example_input=held[:1], out_dir=tmp_path / "onnx", parity_inputs=held)
    check = art.parity["checks"]["onnxruntime_vs_torch"]
    assert art.parity["passed"] and check["rel_err"] <= 1e-4 and check["argmax_agreement"] == 1.0
    assert json.loads((tmp_path / "onnx" / "parity.json").read_text())["passed"] is True
    import onnx

    model = onnx.load(str(art.file(".onnx")))
    onnx.checker.check_model(model)
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "MaxPool", "AveragePool", "Add", "Relu"} <= ops, ops
    fresh = torch.rand(8, 1, 12, 12)  # not the parity inputs
    with torch.no_grad():
        np.testing.assert_allclose(art.predict(fresh), net(fresh).numpy(), rtol=1e-4, atol=1e-5)
    assert art.config["ops"] == sorted(art.config["ops"]) and "depthwise_conv2d" in art.config["ops"]


@pytest.mark.slow
def test_int8_qdq_from_the_pt2e_graph(tmp_path):
    """int8 ONNX is the same PT2E graph as QDQ: run literally it equals torch's float simulation."""
    import onnx

    from firmware_export.targets.tflite import quantize_pt2e

    torch.manual_seed(3)
    net = randomize_bn(AllOpsNet())
    g = torch.Generator().manual_seed(4)
    cal, held = torch.rand(128, 1, 12, 12, generator=g), torch.rand(32, 1, 12, 12, generator=g)
    graph = quantize_pt2e(net, held[:1], cal)
    art = fe.export(graph, "onnx", precision="int8", example_input=held[:1], out_dir=tmp_path / "q",
                    parity_inputs=held, float_reference=net)
    checks = art.parity["checks"]
    assert art.parity["passed"] and checks["onnxruntime_ref_vs_torch_pt2e"]["blocking"]
    assert checks["onnxruntime_vs_torch_pt2e"]["blocking"] is False  # fused integer kernels: reported only
    ops = {n.op_type for n in onnx.load(str(art.file(".onnx"))).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops, ops
    # an independent run: onnxruntime (no graph optimizations) on fresh inputs vs the torch PT2E graph
    fresh = torch.rand(8, 1, 12, 12, generator=g)
    scale = art.config["qdq_output_quant"][0]
    with torch.no_grad():
        ref = graph(fresh).numpy()
    assert np.max(np.abs(art.predict(fresh, runtime="onnxruntime_ref") - ref)) <= 1.01 * scale
    with pytest.raises(fe.ExportError, match="needs a float model"):
        fe.export(graph, "onnx", precision="fp32", example_input=held[:1], out_dir=tmp_path / "f")
