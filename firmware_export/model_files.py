"""Model and data FILES in: turn what a user has into what :func:`firmware_export.export` takes.

>>> m = fe.load_model("model.pt2")                          # saved with torch.export.save   # doctest: +SKIP
>>> m = fe.load_model("net.py:make_model", input_shape=(1, 3, 32, 32), weights="sd.pt")     # doctest: +SKIP
>>> m = fe.load_model("kws_int8.tflite")                    # a fully-int8 .tflite, no torch  # doctest: +SKIP
>>> x = fe.load_inputs("calibration.npy", m.input_shape)                                    # doctest: +SKIP
>>> fe.export(m.model, "c", example_input=m.example_input, calibration_data=x, out_dir="exports/c")  # doctest: +SKIP

Files are recognised by their content, not their name. A file in another format (TorchScript,
ONNX, a bare state_dict, a pickled ``nn.Module``, Keras, an empty or damaged file) gets ONE line
naming the file, what it looks like and what to do instead. Nothing here unpickles code: torch
files are read with ``torch.load(weights_only=True)``. Shared by ``edgekd export`` and
``edgekd bench``. (Not ``load.py``: ``firmware_export.load`` reopens an export folder.)
"""
from __future__ import annotations

import importlib.util
import pickletools
import sys
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import ExportError

ACCEPTED = "a torch.export program (.pt2), FILE.py:factory, a fully-int8 .tflite or an edgekd checkpoint"
CHECKPOINT_FORMAT = "edgekd-checkpoint"  # the marker edgekd.checkpoint writes (read here, never imported)
TO_PT2 = "torch.export.save(torch.export.export(model.eval(), (x,)), 'model.pt2')"
TO_INT8_TFLITE = ("convert to a fully-int8 .tflite with tf.lite.TFLiteConverter (optimizations=[tf.lite.Optimize."
                  "DEFAULT], a representative_dataset, inference_input_type=tf.int8, inference_output_type=tf.int8)")

# what a refused file looks like -> what to do instead (formatted with the file's name)
ADVICE = {
    "torchscript": f"TorchScript archive: save a torch.export program (.pt2) with {TO_PT2} instead",
    "onnx": "ONNX model: edgekd exports to ONNX but does not read it; give the PyTorch model instead, as a .pt2 "
            "(torch.export.save) or FILE.py:factory --weights",
    "state_dict": "a state_dict holds weights but no architecture: pass FILE.py:factory --input-shape 1,C,H,W "
                  "--weights {name}",
    "pickled_module": "a pickled torch.nn.Module (torch.save(model)); edgekd never unpickles code: save a .pt2 "
                      f"with {TO_PT2}, or torch.save(model.state_dict(), 'sd.pt') and pass FILE.py:factory "
                      "--weights sd.pt",
    "pickle": "a raw pickle (pickle.dump or the legacy torch.save format); edgekd never unpickles code: save a "
              f".pt2 with {TO_PT2}",
    "keras": f"a Keras model: {TO_INT8_TFLITE}",
    "hdf5": f"an HDF5 file (Keras .h5?): {TO_INT8_TFLITE}",
    "saved_model": f"a TensorFlow SavedModel folder: {TO_INT8_TFLITE}",
    "export_folder": "an edgekd export folder (already exported): reopen it with firmware_export.load(folder)",
    "folder": f"a folder, not a model file: give {ACCEPTED}",
    "python": "a Python file: name the function that builds the model, e.g. {name}:make_model --input-shape 1,C,H,W",
    "npy": "a NumPy array file (data, not a model): pass it as --calibration or --parity; the model is "
           f"{ACCEPTED}",
    "empty": f"empty file (0 bytes): expected {ACCEPTED}",
    "damaged_zip": "a damaged zip archive (a truncated or corrupt checkpoint, .pt2 or TorchScript file?): "
                   "write it again",
    "zip": f"a zip archive that is none of {ACCEPTED}",
    "unknown": f"not a model file edgekd reads ({{detail}}): expected {ACCEPTED}",
    "unreadable_file": "cannot be read ({detail})",
}


