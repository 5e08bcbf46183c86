"""The parity record every export writes (``parity.json``): proof the artifact computes the model.

Each check compares one runtime's outputs with a reference on the same N held-out inputs:
float checks by relative max abs error, int8 checks by max LSB difference (and argmax agreement).

Parity is judged where the arithmetic is promised: native C against TFLite Micro (0 LSB: the same
reference integer arithmetic), TFLM against LiteRT's reference kernels (BUILTIN_REF), float
artifacts against torch. Those checks are *blocking*. Comparisons with kernels that round
differently by design (LiteRT's XNNPACK, onnxruntime's fused int8 kernels) and with the torch
PT2E graph's float simulation are recorded with their limits but never block (``"blocking":
false``). The record's top-level ``passed`` is the AND of the blocking checks.
"""
from __future__ import annotations

import numpy as np

from .errors import ParityError

FLOAT_REL_TOL = 1e-4       # float runtimes vs torch: max|a-b| / max|torch| (issue 3)
REF_LSB = 0                # int8 runtimes with TFLite's reference integer arithmetic (TFLM, native C): bit-exact
# LiteRT 2.3's BUILTIN_REF FULLY_CONNECTED requantizes differently from TFLite's reference integer
# arithmetic that TFLM (and the native C) use: 1 LSB apart on some FC outputs (we recomputed one by
# hand: TFLM is right), while conv, depthwise, pooling and add agree exactly. How many outputs flip
# depends on the weights (0.1% on the demo student, 1.3% on a seeded DS-CNN, 2.5-8% when FC layers
# follow each other and the flips compound), so only the 1 LSB bound is gated; the exact fraction
# is recorded. Bit-exactness is judged where it is promised: native C against TFLM, 0 LSB.
LITERT_REF_LSB = 1
# vs LiteRT's default (XNNPACK) kernels, which round differently: 1 LSB per kernel, but the
# differences compound through layers (2 LSB at the output of a 6-layer toy net, 3 on the demo
# teacher per issue 11). Reported against this limit, never blocking.
OPTIMIZED_LSB = 2
TORCH_INT8_ARGMAX = 0.95   # int8 artifact vs the torch PT2E-quantized graph (float-simulated)


