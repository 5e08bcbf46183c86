"""DMD2: improved Distribution Matching Distillation (Yin et al., NeurIPS 2024, arXiv 2405.14867).

EDM's sigma language mapped to rectified flow (``flow.py``): EDM noises x to x + sigma * n; the
rectified-flow point x_t = t * n + (1 - t) * x is that point scaled by 1 - t, with
sigma = t / (1 - t), i.e. t = sigma / (1 + sigma). A velocity model's denoised estimate is
x0 = x_t - t * v(x_t, t). Noise levels are drawn as in the public code (tianweiy/DMD2,
``main/edm/edm_guidance.py``): from 1,000 Karras sigmas (sigma_min 0.002, sigma_max 80, rho 7,
ascending); the distribution-matching loss uses indices 20..980, the critic's denoising loss and
the GAN's noising all 1,000, and the critic's x0 error is weighted 1/sigma^2 + 1/sigma_data^2.

A generator is any module ``G(x_t, t) -> x0``: a velocity UNet wrapped in ``flow.Denoiser`` (the
teacher copy DMD2 starts from; evaluated at fixed times, e.g. t = 1 for one step or 1, 0.75,
0.5, 0.25 for four, re-noising its estimate with fresh noise between steps, DMD2 Sec. 4.4), or a
noise -> image network wrapped in ``flow.OneStepImage`` (the deployable generator).

Per iteration (two time-scale rule, as the public code orders it): generate a batch; every
``generator_every`` iterations the generator takes one step on the distribution-matching loss
plus the non-saturating GAN loss; then the fake-score critic takes one step on its denoising loss
on the (detached) batch plus the GAN classifier loss. No regression loss.
"""
from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import Config, register
from ..errors import ConfigError
from ..log import logger
from .flow import Denoiser, batches, denoise, ema_update, interpolate


# --- noise levels (EDM / k-diffusion) ---

