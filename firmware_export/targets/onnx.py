"""ONNX: fp32 from the canonical graph, and int8 as QDQ from the same PT2E graph the other int8
targets convert, both with ``torch.onnx.export(..., dynamo=True)`` and checked in onnxruntime.

The int8 file keeps float input and output: QuantizeLinear/DequantizeLinear pairs carry the PT2E
scales and zero points (per-channel weights, per-tensor activations). Its arithmetic is the QDQ
semantics, i.e. the torch PT2E graph's float simulation: onnxruntime with graph optimizations off
runs it literally and is gated against torch (<= 8 LSB, mean <= 0.25 LSB: two float simulations
drift apart only by rounding flips, see ``QDQ_MAX_LSB``). With optimizations on (the default
runtime), onnxruntime fuses QDQ into integer kernels that round differently; that difference is
reported, never blocking (like XNNPACK's).
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import torch

from .. import parity
from ..errors import ExportError
from ..ops import ANY

PRECISIONS = ("fp32", "int8")
ACCEPTS = ANY  # whatever torch.onnx.export (dynamo) takes; its failure is reported in one line
# onnxruntime without graph optimizations vs the torch PT2E graph: the same float simulation, but
# float sums in another order flip a rounding at a quantize node now and then, and a flip moves
# the layers after it (measured on the zoo with random weights: max 0-1 LSB, mean <= 0.011 LSB on
# DS-CNN, ResNet-8, MobileNetV1 and the FC autoencoder; 2-3 LSB, mean 0.05 on the 52-layer
# MobileNetV2-0.35). A wrong scale, zero point or weight layout is off by many LSB on most
# outputs: the mean catches it; the max only bounds the drift.
QDQ_MAX_LSB = 8
QDQ_MEAN_LSB = 0.25


def build(job, folder: Path):
    import onnxruntime

    path = folder / f"{job.name}.onnx"
    meta = {"versions": {"onnxruntime": onnxruntime.__version__}}
    if job.precision == "fp32":
        if job.canonical is None:
            raise ExportError("onnx fp32 exports float models; got an already int8-quantized PT2E graph "
                              "(use precision='int8' for QDQ ONNX)")
        _export(job.canonical, job.example_input, path, job.verbose)
        out = _session(path)(job.parity_inputs.numpy())
        checks = {"onnxruntime_vs_torch": parity.float_check(job.torch_float(), out, against="torch fp32")}
        meta.update(runtimes=["onnxruntime"], default_runtime="onnxruntime")
        return sorted(p.name for p in folder.iterdir()), meta, checks
    _export(job.quantized, job.example_input, path, job.verbose)
    scale, zero = output_quant(job.quantized)
    x = job.parity_inputs.numpy()
    codes = {name: _codes(run(x), scale, zero) for name, run in
             (("onnxruntime_ref", _session(path, optimized=False)), ("onnxruntime", _session(path)))}
    torch_codes = _codes(job.torch_int8(), scale, zero)
    checks = {
        "onnxruntime_ref_vs_torch_pt2e": parity.lsb_check(
            torch_codes, codes["onnxruntime_ref"], max_lsb=QDQ_MAX_LSB, max_mean=QDQ_MEAN_LSB,
            against="torch PT2E int8 graph (QDQ semantics, onnxruntime graph optimizations off)"),
        "onnxruntime_vs_torch_pt2e": parity.lsb_check(
            torch_codes, codes["onnxruntime"], max_lsb=parity.OPTIMIZED_LSB, blocking=False,
            against="torch PT2E int8 graph (onnxruntime's fused integer kernels)"),
    }
    float_out = job.torch_float()
    if float_out is not None:
        checks["onnxruntime_vs_torch_fp32"] = parity.info(float_out, _session(path)(x),
                                                          against="torch fp32 model (information)")
    meta.update(runtimes=["onnxruntime", "onnxruntime_ref"], default_runtime="onnxruntime",
                qdq_output_quant=[float(scale), int(zero)])
    return sorted(p.name for p in folder.iterdir()), meta, checks


def _export(model, example_input, path, verbose):
    quiet = contextlib.redirect_stdout(io.StringIO()) if not verbose else contextlib.nullcontext()
    try:
        with quiet, torch.no_grad():
            torch.onnx.export(model, (example_input,), dynamo=True, verbose=False).save(str(path))
    except Exception as err:  # noqa: BLE001
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"torch.onnx.export failed: {first}") from None


def output_quant(graph) -> tuple[float, int]:
    """(scale, zero point) of a PT2E graph's output: the dequantize feeding its output node."""
    out = next(n for n in graph.graph.nodes if n.op == "output")
    node = out.args[0][0] if isinstance(out.args[0], (list, tuple)) else out.args[0]
    while isinstance(node, torch.fx.Node) and "dequantize" not in str(node.target) and node.args:
        node = node.args[0]  # through a trailing reshape
    if not isinstance(node, torch.fx.Node) or "dequantize_per_tensor" not in str(node.target):
        raise ExportError("onnx int8: the quantized graph's output does not come from a per-tensor dequantize")
    return float(node.args[1]), int(node.args[2])


def _codes(y, scale, zero):
    from ..interp import quantize

    return quantize(np.asarray(y, np.float32), scale, zero)


def _session(path, optimized=True):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
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
    return _session(Path(folder) / f"{config['name']}.onnx", optimized=runtime != "onnxruntime_ref")
