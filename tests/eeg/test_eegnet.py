"""EEGNet teacher: shape, exportable ops only, learns the synthetic task, exports to ONNX with parity."""
import numpy as np
import pytest
import torch
from torch import nn

from edgekd.models import ModelConfig, build_model

ALLOWED = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.AvgPool2d, nn.Flatten, nn.Linear)


def _eegnet(chans=16, times=160, classes=2):
    torch.manual_seed(0)
    return build_model(ModelConfig("eegnet", (1, chans, times), classes, {}))


def test_shape_and_ops():
    model = _eegnet().eval()
    assert model(torch.randn(3, 1, 16, 160)).shape == (3, 2)
    leaves = [m for m in model.modules() if not list(m.children())]
    assert all(isinstance(m, ALLOWED) for m in leaves), [type(m).__name__ for m in leaves]
    assert not any(isinstance(m, nn.ELU) for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) < 3000


def test_learns_synthetic_mi(trials):
    from edgekd.data.images import split_arrays
    from edgekd.distill import distill, evaluate, train_config

    data = split_arrays(trials.x[:, None], trials.y, seed=0, name="eeg")
    model = _eegnet()
    distill(None, model, data, train_config(epochs=15, lr=3e-3, batch_size=16, seed=0))
    acc = evaluate(model, data.test)
    assert acc > 0.7, acc


def test_exports_to_onnx_with_parity(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from firmware_export import export

    model = _eegnet(chans=8, times=64).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so folding is exercised
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 1, 8, 64)
    art = export(model, target="onnx", example_input=x, out_dir=tmp_path / "eegnet_onnx",
                 parity_inputs=torch.randn(16, 1, 8, 64))
    assert art.parity["passed"]
    got = np.asarray(art.predict(torch.randn(4, 1, 8, 64).numpy()))
    assert got.shape == (4, 2)


@pytest.mark.slow
def test_exports_int8_tflite_with_parity(tmp_path):
    """The teacher goes through the normal int8 path (PT2E -> LiteRT) with the export's parity record."""
    pytest.importorskip("litert_torch")
    from firmware_export import export

    model = _eegnet(chans=8, times=64).eval()
    x = torch.randn(1, 1, 8, 64)
    art = export(model, target="tflite", example_input=x, out_dir=tmp_path / "eegnet_tflite",
                 calibration_data=torch.randn(64, 1, 8, 64), parity_inputs=torch.randn(16, 1, 8, 64))
    assert art.precision == "int8" and art.parity["passed"]
