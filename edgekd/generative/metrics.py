"""Sample quality and cost for image generators, with a feature extractor trained here.

No Inception weights can be downloaded, so the Frechet distance is computed in the 64-d
penultimate features of a small LeNet-style classifier trained on the same data: call it
"FD-LeNet", never FID (numbers are not comparable with published FIDs). Also: k-NN manifold
precision/recall (Kynkaanniemi et al. 2019) in the same feature space, class coverage from the
classifier's predictions, FLOPs counted by torch's FlopCounterMode and host latency per image.
"""
from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError


class LeNet(nn.Module):
    """conv-relu-pool x2, linear to 64 features, linear to classes (LeCun et al. 1998, shrunk)."""

    def __init__(self, input_shape=(1, 28, 28), num_classes=10, width=16, feature_dim=64):
        super().__init__()
        c, h, w = input_shape
        self.body = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(2 * width * (h // 4) * (w // 4), feature_dim), nn.ReLU())
        self.fc = nn.Linear(feature_dim, num_classes)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.fc(self.features(x))


def train_classifier(x, y, num_classes, *, epochs=15, batch_size=64, lr=2e-3, seed=0):
    """Train the FD-LeNet feature classifier on images in [0, 1]; returns the model (eval mode)."""
    torch.manual_seed(seed)
    model = LeNet(tuple(x.shape[1:]), num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def extract(model, x, batch_size=500):
    """(features, class probabilities) of images ``x`` in [0, 1], as float64 numpy arrays."""
    feats, probs = [], []
    for i in range(0, len(x), batch_size):
        f = model.features(x[i:i + batch_size])
        feats.append(f)
        probs.append(torch.softmax(model.fc(f), dim=1))
    return torch.cat(feats).double().numpy(), torch.cat(probs).double().numpy()


def feature_stats(features):
    """Mean and (unbiased) covariance of a feature matrix (N, D)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 2:
        raise DataError(f"feature_stats: expected an (N >= 2, D) matrix, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(m):
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2):
    """Frechet distance of two Gaussians (Dowson & Landau 1982; Heusel et al. 2017):
    |mu1 - mu2|^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)), with tr (C1 C2)^(1/2) = tr (A C2 A)^(1/2), A = C1^(1/2)."""
    a = _sqrt_psd(cov1)
    eig = np.linalg.eigvalsh(a @ cov2 @ a)
    tr_sqrt = np.sqrt(np.clip(eig, 0, None)).sum()
    diff = np.asarray(mu1) - np.asarray(mu2)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)


def fd(features_a, features_b):
    """Frechet distance between two feature sets (FD-LeNet when the features come from ``LeNet``)."""
    return frechet_distance(*feature_stats(features_a), *feature_stats(features_b))


def knn_radii(features, k=3):
    """Distance of each point to its k-th nearest neighbour in the same set (itself excluded)."""
    f = torch.as_tensor(features, dtype=torch.float64)
    d = torch.cdist(f, f)
    return d.kthvalue(k + 1, dim=1).values.numpy()


def precision_recall(real, fake, k=3):
    """Improved precision/recall (Kynkaanniemi et al. 2019): a sample counts when it falls inside
    some k-NN ball of the other set. Precision = fakes inside the real manifold, recall = reals
    inside the fake manifold."""
    real_t = torch.as_tensor(real, dtype=torch.float64)
    fake_t = torch.as_tensor(fake, dtype=torch.float64)
    r_real = torch.as_tensor(knn_radii(real, k))
    r_fake = torch.as_tensor(knn_radii(fake, k))
    d = torch.cdist(fake_t, real_t)  # (n_fake, n_real)
    precision = (d <= r_real[None, :]).any(dim=1).double().mean().item()
    recall = (d.T <= r_fake[None, :]).any(dim=1).double().mean().item()
    return precision, recall


def class_coverage(probs, num_classes, min_share=0.5):
    """Share of classes the classifier predicts for at least ``min_share / num_classes`` of samples,
    plus the class histogram and its normalised entropy (1 = uniform over classes)."""
    pred = np.asarray(probs).argmax(axis=1)
    hist = np.bincount(pred, minlength=num_classes) / max(1, len(pred))
    coverage = float((hist >= min_share / num_classes).mean())
    nz = hist[hist > 0]
    entropy = float(-(nz * np.log(nz)).sum() / np.log(num_classes))
    return coverage, entropy, hist.tolist()


def sample_report(classifier, images, ref_features, num_classes, k=3):
    """FD-LeNet, precision, recall, class coverage of generated ``images`` (in [0, 1]) vs a reference."""
    feats, probs = extract(classifier, images)
    precision, recall = precision_recall(ref_features, feats, k)
    coverage, entropy, hist = class_coverage(probs, num_classes)
    return {"fd": fd(feats, ref_features), "precision": precision, "recall": recall, "coverage": coverage,
            "class_entropy": entropy, "confidence": float(probs.max(axis=1).mean()), "n": len(images)}


def count_flops(fn, *inputs) -> int:
    """FLOPs of one call counted by ``torch.utils.flop_counter.FlopCounterMode`` (conv/matmul only;
    norms and activations are not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn(*inputs)
    return int(counter.get_total_flops())


def latency_ms(fn, *inputs, repeats=20, warmup=3) -> tuple[float, float]:
    """(median, minimum) wall time of ``fn(*inputs)`` on this host in milliseconds (caller sets
    threads). On a shared machine the minimum is the better estimate of the intrinsic cost."""
    with torch.no_grad():
        for _ in range(warmup):
            fn(*inputs)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(*inputs)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000), float(np.min(times) * 1000)
