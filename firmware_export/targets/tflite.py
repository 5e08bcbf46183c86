"""TFLite via litert-torch: fp32, and fully-integer int8 from ONE PT2E-quantized graph.

The int8 graph is made from the canonical graph with litert-torch's ``PT2EQuantizer`` plus the
annotations in ``quantizer.py`` (symmetric per-channel weights, per-tensor static activations).
Checked in LiteRT with TFLite's reference kernels (BUILTIN_REF) against TFLite Micro (blocking,
when TFLM has every kernel), and, reported only, against LiteRT's default kernels (XNNPACK) and
the torch PT2E graph. fp32 is checked against torch in both LiteRT kernel sets.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import weakref
from pathlib import Path

import numpy as np
import torch

from .. import parity
from ..canonicalize import run
from ..errors import ExportError
from ..firmware import for_layout
from ..interp import io_quant, quantize, run_tflite, tflite_interpreter
from ..ops import ANY
from ..quantizer import int8_quantizer

PRECISIONS = ("int8", "fp32")
ACCEPTS = ANY  # whatever litert-torch converts; its failure is reported in one line
INT8_RUNTIMES = ("litert", "litert_ref")
FP32_RUNTIMES = ("litert", "litert_ref")


QUANTIZER_DESC = {"quantizer": "litert_torch PT2EQuantizer + edgekd annotations", "weights": "int8 symmetric per-channel",
                  "activations": "int8 static per-tensor"}


def is_quantized_graph(model) -> bool:
    """True for a PT2E graph after ``convert_pt2e`` (it holds quantize/dequantize nodes)."""
    if not isinstance(model, torch.fx.GraphModule):
        return False
    return any(getattr(n.target, "namespace", None) == "quantized_decomposed" for n in model.graph.nodes)


def quantize_pt2e(model, example_input, calibration, *, batch_size=64):
    """PTQ: ``torch.export`` (dynamic batch) -> ``prepare_pt2e`` -> calibrate -> ``convert_pt2e``.

    ``model`` may be a graph from :func:`firmware_export.canonicalize.canonicalize` (then it is
    quantized as it is, on a copy) or any float module (canonicalized here first).
    """
    import copy

    from ..canonicalize import canonicalize
    from ..quantizer import finish, prepare

    if isinstance(model, torch.fx.GraphModule):
        graph = copy.deepcopy(model)
    else:
        graph = canonicalize(model, example_input)
    graph = prepare(graph)
    for start in range(0, len(calibration), batch_size):
        run(graph, calibration[start:start + batch_size])
    return finish(graph)


@contextlib.contextmanager
def quiet(verbose):
    """litert-torch prints progress lines; keep them out of the output unless verbose."""
    if verbose:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def convert_fp32(model, example_input, path, *, verbose=None) -> Path:
    import litert_torch

    try:
        with quiet(verbose):
            litert_torch.convert(model.eval(), (example_input,)).export(str(path))
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"litert_torch.convert (fp32) failed: {_first(err)}") from None
    return Path(path)


def convert_int8(graph, example_input, path, *, verbose=None) -> Path:
    """The PT2E graph to a fully integer .tflite (int8 input and output tensors).

    The file is cached per graph object (and its weights and example input), so exporting one
    quantized graph to tflite, tflm and c converts it once.
    """
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    # a PT2E graph is cached; a wrapper made per export (the NHWC input layout) is converted each time
    key = _graph_key(graph, example_input) if isinstance(graph, torch.fx.GraphModule) else None
    cached = _INT8_FILES.get(graph, {}).get(key) if key else None
    if cached is not None:
        Path(path).write_bytes(cached)
        return Path(path)
    try:
        with quiet(verbose):
            litert_torch.convert(graph, (example_input,), quant_config=QuantConfig(pt2e_quantizer=int8_quantizer())
                                 ).export(str(path))
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"litert_torch.convert (int8) failed: {_first(err)}") from None
    interp = tflite_interpreter(path)
    for kind, detail in (("input", interp.get_input_details()[0]), ("output", interp.get_output_details()[0])):
        if np.dtype(detail["dtype"]) != np.int8:
            raise ExportError(f"{path}: the int8 model's {kind} tensor is {np.dtype(detail['dtype'])}, not int8: "
                              f"{_float_edge(path, kind)} stayed float (the int8 quantizer does not cover it); "
                              "export with precision='fp32' or to onnx")
    if key:
        _INT8_FILES.setdefault(graph, {})[key] = Path(path).read_bytes()
    return Path(path)


def write_int8(job, path) -> Path:
    """The int8 .tflite every int8 target starts from: the user's own bytes, or converted from the PT2E graph."""
    if job.tflite_bytes is not None:
        Path(path).write_bytes(job.tflite_bytes)
        return Path(path)
    return convert_int8(for_layout(job.quantized, job.input_layout), job.graph_inputs(job.example_input), path,
                        verbose=job.verbose)


