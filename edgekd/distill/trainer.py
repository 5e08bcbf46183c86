"""The ``distill`` verb: train a student from labels and a teacher's soft targets.

With ``teacher=None`` (or alpha fixed at 0) it is plain supervised training, so teachers and
baseline students go through the same loop. Resumable: with ``checkpoint=`` set, the state is
written atomically after every epoch and ``resume=True`` continues from it. Each epoch's data
order and dropout RNG derive from (seed, epoch), so a resumed run equals an uninterrupted one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import ConfigError, DataError
from ..log import is_verbose, logger, set_log_level
from .config import KDConfig
from .curriculum import difficulty, easy_first, pool_size
from .kd import feature_loss, kd_loss, soft_labels


@dataclass
class History:
    epochs: list = field(default_factory=list)  # one dict of metrics per epoch

    @property
    def final(self) -> dict:
        return self.epochs[-1] if self.epochs else {}

    def to_dict(self):
        return {"epochs": self.epochs}


@torch.no_grad()
def evaluate(model, split, batch_size=512, device="cpu") -> float:
    """Top-1 accuracy of ``model`` on a Split."""
    model.eval()
    correct = 0
    for i in range(0, len(split), batch_size):
        logits = model(split.x[i : i + batch_size].to(device))
        correct += (logits.argmax(-1).cpu() == split.y[i : i + batch_size]).sum().item()
    return correct / max(len(split), 1)


def _epoch_seed(seed, epoch):
    return (seed * 1_000_003 + epoch * 7919) % (2**63 - 1)


def _check_data(train, num_classes, name="train"):
    if len(train) == 0:
        raise DataError(f"{name} split is empty")
    classes = torch.unique(train.y)
    if len(classes) < 2:
        raise DataError(f"{name} split has a single class ({classes.tolist()}); a classifier needs at least 2")
    if not torch.isfinite(train.x).all():
        raise DataError(f"{name} split contains NaN or Inf inputs")


class _FeatureTaps:
    """Forward hooks that keep the outputs of named modules for the feature-matching loss."""

    def __init__(self, model, names, role):
        modules = dict(model.named_modules())
        self.outputs = {}
        self.handles = []
        for name in names:
            if name not in modules:
                raise ConfigError(f"KDConfig.feature_pairs: {role} has no module named {name!r}")
            self.handles.append(modules[name].register_forward_hook(self._keep(name)))

    def _keep(self, name):
        def hook(_module, _inputs, output):
            self.outputs[name] = output

        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def distill(teacher, student, data, config: KDConfig, *, device="cpu", checkpoint=None, resume=False,
            model_config=None, verbose=None) -> History:
    """Train ``student`` on ``data`` (a Splits) guided by ``teacher`` (or none) as ``config`` says."""
    set_log_level(verbose)
    if not isinstance(config, KDConfig):
        raise ConfigError(f"distill: config must be a KDConfig, got {type(config).__name__}")
    train, val = data.train, data.val
    _check_data(train, data.num_classes)
    uses_teacher = teacher is not None and (config.alpha.start > 0 or config.alpha.end > 0 or config.feature_weight > 0)
    if config.curriculum is not None and teacher is None:
        raise ConfigError("KDConfig.curriculum: a curriculum ranks samples by the teacher, but no teacher was given")

    student.to(device)
    teacher_logits = None
    if teacher is not None:
        teacher.to(device).eval()
        teacher_logits = soft_labels(teacher, train.x.to(device)).cpu()
    order = None
    if config.curriculum is not None:
        order = easy_first(difficulty(teacher_logits, train.y, by=config.curriculum.by))

    projections = nn.ModuleList()
    taps = None
    if config.feature_weight > 0:
        taps = (_FeatureTaps(student, [s for s, _ in config.feature_pairs], "student"),
                _FeatureTaps(teacher, [t for _, t in config.feature_pairs], "teacher"))
        projections = _build_projections(student, teacher, taps, config, train.x[:2].to(device))
        projections.to(device)

    params = list(student.parameters()) + list(projections.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    sizes = [_pool_len(len(train), e, config) for e in range(config.epochs)]
    steps_per_epoch = [int(np.ceil(s / config.batch_size)) for s in sizes]
    total_steps = max(sum(steps_per_epoch), 1)
    history = History()
    start_epoch = 0

    if checkpoint is not None and resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint)
        student.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if len(projections) and "projections" in state:
            projections.load_state_dict(state["projections"])
        history.epochs = list(state["history"])
        start_epoch = int(state["epoch"]) + 1
        logger.info(f"resumed from {checkpoint} after epoch {start_epoch}")

    step = sum(steps_per_epoch[:start_epoch])
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        gen = torch.Generator().manual_seed(_epoch_seed(config.seed, epoch))
        pool = torch.as_tensor(order[: sizes[epoch]]) if order is not None else torch.arange(len(train))
        perm = pool[torch.randperm(len(pool), generator=gen)]
        student.train()
        total_loss, alpha = 0.0, config.alpha(0.0)
        batches = range(0, len(perm), config.batch_size)
        bar = _progress(batches, f"epoch {epoch + 1}/{config.epochs}")
        for i in bar:
            idx = perm[i : i + config.batch_size]
            x, y = train.x[idx].to(device), train.y[idx].to(device)
            alpha = config.alpha(step / total_steps) if uses_teacher else 0.0
            logits = student(x)
            t_logits = teacher_logits[idx].to(device) if teacher_logits is not None else None
            loss = kd_loss(logits, t_logits, y, alpha=alpha, temperature=config.temperature)
            if taps is not None:
                with torch.no_grad():
                    teacher(x)
                for proj, (s_name, t_name) in zip(projections, config.feature_pairs):
                    loss = loss + config.feature_weight * feature_loss(
                        taps[0].outputs[s_name], taps[1].outputs[t_name], proj)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            total_loss += loss.item() * len(idx)
            step += 1
        metrics = {
            "epoch": epoch + 1,
            "loss": total_loss / len(perm),
            "alpha": alpha,
            "pool": len(perm),
            "val_accuracy": evaluate(student, val, device=device) if len(val) else float("nan"),
            "seconds": time.perf_counter() - t0,
        }
        history.epochs.append(metrics)
        logger.info("epoch {epoch:3d}  loss {loss:.4f}  alpha {alpha:.3f}  pool {pool:5d}  "
                    "val_acc {val_accuracy:.4f}  ({seconds:.1f}s)".format(**metrics))
        if checkpoint is not None:
            save_checkpoint(checkpoint, student.state_dict(), model_config=model_config, train_config=config,
                            optimizer=optimizer.state_dict(), epoch=epoch, history=history.epochs,
                            **({"projections": projections.state_dict()} if len(projections) else {}))
    if taps is not None:
        for t in taps:
            t.remove()
    student.eval()
    return history


def _pool_len(n, epoch, config):
    if config.curriculum is None:
        return n
    c = config.curriculum
    return pool_size(n, epoch, config.epochs, pacing=c.pacing, start=c.start, saturate=c.saturate)


def _build_projections(student, teacher, taps, config, x):
    """One linear map per feature pair, from student width to teacher width."""
    with torch.no_grad():
        student.eval(), teacher.eval()
        student(x), teacher(x)
    projections = nn.ModuleList()
    for s_name, t_name in config.feature_pairs:
        s, t = taps[0].outputs[s_name], taps[1].outputs[t_name]
        projections.append(nn.Linear(s.shape[1], t.shape[1], bias=False))
    return projections


def _progress(iterable, desc):
    if not is_verbose():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False)
