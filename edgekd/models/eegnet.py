"""EEGNet (Lawhern et al. 2018, J. Neural Eng. 15:056013), the EEG teacher, on raw epochs.

Input (N, 1, channels, times). Blocks: temporal conv (F1 filters, length ~ sfreq/2) -> BN ->
depthwise spatial conv (D filters per temporal filter, across all channels) -> BN -> ReLU ->
avg pool 4 -> dropout -> separable conv (depthwise temporal 16-ish + pointwise F2) -> BN -> ReLU
-> avg pool 8 -> dropout -> flatten -> linear.

Deviations from the paper, so every export target can run it: ReLU instead of ELU, no max-norm
weight constraint, odd kernel lengths with symmetric padding (same length out). Every op is in
the exportable set (conv2d, depthwise conv2d, BatchNorm2d which folds into the preceding conv,
ReLU, avg pool, flatten, linear). Dropout is applied functionally while training only, so the
eval-mode graph that exporters trace holds no dropout node.
"""
import torch.nn.functional as F
from torch import nn

from .registry import register_model


class EEGNet(nn.Module):
    def __init__(self, input_shape=(1, 16, 160), num_classes=2, F1=8, D=2, F2=16, kernel_length=41,
                 separable_length=15, pool1=4, pool2=8, dropout=0.25):
        super().__init__()
        _, chans, times = input_shape
        k1, k2 = kernel_length | 1, separable_length | 1  # odd, so padding k//2 keeps the length
        self.temporal = nn.Conv2d(1, F1, (1, k1), padding=(0, k1 // 2), bias=False)
        self.bn1 = nn.BatchNorm2d(F1)
        self.spatial = nn.Conv2d(F1, F1 * D, (chans, 1), groups=F1, bias=False)
        self.bn2 = nn.BatchNorm2d(F1 * D)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.AvgPool2d((1, pool1))
        self.separable_dw = nn.Conv2d(F1 * D, F1 * D, (1, k2), padding=(0, k2 // 2), groups=F1 * D, bias=False)
        self.separable_pw = nn.Conv2d(F1 * D, F2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(F2)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d((1, pool2))
        self.dropout = float(dropout)
        self.flatten = nn.Flatten()
        out_times = times // pool1 // pool2
        if out_times < 1:
            raise ValueError(f"EEGNet: {times} samples are too few for pooling by {pool1} x {pool2}")
        self.head = nn.Linear(F2 * out_times, num_classes)

    def forward(self, x):
        x = self.bn2(self.spatial(self.bn1(self.temporal(x))))
        x = F.dropout(self.pool1(self.relu1(x)), self.dropout, self.training)
        x = self.bn3(self.separable_pw(self.separable_dw(x)))
        x = F.dropout(self.pool2(self.relu2(x)), self.dropout, self.training)
        return self.head(self.flatten(x))


@register_model("eegnet")
def eegnet(input_shape, num_classes, **options):
    return EEGNet(tuple(input_shape), num_classes, **options)