def karras_sigmas(n: int = 1000, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022 eq. 5 noise levels, ascending (index 0 = sigma_min), as DMD2 stores them."""
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return ((hi + ramp * (lo - hi)) ** rho).flip(0).float()


def sigma_to_t(sigma):
    """EDM noise level -> rectified-flow time: x + sigma n, rescaled by 1 / (1 + sigma), is x_t at t = sigma / (1 + sigma)."""
    return sigma / (1 + sigma)


def edm_weight(sigma, sigma_data: float = 0.5):
    """EDM/DMD2 'karras' loss weight of the x0 error: 1 / sigma^2 + 1 / sigma_data^2."""
    return sigma.pow(-2) + 1.0 / sigma_data ** 2


def draw_sigmas(sigmas, b: int, lo: int, hi: int, generator=None):
    """b noise levels drawn uniformly from ``sigmas[lo..hi]`` (both ends included)."""
    idx = torch.randint(lo, hi + 1, (b,), generator=generator)
    return sigmas[idx]


# --- losses ---

def dmd_gradient(x, real_denoised, fake_denoised):
    """DMD2 distribution-matching gradient (Yin et al. 2024; tianweiy/DMD2 edm_guidance.py):
    (p_real - p_fake) / mean|p_real| per sample, with p = x - denoised(x_t)."""
    p_real = x - real_denoised
    p_fake = x - fake_denoised
    norm = p_real.abs().mean(dim=tuple(range(1, x.dim())), keepdim=True)
    return torch.nan_to_num((p_real - p_fake) / norm)


def dmd_loss(x, real_denoised, fake_denoised):
    """0.5 * MSE(x, stopgrad(x - grad)): its gradient w.r.t. x is grad / x.numel() (DMD2 Sec. 3)."""
    with torch.no_grad():
        grad = dmd_gradient(x, real_denoised, fake_denoised)
    return 0.5 * F.mse_loss(x, (x - grad).detach())


def critic_denoising_loss(critic, x, sigma, noise, sigma_data: float = 0.5):
    """The fake-score critic's loss: EDM-weighted x0 error, mean of (1/sigma^2 + 1/sigma_data^2) |x0_hat - x|^2,
    with the critic (a velocity model) evaluated at x_t, t = sigma / (1 + sigma)."""
    t = sigma_to_t(sigma)
    x0 = denoise(critic, interpolate(x, noise, t), t)
    w = edm_weight(sigma, sigma_data).reshape(-1, *([1] * (x.dim() - 1)))
    return (w * (x0 - x).pow(2)).mean()


def gan_critic_loss(real_logits, fake_logits):
    """Non-saturating GAN loss for the classifier (Goodfellow et al. 2014; DMD2 Sec. 4.3):
    softplus(-D(real)) + softplus(D(fake))."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def gan_generator_loss(fake_logits):
    """Non-saturating generator GAN loss: softplus(-D(G(z)))."""
    return F.softplus(-fake_logits).mean()


class GANHead(nn.Module):
    """Small classifier on the critic's bottleneck: conv, GroupNorm, SiLU, global pool, linear -> logit."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1), nn.GroupNorm(min(8, channels), channels), nn.SiLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, 1))

    def forward(self, bottleneck):
        return self.net(bottleneck).squeeze(1)


def critic_logits(critic, head, x, t, noise=None):
    """Noise ``x`` to time t, read the critic's bottleneck there, classify it (real vs generated)."""
    noise = torch.randn_like(x) if noise is None else noise
    return head(critic.bottleneck(interpolate(x, noise, t), t))


# --- generators ---

def _times(ts, b, like):
    return torch.full((b,), float(ts), dtype=like.dtype)


def generate(generator, noise, ts):
    """Few-step generator sampling (DMD2 Sec. 4.4): x0 = G(x_t, t), re-noise x0 to the next t."""
    x = noise
    for i, t in enumerate(ts):
        x0 = generator(x, _times(t, x.shape[0], x))
        if i + 1 < len(ts):
            x = interpolate(x0, torch.randn_like(x0), _times(ts[i + 1], x0.shape[0], x0))
    return x0


def backward_simulation(generator, noise, ts):
    """DMD2 backward simulation: run G for k steps without grad (k ~ U{0..K-1} per sample), then
    return G's output with grad from that input, so training sees the inputs inference sees."""
    b = noise.shape[0]
    inputs = [noise]
    with torch.no_grad():
        x = noise
        for i in range(len(ts) - 1):
            x0 = generator(x, _times(ts[i], b, x))
            x = interpolate(x0, torch.randn_like(x0), _times(ts[i + 1], b, x0))
            inputs.append(x)
    k = torch.randint(len(ts), (b,))
    x_in = torch.stack(inputs)[k, torch.arange(b)]
    t_in = torch.as_tensor(ts, dtype=noise.dtype)[k]
    return generator(x_in, t_in)


@register("dmd2")
@dataclass
class DMD2Config(Config):
    generator_ts: tuple[float, ...] = (1.0,)  # generator times; (1.0, 0.75, 0.5, 0.25) for 4 steps
    iterations: int = 3000             # critic updates
    generator_every: int = 5           # two time-scale rule: 1 generator update per 5 critic updates
    batch_size: int = 64
    lr_generator: float = 2e-4         # AdamW (betas 0.9, 0.999), linear warm-up, then constant
    lr_critic: float = 2e-4
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 10.0
    num_sigmas: int = 1000             # Karras noise levels (EDM units)
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    dmd_index_min: int = 20            # distribution matching uses indices 20..980 of 1000
    dmd_index_max: int = 980
    gan_index_max: int = 999           # GAN inputs noised at indices 0..999 ("diffusion GAN", max timestep 1000)
    sigma_data: float = 0.5
    gan_weight_critic: float = 1e-2
    gan_weight_generator: float = 3e-3
    ema_decay: float = 0.0             # EMA of generator weights per generator update (0 = off, as the public EDM code)
    eval_every: int = 0                # learning-curve points every this many iterations (0 = end only)
    seed: int = 4

    def validate(self):
        if not self.generator_ts or any(not 0 < t <= 1 for t in self.generator_ts):
            raise ConfigError(f"DMD2Config.generator_ts: expected times in (0, 1], got {self.generator_ts}")
        if list(self.generator_ts) != sorted(self.generator_ts, reverse=True):
            raise ConfigError(f"DMD2Config.generator_ts: expected decreasing times, got {self.generator_ts}")
        if self.generator_every < 1 or self.iterations < 1:
            raise ConfigError("DMD2Config: iterations and generator_every must be >= 1")
        if not 0 <= self.dmd_index_min <= self.dmd_index_max < self.num_sigmas:
            raise ConfigError(f"DMD2Config: need 0 <= dmd_index_min <= dmd_index_max < num_sigmas, got "
                              f"{self.dmd_index_min}, {self.dmd_index_max}, {self.num_sigmas}")
        if not 0 <= self.gan_index_max < self.num_sigmas:
            raise ConfigError(f"DMD2Config.gan_index_max: expected 0..{self.num_sigmas - 1}, got {self.gan_index_max}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"DMD2Config.ema_decay: expected 0 <= decay < 1, got {self.ema_decay}")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"DMD2Config: need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")


def _warmup(opt, steps):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps)))


