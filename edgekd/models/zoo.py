"""The MLPerf Tiny reference models and a MobileNetV2, written the way PyTorch code writes them.

Architectures follow the mlcommons/tiny training scripts (``benchmark/training/*``):

- ``dscnn_kws``: keyword spotting DS-CNN small, input (1, 49, 10) MFCCs, 12 classes, 2.66 M MACs.
- ``resnet8``: image classification ResNet-8, input (3, 32, 32), 16/32/64 filters, 10 classes, 12.5 M MACs.
- ``mobilenetv1_vww``: visual wake words MobileNetV1 alpha 0.25, input (3, 96, 96), 2 classes, 7.49 M MACs.
- ``fc_autoencoder``: anomaly detection, 640 -> 128 x4 -> 8 -> 128 x4 -> 640, 0.26 M MACs.
- ``mobilenetv2``: MobileNetV2 width 0.35 at (3, 96, 96) (inverted residuals, ReLU6), 2 classes.

They deliberately use the everyday idioms (``nn.ReLU(inplace=True)``, ``nn.AdaptiveAvgPool2d(1)``,
``x.mean((2, 3))``, ``torch.clamp`` as ReLU6, ``nn.BatchNorm1d`` after ``nn.Linear``,
``torch.flatten``, dropout): the export's canonicalization pass is what makes them deployable,
and these models are its test. Where PyTorch cannot say what Keras says, the deviation is named
in the class docstring. :data:`ZOO` gives each model's input shape and class count.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .registry import ModelConfig, register_model

# name -> (input shape, number of outputs); what the MLPerf Tiny benchmarks feed them
ZOO = {
    "dscnn_kws": ((1, 49, 10), 12),
    "resnet8": ((3, 32, 32), 10),
    "mobilenetv1_vww": ((3, 96, 96), 2),
    "fc_autoencoder": ((640,), 640),
    "mobilenetv2": ((3, 96, 96), 2),
}


def zoo_config(name: str, **options) -> ModelConfig:
    """The :class:`ModelConfig` of a zoo model at its reference input shape and class count."""
    shape, classes = ZOO[name]
    return ModelConfig(name, shape, classes, dict(options))


def zoo_model(name: str, seed: int = 0) -> nn.Module:
    """A seeded, untrained zoo model in eval mode, with trained-looking BatchNorm statistics.

    What benchmarks and export tests use: size and speed do not depend on the weights, and
    BatchNorm statistics other than (0, 1) make folding do real work.
    """
    from .registry import build_model

    torch.manual_seed(seed)
    model = build_model(zoo_config(name)).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.copy_(0.1 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
    return model


# ---- keyword spotting ---------------------------------------------------------------------------

class DSCNNKWS(nn.Module):
    """DS-CNN small: conv 64 (10x4) stride 2 + BN + ReLU, 4 x [depthwise 3x3 + BN + ReLU, pointwise
    64 + BN + ReLU], average pool, dense.

    Keras pads the 10x4 stride-2 conv 'same' (4 rows above, 5 below); PyTorch pads symmetrically,
    so padding (5, 1) keeps the 25x5 output map (and the MAC count) with the window shifted by one
    row. The final pool is Keras' ``AveragePooling2D((24, 5))`` (valid): it averages the first 24
    of the 25 rows, as in the reference model.
    """

    def __init__(self, input_shape=(1, 49, 10), num_classes=12, filters=64, blocks=4):
        super().__init__()
        cin, h, w = input_shape
        layers = [nn.Conv2d(cin, filters, (10, 4), stride=2, padding=(5, 1)), nn.BatchNorm2d(filters),
                  nn.ReLU(inplace=True), nn.Dropout(0.2)]
        for _ in range(blocks):
            layers += [nn.Conv2d(filters, filters, 3, padding=1, groups=filters), nn.BatchNorm2d(filters),
                       nn.ReLU(inplace=True),
                       nn.Conv2d(filters, filters, 1), nn.BatchNorm2d(filters), nn.ReLU(inplace=True)]
        layers.append(nn.Dropout(0.4))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AvgPool2d((h // 2, w // 2))  # the reference's final_pool_size, from the input shape
        self.fc = nn.Linear(filters, num_classes)

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.fc(torch.flatten(x, 1))


# ---- image classification ----------------------------------------------------------------------

class BasicBlock(nn.Module):
    """Two 3x3 convs with BN; a 1x1 strided conv shortcut when the shape changes (Keras' ResNet-8
    puts no BN on the shortcut)."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return self.relu(out)


