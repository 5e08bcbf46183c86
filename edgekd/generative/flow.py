"""Rectified flow (Liu, Gong, Liu 2022, arXiv 2209.03003): teacher loss, EMA, Euler/Heun samplers.

Convention used everywhere in ``edgekd.generative``: x_t = t * noise + (1 - t) * x, t in [0, 1]
(t = 1 is pure noise), the model predicts the velocity v = noise - x, sampling integrates
dx/dt = v from t = 1 down to t = 0, and the denoised estimate is x0 = x_t - t * v.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import Config, register
from ..errors import ConfigError
from ..log import logger


def call(model, x, t, y=None):
    """Evaluate a velocity model at (x, t) with t broadcast to the batch."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.dim() == 0:
        t = t.expand(x.shape[0])
    return model(x, t) if y is None else model(x, t, y)


def interpolate(x, noise, t):
    """Rectified-flow path (Liu et al. 2022, eq. 1): x_t = t * noise + (1 - t) * x."""
    t = t.reshape(-1, *([1] * (x.dim() - 1)))
    return t * noise + (1 - t) * x


def denoise(model, x_t, t, y=None):
    """Denoised estimate x0 = x_t - t * v(x_t, t) (the RF analogue of EDM's D(x; sigma))."""
    v = call(model, x_t, t, y)
    t = torch.as_tensor(t, dtype=x_t.dtype).reshape(-1, *([1] * (x_t.dim() - 1)))
    return x_t - t * v


class Denoiser(torch.nn.Module):
    """A velocity model as an image generator: G(x_t, t) = x_t - t * v(x_t, t) (DMD2's generator,
    CUD's one-step student)."""

    def __init__(self, velocity: torch.nn.Module):
        super().__init__()
        self.velocity = velocity

    def forward(self, x_t, t):
        return denoise(self.velocity, x_t, t)


class OneStepImage(torch.nn.Module):
    """A noise -> image network (e.g. ``MLPGenerator``, flat output) as a generator G(x_t, t): it only
    ever sees t = 1, so t is ignored; the output is reshaped to the image shape."""

    def __init__(self, net: torch.nn.Module, shape):
        super().__init__()
        self.net, self.shape = net, tuple(shape)

    def forward(self, x_t, t=None):
        return self.net(x_t).reshape(x_t.shape[0], *self.shape)


class FlowMatchingLoss:
    """Rectified-flow loss (Liu et al. 2022, eq. 1): E || v(x_t, t) - (noise - x) ||^2, t ~ U(eps, 1)."""

    def __init__(self, eps: float = 1e-5):
        self.eps = eps

    def __call__(self, model, x, y=None, noise=None, t=None):
        noise = torch.randn_like(x) if noise is None else noise
        if t is None:
            t = torch.rand(x.shape[0], device=x.device) * (1 - self.eps) + self.eps
        v = call(model, interpolate(x, noise, t), t, y)
        return F.mse_loss(v, noise - x)


@torch.no_grad()
def ema_update(ema_model, model, decay: float):
    """Exponential moving average of weights: p_ema <- decay * p_ema + (1 - decay) * p."""
    for pe, p in zip(ema_model.parameters(), model.parameters()):
        pe.lerp_(p.detach(), 1 - decay)
    for be, b in zip(ema_model.buffers(), model.buffers()):
        be.copy_(b)


def get_ts(n: int, t_max: float = 1.0, t_min: float = 0.0) -> torch.Tensor:
    """n uniform sampling steps: n + 1 times from t_max down to t_min."""
    if n < 1:
        raise ConfigError(f"get_ts: number of steps must be >= 1, got {n}")
    return torch.linspace(t_max, t_min, n + 1)


@torch.no_grad()
def sample_euler(model, x, ts, y=None):
    """Euler integration of dx/dt = v(x, t) along ts (decreasing): n steps, n evaluations."""
    for t, t_next in zip(ts[:-1], ts[1:]):
        x = x + (t_next - t) * call(model, x, t, y)
    return x


