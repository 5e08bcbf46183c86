"""brevitas low-bit students (8/4/2-bit weights) and their QCDQ / QONNX exports."""
import numpy as np
import pytest
import torch

from edgekd.distill import distill, evaluate, train_config
from edgekd.errors import ConfigError
from edgekd.quant.lowbit import LowBitConfig, export_lowbit, lowbit, lowbit_bytes, onnx_predict, to_lowbit
from toys import digits_cnn

brevitas = pytest.importorskip("brevitas")
pytest.importorskip("onnxoptimizer")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def trained(digits8):
    torch.manual_seed(0)
    model = digits_cnn()
    distill(None, model, digits8, train_config(epochs=6, lr=5e-3))
    return model.eval(), evaluate(model, digits8.test)


@pytest.fixture(scope="module")
def four_bit(trained, digits8):
    return lowbit(trained[0], digits8, LowBitConfig(weight_bits=4, epochs=2))


def test_conversion_keeps_structure_and_quantizes_weights(trained):
    import brevitas.nn as qnn

    q = to_lowbit(trained[0], LowBitConfig(weight_bits=2))
    kinds = [type(m).__name__ for m in q.net]
    assert kinds == ["QuantConv2d", "QuantReLU", "MaxPool2d", "QuantConv2d", "QuantHardTanh", "Flatten", "QuantLinear"]
    for m in q.modules():
        if isinstance(m, (qnn.QuantConv2d, qnn.QuantLinear)):
            codes = m.quant_weight().int().unique()
            assert codes.min() >= -2 and codes.max() <= 1 and len(codes) <= 4  # 2-bit signed
    assert trained[0][0].weight.dtype == torch.float32  # the float student is untouched


@pytest.mark.slow
def test_four_bit_accuracy(trained, four_bit, digits8):
    float_acc = trained[1]
    acc = evaluate(four_bit, digits8.test)
    assert acc >= float_acc - 0.05 and acc > 0.8, (float_acc, acc)
    sizes = lowbit_bytes(four_bit, 4)
    n_w = sum(m.weight.numel() for m in trained[0] if hasattr(m, "weight"))
    n_b = sum(m.bias.numel() for m in trained[0] if hasattr(m, "bias"))
    assert sizes["bytes_int4"] == (n_w + 1) // 2 + 4 * n_b


@pytest.mark.slow
def test_qcdq_onnx_equals_brevitas(four_bit, digits8, tmp_path):
    import onnx

    x = digits8.test.x[:64]
    path = export_lowbit(four_bit, x[:1], tmp_path / "s4.onnx", format="qcdq")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Clip", "Conv", "Gemm"} <= ops, ops
    with torch.no_grad():
        ref = four_bit(x).numpy()
    out = onnx_predict(path, x)
    np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)  # the QCDQ graph computes brevitas' model
    fused = onnx_predict(path, x, fuse_qdq=True)  # onnxruntime's integer QLinearConv: same decisions
    assert np.mean(fused.argmax(1) == ref.argmax(1)) >= 0.95


@pytest.mark.slow
def test_qonnx_export(four_bit, digits8, tmp_path):
    import onnx

    path = export_lowbit(four_bit, digits8.test.x[:1], tmp_path / "s4.qonnx.onnx", format="qonnx")
    model = onnx.load(str(path))
    quant = [n for n in model.graph.node if n.op_type == "Quant"]
    assert quant, "QONNX export has Quant nodes"
    bit_widths = set()
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    for n in quant:
        if n.input[3] in inits:
            bit_widths.add(float(inits[n.input[3]]))
    assert 4.0 in bit_widths and 8.0 in bit_widths, bit_widths
    assert not list(tmp_path.glob(".*tmp"))


def test_config_checks():
    with pytest.raises(ConfigError, match="weight_bits"):
        LowBitConfig(weight_bits=1)
    with pytest.raises(ConfigError, match="input_range"):
        LowBitConfig(input_range=(1.0, 0.0))
    with pytest.raises(ConfigError, match="format"):
        export_lowbit(torch.nn.Linear(2, 2), torch.zeros(1, 2), "x.onnx", format="tflite")
