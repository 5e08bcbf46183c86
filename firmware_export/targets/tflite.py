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
from ..interp import io_quant, outputs_of, quantize, run_tflite, tflite_interpreter
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
    for kind, detail in ([("input", d) for d in interp.get_input_details()]
                         + [("output", d) for d in interp.get_output_details()]):
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
    """(input (scale, zero), [each output's (scale, zero)]) of a .tflite model (None for float tensors)."""
    interp = tflite_interpreter(path)
    return io_quant(interp.get_input_details()[0]), [io_quant(d) for d in interp.get_output_details()]


def _op_list(path) -> list[str]:
    from ..tflite_reader import read_tflite

    return [op.op for op in read_tflite(path).operators]


def ops_in(path) -> list[str]:
    interp = tflite_interpreter(path, reference=True)  # no XNNPACK delegate hiding the ops
    return sorted({op["op_name"] for op in interp._get_ops_details()})


# How many output steps one elementwise op can turn one input step into (its largest slope times
# s_in / s_out): a 1-LSB difference before it may become ceil(that) after it.
_SLOPE = {"LOGISTIC": 0.25, "TANH": 1.0, "HARD_SWISH": 1.5, "SOFTMAX": 0.5}  # softmax: sum_j |dp_i/dx_j| <= 1/2
_SAME_SLOPE = {"RELU", "RELU6", "RELU_N1_TO_1", "QUANTIZE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "MEAN", "PAD",
               "PADV2", "TRANSPOSE", "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "CONCATENATION", "ADD", "SUB"}


def litert_fc_lsb(path) -> list[int]:
    """Per graph output, the most LSB one LiteRT FULLY_CONNECTED rounding flip can move it.

    LiteRT's BUILTIN_REF FULLY_CONNECTED is 1 LSB off TFLite's reference integer arithmetic on a few
    outputs (``parity.LITERT_REF_LSB``); an op after it whose output step is finer than its input's
    magnifies that: measured, a tanh at 1/128 after an FC at 0.034 gave 5 LSB between LiteRT and
    TFLite Micro, every difference on a sample where LiteRT's FC output was 1 off the hand-computed
    one. Walks the graph in order: an FC output starts at 1 LSB (or what its input already carries),
    an elementwise op multiplies by its gain and rounds up, other ops (conv, another FC) keep the
    bound, the measured rule for chains of FC layers (``parity.py``).
    """
    from ..tflite_reader import read_tflite

    g = read_tflite(path)
    bound = {}

    def scale(i):
        t = g.tensors[i]
        return float(t.scale[0]) if t.scale is not None and len(t.scale) == 1 else None

    for op in g.operators:
        outs = [i for i in op.outputs if i >= 0]
        ins = [i for i in op.inputs if i >= 0 and i in bound]
        if op.op == "FULLY_CONNECTED":
            b = max([parity.LITERT_REF_LSB] + [bound[i] for i in ins])
        elif not ins:
            continue
        else:
            b = 0
            for i in ins:
                gain = _gain(op, g, i, scale(i), scale(outs[0]) if outs else None)
                b = max(b, bound[i] if gain <= 1 + 1e-6 else int(np.ceil(bound[i] * gain + 1e-6)))
        for o in outs:
            bound[o] = b
    return [bound.get(i, 0) for i in g.outputs]


def _gain(op, g, i, s_in, s_out) -> float:
    if s_in is None or s_out is None or s_out <= 0:
        return 1.0
    if op.op in _SLOPE:
        slope = _SLOPE[op.op] * (float(op.options.get("beta", 1.0)) if op.op == "SOFTMAX" else 1.0)
    elif op.op == "LEAKY_RELU":
        slope = max(1.0, abs(float(op.options.get("alpha", 0.0))))
    elif op.op == "MUL":  # d(a*b)/da = b: the other operand's largest magnitude
        other = g.tensors[next((j for j in op.inputs if j >= 0 and j != i), i)]
        if other.scale is None:
            return 1.0
        zero = int(other.zero_point[0])
        slope = float(other.scale[0]) * max(abs(-128 - zero), abs(127 - zero))
    elif op.op in _SAME_SLOPE:
        slope = 1.0
    else:
        return 1.0  # conv, FC and other mixing ops: the measured rule keeps the bound
    return slope * s_in / s_out


_LITERT_RUNS: dict = {}


def int8_reference(job, tflite_path) -> dict:
    """Int8 codes of the parity inputs and the outputs of LiteRT reference/optimized kernels and torch
    (no torch outputs for a user's .tflite: there is no graph to run). Outputs are lists, one array
    per graph output (in the order the model returns them)."""
    qin, qouts = tflite_quant(tflite_path)
    x_q = quantize(job.graph_inputs(job.parity_inputs).numpy(), *qin)
    key = hashlib.sha256(Path(tflite_path).read_bytes() + x_q.tobytes() + str(x_q.shape).encode()).hexdigest()
    if key not in _LITERT_RUNS:  # tflite, tflm and c exporting one graph run LiteRT once
        if len(_LITERT_RUNS) >= 8:
            _LITERT_RUNS.clear()
        _LITERT_RUNS[key] = (outputs_of(run_tflite(tflite_interpreter(tflite_path, reference=True), x_q)),
                             outputs_of(run_tflite(tflite_interpreter(tflite_path), x_q)))
    litert_ref, litert = _LITERT_RUNS[key]
    refs = {
        "x_q": x_q, "qin": qin, "qout": qouts[0], "qouts": qouts, "litert_ref": [y.copy() for y in litert_ref],
        "litert": [y.copy() for y in litert], "fc_layers": sum(op == "FULLY_CONNECTED" for op in _op_list(tflite_path)),
        "litert_ref_lsb": litert_fc_lsb(tflite_path),
    }
    if job.quantized is not None:
        torch_int8 = outputs_of(job.torch_int8())
        if len(torch_int8) != len(qouts):
            raise ExportError(f"{tflite_path}: the .tflite has {len(qouts)} outputs, the torch graph returns "
                              f"{len(torch_int8)}")
        refs["torch_int8"] = [quantize(y, *q) for y, q in zip(torch_int8, qouts)]
    return refs


def int8_checks(job, refs, output, *, runtime) -> dict:
    """The checks of an int8 runtime, per graph output: vs LiteRT's reference kernels (blocking: <= 1 LSB
    (more where an op after an FC magnifies LiteRT's FC rounding)); vs XNNPACK and vs the
    torch PT2E graph (reported with their limits, never blocking)."""
    from ..interp import dequantize

    outs = outputs_of(output)
    if len(outs) != len(refs["qouts"]):
        raise ExportError(f"the {runtime} runtime gave {len(outs)} outputs, the .tflite declares {len(refs['qouts'])}")
    per = {}

    def add(name, checks):
        per.setdefault(name, []).extend(checks)

    float_out = job.torch_float()
    for k, out in enumerate(outs):
        if runtime != "litert_ref":
            add(f"{runtime}_vs_litert_ref", [parity.litert_ref_check(
                refs["litert_ref"][k], out, fc_layers=refs["fc_layers"], max_lsb=refs["litert_ref_lsb"][k])])
        if runtime != "litert":
            add(f"{runtime}_vs_litert_xnnpack", [parity.lsb_check(
                refs["litert"][k], out, max_lsb=parity.OPTIMIZED_LSB, against="LiteRT default kernels (XNNPACK)",
                blocking=False)])
        if "torch_int8" in refs:
            add(f"{runtime}_vs_torch_pt2e", [parity.argmax_check(
                refs["torch_int8"][k], out, against="torch PT2E int8 graph", lsb_reference=refs["torch_int8"][k],
                blocking=False)])
        if float_out is not None:
            add(f"{runtime}_vs_torch_fp32", [parity.info(outputs_of(float_out)[k], dequantize(out, *refs["qouts"][k]),
                                                         against="torch fp32 model (information)")])
    checks = {}
    for name, per_k in per.items():
        checks.update(parity.per_output(name, per_k))
    return checks


def build(job, folder: Path):
    import litert_torch

    versions = {"litert_torch": getattr(litert_torch, "__version__", "?"), "ai_edge_litert": _litert_version()}
    path = folder / f"{job.name}.tflite"
    if job.precision == "fp32":
        convert_fp32(for_layout(job.canonical, job.input_layout), job.graph_inputs(job.example_input), path,
                     verbose=job.verbose)
        x = job.graph_inputs(job.parity_inputs).numpy()
        checks = {}
        for name, reference in (("litert_vs_torch", False), ("litert_ref_vs_torch", True)):
            outs = outputs_of(run_tflite(tflite_interpreter(path, reference=reference), x))
            checks.update(parity.per_output(name, [parity.float_check(ref, out, against="torch fp32")
                                                   for ref, out in zip(outputs_of(job.torch_float()), outs)]))
        meta = {"runtimes": list(FP32_RUNTIMES), "default_runtime": "litert", "tflite_ops": ops_in(path),
                "versions": versions}
        return [path.name], meta, checks
    write_int8(job, path)
    refs = int8_reference(job, path)
    checks = int8_checks(job, refs, refs["litert_ref"], runtime="litert_ref")
    checks.update(_tflm_check(path, refs))
    meta = {"runtimes": list(INT8_RUNTIMES), "default_runtime": "litert_ref", "input_quant": refs["qin"],
            "output_quant": refs["qout"], "output_quants": refs["qouts"], "tflite_ops": ops_in(path),
            "versions": versions}
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
    return parity.per_output("litert_ref_vs_tflm", [
        parity.litert_ref_check(o, ref, fc_layers=refs["fc_layers"], max_lsb=lsb, against="TFLite Micro")
        for o, ref, lsb in zip(outputs_of(out), refs["litert_ref"], refs["litert_ref_lsb"])])


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
