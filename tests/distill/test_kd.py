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


def test_kd_loss_with_mixed_label_targets_matches_a_hand_computed_formula():
    s = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0]])
    t = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 4.0]])
    soft_y = np.array([[0.7, 0.3, 0.0], [0.0, 0.25, 0.75]])  # mixup: lam * onehot(y_i) + (1 - lam) * onehot(y_j)
    T, alpha = 2.0, 0.6
    total = 0.0
    for i in range(2):
        p, q = _softmax(t[i] / T), _softmax(s[i] / T)
        kl = sum(p[k] * math.log(p[k] / q[k]) for k in range(3))
        ce = -sum(soft_y[i, k] * math.log(_softmax(s[i])[k]) for k in range(3))
        total += alpha * T * T * kl + (1 - alpha) * ce
    got = kd_loss(torch.tensor(s), torch.tensor(t), torch.tensor(soft_y), alpha=alpha, temperature=T)
    assert got.item() == pytest.approx(total / 2, rel=1e-12)


@pytest.mark.parametrize("alpha, T", [(1.0, 1.0), (0.7, 3.0), (0.2, 0.5)])
def test_kd_loss_gradient_equals_finite_differences_and_the_closed_form(alpha, T):
    gen = torch.Generator().manual_seed(0)
    s = torch.randn(4, 5, generator=gen, dtype=torch.float64)
    t = torch.randn(4, 5, generator=gen, dtype=torch.float64) * 2
    y = torch.tensor([0, 3, 1, 4])
    s.requires_grad_(True)
    kd_loss(s, t, y, alpha=alpha, temperature=T).backward()
    analytic = s.grad.clone()
    # central differences, one logit at a time
    eps = 1e-6
    numeric = torch.zeros_like(s)
    with torch.no_grad():
        for i in range(s.shape[0]):
            for k in range(s.shape[1]):
                up, down = s.detach().clone(), s.detach().clone()
                up[i, k] += eps
                down[i, k] -= eps
                numeric[i, k] = (kd_loss(up, t, y, alpha=alpha, temperature=T)
                                 - kd_loss(down, t, y, alpha=alpha, temperature=T)) / (2 * eps)
    torch.testing.assert_close(analytic, numeric, rtol=1e-6, atol=1e-8)
    # and Hinton's closed form: d/ds [alpha T^2 KL + (1 - alpha) CE] = (alpha T (q_T - p_T) + (1 - alpha) (q - onehot)) / N
    q_t, p_t = torch.softmax(s.detach() / T, -1), torch.softmax(t / T, -1)
    q, onehot = torch.softmax(s.detach(), -1), torch.nn.functional.one_hot(y, 5).double()
    closed = (alpha * T * (q_t - p_t) + (1 - alpha) * (q - onehot)) / s.shape[0]
    torch.testing.assert_close(analytic, closed, rtol=1e-10, atol=1e-12)
