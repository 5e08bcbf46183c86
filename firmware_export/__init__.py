"""Export: a torch model in, a deployable artifact out, proven by a parity record.

>>> art = export(model, target="tflite", example_input=x, out_dir="exports/tflite",
...              calibration_data=train_x[:256], parity_inputs=test_x[:200])   # doctest: +SKIP
>>> art.parity["passed"], art.files, art.predict(test_x[:5])                    # doctest: +SKIP

Targets: ``onnx`` (fp32 default, int8), ``tflite`` (int8 default, fp32), ``tflm`` (int8), ``c`` (int8),
``executorch`` (int8 default, fp32). Every model first goes through one canonicalization pass
(``canonicalize.py``); each target then checks the ops it accepts (``ops.py``, ``ACCEPTS`` in each
``targets/<name>.py``). Model files (``.pt2``, ``net.py:factory``, an int8 ``.tflite``) and data files (``.npy``/``.npz``) are read
by :func:`load_model` and :func:`load_inputs` (:mod:`firmware_export.model_files`).
Every export folder is written atomically and holds ``export.json`` and ``parity.json``.
"""
from __future__ import annotations

import math
import re
import time
from pathlib import Path

import numpy as np
import torch

from .artifact import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, Artifact
from .errors import ExportError, ParityError, UnsupportedOpError
from .firmware import check_input_layout
from .interp import outputs_of
from .model_files import LoadedModel, TFLiteModel, load_inputs, load_model
from .ops import accepted_by, check_target, op_uses
from .readme import README, write_readme
from .targets import TARGETS, ExportJob, target_module

__all__ = ["export", "quantize", "accepted_by", "Artifact", "ExportError", "ParityError", "UnsupportedOpError",
           "TARGETS", "load", "load_model", "load_inputs", "LoadedModel", "TFLiteModel"]

DEFAULT_PARITY_INPUTS = 64
MULTI_OUTPUT_TARGETS = ("tflite", "tflm", "c")  # their checks and runtimes handle a tuple of outputs
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def load(path) -> Artifact:
    """Reopen an export folder written by :func:`export`."""
    return Artifact.load(path)


