"""A keyword-spotting CNN written the ordinary PyTorch way, as a user brings it to edgekd.

Nothing here is edgekd-specific: in-place ReLU, BatchNorm after every conv and after the linear
layer, ``torch.clamp`` as ReLU6, ``AdaptiveAvgPool2d``, dropout, ``torch.flatten``. Try it:

    python examples/byom/net.py byom          # writes byom/model.pt2, byom/cal.npy, byom/held.npy
    edgekd export examples/byom/net.py:make_model --input-shape 1,1,49,10 --calibration byom/cal.npy \
        --parity byom/held.npy --target all --out byom/exports
    edgekd export byom/model.pt2 --calibration byom/cal.npy --target c --out byom/from_pt2
    edgekd bench byom/exports --out byom/bench
"""
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn


class KeywordNet(nn.Module):
    def __init__(self, classes: int = 12, width: int = 32):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, (10, 4), stride=2, padding=(5, 1), bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        blocks = []
        for _ in range(2):
            blocks += [nn.Conv2d(width, width, 3, padding=1, groups=width, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True),
                       nn.Conv2d(width, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(width, 64)
        self.bn = nn.BatchNorm1d(64)
        self.head = nn.Linear(64, classes)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        x = torch.flatten(self.pool(x), 1)
        x = torch.clamp(self.bn(self.fc(self.drop(x))), 0, 6)  # relu6, as often written
        return self.head(x)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    model = KeywordNet()
    with torch.no_grad():  # untrained weights but BatchNorm statistics that are not the identity
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "byom")
    out.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(1)
    # stand-ins for MFCC frames: calibration and held-out parity inputs, (N, 1, 49, 10) float32
    np.save(out / "cal.npy", torch.randn(256, 1, 49, 10, generator=g).numpy())
    np.save(out / "held.npy", torch.randn(200, 1, 49, 10, generator=g).numpy())
    program = torch.export.export(make_model(), (torch.randn(1, 1, 49, 10),))
    torch.export.save(program, out / "model.pt2")
    print(f"wrote {out}/model.pt2, {out}/cal.npy, {out}/held.npy")