# short names of what a file looks like (for messages about files given in the wrong place)
KIND_NAMES = {
    "pt2": "a torch.export program (.pt2), which carries its own weights", "tflite": "a .tflite model",
    "checkpoint": "an edgekd checkpoint", "torchscript": "a TorchScript archive", "onnx": "an ONNX model",
    "pickled_module": "a pickled torch.nn.Module (refused: edgekd never unpickles code)",
    "refused": "a file of pickled Python objects ({detail}), refused",
    "torch_other": "a torch.save file holding {detail}",
    "pickle": "a raw pickle (refused)", "keras": "a Keras model", "hdf5": "an HDF5 file", "npy": "a NumPy array file",
    "empty": "an empty file", "damaged_zip": "a damaged zip archive", "zip": "a zip archive",
    "python": "a Python file", "folder": "a folder", "export_folder": "an edgekd export folder",
    "saved_model": "a TensorFlow SavedModel", "unreadable": "an unreadable torch.save archive ({detail})",
    "unknown": "not a torch file ({detail})", "unreadable_file": "a file that cannot be read ({detail})",
}


@dataclass(frozen=True)
class TFLiteModel:
    """A user's fully-int8 .tflite, taken as it is: the tflite, tflm and c targets copy these bytes."""

    path: str
    data: bytes = field(repr=False)
    input_shape: tuple
    output_shape: tuple
    input_quant: tuple    # (scale, zero_point) of the int8 input
    output_quant: tuple
    ops: tuple            # TFLite builtin op names, sorted

    def input_range(self) -> tuple[float, float]:
        """The float interval the int8 input codes -128..127 stand for."""
        scale, zero = self.input_quant
        return (-128 - zero) * scale, (127 - zero) * scale


@dataclass(frozen=True)
class LoadedModel:
    """What :func:`load_model` found: ``model`` is a ``torch.nn.Module`` or a :class:`TFLiteModel`."""

    kind: str                      # "pt2" | "factory" | "tflite" | "checkpoint"
    model: object
    example_input: torch.Tensor    # float32 zeros (1, ...): the shape export() traces with
    source: str

    @property
    def input_shape(self) -> tuple:
        return tuple(self.example_input.shape)


def load_model(spec, *, input_shape=None, weights=None, checkpoint_loader=None) -> LoadedModel:
    """``spec``: ``model.pt2``, ``path/net.py:factory``, ``model.tflite`` or an edgekd checkpoint.

    ``input_shape``: ``(1, ...)``, needed for ``FILE.py:factory`` (and a .pt2 with dynamic dims other
    than the batch). ``weights``: a state_dict file for ``FILE.py:factory``. ``checkpoint_loader``:
    ``path -> (module, input_shape)`` for edgekd checkpoints (their model registry lives in edgekd,
    which firmware_export does not import; the CLI passes one in). Raises :class:`ExportError`.
    """
    spec = str(spec)
    shape = None if input_shape is None else _check_shape(input_shape, "input_shape")
    file, factory = split_factory(spec)
    if factory is not None:
        return _load_factory(Path(file), factory, shape, weights)
    path = Path(spec)
    kind = sniff(path)
    if weights is not None:
        raise ExportError(f"{path}: --weights applies to FILE.py:factory only; this is {KIND_NAMES[kind]}")
    if kind == "pt2":
        return _load_pt2(path, shape)
    if kind == "tflite":
        model = _load_tflite(path)
        if shape is not None and shape != model.input_shape:
            raise ExportError(f"{path}: the .tflite's input is {model.input_shape}, not the given {shape}")
        return LoadedModel("tflite", model, torch.zeros(model.input_shape), str(path))
    # an edgekd checkpoint
    if checkpoint_loader is None:
        raise ExportError(f"{path}: an edgekd checkpoint: export it with `edgekd export {path}` (rebuilding it "
                          "needs edgekd's model registry)")
    module, ckpt_shape = checkpoint_loader(path)
    if shape is not None and shape != tuple(ckpt_shape):
        raise ExportError(f"{path}: the checkpoint's model takes {tuple(ckpt_shape)}, not the given {shape}")
    return LoadedModel("checkpoint", module.eval(), torch.zeros(tuple(ckpt_shape)), str(path))


