"""One canonicalization pass over the ``torch.export`` graph, shared by every target and run first.

PyTorch code writes the same layer many ways; after this pass every target sees one form:

=====================================================  ===============================================
written as                                             becomes
=====================================================  ===============================================
in-place ops (``relu_``, ``x += y``, ``hardtanh_``)    the functional op; later readers of the
                                                       mutated tensor read the new value
``clamp(min=0)``, ``clamp_min(0)``, ``threshold(0,0)``  ``relu``
``relu6``, ``clamp(0, 6)``, ``hardtanh(0, 6)``           ``hardtanh(0, 6)`` (the converter fuses it as RELU6)
``clamp(a, b)``                                        ``hardtanh(a, b)``
``F.silu``, ``nn.SiLU``                                ``x * sigmoid(x)`` (LOGISTIC, MUL)
``F.hardsigmoid``, ``nn.Hardsigmoid``                  ``hardtanh(x + 3, 0, 6) * (1/6)`` (ADD, RELU6, MUL)
``AdaptiveAvgPool2d(1)``, ``mean((2, 3))`` (keepdim    ``avg_pool2d`` with the full (H, W) window, then
or not), a full-window ``avg_pool2d``, an adaptive     ``flatten(1)`` where the mean dropped H and W
pool whose output divides the input
BatchNorm right after conv2d / linear                  folded into that layer's weight and bias
any other BatchNorm on (N, C, H, W) or (N, C)          a per-channel multiply-add: a depthwise 1x1
                                                       conv2d, or a linear with a diagonal weight
dropout, clone, contiguous, alias, detach              removed (eval mode: the identity)
=====================================================  ===============================================

Why global pools become AVERAGE_POOL_2D and not MEAN: litert-torch converts ``adaptive_avg_pool2d``
and ``mean`` to MEAN and ``avg_pool2d`` to AVERAGE_POOL_2D; TFLite Micro runs both, but the native C
target has AVERAGE_POOL_2D only (MEAN is being added), and the int8 AVERAGE_POOL_2D keeps its
input's scale, so no requantization is needed. A per-channel multiply-add is written as a
depthwise conv (not MUL + ADD) because every target, the C one included, runs depthwise conv in
int8 with per-channel weights.

The result is a ``torch.fx.GraphModule`` (``torch.export(...).module()`` form, batch dimension
symbolic where the model allows) that evaluates like the original model; ``export`` checks that
on the parity inputs.
"""
from __future__ import annotations

import operator
import re
import types

import torch
from torch import nn

from .errors import ExportError

aten = torch.ops.aten

# ops whose output aliases (a view of) their input: an in-place op on one mutates another tensor
_VIEWS = {"view", "reshape", "_unsafe_view", "slice", "select", "transpose", "permute", "t", "expand",
          "unsqueeze", "squeeze", "as_strided", "narrow", "unfold", "diagonal", "alias", "flatten", "split",
          "chunk", "unbind", "view_as", "expand_as", "movedim", "swapaxes", "unflatten", "split_with_sizes",
          "detach"}
_IDENTITY = {"dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout", "clone", "alias", "contiguous",
             "detach", "lift_fresh_copy"}
_CONV = {"conv2d", "convolution"}


def canonicalize(model: nn.Module, example_input: torch.Tensor) -> torch.fx.GraphModule:
    """``torch.export`` the model and rewrite its graph into the canonical form (table above)."""
    gm = trace(model.eval(), example_input)
    for rewrite in (functional_inplace, drop_identities, activations, fold_batch_norm, global_pools):
        rewrite(gm)
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.recompile()
    return _frozen_mode(gm)


def _frozen_mode(gm):
    """An exported graph refuses ``.eval()``/``.train()``, which converters call: make them no-ops
    (the graph is already in eval form: no dropout, no batch statistics)."""
    gm.eval = types.MethodType(lambda self: self, gm)
    gm.train = types.MethodType(lambda self, mode=True: self, gm)
    for module in gm.modules():
        module.training = False
    return gm


def trace(model: nn.Module, example_input: torch.Tensor) -> torch.fx.GraphModule:
    """``torch.export`` with a symbolic batch dimension (a static batch of 1 if the model pins it)."""
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    x = example_input[:1].expand(2, *example_input.shape[1:]).contiguous()
    try:
        return torch.export.export(model, (x,), dynamic_shapes=({0: batch},)).module()
    except Exception:  # noqa: BLE001 - some graphs specialize the batch; fall back to a static one
        pass
    try:
        return torch.export.export(model, (example_input[:1].contiguous(),)).module()
    except Exception as err:  # noqa: BLE001 - torch raises many types; report one line
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ExportError(f"torch.export failed on {type(model).__name__}: {first}") from None


