"""Catch-Up Distillation: targets for orders 1/2/3 against hand-computed RK steps of analytic fields,
the sampling head, the learned coupling and the one-step stage."""
import math

import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.generative.cud import (CatchUpLoss, CatchUpModel, CUDConfig, OneStepStageConfig, build_cud_model,
                                   catch_up_loss, catch_up_targets, gaussian_kl, make_pairs,
                                   one_step_regression_loss, sample_cud, train_cud, train_one_step)
from edgekd.generative.flow import Denoiser, FlowTrainConfig, get_ts, interpolate, sample_euler
from edgekd.models.unet import UNet

A, B = 0.7, -0.4


def linear_v(x, t):
    """Analytic velocity field v(x, t) = A x + B t."""
    return A * x + B * t.view(-1, *([1] * (x.dim() - 1)))


def v_np(x, t):
    return A * x + B * t


def test_order1_target_hand_computed():
    x_t = torch.tensor([[0.5], [-1.0]])
    t, h = torch.tensor([0.8, 0.5]), torch.tensor([0.05, 0.02])
    gt = torch.zeros(2, 1)
    (target,) = catch_up_targets(linear_v, x_t, t, h, gt, order=1)
    for i in range(2):
        xi, ti, hi = x_t[i, 0].item(), t[i].item(), h[i].item()
        k1 = v_np(xi, ti)
        assert target[i, 0].item() == pytest.approx(v_np(xi - hi * k1, ti - hi), rel=1e-6)


def test_order2_targets_hand_computed():
    x_t, t, h = torch.tensor([[0.3]]), torch.tensor([0.6]), torch.tensor([0.05])
    t1, t2 = catch_up_targets(linear_v, x_t, t, h, torch.zeros(1, 1), order=2)
    x, s, d = 0.3, 0.6, 0.05
    k1 = v_np(x, s)
    k2 = v_np(x - d * k1, s - d)
    assert t1.item() == pytest.approx(v_np(x - d * (k1 + k2) / 2, s - d), rel=1e-6)
    assert t2.item() == pytest.approx(v_np(x - d * (k1 + k2), s - 2 * d), rel=1e-6)


def test_order3_targets_hand_computed_and_consistent():
    x_t, t, h = torch.tensor([[0.3]]), torch.tensor([0.9]), torch.tensor([0.04])
    targets = catch_up_targets(linear_v, x_t, t, h, torch.zeros(1, 1), order=3)
    x, s, d = 0.3, 0.9, 0.04
    k1 = v_np(x, s)
    k2 = v_np(x - d * k1, s - d)
    k3 = v_np(x - (7 / 4 * d * k1 + 1 / 4 * d * k2), s - 2 * d)
    slope = 5 / 12 * k1 + 2 / 3 * k2 - 1 / 12 * k3
    for i, target in enumerate(targets, start=1):
        assert target.item() == pytest.approx(v_np(x - i * d * slope, s - i * d), rel=1e-6)
    # RK consistency: weights sum to one, so a constant field gives back the constant at every order
    for order in (1, 2, 3):
        outs = catch_up_targets(lambda a, b: torch.full_like(a, 2.5), x_t, t, h, torch.zeros(1, 1), order)
        assert len(outs) == order and all(o.item() == pytest.approx(2.5) for o in outs)


def test_ground_truth_where_lookahead_leaves_the_interval():
    x_t = torch.ones(3, 1)
    t, h = torch.tensor([0.03, 0.03, 0.5]), torch.tensor([0.05, 0.01, 0.05])
    gt = torch.full((3, 1), 9.0)
    (o1,) = catch_up_targets(linear_v, x_t, t, h, gt, order=1)
    assert o1[0].item() == 9.0  # t < eps + h
    assert o1[1].item() != 9.0 and o1[2].item() != 9.0
    o2 = catch_up_targets(linear_v, x_t, t, h, gt, order=2)
    assert all(o[0].item() == 9.0 for o in o2)  # 0.03 < eps + 2 * 0.05
    assert all(o[1].item() != 9.0 for o in o2)  # 0.03 >= eps + 2 * 0.01: look-ahead kept


def test_order3_mask_uses_three_steps():
    x_t, gt = torch.ones(1, 1), torch.full((1, 1), 9.0)
    outs = catch_up_targets(linear_v, x_t, torch.tensor([0.03]), torch.tensor([0.01]), gt, order=3)
    assert all(o.item() == 9.0 for o in outs)
    outs = catch_up_targets(linear_v, x_t, torch.tensor([0.04]), torch.tensor([0.01]), gt, order=3)
    assert all(o.item() != 9.0 for o in outs)


