import numpy as np
import pytest
import torch

from edgekd.distill import AlphaSchedule, Augment, KDConfig, distill, label_views, make_views, train_config, view_plan
from edgekd.distill.augment import random_shift, shift_images
from edgekd.errors import ConfigError, DataError
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


def test_shift_images_equals_a_crop_of_the_padded_image_done_by_hand():
    x = torch.arange(2 * 2 * 4 * 5, dtype=torch.float32).reshape(2, 2, 4, 5)
    offsets = torch.tensor([[0, 3], [2, 2]])  # sample 1: (shift, shift) is the identity
    out = shift_images(x, offsets, 2)
    padded = np.zeros((2, 2, 8, 9), dtype=np.float32)
    padded[:, :, 2:6, 2:7] = x.numpy()
    assert np.array_equal(out[0].numpy(), padded[0, :, 0:4, 3:8])  # content moves down 2 and left 1
    assert torch.equal(out[1], x[1])


def test_views_are_a_pure_function_of_seed_and_epoch_and_mixup_follows_beta():
    from scipy.stats import beta, kstest

    a, b = view_plan(4000, 3, shift=2, mixup=0.4, seed=7), view_plan(4000, 3, shift=2, mixup=0.4, seed=7)
    assert torch.equal(a.offsets, b.offsets) and torch.equal(a.partner, b.partner) and torch.equal(a.lam, b.lam)
    c = view_plan(4000, 4, shift=2, mixup=0.4, seed=7)
    assert not torch.equal(a.offsets, c.offsets) and not torch.equal(a.lam, c.lam)
    assert a.offsets.min() == 0 and a.offsets.max() == 4
    assert sorted(a.partner.tolist()) == list(range(4000))
    assert kstest(a.lam.numpy(), beta(0.4, 0.4).cdf).pvalue > 1e-3
    off = view_plan(10, 0, shift=1, mixup=0.0)
    assert torch.equal(off.lam, torch.ones(10)) and torch.equal(off.partner, torch.arange(10))


