"""A small time-conditioned UNet for velocity (rectified-flow) models, sized for CPU.

Layout (Ho et al. 2020 / Song et al. 2021 UNets, shrunk): sinusoidal time embedding -> MLP;
per level one residual block (GroupNorm, SiLU, 3x3 conv, time bias) and a stride-2 conv down;
two bottleneck blocks; a mirrored decoder with concatenated skips and nearest-neighbour
upsampling; a GroupNorm/SiLU/3x3-conv output head.

The forward pass is split into named pieces instead of mode flags, so other methods reuse it:
``embed(t, y)`` -> ``encode(x, emb)`` (bottleneck + skips, used by DMD2's GAN head) ->
``decode(...)`` (decoder features, used by CUD's auxiliary heads) -> ``head(features)``.
``OneStepGenerator`` freezes the time input (t = 1) into a constant for export.

Two architecture choices (constructor options, not forward flags): the default
``norm="group", act="silu", skip="cat"`` is the usual diffusion UNet; ``norm="none",
act="relu", skip="add"`` with a single level (``channels=(c,)``) uses only ops every export
target supports (conv2d, relu, add), so its ``OneStepGenerator`` (time embedding folded into
the conv biases) goes through ``firmware_export.export`` to ONNX, TFLite, TFLM and native C.
"""
from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, invalid_value
from .registry import register_model


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000), as in Vaswani et al. 2017 / DDPM."""
    t = torch.as_tensor(t, dtype=torch.float32).reshape(-1)
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = 1000.0 * t[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def _groups(channels: int) -> int:
    for g in (8, 4, 2, 1):
        if channels % g == 0:
            return g
    return 1


NORMS = ("group", "none")
ACTS = ("silu", "relu")
SKIPS = ("cat", "add")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.GroupNorm(_groups(channels), channels) if kind == "group" else nn.Identity()


def _act(kind: str) -> nn.Module:
    return nn.SiLU() if kind == "silu" else nn.ReLU()


class ResBlock(nn.Module):
    """norm-act-conv, add time bias, norm-act-conv, residual (1x1 conv if widths differ)."""

    def __init__(self, cin: int, cout: int, emb_dim: int, norm: str = "group", act: str = "silu"):
        super().__init__()
        self.norm1, self.act1 = _norm(norm, cin), _act(act)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, cout)
        self.norm2, self.act2 = _norm(norm, cout), _act(act)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def time_bias(self, emb):
        return self.emb(F.silu(emb))

    def forward(self, x, emb):
        h = self.conv1(self.act1(self.norm1(x)))
        h = h + self.time_bias(emb)[:, :, None, None]
        h = self.conv2(self.act2(self.norm2(h)))
        return self.skip(x) + h


class FoldedResBlock(nn.Module):
    """A ``ResBlock`` at one fixed time: the time bias is added to conv1's bias (no embedding input)."""

    def __init__(self, block: ResBlock, emb):
        super().__init__()
        self.norm1, self.act1, self.norm2, self.act2, self.skip = (
            copy.deepcopy(m) for m in (block.norm1, block.act1, block.norm2, block.act2, block.skip))
        self.conv1, self.conv2 = copy.deepcopy(block.conv1), copy.deepcopy(block.conv2)
        with torch.no_grad():
            self.conv1.bias += block.time_bias(emb).reshape(-1)

    def forward(self, x):
        h = self.conv2(self.act2(self.norm2(self.conv1(self.act1(self.norm1(x))))))
        return self.skip(x) + h


class Upsample(nn.Module):
    """Nearest-neighbour x2 then a 3x3 conv (avoids checkerboard artefacts of transposed convs)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class OutputHead(nn.Module):
    """norm (GroupNorm), act (SiLU), 3x3 conv to image channels: the velocity head and CUD's extra heads."""

    def __init__(self, channels: int, out_channels: int, norm: str = "group", act: str = "silu"):
        super().__init__()
        self.norm, self.act = _norm(norm, channels), _act(act)
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1)

    def forward(self, features):
        return self.conv(self.act(self.norm(features)))