def run(gm, x: torch.Tensor):
    """Evaluate a traced graph on a batch (sample by sample if its batch is static); a model with
    several outputs gives a tuple of tensors."""
    with torch.no_grad():
        try:
            return gm(x)
        except Exception:  # noqa: BLE001 - a static-batch graph refuses N > 1
            rows = [gm(s[None]) for s in x]
            if isinstance(rows[0], (tuple, list)):
                return tuple(torch.cat(parts) for parts in zip(*rows))
            return torch.cat(rows)


# ---- helpers -----------------------------------------------------------------------------------

def opname(node) -> str | None:
    """``'relu_'`` for ``aten.relu_.default``; None for placeholders, outputs and non-aten calls."""
    if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
        return None
    return node.target._opname if node.target.namespace == "aten" else None


def shape(node) -> tuple | None:
    val = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return tuple(val.shape) if hasattr(val, "shape") else None


def _static(dims) -> bool:
    return dims is not None and all(isinstance(d, int) for d in dims)


def layer(node) -> str:
    """The module path a graph node came from (``block.act``), or ``forward (node)`` for functional code."""
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    if stack:
        path = list(stack.values())[-1][0]
        path = path.replace("L['self'].", "").replace("L__self___", "")
        if path and path != "L['self']":
            return path
    return f"forward ({node.name})"


def _fake_mode(gm):
    from torch._guards import detect_fake_mode

    return detect_fake_mode([n.meta["val"] for n in gm.graph.nodes if "val" in n.meta])


def _insert(gm, before, target, args, like, same_kind=False):
    """A new call of ``target`` before ``before``, with ``like``'s metadata and a fresh fake value.

    Unless the new node is the same kind of op (``relu_`` -> ``relu``), its source is marked as
    this pass, so the quantizer's source-based patterns (e.g. "nodes of an AdaptiveAvgPool2d
    module") do not claim it; the module path stays for error messages.
    """
    with gm.graph.inserting_before(before):
        node = gm.graph.call_function(target, tuple(args))
    node.meta = {k: v for k, v in like.meta.items() if k not in ("val", "tensor_meta")}
    if not same_kind:
        node.meta["torch_fn"] = (node.name, f"function.{target._opname}")
        stack = dict(node.meta.get("nn_module_stack") or {})
        if stack:
            key = list(stack)[-1]
            stack[key] = (stack[key][0], "firmware_export.canonicalize")
            node.meta["nn_module_stack"] = stack
    mode = _fake_mode(gm)
    vals = torch.fx.node.map_arg(tuple(args), lambda a: a.meta.get("val"))
    if mode is not None:
        with mode:
            node.meta["val"] = target(*vals)
    return node


