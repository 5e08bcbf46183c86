"""Catch-Up Distillation (Shao, Dai, Yin, Li, Chen, Hu; arXiv 2305.10769).

The velocity model is trained once, from scratch, with two terms: MSE to the ground-truth
velocity (noise - x) and MSE to its own stop-gradient prediction after a Runge-Kutta look-ahead
of size h ~ U(0, 1/N) ("catching up" with the current model). Orders 1/2/3 (RK12 / RK23 /
RK34) predict 1/2/3 look-ahead velocities: the main velocity head plus ``order - 1`` small
auxiliary heads on the UNet decoder features. Sampling uses the main head with few Euler steps.
Time convention as in ``flow.py`` (t = 1 noise, t = 0 data; a step of size h goes to t - h).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..config import Config, register
from ..errors import ConfigError
from .flow import FlowTrainConfig, call, interpolate, train_velocity

ORDERS = (1, 2, 3)


def _col(v, like):
    return v.reshape(-1, *([1] * (like.dim() - 1)))


@torch.no_grad()
def catch_up_targets(velocity, x_t, t, h, gt, order: int, eps: float = 1e-5):
    """CUD look-ahead targets (Shao et al. 2023, Sec. 3; RK12/RK23/RK34), stop-gradient.

    order 1: [v(x_t - h k1, t - h)], k1 = v(x_t, t).
    order 2: k2 = v(x_t - h k1, t - h); [v(x_t - h (k1 + k2) / 2, t - h), v(x_t - h (k1 + k2), t - 2h)].
    order 3: k3 = v(x_t - (7/4 h k1 + 1/4 h k2), t - 2h), s = 5/12 k1 + 2/3 k2 - 1/12 k3;
             [v(x_t - i h s, t - i h) for i = 1, 2, 3].
    Where t < eps + order * h (the look-ahead would leave [eps, 1]) the target is ``gt``.
    Times passed to the model are clamped to [eps, 1].
    """
    if order not in ORDERS:
        raise ConfigError(f"catch_up_targets: order must be one of {ORDERS}, got {order}")

    def v(x, s):
        return call(velocity, x, s.clamp(eps, 1.0))

    hh = _col(h, x_t)
    k1 = v(x_t, t)
    if order == 1:
        targets = [v(x_t - hh * k1, t - h)]
    else:
        k2 = v(x_t - hh * k1, t - h)
        if order == 2:
            targets = [v(x_t - hh * (k1 + k2) / 2, t - h), v(x_t - hh * (k1 + k2), t - 2 * h)]
        else:
            k3 = v(x_t - (7 / 4 * hh * k1 + 1 / 4 * hh * k2), t - 2 * h)
            slope = 5 / 12 * k1 + 2 / 3 * k2 - 1 / 12 * k3
            targets = [v(x_t - i * hh * slope, t - i * h) for i in (1, 2, 3)]
    keep = _col(t >= eps + order * h, x_t)
    return [torch.where(keep, target, gt) for target in targets]


def catch_up_loss(preds, targets, gt, catch_up_weight: float = 1.0):
    """CUD objective (Shao et al. 2023, Sec. 3; public code CatchUpFlow): sum_i w * MSE(p_i, target_i) + MSE(p_i, gt)."""
    if len(preds) != len(targets):
        raise ConfigError(f"catch_up_loss: {len(preds)} predictions for {len(targets)} targets")
    return sum(catch_up_weight * F.mse_loss(p, tg) + F.mse_loss(p, gt) for p, tg in zip(preds, targets))


class CatchUpLoss:
    """CUD training loss for a ``UNet`` plus ``AuxHeads`` (order - 1 heads); h ~ U(0, 1/N)."""

    def __init__(self, order: int = 2, n: int = 16, eps: float = 1e-5, catch_up_weight: float = 1.0):
        if order not in ORDERS:
            raise ConfigError(f"CatchUpLoss.order: must be one of {ORDERS}, got {order}")
        self.order, self.n, self.eps, self.catch_up_weight = order, n, eps, catch_up_weight

    def __call__(self, model, heads, x, y=None, noise=None, t=None, h=None):
        b = x.shape[0]
        noise = torch.randn_like(x) if noise is None else noise
        t = torch.rand(b) * (1 - self.eps) + self.eps if t is None else t
        h = torch.rand(b) / self.n if h is None else h
        x_t, gt = interpolate(x, noise, t), noise - x
        feats = model.features(x_t, t, y)
        extra = heads(feats) if heads is not None else []
        preds = [model.head(feats)] + list(extra)[: self.order - 1]
        if len(preds) != self.order:
            raise ConfigError(f"CatchUpLoss: order {self.order} needs {self.order - 1} auxiliary heads, got {len(extra)}")
        velocity = model if y is None else (lambda a, s: model(a, s, y))
        targets = catch_up_targets(velocity, x_t, t, h, gt, self.order, self.eps)
        return catch_up_loss(preds, targets, gt, self.catch_up_weight)


@register("cud")
@dataclass
class CUDConfig(Config):
    order: int = 2                 # 1 = RK12, 2 = RK23, 3 = RK34
    n: int = 16                    # h ~ U(0, 1/n)
    catch_up_weight: float = 1.0   # weight of the catch-up term (ground-truth term has weight 1)
    train: FlowTrainConfig = field(default_factory=FlowTrainConfig)

    def validate(self):
        if self.order not in ORDERS:
            raise ConfigError(f"CUDConfig.order: allowed values are {ORDERS}, got {self.order}")
        if self.n < 1:
            raise ConfigError(f"CUDConfig.n: expected >= 1, got {self.n}")


def train_cud(model, heads, x, config: CUDConfig, *, y=None, verbose=None):
    """Train ``model`` (and ``heads``) from its current weights with the catch-up objective.

    Returns (ema model, history); the EMA model samples with the main head (``flow.sample_euler``).
    """
    loss = CatchUpLoss(config.order, config.n, config.train.eps, config.catch_up_weight)
    params = list(heads.parameters()) if heads is not None else []
    return train_velocity(model, x, config.train, lambda m, xb, yb: loss(m, heads, xb, yb), y=y,
                          extra_params=params, verbose=verbose)