def train_dmd2(teacher, x, config: DMD2Config, *, generator=None, critic=None, head=None, monitor=None, verbose=None):
    """Distil ``teacher`` (a velocity model) into a few-step generator with DMD2 on real data ``x``.

    ``generator``: a ``G(x_t, t) -> x0`` module; default ``Denoiser(copy of the teacher)``.
    ``critic``: a velocity model with ``bottleneck(x, t)``; default a copy of the teacher.
    ``head``: the GAN classifier on the critic's bottleneck; default ``GANHead``. The GAN terms are
    skipped when both GAN weights are 0. With ``config.ema_decay`` > 0 the returned (and monitored)
    generator is an EMA of the trained weights, updated after every generator step (the EDM code of
    DMD2 has none; a short CPU schedule oscillates more). ``monitor(iteration, generator)`` is called
    every ``config.eval_every`` iterations and after the last. Returns (generator, critic, head, history).
    """
    torch.manual_seed(config.seed)
    gen_rng = torch.Generator().manual_seed(config.seed)
    teacher = teacher.eval().requires_grad_(False)
    generator = (generator if generator is not None else Denoiser(copy.deepcopy(teacher))).train().requires_grad_(True)
    critic = (critic if critic is not None else copy.deepcopy(teacher)).train().requires_grad_(True)
    ema = copy.deepcopy(generator).eval().requires_grad_(False) if config.ema_decay > 0 else None
    use_gan = config.gan_weight_critic > 0 or config.gan_weight_generator > 0
    if use_gan and head is None:
        head = GANHead(critic.bottleneck_channels)
    opt_g = torch.optim.AdamW(generator.parameters(), lr=config.lr_generator, weight_decay=config.weight_decay)
    critic_params = list(critic.parameters()) + (list(head.parameters()) if use_gan else [])
    opt_c = torch.optim.AdamW(critic_params, lr=config.lr_critic, weight_decay=config.weight_decay)
    sched_g, sched_c = _warmup(opt_g, config.warmup), _warmup(opt_c, config.warmup)
    sigmas = karras_sigmas(config.num_sigmas, config.sigma_min, config.sigma_max, config.rho)
    ts = tuple(config.generator_ts)
    shape = tuple(x.shape[1:])
    real_iter = batches(x, None, config.batch_size, gen_rng)
    history = {"critic": [], "gan_critic": [], "dmd": [], "gan_generator": []}
    b = config.batch_size

    def gan_times(n):
        return sigma_to_t(draw_sigmas(sigmas, n, 0, config.gan_index_max))

    def set_critic_grad(flag):
        critic.requires_grad_(flag)
        if use_gan:
            head.requires_grad_(flag)

    start = time.perf_counter()
    for it in range(config.iterations):
        generator_turn = it % config.generator_every == 0
        # --- generator: distribution matching + non-saturating GAN loss ---
        if generator_turn:
            set_critic_grad(False)
            x_gen = backward_simulation(generator, torch.randn(b, *shape), ts)
            t = sigma_to_t(draw_sigmas(sigmas, b, config.dmd_index_min, config.dmd_index_max))
            x_t = interpolate(x_gen.detach(), torch.randn_like(x_gen), t)
            with torch.no_grad():
                real_den = denoise(teacher, x_t, t)
                fake_den = denoise(critic, x_t, t)
            loss_dmd = dmd_loss(x_gen, real_den, fake_den)
            loss_g = loss_dmd
            if use_gan:
                loss_gan_g = gan_generator_loss(critic_logits(critic, head, x_gen, gan_times(b)))
                loss_g = loss_g + config.gan_weight_generator * loss_gan_g
                history["gan_generator"].append(float(loss_gan_g.detach()))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            torch.nn.utils.clip_grad_norm_(generator.parameters(), config.grad_clip)
            opt_g.step()
            if ema is not None:
                ema_update(ema, generator, config.ema_decay)
            history["dmd"].append(float(loss_dmd.detach()))
            fake = x_gen.detach()
            set_critic_grad(True)
        else:
            with torch.no_grad():
                fake = backward_simulation(generator, torch.randn(b, *shape), ts)
        sched_g.step()
        # --- critic: EDM-weighted denoising loss on the detached samples + GAN classifier loss ---
        sigma = draw_sigmas(sigmas, b, 0, config.num_sigmas - 1)
        loss_c = critic_denoising_loss(critic, fake, sigma, torch.randn_like(fake), config.sigma_data)
        history["critic"].append(float(loss_c.detach()))
        if use_gan:
            real, _ = next(real_iter)
            loss_gan_c = gan_critic_loss(critic_logits(critic, head, real, gan_times(len(real))),
                                         critic_logits(critic, head, fake, gan_times(b)))
            loss_c = loss_c + config.gan_weight_critic * loss_gan_c
            history["gan_critic"].append(float(loss_gan_c.detach()))
        opt_c.zero_grad(set_to_none=True)
        loss_c.backward()
        torch.nn.utils.clip_grad_norm_(critic_params, config.grad_clip)
        opt_c.step()
        sched_c.step()
        if (it + 1) % max(1, config.iterations // 10) == 0:
            logger.info("  it %d/%d critic %.4f dmd %.5f (%.1fs)", it + 1, config.iterations, history["critic"][-1],
                        history["dmd"][-1] if history["dmd"] else float("nan"), time.perf_counter() - start)
        if monitor is not None and (it + 1 == config.iterations or (config.eval_every and (it + 1) % config.eval_every == 0)):
            generator.eval()
            monitor(it + 1, ema if ema is not None else generator)
            generator.train()
    generator.eval().requires_grad_(False)
    critic.eval().requires_grad_(False)
    return (ema if ema is not None else generator), critic, head, history
