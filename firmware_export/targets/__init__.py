"""One module per export target, each with the same small interface:

``PRECISIONS`` (first is the default), ``ACCEPTS`` (``ops.ANY`` or a function of one ``ops.OpUse``:
what the up-front check lets through), ``build(job, folder) -> (files, meta, checks)`` writing
into a temporary folder, and ``open_runtime(folder, config, runtime) -> fn(raw batch) -> raw batch``.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ExportError

TARGETS = ("onnx", "tflite", "tflm", "c", "executorch")


def target_module(name: str):
    if name not in TARGETS:
        raise ExportError(f"Invalid value for the 'target' parameter. Allowed values are "
                          f"{', '.join(TARGETS)}, but got {name!r} instead.")
    return importlib.import_module(f"{__name__}.{name}_target" if name == "c" else f"{__name__}.{name}")


@dataclass
class ExportJob:
    """Everything a target needs, validated by :func:`firmware_export.export`."""

    name: str
    precision: str
    example_input: torch.Tensor            # (1, ...) float32
    parity_inputs: torch.Tensor            # (N, ...) float32
    parity_inputs_desc: str
    float_model: torch.nn.Module | None    # None when an already-quantized PT2E graph was given
    calibration: torch.Tensor | None = None
    quantized: torch.nn.Module | None = None   # the ONE PT2E int8 graph every int8 target converts
    quantized_desc: dict = field(default_factory=dict)
    verbose: object = None
    tflite_bytes: bytes | None = None      # a user's fully-int8 .tflite, taken as it is (no torch graph at all)
    canonical: torch.nn.Module | None = None   # the canonicalized float graph the float targets convert
    op_uses: list = field(default_factory=list)  # ops.OpUse of the graph, for messages found after converting
    input_layout: str = "nchw"             # "nhwc": the .tflite graph takes (1, H, W, C) (firmware.channels_last_input)
    _cache: dict = field(default_factory=dict)

    def graph_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """Float inputs (N, C, H, W) as the exported .tflite graph takes them (NHWC when asked)."""
        from ..firmware import to_layout

        return to_layout(x, self.input_layout)

    def torch_float(self):
        """The float model's outputs on the parity inputs (None if only a quantized graph was given; a
        tuple of arrays for a model with several outputs)."""
        if self.float_model is None:
            return None
        if "float" not in self._cache:
            with torch.no_grad():
                self._cache["float"] = _numpy(self.float_model(self.parity_inputs))
        return self._cache["float"]

    def torch_int8(self):
        """The PT2E-quantized graph's (dequantized) outputs on the parity inputs."""
        if "int8" not in self._cache:
            from ..canonicalize import run

            # batched: with fold_quantize=False the graph re-quantizes its weights on every call
            self._cache["int8"] = _numpy(run(self.quantized, self.parity_inputs))
        return self._cache["int8"]


def _numpy(y):
    """float32 numpy of a model's output, or a tuple of them for several outputs."""
    if isinstance(y, (tuple, list)):
        return tuple(_numpy(t) for t in y)
    return y.detach().numpy().astype(np.float32)
