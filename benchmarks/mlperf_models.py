"""Local copies of the four MLPerf Tiny reference architectures, written with the ops today's export
takes (conv2d + BatchNorm2d folded, depthwise conv, linear, relu, avg_pool2d with an explicit kernel,
flatten, add). The model zoo (``edgekd.models.zoo``) replaces them once it lands; the shapes and MAC
counts are those of the mlcommons/tiny training scripts:

- ``dscnn``: keyword spotting DS-CNN small, 1x49x10 MFCC -> 12 (2.66 M MACs)
- ``resnet8``: image classification ResNet-8, 3x32x32 -> 10 (12.5 M MACs)
- ``mobilenet``: visual wake words MobileNetV1 alpha 0.25, 3x96x96 -> 2 (7.49 M MACs)
- ``fcae``: anomaly detection FC autoencoder, 640 -> 128x4 -> 8 -> 128x4 -> 640 (0.26 M MACs);
  the reference's BatchNorm1d after each hidden dense is left out (a per-feature affine map that
  folds into the dense layer; it changes no shape and no MAC count).

Weights are random (seeded) with BatchNorm statistics randomized so folding is exercised: speed,
size and exactness do not depend on trained values.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv_bn(cin, cout, k, stride=1, padding=0, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride=stride, padding=padding, groups=groups, bias=False),
                         nn.BatchNorm2d(cout))


class DSCNN(nn.Module):
    """DS-CNN small: conv 64 (10x4, stride 2) and four depthwise-separable blocks on 25x5, average pool, dense 12."""

    def __init__(self, filters=64, num_classes=12):
        super().__init__()
        self.stem = _conv_bn(1, filters, (10, 4), stride=2, padding=(5, 1))
        self.blocks = nn.ModuleList(
            nn.ModuleList([_conv_bn(filters, filters, 3, padding=1, groups=filters), _conv_bn(filters, filters, 1)])
            for _ in range(4))
        self.fc = nn.Linear(filters, num_classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        for dw, pw in self.blocks:
            x = F.relu(pw(F.relu(dw(x))))
        x = F.avg_pool2d(x, (24, 5))          # 25x5 -> 1x1, as the reference's pool of (49/2, 10/2)
        return self.fc(torch.flatten(x, 1))


class _ResBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.a = _conv_bn(cin, cout, 3, stride=stride, padding=1)
        self.b = _conv_bn(cout, cout, 3, padding=1)
        self.short = _conv_bn(cin, cout, 1, stride=stride) if stride != 1 or cin != cout else None

    def forward(self, x):
        y = self.b(F.relu(self.a(x)))
        return F.relu(y + (x if self.short is None else self.short(x)))


class ResNet8(nn.Module):
    """ResNet-8: conv 16, three residual stages of 16/32/64 filters, average pool 8, dense 10."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = _conv_bn(3, 16, 3, padding=1)
        self.stages = nn.Sequential(_ResBlock(16, 16, 1), _ResBlock(16, 32, 2), _ResBlock(32, 64, 2))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.stages(F.relu(self.stem(x)))
        return self.fc(torch.flatten(F.avg_pool2d(x, 8), 1))


MOBILENET_BLOCKS = ((1, 16), (2, 32), (1, 32), (2, 64), (1, 64), (2, 128), (1, 128), (1, 128), (1, 128),
                    (1, 128), (1, 128), (2, 256), (1, 256))


class MobileNetV1(nn.Module):
    """MobileNetV1 alpha 0.25 at 96x96: conv 8 (3x3, stride 2), 13 depthwise-separable blocks,
    average pool 3, dense 2."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.stem = _conv_bn(3, 8, 3, stride=2, padding=1)
        layers, cin = [], 8
        for stride, cout in MOBILENET_BLOCKS:
            layers.append(nn.ModuleList([_conv_bn(cin, cin, 3, stride=stride, padding=1, groups=cin),
                                         _conv_bn(cin, cout, 1)]))
            cin = cout
        self.blocks = nn.ModuleList(layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        for dw, pw in self.blocks:
            x = F.relu(pw(F.relu(dw(x))))
        return self.fc(torch.flatten(F.avg_pool2d(x, 3), 1))


class FCAutoencoder(nn.Module):
    """FC autoencoder: 640 -> 128 x4 -> 8 -> 128 x4 -> 640, ReLU after every hidden dense."""

    def __init__(self, n_in=640, hidden=128, code=8):
        super().__init__()
        sizes = [n_in, hidden, hidden, hidden, hidden, code, hidden, hidden, hidden, hidden, n_in]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


# name -> (constructor, input shape without batch)
MODELS = {
    "dscnn": (DSCNN, (1, 49, 10)),
    "resnet8": (ResNet8, (3, 32, 32)),
    "mobilenet": (MobileNetV1, (3, 96, 96)),
    "fcae": (FCAutoencoder, (640,)),
}


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics (so folding is exercised), eval mode."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def build(name: str, seed: int = 0) -> tuple[nn.Module, tuple]:
    """A seeded random instance of MLPerf Tiny model ``name`` and its input shape (no batch)."""
    if name not in MODELS:
        raise ValueError(f"Invalid value for the 'name' parameter. Allowed values are {sorted(MODELS)}, "
                         f"but got {name!r} instead.")
    cls, shape = MODELS[name]
    torch.manual_seed(seed)
    return randomize_bn(cls(), seed), shape
