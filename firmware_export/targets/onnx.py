"""ONNX (fp32): ``torch.onnx.export(..., dynamo=True)``, checked in onnxruntime."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch

from .. import parity
from ..errors import ExportError

PRECISIONS = ("fp32",)


def build(job, folder: Path):
    if job.float_model is None:
        raise ExportError("onnx target exports float models; got an already int8-quantized PT2E graph "
                          "(for low-bit ONNX use edgekd.quant.lowbit's QCDQ/QONNX export)")
    path = folder / f"{job.name}.onnx"
    quiet = contextlib.redirect_stdout(io.StringIO()) if not job.verbose else contextlib.nullcontext()
    try:
        with quiet, torch.no_grad():
            program = torch.onnx.export(job.float_model, (job.example_input,), dynamo=True, verbose=False)
            program.save(str(path))
    except Exception as err:  # noqa: BLE001
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"torch.onnx.export failed: {first}") from None
    files = sorted(p.name for p in folder.iterdir())
    run = _session(path)
    out = run(job.parity_inputs.numpy())
    checks = {"onnxruntime_vs_torch": parity.float_check(job.torch_float(), out, against="torch fp32")}
    import onnxruntime

    meta = {"runtimes": ["onnxruntime"], "default_runtime": "onnxruntime",
            "versions": {"onnxruntime": onnxruntime.__version__}}
    return files, meta, checks


def _session(path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # noqa: BLE001  onnxruntime raises its own pybind exception types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0].split(" failed:")[-1].strip()
        raise ExportError(f"{path}: not a loadable .onnx model, corrupt or truncated? ({first})") from None
    name = session.get_inputs()[0].name

    def run(x):
        x = np.asarray(x, np.float32)
        return np.concatenate([session.run(None, {name: s[None]})[0] for s in x]).astype(np.float32)

    return run


def open_runtime(folder, config, runtime):
    return _session(Path(folder) / f"{config['name']}.onnx")
