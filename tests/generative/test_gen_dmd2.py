"""DMD2: distribution-matching gradient/loss and GAN losses on hand-computed cases; a tiny run."""
import math

import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.generative.dmd2 import (DMD2Config, GANHead, backward_simulation, critic_logits, dmd_gradient, dmd_loss,
                                    gan_critic_loss, gan_generator_loss, generate, train_dmd2)
from edgekd.generative.flow import get_ts, sample_euler
from edgekd.models.unet import UNet


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
    # no gradient flows into the denoised estimates
    r = real.clone().requires_grad_(True)
    dmd_loss(x, r, fake).backward()
    assert r.grad is None


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
        assert torch.allclose(generate(m, z, (1.0,)), sample_euler(m, z, get_ts(1)), atol=1e-6)
        out = backward_simulation(m, z, (1.0,))
        assert torch.allclose(out, generate(m, z, (1.0,)), atol=1e-6)


def test_backward_simulation_gives_gradients_and_multi_step_inputs():
    m, z = _unet(), torch.randn(6, 1, 8, 8)
    out = backward_simulation(m, z, (1.0, 0.75, 0.5, 0.25))
    assert out.shape == z.shape and out.requires_grad
    out.pow(2).mean().backward()
    assert m.stem.weight.grad is not None


def test_gan_head_reads_the_bottleneck():
    m = _unet()
    head = GANHead(m.bottleneck_channels)
    logits = critic_logits(m, head, torch.randn(5, 1, 8, 8), torch.rand(5))
    assert logits.shape == (5,)


def test_tiny_dmd2_run_trains_generator_not_teacher(digits8):
    x = digits8.train.x[:128] * 2 - 1
    teacher = _unet()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    cfg = DMD2Config(generator_ts=(1.0, 0.5), iterations=10, batch_size=8, generator_every=5)
    gen, critic, head, hist = train_dmd2(teacher, x, cfg)
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not torch.equal(gen.stem.weight, teacher.stem.weight)
    assert not torch.equal(critic.stem.weight, teacher.stem.weight)
    assert len(hist["critic"]) == 10 and len(hist["dmd"]) == 2  # two time-scale rule: 5 critic : 1 generator
    with torch.no_grad():
        assert torch.isfinite(generate(gen, torch.randn(4, 1, 8, 8), cfg.generator_ts)).all()


def test_config_validation():
    with pytest.raises(ConfigError, match="decreasing"):
        DMD2Config(generator_ts=(0.5, 1.0))
    with pytest.raises(ConfigError, match="generator_ts"):
        DMD2Config(generator_ts=(1.5,))