class ResNet8(nn.Module):
    """ResNet-8 for CIFAR-10: conv 16 3x3 + BN + ReLU, stages of 16, 32, 64 filters (the last two
    stride 2), global average pool (8x8), dense."""

    def __init__(self, input_shape=(3, 32, 32), num_classes=10, widths=(16, 32, 64)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], widths[0], 3, padding=1), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        stages, cin = [], widths[0]
        for i, cout in enumerate(widths):
            stages.append(BasicBlock(cin, cout, stride=1 if i == 0 else 2))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.stages(self.stem(x))
        return self.fc(x.mean((2, 3)))


# ---- visual wake words -------------------------------------------------------------------------

def _conv_bn_relu(cin, cout, k=3, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class MobileNetV1(nn.Module):
    """MobileNetV1 (alpha 0.25 for VWW): conv 3x3 stride 2, 13 depthwise-separable blocks, global
    average pool, dense. Strides and widths at alpha 1: (1,64) (2,128) (1,128) (2,256) (1,256)
    (2,512) 5x(1,512) (2,1024) (1,1024), first conv 32."""

    BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512)) + ((1, 512),) * 5 + ((2, 1024), (1, 1024))

    def __init__(self, input_shape=(3, 96, 96), num_classes=2, alpha=0.25):
        super().__init__()
        c = int(32 * alpha)
        layers = _conv_bn_relu(input_shape[0], c, stride=2)
        for stride, width in self.BLOCKS:
            cout = int(width * alpha)
            layers += _conv_bn_relu(c, c, 3, stride, groups=c) + _conv_bn_relu(c, cout, 1)
            c = cout
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


# ---- anomaly detection -------------------------------------------------------------------------

class FCAutoencoder(nn.Module):
    """The ToyADMOS/DCASE autoencoder: 640 -> 128 x4 -> 8 -> 128 x4 -> 640, each hidden dense
    followed by BatchNorm1d and ReLU; the output dense is linear."""

    def __init__(self, input_shape=(640,), hidden=128, bottleneck=8, depth=4):
        super().__init__()
        features = math.prod(input_shape)
        widths = [features] + [hidden] * depth + [bottleneck] + [hidden] * depth
        layers = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(cin, cout), nn.BatchNorm1d(cout), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(hidden, features))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(torch.flatten(x, 1))


# ---- MobileNetV2 ------------------------------------------------------------------------------

def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled width to a multiple of ``divisor``, never dropping more than 10% (MobileNetV2)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ReLU6(nn.Module):
    """ReLU6 as user code often writes it (a clamp), not ``nn.ReLU6``."""

    def forward(self, x):
        return torch.clamp(x, 0, 6)


class InvertedResidual(nn.Module):
    """Expand 1x1 (ReLU6), depthwise 3x3 (ReLU6), project 1x1 (linear); residual when shapes match."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False),
                   nn.BatchNorm2d(hidden), nn.ReLU6(inplace=True),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) with a width multiplier; (t, c, n, s) as in the paper's
    Table 2; first conv 32 and last conv 1280 (not shrunk below width 1.0), dropout, dense."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1))

    def __init__(self, input_shape=(3, 96, 96), num_classes=2, width=0.35, last_channel=1280):
        super().__init__()
        c = make_divisible(32 * width)
        last = make_divisible(last_channel * max(1.0, width))
        layers = [nn.Conv2d(input_shape[0], c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                  nn.Hardtanh(0.0, 6.0, inplace=True)]
        for t, width_c, n, s in self.SETTINGS:
            cout = make_divisible(width_c * width)
            for i in range(n):
                layers.append(InvertedResidual(c, cout, s if i == 0 else 1, t))
                c = cout
        layers += [nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((1, 1))
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, num_classes))

    def forward(self, x):
        x = self.pool(self.features(x))
        return self.classifier(x.view(x.size(0), -1))


@register_model("dscnn_kws")
def dscnn_kws(input_shape, num_classes, filters=64, blocks=4):
    return DSCNNKWS(tuple(input_shape), num_classes, filters=filters, blocks=blocks)


@register_model("resnet8")
def resnet8(input_shape, num_classes, widths=(16, 32, 64)):
    return ResNet8(tuple(input_shape), num_classes, widths=tuple(widths))


@register_model("mobilenetv1_vww")
def mobilenetv1_vww(input_shape, num_classes, alpha=0.25):
    return MobileNetV1(tuple(input_shape), num_classes, alpha=alpha)


@register_model("fc_autoencoder")
def fc_autoencoder(input_shape, num_classes=None, hidden=128, bottleneck=8, depth=4):
    """``num_classes`` is ignored: the output has as many features as the input."""
    return FCAutoencoder(tuple(input_shape), hidden=hidden, bottleneck=bottleneck, depth=depth)


@register_model("mobilenetv2")
def mobilenetv2(input_shape, num_classes, width=0.35, last_channel=1280):
    return MobileNetV2(tuple(input_shape), num_classes, width=width, last_channel=last_channel)
