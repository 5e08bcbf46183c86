"""The int8 PT2E quantizer of every int8 target: litert-torch's, plus the patterns it leaves in float.

litert-torch's ``PT2EQuantizer`` (symmetric per-channel int8 weights, static per-tensor int8
activations) annotates conv(+relu), linear, add(+relu) and mul found by their source function, max
pool, adaptive average pool, cat, sigmoid and ``_softmax``. An unannotated op stays float in the
.tflite (DEQUANTIZE -> op -> QUANTIZE), a "float island" the native C target refuses; as the last
op it makes the model's output float. The converter folds a float relu, relu6, average pool or
hardswish between two int8 ops back into int8 by itself, but measured with litert-torch 0.10 on
canonical graphs these stayed float:

- adds written ``x + y`` (``torch.export`` no longer records the source function the quantizer
  looks for): 9 of MobileNetV2-0.35's 10 residual ADDs;
- the last op when it is ``relu`` after ``linear``, an ``add`` (+ ``relu``), ``softmax`` (export
  writes ``softmax.int``) or ``tanh``.

Annotations added here, only on nodes litert-torch left unannotated: an add or mul of two tensors
gets int8 inputs and output; linear/add followed by relu observe after the relu (as conv + relu
does: the whole int8 range for positive outputs); standalone relu / hardtanh / avg_pool2d / pad /
reshape share their input's scale; softmax and sigmoid get TFLite's fixed output quantization
(1/256, -128), tanh (1/128, 0); hardswish, leaky_relu and gelu an observed output. Graphs without
those patterns get exactly litert-torch's annotation (``edgekd.quant.pt2e`` and firmware_export
must keep giving identical graphs for them; a test checks it).
"""
from __future__ import annotations

import torch
from torch.fx import Node

aten = torch.ops.aten


def _quantizer_base():
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer

    return PT2EQuantizer


def int8_quantizer():
    """litert-torch's quantizer (symmetric per-channel weights, static per-tensor activations), extended."""
    from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config

    return _edge_quantizer_class()().set_global(get_symmetric_quantization_config(is_per_channel=True,
                                                                                  is_dynamic=False))


_CLASS = []


def _edge_quantizer_class():
    """Built on first use: litert-torch (and its JAX) is imported only when int8 is asked for."""
    if _CLASS:
        return _CLASS[0]

    class EdgeQuantizer(_quantizer_base()):
        def annotate(self, model):
            config = self.global_config
            if config is not None and config.input_activation is not None:
                annotate_before(model, config)
            model = super().annotate(model)
            if config is not None and config.input_activation is not None:
                annotate_after(model, config)
            return model

    _CLASS.append(EdgeQuantizer)
    return EdgeQuantizer


# ---- annotation helpers ------------------------------------------------------------------------

def _annotated(node) -> bool:
    ann = node.meta.get("quantization_annotation")
    return bool(ann is not None and ann._annotated)


def _has_output_qspec(node) -> bool:
    ann = node.meta.get("quantization_annotation")
    return bool(ann is not None and ann._annotated and ann.output_qspec is not None)


def _set(node, inputs=None, output=None):
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    node.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map=inputs or {}, output_qspec=output,
                                                                  _annotated=True)


def _is(node, *targets) -> bool:
    return isinstance(node, Node) and node.op == "call_function" and node.target in targets


def _specs(config):
    from litert_torch.quantize import pt2e_quantizer_utils as u

    return (u.get_input_act_qspec(config), u.get_output_act_qspec(config), u.get_weight_qspec(config),
            u.get_bias_qspec(config))


_RELU = (aten.relu.default, aten.relu_.default)


def annotate_before(gm, config) -> None:
    """linear -> relu and add -> relu as one int8 op each, the observer after the relu."""
    act_in, act_out, weight, bias = _specs(config)
    for relu in gm.graph.nodes:
        if not _is(relu, *_RELU):
            continue
        src = relu.args[0]
        if not isinstance(src, Node) or len(src.users) != 1 or _annotated(src) or _annotated(relu):
            continue
        if _is(src, aten.linear.default):
            inputs = {src.args[0]: act_in, src.args[1]: weight}
            if len(src.args) > 2 and isinstance(src.args[2], Node):
                inputs[src.args[2]] = bias
            _set(src, inputs)
            for param in list(inputs)[1:]:
                if not _annotated(param):
                    _set(param)  # weights and bias belong to this partition
        elif _is(src, aten.add.Tensor, aten.add_.Tensor) and all(isinstance(a, Node) for a in src.args[:2]):
            _set(src, {a: act_in for a in src.args[:2]})
        else:
            continue
        _set(relu, output=act_out)


_SHARED = (aten.relu.default, aten.relu_.default, aten.hardtanh.default, aten.hardtanh_.default,
           aten.avg_pool2d.default, aten.constant_pad_nd.default, aten.reshape.default, aten.squeeze.dim,
           aten.unsqueeze.default)
_OWN_OUTPUT = (aten.hardswish.default, aten.leaky_relu.default, aten.gelu.default)


def _fixed(scale, zero_point):
    from torchao.quantization.pt2e.quantizer import FixedQParamsQuantizationSpec

    return FixedQParamsQuantizationSpec(dtype=torch.int8, scale=scale, zero_point=zero_point, quant_min=-128,
                                        quant_max=127, qscheme=torch.per_tensor_affine)


def annotate_after(gm, config) -> None:
    """Ops litert-torch left unannotated: share the input's scale, or get their own / TFLite's fixed one."""
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    act_in, act_out, _, _ = _specs(config)
    for node in gm.graph.nodes:
        if node.op != "call_function" or _annotated(node) or not node.args or not isinstance(node.args[0], Node):
            continue
        src = node.args[0]
        if node.target in _SHARED:
            if _has_output_qspec(src):
                shared = SharedQuantizationSpec(src)
                _set(node, {src: shared}, shared)
            else:
                _set(node, {src: act_in}, SharedQuantizationSpec((src, node)))
            continue
        if _is(node, aten.add.Tensor, aten.mul.Tensor) and all(isinstance(a, Node) for a in node.args[:2]):
            _set(node, {a: act_in for a in node.args[:2]}, act_out)  # e.g. a residual add written `x + y`
            continue
        if node.target in (aten.softmax.int, aten._softmax.default, aten.sigmoid.default):
            output = _fixed(1 / 256, -128)
        elif node.target is aten.tanh.default:
            output = _fixed(1 / 128, 0)
        elif node.target in _OWN_OUTPUT:
            output = act_out
        else:
            continue
        _set(node, {src: act_in}, output)