def test_mixed_views_and_targets_match_a_hand_computation():
    torch.manual_seed(0)
    x, y = torch.rand(6, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    plan = view_plan(6, 0, shift=1, mixup=1.0, seed=3)
    views, targets = make_views(x, y, torch.tensor([4, 1]), plan, shift=1, num_classes=3, mixup=True)
    for row, i in enumerate([4, 1]):
        j, lam = int(plan.partner[i]), float(plan.lam[i])
        xi = shift_images(x[i : i + 1], plan.offsets[i : i + 1], 1)[0]
        xj = shift_images(x[j : j + 1], plan.offsets[j : j + 1], 1)[0]
        torch.testing.assert_close(views[row], lam * xi + (1 - lam) * xj)
        want = np.zeros(3)
        want[int(y[i])] += lam
        want[int(y[j])] += 1 - lam
        np.testing.assert_allclose(targets[row].numpy(), want, rtol=1e-6)
    plain, labels = make_views(x, y, torch.tensor([4, 1]), plan, shift=1, num_classes=3, mixup=False)
    assert labels.dtype == torch.int64 and torch.equal(labels, y[[4, 1]])


def test_cosine_lr_runs_from_lr_to_zero_and_bad_augment_is_refused():
    cfg = train_config(lr=0.01, lr_schedule="cosine")
    assert cfg.lr_at(0.0) == pytest.approx(0.01)
    assert cfg.lr_at(0.5) == pytest.approx(0.005)
    assert cfg.lr_at(1.0) == pytest.approx(0.0, abs=1e-15)
    assert train_config(lr=0.01).lr_at(0.7) == 0.01
    with pytest.raises(ConfigError, match="Augment.shift"):
        Augment(shift=-1)
    with pytest.raises(ConfigError, match="Augment.mixup"):
        Augment(mixup=-0.5)


def _teacher(digits8):
    torch.manual_seed(0)
    cfg = ModelConfig("student_mlp", digits8.input_shape, 10, {"hidden": 32})
    teacher = build_model(cfg)
    distill(None, teacher, digits8, train_config(epochs=2, lr=1e-2))
    return teacher, cfg


def test_teacher_labels_exactly_the_view_the_student_sees(digits8):
    teacher, cfg = _teacher(digits8)
    student = build_model(cfg.replace(options={"hidden": 8}))
    seen = {"teacher": [], "student": []}
    teacher.register_forward_hook(lambda m, i, o: seen["teacher"].append(i[0].clone()))
    student.register_forward_hook(lambda m, i, o: seen["student"].append(i[0].clone()) if m.training else None)
    config = KDConfig(epochs=2, lr=1e-2, augment=Augment(shift=1, mixup=0.5), temperature=2.0,
                      alpha=AlphaSchedule("constant", 0.5, 0.5))
    distill(teacher, student, digits8, config)
    # no pass over the clean training images: every teacher call is on a training step's view
    steps = seen["student"]
    assert len(seen["teacher"]) == 1 + len(steps)  # 1: the input-shape check on two samples
    for t_in, s_in in zip(seen["teacher"][1:], steps):
        assert torch.equal(t_in, s_in)
    assert sum(len(s) for s in steps) == 2 * len(digits8.train)


def test_cached_view_logits_train_the_same_student_as_running_the_teacher(digits8):
    teacher, cfg = _teacher(digits8)
    aug = Augment(shift=1, mixup=0.3, seed=5)
    config = KDConfig(epochs=2, lr=1e-2, augment=aug, temperature=2.0, alpha=AlphaSchedule("constant", 1.0, 1.0))
    logits = label_views(teacher, digits8.train, aug, 2, 10)
    # an independent look at one view: the teacher on epoch 1's view of sample 17
    plan = view_plan(len(digits8.train), 1, shift=1, mixup=0.3, seed=5)
    view, _ = make_views(digits8.train.x, digits8.train.y, [17], plan, shift=1, num_classes=10, mixup=True)
    with torch.no_grad():
        torch.testing.assert_close(logits[1, 17], teacher(view)[0])
    students = []
    for cached in (None, logits):
        torch.manual_seed(1)
        s = build_model(cfg.replace(options={"hidden": 8}))
        distill(teacher, s, digits8, config, view_logits=cached)
        students.append(s)
    for a, b in zip(students[0].state_dict().values(), students[1].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    with pytest.raises(DataError, match="view_logits must have shape"):
        distill(teacher, build_model(cfg), digits8, config, view_logits=logits[:1])
    with pytest.raises(ConfigError, match="view_logits"):
        distill(teacher, build_model(cfg), digits8, config.replace(augment=Augment()), view_logits=logits)


def test_views_repeat_every_period_epochs_and_the_teacher_labels_them_once(digits8):
    teacher, cfg = _teacher(digits8)
    aug = Augment(shift=1, mixup=0.5, seed=2, period=2)
    assert [aug.view_epoch(e) for e in range(5)] == [0, 1, 0, 1, 0] and aug.distinct_epochs(5) == 2
    logits = label_views(teacher, digits8.train, aug, 5, 10)
    assert logits.shape == (2, len(digits8.train), 10)
    seen = []
    teacher.register_forward_hook(lambda m, i, o: seen.append(i[0].clone()))
    config = KDConfig(epochs=3, lr=1e-2, batch_size=len(digits8.train), augment=aug,
                      alpha=AlphaSchedule("constant", 1.0, 1.0))
    torch.manual_seed(1)
    distill(teacher, build_model(cfg.replace(options={"hidden": 8})), digits8, config)
    # one full batch per epoch: epoch 2 shows epoch 0's views (in its own order)
    first, third = seen[1], seen[3]
    assert not torch.equal(first, seen[2])
    assert sorted(map(tuple, first.flatten(1).tolist())) == sorted(map(tuple, third.flatten(1).tolist()))
    with pytest.raises(ConfigError, match="Augment.period"):
        Augment(period=-1)
