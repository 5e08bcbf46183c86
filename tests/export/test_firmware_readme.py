"""Every export folder has a README.md whose numbers are export.json's and whose code runs: the
Python snippet of the onnx, tflite and executorch READMEs is executed here on an input and must give
what the artifact's own runtime gives (the c and tflm READMEs are checked in test_firmware_c.py and
test_firmware_tflm.py)."""
import os
import re

import numpy as np
import pytest
import torch
from torch import nn

import firmware_export as fe

SHAPE = (1, 2, 6, 6)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.conv(x)), 1))


def _export(target, tmp_path, **kw):
    torch.manual_seed(0)
    return fe.export(Tiny().eval(), target, example_input=torch.zeros(SHAPE), out_dir=tmp_path / target,
                     calibration_data=torch.randn(64, *SHAPE[1:]), **kw)


def _io_rows(readme):
    rows = {}
    for kind in ("input", "output"):
        row = next(line for line in readme.splitlines() if line.startswith(f"| {kind} |"))
        rows[kind] = [c.strip() for c in row.strip("|").split("|")][1:]
    return rows


def _check_facts(art):
    readme = (art.path / "README.md").read_text()
    config = art.config
    assert readme.startswith(f"# model: {config['target']} export ({config['precision']})")
    rows = _io_rows(readme)
    for kind in ("input", "output"):
        shape, dtype, _, scale, zero = rows[kind]
        assert shape == str(config[f"{kind}_shape"])
        quant = config.get(f"{kind}_quant")
        if quant:
            assert dtype == "int8" and float(scale) == quant[0] and int(zero) == quant[1]
        else:
            assert (dtype, scale, zero) == ("float32", "-", "-")
    assert re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M) == config["files"]
    assert "README.md" in config["files"] and (art.path / "README.md").is_file()
    assert f"passed on {art.parity['n_inputs']} inputs" in readme
    target = f"{config['target']}/{config['precision']}"
    assert [f"| {target} | {name} |" in readme for name in art.parity["checks"]] == [True] * len(art.parity["checks"])
    return readme


def _run_snippet(art, readme, x):
    """Execute the README's python block in the export folder with ``x`` defined; return its ``y``."""
    block = re.findall(r"```python\n(.*?)```", readme, flags=re.S)[0]
    cwd = os.getcwd()
    os.chdir(art.path)
    try:
        scope = {"x": x}
        exec(block, scope)  # noqa: S102 - the README's own code, on a test input
    finally:
        os.chdir(cwd)
    return scope["y"]


@pytest.mark.slow
def test_onnx_readme(tmp_path):
    pytest.importorskip("onnxruntime")
    art = _export("onnx", tmp_path)
    readme = _check_facts(art)
    x = np.random.default_rng(0).normal(size=SHAPE).astype(np.float32)
    np.testing.assert_array_equal(_run_snippet(art, readme, x), art.predict(x))


@pytest.mark.slow
@pytest.mark.parametrize("precision, layout", [("int8", None), ("fp32", "nhwc")])
def test_tflite_readme(tmp_path, precision, layout):
    """The snippet on an input in the README's layout equals the artifact's LiteRT run; an NHWC float
    .tflite on x.permute(0, 2, 3, 1) computes the torch model on x."""
    pytest.importorskip("litert_torch")
    art = _export("tflite", tmp_path, precision=precision, input_layout=layout)
    readme = _check_facts(art)
    x = np.random.default_rng(1).normal(size=SHAPE).astype(np.float32)
    x_dev = x.transpose(0, 2, 3, 1).copy() if layout == "nhwc" else x
    y = np.asarray(_run_snippet(art, readme, x_dev), np.float32)
    np.testing.assert_array_equal(y, art.predict(x_dev, runtime="litert"))
    if precision == "int8":
        assert "BUILTIN_REF" in readme and "round_half_even" in readme
    if layout == "nhwc":
        assert _io_rows(readme)["input"][:3] == ["[1, 6, 6, 2]", "float32", "NHWC (channels last: HWC pixels)"]
        torch.manual_seed(0)
        with torch.no_grad():
            ref = Tiny().eval()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_executorch_readme(tmp_path):
    pytest.importorskip("executorch")
    pytest.importorskip("litert_torch")
    art = _export("executorch", tmp_path)
    readme = _check_facts(art)
    x = torch.randn(SHAPE)
    y = _run_snippet(art, readme, x)
    np.testing.assert_array_equal(y.numpy(), art.predict(x))
    inside = art.config["internal_output_quant"]
    assert f"scale {float(inside[0])!r}, zero point {int(inside[1])}" in readme
    assert f"The `.pte` ({art.config['pte_bytes']} bytes)" in readme
