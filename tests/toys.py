"""Toy models for tests, built here (not from edgekd.models) so exporters are tested on foreign nets."""
import torch
from torch import nn


class AllOpsNet(nn.Module):
    """Every op the exporters support: conv, BN (folded), depthwise conv, relu, relu6, max/avg pool,
    residual add, flatten, linear. Input (1, 12, 12)."""

    def __init__(self, cin=1, width=4, num_classes=5, hw=12):
        super().__init__()
        self.conv = nn.Conv2d(cin, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.dw = nn.Conv2d(width, width, 3, padding=1, groups=width)
        self.relu6 = nn.ReLU6()
        self.maxpool = nn.MaxPool2d(2)
        self.pw = nn.Conv2d(width, 2 * width, 1)
        self.avgpool = nn.AvgPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2 * width * (hw // 4) ** 2, num_classes)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        x = x + self.relu6(self.dw(x))
        x = self.maxpool(x)
        x = self.avgpool(self.relu(self.pw(x)))
        return self.fc(self.flatten(x))


class GeluNet(nn.Module):
    """A net with one unsupported op (GELU) at a known layer name."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 8)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def tiny_mlp(in_features=16, hidden=16, num_classes=3):
    """Flatten + linear + relu + linear, for fast quantization tests."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def randomize_bn(model, seed=0):
    """Give BatchNorm layers non-trivial statistics so folding is actually tested."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model.eval()


def digits_cnn(width=8, num_classes=10):
    """A small conv net for 8x8 digits (conv, relu, maxpool, depthwise conv, relu6, flatten, linear)."""
    return nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(width, width, 3, padding=1, groups=width), nn.ReLU6(), nn.Flatten(),
                         nn.Linear(width * 16, num_classes))
