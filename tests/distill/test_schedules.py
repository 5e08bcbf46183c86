import math

import pytest

from edgekd.distill import SCHEDULES, AlphaSchedule

# (kind, options, values at p = 0, 0.5, 1) going from start=0.9 to end=0.1
EXPECTED = {
    "constant": ({}, (0.9, 0.9, 0.9)),
    "linear": ({}, (0.9, 0.5, 0.1)),
    "cosine": ({}, (0.9, 0.5, 0.1)),
    "exponential": ({"rate": 5.0}, (0.9, 0.9 - 0.8 * (1 - math.exp(-2.5)) / (1 - math.exp(-5.0)), 0.1)),
    "step": ({"steps": 4}, (0.9, 0.5, 0.1)),
}


def test_every_schedule_is_tested():
    assert set(EXPECTED) == set(SCHEDULES)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_values_at_0_half_and_1_falling(kind):
    options, values = EXPECTED[kind]
    sched = AlphaSchedule(kind, start=0.9, end=0.1, **options)
    for p, v in zip((0.0, 0.5, 1.0), values):
        assert sched(p) == pytest.approx(v, abs=1e-12), (kind, p)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_rising_direction_mirrors_falling(kind):
    options, _ = EXPECTED[kind]
    up = AlphaSchedule(kind, start=0.1, end=0.9, **options)
    down = AlphaSchedule(kind, start=0.9, end=0.1, **options)
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        if kind == "constant":
            assert up(p) == 0.1
        else:
            assert up(p) + down(p) == pytest.approx(1.0, abs=1e-12)


def test_exponential_changes_fastest_early_and_step_is_piecewise():
    e = AlphaSchedule("exponential", 1.0, 0.0, rate=5.0)
    assert (e(0.0) - e(0.1)) > (e(0.8) - e(0.9)) > 0
    s = AlphaSchedule("step", 1.0, 0.0, steps=4)
    assert s(0.24) == 1.0 and s(0.26) == 0.75 and s(0.99) == 0.25


def test_progress_is_clamped():
    lin = AlphaSchedule("linear", 0.0, 1.0)
    assert lin(-1.0) == 0.0 and lin(2.0) == 1.0