def export(model, target="onnx", *, example_input=None, out_dir, calibration_data=None, precision=None, name="model",
           parity_inputs=None, float_reference=None, input_layout=None, verbose=None) -> Artifact:
    """Export ``model`` to ``target`` in ``out_dir`` and prove it with a parity record.

    ``model``: a float ``torch.nn.Module`` (canonicalized first; its ops must be ones ``target``
    accepts), or an int8 PT2E graph from :func:`quantize` or ``edgekd.quant.pt2e`` (then no
    calibration is needed; it is checked as it is), or a fully-int8 ``.tflite`` read by
    :func:`load_model` (targets tflite/tflm/c; no torch involved).
    ``example_input``: a float32 tensor ``(1, ...)`` (not needed for a .tflite). ``calibration_data``:
    float inputs ``(N, ...)`` for int8 targets (a few hundred). ``precision``: ``"int8"`` (default
    for tflite/tflm/c/executorch; QDQ for onnx) or ``"fp32"`` (default for onnx; tflite, executorch).
    ``parity_inputs``: held-out float inputs ``(N, ...)``, or a count N of seeded random inputs in the calibration range (default 64).
    ``float_reference``: when ``model`` is an int8 PT2E graph, the float model it came from, compared
    for information. ``input_layout``: ``"nhwc"`` converts an image model (1, C, H, W) so the .tflite,
    TFLite Micro and native C models take (1, H, W, C) (an HWC camera buffer as it is; targets tflite,
    tflm, c); default ``"nchw"``, the torch layout. Raises :class:`ParityError` (and writes nothing) if
    parity fails. Every folder gets a ``README.md`` written from its ``export.json``.
    """
    from edgekd.log import logger, set_log_level

    set_log_level(verbose)
    module = target_module(target)
    precision = precision or module.PRECISIONS[0]
    if precision not in module.PRECISIONS:
        raise ExportError(f"Invalid value for the 'precision' parameter of target {target!r}. Allowed values are "
                          f"{', '.join(module.PRECISIONS)}, but got {precision!r} instead.")
    out_dir = _check_out_dir(out_dir)
    _check_name(name)
    if isinstance(model, TFLiteModel):
        if input_layout is not None:
            raise ExportError(f"{model.path}: input_layout applies to torch models; a .tflite keeps the input "
                              f"layout it was converted with {tuple(model.input_shape)}")
        return _export_tflite(model, target, module, out_dir, precision, name, parity_inputs, verbose)
    if example_input is None:
        raise ExportError("example_input: expected a float32 tensor (1, ...) that the model runs on, got None")
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    from .targets.tflite import QUANTIZER_DESC, is_quantized_graph, quantize_pt2e

    prequantized = is_quantized_graph(model)
    if not prequantized:
        model = model.eval()
    x = _check_example(model, example_input)
    layout = check_input_layout(input_layout, target, tuple(x.shape))
    t0 = time.perf_counter()
    from .canonicalize import canonicalize

    graph = model if prequantized else canonicalize(model, x)
    uses = op_uses(graph)
    check_target(uses, target)
    ops = sorted({u.op for u in uses})
    logger.info(f"export {target}/{precision}: ops {', '.join(ops)}")
    calibration = None
    if calibration_data is not None:
        calibration = _as_inputs(calibration_data, x, "calibration_data")
    p_in, p_desc = _parity_inputs(parity_inputs, x, calibration if calibration is not None else x)
    quantized = None
    if precision == "int8":
        if prequantized:
            quantized = model
        elif calibration is None:
            raise ExportError(f"target {target!r} with precision 'int8' needs calibration_data (a few hundred "
                              f"representative float inputs shaped (N, {', '.join(map(str, x.shape[1:]))})) "
                              "to quantize a float model, or an int8 PT2E graph from firmware_export.quantize")
        else:
            quantized = quantize_pt2e(graph, x, calibration)
    elif prequantized:
        raise ExportError(f"precision {precision!r} needs a float model; got an int8-quantized PT2E graph")
    job = ExportJob(name=name, precision=precision, example_input=x, parity_inputs=p_in, parity_inputs_desc=p_desc,
                    float_model=(float_reference.eval() if float_reference is not None else None) if prequantized
                    else model, calibration=calibration, quantized=quantized,
                    quantized_desc=QUANTIZER_DESC if precision == "int8" else {}, verbose=verbose,
                    canonical=None if prequantized else graph, op_uses=uses, input_layout=layout)
    with torch.no_grad():
        out_shapes = [list(y.shape) for y in outputs_of((job.float_model or job.quantized)(x))]
    if len(out_shapes) > 1 and target not in MULTI_OUTPUT_TARGETS:
        raise ExportError(f"{type(model).__name__} returns {len(out_shapes)} tensors; target {target!r} takes models "
                          f"returning one tensor ({', '.join(MULTI_OUTPUT_TARGETS)} take several)")
    return _build(module, job, out_dir, target, lambda files, meta: _export_config(
        target, precision, name, files, meta, type(model).__name__, x, out_shapes, ops, calibration, job,
        time.perf_counter() - t0))


def _build(module, job, out_dir, target, make_config) -> Artifact:
    """Check the canonical graph, build in a temporary folder, require parity, write the records, then
    move the folder in place."""
    from edgekd.io import atomic_dir, atomic_write_json
    from edgekd.log import logger

    from . import parity as parity_mod

    def record_of(checks):
        return parity_mod.make_record(target, job.precision, checks, n_inputs=len(job.parity_inputs),
                                      inputs=job.parity_inputs_desc)

    checks = {}
    if job.canonical is not None:  # the rewritten graph must compute what the user's model computes
        from .canonicalize import run

        canonical = outputs_of(run(job.canonical, job.parity_inputs))
        checks.update(parity_mod.per_output("canonical_vs_torch", [
            parity_mod.float_check(ref, out.numpy(), against="the model before canonicalization")
            for ref, out in zip(outputs_of(job.torch_float()), canonical)]))
        parity_mod.require(record_of(checks), where=f"{out_dir} ({target}/{job.precision}, canonicalization)")
    with atomic_dir(out_dir) as tmp:
        files, meta, target_checks = module.build(job, tmp)
        checks.update(target_checks)
        record = record_of(checks)
        parity_mod.require(record, where=f"{out_dir} ({target}/{job.precision})")
        atomic_write_json(tmp / "parity.json", record)
        config = make_config([*files, README], meta)
        atomic_write_json(tmp / "export.json", config)
        write_readme(tmp, config, record)  # from the same facts as export.json
    logger.info(f"export {target}/{job.precision}: wrote {out_dir} (parity passed)")
    return Artifact.load(out_dir)


