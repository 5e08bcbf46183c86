"""Export of one-step generators: the MLP deploy generator to fully integer int8 TFLite (ops and
parity), firmware_export for the export-friendly UNet, plain torch.onnx + onnxruntime for the
GroupNorm/SiLU UNet (which firmware_export's op check refuses)."""
import numpy as np
import pytest
import torch

from edgekd.models.mlp_generator import MLPGenerator, SiLUAsMul
from edgekd.models.unet import OneStepGenerator, UNet

MCU = dict(channels=(8,), norm="none", act="relu", skip="add")


def _generator(**kw):
    torch.manual_seed(0)
    m = UNet((1, 8, 8), **kw)
    torch.nn.init.normal_(m.out.conv.weight, std=0.2)
    return OneStepGenerator(m.eval()).eval()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnx", "tflite"])
def test_one_step_generator_export_parity_fp32(tmp_path, target):
    pytest.importorskip("onnxruntime" if target == "onnx" else "ai_edge_litert")
    firmware_export = pytest.importorskip("firmware_export")
    if not hasattr(firmware_export, "export"):
        pytest.skip("firmware_export.export not available")
    gen = _generator(**MCU)
    z = torch.randn(1, 1, 8, 8)
    art = firmware_export.export(gen, target=target, precision="fp32", example_input=z, out_dir=tmp_path / target,
                                 calibration_data=torch.randn(32, 1, 8, 8))
    assert art.parity["passed"]
    zs = torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        ref = gen(zs).numpy()
    out = np.asarray(art.predict(zs.numpy()))
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 1e-4 * max(1.0, np.abs(ref).max())


def test_groupnorm_unet_is_refused_by_the_mcu_op_check():
    firmware_export = pytest.importorskip("firmware_export")
    if not hasattr(firmware_export, "export"):
        pytest.skip("firmware_export.export not available")
    from firmware_export.errors import UnsupportedOpError
    from firmware_export.ops import check_supported

    with pytest.raises(UnsupportedOpError, match="GroupNorm|silu|SiLU"):
        check_supported(_generator(channels=(8, 16)), torch.randn(1, 1, 8, 8))
    assert set(check_supported(_generator(**MCU), torch.randn(1, 1, 8, 8))) == {"conv2d", "relu", "add"}


@pytest.mark.slow
def test_groupnorm_unet_onnx_parity_direct(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    gen = _generator(channels=(8, 16))
    z = torch.randn(3, 1, 8, 8)
    path = tmp_path / "gen.onnx"
    torch.onnx.export(gen, (z,), str(path), dynamo=True, input_names=["noise"], output_names=["image"])
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: z.numpy()})[0]
    with torch.no_grad():
        ref = gen(z).numpy()
    assert np.abs(out - ref).max() < 1e-4


def test_mlp_generator_uses_only_supported_ops():
    firmware_export = pytest.importorskip("firmware_export")
    from firmware_export.ops import check_supported

    torch.manual_seed(0)
    gen = MLPGenerator((1, 8, 8), hidden=32, depth=2).eval()
    assert set(check_supported(gen, torch.randn(1, 1, 8, 8))) == {"add", "reshape", "linear", "relu"}
    z = torch.randn(4, 1, 8, 8)
    with torch.no_grad():  # hand-written forward: flatten, relu(W0 z), h = relu(h + W h), W_out h
        h = torch.relu(gen.inp(z.reshape(4, 64)))
        for lin in gen.blocks:
            h = torch.relu(h + lin(h))
        assert torch.allclose(gen(z), gen.out(h), atol=1e-6)
    x = torch.linspace(-4, 4, 9)
    assert torch.allclose(SiLUAsMul()(x), torch.nn.functional.silu(x), atol=1e-6)


@pytest.mark.slow
def test_mlp_generator_int8_tflite_is_fully_integer(tmp_path):
    pytest.importorskip("ai_edge_litert")
    firmware_export = pytest.importorskip("firmware_export")
    torch.manual_seed(0)
    gen = MLPGenerator((1, 8, 8), hidden=32, depth=2).eval()
    art = firmware_export.export(gen, target="tflite", precision="int8", example_input=torch.randn(1, 1, 8, 8),
                                 out_dir=tmp_path / "g", calibration_data=torch.randn(256, 1, 8, 8))
    assert art.parity["passed"]
    # no float island: no QUANTIZE/DEQUANTIZE inside the graph (ReLU fused into FULLY_CONNECTED / ADD)
    assert set(art.config["tflite_ops"]) <= {"FULLY_CONNECTED", "ADD", "RESHAPE", "RELU"}
    zs = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        ref = gen(zs).numpy()
    out = art.predict(zs.numpy())
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() < 0.1 * np.abs(ref).max()  # int8: within a few quantization steps
