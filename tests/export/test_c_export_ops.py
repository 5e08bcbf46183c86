"""The ops the native C runtime gained, taken through the user's door: ``export(model, "c")`` on
everyday PyTorch, with C == TFLite Micro and the int8 result close to the float model."""
import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import firmware_export as fe


class SqueezeExcite(nn.Module):
    def __init__(self, c=8):
        super().__init__()
        self.conv = nn.Conv2d(3, c, 3, padding=1)
        self.fc1 = nn.Conv2d(c, 4, 1)
        self.fc2 = nn.Conv2d(4, c, 1)
        self.head = nn.Linear(c * 8 * 8, 5)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        s = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.head(torch.flatten(x * s, 1))


class CentreCatUpsample(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.b = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.head = nn.Linear(8 * 8 * 8, 4)

    def forward(self, x):
        a = torch.tanh(self.a(x))
        b = F.interpolate(torch.relu(self.b(x)), scale_factor=2, mode="nearest")
        y = torch.cat([a - a.mean((2, 3), keepdim=True), b + 0.5], dim=1)
        return self.head(torch.flatten(y, 1))


@pytest.mark.slow
@pytest.mark.parametrize("model_cls", [SqueezeExcite, CentreCatUpsample])
def test_everyday_ops_export_to_c_equal_tflm(tmp_path, model_cls):
    torch.manual_seed(0)
    model = model_cls().eval()
    g = torch.Generator().manual_seed(1)
    calib, held = torch.rand(64, 3, 8, 8, generator=g), torch.rand(64, 3, 8, 8, generator=g)
    art = fe.export(model, "c", example_input=held[:1], out_dir=tmp_path / "c", calibration_data=calib,
                    parity_inputs=held)
    checks = art.parity["checks"]
    assert checks["c_vs_tflm"]["max_lsb_diff"] == 0 and checks["c_vs_tflm"]["exact_fraction"] == 1.0
    with torch.no_grad():
        ref = model(held).numpy()
    out = art.predict(held)
    # int8 end to end stays near the float model: a step or two on average, a tenth of the range at worst
    # (a tanh output scale fixed at 1/128 by TFLM's kernel coarsens the centre-cat branch), same class mostly
    step = art.output_quant[0]
    assert np.mean(np.abs(out - ref)) < 2 * step
    assert np.max(np.abs(out - ref)) < 0.1 * np.max(np.abs(ref))
    assert np.mean(out.argmax(1) == ref.argmax(1)) >= 0.9
