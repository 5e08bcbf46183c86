"""Seed statistics for comparing training arms: mean, sample std, paired differences with a t-interval.

Arms are run on the same seeds (same split, same initialisation seed, same data order), so the
comparison that matters is the *paired* one: the difference per seed, its mean, and a Student-t
confidence interval over those differences. One helper, used by the demo, the digits8 comparison
and the BCI ablation.
"""
from __future__ import annotations

import math
from typing import Sequence


def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student-t critical value: P(|T| <= q) = confidence with ``dof`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2.0, dof))


def summarize(values: Sequence[float]) -> dict:
    """Mean and sample standard deviation (ddof = 1) of per-seed values, keeping the values."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("summarize: no values")
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return {"mean": mean, "std": std, "n": n, "per_seed": values}


def paired_difference(arm: Sequence[float], baseline: Sequence[float], confidence: float = 0.95) -> dict:
    """``arm - baseline`` seed by seed: mean, std (ddof = 1), t-interval, and whether it excludes 0.

    ``established`` is True when the whole interval lies on one side of zero. With one seed the
    interval is undefined (NaN) and nothing is established.
    """
    if len(arm) != len(baseline):
        raise ValueError(f"paired_difference: {len(arm)} values against {len(baseline)}; pair them by seed")
    diffs = [float(a) - float(b) for a, b in zip(arm, baseline)]
    s = summarize(diffs)
    n = s["n"]
    if n > 1:
        half = t_quantile(confidence, n - 1) * s["std"] / math.sqrt(n)
        low, high = s["mean"] - half, s["mean"] + half
    else:
        low = high = float("nan")
    return {"mean": s["mean"], "std": s["std"], "n": n, "confidence": confidence, "ci_low": low, "ci_high": high,
            "established": bool(n > 1 and (low > 0 or high < 0)), "per_seed": diffs,
            "wins": sum(d > 0 for d in diffs), "losses": sum(d < 0 for d in diffs)}


def compare_arms(per_seed: dict, baseline: str, confidence: float = 0.95) -> dict:
    """``{arm: values}`` -> ``{arm: summary + paired difference to baseline}`` (the baseline has none)."""
    out = {}
    for arm, values in per_seed.items():
        row = summarize(values)
        if arm != baseline:
            row["vs_" + baseline] = paired_difference(values, per_seed[baseline], confidence)
        out[arm] = row
    return out


def format_difference(d: dict, scale: float = 100.0, unit: str = " pt") -> str:
    """'+1.62 pt [+0.80, +2.44] (5/5 seeds)': mean and CI in points, and the seeds that went up."""
    if d["n"] < 2:
        return f"{scale * d['mean']:+.2f}{unit} (1 seed, no CI)"
    return (f"{scale * d['mean']:+.2f}{unit} [{scale * d['ci_low']:+.2f}, {scale * d['ci_high']:+.2f}] "
            f"({d['wins']}/{d['n']} seeds up)")


def paired_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the paired differences ``a - b`` with their two-sided t-interval
    (:func:`paired_difference` as a tuple). Needs at least two pairs of equal length."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"paired_ci: needs two 1-D arrays of equal length >= 2, got lengths {len(a)} and {len(b)}")
    if not 0 < level < 1:
        raise ValueError(f"paired_ci: level must be in (0, 1), got {level}")
    d = paired_difference(a, b, confidence=level)
    return d["mean"], d["ci_low"], d["ci_high"]
