"""int8 quantization with torchao PT2E: post-training (PTQ) and quantization-aware training (QAT).

One quantizer for training and export: litert-torch's ``PT2EQuantizer`` (symmetric per-channel int8
weights, static per-tensor int8 activations) with the annotations of ``firmware_export.quantizer``
(no float islands, pools sharing their input's scale, TFLite's fixed softmax/sigmoid/tanh outputs)
and its graph preparation (one partition per call of a reused module). PTQ quantizes the canonical
graph (``firmware_export.canonicalize``: BatchNorm folded, in-place ops and clamps rewritten), so
``ptq`` gives the graph ``firmware_export.quantize`` gives on the same calibration data; QAT trains
the traced model as it is (BatchNorm in training mode). The result is ONE quantized graph (a
``torch.fx.GraphModule`` after ``convert_pt2e``) that evaluates in torch (float-simulated int8) and
that ``firmware_export.export`` converts, unchanged, into a fully integer .tflite, a TFLM array and
native C. (edgekd imports only those pure graph helpers from firmware_export; firmware_export never
imports edgekd's training code.)
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config import Config, register
from ..errors import ConfigError, DataError, invalid_value
from ..log import set_log_level
from .finetune import finetune

METHODS = ("ptq", "qat")


@register("int8_pt2e")
@dataclass
class Int8Config(Config):
    method: str = "ptq"               # ptq: calibrate only; qat: fake-quant fine-tuning, then convert
    calibration_samples: int = 256    # train samples the observers see (PTQ), first in seeded order
    qat_epochs: int = 3
    qat_lr: float = 5e-4
    batch_size: int = 64
    kd_alpha: float = 0.5             # QAT with a teacher: weight of the soft-target term (Hinton et al. 2015)
    temperature: float = 4.0
    seed: int = 0

    def validate(self):
        if self.method not in METHODS:
            raise ConfigError("Int8Config.method: " + invalid_value("method", METHODS, self.method))
        for name in ("calibration_samples", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Int8Config.{name}: must be at least 1, got {getattr(self, name)}")
        if self.qat_epochs < 0 or self.qat_lr <= 0:
            raise ConfigError(f"Int8Config: qat_epochs >= 0 and qat_lr > 0 expected, got {self.qat_epochs}, "
                              f"{self.qat_lr}")
        if not 0.0 <= self.kd_alpha <= 1.0:
            raise ConfigError(f"Int8Config.kd_alpha: expected a value in [0, 1], got {self.kd_alpha}")


def _check_inputs(x, what):
    if not torch.isfinite(x).all():
        raise DataError(f"{what}: inputs contain NaN or Inf values")


def ptq(model, calibration: torch.Tensor, *, batch_size=64):
    """Post-training quantization: canonical graph -> ``prepare_pt2e`` -> observe ``calibration`` -> ``convert_pt2e``."""
    from firmware_export.canonicalize import canonicalize
    from firmware_export.quantizer import finish, prepare

    _check_inputs(calibration, "calibration data")
    graph = prepare(canonicalize(model.eval(), calibration[:1]))
    with torch.no_grad():
        for start in range(0, len(calibration), batch_size):
            graph(calibration[start:start + batch_size])
    return finish(graph)


def qat(model, train, config: Int8Config, *, teacher=None):
    """Quantization-aware training: ``prepare_qat_pt2e``, fine-tune with fake quant, ``convert_pt2e``.

    Loss: cross-entropy, or with a teacher ``(1 - a) * CE + a * T^2 * KL(teacher_T || student_T)``
    (Hinton et al. 2015, eq. 2).
    """
    from firmware_export.canonicalize import trace
    from firmware_export.quantizer import finish, prepare
    from torchao.quantization.pt2e import move_exported_model_to_eval, move_exported_model_to_train

    _check_inputs(train.x, "QAT training data")
    gen = torch.Generator().manual_seed(config.seed)
    was_training = model.training
    graph = prepare(trace(model.train(), train.x[:2]), qat=True)
    model.train(was_training)  # the caller's float model is left as it was
    with torch.no_grad():  # start the observers on calibration data, as PTQ would
        move_exported_model_to_eval(graph)
        idx = torch.randperm(len(train), generator=gen)[:config.calibration_samples]
        graph(train.x[idx])
    finetune(graph, train, epochs=config.qat_epochs, batch_size=config.batch_size, lr=config.qat_lr, generator=gen,
             teacher=teacher, kd_alpha=config.kd_alpha, temperature=config.temperature,
             set_train=move_exported_model_to_train, label="int8 QAT")
    return finish(graph)


def calibration_inputs(train, config: Int8Config) -> torch.Tensor:
    """The PTQ calibration inputs: the first ``calibration_samples`` train samples in seeded order."""
    gen = torch.Generator().manual_seed(config.seed)
    return train.x[torch.randperm(len(train), generator=gen)[:config.calibration_samples]]


def quantize(model, config: Int8Config, data, *, teacher=None, verbose=None):
    """The verb: a float student and its data splits in, the int8 PT2E graph out."""
    set_log_level(verbose)
    train = data.train
    if len(train) == 0:
        raise DataError("quantize: the training split is empty")
    if config.method == "ptq":
        return ptq(model, calibration_inputs(train, config), batch_size=config.batch_size)
    return qat(model, train, config, teacher=teacher.eval() if teacher is not None else None)


def int8_bytes(model) -> dict:
    """Storage of the int8 model: int8 weights, int32 biases (matches ``edgekd.demo.param_bytes``)."""
    params = sum(p.numel() for p in model.parameters()) if any(True for _ in model.parameters()) else None
    if params is None:  # a converted graph keeps weights as attributes, not parameters
        tensors = [t for n, t in model.named_buffers()] + [getattr(model, n) for n in _attr_names(model)]
        weights = sum(t.numel() for t in tensors if t.ndim > 1)
        biases = sum(t.numel() for t in tensors if t.ndim == 1 and t.is_floating_point() and t.numel() > 1)
        return {"params": weights + biases, "bytes_int8": weights + 4 * biases}
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    return {"params": params, "bytes_int8": params - biases + 4 * biases}


def _attr_names(graph):
    names = []
    for node in graph.graph.nodes:
        if node.op == "get_attr" and not str(node.target).startswith("_"):
            names.append(str(node.target))
    return names
