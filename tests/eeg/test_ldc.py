"""LDC student: binary maths, accuracy on the synthetic set, KD/curriculum plumbing."""
import numpy as np
import pytest
import torch

from edgekd.distill import AlphaSchedule, Curriculum
from edgekd.errors import ConfigError, DataError
from edgekd.models.ldc import LDCClassifier, LDCNet, ldc_scores, pack_bits


def test_pack_bits_layout():
    bits = np.zeros((2, 40), dtype=bool)
    bits[0, 0] = bits[0, 33] = bits[1, 31] = True
    words = pack_bits(bits)
    assert words.dtype == np.uint32 and words.shape == (2, 2)
    assert words.tolist() == [[1, 2], [2**31, 0]]


def test_network_matches_bit_reference():
    """The training graph (bipolar products and signs) equals the XOR/majority/popcount reference."""
    torch.manual_seed(0)
    F, L, D, C = 7, 5, 48, 3
    net = LDCNet(F, L, D, C).eval()
    levels = torch.randint(0, L, (64, F))
    with torch.no_grad():
        sim = net.similarity(levels).numpy().astype(np.int64)
        bits = ((net.value_vectors() < 0).numpy(), (net.feature_latent < 0).numpy(), (net.class_latent < 0).numpy())
    np.testing.assert_array_equal(sim, ldc_scores(levels.numpy(), *bits))
    # and the reference against a direct per-sample loop
    V, Fb, Cb = bits
    lv = levels.numpy()[0]
    bound = np.array([V[lv[f]] ^ Fb[f] for f in range(F)])
    sample = bound.sum(0) * 2 > F
    assert [D - 2 * int((sample ^ Cb[c]).sum()) for c in range(C)] == sim[0].tolist()


def test_ldc_beats_chance_on_synthetic(levels_split):
    xtr, ytr, xte, yte = levels_split
    clf = LDCClassifier(dim=64, num_levels=8, epochs=30, seed=0).fit(xtr, ytr)
    acc = clf.score(xte, yte)
    assert acc > 0.7, acc  # chance is 0.5
    assert clf.value_bits_.shape == (8, 64) and clf.feature_bits_.shape == (xtr.shape[1], 64)
    assert clf.class_bits_.shape == (2, 64) and clf.model_bytes_ == (8 + xtr.shape[1] + 2) * 2 * 4
    proba = clf.predict_proba(xte)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(proba.argmax(1), clf.decision_function(xte).argmax(1))
    V = clf.value_bits_
    neighbours = np.mean([(V[i] ^ V[i + 1]).sum() for i in range(7)])
    assert neighbours < (V[0] ^ V[-1]).sum()  # neighbouring levels are more alike than the extremes


@pytest.mark.parametrize("dim", [16, 256])
def test_dimension_range(levels_split, dim):
    xtr, ytr, xte, yte = levels_split
    clf = LDCClassifier(dim=dim, epochs=5).fit(xtr, ytr)
    assert clf.decision_function(xte).shape == (len(xte), 2)
    assert np.abs(clf.decision_function(xte)).max() <= dim
    with pytest.raises(ConfigError, match="dim"):
        LDCClassifier(dim=dim * 4 if dim == 256 else 8).fit(xtr, ytr)


def test_kd_schedule_and_curriculum(levels_split):
    xtr, ytr, xte, yte = levels_split
    rng = np.random.default_rng(0)
    teacher = np.stack([-(ytr - 0.5) * 4, (ytr - 0.5) * 4], 1) + rng.normal(0, 2, (len(ytr), 2))
    sched = AlphaSchedule("exponential", 0.9, 0.1, rate=5.0)
    cur = Curriculum("confidence", "linear", 0.3, 0.8)
    clf = LDCClassifier(epochs=10, seed=0).fit(xtr, ytr, teacher_logits=teacher, alpha=sched, curriculum=cur)
    alphas = [h["alpha"] for h in clf.history_]
    pools = [h["pool"] for h in clf.history_]
    assert alphas == sorted(alphas, reverse=True) and alphas[0] > 0.6 and alphas[-1] < 0.15
    assert pools == sorted(pools) and pools[0] < len(xtr) and pools[-1] == len(xtr)
    assert clf.score(xte, yte) > 0.6
    with pytest.raises(ConfigError, match="curriculum"):
        LDCClassifier(epochs=1).fit(xtr, ytr, curriculum=cur)
    with pytest.raises(DataError, match="teacher_logits"):
        LDCClassifier(epochs=1).fit(xtr, ytr, teacher_logits=teacher[:5], alpha=0.5)


def test_bad_levels_and_sklearn_api(levels_split):
    from sklearn.base import clone

    xtr, ytr, xte, _ = levels_split
    clf = LDCClassifier(dim=32, epochs=2).fit(xtr, ytr)
    assert clone(clf).get_params()["dim"] == 32
    with pytest.raises(DataError, match="levels must be integers in 0..7"):
        clf.predict(xte.astype(int) + 8)
    with pytest.raises(DataError, match="features"):
        clf.predict(xte[:, :3])