def split_factory(spec: str):
    """``"dir/net.py:make"`` -> ``("dir/net.py", "make")``; anything else -> ``(spec, None)``."""
    file, sep, name = spec.rpartition(":")
    if sep and file.endswith(".py"):
        return file, name
    return spec, None


def parse_shape(text) -> tuple:
    """``"1,3,32,32"`` -> ``(1, 3, 32, 32)`` (batch 1 first)."""
    try:
        dims = tuple(int(d) for d in str(text).replace(" ", "").split(","))
    except ValueError:
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise ExportError(f"--input-shape {text!r}: expected positive integers separated by commas, batch 1 "
                          "first, e.g. 1,3,32,32")
    return _check_shape(dims, "--input-shape")


def _check_shape(shape, what) -> tuple:
    shape = tuple(int(d) for d in shape)
    if len(shape) < 2 or shape[0] != 1:
        raise ExportError(f"{what} {shape}: expected the whole input shape with batch 1 first, e.g. 1,3,32,32")
    return shape


# ---- what a file is -------------------------------------------------------------------------

def sniff(path) -> str:
    """``"pt2"``, ``"tflite"`` or ``"checkpoint"``; any other file raises one line saying what it looks like."""
    path = Path(path)
    kind, detail = looks_like(path)
    if kind in ("pt2", "tflite", "checkpoint"):
        return kind
    if kind == "missing":
        raise ExportError(f"{path}: no such file (expected {ACCEPTED})")
    if kind == "refused":
        raise ExportError(f"{path}: refused to load: it holds pickled Python objects ({detail}), not only weights; "
                          "edgekd never unpickles arbitrary objects")
    if kind == "torch_other":
        raise ExportError(f"{path}: a torch.save file holding {detail}, not a model: expected {ACCEPTED}")
    if kind == "unreadable":
        raise ExportError(f"{path}: a torch.save archive torch.load cannot read (corrupt or truncated checkpoint? "
                          f"{detail}): write it again")
    raise ExportError(f"{path}: " + ADVICE[kind].format(name=path, detail=detail))


def looks_like(path: Path) -> tuple[str, str]:
    """Classify by content: ``(kind, detail)``. Never executes anything from the file."""
    if not path.exists():
        return "missing", ""
    if path.is_dir():
        if (path / "export.json").is_file():
            return "export_folder", ""
        if (path / "saved_model.pb").is_file():
            return "saved_model", ""
        return "folder", ""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as err:
        return "unreadable_file", err.strerror or type(err).__name__
    if size == 0:
        return "empty", ""
    if head[4:8] == b"TFL3":
        return "tflite", ""
    if head.startswith(b"\x93NUMPY"):
        return "npy", ""
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5", ""
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle", ""
    if _is_onnx(path, head):
        return "onnx", ""
    if path.suffix == ".py":
        return "python", ""
    text = head.decode("ascii", "replace")
    printable = sum(c.isprintable() or c in "\r\n\t" for c in text) / max(len(text), 1)
    detail = f"{size} bytes of text" if printable > 0.95 else f"{size} bytes starting {head[:8].hex(' ')}"
    return "unknown", detail


