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
