"""Augmented views for function matching (Beyer et al., CVPR 2022, "Knowledge distillation: A good
teacher is patient and consistent").

The student is trained to match the teacher's function on *views* of the training images (random
shifts, i.e. crops of a zero-padded image, and mixup of two images), and the teacher labels the
very view the student sees. On its own training images a teacher is nearly certain and its soft
targets carry little beyond the labels; on shifted and mixed images it is not, and those answers
are what the student learns from.

A view is a pure function of ``(Augment.seed, epoch, sample index)``: every arm and every seed of
a comparison sees the same views (so their difference is the method, not the augmentation), a
resumed run sees the views it would have seen, and the teacher's answers on an epoch's views can
be computed once (:func:`label_views`) and shared by all students instead of re-running the
teacher in every step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ViewPlan:
    """One epoch's views of ``n`` samples: sample i is shifted by ``offsets[i]`` and mixed with
    sample ``partner[i]`` (itself shifted by ``offsets[partner[i]]``) with weight ``lam[i]``."""

    offsets: torch.Tensor  # (n, 2) int64 in [0, 2 * shift]: top-left corner of the crop in the padded image
    partner: torch.Tensor  # (n,) int64
    lam: torch.Tensor  # (n,) float32 in [0, 1]; 1 everywhere when mixup is off


def view_plan(n: int, epoch: int, *, shift: int = 0, mixup: float = 0.0, seed: int = 0) -> ViewPlan:
    """The views of epoch ``epoch``: uniform shifts in [-shift, shift]^2, mixup partners and Beta(m, m) weights."""
    rng = np.random.default_rng([int(seed), int(epoch)])
    offsets = rng.integers(0, 2 * shift + 1, (n, 2)) if shift > 0 else np.zeros((n, 2), dtype=np.int64)
    if mixup > 0:
        partner, lam = rng.permutation(n), rng.beta(mixup, mixup, n)
    else:
        partner, lam = np.arange(n), np.ones(n)
    return ViewPlan(torch.as_tensor(offsets, dtype=torch.int64), torch.as_tensor(partner, dtype=torch.int64),
                    torch.as_tensor(lam, dtype=torch.float32))


def shift_images(x, offsets, max_shift: int):
    """Crop each image of ``x`` (N, C, H, W) out of its zero-padded copy at ``offsets`` (N, 2).

    Offset (max_shift, max_shift) is the identity; (0, 0) moves the content down and right by max_shift.
    """
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x, (max_shift, max_shift, max_shift, max_shift))
    rows = (offsets[:, 0:1] + torch.arange(h))[:, None, :, None]  # (N, 1, H, 1)
    cols = (offsets[:, 1:2] + torch.arange(w))[:, None, None, :]  # (N, 1, 1, W)
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def random_shift(x, max_shift: int, generator=None):
    """Translate each image by up to ``max_shift`` pixels in each direction, filling with zeros."""
    if max_shift <= 0 or x.dim() != 4:
        return x
    offsets = torch.randint(0, 2 * max_shift + 1, (len(x), 2), generator=generator)
    return shift_images(x, offsets, max_shift)


def make_views(x_all, y_all, idx, plan: ViewPlan, *, shift: int, num_classes: int, mixup: bool):
    """The views of samples ``idx`` and their targets.

    Targets are the labels (int64) without mixup, else the mixed one-hot labels
    ``lam * onehot(y_i) + (1 - lam) * onehot(y_partner)`` (float), which ``kd_loss`` accepts.
    """
    idx = torch.as_tensor(idx, dtype=torch.int64)
    views = shift_images(x_all[idx], plan.offsets[idx], shift) if x_all.dim() == 4 else x_all[idx]
    if not mixup:
        return views, y_all[idx]
    other = plan.partner[idx]
    other_views = shift_images(x_all[other], plan.offsets[other], shift) if x_all.dim() == 4 else x_all[other]
    lam = plan.lam[idx]
    mixed = lam.view(-1, *[1] * (views.dim() - 1)) * views + (1 - lam).view(-1, *[1] * (views.dim() - 1)) * other_views
    targets = lam[:, None] * F.one_hot(y_all[idx], num_classes).float() + \
        (1 - lam)[:, None] * F.one_hot(y_all[other], num_classes).float()
    return mixed, targets


@torch.no_grad()
def label_views(teacher, split, augment, epochs: int, num_classes: int, batch_size: int = 512, device="cpu"):
    """The teacher's logits on the views of ``split`` that a run of ``epochs`` epochs shows: a
    (``augment.distinct_epochs(epochs)``, N, classes) float32 tensor.

    What ``distill(..., view_logits=...)`` takes, so several students share one teacher pass.
    """
    teacher.eval().to(device)
    n = len(split)
    out = torch.empty(augment.distinct_epochs(epochs), n, num_classes)
    for epoch in range(len(out)):
        plan = view_plan(n, epoch, shift=augment.shift, mixup=augment.mixup, seed=augment.seed)
        for i in range(0, n, batch_size):
            idx = torch.arange(i, min(i + batch_size, n))
            views, _ = make_views(split.x, split.y, idx, plan, shift=augment.shift, num_classes=num_classes,
                                  mixup=augment.mixup > 0)
            out[epoch, i : i + len(idx)] = teacher(views.to(device)).float().cpu()
    return out