def _zip_kind(path) -> tuple[str, str]:
    if not zipfile.is_zipfile(path):
        return "damaged_zip", ""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "damaged_zip", ""
    leaves = {n.split("/", 1)[-1] for n in names}
    if "archive_format" in leaves and any(n.endswith("models/model.json") or "/models/" in n for n in names):
        return "pt2", ""
    if "constants.pkl" in leaves or any(n.split("/", 1)[-1].startswith("code/") for n in names):
        return "torchscript", ""
    if "keras_version" in leaves or ("metadata.json" in leaves and "config.json" in leaves):
        return "keras", ""
    if "data.pkl" in leaves:
        return _torch_save_kind(path, names)
    if any(n.endswith(".npy") for n in names):
        return "npy", ""
    return "zip", ""


def _torch_save_kind(path, names) -> tuple[str, str]:
    """What a ``torch.save`` zip holds, read with ``weights_only=True`` (pickled code is refused, not run)."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - pickle, zip and storage errors all mean "cannot read it safely"
        if "Weights only load failed" in str(err) or "Unsupported global" in str(err):
            globals_ = _pickle_globals(path, names)
            if any(g.startswith("torch.nn.modules.") or g == "torch._utils._rebuild_parameter" for g in globals_):
                return "pickled_module", ""
            foreign = [g for g in globals_ if not g.startswith(("torch.", "collections.", "builtins.set"))]
            return "refused", ", ".join(foreign[:3]) or "unsupported globals"
        return "unreadable", _first_line(err)
    if isinstance(payload, dict) and payload.get("format") == CHECKPOINT_FORMAT:
        return "checkpoint", ""
    if state_dict_in(payload) is not None:
        return "state_dict", ""
    return "torch_other", _describe(payload)


def _pickle_globals(path, names) -> list[str]:
    """The ``module.name`` globals a pickle would import, read from its opcodes (nothing is executed)."""
    pkl = next((n for n in names if n.endswith("data.pkl")), None)
    if pkl is None:
        return []
    out, strings = [], []
    try:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(pkl)
        for op, arg, _ in pickletools.genops(data):
            if op.name == "GLOBAL":
                out.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                out.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # noqa: BLE001 - a damaged pickle: report what was seen so far
        pass
    return list(dict.fromkeys(g.replace("__builtin__.", "builtins.") for g in out))  # protocol 2 spelling


def _is_onnx(path, head) -> bool:
    """An ONNX ModelProto starts with ir_version (field 1, varint) and parses as one."""
    if head[:1] != b"\x08":
        return False
    try:
        import onnx
    except ImportError:
        return path.suffix == ".onnx"
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001
        return False
    return model.ir_version > 0 and len(model.graph.node) > 0


def _describe(obj) -> str:
    if isinstance(obj, torch.Tensor):
        return f"one tensor of shape {tuple(obj.shape)}"
    if isinstance(obj, dict):
        keys = list(obj)[:4]
        return f"a dict with keys {', '.join(map(repr, keys))}{', ...' if len(obj) > 4 else ''}"
    return f"a {type(obj).__name__}"


def state_dict_in(payload):
    """The ``{name: tensor}`` dict in a torch.load result: itself, or under 'state_dict'/'model'; else None."""
    def is_state(d):
        return isinstance(d, dict) and d and all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                 for k, v in d.items())
    if is_state(payload):
        return payload
    if isinstance(payload, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if is_state(payload.get(key)):
                return payload[key]
    return None


def _first_line(err) -> str:
    text = str(err).strip()
    return (text.splitlines() or [type(err).__name__])[0].strip() if text else type(err).__name__


# ---- the three ways in ----------------------------------------------------------------------

def _load_pt2(path, shape) -> LoadedModel:
    try:
        program = torch.export.load(str(path))
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"{path}: torch.export.load could not read this .pt2 ({_first_line(err)}): save it again "
                          f"with {TO_PT2} in this torch ({torch.__version__})") from None
    user_input = torch.export.graph_signature.InputKind.USER_INPUT
    user = [s for s in program.graph_signature.input_specs if s.kind == user_input]
    if len(user) != 1:
        raise ExportError(f"{path}: the program takes {len(user)} inputs; edgekd exports models with one input tensor")
    node = next(n for n in program.graph.nodes if n.op == "placeholder" and n.name == user[0].arg.name)
    dims = list(node.meta["val"].shape)
    if isinstance(dims[0], int) and dims[0] != 1:
        raise ExportError(f"{path}: the program was exported for batch {dims[0]}; export it with a batch-1 example "
                          "(or a dynamic batch)")
    dims[0] = 1
    if shape is not None:
        if len(shape) != len(dims) or any(isinstance(d, int) and d != s for d, s in zip(dims, shape)):
            raise ExportError(f"{path}: the program's input is {tuple(_dim(d) for d in dims)}, which the given "
                              f"input shape {shape} does not fit")
        dims = list(shape)
    if any(not isinstance(d, int) for d in dims):
        raise ExportError(f"{path}: the program's input {tuple(_dim(d) for d in dims)} has dynamic dims: give "
                          "the shape to export with --input-shape (e.g. 1,3,32,32)")
    # a plain fx graph, one tensor in and one out: without the guards and input-constraint hooks that pin
    # the traced batch size (export() runs batches), nor the pytree calling convention (deprecated specs)
    module = program.module(check_guards=False)
    graph = module.graph
    out = next(n for n in graph.nodes if n.op == "output")
    if len(out.args[0]) != 1:
        raise ExportError(f"{path}: the program returns {len(out.args[0])} outputs; edgekd exports models with one "
                          "output tensor")
    graph.set_codegen(torch.fx.graph.CodeGen())
    out.args = (out.args[0][0],)
    module = torch.fx.GraphModule(module, graph)
    x = torch.zeros(tuple(dims))
    _check_batches(module, x, path, hint="export it with a dynamic batch: torch.export.export(model, (x,), "
                                         "dynamic_shapes=({0: torch.export.Dim('batch')},)), or flatten with "
                                         "x.flatten(1) instead of a view to a fixed size")
    return LoadedModel("pt2", module.eval(), x, str(path))


def _dim(d):
    return d if isinstance(d, int) else str(d)


def _check_batches(module, x, where, *, hint):
    """The model must run a batch of 2 (export calibrates and checks in batches); a graph pinned to batch 1 cannot."""
    try:
        with torch.no_grad():
            y = module(torch.cat([x, x]))
        why = None if isinstance(y, torch.Tensor) and tuple(y.shape[:1]) == (2,) else "its output ignores the batch"
    except Exception as err:  # noqa: BLE001
        why = _first_line(err)
    if why:
        raise ExportError(f"{where}: the graph runs batch 1 only ({why}): {hint}")


def _load_factory(path: Path, factory: str, shape, weights) -> LoadedModel:
    where = f"{path}:{factory}"
    if not path.is_file():
        raise ExportError(f"{path}: no such file (expected FILE.py:factory, e.g. net.py:make_model)")
    module = _import_file(path)
    fn = getattr(module, factory, None)
    if fn is None or not callable(fn):
        found = sorted(n for n, v in vars(module).items()
                       if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__)
        what = "no" if fn is None else "a non-callable"
        raise ExportError(f"{path}: {what} {factory!r} in it; expected a function (or class) that returns the "
                          f"torch.nn.Module (defined there: {', '.join(found) or 'nothing callable'})")
    try:
        model = fn()
    except Exception as err:  # noqa: BLE001 - the user's code: any failure, one line
        raise ExportError(f"{where}() raised {type(err).__name__}: {_first_line(err)} (it is called with no "
                          "arguments)") from None
    if not isinstance(model, torch.nn.Module):
        raise ExportError(f"{where}() returned {type(model).__name__}; expected a torch.nn.Module")
    if shape is None:
        raise ExportError(f"{where}: give the model's input shape with --input-shape (batch 1 first, e.g. 1,3,32,32)")
    if weights is not None:
        load_weights(model, weights, where=where)
    model.eval()
    x = torch.zeros(shape)
    try:
        with torch.no_grad():
            y = model(x)
    except Exception as err:  # noqa: BLE001
        raise ExportError(f"{where}: input shape {shape} does not fit the model ({type(err).__name__}: "
                          f"{_first_line(err)}); give the shape its forward expects with --input-shape") from None
    if not isinstance(y, torch.Tensor):
        raise ExportError(f"{where}: the model returns {type(y).__name__}; expected one tensor")
    _check_batches(model, x, where, hint="write forward for any batch size (e.g. x.flatten(1), not x.view(1, -1))")
    return LoadedModel("factory", model, x, where)


def _import_file(path: Path):
    """Import a user's .py file as a module (its folder on sys.path while it imports siblings)."""
    name = f"edgekd_user_{path.stem}_{abs(hash(str(path.resolve()))):x}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.resolve().parent))
    try:
        spec.loader.exec_module(module)
    except BaseException as err:  # noqa: BLE001 - SystemExit/KeyboardInterrupt in a user file too
        sys.modules.pop(name, None)
        if isinstance(err, KeyboardInterrupt):
            raise
        line = getattr(err, "lineno", None) if isinstance(err, SyntaxError) else _line_in(err, path)
        at = f" (line {line})" if line else ""
        raise ExportError(f"{path}: import failed{at}: {type(err).__name__}: {_first_line(err)}") from None
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _line_in(err, path):
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return frames[-1].lineno if frames else None


