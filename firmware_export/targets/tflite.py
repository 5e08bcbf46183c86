"""TFLite via litert-torch: fp32, and fully-integer int8 from ONE PT2E-quantized graph.

The int8 graph is made with litert-torch's ``PT2EQuantizer`` (symmetric per-channel weights,
per-tensor static activations; the same quantizer ``edgekd.quant.pt2e`` uses) and checked in
LiteRT with TFLite's reference kernels (BUILTIN_REF), with the default optimized kernels
(XNNPACK, within 1 LSB) and against the torch PT2E graph itself.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from .. import parity
from ..errors import ExportError
from ..firmware import for_layout
from ..interp import io_quant, quantize, run_tflite, tflite_interpreter

PRECISIONS = ("int8", "fp32")
INT8_RUNTIMES = ("litert", "litert_ref")
FP32_RUNTIMES = ("litert", "litert_ref")


def int8_quantizer():
    """litert-torch's PT2E quantizer: symmetric per-channel int8 weights, static per-tensor activations."""
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config

    return PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))


QUANTIZER_DESC = {"quantizer": "litert_torch PT2EQuantizer", "weights": "int8 symmetric per-channel",
                  "activations": "int8 static per-tensor"}


def is_quantized_graph(model) -> bool:
    """True for a PT2E graph after ``convert_pt2e`` (it holds quantize/dequantize nodes)."""
    if not isinstance(model, torch.fx.GraphModule):
        return False
    return any(getattr(n.target, "namespace", None) == "quantized_decomposed" for n in model.graph.nodes)


def quantize_pt2e(model, example_input, calibration, *, batch_size=64):
    """PTQ: ``torch.export`` (dynamic batch) -> ``prepare_pt2e`` -> calibrate -> ``convert_pt2e``."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = prepare_pt2e(one_partition_per_call(export_dynamic_batch(model.eval(), example_input)), int8_quantizer())
    with torch.no_grad():
        for start in range(0, len(calibration), batch_size):
            graph(calibration[start:start + batch_size])
    graph = convert_pt2e(graph, fold_quantize=False)
    allow_exported_model_train_eval(graph)
    graph.eval()  # the patched .eval() returns None and leaves .training set; converters read it
    for module in graph.modules():
        module.training = False
    return graph


def export_dynamic_batch(model, example_input):
    """``torch.export`` with a symbolic batch dimension, so the graph also evaluates batches."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    x = example_input.expand(2, *example_input.shape[1:]).contiguous()
    try:
        return torch.export.export(model, (x,), dynamic_shapes=({0: batch},)).module()
    except Exception:  # noqa: BLE001 - some graphs specialize the batch; fall back to a static one
        return torch.export.export(model, (example_input,)).module()


def one_partition_per_call(graph):
    """Give each call of a reused module (one ``nn.ReLU`` or ``nn.MaxPool2d`` called twice in ``forward``)
    its own module path, so the PT2E annotators see one partition per call.

    They group nodes by the innermost module path; a group holding two calls is annotated by whichever
    of its output nodes a set yields first, and ``prepare_pt2e`` then fails at random ("'relu_1' not in
    dict_keys(...)", seen in 3 to 5 runs of 8 on the same model). torch already marks the second call
    with ``@1`` in the stack's key; copy that into the path.
    """
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if not stack:
            continue
        key, (path, cls) = list(stack.items())[-1]
        call = key[key.rindex("@"):] if "@" in key else ""
        if call and not path.endswith(call):
            stack[key] = (path + call, cls)
    return graph


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
    """The PT2E graph to a fully integer .tflite (int8 input and output tensors)."""
    import litert_torch
    from litert_torch.quantize.quant_config import QuantConfig

    try:
        with quiet(verbose):
            litert_torch.convert(graph, (example_input,), quant_config=QuantConfig(pt2e_quantizer=int8_quantizer())
                                 ).export(str(path))
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"litert_torch.convert (int8) failed: {_first(err)}") from None
    interp = tflite_interpreter(path)
    for kind, detail in (("input", interp.get_input_details()[0]), ("output", interp.get_output_details()[0])):
        if np.dtype(detail["dtype"]) != np.int8:
            raise ExportError(f"{path}: the int8 model's {kind} tensor is {np.dtype(detail['dtype'])}, not int8 "
                              "(the graph is not fully integer)")
    return Path(path)


def write_int8(job, path) -> Path:
    """The int8 .tflite every int8 target starts from: the user's own bytes, or converted from the PT2E graph."""
    if job.tflite_bytes is not None:
        Path(path).write_bytes(job.tflite_bytes)
        return Path(path)
    return convert_int8(for_layout(job.quantized, job.input_layout), job.graph_inputs(job.example_input), path,
                        verbose=job.verbose)


def _first(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def tflite_quant(path):
    """((in_scale, in_zero), (out_scale, out_zero)) of a .tflite model (None for float tensors)."""
    interp = tflite_interpreter(path)
    return io_quant(interp.get_input_details()[0]), io_quant(interp.get_output_details()[0])


def ops_in(path) -> list[str]:
    interp = tflite_interpreter(path, reference=True)  # no XNNPACK delegate hiding the ops
    return sorted({op["op_name"] for op in interp._get_ops_details()})


def int8_reference(job, tflite_path) -> dict:
    """Int8 codes of the parity inputs and the outputs of LiteRT reference/optimized kernels and torch
    (no torch outputs for a user's .tflite: there is no graph to run)."""
    qin, qout = tflite_quant(tflite_path)
    x_q = quantize(job.graph_inputs(job.parity_inputs).numpy(), *qin)
    refs = {
        "x_q": x_q, "qin": qin, "qout": qout,
        "litert_ref": run_tflite(tflite_interpreter(tflite_path, reference=True), x_q),
        "litert": run_tflite(tflite_interpreter(tflite_path), x_q),
    }
    if job.quantized is not None:
        refs["torch_int8"] = quantize(job.torch_int8(), *qout)
    return refs


def int8_checks(job, refs, output, *, runtime) -> dict:
    """The checks every int8 runtime passes: exact vs reference kernels, 1 LSB vs XNNPACK, torch."""
    checks = {}
    if runtime != "litert_ref":
        checks[f"{runtime}_vs_litert_ref"] = parity.lsb_check(
            refs["litert_ref"], output, max_lsb=parity.LITERT_REF_LSB, min_exact=parity.LITERT_REF_MIN_EXACT,
            against="LiteRT BUILTIN_REF kernels")
    if runtime != "litert":
        checks[f"{runtime}_vs_litert_xnnpack"] = parity.lsb_check(
            refs["litert"], output, max_lsb=parity.OPTIMIZED_LSB, against="LiteRT default kernels (XNNPACK)")
    if "torch_int8" in refs:
        checks[f"{runtime}_vs_torch_pt2e"] = parity.argmax_check(
            refs["torch_int8"], output, against="torch PT2E int8 graph", lsb_reference=refs["torch_int8"])
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
        convert_fp32(for_layout(job.float_model, job.input_layout), job.graph_inputs(job.example_input), path,
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
    checks = {"litert_ref_vs_litert_xnnpack": parity.lsb_check(
        refs["litert_ref"], refs["litert"], max_lsb=parity.OPTIMIZED_LSB,
        against="LiteRT default kernels (XNNPACK)")}
    checks.update(int8_checks(job, refs, refs["litert_ref"], runtime="litert_ref"))
    meta = {"runtimes": list(INT8_RUNTIMES), "default_runtime": "litert_ref", "input_quant": refs["qin"],
            "output_quant": refs["qout"], "tflite_ops": ops_in(path), "versions": versions}
    return [path.name], meta, checks


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