# where a user's .tflite can go: these targets start from an int8 .tflite (onnx needs the torch model)
TFLITE_TARGETS = ("tflite", "tflm", "c")


def _export_tflite(model, target, module, out_dir, precision, name, parity_inputs, verbose) -> Artifact:
    """A fully-int8 .tflite as it is: its bytes go to the target, parity against TFLM and LiteRT only."""
    if target not in TFLITE_TARGETS:
        raise ExportError(f"{model.path}: a .tflite exports to {', '.join(TFLITE_TARGETS)}; target {target!r} needs "
                          "the torch model (a .pt2 or FILE.py:factory)")
    if precision != "int8":
        raise ExportError(f"{model.path}: the .tflite is int8; precision {precision!r} needs the torch model")
    t0 = time.perf_counter()
    x = torch.zeros(model.input_shape)
    lo, hi = model.input_range()
    p_in, p_desc = _parity_inputs(parity_inputs, x, torch.tensor([lo, hi]).reshape(2, *[1] * (x.ndim - 1))
                                  .expand(2, *x.shape[1:]))
    job = ExportJob(name=name, precision="int8", example_input=x, parity_inputs=p_in, parity_inputs_desc=p_desc,
                    float_model=None, quantized_desc={"quantizer": f"none: the int8 .tflite {Path(model.path).name}, "
                                                                   "taken as it is"},
                    verbose=verbose, tflite_bytes=model.data)
    try:
        return _build(module, job, out_dir, target, lambda files, meta: _export_config(
            target, "int8", name, files, meta, "tflite", x, [list(model.output_shape)], list(model.ops), None, job,
            time.perf_counter() - t0))
    except UnsupportedOpError as err:  # the native C kernels are a subset of TFLM's
        hint = "; --target tflm runs every op TFLite Micro has a kernel for" if target == "c" else ""
        raise ExportError(f"{model.path}: {err}{hint}") from None


def _parity_inputs(given, x, like):
    """Held-out inputs from the caller, or a count (None: 64) of seeded random inputs in the range of ``like``."""
    if given is None or isinstance(given, int) and not isinstance(given, bool):
        n = DEFAULT_PARITY_INPUTS if given is None else given
        if n < 1:
            raise ExportError(f"parity_inputs: expected at least 1 random input, got {n}")
        return _random_inputs(like, n=n)
    p_in = _as_inputs(given, x, "parity_inputs")
    return p_in, f"{len(p_in)} held-out inputs given by the caller"


def quantize(model, example_input, calibration_data):
    """The ONE int8 PT2E graph every int8 target converts: canonicalize, then PTQ with the int8
    quantizer (``quantizer.py``) on ``calibration_data``. Export it to several int8 targets and
    each converts it once (the .tflite is cached per graph)."""
    from .canonicalize import canonicalize
    from .targets.tflite import quantize_pt2e

    model = model.eval()
    x = _check_example(model, example_input)
    calibration = _as_inputs(calibration_data, x, "calibration_data")
    return quantize_pt2e(canonicalize(model, x), x, calibration)


def _export_config(target, precision, name, files, meta, model_class, x, out_shapes, ops, calibration, job, seconds):
    from edgekd import __version__

    config = {
        "format": EXPORT_FORMAT, "format_version": EXPORT_FORMAT_VERSION, "edgekd_version": __version__,
        "target": target, "precision": precision, "name": name,
        "files": sorted(files) + ["export.json", "parity.json"],
        "input_shape": list(job.graph_inputs(x).shape), "output_shape": out_shapes[0], "input_dtype": "float32",
        "output_shapes": out_shapes,  # every output, in the order the model returns them
        "input_layout": job.input_layout if x.ndim == 4 and job.tflite_bytes is None else None,
        "model_class": model_class, "ops": ops,
        "calibration_samples": None if calibration is None else len(calibration),
        "quantization": job.quantized_desc or None,
        "parity_inputs": job.parity_inputs_desc,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": round(seconds, 2),
        "versions": {"torch": torch.__version__, **meta.pop("versions", {})},
    }
    config.update(meta)
    if config.get("input_quant"):
        config["input_quant"] = [float(config["input_quant"][0]), int(config["input_quant"][1])]
        config["output_quants"] = [[float(s), int(z)] for s, z in config.get("output_quants") or [config["output_quant"]]]
        config["output_quant"] = config["output_quants"][0]
    return config


