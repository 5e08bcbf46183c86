import math

import numpy as np
import pytest
import torch

from edgekd.distill import difficulty, easy_first, pool_size
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


def test_pool_grows_to_the_whole_set():
    sizes = [pool_size(100, e, 10, pacing="linear", start=0.2, saturate=0.5) for e in range(10)]
    assert sizes == sorted(sizes)
    assert sizes[0] == math.ceil(100 * (0.2 + 0.8 * 0.2))
    assert sizes[4:] == [100] * 6


def test_bad_difficulty_kind():
    with pytest.raises(ValueError, match="confidence"):
        difficulty(torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), "entropy")
