"""The object every export returns: files on disk plus ``predict`` that runs the real artifact.

An export folder holds the target's files, ``export.json`` (what made it: target, precision,
quantization, shapes, versions) and ``parity.json`` (the proof). ``Artifact.load(folder)`` reopens
one, so benchmarks and tests share this API.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from .errors import ExportError
from .interp import dequantize, outputs_of, quantize

EXPORT_FORMAT = "edgekd-export"
EXPORT_FORMAT_VERSION = 1


class Artifact:
    """An exported model: ``files``, ``parity``, ``config``, ``predict(x)``, ``save(dir)``."""

    def __init__(self, path, config: dict, parity: dict):
        self.path = Path(path)
        self.config = config
        self.parity = parity
        self._runners = {}

    def __repr__(self):
        return (f"Artifact(target={self.target!r}, precision={self.precision!r}, path='{self.path}', "
                f"parity={'passed' if self.parity.get('passed') else 'FAILED'})")

    target = property(lambda self: self.config["target"])
    precision = property(lambda self: self.config["precision"])
    name = property(lambda self: self.config["name"])
    runtimes = property(lambda self: list(self.config["runtimes"]))

    @property
    def files(self) -> list[Path]:
        return [self.path / f for f in self.config["files"]]

    def file(self, suffix: str) -> Path:
        """The first file whose name ends with ``suffix`` (e.g. ``'.tflite'``)."""
        for f in self.files:
            if f.name.endswith(suffix):
                return f
        raise ExportError(f"{self.path}: no file ending in {suffix!r} in this {self.target} export")

    @property
    def input_quant(self):
        q = self.config.get("input_quant")
        return tuple(q) if q else None

    @property
    def output_quant(self):
        """(scale, zero point) of the first output (int8 artifacts); ``output_quants`` lists every output's."""
        q = self.config.get("output_quant")
        return tuple(q) if q else None

    @property
    def output_quants(self) -> list | None:
        qs = self.config.get("output_quants") or ([self.config["output_quant"]] if self.config.get("output_quant")
                                                 else None)
        return [tuple(q) for q in qs] if qs else None

    @property
    def num_outputs(self) -> int:
        return len(self.config.get("output_shapes") or [self.config["output_shape"]])

    def _runner(self, runtime):
        from .targets import target_module

        runtime = runtime or self.config["default_runtime"]
        if runtime not in self.config["runtimes"]:
            raise ExportError(f"runtime {runtime!r} not available for this {self.target} export; "
                              f"choose from {self.config['runtimes']}")
        if runtime not in self._runners:
            self._runners[runtime] = target_module(self.target).open_runtime(self.path, self.config, runtime)
        return self._runners[runtime]

    def predict_raw(self, x, runtime=None):
        """Run the artifact on its own input type (int8 codes for int8 artifacts), batch by sample; a
        model with several outputs gives a tuple of arrays, in the order the model returns them."""
        x = np.asarray(x)
        shape = tuple(self.config["input_shape"][1:])
        if x.shape[1:] != shape:
            raise ExportError(f"input of shape {x.shape} does not fit the artifact's input (N, {', '.join(map(str, shape))})")
        return self._runner(runtime)(x)

    def predict(self, x, runtime=None):
        """Float in, float out: quantizes the input and dequantizes the outputs of int8 artifacts (each
        with its own scale and zero point). Several outputs: a tuple of arrays, as the model returns them."""
        x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float32)
        if self.input_quant:
            x = quantize(x, *self.input_quant)
        ys = outputs_of(self.predict_raw(x, runtime))
        if self.output_quants:
            ys = [dequantize(y, *q) for y, q in zip(ys, self.output_quants)]
        ys = [y.astype(np.float32) for y in ys]
        return tuple(ys) if len(ys) > 1 else ys[0]

    def save(self, path) -> "Artifact":
        """Copy the whole export folder to ``path`` (atomically) and return the copy."""
        from edgekd.io import atomic_dir

        with atomic_dir(path) as tmp:
            shutil.copytree(self.path, tmp, dirs_exist_ok=True)
        return Artifact.load(path)

    @classmethod
    def load(cls, path) -> "Artifact":
        path = Path(path)
        try:
            config = json.loads((path / "export.json").read_text())
            parity = json.loads((path / "parity.json").read_text())
        except FileNotFoundError as err:
            raise ExportError(f"{path}: not an export folder ({Path(err.filename).name} missing)") from None
        except json.JSONDecodeError as err:
            raise ExportError(f"{path}: unreadable export record ({err.msg})") from None
        if config.get("format") != EXPORT_FORMAT:
            raise ExportError(f"{path}/export.json: not an edgekd export (format {config.get('format')!r})")
        if config.get("format_version", 0) > EXPORT_FORMAT_VERSION:
            raise ExportError(f"{path}/export.json: format {config['format_version']} is newer than this edgekd")
        return cls(path, config, parity)