def _check_out_dir(out_dir) -> Path:
    if out_dir is None or str(out_dir).strip() == "":
        raise ExportError("out_dir: expected a folder path, got an empty value")
    path = Path(out_dir)
    if ".." in path.parts:
        raise ExportError(f"out_dir {str(out_dir)!r}: '..' is not allowed; give a path without parent references")
    if path.exists() and not path.is_dir():
        raise ExportError(f"out_dir {str(out_dir)!r} exists and is not a folder")
    return path


def _check_name(name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ExportError(f"name {name!r}: expected a plain file stem that is also a C identifier "
                          "(letters, digits, underscore; no path separators, '..' or absolute paths)")
    from .cgen import check_identifier

    try:
        check_identifier(name)
    except ValueError as err:
        raise ExportError(f"name: {err}") from None


def _to_tensor(data, what) -> torch.Tensor:
    if isinstance(data, torch.Tensor):
        t = data.detach()
    elif isinstance(data, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(data))
    elif isinstance(data, (list, tuple)) and data and all(isinstance(d, (torch.Tensor, np.ndarray)) for d in data):
        t = torch.cat([_to_tensor(d, what) for d in data])
    else:
        raise ExportError(f"{what}: expected a float tensor or array (N, ...) or a list of them, "
                          f"got {type(data).__name__}")
    if not t.is_floating_point():
        raise ExportError(f"{what}: expected float inputs, got dtype {t.dtype}")
    return t.to(torch.float32).contiguous()


def _check_example(model, example_input) -> torch.Tensor:
    _check_one_input(model)
    x = _to_tensor(example_input, "example_input")
    if isinstance(example_input, (torch.Tensor, np.ndarray)) and example_input.dtype not in (torch.float32, np.float32):
        raise ExportError(f"example_input: expected dtype float32, got {example_input.dtype}")
    if x.ndim < 2:
        raise ExportError(f"example_input: expected a batch (1, ...), got shape {tuple(x.shape)}")
    x = x[:1]
    if not torch.isfinite(x).all():
        raise ExportError("example_input contains NaN or Inf values")
    try:
        with torch.no_grad():
            y = model(x)
    except Exception as err:  # noqa: BLE001 - any failure means the shape does not fit
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"example_input of shape {tuple(x.shape)} does not fit {type(model).__name__}: {first}") \
            from None
    if not all(isinstance(t, torch.Tensor) for t in outputs_of(y)) or isinstance(y, (tuple, list)) and not y:
        raise ExportError(f"{type(model).__name__} must return a tensor or a tuple of tensors, got "
                          f"{type(y).__name__}")
    return x


def _check_one_input(model) -> None:
    """Several outputs are exported; several inputs are not yet (one line instead of a confusing trace)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return
    required = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                and p.default is p.empty]
    if len(required) > 1:
        raise ExportError(f"{type(model).__name__}.forward takes {len(required)} inputs ({', '.join(required)}); "
                          "export takes models with one input tensor (several outputs are fine): wrap the model so "
                          "forward takes one tensor")


def _as_inputs(data, x, what) -> torch.Tensor:
    t = _to_tensor(data, what)
    if tuple(t.shape[1:]) != tuple(x.shape[1:]):
        raise ExportError(f"{what}: samples have shape {tuple(t.shape[1:])}, but the model's input is "
                          f"{tuple(x.shape)}: expected (N, {', '.join(map(str, x.shape[1:]))})")
    if len(t) == 0:
        raise ExportError(f"{what}: no samples")
    bad = ~torch.isfinite(t.reshape(len(t), -1)).all(dim=1)
    if bad.any():
        raise ExportError(f"{what}: {int(bad.sum())} of {len(t)} samples contain NaN or Inf "
                          f"(first at index {int(bad.nonzero()[0])})")
    return t


def _random_inputs(like, n=DEFAULT_PARITY_INPUTS, seed=0):
    lo, hi = float(like.min()), float(like.max())
    if math.isclose(lo, hi):
        lo, hi = lo - 1.0, hi + 1.0
    g = torch.Generator().manual_seed(seed)
    x = lo + (hi - lo) * torch.rand((n, *like.shape[1:]), generator=g)
    return x, f"{n} random inputs uniform in [{lo:.4g}, {hi:.4g}] (seed {seed})"
