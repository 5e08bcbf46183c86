"""Glue between :func:`firmware_export.export` and the native C generator (``targets/c.py``).

The int8 .tflite is made first from the same PT2E graph; ``build_c`` turns it into C with the
hand-written runtime and a host harness. Parity: C equals TFLM exactly (TFLite's reference integer
arithmetic), is within 1 LSB of LiteRT BUILTIN_REF (LiteRT's FULLY_CONNECTED rounds
differently) and of XNNPACK, and agrees with the torch PT2E graph on argmax.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

from .. import parity
from ..errors import ExportError, UnsupportedOpError
from ..ops import refusal
from ..firmware import write_c_example
from ..interp import outputs_of
from . import tflite

PRECISIONS = ("int8",)

# torch op (ops.OpUse.op) -> (the TFLite builtins its lowering needs, the forms accepted; "" = plain).
# An entry counts once ``c.SUPPORTED_OPS`` has all its builtins, so adding a kernel to the C
# lowering enables the torch ops that need it. To add an op: one line here.
C_OPS = {
    "conv2d": (("CONV_2D",), {""}),
    "depthwise_conv2d": (("DEPTHWISE_CONV_2D",), {""}),
    "linear": (("FULLY_CONNECTED",), {""}),
    "relu": (("RELU",), {""}),
    "relu6": (("RELU6",), {""}),
    "max_pool2d": (("MAX_POOL_2D",), {""}),
    "avg_pool2d": (("AVERAGE_POOL_2D",), {""}),
    "global_avg_pool": (("AVERAGE_POOL_2D",), {""}),
    "add": (("ADD",), {"", "with broadcasting", "of a constant"}),
    "sub": (("SUB",), {"", "with broadcasting", "of a constant"}),
    "reshape": (("RESHAPE",), {""}),               # up to rank 4
    "transpose": (("TRANSPOSE",), {""}),
    "pad": (("PAD",), {""}),
    "mean": (("MEAN",), {""}),
    "softmax": (("SOFTMAX",), {""}),
    "concatenate": (("CONCATENATION",), {""}),
    "mul": (("MUL",), {"", "with broadcasting", "of a constant"}),  # squeeze-excite scales, x * sigmoid(x)
    "sigmoid": (("LOGISTIC",), {""}),
    "tanh": (("TANH",), {""}),
    "upsample_nearest2d": (("RESIZE_NEAREST_NEIGHBOR",), {""}),
    "hardswish": (("HARD_SWISH",), {""}),
    "leaky_relu": (("LEAKY_RELU",), {""}),
}


def accepts(use) -> bool:
    """An op the native C lowering runs today (its builtins are in ``c.SUPPORTED_OPS``)."""
    entry = C_OPS.get(use.op)
    if entry is None:
        return False
    builtins, forms = entry
    return use.detail in forms and set(builtins) <= set(_supported_builtins())


def _supported_builtins():
    try:
        from .c import SUPPORTED_OPS
    except ImportError:
        return ()
    return SUPPORTED_OPS


ACCEPTS = accepts


def _build_c():
    try:
        from .c import build_c
    except ImportError as err:
        raise ExportError(f"the native C target is unavailable in this checkout ({err})") from None
    return build_c


def build(job, folder: Path):
    build_c = _build_c()
    path = folder / f"{job.name}.tflite"
    tflite.write_int8(job, path)
    refs = tflite.int8_reference(job, path)
    config = {"target": "c", "name": job.name, **job.quantized_desc}
    try:
        cmodel = build_c(path, folder, name=job.name, config=config)
    except UnsupportedOpError as err:  # a builtin or a form only the converted file shows: say it as the check does
        if job.tflite_bytes is not None:
            raise  # a user's .tflite: export() names the file and the targets that take it
        raise refusal(job.op_uses, "c", op=err.op, where=err.layer) from None
    out = cmodel.predict_int8(refs["x_q"])
    checks = tflite.int8_checks(job, refs, out, runtime="c")
    from .tflm import tflm_reference

    arena, tflm_out = tflm_reference(path.read_bytes(), refs["x_q"])
    checks.update(parity.per_output("c_vs_tflm", [
        parity.lsb_check(t, c, max_lsb=parity.REF_LSB, against="TFLite Micro")
        for t, c in zip(outputs_of(tflm_out), outputs_of(out))]))
    files = sorted({path.name, *(_rel(f, folder) for f in cmodel.files),
                    *write_c_example(folder, job.name, len(cmodel.input_shapes), len(cmodel.output_shapes))})
    # build outputs the harness left (binaries, object files) are not part of the artifact
    meta = {"runtimes": ["c", "litert_ref", "litert", "tflm"], "default_runtime": "c",
            "arena_bytes": int(getattr(cmodel, "arena_bytes", 0) or 0), "tflm_arena_bytes": arena,
            "macs": int(getattr(cmodel, "macs", 0) or 0),
            "input_quant": refs["qin"], "output_quant": refs["qout"], "output_quants": refs["qouts"],
            "tflite_ops": tflite.ops_in(path)}
    return files, meta, checks


def _rel(f, folder):
    f = Path(f)
    try:
        return str(f.resolve().relative_to(Path(folder).resolve()))
    except ValueError:
        return f.name


def open_runtime(folder, config, runtime):
    if runtime == "tflm":
        from . import tflm

        return tflm.open_runtime(folder, {**config, "arena_bytes": config["tflm_arena_bytes"]}, "tflm")
    if runtime != "c":
        return tflite.open_runtime(folder, config, runtime)
    build_c = _build_c()
    # rebuild the host harness from the saved .tflite into a scratch folder (the export stays read-only)
    scratch = Path(tempfile.mkdtemp(prefix="edgekd-c-"))
    cmodel = build_c(Path(folder) / f"{config['name']}.tflite", scratch, name=config["name"])

    def run(x):
        return cmodel.predict_int8(x)

    weakref.finalize(run, shutil.rmtree, scratch, ignore_errors=True)  # scratch goes with the runner
    return run
