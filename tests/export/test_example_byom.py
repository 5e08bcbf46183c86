"""examples/byom/net.py, the README's user model: every idiom in it reaches every target."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

import firmware_export as fe
from firmware_export.canonicalize import canonicalize
from firmware_export.ops import accepted_by, op_uses

ROOT = Path(__file__).resolve().parents[2]


def test_user_idioms_canonicalize_to_ops_every_target_takes():
    loaded = fe.load_model(f"{ROOT}/examples/byom/net.py:make_model", input_shape=(1, 1, 49, 10))
    x = torch.randn(8, 1, 49, 10, generator=torch.Generator().manual_seed(0))
    graph = canonicalize(loaded.model, x[:1])
    uses = op_uses(graph)
    # in-place ReLU, clamp(0, 6), AdaptiveAvgPool2d, BatchNorm1d/2d, dropout, flatten: none survives as itself
    assert {u.op for u in uses} <= {"conv2d", "depthwise_conv2d", "relu", "relu6", "global_avg_pool", "linear",
                                    "reshape"}
    assert accepted_by(uses) == ["onnx", "tflite", "tflm", "c", "executorch"]
    with torch.no_grad():
        expected = loaded.model(x).numpy()
        got = np.concatenate([graph(x[i:i + 1]).numpy() for i in range(len(x))])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_example_writes_the_files_the_readme_uses(tmp_path):
    subprocess.run([sys.executable, str(ROOT / "examples/byom/net.py"), str(tmp_path)], check=True,
                   capture_output=True)
    cal, held = np.load(tmp_path / "cal.npy"), np.load(tmp_path / "held.npy")
    assert cal.shape == (256, 1, 49, 10) and held.shape == (200, 1, 49, 10) and cal.dtype == np.float32
    program = torch.export.load(tmp_path / "model.pt2")
    model = fe.load_model(f"{ROOT}/examples/byom/net.py:make_model", input_shape=(1, 1, 49, 10)).model
    x = torch.from_numpy(held[:1])  # the program was exported with batch 1
    with torch.no_grad():
        np.testing.assert_allclose(program.module()(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
