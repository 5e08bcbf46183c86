"""TFLite Micro: the int8 .tflite as an aligned C array plus a header with the measured arena size.

The arena size is the smallest (16-byte multiple) that the TFLM host interpreter can allocate
and run the model in, found by bisection (64-bit host; a 32-bit MCU needs no more, its structs
are smaller). Parity: TFLM vs LiteRT's BUILTIN_REF kernels (at most 1 LSB: LiteRT's
FULLY_CONNECTED requantizes differently, see ``parity.LITERT_REF_LSB``), vs XNNPACK and vs torch.
"""
from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import time
import warnings
from pathlib import Path

import numpy as np

from .. import cgen, firmware
from ..errors import ExportError
from ..interp import run_tflm, tflm_module
from . import tflite

PRECISIONS = ("int8",)
ARENA_ALIGN = 16

# The builtin ops the TFLite Micro interpreter has kernels for: the ``Register_*`` functions linked
# into the tflite-micro wheel this project tests against (0.dev20261023, its PythonOpsResolver).
KERNELS = frozenset((
    "ABS", "ADD", "ADD_N", "ARG_MAX", "ARG_MIN", "ASSIGN_VARIABLE", "AVERAGE_POOL_2D", "BATCH_MATMUL",
    "BATCH_TO_SPACE_ND", "BROADCAST_ARGS", "BROADCAST_TO", "CALL_ONCE", "CAST", "CEIL", "CIRCULAR_BUFFER",
    "CONCATENATION", "CONV_2D", "COS", "CUMSUM", "DEPTH_TO_SPACE", "DEPTHWISE_CONV_2D", "DEQUANTIZE",
    "DETECTION_POSTPROCESS", "DIV", "DYNAMIC_UPDATE_SLICE", "ELU", "EMBEDDING_LOOKUP", "EQUAL", "EXP", "EXPAND_DIMS", "FILL", "FLOOR",
    "FLOOR_DIV", "FLOOR_MOD", "FULLY_CONNECTED", "GATHER", "GATHER_ND", "GREATER", "GREATER_EQUAL", "HARD_SWISH",
    "IF", "L2_NORMALIZATION", "L2_POOL_2D", "LEAKY_RELU", "LESS", "LESS_EQUAL", "LOG", "LOG_SOFTMAX",
    "LOGICAL_AND", "LOGICAL_NOT", "LOGICAL_OR", "LOGISTIC", "MAX_POOL_2D", "MAXIMUM", "MEAN", "MINIMUM",
    "MIRROR_PAD", "MUL", "NEG", "NOT_EQUAL", "PACK", "PAD", "PADV2", "PRELU", "QUANTIZE", "READ_VARIABLE",
    "REDUCE_ALL", "REDUCE_MAX", "REDUCE_MIN", "RELU", "RELU6", "RESHAPE", "RESIZE_BILINEAR",
    "RESIZE_NEAREST_NEIGHBOR", "REVERSE_V2", "ROUND", "RSQRT", "SELECT_V2", "SHAPE", "SIN", "SLICE", "SOFTMAX",
    "SPACE_TO_BATCH_ND", "SPACE_TO_DEPTH", "SPLIT", "SPLIT_V", "SQRT", "SQUARE", "SQUARED_DIFFERENCE", "SQUEEZE",
    "STRIDED_SLICE", "SUB", "SUM", "SVDF", "TANH", "TRANSPOSE", "TRANSPOSE_CONV", "UNIDIRECTIONAL_SEQUENCE_LSTM",
    "UNPACK", "VAR_HANDLE", "WHILE", "ZEROS_LIKE",
))


def accepts(use) -> bool:
    """An op whose TFLite builtins TFLM has kernels for; ops the table does not know are checked
    on the converted file (:func:`check_kernels`)."""
    from ..ops import BUILTINS

    needs = BUILTINS.get(use.op)
    return needs is None or set(needs) <= KERNELS


ACCEPTS = accepts


