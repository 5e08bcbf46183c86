import math

import numpy as np
import pytest
import torch

from edgekd.distill import feature_loss, kd_loss


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def test_kd_loss_matches_a_hand_computed_formula():
    s = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]])
    t = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 4.0]])
    y = np.array([1, 2])
    T, alpha = 3.0, 0.7
    total = 0.0
    for i in range(2):
        p, q = _softmax(t[i] / T), _softmax(s[i] / T)
        kl = sum(p[k] * math.log(p[k] / q[k]) for k in range(3))
        ce = -math.log(_softmax(s[i])[y[i]])
        total += alpha * T * T * kl + (1 - alpha) * ce
    expected = total / 2
    got = kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), alpha=alpha, temperature=T)
    assert got.item() == pytest.approx(expected, rel=1e-12)


def test_alpha_zero_is_cross_entropy_and_no_teacher_needed():
    s = torch.randn(4, 5)
    y = torch.tensor([0, 1, 2, 3])
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(kd_loss(s, None, y, alpha=0.0, temperature=2.0), ce)
    assert torch.allclose(kd_loss(s, torch.randn(4, 5), y, alpha=0.0, temperature=2.0), ce)


def test_identical_logits_leave_only_the_hard_term():
    s = torch.randn(3, 4)
    y = torch.tensor([0, 1, 2])
    ce = torch.nn.functional.cross_entropy(s, y)
    got = kd_loss(s, s.clone(), y, alpha=0.4, temperature=5.0)
    assert got.item() == pytest.approx(0.6 * ce.item(), abs=1e-6)


@pytest.mark.parametrize("alpha, T", [(1.5, 2.0), (-0.1, 2.0), (0.5, 0.0)])
def test_out_of_range_alpha_or_temperature_is_refused(alpha, T):
    with pytest.raises(ValueError):
        kd_loss(torch.randn(2, 3), torch.randn(2, 3), torch.tensor([0, 1]), alpha=alpha, temperature=T)


def test_feature_loss_pools_and_projects():
    s = torch.randn(2, 4, 5, 5)
    t = torch.randn(2, 6, 3, 3)
    proj = torch.nn.Linear(4, 6, bias=False)
    expected = ((proj(s.mean((2, 3))) - t.mean((2, 3))) ** 2).mean()
    assert torch.allclose(feature_loss(s, t, proj), expected)
    with pytest.raises(ValueError, match="feature shapes differ"):
        feature_loss(s, t)
