"""The demo's quantization rows: the distilled student as int8 PTQ, int8 QAT and a 4-bit brevitas student."""
from __future__ import annotations

import time

import torch

from ..checkpoint import load_checkpoint
from ..distill import evaluate
from ..log import logger
from ..models import ModelConfig, build_model
from .lowbit import LowBitConfig, lowbit, lowbit_bytes
from .pt2e import Int8Config, int8_bytes, quantize

PTQ = Int8Config(method="ptq", calibration_samples=256)
# QAT/4-bit fine-tuning with plain cross-entropy (kd_alpha=0): on the demo student these beat the KD
# variants tried (docs/export.md lists the four runs).
QAT = Int8Config(method="qat", qat_epochs=3, qat_lr=5e-4, kd_alpha=0.0)
W4 = LowBitConfig(weight_bits=4, act_bits=8, epochs=6, lr=1e-3, kd_alpha=0.0)


def quant_rows(context) -> list[dict]:
    """Rows for ``edgekd.demo``'s table: accuracy on the test split and bytes, one seed (0)."""
    data, teacher = context["data"], context["teacher"]
    state = load_checkpoint(context["student_kd_checkpoint"])
    student = build_model(ModelConfig.from_dict(state["model_config"]))
    student.load_state_dict(state["model"])
    student.eval()
    params = sum(p.numel() for p in student.parameters())
    rows = []
    for name, make in (
        ("student_kd_int8_ptq", lambda: quantize(student, PTQ, data)),
        ("student_kd_int8_qat", lambda: quantize(student, QAT, data, teacher=teacher)),
    ):
        t0 = time.perf_counter()
        torch.manual_seed(0)
        graph = make()
        seconds = time.perf_counter() - t0
        acc = evaluate(graph, data.test)
        logger.info(f"{name}: test accuracy {acc:.4f} ({seconds:.1f} s)")
        rows.append({"name": name, "accuracy": acc, "accuracy_per_seed": {"0": acc}, "params": params,
                     "bytes_fp32": 4 * params, "bytes_int8": int8_bytes(graph)["bytes_int8"],
                     "train_seconds": seconds, "config": (PTQ if "ptq" in name else QAT).to_dict()})
    t0 = time.perf_counter()
    q = lowbit(student, data, W4, teacher=teacher)
    seconds = time.perf_counter() - t0
    acc = evaluate(q, data.test)
    sizes = lowbit_bytes(q, W4.weight_bits)
    logger.info(f"student_kd_w4a8: test accuracy {acc:.4f} ({seconds:.1f} s)")
    # the table's "bytes int8" column holds this row's deployed size: 4-bit packed weights + int32 biases
    rows.append({"name": "student_kd_w4a8_brevitas (int8 col = 4-bit packed)", "accuracy": acc,
                 "accuracy_per_seed": {"0": acc}, "params": params, "bytes_fp32": 4 * params,
                 "bytes_int8": sizes["bytes_int4"], "bytes_int4": sizes["bytes_int4"], "train_seconds": seconds,
                 "config": W4.to_dict()})
    return rows
