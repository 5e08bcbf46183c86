import math

import pytest
import torch

from edgekd.distill import AlphaSchedule, KDConfig, distill, evaluate, train_config
from edgekd.distill.augment import random_shift
from edgekd.errors import ConfigError
from edgekd.models import ModelConfig, build_model


def test_random_shift_translates_with_zero_fill():
    x = torch.zeros(200, 1, 5, 5)
    x[:, 0, 2, 2] = 1.0
    out = random_shift(x, 1, generator=torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out.sum(dim=(1, 2, 3)), torch.ones(200))  # the pixel moved, nothing else appeared
    where = {tuple((o[0] == 1).nonzero()[0].tolist()) for o in out}
    assert where == {(r, c) for r in (1, 2, 3) for c in (1, 2, 3)}  # every shift in [-1, 1]^2 occurs
    assert torch.equal(random_shift(x, 0), x)


def test_cosine_lr_runs_from_lr_to_zero():
    cfg = train_config(lr=0.01, lr_schedule="cosine")
    assert cfg.lr_at(0.0) == pytest.approx(0.01)
    assert cfg.lr_at(0.5) == pytest.approx(0.005)
    assert cfg.lr_at(1.0) == pytest.approx(0.0, abs=1e-15)
    assert train_config(lr=0.01).lr_at(0.7) == 0.01
    with pytest.raises(ConfigError, match="shift"):
        train_config(shift=-1)


def test_consistent_teaching_queries_the_teacher_on_shifted_views(digits8):
    torch.manual_seed(0)
    cfg = ModelConfig("student_mlp", digits8.input_shape, 10, {"hidden": 32})
    teacher = build_model(cfg)
    distill(None, teacher, digits8, train_config(epochs=3, lr=1e-2))
    calls = []
    teacher.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    student = build_model(cfg.replace(options={"hidden": 8}))
    config = KDConfig(epochs=2, lr=1e-2, shift=1, alpha=AlphaSchedule("constant", 0.5, 0.5), temperature=2.0)
    distill(teacher, student, digits8, config)
    n = len(digits8.train)
    # 2 samples for the input-shape check, all of them once for the precomputed logits, then the
    # shifted view of every training sample in each of the 2 epochs
    assert sum(calls) == 2 + n + 2 * n
    assert evaluate(student, digits8.test) > 0.5