@torch.no_grad()
def sample_heun(model, x, ts, y=None):
    """Heun's method (explicit trapezoid, Karras et al. 2022 Alg. 1): n steps, 2n - 1 evaluations.

    As in Karras' Alg. 1 (and the CUD reference sampler), the last step, the one that lands on
    t = 0, is a plain Euler step: correcting it would cost one more evaluation for the step whose
    end point is never used again.
    """
    for t, t_next in zip(ts[:-1], ts[1:]):
        d = call(model, x, t, y)
        x_euler = x + (t_next - t) * d
        if float(t_next) == 0.0:
            x = x_euler
            continue
        d_next = call(model, x_euler, t_next, y)
        x = x + (t_next - t) * 0.5 * (d + d_next)
    return x


class CallCounter:
    """Wraps a model and counts its calls, so NFE in reports are counted, not computed from a formula."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.model(*args, **kwargs)


@register("flow_train")
@dataclass
class FlowTrainConfig(Config):
    steps: int = 1500            # optimizer steps
    batch_size: int = 128
    lr: float = 2e-3             # Adam, linear warm-up then cosine decay to 10%
    warmup: int = 100
    ema_decay: float = 0.995     # EMA of weights used for sampling
    grad_clip: float = 1.0
    eps: float = 1e-5            # t ~ U(eps, 1)
    eval_every: int = 0          # learning-curve points (FD of the EMA model) every this many steps; 0 = end only
    seed: int = 0

    def validate(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"FlowTrainConfig: steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"FlowTrainConfig.ema_decay: expected 0 <= decay < 1, got {self.ema_decay}")
        if self.lr <= 0:
            raise ConfigError(f"FlowTrainConfig.lr: expected > 0, got {self.lr}")


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Linear warm-up then cosine decay to 10% of the base learning rate."""
    import math

    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def batches(x, y, batch_size: int, generator: torch.Generator):
    """Endless random mini-batches (x, y) drawn with ``generator``."""
    n = len(x)
    while True:
        perm = torch.randperm(n, generator=generator)
        for i in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            idx = perm[i:i + batch_size]
            yield x[idx], (None if y is None else y[idx])


def train_velocity(model, x, config: FlowTrainConfig, loss_fn, *, y=None, monitor=None, verbose=None):
    """Generic loop: minimise ``loss_fn(model, xb, yb)``; returns (ema model, loss history).

    Used by the rectified-flow teacher (``FlowMatchingLoss``), CUD (``CatchUpLoss`` on a
    ``CatchUpModel``, whose auxiliary heads and encoder are submodules, so they get an EMA copy
    too) and CUD's one-step stage. ``monitor(step, ema)`` is called every ``config.eval_every``
    steps and after the last one (learning curves); ``y`` is batched alongside ``x``.
    """
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model.requires_grad_(True)  # e.g. a student copied from a (frozen) EMA model
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=config.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config.steps, config.warmup))
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    history = []
    it = batches(x, y, config.batch_size, gen)
    model.train()
    start = time.perf_counter()
    for step in range(config.steps):
        xb, yb = next(it)
        loss = loss_fn(model, xb, yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        sched.step()
        ema_update(ema, model, config.ema_decay)
        history.append(float(loss.detach()))
        if (step + 1) % max(1, config.steps // 10) == 0:
            recent = sum(history[-50:]) / len(history[-50:])
            logger.info("  step %d/%d loss %.4f (%.1fs)", step + 1, config.steps, recent, time.perf_counter() - start)
        if monitor is not None and (step + 1 == config.steps or (config.eval_every and (step + 1) % config.eval_every == 0)):
            monitor(step + 1, ema)
    model.eval()
    return ema, history


def train_flow(model, x, config: FlowTrainConfig, *, y=None, monitor=None, verbose=None):
    """Train a rectified-flow teacher on images ``x`` (in [-1, 1]); returns (ema model, history)."""
    loss = FlowMatchingLoss(config.eps)
    return train_velocity(model, x, config, lambda m, xb, yb: loss(m, xb, yb), y=y, monitor=monitor, verbose=verbose)
