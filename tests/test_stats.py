"""Seed statistics against hand computations and scipy's paired t-test."""
import math

import numpy as np
import pytest

from edgekd.stats import compare_arms, format_difference, paired_difference, summarize


def test_summarize_uses_the_sample_standard_deviation():
    s = summarize([0.80, 0.82, 0.84, 0.86])
    assert s["mean"] == pytest.approx(0.83)
    assert s["std"] == pytest.approx(math.sqrt((0.03**2 + 0.01**2 + 0.01**2 + 0.03**2) / 3))  # ddof = 1
    assert math.isnan(summarize([0.5])["std"])


def test_paired_interval_by_hand():
    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2 dof) = 4.302652729911275 -> 2 +- 4.3027 / sqrt(3)
    d = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert (d["mean"], d["std"]) == pytest.approx((2.0, 1.0))
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((2 - half, 2 + half), rel=1e-9)
    assert d["established"] is False  # 2 - 2.48 < 0: the interval holds zero
    assert d["wins"] == 3 and d["losses"] == 0


def test_paired_interval_equals_scipys_paired_t_test():
    from scipy import stats

    rng = np.random.default_rng(3)
    base = rng.normal(0.9, 0.01, 7)
    arm = base + rng.normal(0.015, 0.006, 7)
    d = paired_difference(arm, base)
    ci = stats.ttest_rel(arm, base).confidence_interval(0.95)
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert d["established"] is True and d["ci_low"] > 0
    assert paired_difference(base, arm)["ci_high"] < 0  # the other way round: established, negative


def test_compare_arms_pairs_every_arm_with_the_baseline():
    out = compare_arms({"alone": [0.9, 0.91], "kd": [0.92, 0.94]}, "alone")
    assert "vs_alone" not in out["alone"]
    assert out["kd"]["vs_alone"]["per_seed"] == pytest.approx([0.02, 0.03])
    with pytest.raises(ValueError, match="pair them by seed"):
        paired_difference([1.0, 2.0], [1.0])
    assert format_difference(out["kd"]["vs_alone"]).startswith("+2.50 pt [")