def load_weights(model, weights, *, where="the model"):
    """Load a state_dict file (``torch.load(weights_only=True)``) into ``model``; mismatches in one line."""
    path = Path(weights)
    kind, detail = looks_like(path)
    if kind == "missing":
        raise ExportError(f"{path}: no such weights file")
    if kind not in ("state_dict", "checkpoint"):
        raise ExportError(f"{path}: --weights expects a state_dict saved with torch.save(model.state_dict(), "
                          f"'{path.name}'); this is {KIND_NAMES.get(kind, kind).format(detail=detail)}")
    state = state_dict_in(torch.load(path, map_location="cpu", weights_only=True))
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    problems = [f"{label} {_few(items)}" for label, items in
                (("missing", missing), ("unexpected", unexpected), ("shape (file vs model)", shapes)) if items]
    if problems:
        raise ExportError(f"{path}: the weights do not fit {where}: {'; '.join(problems)}")
    model.load_state_dict(state)
    return model


def _few(items, n=3) -> str:
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def _load_tflite(path: Path) -> TFLiteModel:
    """Read and check a .tflite: one int8 input, one int8 output, no float tensors inside."""
    from .tflite_reader import read_tflite

    try:
        graph = read_tflite(path)
    except ExportError as err:
        raise ExportError(_first_line(err)) from None
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        raise ExportError(f"{path}: {len(graph.inputs)} inputs and {len(graph.outputs)} outputs; a .tflite is "
                          "exported here with one input and one output tensor")
    tin, tout = graph.tensor(graph.inputs[0]), graph.tensor(graph.outputs[0])
    first = next((op for op in graph.operators if graph.inputs[0] in op.inputs), None)
    if tin.dtype == "FLOAT32" and first is not None and first.op == "QUANTIZE":
        raise ExportError(f"{path}: float32 input and output with QUANTIZE/DEQUANTIZE at the edges (the TF "
                          "converter's default): convert again with converter.inference_input_type = tf.int8 and "
                          "converter.inference_output_type = tf.int8 for a fully-int8 model")
    floats = [t for t in graph.tensors if t.dtype in ("FLOAT32", "FLOAT16")]
    if floats:
        raise ExportError(f"{path}: not fully int8: tensor {floats[0].name!r} is {floats[0].dtype.lower()} (a float "
                          f"or dynamic-range model); {TO_INT8_TFLITE}")
    for what, t in (("input", tin), ("output", tout)):
        if t.dtype != "INT8":
            fix = ("16x8 quantization is not supported; quantize activations to int8" if t.dtype == "INT16"
                   else f"set converter.inference_{what}_type = tf.int8")
            raise ExportError(f"{path}: the {what} tensor is {t.dtype.lower()}, not int8: {fix}")
        if t.scale is None or len(t.scale) != 1:
            raise ExportError(f"{path}: the {what} tensor has no per-tensor scale and zero point")
        if not t.shape or t.shape[0] != 1:
            raise ExportError(f"{path}: the {what} tensor has shape {t.shape}; expected batch 1 first")
    return TFLiteModel(
        path=str(path), data=Path(path).read_bytes(), input_shape=tuple(tin.shape), output_shape=tuple(tout.shape),
        input_quant=(float(tin.scale[0]), int(tin.zero_point[0])),
        output_quant=(float(tout.scale[0]), int(tout.zero_point[0])),
        ops=tuple(sorted({op.op for op in graph.operators})))


