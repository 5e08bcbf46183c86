"""DMD2: improved Distribution Matching Distillation (Yin et al., NeurIPS 2024, arXiv 2405.14867).

EDM's sigma language mapped to rectified flow (``flow.py``): a noisy sample at level t is
x_t = t * noise + (1 - t) * x, and a velocity model's denoised estimate is x0 = x_t - t * v.
The generator is a copy of the teacher UNet evaluated at fixed times (t = 1 for one step, or
e.g. 1, 0.75, 0.5, 0.25 for four), its output is its denoised estimate; between steps the
estimate is re-noised with fresh noise to the next time (DMD2 Sec. 4.4).

Per iteration (two time-scale rule): the fake-score critic (a copy of the teacher) takes one
denoising step on detached generator samples plus the GAN classifier loss; every
``generator_every`` iterations the generator takes one step on the distribution-matching loss
plus the non-saturating GAN loss. No regression loss.
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
from .flow import batches, call, denoise, interpolate


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
    """Noise ``x`` to time t, run the critic's encoder, classify its bottleneck (real vs generated)."""
    noise = torch.randn_like(x) if noise is None else noise
    h, _ = critic.encode(interpolate(x, noise, t), critic.embed(t))
    return head(h)


def generate(generator, noise, ts):
    """Few-step generator sampling (DMD2 Sec. 4.4): x0 = G(x_t, t), re-noise x0 to the next t."""
    x = noise
    for i, t in enumerate(ts):
        x0 = denoise(generator, x, float(t))
        if i + 1 < len(ts):
            x = interpolate(x0, torch.randn_like(x0), torch.full((x0.shape[0],), float(ts[i + 1])))
    return x0


def backward_simulation(generator, noise, ts):
    """DMD2 backward simulation: run G for k steps without grad (k ~ U{0..K-1} per sample), then
    return G's output with grad from that input, so training sees the inputs inference sees."""
    b = noise.shape[0]
    inputs = [noise]
    with torch.no_grad():
        x = noise
        for i in range(len(ts) - 1):
            x0 = denoise(generator, x, float(ts[i]))
            x = interpolate(x0, torch.randn_like(x0), torch.full((b,), float(ts[i + 1])))
            inputs.append(x)
    k = torch.randint(len(ts), (b,))
    x_in = torch.stack(inputs)[k, torch.arange(b)]
    t_in = torch.as_tensor(ts, dtype=noise.dtype)[k]
    return denoise(generator, x_in, t_in)


@register("dmd2")
@dataclass
class DMD2Config(Config):
    generator_ts: tuple[float, ...] = (1.0,)  # generator times; (1.0, 0.75, 0.5, 0.25) for 4 steps
    iterations: int = 600              # critic updates
    generator_every: int = 5           # two time-scale rule: 1 generator update per 5 critic updates
    batch_size: int = 64
    lr_generator: float = 1e-4         # AdamW
    lr_critic: float = 1e-4
    weight_decay: float = 0.01
    grad_clip: float = 10.0
    t_min: float = 0.02                # DMD noise levels (indices 20..980 of 1000 -> t in [0.02, 0.98])
    t_max: float = 0.98
    gan_weight_critic: float = 1e-2
    gan_weight_generator: float = 3e-3
    seed: int = 4

    def validate(self):
        if not self.generator_ts or any(not 0 < t <= 1 for t in self.generator_ts):
            raise ConfigError(f"DMD2Config.generator_ts: expected times in (0, 1], got {self.generator_ts}")
        if list(self.generator_ts) != sorted(self.generator_ts, reverse=True):
            raise ConfigError(f"DMD2Config.generator_ts: expected decreasing times, got {self.generator_ts}")
        if self.generator_every < 1 or self.iterations < 1:
            raise ConfigError("DMD2Config: iterations and generator_every must be >= 1")
        if not 0 <= self.t_min < self.t_max <= 1:
            raise ConfigError(f"DMD2Config: need 0 <= t_min < t_max <= 1, got {self.t_min}, {self.t_max}")


