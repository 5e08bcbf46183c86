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

Annotations added here, only on nodes litert-torch left unannotated: an add, sub or mul of two
tensors (broadcasting, or a constant operand) gets int8 inputs and output; linear/add followed by
relu observe after the relu (as conv + relu does: the whole int8 range for positive outputs);
standalone relu / hardtanh / max and average pools / pad / flatten / reshape share their input's
scale; softmax and sigmoid get TFLite's fixed output quantization (1/256, -128), tanh (1/128, 0)
(TFLite Micro's int8 kernels, and so the C, write those whatever the file declares), and the
ops reading them take them at that quantization; hardswish, leaky_relu and gelu an observed output. Graphs without those patterns get exactly
litert-torch's annotation.

Why pools must share their input's quantization: int8 AVERAGE_POOL_2D and MAX_POOL_2D do not
requantize (TFLite requires output = input quantization). Left unannotated, a chain such as
``add -> max_pool -> avg_pool -> flatten`` stays float in the torch graph and is observed only after
the average; the converter then gives the add and the max pool that narrower (averaged) range, so
the .tflite clips values the torch graph keeps (measured: 84% argmax agreement and 69 LSB between
LiteRT and the torch graph on a small conv net; by hand, one pooled output: torch averages
1.564, 1.249, 2.249, 2.156 to 1.805 (saturating at code 127), the .tflite clips the add at 1.617
first and averages codes 119, 69, 127, 127 to 111). Shared, the observer sits on the add's output
and both compute the same thing.

Also here, the graph preparation every PT2E path shares (``firmware_export.quantize`` and
``edgekd.quant.pt2e``'s PTQ and QAT import these, so there is one quantizer): :func:`prepare`
(one partition per call of a reused module, then ``prepare_pt2e`` / ``prepare_qat_pt2e``) and
:func:`finish` (``convert_pt2e``, eval mode).
"""
from __future__ import annotations

import torch
from torch.fx import Node

aten = torch.ops.aten


def prepare(graph, *, qat=False):
    """``prepare_pt2e`` (or ``prepare_qat_pt2e``) with the int8 quantizer, one partition per module call."""
    import contextlib
    import io

    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    with contextlib.redirect_stdout(io.StringIO()):  # litert-torch's annotators print about reused ReLU modules
        return (prepare_qat_pt2e if qat else prepare_pt2e)(one_partition_per_call(graph), int8_quantizer())


def finish(graph):
    """``convert_pt2e`` (weights quantized on every call: ``fold_quantize=False``, as litert-torch
    converts it), left in eval mode for the converters."""
    from torchao.quantization.pt2e import allow_exported_model_train_eval, move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    move_exported_model_to_eval(graph)
    graph = convert_pt2e(graph, fold_quantize=False)
    allow_exported_model_train_eval(graph)
    graph.eval()  # the patched .eval() returns None and leaves .training set; converters read it
    for module in graph.modules():
        module.training = False
    return graph


def one_partition_per_call(graph):
    """Give each call of a reused module (one ``nn.ReLU`` or ``nn.MaxPool2d`` called twice in ``forward``)
    its own module path, so the PT2E annotators see one partition per call.

    They group nodes by the innermost module path; a group holding two calls is annotated by whichever
    of its output nodes a set yields first, and ``prepare_pt2e`` then fails at random ("'relu_1' not in
    dict_keys(...)", seen in 3 to 5 runs of 8 on the same model). torch already marks the second call
    with ``@1`` in the stack's key; copy that into the path.
    """
    for node in graph.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if not stack:
            continue
        key, (path, cls) = list(stack.items())[-1]
        call = key[key.rindex("@"):] if "@" in key else ""
        if call and not path.endswith(call):
            stack[key] = (path + call, cls)
    return graph


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
        def transform_for_annotation(self, model):
            return super().transform_for_annotation(_sub_scalars_to_attrs(model))

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


def _sub_scalars_to_attrs(gm):
    """``x - 0.5``: the scalar as a constant tensor, as litert-torch does for add and mul, so the
    subtraction can be annotated (a scalar operand cannot be observed)."""
    for node in list(gm.graph.nodes):
        if not _is(node, aten.sub.Tensor) or all(isinstance(a, Node) for a in node.args[:2]):
            continue
        args = list(node.args)
        for i, value in enumerate(args[:2]):
            if isinstance(value, (int, float)):
                name, k = "_edgekd_sub_constant", 0
                while hasattr(gm, f"{name}_{k}"):
                    k += 1
                gm.register_buffer(f"{name}_{k}", torch.tensor(float(value)))
                with gm.graph.inserting_before(node):
                    args[i] = gm.graph.get_attr(f"{name}_{k}")
        node.args = tuple(args)
    gm.recompile()
    return gm


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
           aten.avg_pool2d.default, aten.max_pool2d.default, aten.constant_pad_nd.default, aten.reshape.default,
           aten.view.default, aten.flatten.using_ints, aten.permute.default, aten.squeeze.dim,
           aten.unsqueeze.default)
_BINARY = (aten.add.Tensor, aten.sub.Tensor, aten.mul.Tensor)
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
        if _is(node, *_BINARY) and len(node.args) >= 2 and all(isinstance(a, Node) for a in node.args[:2]):
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
    _read_fixed_outputs_as_they_are(gm)


def _read_fixed_outputs_as_they_are(gm) -> None:
    """An op reading a fixed-range output (softmax, sigmoid, tanh) takes it at that quantization.

    With its own input observer the torch graph requantizes (e.g. 1/256 -> 0.0038 after a sigmoid);
    litert-torch drops that requantize from the .tflite but keeps the next FULLY_CONNECTED's int32
    bias quantized for the dropped scale, so the bias came out 3.5% too large (measured: TFLite Micro
    and the C 2.5 output steps off on average where the torch graph was 0.55).
    """
    from torchao.quantization.pt2e.quantizer import FixedQParamsQuantizationSpec, SharedQuantizationSpec

    for node in gm.graph.nodes:
        ann = node.meta.get("quantization_annotation")
        if ann is None or not ann._annotated:
            continue
        for arg, spec in list(ann.input_qspec_map.items()):
            producer = arg.meta.get("quantization_annotation") if isinstance(arg, Node) else None
            if producer is not None and isinstance(producer.output_qspec, FixedQParamsQuantizationSpec) \
                    and not isinstance(spec, (FixedQParamsQuantizationSpec, SharedQuantizationSpec)):
                ann.input_qspec_map[arg] = SharedQuantizationSpec(arg)
