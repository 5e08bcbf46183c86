"""The supported-op check every export runs BEFORE converting anything.

Two passes: a module walk (catches e.g. ``nn.LSTM`` before ``torch.export`` is even tried) and a
walk of the ``torch.export`` graph (catches functional calls such as ``F.gelu`` or ``torch.cat``
written inside ``forward``). Each refusal names the op, the layer and the supported list.
"""
from __future__ import annotations

import operator

import torch
from torch import nn

from .errors import ExportError, UnsupportedOpError

SUPPORTED_OPS = (
    "conv2d", "depthwise_conv2d", "linear", "relu", "relu6", "max_pool2d", "avg_pool2d", "add", "flatten",
    "batch_norm2d (folded into the preceding conv2d)", "dropout (identity: exported in eval mode)",
)

# Leaf modules allowed in a model (containers and user modules with children are walked into).
_MODULES = {
    nn.Conv2d: "conv2d", nn.Linear: "linear", nn.ReLU: "relu", nn.ReLU6: "relu6", nn.MaxPool2d: "max_pool2d",
    nn.AvgPool2d: "avg_pool2d", nn.Flatten: "flatten", nn.BatchNorm2d: "batch_norm2d", nn.Identity: "identity",
    nn.Dropout: "identity",  # exported in eval mode, where it is the identity
}
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)

_aten = torch.ops.aten
_qd = getattr(torch.ops, "quantized_decomposed", None)

# aten overload packet -> supported op name (graph pass)
_GRAPH_OPS = {
    "conv2d": "conv2d", "convolution": "conv2d", "linear": "linear", "relu": "relu", "hardtanh": "relu6",
    "relu6": "relu6", "max_pool2d": "max_pool2d", "avg_pool2d": "avg_pool2d", "add": "add", "add_": "add",
    "flatten": "flatten", "view": "flatten", "reshape": "flatten", "_unsafe_view": "flatten",
    "batch_norm": "batch_norm2d", "_native_batch_norm_legit_no_training": "batch_norm2d",
    "clone": "identity", "alias": "identity", "contiguous": "identity", "dropout": "identity",
}
# quantize/dequantize nodes of a PT2E graph (an already quantized model) are part of the format.
_QDQ = {"quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel", "dequantize_per_channel"}


def check_modules(model: nn.Module) -> None:
    """Refuse leaf modules that are not in :data:`SUPPORTED_OPS` (first offender, by layer name)."""
    for name, module in model.named_modules():
        if not name or isinstance(module, _CONTAINERS) or _op_of(module):
            continue  # the root's own forward is checked by the graph pass
        if list(module.children()) and not _has_own_params(module):
            continue  # a user block made of children: its children are checked in turn
        raise UnsupportedOpError(type(module).__name__, name, SUPPORTED_OPS)


def _has_own_params(module):
    return any(True for _ in module.parameters(recurse=False))


def _op_of(module):
    for cls, op in _MODULES.items():
        if type(module) is cls:
            return op
    return None