# ---- data files -------------------------------------------------------------------------------

DATA_KEYS = ("x", "inputs")


def load_inputs(path, input_shape, *, what="--calibration", int8_quant=None) -> torch.Tensor:
    """Float inputs ``(N, *input_shape[1:])`` from a ``.npy`` or ``.npz`` (one array, or key 'x'/'inputs').

    ``int8_quant``: ``(scale, zero_point)`` of a .tflite's input; then int8 arrays are taken as input
    codes (dequantized here, so that quantizing them again gives the same codes).
    """
    path = Path(path)
    sample = tuple(input_shape[1:])
    want = f"(N, {', '.join(map(str, sample))})"
    if not path.is_file():
        raise ExportError(f"{what} {path}: no such file (expected a .npy or .npz of inputs {want})")
    arr = _read_array(path, what, want)
    if arr.dtype == np.int8 and int8_quant is not None:
        from .interp import dequantize

        arr = dequantize(arr, *int8_quant)
    elif arr.dtype.kind != "f":
        codes = " (int8 codes are taken for a .tflite only)" if arr.dtype == np.int8 else ""
        raise ExportError(f"{what} {path}: dtype {arr.dtype}; expected float inputs as the model takes them{codes}: "
                          "save e.g. x.astype(np.float32)")
    if arr.ndim == len(sample) and arr.shape == sample:
        raise ExportError(f"{what} {path}: one sample of shape {arr.shape}; expected a batch {want}: save x[None]")
    from . import _as_inputs  # the checks export() runs on data (shape, empty, NaN/Inf), naming the file

    return _as_inputs(np.ascontiguousarray(arr, dtype=np.float32), torch.zeros(tuple(input_shape)), f"{what} {path}")


def _read_array(path, what, want) -> np.ndarray:
    with open(path, "rb") as f:
        head = f.read(8)
    try:
        if head.startswith(b"\x93NUMPY"):
            return np.load(path, allow_pickle=False)
        if head.startswith(b"PK\x03\x04"):
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.keys())
                if len(keys) == 1:
                    return npz[keys[0]]
                named = [k for k in DATA_KEYS if k in keys]
                if len(named) == 1:
                    return npz[named[0]]
                raise ExportError(f"{what} {path}: {len(keys)} arrays ({', '.join(keys) or 'none'}); expected one "
                                  f"array, or the inputs under key 'x' or 'inputs'")
    except ExportError:
        raise
    except Exception as err:  # noqa: BLE001 - numpy raises ValueError/OSError/zip errors on bad files
        raise ExportError(f"{what} {path}: not a readable .npy/.npz ({_first_line(err)})") from None
    raise ExportError(f"{what} {path}: not a .npy or .npz file; save the inputs {want} with np.save")
