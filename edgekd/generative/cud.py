"""Catch-Up Distillation (Shao, Dai, Yin, Li, Chen, Hu; arXiv 2305.10769).

The velocity model is trained once, from scratch, with two terms: MSE to the ground-truth
velocity (noise - x) and MSE to its own stop-gradient prediction after a Runge-Kutta look-ahead
of size h ~ U(0, 1/N) ("catching up" with the current model). Orders 1/2/3 (RK12 / RK23 /
RK34) predict 1/2/3 look-ahead velocities: the main velocity head plus ``order - 1`` small
auxiliary heads on the UNet decoder features.

As in the public code (shaoshitong/Catch-Up-Distillation): the look-ahead targets come from the
main head of the current weights; the auxiliary heads get an EMA copy like the UNet, and orders
2 and 3 *sample* through the last auxiliary head of the EMA model; the noise is coupled to the
image by a learned encoder (z = mu(x) + sigma(x) * eps, KL to N(0, I) weighted 20) instead of
being drawn independently; and the one-step result comes from an extra stage, a one-step
student regressing saved (noise, image) pairs of the trained model.
Time convention as in ``flow.py`` (t = 1 noise, t = 0 data; a step of size h goes to t - h).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, register
from ..errors import ConfigError
from ..models.unet import AuxHeads, UNet
from .flow import FlowTrainConfig, call, get_ts, interpolate, sample_euler, train_velocity

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


def gaussian_kl(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) summed over a sample's dimensions, divided by their number,
    averaged over the batch (the per-dimension prior loss of the CUD/rectified-flow code)."""
    return (0.5 * (-1 - logvar + mu.pow(2) + logvar.exp())).mean()


class CatchUpModel(nn.Module):
    """What CUD trains: a velocity ``UNet`` (main head), ``order - 1`` auxiliary heads on its decoder
    features and, for the learned coupling, an ``encoder`` UNet giving (mu, log-variance) of the noise.

    ``forward(x, t)`` is the *sampling* velocity: the last auxiliary head for orders 2 and 3 (as the
    reference samples them), the main head for order 1. The look-ahead targets use ``unet`` itself.
    """

    def __init__(self, unet: UNet, order: int = 2, encoder: UNet | None = None):
        super().__init__()
        if order not in ORDERS:
            raise ConfigError(f"CatchUpModel.order: must be one of {ORDERS}, got {order}")
        c = unet.input_shape[0]
        if encoder is not None and (encoder.input_shape != unet.input_shape or encoder.out_channels != 2 * c):
            raise ConfigError(f"CatchUpModel.encoder: expected input {unet.input_shape} and {2 * c} output channels "
                              f"(mean and log-variance), got {encoder.input_shape} and {encoder.out_channels}")
        self.order = order
        self.unet = unet
        self.heads = AuxHeads(unet.feature_channels, c, order - 1, unet.norm_kind, unet.act_kind)
        for head in self.heads.heads:  # the reference starts its extra heads at (almost) zero, like the main head
            nn.init.zeros_(head.conv.weight)
            nn.init.zeros_(head.conv.bias)
        self.encoder = encoder

    def predictions(self, x_t, t, y=None):
        """[main-head velocity, auxiliary-head predictions...] from one pass of the UNet."""
        feats = self.unet.features(x_t, t, y)
        return [self.unet.head(feats)] + self.heads(feats)

    def sampling_head(self) -> nn.Module:
        return self.heads.heads[-1] if len(self.heads) else self.unet.out

    def forward(self, x, t, y=None):
        return self.sampling_head()(self.unet.features(x, t, y))

    def couple(self, x, eps):
        """Learned coupling: z = mu(x) + exp(logvar(x) / 2) * eps, with the encoder evaluated at t = 1."""
        c = x.shape[1]
        out = self.encoder(x, torch.ones(x.shape[0], dtype=x.dtype))
        mu, logvar = out[:, :c], out[:, c:]
        return mu + torch.exp(logvar / 2) * eps, mu, logvar

    def sampling_unet(self) -> UNet:
        """A plain UNet whose output head is the sampling head (for the one-step stage and export)."""
        unet = copy.deepcopy(self.unet)
        unet.out = copy.deepcopy(self.sampling_head())
        return unet