def check_graph(graph_module: torch.fx.GraphModule) -> list[str]:
    """Walk an exported/PT2E graph; return the list of ops used, refusing unsupported ones."""
    used = []
    for node in graph_module.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        if node.op == "call_module":
            if node.target == "_guards_fn":
                continue
            raise UnsupportedOpError(str(node.target), _layer(node), SUPPORTED_OPS)
        if node.op != "call_function":
            raise UnsupportedOpError(str(node.op), _layer(node), SUPPORTED_OPS)
        target = node.target
        if target is operator.getitem:
            continue
        packet = getattr(target, "_opname", None) or getattr(target, "__name__", str(target))
        namespace = getattr(target, "namespace", None)
        if namespace == "quantized_decomposed" and packet in _QDQ:
            continue
        if target in (operator.add,):
            used.append("add")
            continue
        op = _GRAPH_OPS.get(packet) if namespace in ("aten", None) else None
        if op is None:
            raise UnsupportedOpError(packet, _layer(node), SUPPORTED_OPS)
        if op == "relu6" and packet == "hardtanh":
            lo, hi = (list(node.args[1:3]) + [-1.0, 1.0])[:2]
            if (float(lo), float(hi)) != (0.0, 6.0):
                raise UnsupportedOpError(f"hardtanh({lo}, {hi})", _layer(node), SUPPORTED_OPS)
        if op == "conv2d":
            op = _conv_kind(node, graph_module)
        if op == "batch_norm2d":
            src = node.args[0]
            if not (isinstance(src, torch.fx.Node) and getattr(src.target, "_opname", "") in ("conv2d", "convolution")):
                raise UnsupportedOpError("batch_norm not after a conv2d (cannot fold)", _layer(node), SUPPORTED_OPS)
        if op == "flatten" and packet != "flatten":
            shape = _shape(node)
            if shape is not None and len(shape) != 2:
                raise UnsupportedOpError(f"{packet} to rank {len(shape)}", _layer(node), SUPPORTED_OPS)
        if op == "add" and len(node.args) > 1 and not isinstance(node.args[1], torch.fx.Node):
            raise UnsupportedOpError("add of a constant", _layer(node), SUPPORTED_OPS)
        used.append(op)
    return used


def _conv_kind(node, graph_module):
    groups = node.args[6] if len(node.args) > 6 else node.kwargs.get("groups", 1)
    if node.target.__name__.startswith("convolution"):
        groups = node.args[8] if len(node.args) > 8 else 1
    weight = _weight_shape(node.args[1], graph_module) if len(node.args) > 1 else None
    if weight is not None and len(weight) != 4:
        raise UnsupportedOpError(f"conv{len(weight) - 2}d", _layer(node), SUPPORTED_OPS)
    if groups == 1:
        return "conv2d"
    if weight is not None and weight[1] == 1:  # one input channel per group: depthwise (any multiplier)
        return "depthwise_conv2d"
    raise UnsupportedOpError(f"grouped conv2d (groups={groups})", _layer(node), SUPPORTED_OPS)


def _weight_shape(node, graph_module):
    """Shape of a weight argument, looking through PT2E quantize/dequantize nodes to the parameter."""
    while isinstance(node, torch.fx.Node):
        if _shape(node) is not None:
            return _shape(node)
        if node.op == "get_attr":
            obj = graph_module
            for part in str(node.target).split("."):
                obj = getattr(obj, part, None)
            return tuple(obj.shape) if hasattr(obj, "shape") else None
        node = node.args[0] if node.args else None
    return None


def _shape(node):
    val = getattr(node, "meta", {}).get("val") if isinstance(node, torch.fx.Node) else None
    return tuple(val.shape) if hasattr(val, "shape") else None


def _layer(node) -> str:
    """The module path a graph node came from (``block.act``), or the node name for functional code."""
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    if stack:
        path = list(stack.values())[-1][0]
        path = path.replace("L['self'].", "").replace("L__self___", "")
        if path and path != "L['self']":
            return path
    return f"forward ({node.name})"


def export_graph(model: nn.Module, example_input: torch.Tensor) -> torch.fx.GraphModule:
    """``torch.export`` the model (or reuse a PT2E GraphModule) for the graph pass."""
    if isinstance(model, torch.fx.GraphModule):
        return model
    try:
        return torch.export.export(model, (example_input,)).module()
    except Exception as err:  # noqa: BLE001 - torch raises many types; report one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"torch.export failed on {type(model).__name__}: {first}") from None


def check_supported(model: nn.Module, example_input: torch.Tensor) -> list[str]:
    """Both passes; returns the sorted set of supported ops the model uses."""
    if not isinstance(model, torch.fx.GraphModule):
        check_modules(model)
    return sorted(set(check_graph(export_graph(model, example_input))) - {"identity"})