def test_catch_up_loss_hand_computed():
    p = [torch.tensor([1.0, 1.0]), torch.tensor([0.0, 2.0])]
    tg = [torch.tensor([0.0, 1.0]), torch.tensor([0.0, 0.0])]
    gt = torch.tensor([1.0, 3.0])
    # head 1: mse to target 0.5, to gt 2.0; head 2: to target 2.0, to gt 1.0
    assert catch_up_loss(p, tg, gt).item() == pytest.approx(5.5)
    assert catch_up_loss(p, tg, gt, catch_up_weight=0.0).item() == pytest.approx(3.0)


def _randomise(module, std=0.1):
    for p in module.parameters():
        torch.nn.init.normal_(p, std=std)
    return module


def test_catch_up_loss_matches_its_parts_on_a_unet():
    torch.manual_seed(0)
    model = CatchUpModel(UNet((1, 8, 8), (8, 16)), order=2)
    torch.nn.init.normal_(model.unet.out.conv.weight, std=0.1)
    x, z = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    t, h = torch.tensor([0.9, 0.5, 0.2, 0.01]), torch.full((4,), 0.05)
    loss = CatchUpLoss(order=2)(model, x, noise=z, t=t, h=h)
    with torch.no_grad():
        x_t = interpolate(x, z, t)
        feats = model.unet.features(x_t, t)
        preds = [model.unet.out(feats), model.heads.heads[0](feats)]
        targets = catch_up_targets(model.unet, x_t, t, h, z - x, 2)  # look-ahead through the main head
        assert loss.item() == pytest.approx(catch_up_loss(preds, targets, z - x).item(), rel=1e-5)
    loss.backward()
    assert model.heads.heads[0].conv.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="order"):
        CatchUpLoss(order=3)(model, x)


@pytest.mark.parametrize("order", [1, 3])
def test_orders_1_and_3_train_their_heads(order):
    torch.manual_seed(0)
    model = CatchUpModel(UNet((1, 8, 8), (8, 16)), order=order)
    assert len(model.heads) == order - 1
    loss = CatchUpLoss(order=order)(model, torch.randn(4, 1, 8, 8))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.unet.out.conv.weight.grad.abs().sum() > 0
    assert all(h.conv.weight.grad.abs().sum() > 0 for h in model.heads.heads)


@pytest.mark.parametrize("order", [2, 3])
def test_sampling_goes_through_the_last_auxiliary_head(order):
    # make the heads differ; an independent Euler loop through heads[-1] is the reference; the main
    # head (what the paper does NOT sample orders 2/3 through) gives a different answer
    torch.manual_seed(order)
    model = _randomise(CatchUpModel(UNet((1, 8, 8), (8, 16)), order=order)).eval()
    z = torch.randn(3, 1, 8, 8)
    ts = get_ts(4)
    with torch.no_grad():
        x = z.clone()
        for t, t_next in zip(ts[:-1], ts[1:]):
            feats = model.unet.features(x, t.expand(3))
            x = x + (t_next - t) * model.heads.heads[-1](feats)
        out = sample_cud(model, z, 4)
        main = sample_euler(model.unet, z, ts)
    assert torch.allclose(out, x, atol=1e-5)
    assert (out - main).abs().max() > 1e-2
    # the one-step stage starts from a UNet whose output head IS the sampling head
    with torch.no_grad():
        assert torch.allclose(model.sampling_unet()(z, torch.ones(3)), model(z, torch.ones(3)), atol=1e-6)


def test_order_1_samples_through_the_main_head():
    torch.manual_seed(0)
    model = _randomise(CatchUpModel(UNet((1, 8, 8), (8, 16)), order=1)).eval()
    z = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(sample_cud(model, z, 3), sample_euler(model.unet, z, get_ts(3)), atol=1e-6)


def test_auxiliary_heads_get_an_ema_copy(digits8):
    x = digits8.train.x[:64] * 2 - 1
    torch.manual_seed(0)
    model = build_cud_model((1, 8, 8), (8, 16), CUDConfig(order=2, coupling=False))
    cfg = CUDConfig(order=2, coupling=False, train=FlowTrainConfig(steps=5, batch_size=16, warmup=1, ema_decay=0.5))
    ema, _ = train_cud(model, x, cfg)
    w_live, w_ema = model.heads.heads[0].conv.weight, ema.heads.heads[0].conv.weight
    assert w_ema.abs().sum() > 0  # the heads start at zero: the EMA moved with them
    assert not torch.equal(w_ema, w_live)  # ...and is an average, not the live weights