class UNet(nn.Module):
    """Velocity model v(x, t[, y]); ``channels`` per resolution level (each level halves H, W)."""

    def __init__(self, input_shape=(1, 8, 8), channels=(32, 64), num_classes: int | None = None,
                 emb_dim: int | None = None, norm: str = "group", act: str = "silu", skip: str = "cat",
                 out_channels: int | None = None):
        super().__init__()
        c_in, h, w = input_shape
        levels = len(channels)
        if levels < 1 or any(c <= 0 for c in channels):
            raise ConfigError(f"UNet.channels: expected positive widths, got {channels}")
        for name, value, allowed in (("norm", norm, NORMS), ("act", act, ACTS), ("skip", skip, SKIPS)):
            if value not in allowed:
                raise ConfigError(f"UNet.{name}: " + invalid_value(name, allowed, value))
        self.norm_kind, self.act_kind, self.skip_kind = norm, act, skip
        if h % 2 ** (levels - 1) or w % 2 ** (levels - 1):
            raise ConfigError(
                f"UNet.input_shape: {h}x{w} must be divisible by 2**(levels-1) = {2 ** (levels - 1)} "
                f"for channels={tuple(channels)} (pad the images, e.g. 28 -> 32)")
        self.input_shape = tuple(input_shape)
        self.channels = tuple(channels)
        self.num_classes = num_classes
        self.base = channels[0]
        emb_dim = emb_dim or 4 * channels[0]
        self.time_mlp = nn.Sequential(nn.Linear(channels[0], emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_emb = nn.Embedding(num_classes, emb_dim) if num_classes else None
        self.stem = nn.Conv2d(c_in, channels[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        prev = channels[0]
        for i, c in enumerate(channels):
            self.down_blocks.append(ResBlock(prev, c, emb_dim, norm, act))
            if i < levels - 1:
                self.downsamples.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
            prev = c
        self.mid1 = ResBlock(prev, prev, emb_dim, norm, act)
        self.mid2 = ResBlock(prev, prev, emb_dim, norm, act)
        k = 2 if skip == "cat" else 1
        self.up_blocks = nn.ModuleList([ResBlock(k * c, c, emb_dim, norm, act) for c in channels])
        self.upsamples = nn.ModuleList([Upsample(channels[i], channels[i - 1]) for i in range(1, levels)])
        self.out_channels = out_channels or c_in  # e.g. 2 * c_in for CUD's encoder (mean and log-variance)
        self.out = OutputHead(channels[0], self.out_channels, norm, act)
        nn.init.zeros_(self.out.conv.weight)
        nn.init.zeros_(self.out.conv.bias)

    @property
    def feature_channels(self) -> int:
        return self.channels[0]

    @property
    def bottleneck_channels(self) -> int:
        return self.channels[-1]

    def embed(self, t, y=None):
        """Time (and optional class) embedding; scalar t gives a (1, D) row that broadcasts."""
        emb = self.time_mlp(timestep_embedding(t, self.base))
        if self.label_emb is not None and y is not None:
            emb = emb + self.label_emb(y)
        return emb

    def encode(self, x, emb):
        """Encoder and bottleneck: returns (bottleneck features, skip list)."""
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.down_blocks):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downsamples):
                h = self.downsamples[i](h)
        h = self.mid2(self.mid1(h, emb), emb)
        return h, skips

    def decode(self, h, skips, emb):
        """Decoder: returns the full-resolution features the output heads read."""
        for i in reversed(range(len(self.up_blocks))):
            h = self.up_blocks[i](self._merge(h, skips[i]), emb)
            if i > 0:
                h = self.upsamples[i - 1](h)
        return h

    def _merge(self, h, skip):
        return torch.cat([h, skip], dim=1) if self.skip_kind == "cat" else h + skip

    def bottleneck(self, x, t, y=None):
        """Bottleneck features at (x, t): what DMD2's GAN classifier reads."""
        return self.encode(x, self.embed(t, y))[0]

    def features(self, x, t, y=None):
        emb = self.embed(t, y)
        return self.decode(*self.encode(x, emb), emb)

    def head(self, features):
        return self.out(features)

    def forward(self, x, t, y=None):
        return self.head(self.features(x, t, y))


class AuxHeads(nn.Module):
    """CUD's extra-step predictors (Shao et al. 2023): ``n`` GroupNorm/SiLU/3x3-conv heads."""

    def __init__(self, channels: int, out_channels: int, n: int, norm: str = "group", act: str = "silu"):
        super().__init__()
        self.heads = nn.ModuleList([OutputHead(channels, out_channels, norm, act) for _ in range(n)])

    def __len__(self):
        return len(self.heads)

    def forward(self, features):
        return [head(features) for head in self.heads]


class OneStepGenerator(nn.Module):
    """noise -> image = noise - t * v(noise, t), t = 1: one Euler step over [1, 0], for export.

    The time (and class) embedding is folded into constants: each residual block's time bias is
    added to its first conv's bias and the factor -t into the output conv, so the graph holds only
    the UNet's image ops and one residual add (no embedding MLP, no time input). The noise skip
    goes through two 1x1 identity convs (``passthrough`` before the add, ``final`` after it): with
    a bare graph-input -> add -> graph-output the TFLite int8 quantizer leaves the input and output
    in float; with the convs the int8 graph is fully integer. In float they are exact identities.
    """

    def __init__(self, unet: UNet, t: float = 1.0, y: int | None = None):
        super().__init__()
        self.t = float(t)
        self.skip_kind = unet.skip_kind
        with torch.no_grad():
            emb = unet.embed(torch.tensor([self.t]), None if y is None else torch.tensor([y]))
        self.stem = copy.deepcopy(unet.stem)
        self.down_blocks = nn.ModuleList([FoldedResBlock(b, emb) for b in unet.down_blocks])
        self.downsamples = copy.deepcopy(unet.downsamples)
        self.mid1, self.mid2 = FoldedResBlock(unet.mid1, emb), FoldedResBlock(unet.mid2, emb)
        self.up_blocks = nn.ModuleList([FoldedResBlock(b, emb) for b in unet.up_blocks])
        self.upsamples = copy.deepcopy(unet.upsamples)
        self.out = copy.deepcopy(unet.out)
        c = unet.input_shape[0]
        if unet.out_channels != c:
            raise ConfigError(f"OneStepGenerator: the UNet outputs {unet.out_channels} channels, not the image's {c}")
        self.passthrough, self.final = nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 1)
        with torch.no_grad():
            self.out.conv.weight *= -self.t
            self.out.conv.bias *= -self.t
            for conv in (self.passthrough, self.final):
                conv.weight.copy_(torch.eye(c).reshape(c, c, 1, 1))
                conv.bias.zero_()

    def forward(self, noise):
        h = self.stem(noise)
        skips = []
        for i, block in enumerate(self.down_blocks):
            h = block(h)
            skips.append(h)
            if i < len(self.downsamples):
                h = self.downsamples[i](h)
        h = self.mid2(self.mid1(h))
        for i in reversed(range(len(self.up_blocks))):
            h = self.up_blocks[i](torch.cat([h, skips[i]], dim=1) if self.skip_kind == "cat" else h + skips[i])
            if i > 0:
                h = self.upsamples[i - 1](h)
        return self.final(self.passthrough(noise) + self.out(h))


@register_model("unet")
def unet(input_shape, num_classes, channels=(32, 64), class_cond=False, emb_dim=None, norm="group", act="silu",
         skip="cat", out_channels=None):
    return UNet(tuple(input_shape), tuple(channels), num_classes if class_cond else None, emb_dim, norm, act, skip,
                out_channels)
