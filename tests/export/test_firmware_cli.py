"""``edgekd export --input-layout nhwc``: a factory file to a TFLite Micro folder whose model takes HWC
input with no leading TRANSPOSE and computes the torch model; the option's one-line errors."""
import json

import numpy as np
import pytest
import torch

from edgekd.cli import main
from firmware_export.interp import dequantize, quantize, run_tflm, tflm_module
from firmware_export.tflite_reader import read_tflite

pytest.importorskip("litert_torch")
pytest.importorskip("tflite_micro")

NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 4)

    def forward(self, x):
        return self.fc(torch.flatten(torch.max_pool2d(torch.relu(self.conv(x)), 2), 1))


def make_model():
    torch.manual_seed(0)
    return Net()
'''


@pytest.mark.slow
def test_input_layout_nhwc_end_to_end(tmp_path, capsys):
    (tmp_path / "net.py").write_text(NET)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "cal.npy", rng.normal(size=(64, 3, 8, 8)).astype(np.float32))
    held = rng.normal(size=(48, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "held.npy", held)
    out = tmp_path / "exports"
    rc = main(["export", f"{tmp_path / 'net.py'}:make_model", "--input-shape", "1,3,8,8", "--target", "tflm",
               "--calibration", str(tmp_path / "cal.npy"), "--parity", str(tmp_path / "held.npy"),
               "--input-layout", "nhwc", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err[-2000:]
    config = json.loads((out / "tflm" / "export.json").read_text())
    assert config["input_layout"] == "nhwc" and config["input_shape"] == [1, 8, 8, 3]
    graph = read_tflite(out / "tflm" / "model.tflite")
    assert graph.tensors[graph.inputs[0]].shape == (1, 8, 8, 3) and graph.operators[0].op == "CONV_2D"
    x_q = quantize(held.transpose(0, 2, 3, 1), *config["input_quant"])
    interp = tflm_module().Interpreter.from_bytes((out / "tflm" / "model.tflite").read_bytes(),
                                                  arena_size=config["arena_bytes"])
    y = dequantize(run_tflm(interp, x_q), *config["output_quant"])
    import importlib.util

    spec = importlib.util.spec_from_file_location("nhwc_net", tmp_path / "net.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with torch.no_grad():
        ref = module.make_model().eval()(torch.from_numpy(held)).numpy()
    assert np.mean(y.argmax(1) == ref.argmax(1)) >= 0.9      # HWC in, the NCHW torch model's answers out
    # the same bytes read as if no layout change happened are far off: the layout really is HWC
    wrong = dequantize(run_tflm(interp, quantize(held.reshape(-1, 8, 8, 3), *config["input_quant"])),
                       *config["output_quant"])
    assert np.mean(np.abs(y - ref)) < 0.2 * np.mean(np.abs(wrong - ref))

    # a .tflite keeps its layout; onnx has no NHWC option
    capsys.readouterr()
    assert main(["export", str(out / "tflm" / "model.tflite"), "--target", "c", "--input-layout", "nhwc",
                 "--out", str(tmp_path / "x")]) == 2
    assert "--input-layout applies to torch models; a .tflite keeps the input layout" in capsys.readouterr().err
    assert main(["export", f"{tmp_path / 'net.py'}:make_model", "--input-shape", "1,3,8,8", "--target", "onnx",
                 "--input-layout", "nhwc", "--out", str(tmp_path / "y")]) == 2
    assert "--input-layout nhwc applies to tflite, tflm, c" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