def check_kernels(job, tflite_path) -> None:
    """Refuse a converted .tflite that uses a builtin TFLM has no kernel for (one line, naming it)."""
    from ..ops import refusal
    from ..tflite_reader import read_tflite

    graph = read_tflite(tflite_path)
    for op in graph.operators:
        if op.op not in KERNELS:
            where = graph.tensors[op.outputs[0]].name if op.outputs else f"op{op.index}"
            raise refusal(job.op_uses, "tflm", op=f"{op.op} (TFLite builtin)", where=where)

PROBE_TIMEOUT_S = 60


@contextlib.contextmanager
def _silence_fd2():
    """TFLM's C++ prints allocation failures on fd 2 while bisecting; hide them."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _runs(model_bytes, arena, x_q) -> bool:
    runtime = tflm_module()
    try:
        interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=int(arena))
        interp.set_input(np.ascontiguousarray(x_q[:1]), 0)
        interp.invoke()
        return True
    except RuntimeError:
        return False


def probe_arena(model_bytes, arena, x_q) -> bool:
    """Does the model allocate and run in ``arena`` bytes? Probed in a forked child process.

    TFLM's host interpreter sometimes segfaults (instead of raising) on an arena slightly too
    small (seen: a 16-8-3 MLP at 1680 bytes), which would kill the exporting process.
    """
    if not hasattr(os, "fork"):
        with _silence_fd2():
            return _runs(model_bytes, arena, x_q)
    with warnings.catch_warnings():  # JAX (imported by litert-torch) warns on any fork; the child never uses it
        warnings.filterwarnings("ignore", message=".*os.fork", category=RuntimeWarning)
        warnings.filterwarnings("ignore", message=".*fork", category=DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: try, report by exit status, never return into the caller's code
        code = 3
        try:
            faulthandler.disable()  # a segfault here is an answer ("too small"), not a crash to report
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            code = 0 if _runs(model_bytes, arena, x_q) else 1
        except BaseException:  # noqa: BLE001
            code = 2
        finally:
            os._exit(code)
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise ExportError(f"TFLM arena probe ({arena} bytes) did not finish in {PROBE_TIMEOUT_S} s")
        time.sleep(0.002)


def measure_arena(model_bytes: bytes, x_q: np.ndarray, *, hi=1 << 22) -> int:
    """Smallest arena (bytes, a multiple of 16) in which the model allocates and runs (bisection)."""
    if not probe_arena(model_bytes, hi, x_q):
        raise ExportError(f"TFLM could not run the model even with a {hi}-byte arena")
    lo = 0  # invariant: lo fails (or is 0), hi works
    while hi - lo > ARENA_ALIGN:
        mid = (lo + hi) // 2 // ARENA_ALIGN * ARENA_ALIGN
        if mid <= lo:
            break
        if probe_arena(model_bytes, mid, x_q):
            hi = mid
        else:
            lo = mid
    with _silence_fd2():  # the answer itself must work in this process too
        if not _runs(model_bytes, hi, x_q):
            raise ExportError(f"TFLM arena bisection ended at {hi} bytes, which does not run the model")
    return hi


_RUNS: dict = {}  # (model digest, input digest) -> (arena, outputs); tflm, c and tflite export one model


def num_outputs(model_bytes: bytes) -> int:
    """How many outputs the .tflite's graph has (TFLite Micro's Python wrapper cannot say)."""
    from ai_edge_litert import schema_py_generated as schema

    return schema.Model.GetRootAs(bytearray(model_bytes), 0).Subgraphs(0).OutputsLength()


def tflm_reference(model_bytes: bytes, x_q: np.ndarray):
    """(measured arena, TFLM's outputs on ``x_q``: an array, or a tuple for several graph outputs),
    computed once per model and inputs in a process."""
    import hashlib

    key = (hashlib.sha256(model_bytes).hexdigest(), hashlib.sha256(np.ascontiguousarray(x_q).tobytes()).hexdigest(),
           x_q.shape)
    if key not in _RUNS:
        arena = measure_arena(model_bytes, x_q)
        out = run_tflm(tflm_module().Interpreter.from_bytes(model_bytes, arena_size=arena), x_q,
                       num_outputs(model_bytes))
        if len(_RUNS) >= 8:
            _RUNS.clear()
        _RUNS[key] = (arena, out)
    arena, out = _RUNS[key]
    return arena, tuple(y.copy() for y in out) if isinstance(out, tuple) else out.copy()


def c_sources(name: str, model_bytes: bytes, arena: int, config: dict) -> dict:
    """``{name}_data.h`` (extern array, length, arena size) and ``{name}_data.cc`` (the array)."""
    ident = cgen.c_identifier(name)
    arr, length, macro = f"{ident}_tflite", f"{ident}_tflite_len", ident.upper()
    header_body = (
        cgen.banner(f"TFLite Micro model data for {name!r}", config)
        + "#include <stddef.h>\n\n"
        + cgen.comment("Smallest tensor arena (bytes, a multiple of 16) TFLite Micro ran the model in, "
                       + firmware.TFLM_ARENA_RULE)
        + cgen.constant(f"{macro}_ARENA_BYTES", int(arena))
        + cgen.constant(f"{macro}_TFLITE_LEN", len(model_bytes))
        + "\n#ifdef __cplusplus\nextern \"C\" {\n#endif\n"
        + f"extern const unsigned char {arr}[];\nextern const unsigned int {length};\n"
        + "#ifdef __cplusplus\n}\n#endif\n")
    header = cgen.include_guard(f"{ident}_data", header_body)
    array = cgen.array_declare(arr, model_bytes, "unsigned char", static=False, per_line=16)
    source = (cgen.banner(f"TFLite Micro model data for {name!r}", config)
              + f'#include "{ident}_data.h"\n\n'
              + "/* The flatbuffer must be 16-byte aligned: TFLM reads it in place. */\n"
              + f"alignas({ARENA_ALIGN}) " + array
              + f"const unsigned int {length} = {len(model_bytes)}u;\n")
    return {f"{ident}_data.h": header, f"{ident}_data.cc": source}


def build(job, folder: Path):
    path = folder / f"{job.name}.tflite"
    tflite.write_int8(job, path)
    check_kernels(job, path)
    model_bytes = path.read_bytes()
    refs = tflite.int8_reference(job, path)
    arena, out = tflm_reference(model_bytes, refs["x_q"])
    checks = tflite.int8_checks(job, refs, out, runtime="tflm")
    config = {"target": "tflm", "name": job.name, "arena_bytes": arena, **job.quantized_desc}
    ops = tflite.ops_in(path)
    sources = {**c_sources(job.name, model_bytes, arena, config),
               f"{cgen.c_identifier(job.name)}_ops.h": firmware.resolver_header(job.name, ops, config)}
    files = [path.name]
    for fname, text in sources.items():
        (folder / fname).write_text(text)
        files.append(fname)
    meta = {"runtimes": ["tflm", "litert_ref", "litert"], "default_runtime": "tflm", "arena_bytes": arena,
            "arena_split": firmware.tflm_arena_split(model_bytes, arena, refs["x_q"]),
            "tflite_bytes": len(model_bytes),
            "input_quant": refs["qin"], "output_quant": refs["qout"], "output_quants": refs["qouts"], "tflite_ops": ops}
    return files, meta, checks


def open_runtime(folder, config, runtime):
    if runtime != "tflm":
        return tflite.open_runtime(folder, config, runtime)
    model_bytes = (Path(folder) / f"{config['name']}.tflite").read_bytes()
    interp = tflm_module().Interpreter.from_bytes(model_bytes, arena_size=config["arena_bytes"])
    n_outputs = num_outputs(model_bytes)
    return lambda x: run_tflm(interp, x, n_outputs)