def _attr(gm, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _tensor(gm, node):
    """The constant behind a ``get_attr`` node (None stays None; anything else is not constant)."""
    if node is None:
        return None
    if isinstance(node, torch.fx.Node) and node.op == "get_attr":
        return _attr(gm, node.target).detach()
    raise ValueError("not a constant")


def _constant(gm, before, tensor, stem, like):
    """Register ``tensor`` as a new frozen parameter and return a ``get_attr`` node reading it."""
    base = re.sub(r"\W", "_", f"canon_{stem}")
    name, i = base, 0
    while hasattr(gm, name):
        i += 1
        name = f"{base}_{i}"
    gm.register_parameter(name, nn.Parameter(tensor.detach().clone().contiguous(), requires_grad=False))
    with gm.graph.inserting_before(before):
        node = gm.graph.get_attr(name)
    node.meta = {k: v for k, v in like.meta.items() if k in ("nn_module_stack", "stack_trace")}
    mode = _fake_mode(gm)
    if mode is not None:
        node.meta["val"] = mode.from_tensor(getattr(gm, name), static_shapes=True)
    return node


def _replace(gm, old, new):
    old.replace_all_uses_with(new)
    gm.graph.erase_node(old)


# ---- the rewrites ------------------------------------------------------------------------------

def functional_inplace(gm) -> None:
    """``relu_(x)`` -> ``relu(x)``; readers of ``x`` after the in-place op read the new node."""
    order = {n: i for i, n in enumerate(gm.graph.nodes)}
    for node in list(gm.graph.nodes):
        name = opname(node)
        if not name or not name.endswith("_") or name.startswith("_") or not node.args:
            continue
        packet = getattr(aten, name[:-1], None)
        functional = getattr(packet, node.target._overloadname, None) if packet is not None else None
        if functional is None:
            continue  # no functional twin (copy_, fill_, ...): left for the targets to judge
        mutated = node.args[0]
        if isinstance(mutated, torch.fx.Node) and opname(mutated) in _VIEWS:
            raise ExportError(f"in-place op {name!r} at layer {layer(node)!r} writes into a view of another tensor "
                              f"({opname(mutated)}); write it out of place (y = op(x))")
        new = _insert(gm, node, functional, node.args, node, same_kind=True)
        new.kwargs = dict(node.kwargs)
        if isinstance(mutated, torch.fx.Node):
            for user in list(mutated.users):
                if user is not node and user is not new and order.get(user, -1) > order[node]:
                    user.replace_input_with(mutated, new)
        _replace(gm, node, new)


def drop_identities(gm) -> None:
    """Dropout (eval mode), clone, contiguous, alias, detach: the identity on values."""
    for node in list(gm.graph.nodes):
        name = opname(node)
        if name not in _IDENTITY:
            continue
        if name.endswith("dropout") and (len(node.args) > 2 and node.args[2] or node.kwargs.get("train")):
            continue  # a training-mode dropout is not the identity; leave it for the targets to refuse
        _replace(gm, node, node.args[0])


def _scalar_args(node, names):
    values = list(node.args[1:]) + [None] * len(names)
    out = [node.kwargs.get(n, values[i]) for i, n in enumerate(names)]
    return [None if v is None else float(v) if isinstance(v, (int, float)) else v for v in out]


def activations(gm) -> None:
    """clamp / clamp_min / relu6 / threshold to ``relu`` or ``hardtanh(lo, hi)``; silu and hardsigmoid
    spelled out in ops every int8 target runs."""
    for node in list(gm.graph.nodes):
        name = opname(node)
        x = node.args[0] if node.args else None
        lo = hi = None
        if name == "silu":  # x * sigmoid(x): LOGISTIC + MUL (litert-torch leaves silu a float island)
            sigmoid = _insert(gm, node, aten.sigmoid.default, (x,), node)
            _replace(gm, node, _insert(gm, node, aten.mul.Tensor, (x, sigmoid), node))
            continue
        if name == "hardsigmoid":  # relu6(x + 3) * (1/6): ADD, RELU6, MUL with constants (was float too)
            shifted = _insert(gm, node, aten.add.Tensor, (x, 3.0), node)
            clipped = _insert(gm, node, aten.hardtanh.default, (shifted, 0.0, 6.0), node)
            _replace(gm, node, _insert(gm, node, aten.mul.Tensor, (clipped, 1.0 / 6.0), node))
            continue
        if name == "clamp" and node.target is aten.clamp.default:
            lo, hi = _scalar_args(node, ("min", "max"))
        elif name == "clamp_min" and node.target is aten.clamp_min.default:
            lo, = _scalar_args(node, ("min",))
        elif name == "relu6":
            lo, hi = 0.0, 6.0
        elif name == "threshold" and _scalar_args(node, ("threshold", "value")) == [0.0, 0.0]:
            lo = 0.0
        else:
            continue
        if not all(v is None or isinstance(v, float) for v in (lo, hi)):
            continue  # tensor bounds: not an activation
        if lo == 0.0 and hi is None:
            _replace(gm, node, _insert(gm, node, aten.relu.default, (x,), node))
        elif lo is not None and hi is not None:
            _replace(gm, node, _insert(gm, node, aten.hardtanh.default, (x, lo, hi), node))


def _bn_parts(gm, node):
    """(input, scale, shift) of an eval-mode batch norm node: y = x * scale + shift per channel."""
    name = opname(node)
    if name == "batch_norm":
        x, w, b, mean, var = node.args[:5]
        training, eps = node.args[5], node.args[7]
        if training:
            return None
    elif name == "_native_batch_norm_legit_no_training":
        x, w, b, mean, var = node.args[:5]
        eps = node.args[6]
    else:
        return None
    try:
        w, b, mean, var = (_tensor(gm, t) for t in (w, b, mean, var))
    except ValueError:
        return None
    if mean is None or var is None:
        return None
    scale = torch.rsqrt(var.double() + eps)
    if w is not None:
        scale = scale * w.double()
    shift = -mean.double() * scale
    if b is not None:
        shift = shift + b.double()
    return x, scale, shift


def _bn_output(node):
    """The node whose uses are the batch norm's result (the getitem 0 of a native batch norm)."""
    if opname(node) == "batch_norm":
        return node
    items = [u for u in node.users if u.target is operator.getitem and u.args[1] == 0]
    others = [u for u in node.users if u not in items]
    return items[0] if len(items) == 1 and not any(o.users for o in others) else None


def fold_batch_norm(gm) -> None:
    """Fold BN into the conv2d / linear before it; any other BN becomes a per-channel multiply-add."""
    for node in list(gm.graph.nodes):
        parts = _bn_parts(gm, node)
        out = _bn_output(node) if parts else None
        if out is None:
            continue
        x, scale, shift = parts
        src_name = opname(x) if isinstance(x, torch.fx.Node) else None
        folded = None
        if src_name in _CONV | {"linear"} and len(x.users) == 1:
            folded = _fold_into(gm, x, scale, shift, node)
        if folded is None:
            folded = _per_channel_affine(gm, x, scale, shift, node)
        if folded is None:
            continue  # e.g. BatchNorm1d over a sequence (N, C, L): left as it is
        out.replace_all_uses_with(folded)
        for n in [out, node] if out is not node else [node]:
            if not n.users:
                gm.graph.erase_node(n)


def _fold_into(gm, layer_node, scale, shift, bn):
    """conv2d/linear weight * scale (per output channel), bias * scale + shift; None if not foldable."""
    name = opname(layer_node)
    args = list(layer_node.args)
    if name == "convolution" and (args[6] or len(args) < 9):
        return None  # a transposed convolution: its weight's output channels are dim 1
    try:
        w, b = _tensor(gm, args[1]), _tensor(gm, args[2] if len(args) > 2 else None)
    except ValueError:
        return None
    if w is None or w.shape[0] != len(scale):
        return None
    view = (-1,) + (1,) * (w.dim() - 1)
    new_w = (w.double() * scale.view(view)).to(w.dtype)
    new_b = ((b.double() if b is not None else torch.zeros_like(scale)) * scale + shift).to(w.dtype)
    stem = layer(layer_node)
    args[1] = _constant(gm, layer_node, new_w, f"{stem}_weight", layer_node)
    bias = _constant(gm, layer_node, new_b, f"{stem}_bias", layer_node)
    if len(args) > 2:
        args[2] = bias
    else:
        args.append(bias)
    layer_node.args = tuple(args)
    return layer_node


def _per_channel_affine(gm, x, scale, shift, bn):
    """y[:, c] = x[:, c] * scale[c] + shift[c] as a depthwise 1x1 conv2d (4-D) or a diagonal linear (2-D)."""
    dims = shape(x)
    if dims is None or len(dims) not in (2, 4) or not isinstance(dims[1], int) or dims[1] != len(scale):
        return None
    dtype = bn.meta["val"].dtype if "val" in bn.meta else torch.float32
    stem = layer(bn)
    bias = _constant(gm, bn, shift.to(dtype), f"{stem}_shift", bn)
    if len(dims) == 4:
        weight = _constant(gm, bn, scale.to(dtype).view(-1, 1, 1, 1), f"{stem}_scale", bn)
        return _insert(gm, bn, aten.conv2d.default, (x, weight, bias, [1, 1], [0, 0], [1, 1], len(scale)), bn)
    weight = _constant(gm, bn, torch.diag(scale.to(dtype)), f"{stem}_scale", bn)
    return _insert(gm, bn, aten.linear.default, (x, weight, bias), bn)


def global_pools(gm) -> None:
    """AdaptiveAvgPool2d(1), mean over H and W, evenly dividing adaptive pools -> ``avg_pool2d``."""
    for node in list(gm.graph.nodes):
        name = opname(node)
        if name not in ("adaptive_avg_pool2d", "_adaptive_avg_pool2d", "mean"):
            continue
        x = node.args[0]
        dims = shape(x)
        if dims is None or len(dims) != 4 or not _static(dims[2:]):
            continue
        h, w = dims[2:]
        if name == "mean":
            if node.target is not aten.mean.dim or node.kwargs.get("dtype") is not None:
                continue
            reduced = {d % 4 for d in node.args[1]} if node.args[1] else set()
            keepdim = bool(node.args[2]) if len(node.args) > 2 else bool(node.kwargs.get("keepdim", False))
            if reduced != {2, 3}:
                continue
            pool = _insert(gm, node, aten.avg_pool2d.default, (x, [h, w], [h, w]), node)
            _replace(gm, node, pool if keepdim else _insert(gm, node, aten.flatten.using_ints, (pool, 1), node))
            continue
        size = list(node.args[1]) if isinstance(node.args[1], (list, tuple)) else [node.args[1]] * 2
        size = [d if d is not None else full for d, full in zip(size * (2 // len(size)), (h, w))]
        if h % size[0] or w % size[1]:
            continue  # uneven windows: litert emits a float island here; left for the targets to judge
        k = [h // size[0], w // size[1]]
        _replace(gm, node, _insert(gm, node, aten.avg_pool2d.default, (x, k, k), node))
