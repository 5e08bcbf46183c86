"""paired_ci against hand computations (t quantiles in closed form for 1 and 2 degrees of freedom)."""
import math

import pytest

from edgekd.stats import paired_ci


def _t_df1(p):  # Cauchy quantile
    return math.tan(math.pi * (p - 0.5))


def _t_df2(p):
    return (2 * p - 1) / math.sqrt(2 * p * (1 - p))


def test_two_pairs():
    mean, low, high = paired_ci([3.0, 5.0], [1.0, 2.0])  # differences 2, 3
    half = _t_df1(0.975) * (math.sqrt(0.5) / math.sqrt(2))  # std 1/sqrt(2), se 0.5; t = 12.7062
    assert mean == pytest.approx(2.5)
    assert (low, high) == pytest.approx((2.5 - half, 2.5 + half), rel=1e-9)
    assert half == pytest.approx(6.3531, abs=1e-4)


def test_three_pairs_and_other_level():
    a, b = [2.0, 2.0, 7.0], [1.0, 0.0, 3.0]  # differences 1, 2, 4: mean 7/3, var 7/3
    se = math.sqrt(7 / 3) / math.sqrt(3)
    mean, low, high = paired_ci(a, b)
    assert mean == pytest.approx(7 / 3)
    assert high - mean == pytest.approx(_t_df2(0.975) * se, rel=1e-9)  # t = 4.3027
    assert mean - low == pytest.approx(_t_df2(0.975) * se, rel=1e-9)
    _, low90, high90 = paired_ci(a, b, level=0.90)
    assert high90 - mean == pytest.approx(_t_df2(0.95) * se, rel=1e-9)  # t = 2.9200
    # the interval is of a - b: swapping the arguments mirrors it
    assert paired_ci(b, a) == pytest.approx((-mean, -high, -low))


def test_no_spread_and_bad_input():
    assert paired_ci([1.0, 2.0, 3.0], [0.0, 1.0, 2.0]) == pytest.approx((1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="length >= 2"):
        paired_ci([1.0], [0.0])
    with pytest.raises(ValueError, match="equal length"):
        paired_ci([1.0, 2.0], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="level"):
        paired_ci([1.0, 2.0], [0.0, 1.0], level=1.5)
