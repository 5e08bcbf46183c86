"""The up-front op check: each target declares what it accepts; nothing is converted before it passes.

The canonical graph (``canonicalize.py``) is described in one small vocabulary (:func:`op_uses`:
``conv2d``, ``depthwise_conv2d``, ``linear``, ``relu``, ``relu6``, ``global_avg_pool``, ``add``,
``reshape``, ... and, for anything else, the aten op's own name). Each target module declares
``ACCEPTS``: :data:`ANY` (its converter is the judge: onnx, tflite) or a function of one
:class:`OpUse` (tflm: a TFLite Micro kernel exists for what litert-torch emits; c: the native C
lowering has it). :func:`check_target` refuses the first op the chosen target cannot run, in one
line naming the op, the layer, the target and the targets that would take the model.

The only target-independent refusal is a model ``torch.export`` cannot trace at all.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch

from .canonicalize import layer, opname, shape
from .errors import UnsupportedOpError

ANY = "any op its converter takes"


@dataclass(frozen=True)
class OpUse:
    """One op of the graph: its vocabulary name, where it is, and how it is used when that matters."""

    op: str             # "conv2d", "relu6", "add", ...; an aten op's name when outside the vocabulary
    layer: str          # module path ("features.3") or "forward (node)"
    module: str = ""    # the module class it came from ("GELU"), for the message
    detail: str = ""    # "" for the plain form; e.g. "of a constant", "with broadcasting", "to rank 5"


# aten op name -> vocabulary name (conv, hardtanh, avg_pool2d and binary ops are refined below)
_NAMES = {
    "linear": "linear", "addmm": "linear", "mm": "matmul", "matmul": "matmul", "bmm": "matmul",
    "relu": "relu", "relu_": "relu", "max_pool2d": "max_pool2d", "max_pool2d_with_indices": "max_pool2d",
    "add": "add", "add_": "add", "sub": "sub", "sub_": "sub", "mul": "mul", "mul_": "mul", "div": "div",
    "flatten": "reshape", "view": "reshape", "reshape": "reshape", "_unsafe_view": "reshape", "squeeze": "reshape",
    "unsqueeze": "reshape", "permute": "transpose", "transpose": "transpose", "t": "transpose",
    "cat": "concatenate", "constant_pad_nd": "pad", "pad": "pad",
    "softmax": "softmax", "_softmax": "softmax", "sigmoid": "sigmoid", "tanh": "tanh", "hardswish": "hardswish",
    "leaky_relu": "leaky_relu", "gelu": "gelu", "silu": "silu", "elu": "elu",
    "mean": "mean", "adaptive_avg_pool2d": "mean", "_adaptive_avg_pool2d": "mean",
    "batch_norm": "batch_norm", "_native_batch_norm_legit_no_training": "batch_norm",
    "relu6": "relu6", "hardtanh_": "clamp", "clamp": "clamp",
    "dropout": "identity", "clone": "identity", "alias": "identity", "contiguous": "identity", "detach": "identity",
}
# graph plumbing and constant factories (a converter folds them): no op of the model
_SKIP = {"sym_size", "_assert_tensor_metadata", "_assert_scalar", "sym_constrain_range_for_size", "zeros", "ones",
         "full", "zeros_like", "ones_like", "full_like", "empty", "new_zeros", "new_ones", "scalar_tensor",
         "arange"}
_QDQ = {"quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel", "dequantize_per_channel"}

# vocabulary op -> the TFLite builtin ops litert-torch emits for it (int8 and fp32; fused
# activations fold into the conv/FC before them). Ops not listed are judged on the converted file.
BUILTINS = {
    "conv2d": ("CONV_2D",), "depthwise_conv2d": ("DEPTHWISE_CONV_2D",), "grouped_conv2d": ("CONV_2D",),
    "linear": ("FULLY_CONNECTED",), "matmul": ("BATCH_MATMUL",), "relu": ("RELU",), "relu6": ("RELU6",),
    "relu_n1_to_1": ("RELU_N1_TO_1",), "max_pool2d": ("MAX_POOL_2D",), "avg_pool2d": ("AVERAGE_POOL_2D",),
    "global_avg_pool": ("AVERAGE_POOL_2D",), "mean": ("MEAN",), "add": ("ADD",), "sub": ("SUB",), "mul": ("MUL",),
    "div": ("DIV",), "reshape": ("RESHAPE",), "transpose": ("TRANSPOSE",), "concatenate": ("CONCATENATION",),
    "pad": ("PAD",), "softmax": ("SOFTMAX",), "sigmoid": ("LOGISTIC",), "tanh": ("TANH",),
    "hardswish": ("HARD_SWISH",), "leaky_relu": ("LEAKY_RELU",), "gelu": ("GELU",), "silu": ("LOGISTIC", "MUL"),
    "elu": ("EXP", "GREATER_EQUAL", "SELECT", "SUB"), "conv_transpose2d": ("TRANSPOSE_CONV",),
}


def op_uses(gm: torch.fx.GraphModule) -> list[OpUse]:
    """Every op of a (canonical or PT2E) graph, in graph order, in the vocabulary above."""
    uses = []
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        if node.op == "call_module":
            if node.target != "_guards_fn":
                uses.append(OpUse(str(node.target), layer(node)))
            continue
        if node.target is operator.getitem:
            continue
        namespace = getattr(node.target, "namespace", None)
        name = opname(node) or getattr(node.target, "_opname", None) or getattr(node.target, "__name__",
                                                                                   str(node.target))
        if name in _SKIP or (namespace == "quantized_decomposed" and name in _QDQ):
            continue
        op, detail = _classify(node, name, gm) if namespace in ("aten", None) else (name, "")
        if op != "identity":
            uses.append(OpUse(op, layer(node), _module_class(node), detail))
    return uses


def _module_class(node) -> str:
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return ""
    path, cls = list(stack.values())[-1]
    if path in ("", "L['self']"):
        return ""  # the model's own forward: the layer already says "forward (node)"
    name = cls.__name__ if isinstance(cls, type) else str(cls).rsplit(".", 1)[-1]
    return "" if name == "canonicalize" else name


def _classify(node, name, gm) -> tuple[str, str]:
    if name in ("conv2d", "convolution", "conv1d", "conv3d", "conv_transpose2d"):
        return _conv_kind(node, name, gm), ""
    if name in ("hardtanh", "hardtanh_"):
        lo, hi = (list(node.args[1:3]) + [-1.0, 1.0][len(node.args[1:3]):])[:2]
        return {(0.0, 6.0): "relu6", (-1.0, 1.0): "relu_n1_to_1"}.get((float(lo), float(hi)), "clamp"), ""
    if name == "avg_pool2d":
        dims, k = shape(node.args[0]), list(node.args[1])
        padding = node.args[3] if len(node.args) > 3 else 0
        full = dims is not None and len(dims) == 4 and list(dims[2:]) == (k * 2)[:2] and not any(
            padding if isinstance(padding, (list, tuple)) else [padding])
        return ("global_avg_pool" if full else "avg_pool2d"), ""
    op = _NAMES.get(name, name)
    if op in ("add", "sub", "mul", "div"):
        a, b = node.args[0], node.args[1] if len(node.args) > 1 else None
        if not (isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node)):
            return op, "of a constant"
        if shape(a) is not None and shape(a) != shape(b):
            return op, "with broadcasting"
    if op == "reshape":
        out = shape(node)
        if out is not None and len(out) > 4:
            return op, f"to rank {len(out)}"
    return op, ""


def _conv_kind(node, name, gm) -> str:
    if name == "convolution" and len(node.args) > 6 and node.args[6]:
        return "conv_transpose2d"
    if name == "conv_transpose2d":
        return name
    weight = _weight_shape(node.args[1], gm) if len(node.args) > 1 else None
    if weight is not None and len(weight) != 4:
        return f"conv{len(weight) - 2}d"
    groups = node.args[8] if name == "convolution" and len(node.args) > 8 else \
        (node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1))
    if groups == 1:
        return "conv2d"
    if weight is not None and weight[1] == 1:  # one input channel per group: depthwise (any multiplier)
        return "depthwise_conv2d"
    return "grouped_conv2d"


def _weight_shape(node, gm):
    """Shape of a weight argument, looking through PT2E quantize/dequantize nodes to the parameter."""
    while isinstance(node, torch.fx.Node):
        if shape(node) is not None:
            return shape(node)
        if node.op == "get_attr":
            obj = gm
            for part in str(node.target).split("."):
                obj = getattr(obj, part, None)
            return tuple(obj.shape) if hasattr(obj, "shape") else None
        node = node.args[0] if node.args else None
    return None


# ---- per-target acceptance ---------------------------------------------------------------------

def accepts(target: str, use: OpUse) -> bool:
    """Does ``target`` declare that it runs this op?"""
    from .targets import target_module

    declared = target_module(target).ACCEPTS
    if declared is ANY:
        return True
    return bool(declared(use))


def accepted_by(uses) -> list[str]:
    """The targets that accept every op in ``uses``."""
    from .targets import TARGETS

    return [t for t in TARGETS if all(accepts(t, u) for u in uses)]


def refusal(uses, target: str, op: str | None = None, where: str | None = None) -> UnsupportedOpError | None:
    """The one-line error for the first op ``target`` refuses; or, with ``op`` and ``where``, for an
    op found only in the converted file (e.g. a TFLite builtin TFLM has no kernel for)."""
    module = ""
    if op is None:
        first = next((u for u in uses if not accepts(target, u)), None)
        if first is None:
            return None
        op, where, module = first.op + (f" {first.detail}" if first.detail else ""), first.layer, first.module
    others = [t for t in accepted_by(uses) if t != target]
    return UnsupportedOpError(op, where, target=target, accepted_by=others, module=module)


def check_target(uses, target: str) -> None:
    """Raise :class:`UnsupportedOpError` for the first op ``target`` does not accept."""
    err = refusal(uses, target)
    if err is not None:
        raise err


def check_supported(model, example_input, target: str = "c") -> list[str]:
    """Canonicalize ``model`` and check it for ``target`` (default: the native C, the narrowest);
    returns the sorted set of vocabulary ops it uses."""
    from .canonicalize import canonicalize

    graph = model if isinstance(model, torch.fx.GraphModule) else canonicalize(model, example_input)
    uses = op_uses(graph)
    check_target(uses, target)
    return sorted({u.op for u in uses})
