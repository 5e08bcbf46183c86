"""Alpha schedulers: the teacher's weight as a pure function of training progress p in [0, 1].

Each goes from ``start`` at p=0 to ``end`` at p=1, so ``start > end`` means the student listens
to the teacher less over time and ``start < end`` more.
"""
import math


def alpha_constant(p, start, end=None, **_):
    return start


def alpha_linear(p, start, end, **_):
    return start + (end - start) * p


def alpha_cosine(p, start, end, **_):
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * p))


def alpha_exponential(p, start, end, rate=5.0, **_):
    """Fast change early, then settling: start + (end - start) * (1 - e^{-rate p}) / (1 - e^{-rate})."""
    return start + (end - start) * (1.0 - math.exp(-rate * p)) / (1.0 - math.exp(-rate))


def alpha_step(p, start, end, steps=4, **_):
    """Piecewise constant: ``steps`` equal jumps from start to end."""
    return start + (end - start) * min(math.floor(p * steps), steps) / steps


SCHEDULES = {
    "constant": alpha_constant,
    "linear": alpha_linear,
    "cosine": alpha_cosine,
    "exponential": alpha_exponential,
    "step": alpha_step,
}


def alpha_at(kind, p, start, end, **options):
    p = min(max(float(p), 0.0), 1.0)
    return SCHEDULES[kind](p, start, end, **options)
