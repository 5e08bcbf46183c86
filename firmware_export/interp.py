"""The .tflite interpreter shim: ``ai_edge_litert``, else ``tflite_runtime``, else a clear error.

Also the TFLite Micro host interpreter (``tflite_micro``) and the int8 quantize/dequantize helpers
every int8 artifact uses at its float boundary.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import ExportError


def tflite_interpreter_module():
    """Return ``(Interpreter, OpResolverType_or_None, runtime_name)``."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter, OpResolverType

        return Interpreter, OpResolverType, "tflite_runtime"
    except ImportError:
        raise ExportError("no TFLite interpreter: install ai-edge-litert (pip install ai-edge-litert) "
                          "or tflite-runtime") from None


def tflite_interpreter(path, *, reference=False, num_threads=1):
    """A ready interpreter; ``reference=True`` runs TFLite's reference kernels (BUILTIN_REF)."""
    Interpreter, OpResolverType, _ = tflite_interpreter_module()
    kwargs = {"model_path": str(path), "num_threads": num_threads}
    if reference:
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_REF
    try:
        interp = Interpreter(**kwargs)
        interp.allocate_tensors()
    except (ValueError, RuntimeError) as err:  # LiteRT reports damaged files as bare ValueErrors
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(f"{path}: not a loadable .tflite model, corrupt or truncated? ({first})") from None
    return interp


def tflm_module():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError:
        raise ExportError("TFLite Micro host interpreter missing: pip install tflite-micro") from None
    return runtime


def tflm_interpreter(path, arena_size=None):
    return tflm_module().Interpreter.from_bytes(Path(path).read_bytes(), arena_size=arena_size)


def io_quant(detail) -> tuple[float, int] | None:
    """(scale, zero_point) of an interpreter tensor detail, None for float tensors."""
    if np.dtype(detail["dtype"]) == np.float32:
        return None
    scale, zero = detail["quantization"]
    return float(scale), int(zero)


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype=np.int8) -> np.ndarray:
    """Affine quantization q = clamp(round_half_even(x / s) + z) (torch's quantize_per_tensor)."""
    info = np.iinfo(dtype)
    q = np.round(np.asarray(x, np.float32) / np.float32(scale)) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return ((np.asarray(q).astype(np.int32) - zero_point) * np.float32(scale)).astype(np.float32)


def outputs_of(y) -> list:
    """A model's outputs as a list: one array, or the tuple a model with several outputs returns."""
    return list(y) if isinstance(y, (tuple, list)) else [y]


def _one_or_tuple(outs):
    return tuple(outs) if len(outs) > 1 else outs[0]


def run_tflite(interp, x: np.ndarray):
    """Run a batch through a batch-1 interpreter sample by sample; raw tensors in and out (a tuple of
    arrays, in the graph's output order, when the model has several outputs)."""
    inp, outs = interp.get_input_details()[0], interp.get_output_details()
    x = np.asarray(x)
    results = [[] for _ in outs]
    for sample in x:
        interp.set_tensor(inp["index"], sample[None].astype(inp["dtype"], copy=False))
        interp.invoke()
        for k, out in enumerate(outs):
            results[k].append(interp.get_tensor(out["index"])[0].copy())
    return _one_or_tuple([np.stack(r) for r in results])


def run_tflm(interp, x: np.ndarray, n_outputs: int = 1):
    """Run a batch through TFLM; the input is set before EVERY invoke (the arena reuses it). Several
    outputs: a tuple of arrays in the graph's order (the TFLM wrapper cannot count them: pass ``n_outputs``)."""
    results = [[] for _ in range(n_outputs)]
    for sample in np.asarray(x):
        interp.set_input(np.ascontiguousarray(sample[None]), 0)
        interp.invoke()
        for k in range(n_outputs):
            results[k].append(np.array(interp.get_output(k))[0].copy())
    return _one_or_tuple([np.stack(r) for r in results])