_INT8_FILES = weakref.WeakKeyDictionary()  # PT2E graph -> {key: .tflite bytes}


def _graph_key(graph, example_input) -> str:
    digest = hashlib.sha256(graph.code.encode())
    for name, tensor in sorted(graph.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(example_input.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _float_edge(path, kind) -> str:
    """The op next to a float graph input/output, by builtin and tensor name."""
    from ..tflite_reader import read_tflite

    g = read_tflite(path)
    ops = g.operators if kind == "output" else reversed(g.operators)
    found = "an op"
    for op in ops:
        if any(g.tensors[i].dtype == "FLOAT32" for i in (op.outputs if kind == "output" else op.inputs) if i >= 0) \
                and op.op not in ("DEQUANTIZE", "QUANTIZE"):
            found = f"{op.op} ({g.tensors[op.outputs[0]].name})"
    return found


def _first(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def tflite_quant(path):
    """((in_scale, in_zero), (out_scale, out_zero)) of a .tflite model (None for float tensors)."""
    interp = tflite_interpreter(path)
    return io_quant(interp.get_input_details()[0]), io_quant(interp.get_output_details()[0])


def _op_list(path) -> list[str]:
    from ..tflite_reader import read_tflite

    return [op.op for op in read_tflite(path).operators]


def ops_in(path) -> list[str]:
    interp = tflite_interpreter(path, reference=True)  # no XNNPACK delegate hiding the ops
    return sorted({op["op_name"] for op in interp._get_ops_details()})


_LITERT_RUNS: dict = {}


def int8_reference(job, tflite_path) -> dict:
    """Int8 codes of the parity inputs and the outputs of LiteRT reference/optimized kernels and torch
    (no torch outputs for a user's .tflite: there is no graph to run)."""
    qin, qout = tflite_quant(tflite_path)
    x_q = quantize(job.graph_inputs(job.parity_inputs).numpy(), *qin)
    key = hashlib.sha256(Path(tflite_path).read_bytes() + x_q.tobytes() + str(x_q.shape).encode()).hexdigest()
    if key not in _LITERT_RUNS:  # tflite, tflm and c exporting one graph run LiteRT once
        if len(_LITERT_RUNS) >= 8:
            _LITERT_RUNS.clear()
        _LITERT_RUNS[key] = (run_tflite(tflite_interpreter(tflite_path, reference=True), x_q),
                             run_tflite(tflite_interpreter(tflite_path), x_q))
    litert_ref, litert = _LITERT_RUNS[key]
    refs = {
        "x_q": x_q, "qin": qin, "qout": qout, "litert_ref": litert_ref.copy(), "litert": litert.copy(),
        "fc_layers": sum(op == "FULLY_CONNECTED" for op in _op_list(tflite_path)),
    }
    if job.quantized is not None:
        refs["torch_int8"] = quantize(job.torch_int8(), *qout)
    return refs


def int8_checks(job, refs, output, *, runtime) -> dict:
    """The checks of an int8 runtime: vs LiteRT's reference kernels (blocking: <= 1 LSB, >= 99% exact);
    vs XNNPACK and vs the torch PT2E graph (reported with their limits, never blocking)."""
    checks = {}
    if runtime != "litert_ref":
        checks[f"{runtime}_vs_litert_ref"] = parity.litert_ref_check(refs["litert_ref"], output,
                                                                    fc_layers=refs["fc_layers"])
    if runtime != "litert":
        checks[f"{runtime}_vs_litert_xnnpack"] = parity.lsb_check(
            refs["litert"], output, max_lsb=parity.OPTIMIZED_LSB, against="LiteRT default kernels (XNNPACK)",
            blocking=False)
    if "torch_int8" in refs:
        checks[f"{runtime}_vs_torch_pt2e"] = parity.argmax_check(
            refs["torch_int8"], output, against="torch PT2E int8 graph", lsb_reference=refs["torch_int8"],
            blocking=False)
    float_out = job.torch_float()
    if float_out is not None:
        from ..interp import dequantize

        checks[f"{runtime}_vs_torch_fp32"] = parity.info(float_out, dequantize(output, *refs["qout"]),
                                                         against="torch fp32 model (information)")
    return checks


def build(job, folder: Path):
    import litert_torch

    versions = {"litert_torch": getattr(litert_torch, "__version__", "?"), "ai_edge_litert": _litert_version()}
    path = folder / f"{job.name}.tflite"
    if job.precision == "fp32":
        convert_fp32(for_layout(job.canonical, job.input_layout), job.graph_inputs(job.example_input), path,
                     verbose=job.verbose)
        x = job.graph_inputs(job.parity_inputs).numpy()
        checks = {
            "litert_vs_torch": parity.float_check(job.torch_float(), run_tflite(tflite_interpreter(path), x),
                                                  against="torch fp32"),
            "litert_ref_vs_torch": parity.float_check(job.torch_float(),
                                                      run_tflite(tflite_interpreter(path, reference=True), x),
                                                      against="torch fp32"),
        }
        meta = {"runtimes": list(FP32_RUNTIMES), "default_runtime": "litert", "tflite_ops": ops_in(path),
                "versions": versions}
        return [path.name], meta, checks
    write_int8(job, path)
    refs = int8_reference(job, path)
    checks = int8_checks(job, refs, refs["litert_ref"], runtime="litert_ref")
    checks.update(_tflm_check(path, refs))
    meta = {"runtimes": list(INT8_RUNTIMES), "default_runtime": "litert_ref", "input_quant": refs["qin"],
            "output_quant": refs["qout"], "tflite_ops": ops_in(path), "versions": versions}
    return [path.name], meta, checks


def _tflm_check(path, refs) -> dict:
    """LiteRT's reference kernels against TFLite Micro (blocking) when TFLM has a kernel for every op:
    the two implementations of TFLite's reference integer arithmetic must agree (1 LSB FC exception)."""
    from .tflm import KERNELS, tflm_reference

    missing = sorted(set(ops_in(path)) - KERNELS)
    if missing:
        return {"litert_ref_vs_tflm": {"kind": "info", "against": "TFLite Micro", "passed": True, "blocking": False,
                                       "max_abs_err": float("nan"), "argmax_agreement": float("nan"),
                                       "note": f"not run: TFLM has no kernel for {', '.join(missing)}"}}
    _, out = tflm_reference(Path(path).read_bytes(), refs["x_q"])
    return {"litert_ref_vs_tflm": parity.litert_ref_check(out, refs["litert_ref"], fc_layers=refs["fc_layers"],
                                                          against="TFLite Micro")}


def _litert_version():
    try:
        from importlib.metadata import version

        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001
        return "?"


def open_runtime(folder, config, runtime):
    interp = tflite_interpreter(Path(folder) / f"{config['name']}.tflite", reference=runtime == "litert_ref")
    return lambda x: run_tflite(interp, x)


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