class CatchUpLoss:
    """CUD training loss for a ``CatchUpModel``: h ~ U(0, 1/N); plus ``kl_weight`` * KL with an encoder."""

    def __init__(self, order: int = 2, n: int = 16, eps: float = 1e-5, catch_up_weight: float = 1.0,
                 kl_weight: float = 20.0):
        if order not in ORDERS:
            raise ConfigError(f"CatchUpLoss.order: must be one of {ORDERS}, got {order}")
        self.order, self.n, self.eps = order, n, eps
        self.catch_up_weight, self.kl_weight = catch_up_weight, kl_weight

    def __call__(self, model: CatchUpModel, x, y=None, noise=None, t=None, h=None):
        """``noise``: the Gaussian draw; with an encoder it is the reparameterisation noise eps."""
        if model.order != self.order:
            raise ConfigError(f"CatchUpLoss: order {self.order} needs a CatchUpModel of order {self.order}, "
                              f"got {model.order}")
        b = x.shape[0]
        noise = torch.randn_like(x) if noise is None else noise
        t = torch.rand(b) * (1 - self.eps) + self.eps if t is None else t
        h = torch.rand(b) / self.n if h is None else h
        prior = 0.0
        if model.encoder is not None:
            noise, mu, logvar = model.couple(x, noise)
            prior = self.kl_weight * gaussian_kl(mu, logvar)
        x_t, gt = interpolate(x, noise, t), noise - x
        preds = model.predictions(x_t, t, y)
        velocity = model.unet if y is None else (lambda a, s: model.unet(a, s, y))
        targets = catch_up_targets(velocity, x_t, t, h, gt.detach(), self.order, self.eps)
        return catch_up_loss(preds, targets, gt, self.catch_up_weight) + prior


@register("cud")
@dataclass
class CUDConfig(Config):
    order: int = 2                 # 1 = RK12, 2 = RK23, 3 = RK34
    n: int = 16                    # h ~ U(0, 1/n)
    catch_up_weight: float = 1.0   # weight of the catch-up term (ground-truth term has weight 1)
    coupling: bool = True          # learned encoder coupling (the reference's default) vs independent noise
    kl_weight: float = 20.0        # the reference's --weight_prior in its published commands
    train: FlowTrainConfig = field(default_factory=FlowTrainConfig)

    def validate(self):
        if self.order not in ORDERS:
            raise ConfigError(f"CUDConfig.order: allowed values are {ORDERS}, got {self.order}")
        if self.n < 1:
            raise ConfigError(f"CUDConfig.n: expected >= 1, got {self.n}")
        if self.kl_weight < 0:
            raise ConfigError(f"CUDConfig.kl_weight: expected >= 0, got {self.kl_weight}")


def build_cud_model(shape, channels, config: CUDConfig, **unet_options) -> CatchUpModel:
    """A ``CatchUpModel`` for ``config``: the encoder (if ``coupling``) is a UNet of the same widths."""
    encoder = UNet(shape, channels, out_channels=2 * shape[0], **unet_options) if config.coupling else None
    return CatchUpModel(UNet(shape, channels, **unet_options), config.order, encoder)


def train_cud(model: CatchUpModel, x, config: CUDConfig, *, y=None, monitor=None, verbose=None):
    """Train ``model`` from its current weights with the catch-up objective.

    Returns (EMA model, history); sample with ``sample_cud(ema, noise, n)``.
    """
    loss = CatchUpLoss(config.order, config.n, config.train.eps, config.catch_up_weight, config.kl_weight)
    return train_velocity(model, x, config.train, lambda m, xb, yb: loss(m, xb, yb), y=y, monitor=monitor,
                          verbose=verbose)


@torch.no_grad()
def sample_cud(model: CatchUpModel, noise, n: int, y=None):
    """n Euler steps through the model's sampling head (the last auxiliary head for orders 2 and 3)."""
    return sample_euler(model, noise, get_ts(n), y)


# --- the extra one-step stage: a student regressing saved (noise, image) pairs ---

def one_step_regression_loss(generator, images, noise):
    """MSE between a generator's one-step image G(noise, t = 1) and the saved image (``flow.Denoiser``
    of a velocity UNet: noise - v(noise, 1); ``flow.OneStepImage`` of a noise -> image network)."""
    return F.mse_loss(generator(noise, torch.ones(noise.shape[0], dtype=noise.dtype)), images)


@torch.no_grad()
def make_pairs(sampler, noise, batch_size: int = 500):
    """Images ``sampler(noise)`` for saved noise, in batches: the one-step stage's training pairs."""
    return torch.cat([sampler(noise[i:i + batch_size]) for i in range(0, len(noise), batch_size)])


@register("one_step_stage")
@dataclass
class OneStepStageConfig(Config):
    pairs: int = 10000             # saved (noise, image) pairs
    sample_steps: int = 16         # Euler steps of the trained model that make the images
    train: FlowTrainConfig = field(default_factory=lambda: FlowTrainConfig(steps=1000, lr=2e-4, warmup=50))
    seed: int = 7

    def validate(self):
        if self.pairs < 1 or self.sample_steps < 1:
            raise ConfigError(f"OneStepStageConfig: pairs and sample_steps must be >= 1, got {self.pairs}, "
                              f"{self.sample_steps}")


def train_one_step(student, noise, images, config: OneStepStageConfig, *, monitor=None, verbose=None):
    """Regress ``images`` from ``noise`` with the one-step generator ``student`` (from its current
    weights); returns (EMA student, history). Also DMD-style regression initialisation of a
    generator whose architecture differs from the teacher's."""
    return train_velocity(student, images, config.train, lambda m, xb, zb: one_step_regression_loss(m, xb, zb),
                          y=noise, monitor=monitor, verbose=verbose)
