"""Rectified flow: path, loss, EMA, and samplers on linear ODEs with closed-form answers."""
import math

import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.generative.flow import (CallCounter, FlowMatchingLoss, FlowTrainConfig, denoise, ema_update, get_ts,
                                    interpolate, sample_euler, sample_heun, train_flow)
from edgekd.models.unet import UNet


def test_interpolate_endpoints_and_midpoint():
    x, z = torch.full((2, 1, 2, 2), 3.0), torch.full((2, 1, 2, 2), -1.0)
    assert torch.equal(interpolate(x, z, torch.zeros(2)), x)
    assert torch.equal(interpolate(x, z, torch.ones(2)), z)
    assert torch.allclose(interpolate(x, z, torch.tensor([0.25, 0.5])),
                          torch.tensor([2.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2))


def test_flow_matching_loss_hand_computed():
    # v(x_t, t) = 0.5 everywhere; target noise - x = 2 - 1 = 1 -> loss (0.5 - 1)^2 = 0.25
    x, noise = torch.ones(3, 1, 2, 2), torch.full((3, 1, 2, 2), 2.0)
    loss = FlowMatchingLoss()(lambda xt, t: torch.full_like(xt, 0.5), x, noise=noise, t=torch.rand(3))
    assert loss.item() == pytest.approx(0.25)
    # the exact velocity of a single-point data set has zero loss
    model = lambda xt, t: noise - x  # noqa: E731
    assert FlowMatchingLoss()(model, x, noise=noise).item() == 0.0


def test_denoise_inverts_the_path_with_exact_velocity():
    x, z, t = torch.randn(4, 1, 3, 3), torch.randn(4, 1, 3, 3), torch.tensor([0.1, 0.4, 0.7, 1.0])
    x_t = interpolate(x, z, t)
    assert torch.allclose(denoise(lambda a, s: z - x, x_t, t), x, atol=1e-6)


def test_get_ts():
    assert torch.allclose(get_ts(4), torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    with pytest.raises(ConfigError):
        get_ts(0)


def test_euler_exact_for_constant_velocity():
    x1, c = torch.randn(5, 1, 2, 2), torch.randn(1, 1, 2, 2)
    for n in (1, 3, 8):
        out = sample_euler(lambda x, t: c.expand_as(x), x1.clone(), get_ts(n))
        assert torch.allclose(out, x1 - c, atol=1e-6)  # x(0) = x(1) + (0 - 1) * c


def test_euler_and_heun_on_linear_ode_closed_forms_and_orders():
    a = 1.3  # dx/dt = a x, integrated from t=1 to t=0: exact x(0) = x(1) * exp(-a)
    x1 = torch.ones(1, 1, 1, 1, dtype=torch.float64)

    def model(x, t):
        return a * x

    errs_e, errs_h = [], []
    for n in (8, 16, 32, 64):
        h = -1.0 / n
        e = sample_euler(model, x1, get_ts(n).double()).item()
        hn = sample_heun(model, x1, get_ts(n).double()).item()
        assert e == pytest.approx((1 + a * h) ** n, rel=1e-12)  # Euler recursion, closed form
        # Heun recursion for n - 1 steps, then the last step (onto t = 0) is a plain Euler step
        assert hn == pytest.approx((1 + a * h + (a * h) ** 2 / 2) ** (n - 1) * (1 + a * h), rel=1e-12)
        errs_e.append(abs(e - math.exp(-a)))
        errs_h.append(abs(hn - math.exp(-a)))
    for i in range(3):  # halving the step: error / 2 (first order), / 4 (second order)
        assert 1.8 < errs_e[i] / errs_e[i + 1] < 2.2
        assert 3.6 < errs_h[i] / errs_h[i + 1] < 4.6  # still second order with the last step Euler


@pytest.mark.parametrize("n", [1, 2, 5])
def test_evaluations_are_counted_not_assumed(n):
    counter = CallCounter(lambda x, t: 0.5 * x)
    sample_euler(counter, torch.ones(2, 1), get_ts(n))
    assert counter.calls == n
    counter = CallCounter(lambda x, t: 0.5 * x)
    sample_heun(counter, torch.ones(2, 1), get_ts(n))
    assert counter.calls == 2 * n - 1  # Karras Alg. 1: no correction on the step that lands on t = 0
    # stopping short of t = 0 corrects every step: 2 evaluations each
    counter = CallCounter(lambda x, t: 0.5 * x)
    sample_heun(counter, torch.ones(2, 1), get_ts(n, t_min=0.1))
    assert counter.calls == 2 * n


def test_ema_update_hand_computed():
    m, e = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    with torch.no_grad():
        m.weight.fill_(1.0), m.bias.fill_(0.0), e.weight.fill_(0.0), e.bias.fill_(10.0)
    ema_update(e, m, decay=0.9)
    assert e.weight.item() == pytest.approx(0.1) and e.bias.item() == pytest.approx(9.0)


def test_tiny_teacher_run_lowers_the_loss(digits8):
    x = digits8.train.x[:256] * 2 - 1
    torch.manual_seed(0)
    model = UNet((1, 8, 8), (8, 16))
    noise, t = torch.randn_like(x), torch.rand(len(x))
    loss = FlowMatchingLoss()
    with torch.no_grad():
        before = loss(model, x, noise=noise, t=t).item()
    seen = []
    ema, hist = train_flow(model, x, FlowTrainConfig(steps=60, batch_size=32, warmup=5, ema_decay=0.9, lr=3e-3,
                                                     eval_every=25),
                           monitor=lambda step, m: seen.append((step, m)))
    assert [s for s, _ in seen] == [25, 50, 60] and all(m is ema for _, m in seen)  # learning-curve points
    with torch.no_grad():
        after = loss(model, x, noise=noise, t=t).item()
        after_ema = loss(ema, x, noise=noise, t=t).item()
    assert after < 0.8 * before and after_ema < 0.8 * before
    assert len(hist) == 60


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="ema_decay"):
        FlowTrainConfig(ema_decay=1.0)
