"""Glue between :func:`firmware_export.export` and the native C generator (``targets/c.py``).

The int8 .tflite is made first from the same PT2E graph; ``build_c`` turns it into C with the
hand-written runtime and a host harness. Parity: C equals TFLM exactly (TFLite's reference integer
arithmetic), is within 1 LSB of LiteRT BUILTIN_REF (>= 99% exact; LiteRT's FULLY_CONNECTED rounds
differently) and of XNNPACK, and agrees with the torch PT2E graph on argmax.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

from .. import parity
from ..errors import ExportError
from ..firmware import write_c_example
from ..interp import run_tflm, tflm_module
from . import tflite

PRECISIONS = ("int8",)


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
    cmodel = build_c(path, folder, name=job.name, config=config)
    out = cmodel.predict_int8(refs["x_q"])
    checks = tflite.int8_checks(job, refs, out, runtime="c")
    from .tflm import measure_arena

    arena = measure_arena(path.read_bytes(), refs["x_q"])
    tflm_out = run_tflm(tflm_module().Interpreter.from_bytes(path.read_bytes(), arena_size=arena), refs["x_q"])
    checks["c_vs_tflm"] = parity.lsb_check(tflm_out, out, max_lsb=parity.REF_LSB, against="TFLite Micro")
    files = sorted({path.name, *(_rel(f, folder) for f in cmodel.files),
                    *write_c_example(folder, job.name, len(cmodel.input_shapes), len(cmodel.output_shapes))})
    # build outputs the harness left (binaries, object files) are not part of the artifact
    meta = {"runtimes": ["c", "litert_ref", "litert", "tflm"], "default_runtime": "c",
            "arena_bytes": int(getattr(cmodel, "arena_bytes", 0) or 0), "tflm_arena_bytes": arena,
            "input_quant": refs["qin"], "output_quant": refs["qout"], "tflite_ops": tflite.ops_in(path)}
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
