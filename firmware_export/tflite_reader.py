"""Read a .tflite flatbuffer into a plain graph: tensors (shape, dtype, quantization, constant data)
and operators (builtin name, inputs, outputs, options as a dict).

Uses the flatbuffer classes that ``ai_edge_litert`` ships (``schema_py_generated``), so the reader
follows the schema of the runtime that checks the export. Only the first subgraph is read.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ExportError

_NP_DTYPES = {
    "FLOAT32": np.float32, "FLOAT16": np.float16, "INT32": np.int32, "UINT8": np.uint8,
    "INT64": np.int64, "INT16": np.int16, "INT8": np.int8, "BOOL": np.bool_, "FLOAT64": np.float64,
    "UINT32": np.uint32, "UINT16": np.uint16,
}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple
    dtype: str                      # schema name: "INT8", "INT32", "FLOAT32", ...
    scale: np.ndarray | None = None  # float32, one per tensor or one per channel
    zero_point: np.ndarray | None = None  # int64
    quantized_dimension: int = 0
    data: np.ndarray | None = None   # constant contents (reshaped to ``shape``), None for activations

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def per_channel(self) -> bool:
        return self.scale is not None and len(self.scale) > 1


@dataclass
class Operator:
    index: int
    op: str                 # builtin name, e.g. "CONV_2D"
    inputs: list            # tensor indices (-1 = optional input absent)
    outputs: list
    options: dict = field(default_factory=dict)


@dataclass
class Graph:
    tensors: list
    operators: list
    inputs: list
    outputs: list
    path: str = ""

    def tensor(self, i: int) -> Tensor:
        return self.tensors[i]


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ExportError("reading .tflite needs the 'ai-edge-litert' package (pip install edgekd[export])") from exc
    return schema


def _enum_names(cls) -> dict:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def _options_dict(opts) -> dict:
    """Flatten a generated ``*OptionsT`` object into a plain dict of ints/bools/lists."""
    if opts is None:
        return {}
    out = {}
    for k, v in vars(opts).items():
        if isinstance(v, np.ndarray):
            v = v.tolist()
        out[k] = v
    return out


def read_tflite(path) -> Graph:
    """Parse ``path`` (a .tflite file) into a :class:`Graph`; raise ExportError on a malformed file."""
    path = Path(path)
    try:
        buf = path.read_bytes()
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the .tflite file ({exc})") from exc
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ExportError(f"{path}: not a TFLite flatbuffer (expected the 'TFL3' identifier at byte 4)")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromPackedBuf(buf, 0)
    except Exception as exc:  # flatbuffers raises assorted errors on corrupt input
        raise ExportError(f"{path}: corrupt .tflite flatbuffer ({exc})") from exc
    if not model.subgraphs:
        raise ExportError(f"{path}: the model has no subgraph")
    if len(model.subgraphs) > 1:
        raise ExportError(f"{path}: {len(model.subgraphs)} subgraphs; only single-subgraph models are supported")
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    sg = model.subgraphs[0]

    tensors = []
    for i, t in enumerate(sg.tensors or []):
        dtype = type_names.get(t.type, str(t.type))
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        name = t.name.decode("utf-8", "replace") if isinstance(t.name, bytes) else str(t.name or f"tensor{i}")
        scale = zp = None
        qdim = 0
        q = t.quantization
        if q is not None and q.scale is not None and len(q.scale) > 0:
            scale = np.asarray(q.scale, dtype=np.float32).reshape(-1)
            zp = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * len(scale), dtype=np.int64).reshape(-1)
            qdim = int(q.quantizedDimension)
        data = None
        b = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        raw = None
        if b is not None:
            if b.data is not None and len(b.data) > 0:
                raw = np.asarray(b.data, dtype=np.uint8).tobytes()
            elif b.offset and b.offset > 1 and b.size:
                raw = buf[int(b.offset): int(b.offset) + int(b.size)]
        if raw is not None:
            if dtype not in _NP_DTYPES:
                raise ExportError(f"{path}: tensor {name!r} has unsupported constant type {dtype}")
            arr = np.frombuffer(raw, dtype=_NP_DTYPES[dtype])
            n = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if arr.size != n:
                raise ExportError(f"{path}: tensor {name!r} holds {arr.size} values, its shape {shape} needs {n}")
            data = arr.reshape(shape).copy()
        tensors.append(Tensor(i, name, shape, dtype, scale, zp, qdim, data))

    operators = []
    for k, op in enumerate(sg.operators or []):
        oc = model.operatorCodes[op.opcodeIndex]
        code = max(int(oc.builtinCode), int(oc.deprecatedBuiltinCode))
        name = op_names.get(code, f"BUILTIN_{code}")
        if name == "CUSTOM":
            cc = oc.customCode.decode() if isinstance(oc.customCode, bytes) else oc.customCode
            name = f"CUSTOM:{cc}"
        operators.append(Operator(k, name, [int(i) for i in (op.inputs if op.inputs is not None else [])],
                                  [int(i) for i in (op.outputs if op.outputs is not None else [])],
                                  _options_dict(op.builtinOptions)))
    return Graph(tensors, operators, [int(i) for i in sg.inputs], [int(i) for i in sg.outputs], str(path))
