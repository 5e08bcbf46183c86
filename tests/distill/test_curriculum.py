import math

import numpy as np
import pytest
import torch

from edgekd.distill import Curriculum, KDConfig, AlphaSchedule, difficulty, distill, easy_first, paced_pool, pool_size
from edgekd.distill.curriculum import PACINGS


def test_easy_first_ranks_by_teacher_confidence_in_the_true_class():
    # sample 0: confident & right, 1: unsure, 2: confident & wrong, 3: fairly confident
    logits = torch.tensor([[5.0, 0.0], [0.1, 0.0], [0.0, 5.0], [2.0, 0.0]])
    y = torch.tensor([0, 0, 0, 0])
    assert easy_first(difficulty(logits, y, "confidence")).tolist() == [0, 3, 1, 2]
    assert easy_first(difficulty(logits, y, "loss")).tolist() == [0, 3, 1, 2]


def test_ties_keep_data_order():
    assert easy_first(np.array([1.0, 0.0, 1.0, 0.0])).tolist() == [1, 3, 0, 2]


def test_pacing_functions_at_ends():
    for name, fn in PACINGS.items():
        assert fn(0.0, 0.3) == pytest.approx(0.3), name
        assert fn(1.0, 0.3) == pytest.approx(1.0), name
    assert PACINGS["root"](0.5, 0.3) == pytest.approx(math.sqrt(0.09 + 0.91 * 0.5))


def test_pool_sizes_by_hand():
    # linear pacing, start 0.2, saturate 0.5 of 10 epochs: progress at the start of epoch e is e / 5,
    # so the fraction is 0.2 + 0.8 * e / 5 -> 20, 36, 52, 68, 84 samples of 100, then all of them
    sizes = [pool_size(100, e, 10, pacing="linear", start=0.2, saturate=0.5) for e in range(10)]
    assert sizes == [20, 36, 52, 68, 84, 100, 100, 100, 100, 100]
    # the first epoch uses exactly `start` of the set, whatever the pacing
    for pacing in PACINGS:
        assert pool_size(1000, 0, 7, pacing=pacing, start=0.35, saturate=0.9) == 350
    # root pacing, start 0.5, saturate 1.0 of 4 epochs: sqrt(0.25 + 0.75 * e / 4) of 64 samples, rounded up
    assert [pool_size(64, e, 4, pacing="root", start=0.5, saturate=1.0) for e in range(4)] == [32, 43, 51, 58]


def test_paced_pool_repeats_the_easiest_samples_to_a_full_epoch():
    order = np.array([3, 1, 4, 0, 2])
    assert paced_pool(order, 2, 5).tolist() == [3, 1, 3, 1, 3]
    assert paced_pool(order, 5, 5).tolist() == [3, 1, 4, 0, 2]


def test_a_curriculum_run_takes_as_many_steps_as_a_plain_run(digits8, monkeypatch):
    from edgekd.models import ModelConfig, build_model

    torch.manual_seed(0)
    cfg = ModelConfig("student_mlp", digits8.input_shape, 10, {"hidden": 8})
    teacher = build_model(cfg)
    calls = {"n": 0}
    real_step = torch.optim.Adam.step

    def counting_step(self, *a, **k):
        calls["n"] += 1
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    base = KDConfig(epochs=3, batch_size=100, alpha=AlphaSchedule("constant", 0.5, 0.5))
    distill(teacher, build_model(cfg), digits8, base)
    plain = calls["n"]
    calls["n"] = 0
    hist = distill(teacher, build_model(cfg), digits8, base.replace(curriculum=Curriculum("confidence", "linear", 0.3, 1.0)))
    n = len(digits8.train)
    assert plain == calls["n"] == 3 * math.ceil(n / 100)
    assert [e["pool"] for e in hist.epochs] == [math.ceil(0.3 * n), math.ceil((0.3 + 0.7 * (1 / 3)) * n),
                                                math.ceil((0.3 + 0.7 * (2 / 3)) * n)]


def test_bad_difficulty_kind():
    with pytest.raises(ValueError, match="confidence"):
        difficulty(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), "entropy")