def _argmax_agreement(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim < 2 or a.shape[-1] < 2:
        return float("nan")
    return float(np.mean(a.reshape(len(a), -1).argmax(-1) == b.reshape(len(b), -1).argmax(-1)))


def float_check(reference, output, *, rel_tol=FLOAT_REL_TOL, against="torch") -> dict:
    """Max abs error relative to the reference's largest magnitude (float artifacts)."""
    reference, output = np.asarray(reference, np.float64), np.asarray(output, np.float64)
    err = float(np.max(np.abs(reference - output))) if reference.size else 0.0
    scale = max(float(np.max(np.abs(reference))) if reference.size else 0.0, 1e-12)
    return {"kind": "float", "against": against, "max_abs_err": err, "rel_err": err / scale,
            "threshold_rel": rel_tol, "argmax_agreement": _argmax_agreement(reference, output),
            "passed": bool(np.isfinite(err) and err / scale <= rel_tol)}


def lsb_check(reference, output, *, max_lsb, against, min_exact=None, max_mean=None, blocking=True) -> dict:
    """Integer outputs: max and mean |LSB| difference, exact-match fraction, argmax agreement."""
    reference, output = np.asarray(reference, np.int64), np.asarray(output, np.int64)
    diff = np.abs(reference - output)
    worst = int(diff.max()) if diff.size else 0
    exact = float(np.mean(diff == 0)) if diff.size else 1.0
    out = {"kind": "int8", "against": against, "max_lsb_diff": worst, "mean_lsb_diff": float(diff.mean()),
           "exact_fraction": exact, "argmax_agreement": _argmax_agreement(reference, output),
           "threshold_lsb": max_lsb, "passed": worst <= max_lsb}
    if min_exact is not None:
        out["threshold_exact_fraction"] = min_exact
        out["passed"] = out["passed"] and exact >= min_exact
    if max_mean is not None:
        out["threshold_mean_lsb"] = max_mean
        out["passed"] = out["passed"] and out["mean_lsb_diff"] <= max_mean
    out["blocking"] = bool(blocking)
    return out


def litert_ref_check(reference, output, *, fc_layers, max_lsb=LITERT_REF_LSB,
                     against="LiteRT BUILTIN_REF kernels") -> dict:
    """An int8 runtime with TFLite's reference arithmetic vs LiteRT's BUILTIN_REF kernels (blocking):
    <= 1 LSB (LiteRT's FC rounding); the exact fraction and the FC count are recorded.
    ``max_lsb``: more when an op after an FC magnifies its 1 LSB (``tflite.litert_fc_lsb``: a tanh
    whose output step is 4x finer than its input's turns one FC flip into up to 5 LSB)."""
    out = lsb_check(reference, output, max_lsb=max(LITERT_REF_LSB, int(max_lsb)), against=against)
    out["fully_connected_layers"] = int(fc_layers)
    return out


def per_output(name: str, checks: list) -> dict:
    """``{name: check}`` for a model with one output; ``{name_output0: ..., name_output1: ...}`` otherwise."""
    if len(checks) == 1:
        return {name: checks[0]}
    return {f"{name}_output{k}": check for k, check in enumerate(checks)}


def argmax_check(reference, output, *, min_agreement=TORCH_INT8_ARGMAX, against, lsb_reference=None,
                 blocking=True) -> dict:
    """Argmax agreement (and, when both are int8 codes, LSB statistics for information)."""
    out = {"kind": "argmax", "against": against, "argmax_agreement": _argmax_agreement(reference, output),
           "threshold_argmax": min_agreement}
    if lsb_reference is not None:
        diff = np.abs(np.asarray(lsb_reference, np.int64) - np.asarray(output, np.int64))
        out.update(max_lsb_diff=int(diff.max()), mean_lsb_diff=float(diff.mean()))
    out["passed"] = bool(out["argmax_agreement"] >= min_agreement) if np.isfinite(out["argmax_agreement"]) \
        else bool(out.get("max_lsb_diff", 0) <= 2)
    out["blocking"] = bool(blocking)
    return out


def info(reference, output, *, against) -> dict:
    """A comparison recorded for information only (e.g. int8 artifact vs the float model)."""
    reference, output = np.asarray(reference, np.float64), np.asarray(output, np.float64)
    return {"kind": "info", "against": against, "max_abs_err": float(np.max(np.abs(reference - output))),
            "argmax_agreement": _argmax_agreement(reference, output), "passed": True, "blocking": False}


def is_blocking(check: dict) -> bool:
    return bool(check.get("blocking", True))


def make_record(target: str, precision: str, checks: dict, *, n_inputs: int, inputs: str) -> dict:
    return {
        "passed": all(c["passed"] for c in checks.values() if is_blocking(c)),
        "target": target,
        "precision": precision,
        "n_inputs": int(n_inputs),
        "inputs": inputs,
        "checks": checks,
        "thresholds": {"float_rel": FLOAT_REL_TOL, "reference_kernels_lsb": REF_LSB,
                       "litert_builtin_ref_lsb": LITERT_REF_LSB,
                       "optimized_kernels_lsb": OPTIMIZED_LSB, "torch_int8_argmax": TORCH_INT8_ARGMAX},
    }


def require(record: dict, where: str = "") -> dict:
    """Raise :class:`ParityError` naming each failing check; return the record otherwise."""
    if record["passed"]:
        return record
    failed = [f"{name}: {summary(check)}" for name, check in record["checks"].items()
              if is_blocking(check) and not check["passed"]]
    err = ParityError(f"{where or record['target']}: parity failed on {record['n_inputs']} inputs: " + "; ".join(failed))
    err.record = record
    raise err


def summary(check: dict) -> str:
    text = _summary(check)
    if check["kind"] != "info" and not is_blocking(check):
        text += " (reported, not blocking)"
    return text


def _summary(check: dict) -> str:
    if "note" in check:
        return check["note"]
    if check["kind"] == "float":
        return f"rel err {check['rel_err']:.2e} (max abs {check['max_abs_err']:.2e}; limit {check['threshold_rel']:.0e})"
    if check["kind"] == "int8":
        extra = f" (min {100 * check['threshold_exact_fraction']:.0f}%)" if "threshold_exact_fraction" in check else ""
        mean = f", mean {check['mean_lsb_diff']:.3f} LSB (limit {check['threshold_mean_lsb']})" \
            if "threshold_mean_lsb" in check else ""
        return (f"max {check['max_lsb_diff']} LSB (limit {check['threshold_lsb']}){mean}, "
                f"{100 * check['exact_fraction']:.1f}% exact{extra}, argmax {100 * check['argmax_agreement']:.1f}%")
    if check["kind"] == "argmax":
        extra = f", max {check['max_lsb_diff']} LSB" if "max_lsb_diff" in check else ""
        return f"argmax {100 * check['argmax_agreement']:.1f}% (min {100 * check['threshold_argmax']:.0f}%){extra}"
    return f"argmax {100 * check['argmax_agreement']:.1f}%, max abs {check['max_abs_err']:.3g} (info)"


def table(records: dict) -> str:
    """Markdown table of {folder: record}: one row per check."""
    lines = ["| export | check | against | result | passed |", "|---|---|---|---|---|"]
    for where, record in records.items():
        for name, check in record["checks"].items():
            verdict = "yes" if check["passed"] else ("NO" if is_blocking(check) else "no (not blocking)")
            lines.append(f"| {where} | {name} | {check['against']} | {summary(check)} | {verdict} |")
    return "\n".join(lines)
