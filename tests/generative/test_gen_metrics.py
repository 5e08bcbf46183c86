"""FD-LeNet and friends: Frechet distance vs scipy, self/shifted sets, k-NN precision/recall, FLOPs."""
import numpy as np
import pytest
import torch

from edgekd.generative import metrics


def _scipy_fd(a, b):
    from scipy import linalg

    mu1, mu2 = a.mean(0), b.mean(0)
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(c1 @ c2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(c1 + c2 - 2 * covmean))


def test_fd_matches_scipy_reference_on_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(loc=0.5, size=(300, 6)) @ rng.normal(size=(6, 6))
    assert metrics.fd(a, b) == pytest.approx(_scipy_fd(a, b), rel=1e-6)


def test_fd_self_is_zero_and_shift_is_squared_norm():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(500, 5))
    assert abs(metrics.fd(a, a)) < 1e-8
    shift = np.array([1.0, -2.0, 0.0, 0.5, 0.0])
    assert metrics.fd(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    assert metrics.fd(a, 2 * a) > 1.0  # scaled covariance


def test_precision_recall_extremes():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(200, 4))
    assert metrics.precision_recall(a, a.copy(), k=3) == (1.0, 1.0)
    p, r = metrics.precision_recall(a, a + 100.0, k=3)
    assert p == 0.0 and r == 0.0
    # a generator that covers only half of the real set: high precision, low recall
    half = a[a[:, 0] > 0]
    p, r = metrics.precision_recall(a, half, k=3)
    assert p == 1.0 and r < 0.8


def test_class_coverage_hand_computed():
    probs = np.eye(4)[[0, 0, 0, 1, 1, 2, 0, 0]]  # classes 0 (5x), 1 (2x), 2 (1x), 3 (0x)
    cov, ent, hist = metrics.class_coverage(probs, 4, min_share=0.5)  # needs share >= 1/8
    assert hist == [5 / 8, 2 / 8, 1 / 8, 0.0]
    assert cov == 0.75
    assert 0 < ent < 1
    assert metrics.class_coverage(np.eye(4), 4)[1] == pytest.approx(1.0)


def test_flop_counter_on_linear_and_conv():
    lin = torch.nn.Linear(10, 20)
    assert metrics.count_flops(lin, torch.randn(1, 10)) == 2 * 10 * 20
    conv = torch.nn.Conv2d(1, 4, 3, padding=1)
    assert metrics.count_flops(conv, torch.randn(1, 1, 8, 8)) == 2 * 4 * 9 * 64


def test_feature_classifier_learns_digits(digits8):
    clf = metrics.train_classifier(digits8.train.x, digits8.train.y, 10, epochs=4)
    with torch.no_grad():
        acc = (clf(digits8.test.x).argmax(1) == digits8.test.y).double().mean().item()
    assert acc > 0.7  # chance is 0.1
    feats, probs = metrics.extract(clf, digits8.test.x)
    assert feats.shape == (len(digits8.test.x), 64) and np.allclose(probs.sum(1), 1)
    # real held-out digits are closer to the training set than noise images are
    ref, _ = metrics.extract(clf, digits8.train.x)
    noise = torch.rand(len(digits8.test.x), 1, 8, 8)
    real = metrics.sample_report(clf, digits8.test.x, ref, 10)
    fake = metrics.sample_report(clf, noise, ref, 10)
    assert real["fd"] < fake["fd"] and real["precision"] > fake["precision"]
