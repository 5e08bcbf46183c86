"""A one-step image generator made of ops every export target runs: flatten, linear, ReLU, add.

noise (N, C, H, W) -> flatten -> linear -> act -> [h = act(h + linear(h))] x depth -> linear ->
image, returned flat as (N, C * H * W). Flat output on purpose: a reshape back to rank 4
is not in today's export op list, and the caller (``dmd2.OneStepImage``, the evaluation) reshapes.
No normalization (nothing to fold, and BatchNorm statistics of generated batches drift while
DMD2 trains). ``act="silu"`` writes SiLU as ``x * torch.sigmoid(x)`` (LOGISTIC and MUL in
TFLite) for targets that have those ops; the default ReLU runs everywhere today.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError, invalid_value
from .registry import register_model

ACTS = ("relu", "silu")


class SiLUAsMul(nn.Module):
    """x * sigmoid(x), written so the exporter emits LOGISTIC and MUL (not a fused SiLU/HARD_SWISH)."""

    def forward(self, x):
        return x * torch.sigmoid(x)


class MLPGenerator(nn.Module):
    """noise -> image with residual linear blocks; ``hidden`` units, ``depth`` residual blocks."""

    def __init__(self, input_shape=(1, 8, 8), hidden: int = 256, depth: int = 2, act: str = "relu"):
        super().__init__()
        if act not in ACTS:
            raise ConfigError("MLPGenerator.act: " + invalid_value("act", ACTS, act))
        if hidden < 1 or depth < 0:
            raise ConfigError(f"MLPGenerator: expected hidden >= 1 and depth >= 0, got {hidden}, {depth}")
        self.input_shape = tuple(input_shape)
        d = math.prod(self.input_shape)
        make_act = nn.ReLU if act == "relu" else SiLUAsMul
        self.flatten = nn.Flatten()
        self.inp = nn.Linear(d, hidden)
        self.act_in = make_act()
        # add-then-activate residual blocks: the int8 quantizer keeps linear -> add -> act integer
        # (an add fed by a linear output that also feeds an activation was left in float)
        self.blocks = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(depth)])
        self.acts = nn.ModuleList([make_act() for _ in range(depth)])
        self.out = nn.Linear(hidden, d)

    def forward(self, noise):
        h = self.act_in(self.inp(self.flatten(noise)))
        for linear, act in zip(self.blocks, self.acts):
            h = act(h + linear(h))
        return self.out(h)


@register_model("mlp_generator")
def mlp_generator(input_shape, num_classes=None, hidden=256, depth=2, act="relu"):
    return MLPGenerator(tuple(input_shape), hidden, depth, act)
