"""Catch-Up Distillation: targets for orders 1/2/3 against hand-computed RK steps of analytic fields."""
import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.generative.cud import CatchUpLoss, CUDConfig, catch_up_loss, catch_up_targets, train_cud
from edgekd.generative.flow import FlowTrainConfig, interpolate
from edgekd.models.unet import AuxHeads, UNet

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


def test_catch_up_loss_matches_its_parts_on_a_unet():
    torch.manual_seed(0)
    model = UNet((1, 8, 8), (8, 16))
    torch.nn.init.normal_(model.out.conv.weight, std=0.1)
    heads = AuxHeads(model.feature_channels, 1, 1)
    x, z = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    t, h = torch.tensor([0.9, 0.5, 0.2, 0.01]), torch.full((4,), 0.05)
    loss = CatchUpLoss(order=2)(model, heads, x, noise=z, t=t, h=h)
    with torch.no_grad():
        x_t = interpolate(x, z, t)
        feats = model.features(x_t, t)
        preds = [model.head(feats), heads(feats)[0]]
        targets = catch_up_targets(model, x_t, t, h, z - x, 2)
        assert loss.item() == pytest.approx(catch_up_loss(preds, targets, z - x).item(), rel=1e-5)
    loss.backward()
    assert heads.heads[0].conv.weight.grad is not None and heads.heads[0].conv.weight.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="auxiliary heads"):
        CatchUpLoss(order=3)(model, heads, x)


@pytest.mark.parametrize("order", [1, 3])
def test_orders_1_and_3_train_their_heads(order):
    torch.manual_seed(0)
    model = UNet((1, 8, 8), (8, 16))
    heads = AuxHeads(model.feature_channels, 1, order - 1)
    loss = CatchUpLoss(order=order)(model, heads, torch.randn(4, 1, 8, 8))
    assert torch.isfinite(loss)
    loss.backward()
    assert model.out.conv.weight.grad.abs().sum() > 0
    assert all(h.conv.weight.grad.abs().sum() > 0 for h in heads.heads)


def test_tiny_cud_run_lowers_the_loss(digits8):
    x = digits8.train.x[:256] * 2 - 1
    torch.manual_seed(0)
    model = UNet((1, 8, 8), (8, 16))
    heads = AuxHeads(model.feature_channels, 1, 1)
    cfg = CUDConfig(order=2, train=FlowTrainConfig(steps=50, batch_size=32, warmup=5, lr=3e-3))
    loss = CatchUpLoss(order=2)
    g = torch.Generator().manual_seed(1)
    z, t, h = torch.randn(x.shape, generator=g), torch.rand(len(x), generator=g), torch.rand(len(x), generator=g) / 16
    with torch.no_grad():
        before = loss(model, heads, x, noise=z, t=t, h=h).item()
    train_cud(model, heads, x, cfg)
    with torch.no_grad():
        after = loss(model, heads, x, noise=z, t=t, h=h).item()
    assert after < 0.8 * before


def test_cud_config_validation():
    with pytest.raises(ConfigError, match="order"):
        CUDConfig(order=4)
    assert CUDConfig.from_dict(CUDConfig(order=3).to_dict()).order == 3
