"""ExecuTorch: a ``.pte`` program lowered to the XNNPACK delegate, fp32 and int8, run in ``executorch.runtime``.

int8 lowers the SAME PT2E graph the TFLite/TFLM/C targets convert (litert-torch's quantizer:
symmetric per-channel weights, static per-tensor activations); its weight quantize nodes are
constant-folded first, because XNNPACK takes int8 weights, not float weights plus a quantize op.
The program keeps float input and output (quantize/dequantize run inside the delegate), as an app
on a phone calls it. XNNPACK rounds its own way, so the int8 check against the torch PT2E graph is
an argmax agreement with the LSB difference reported, never a bit-exact claim.
"""
from __future__ import annotations

import contextlib
import copy
import io
import os
from pathlib import Path

import numpy as np
import torch

from .. import parity
from ..errors import ExportError
from ..ops import ANY

PRECISIONS = ("int8", "fp32")
ACCEPTS = ANY  # ExecuTorch's portable kernels run any aten op; XNNPACK takes the partitions it knows
RUNTIMES = ("executorch",)


@contextlib.contextmanager
def _quiet_fds(verbose):
    """executorch's C++ prints cpuinfo probing lines on fd 1/2 when the runtime first loads."""
    if verbose:
        yield
        return
    saved = []
    try:
        with open(os.devnull, "w") as null:
            for fd in (1, 2):
                saved.append((fd, os.dup(fd)))
                os.dup2(null.fileno(), fd)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
    finally:
        for fd, copy_fd in saved:
            os.dup2(copy_fd, fd)
            os.close(copy_fd)


def _first(err):
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def lower(model: torch.nn.Module, example_input: torch.Tensor, *, verbose=None) -> bytes:
    """``torch.export`` -> edge dialect -> XNNPACK partitions -> the ``.pte`` bytes."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    try:
        with _quiet_fds(verbose), torch.no_grad():
            program = torch.export.export(model, (example_input,))
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            return bytes(edge.to_executorch().buffer)
    except Exception as err:  # noqa: BLE001 - exir raises many types; one line for the user
        raise ExportError(f"executorch lowering failed: {_first(err)}") from None


def fold_weights(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """A copy of a PT2E int8 graph with its weight quantize nodes folded into int8 constants."""
    from torchao.quantization.pt2e.constant_fold import constant_fold

    graph = copy.deepcopy(graph)
    constant_fold(graph)
    return graph


def output_qparams(graph: torch.fx.GraphModule) -> tuple[float, int] | None:
    """(scale, zero point) of the dequantize node feeding the PT2E graph's output, if any."""
    out = next(n for n in graph.graph.nodes if n.op == "output")
    node = out.args[0][0] if isinstance(out.args[0], (tuple, list)) else out.args[0]
    while isinstance(node, torch.fx.Node) and node.op == "call_function":
        name = getattr(node.target, "_opname", "")
        if name.startswith("dequantize_per_tensor"):
            return float(node.args[1]), int(node.args[2])
        if len(node.args) == 0:
            break
        node = node.args[0]
    return None


class _Program:
    """A loaded ``.pte`` ``forward`` method: float batch in, float batch out (sample by sample)."""

    def __init__(self, path: Path, verbose=None):
        from executorch.runtime import Runtime

        try:
            with _quiet_fds(verbose):
                self.method = Runtime.get().load_program(str(path)).load_method("forward")
        except Exception as err:  # noqa: BLE001
            raise ExportError(f"{path}: not a loadable ExecuTorch program, corrupt or truncated? ({_first(err)})") \
                from None

    def __call__(self, x) -> np.ndarray:
        x = torch.as_tensor(np.asarray(x, np.float32))
        outs = [self.method.execute((s[None].contiguous(),))[0] for s in x]
        return torch.cat(outs).numpy().astype(np.float32)


def build(job, folder: Path):
    import executorch

    path = folder / f"{job.name}.pte"
    if job.precision == "fp32":
        if job.float_model is None:
            raise ExportError("executorch target with precision 'fp32' needs a float model; got an int8 PT2E graph")
        path.write_bytes(lower(job.float_model, job.example_input, verbose=job.verbose))
        out = _Program(path, job.verbose)(job.parity_inputs.numpy())
        checks = {"executorch_vs_torch": parity.float_check(job.torch_float(), out, against="torch fp32")}
        qout = None
    else:
        graph = fold_weights(job.quantized)
        path.write_bytes(lower(graph, job.example_input, verbose=job.verbose))
        out = _Program(path, job.verbose)(job.parity_inputs.numpy())
        qout = output_qparams(job.quantized)
        ref = job.torch_int8()
        codes = (lambda y: np.clip(np.round(y / qout[0]) + qout[1], -128, 127)) if qout else None
        checks = {"executorch_vs_torch_pt2e": parity.argmax_check(
            ref if codes is None else codes(ref), out if codes is None else codes(out),
            against="torch PT2E int8 graph (XNNPACK rounding: LSB reported, not judged)",
            lsb_reference=None if codes is None else codes(ref))}
        float_out = job.torch_float()
        if float_out is not None:
            checks["executorch_vs_torch_fp32"] = parity.info(float_out, out, against="torch fp32 model (information)")
    meta = {"runtimes": list(RUNTIMES), "default_runtime": "executorch", "pte_bytes": path.stat().st_size,
            "delegate": "XnnpackBackend", "versions": {"executorch": getattr(executorch, "__version__", "?")}}
    if qout:
        meta["internal_output_quant"] = [qout[0], qout[1]]
    return [path.name], meta, checks


def open_runtime(folder, config, runtime):
    return _Program(Path(folder) / f"{config['name']}.pte")