def train_dmd2(teacher, x, config: DMD2Config, *, verbose=None):
    """Distil ``teacher`` (a velocity UNet) into a few-step generator with DMD2 on real images ``x``.

    Returns (generator, critic, gan_head, history). The generator is initialised from the teacher.
    """
    torch.manual_seed(config.seed)
    gen_rng = torch.Generator().manual_seed(config.seed)
    teacher = teacher.eval().requires_grad_(False)
    generator = copy.deepcopy(teacher).train().requires_grad_(True)
    critic = copy.deepcopy(teacher).train().requires_grad_(True)
    head = GANHead(critic.bottleneck_channels)
    opt_g = torch.optim.AdamW(generator.parameters(), lr=config.lr_generator, weight_decay=config.weight_decay)
    critic_params = list(critic.parameters()) + list(head.parameters())
    opt_c = torch.optim.AdamW(critic_params, lr=config.lr_critic, weight_decay=config.weight_decay)
    ts = tuple(config.generator_ts)
    shape = tuple(x.shape[1:])
    real_iter = batches(x, None, config.batch_size, gen_rng)
    history = {"critic": [], "gan_critic": [], "dmd": [], "gan_generator": []}

    def noise_level(b):
        return config.t_min + (config.t_max - config.t_min) * torch.rand(b)

    start = time.perf_counter()
    for it in range(config.iterations):
        b = config.batch_size
        # --- critic: denoising loss on detached generator samples + GAN classifier loss ---
        with torch.no_grad():
            fake = backward_simulation(generator, torch.randn(b, *shape), ts)
        real, _ = next(real_iter)
        critic.requires_grad_(True)
        t = torch.rand(b) * (1 - 1e-5) + 1e-5
        noise = torch.randn_like(fake)
        loss_denoise = F.mse_loss(call(critic, interpolate(fake, noise, t), t), noise - fake)
        loss_gan_c = gan_critic_loss(critic_logits(critic, head, real, noise_level(len(real))),
                                     critic_logits(critic, head, fake, noise_level(b)))
        loss_c = loss_denoise + config.gan_weight_critic * loss_gan_c
        opt_c.zero_grad(set_to_none=True)
        loss_c.backward()
        torch.nn.utils.clip_grad_norm_(critic_params, config.grad_clip)
        opt_c.step()
        history["critic"].append(float(loss_denoise.detach()))
        history["gan_critic"].append(float(loss_gan_c.detach()))
        if (it + 1) % config.generator_every:
            continue
        # --- generator: distribution matching + non-saturating GAN loss ---
        critic.requires_grad_(False)
        x_gen = backward_simulation(generator, torch.randn(b, *shape), ts)
        t = noise_level(b)
        x_t = interpolate(x_gen.detach(), torch.randn_like(x_gen), t)
        with torch.no_grad():
            real_den = denoise(teacher, x_t, t)
            fake_den = denoise(critic, x_t, t)
        loss_dmd = dmd_loss(x_gen, real_den, fake_den)
        loss_gan_g = gan_generator_loss(critic_logits(critic, head, x_gen, noise_level(b)))
        loss_g = loss_dmd + config.gan_weight_generator * loss_gan_g
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        torch.nn.utils.clip_grad_norm_(generator.parameters(), config.grad_clip)
        opt_g.step()
        history["dmd"].append(float(loss_dmd.detach()))
        history["gan_generator"].append(float(loss_gan_g.detach()))
        if (it + 1) % max(1, config.iterations // 10) == 0:
            logger.info("  it %d/%d critic %.4f gan_c %.3f dmd %.5f gan_g %.3f (%.1fs)", it + 1, config.iterations,
                        history["critic"][-1], history["gan_critic"][-1], loss_dmd.item(), loss_gan_g.item(),
                        time.perf_counter() - start)
    generator.eval().requires_grad_(False)
    critic.eval().requires_grad_(False)
    return generator, critic, head, history