def test_gaussian_kl_hand_computed():
    zero = torch.zeros(2, 1, 2, 2)
    assert gaussian_kl(zero, zero).item() == 0.0
    assert gaussian_kl(torch.ones(2, 1, 2, 2), zero).item() == pytest.approx(0.5)
    log2 = torch.full((2, 1, 2, 2), math.log(2.0))
    assert gaussian_kl(zero, log2).item() == pytest.approx(0.5 * (1 - math.log(2.0)))


def test_learned_coupling_loss_by_hand():
    torch.manual_seed(0)
    model = build_cud_model((1, 8, 8), (8, 16), CUDConfig(order=2, coupling=True))
    # the encoder's output conv starts at zero: z = 0 + exp(0) * eps, i.e. independent noise
    x, eps = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        z, mu, logvar = model.couple(x, eps)
    assert torch.equal(z, eps) and mu.abs().max() == 0 and logvar.abs().max() == 0
    _randomise(model.encoder)
    t, h = torch.tensor([0.9, 0.5, 0.3, 0.1]), torch.full((4,), 0.03)
    loss = CatchUpLoss(order=2, kl_weight=20.0)(model, x, noise=eps, t=t, h=h)
    with torch.no_grad():
        out = model.encoder(x, torch.ones(4))
        mu, logvar = out[:, :1], out[:, 1:]
        z = mu + torch.exp(0.5 * logvar) * eps
        kl = (0.5 * (-1 - logvar + mu ** 2 + logvar.exp())).mean()
        x_t = interpolate(x, z, t)
        preds = model.predictions(x_t, t)
        targets = catch_up_targets(model.unet, x_t, t, h, z - x, 2)
        expected = catch_up_loss(preds, targets, z - x) + 20.0 * kl
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert model.encoder.stem.weight.grad.abs().sum() > 0  # the coupling is learned


def test_tiny_cud_run_lowers_the_loss(digits8):
    x = digits8.train.x[:256] * 2 - 1
    torch.manual_seed(0)
    cfg = CUDConfig(order=2, coupling=False, train=FlowTrainConfig(steps=50, batch_size=32, warmup=5, lr=3e-3))
    model = build_cud_model((1, 8, 8), (8, 16), cfg)
    loss = CatchUpLoss(order=2)
    g = torch.Generator().manual_seed(1)
    z, t, h = torch.randn(x.shape, generator=g), torch.rand(len(x), generator=g), torch.rand(len(x), generator=g) / 16
    with torch.no_grad():
        before = loss(model, x, noise=z, t=t, h=h).item()
    train_cud(model, x, cfg)
    with torch.no_grad():
        after = loss(model, x, noise=z, t=t, h=h).item()
    assert after < 0.8 * before


def test_one_step_regression_loss_by_hand():
    # velocity 0.25 everywhere: one step gives noise - 0.25
    noise, images = torch.zeros(2, 1, 2, 2), torch.ones(2, 1, 2, 2)
    gen = Denoiser(lambda x, t: torch.full_like(x, 0.25))
    assert one_step_regression_loss(gen, images, noise).item() == pytest.approx(1.25 ** 2)


def test_one_step_stage_fits_saved_pairs(digits8):
    torch.manual_seed(0)
    teacher = _randomise(UNet((1, 8, 8), (8, 16)), 0.05).eval()
    noise = torch.randn(128, 1, 8, 8)
    images = make_pairs(lambda z: sample_euler(teacher, z, get_ts(4)), noise, batch_size=50)
    with torch.no_grad():
        assert torch.allclose(images, sample_euler(teacher, noise, get_ts(4)), atol=1e-5)
    student = Denoiser(UNet((1, 8, 8), (8, 16)))
    cfg = OneStepStageConfig(pairs=128, train=FlowTrainConfig(steps=60, batch_size=32, warmup=5, lr=3e-3, ema_decay=0.5))
    with torch.no_grad():
        before = one_step_regression_loss(student, images, noise).item()
    ema, _ = train_one_step(student, noise, images, cfg)
    with torch.no_grad():
        assert one_step_regression_loss(ema, images, noise).item() < 0.5 * before


def test_cud_config_validation():
    with pytest.raises(ConfigError, match="order"):
        CUDConfig(order=4)
    assert CUDConfig.from_dict(CUDConfig(order=3).to_dict()).order == 3
    with pytest.raises(ConfigError, match="encoder"):
        CatchUpModel(UNet((1, 8, 8), (8, 16)), 2, encoder=UNet((1, 8, 8), (8, 16)))  # needs 2 output channels
