"""TFLite target: fp32 and fully-integer int8 from one PT2E graph, in LiteRT (reference and XNNPACK)."""
import numpy as np
import pytest
import torch

import firmware_export as fe
from firmware_export.interp import quantize, tflite_interpreter
from firmware_export.targets import tflite
from toys import AllOpsNet, randomize_bn

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

X = torch.rand(1, 1, 12, 12)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(2)
    net = randomize_bn(AllOpsNet())
    g = torch.Generator().manual_seed(3)
    return net, torch.rand(256, 1, 12, 12, generator=g), torch.rand(48, 1, 12, 12, generator=g)


@pytest.mark.slow
def test_fp32_round_trip(setup, tmp_path):
    net, _, held = setup
    art = fe.export(net, "tflite", precision="fp32", example_input=X, out_dir=tmp_path / "f", parity_inputs=held)
    assert art.parity["passed"]
    for name in ("litert_vs_torch", "litert_ref_vs_torch"):
        assert art.parity["checks"][name]["rel_err"] <= 1e-4
    with torch.no_grad():
        np.testing.assert_allclose(art.predict(held[:5]), net(held[:5]).numpy(), rtol=1e-4, atol=1e-5)
    assert "BATCH_NORM" not in " ".join(art.config["tflite_ops"])


@pytest.mark.slow
def test_int8_round_trip_is_fully_integer(setup, tmp_path):
    net, cal, held = setup
    art = fe.export(net, "tflite", example_input=X, out_dir=tmp_path / "q", calibration_data=cal,
                    parity_inputs=held)
    checks = art.parity["checks"]
    assert art.parity["passed"] and art.precision == "int8"
    assert checks["litert_ref_vs_litert_xnnpack"]["max_lsb_diff"] <= 2
    assert checks["litert_ref_vs_torch_pt2e"]["argmax_agreement"] >= 0.95
    interp = tflite_interpreter(art.file(".tflite"), reference=True)
    assert interp.get_input_details()[0]["dtype"] == np.int8 and interp.get_output_details()[0]["dtype"] == np.int8
    ops = set(art.config["tflite_ops"])
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED"} <= ops, ops
    assert not ops & {"DEQUANTIZE", "MUL", "HARD_SWISH"}, ops  # BN folded, no float islands
    # float in -> float out through the real int8 model: close to the float model, same decisions
    with torch.no_grad():
        ref = net(held).numpy()
    pred = art.predict(held)
    scale = art.output_quant[0]
    assert np.max(np.abs(pred - ref)) < 12 * scale
    assert np.mean(pred.argmax(1) == ref.argmax(1)) >= 0.9
    # the same int8 codes in the two LiteRT kernel sets: within 2 LSB (1 per kernel, compounding)
    x_q = quantize(held.numpy(), *art.input_quant)
    diff = np.abs(art.predict_raw(x_q, "litert").astype(int) - art.predict_raw(x_q, "litert_ref"))
    assert diff.max() <= 2


@pytest.mark.slow
def test_prequantized_graph_gives_the_same_model(setup, tmp_path):
    """ONE quantized graph feeds every target: exporting the PT2E graph equals exporting float + calibration."""
    net, cal, held = setup
    graph = tflite.quantize_pt2e(net, X, cal)
    a = fe.export(graph, "tflite", example_input=X, out_dir=tmp_path / "a", parity_inputs=held)
    b = fe.export(net, "tflite", example_input=X, out_dir=tmp_path / "b", calibration_data=cal, parity_inputs=held)
    assert a.input_quant == b.input_quant and a.output_quant == b.output_quant
    x_q = quantize(held.numpy(), *a.input_quant)
    np.testing.assert_array_equal(a.predict_raw(x_q), b.predict_raw(x_q))
    assert "litert_ref_vs_torch_fp32" not in a.parity["checks"]  # no float model was given
    with pytest.raises(fe.ExportError, match="needs a float model"):
        fe.export(graph, "tflite", precision="fp32", example_input=X, out_dir=tmp_path / "c")
