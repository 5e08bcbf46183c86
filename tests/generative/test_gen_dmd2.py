"""DMD2: noise levels, losses by hand, backward simulation, the GAN critic, and distribution matching
on a 2-D Gaussian mixture whose exact rectified-flow velocity is known in closed form."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from edgekd.errors import ConfigError
from edgekd.generative import metrics
from edgekd.generative.dmd2 import (DMD2Config, GANHead, backward_simulation, critic_denoising_loss, critic_logits,
                                    dmd_gradient, dmd_loss, draw_sigmas, edm_weight, gan_critic_loss,
                                    gan_generator_loss, generate, karras_sigmas, sigma_to_t, train_dmd2)
from edgekd.generative.flow import Denoiser, OneStepImage, get_ts, interpolate, sample_euler
from edgekd.models.unet import UNet


def test_karras_sigmas_closed_form():
    s = karras_sigmas(1000, 0.002, 80.0, 7.0)
    assert s[0].item() == pytest.approx(0.002, rel=1e-5) and s[-1].item() == pytest.approx(80.0, rel=1e-5)
    assert bool((s[1:] > s[:-1]).all())  # ascending: index 0 is the smallest sigma
    # index i of the ascending list is ramp value (999 - i) / 999 of eq. 5 (Karras et al. 2022)
    i = 500
    r = (999 - i) / 999
    expected = (80.0 ** (1 / 7) + r * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    assert s[i].item() == pytest.approx(expected, rel=1e-5)
    # the figure: DMD's indices 20..980 have median t about 0.72 (uniform t would give 0.5)
    t = sigma_to_t(s[20:981])
    assert t.median().item() == pytest.approx(0.72, abs=0.02)


def test_sigma_to_t_maps_edm_noising_onto_the_flow_path():
    x, n = torch.randn(3, 2), torch.randn(3, 2)
    sigma = torch.tensor([0.1, 1.0, 40.0])
    edm = x + sigma[:, None] * n  # EDM: x + sigma * n
    t = sigma_to_t(sigma)
    assert torch.allclose(edm / (1 + sigma[:, None]), interpolate(x, n, t), atol=1e-6)


def test_draw_sigmas_stays_inside_the_index_range():
    s = torch.arange(1000.0)
    drawn = draw_sigmas(s, 5000, 20, 980, generator=torch.Generator().manual_seed(0))
    assert drawn.min().item() == 20 and drawn.max().item() == 980  # both ends reachable, none outside


def test_critic_denoising_loss_hand_computed():
    # critic velocity v = 0.5 everywhere: x0_hat = x_t - t/2; loss = mean(w * (x0_hat - x)^2)
    x, n = torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, 2.0]])
    sigma = torch.tensor([1.0])  # t = 0.5
    loss = critic_denoising_loss(lambda a, t: torch.full_like(a, 0.5), x, sigma, n, sigma_data=0.5)
    x_t = 0.5 * n + 0.5 * x
    x0 = x_t - 0.25
    w = 1 / 1.0 ** 2 + 1 / 0.5 ** 2
    assert loss.item() == pytest.approx((w * (x0 - x) ** 2).mean().item(), rel=1e-6)
    assert edm_weight(torch.tensor(2.0), 0.5).item() == pytest.approx(0.25 + 4.0)


def test_dmd_gradient_hand_computed():
    x = torch.tensor([[1.0, 2.0]])
    real, fake = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    # p_real = [1, 2], p_fake = [0, 2], mean|p_real| = 1.5
    assert torch.allclose(dmd_gradient(x, real, fake), torch.tensor([[1 / 1.5, 0.0]]))
    # normalised per sample: a second sample with 10x larger residuals gets the same gradient
    x2 = torch.cat([x, 10 * x])
    g2 = dmd_gradient(x2, torch.zeros(2, 2), torch.cat([fake, 10 * fake]))
    assert torch.allclose(g2[0], g2[1])


def test_dmd_loss_gradient_is_the_dmd_direction():
    torch.manual_seed(0)
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    real, fake = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    grad = dmd_gradient(x.detach(), real, fake)
    loss = dmd_loss(x, real, fake)
    assert loss.item() == pytest.approx(0.5 * grad.pow(2).mean().item(), rel=1e-6)
    loss.backward()
    assert torch.allclose(x.grad, grad / x.numel(), atol=1e-8)  # descent moves x along -grad
    r = real.clone().requires_grad_(True)
    dmd_loss(x, r, fake).backward()
    assert r.grad is None  # no gradient flows into the denoised estimates


def test_gan_losses_hand_computed():
    zero = torch.zeros(4)
    assert gan_critic_loss(zero, zero).item() == pytest.approx(2 * math.log(2))
    assert gan_generator_loss(zero).item() == pytest.approx(math.log(2))
    assert gan_critic_loss(torch.full((2,), 20.0), torch.full((2,), -20.0)).item() < 1e-8
    assert gan_generator_loss(torch.tensor([1.0])).item() == pytest.approx(math.log1p(math.exp(-1.0)))


def _unet():
    torch.manual_seed(0)
    m = UNet((1, 8, 8), (8, 16))
    torch.nn.init.normal_(m.out.conv.weight, std=0.2)
    return m.eval()


def test_one_step_generate_equals_one_euler_step():
    m, z = _unet(), torch.randn(5, 1, 8, 8)
    with torch.no_grad():
        assert torch.allclose(generate(Denoiser(m), z, (1.0,)), sample_euler(m, z, get_ts(1)), atol=1e-6)
        assert torch.allclose(backward_simulation(Denoiser(m), z, (1.0,)), generate(Denoiser(m), z, (1.0,)), atol=1e-6)


class ConstantImage(nn.Module):
    """A generator whose estimate is always the constant image c; records the inputs it is called with."""

    def __init__(self, c):
        super().__init__()
        self.c, self.calls = c, []
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x_t, t):
        self.calls.append((x_t.detach().clone(), torch.as_tensor(t).detach().clone().expand(x_t.shape[0]),
                           torch.is_grad_enabled()))
        return self.w * torch.full_like(x_t, self.c)


def test_backward_simulation_feeds_the_generator_its_own_renoised_outputs():
    # inputs at t < 1 must be re-noised generator outputs: t * fresh noise + (1 - t) * c, with mean (1 - t) c
    # and std t per sample; pure noise (mean 0, std 1) would fail both checks
    torch.manual_seed(0)
    c = 3.0
    gen = ConstantImage(c)
    ts = (1.0, 0.75, 0.5, 0.25)
    out = backward_simulation(gen, torch.randn(64, 1, 16, 16), ts)
    x_in, t_in, with_grad = gen.calls[-1]
    assert with_grad and out.requires_grad  # the last call is the one the loss differentiates
    assert all(not g for _, _, g in gen.calls[:-1])  # the simulation itself runs without grad
    assert set(np.round(t_in.numpy(), 2)) == set(ts)  # k ~ U{0..3}: every step index occurs in 64 draws
    for x, t in zip(x_in, t_in):
        assert x.mean().item() == pytest.approx((1 - t.item()) * c, abs=0.25)
        assert x.std().item() == pytest.approx(t.item(), rel=0.2)


def test_gan_critic_separates_real_from_generated(digits8):
    # train the classifier head (and critic) on real digits vs the teacher's one-step blurry digits;
    # on fresh samples the logits must rank real above generated (AUC), which random logits would not
    torch.manual_seed(0)
    real = digits8.train.x[:512] * 2 - 1
    critic = UNet((1, 8, 8), (8, 16))
    head = GANHead(critic.bottleneck_channels)
    fake = real.mean(0, keepdim=True) + 0.3 * torch.randn(512, 1, 8, 8)  # the mean digit plus noise
    opt = torch.optim.Adam(list(critic.parameters()) + list(head.parameters()), lr=2e-3)
    t = torch.full((64,), 0.05)
    for step in range(60):
        idx = torch.randint(0, 400, (64,))
        loss = gan_critic_loss(critic_logits(critic, head, real[idx], t), critic_logits(critic, head, fake[idx], t))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        t_eval = torch.full((112,), 0.05)
        lr_, lf = critic_logits(critic, head, real[400:], t_eval), critic_logits(critic, head, fake[400:], t_eval)
    auc = (lr_[:, None] > lf[None, :]).double().mean().item()
    assert auc > 0.95
    assert loss.item() < 0.5 * 2 * math.log(2)  # well below the chance-level loss


# --- distribution matching on a 2-D Gaussian mixture with an exact teacher ---

MEANS = torch.tensor([[1.5, 1.5], [-1.5, 1.5], [1.5, -1.5], [-1.5, -1.5]])
STD = 0.3


class GMMVelocity(nn.Module):
    """Exact rectified-flow velocity of x ~ mixture of N(m_k, STD^2 I) (equal weights):
    x_t | k ~ N((1 - t) m_k, ((1 - t)^2 STD^2 + t^2) I); E[x | x_t] by Bayes; v = (x_t - E[x | x_t]) / t."""

    def forward(self, x_t, t):
        t = torch.as_tensor(t, dtype=x_t.dtype).reshape(-1, 1).expand(x_t.shape[0], 1)
        a = 1 - t
        var = a ** 2 * STD ** 2 + t ** 2
        diff = x_t[:, None, :] - a[:, None, :] * MEANS[None]
        resp = torch.softmax(-(diff ** 2).sum(-1) / (2 * var), dim=1)
        post = MEANS[None] + (a * STD ** 2 / var)[:, None, :] * diff
        x0 = (resp[..., None] * post).sum(1)
        return (x_t - x0) / t


class ResidualCritic(nn.Module):
    """Fake-score critic that starts equal to the teacher (DMD2 copies it): teacher + a zero-initialised MLP."""

    def __init__(self, teacher):
        super().__init__()
        self.teacher = teacher
        self.mlp = nn.Sequential(nn.Linear(3, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 2))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, x_t, t):
        t = torch.as_tensor(t, dtype=x_t.dtype).reshape(-1, 1).expand(x_t.shape[0], 1)
        return self.teacher(x_t, t) + self.mlp(torch.cat([x_t, t], dim=1))


def _gmm_samples(n, seed):
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, 4, (n,), generator=g)
    return MEANS[k] + STD * torch.randn(n, 2, generator=g)


def test_gmm_velocity_oracle_is_exact_at_the_ends():
    # t -> 1: x_t is pure noise, E[x | x_t] -> mixture mean 0, so v -> x_t; t -> 0 on a mode centre: v -> 0 direction
    x = torch.randn(5, 2)
    assert torch.allclose(GMMVelocity()(x, torch.full((5,), 1.0)), x, atol=1e-5)
    # Euler with many steps carries noise onto the modes (the oracle is a valid flow for this mixture)
    z = torch.randn(2000, 2, generator=torch.Generator().manual_seed(3))
    samples = sample_euler(GMMVelocity(), z, get_ts(200, t_min=1e-3))
    assert metrics.fd(samples.numpy(), _gmm_samples(2000, 4).numpy()) < 0.05


@pytest.mark.slow
def test_dmd2_moves_a_generator_onto_a_gaussian_mixture():
    torch.manual_seed(0)
    teacher = GMMVelocity()
    target = _gmm_samples(2000, 1)
    net = nn.Sequential(nn.Linear(2, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))
    gen = OneStepImage(net, (2,))
    z = torch.randn(2000, 2, generator=torch.Generator().manual_seed(2))

    def fd_now():
        with torch.no_grad():
            return metrics.fd(generate(gen, z, (1.0,)).numpy(), target.numpy())

    before = fd_now()
    cfg = DMD2Config(iterations=1500, generator_every=5, batch_size=256, lr_generator=1e-3, lr_critic=1e-3,
                     warmup=10, gan_weight_critic=0.0, gan_weight_generator=0.0, seed=0)
    train_dmd2(teacher, target, cfg, generator=gen, critic=ResidualCritic(teacher))
    after = fd_now()
    assert before > 3.0  # the untrained generator sits near the origin
    assert after < 0.2 * before and after < 1.0


def test_tiny_dmd2_run_trains_generator_not_teacher(digits8):
    x = digits8.train.x[:128] * 2 - 1
    teacher = _unet()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    cfg = DMD2Config(generator_ts=(1.0, 0.5), iterations=10, batch_size=8, generator_every=5, warmup=1)
    gen, critic, head, hist = train_dmd2(teacher, x, cfg)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not torch.equal(gen.velocity.stem.weight, teacher.stem.weight)
    assert not torch.equal(critic.stem.weight, teacher.stem.weight)
    assert len(hist["critic"]) == 10 and len(hist["dmd"]) == 2  # two time-scale rule: 5 critic : 1 generator
    assert len(hist["gan_critic"]) == 10 and len(hist["gan_generator"]) == 2


def test_config_validation():
    with pytest.raises(ConfigError, match="decreasing"):
        DMD2Config(generator_ts=(0.5, 1.0))
    with pytest.raises(ConfigError, match="generator_ts"):
        DMD2Config(generator_ts=(1.5,))
    with pytest.raises(ConfigError, match="dmd_index"):
        DMD2Config(dmd_index_max=1000)
