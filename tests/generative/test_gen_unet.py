"""The small UNet: shapes, split forward, folded one-step generator, export-friendly variant."""
import pytest
import torch

from edgekd.errors import ConfigError
from edgekd.generative.flow import get_ts, sample_euler
from edgekd.models.unet import AuxHeads, OneStepGenerator, UNet

MCU = dict(channels=(16,), norm="none", act="relu", skip="add")


def _randomised(m):
    torch.nn.init.normal_(m.out.conv.weight, std=0.2)  # the output conv starts at zero
    return m.eval()


@pytest.mark.parametrize("shape,kw", [((1, 8, 8), dict(channels=(8, 16))), ((1, 28, 28), dict(channels=(8, 8, 16))),
                                      ((1, 8, 8), MCU)])
def test_shapes_and_split_forward(shape, kw):
    torch.manual_seed(0)
    m = _randomised(UNet(shape, **kw))
    x, t = torch.randn(2, *shape), torch.tensor([0.3, 0.9])
    v = m(x, t)
    assert v.shape == x.shape
    feats = m.features(x, t)
    assert feats.shape == (2, m.feature_channels, *shape[1:])
    assert torch.equal(m.head(feats), v)
    h, skips = m.encode(x, m.embed(t))
    assert h.shape[1] == m.bottleneck_channels and len(skips) == len(kw["channels"])
    assert torch.equal(m.bottleneck(x, t), h)
    outs = AuxHeads(m.feature_channels, shape[0], 2)(feats)
    assert len(outs) == 2 and all(o.shape == x.shape for o in outs)


def test_time_and_class_conditioning_change_the_output():
    torch.manual_seed(0)
    m = _randomised(UNet((1, 8, 8), (8, 16), num_classes=10))
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(m(x, torch.tensor([0.1, 0.1])), m(x, torch.tensor([0.9, 0.9])))
        assert not torch.allclose(m(x, torch.rand(2), torch.tensor([1, 1])), m(x, torch.rand(2), torch.tensor([2, 2])))


@pytest.mark.parametrize("kw", [dict(channels=(8, 16)), MCU])
def test_one_step_generator_equals_one_euler_step(kw):
    torch.manual_seed(1)
    m = _randomised(UNet((1, 8, 8), **kw))
    z = torch.randn(4, 1, 8, 8)
    gen = OneStepGenerator(m).eval()
    with torch.no_grad():
        assert torch.allclose(gen(z), sample_euler(m, z, get_ts(1)), atol=1e-5)
    # the folded module has no time input and no embedding MLP
    assert not any("emb" in name or "time_mlp" in name for name, _ in gen.named_parameters())


def test_out_channels_for_an_encoder():
    m = UNet((1, 8, 8), (8, 16), out_channels=2)
    assert m(torch.randn(3, 1, 8, 8), torch.rand(3)).shape == (3, 2, 8, 8)
    with pytest.raises(ConfigError, match="channels"):
        OneStepGenerator(m)  # a 2-channel output is not an image step


def test_bad_shapes_and_options_are_refused():
    with pytest.raises(ConfigError, match="divisible"):
        UNet((1, 10, 10), (8, 16, 32))
    with pytest.raises(ConfigError, match="norm"):
        UNet((1, 8, 8), (8,), norm="batch")
