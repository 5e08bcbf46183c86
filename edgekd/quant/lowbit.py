"""Low-bit quantization-aware training with brevitas (8, 4, 2-bit weights) and QONNX/QCDQ export.

``to_lowbit`` rebuilds a float student from brevitas layers, weights copied: ``QuantIdentity`` on
the input, ``QuantConv2d``/``QuantLinear`` with ``weight_bits``-bit per-tensor weights,
``QuantReLU`` (and ``QuantHardTanh(0, 6)`` for ReLU6) with ``act_bits``-bit activations. ``lowbit``
fine-tunes it (cross-entropy, or KD with a teacher). ``export_lowbit`` writes brevitas' own
QCDQ (standard ONNX QuantizeLinear/Clip/DequantizeLinear, runs in onnxruntime) or QONNX.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import Config, register
from ..errors import ConfigError, DataError, invalid_value
from ..io import atomic_path
from ..log import set_log_level
from .finetune import finetune

FORMATS = ("qcdq", "qonnx")


@register("lowbit")
@dataclass
class LowBitConfig(Config):
    weight_bits: int = 4
    act_bits: int = 8
    epochs: int = 3
    lr: float = 1e-3
    batch_size: int = 64
    input_range: tuple[float, float] = (0.0, 1.0)  # initial range of the input quantizer (learned after)
    kd_alpha: float = 0.5      # with a teacher: weight of the soft-target term (Hinton et al. 2015)
    temperature: float = 4.0
    seed: int = 0

    def validate(self):
        for name in ("weight_bits", "act_bits"):
            if not 2 <= getattr(self, name) <= 8:
                raise ConfigError(f"LowBitConfig.{name}: expected 2..8 bits, got {getattr(self, name)}")
        if not self.input_range[0] < self.input_range[1]:
            raise ConfigError(f"LowBitConfig.input_range: expected (low, high) with low < high, got {self.input_range}")
        if self.epochs < 0 or self.lr <= 0 or self.batch_size < 1:
            raise ConfigError(f"LowBitConfig: epochs >= 0, lr > 0, batch_size >= 1 expected, got "
                              f"{self.epochs}, {self.lr}, {self.batch_size}")


class LowBitModel(nn.Module):
    """A brevitas student: an input quantizer in front of the converted network.

    Activation quantizers start from a fixed range (``...MaxInit``/``MinMaxInit``: learned scale
    initialised from the range) rather than brevitas' default runtime-statistics init, whose scale
    is still being collected during the first 300 training steps and then differs from the scale
    the exporter writes.
    """

    def __init__(self, net: nn.Module, act_bits: int, input_range=(0.0, 1.0)):
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloatMinMaxInit, Uint8ActPerTensorFloatMaxInit

        lo, hi = (float(v) for v in input_range)
        if lo >= 0:
            quant = dict(act_quant=Uint8ActPerTensorFloatMaxInit, max_val=hi)
        else:
            quant = dict(act_quant=Int8ActPerTensorFloatMinMaxInit, min_val=lo, max_val=hi)
        self.input_quant = qnn.QuantIdentity(bit_width=act_bits, return_quant_tensor=False, **quant)
        self.net = net

    def forward(self, x):
        return self.net(self.input_quant(x))


def _convert(module: nn.Module, config: LowBitConfig) -> nn.Module:
    import brevitas.nn as qnn

    if type(module) is nn.Conv2d:
        q = qnn.QuantConv2d(module.in_channels, module.out_channels, module.kernel_size, stride=module.stride,
                            padding=module.padding, dilation=module.dilation, groups=module.groups,
                            bias=module.bias is not None, weight_bit_width=config.weight_bits)
    elif type(module) is nn.Linear:
        q = qnn.QuantLinear(module.in_features, module.out_features, bias=module.bias is not None,
                            weight_bit_width=config.weight_bits)
    elif type(module) in (nn.ReLU, nn.ReLU6):
        from brevitas.quant import Uint8ActPerTensorFloatMaxInit

        if type(module) is nn.ReLU:
            return qnn.QuantReLU(act_quant=Uint8ActPerTensorFloatMaxInit, max_val=6.0, bit_width=config.act_bits)
        return qnn.QuantHardTanh(act_quant=Uint8ActPerTensorFloatMaxInit, min_val=0.0, max_val=6.0,
                                 bit_width=config.act_bits)
    else:
        return module
    with torch.no_grad():
        q.weight.copy_(module.weight)
        if module.bias is not None:
            q.bias.copy_(module.bias)
    return q


def to_lowbit(model: nn.Module, config: LowBitConfig) -> LowBitModel:
    """Copy ``model`` with conv/linear/relu layers replaced by brevitas ones (weights kept)."""
    net = copy.deepcopy(model).eval()
    if isinstance(net, (nn.Conv2d, nn.Linear)):
        net = nn.Sequential(net)
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            new = _convert(child, config)
            if new is not child:
                setattr(parent, name, new)
    return LowBitModel(net, config.act_bits, config.input_range)


def lowbit(model: nn.Module, data, config: LowBitConfig, *, teacher=None, verbose=None) -> LowBitModel:
    """The verb: float student in, brevitas low-bit student fine-tuned with fake quantization out."""
    set_log_level(verbose)
    train = data.train
    if len(train) == 0 or not torch.isfinite(train.x).all():
        raise DataError("lowbit: the training split is empty or contains NaN/Inf")
    torch.manual_seed(config.seed)
    q = to_lowbit(model, config)
    gen = torch.Generator().manual_seed(config.seed)
    finetune(q, train, epochs=config.epochs, batch_size=config.batch_size, lr=config.lr, generator=gen,
             teacher=teacher, kd_alpha=config.kd_alpha, temperature=config.temperature,
             label=f"lowbit {config.weight_bits}-bit")
    return q.eval()


def lowbit_bytes(model: nn.Module, weight_bits: int) -> dict:
    """Packed storage: ``weight_bits`` per weight (8 // bits per byte), int32 biases."""
    weights = sum(m.weight.numel() for m in model.modules() if hasattr(m, "weight_quant"))
    biases = sum(m.bias.numel() for m in model.modules() if hasattr(m, "weight_quant") and m.bias is not None)
    return {"params": weights + biases, f"bytes_int{weight_bits}": -(-weights * weight_bits // 8) + 4 * biases}


def export_lowbit(model: nn.Module, example_input: torch.Tensor, path, *, format="qcdq") -> Path:
    """brevitas' own exporter: ``qcdq`` (standard ONNX, onnxruntime) or ``qonnx`` (FINN's dialect)."""
    if format not in FORMATS:
        raise ConfigError("export_lowbit: " + invalid_value("format", FORMATS, format))
    try:
        from brevitas.export import export_onnx_qcdq, export_qonnx
    except ImportError as err:
        raise ConfigError(f"brevitas export unavailable ({err}); install brevitas and onnxoptimizer") from None
    exporter = export_onnx_qcdq if format == "qcdq" else export_qonnx
    path = Path(path)
    model.eval()
    with atomic_path(path) as tmp:
        onnx_tmp = tmp.with_suffix(".onnx")
        try:
            exporter(model, args=example_input[:1], export_path=str(onnx_tmp))
            onnx_tmp.replace(tmp)
        finally:
            if onnx_tmp.exists():
                onnx_tmp.unlink()
    return path


def onnx_predict(path, x, *, fuse_qdq=False) -> "np.ndarray":
    """Run a QCDQ ONNX file in onnxruntime, sample by sample.

    ``fuse_qdq=False`` disables graph optimizations so the Q/Clip/DQ nodes run as written (equal to
    brevitas' float simulation); onnxruntime's default fuses DQ-Conv-Q into integer QLinearConv,
    which rounds differently (up to 1 activation LSB at ties).
    """
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    if not fuse_qdq:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.asarray(x, np.float32)
    return np.concatenate([session.run(None, {name: s[None]})[0] for s in x])

