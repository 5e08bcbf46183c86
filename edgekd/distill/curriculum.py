"""Curriculum data order: easy examples first, ranked by the teacher, with a growing pool.

Difficulty is the teacher's (1 - confidence in the true class) or its cross-entropy loss; a
pacing function says what fraction of the easiest examples is in the pool at each epoch.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F


def difficulty(teacher_logits, targets, by="confidence"):
    """Per-sample difficulty, lower is easier."""
    if by == "confidence":
        return 1.0 - F.softmax(teacher_logits, dim=-1).gather(1, targets[:, None]).squeeze(1)
    if by == "loss":
        return F.cross_entropy(teacher_logits, targets, reduction="none")
    raise ValueError(f"difficulty 'by' must be 'confidence' or 'loss', got {by!r}")


def easy_first(scores) -> np.ndarray:
    """Indices sorted from easiest to hardest (stable, so ties keep the data order)."""
    scores = scores.detach().cpu().numpy() if isinstance(scores, torch.Tensor) else np.asarray(scores)
    return np.argsort(scores, kind="stable")


def pace_linear(p, start):
    return start + (1.0 - start) * p


def pace_root(p, start):
    """Platanios et al. 2019: sqrt(start^2 + (1 - start^2) p); adds hard examples more slowly at the end."""
    return math.sqrt(start**2 + (1.0 - start**2) * p)


def pace_step(p, start, steps=3):
    return start + (1.0 - start) * min(math.floor(p * steps), steps) / steps


PACINGS = {"linear": pace_linear, "root": pace_root, "step": pace_step}


def pool_size(n, epoch, epochs, *, pacing="linear", start=0.3, saturate=0.8):
    """How many of the ``n`` easiest samples to train on at ``epoch`` (0-based).

    Progress is the fraction of training done when the epoch starts, ``epoch / (saturate * epochs)``:
    epoch 0 uses exactly ``start`` of the set, and the pool is the whole set from the first epoch
    that starts at or after ``saturate`` of training.
    """
    p = min(1.0, epoch / max(saturate * epochs, 1e-9))
    frac = min(1.0, PACINGS[pacing](p, start))
    return max(1, min(n, int(math.ceil(round(frac * n, 9)))))  # round: 0.36 * 100 is 36, not 37


def paced_pool(order, size: int, n: int) -> np.ndarray:
    """The ``size`` easiest indices of ``order``, repeated cyclically to ``n`` entries.

    An epoch of a curriculum run then has as many steps as an epoch over the whole set, so arms
    with and without a curriculum get the same number of optimizer steps; the curriculum changes
    *which* samples are seen, not how much training there is.
    """
    return np.resize(np.asarray(order[:size]), n)
