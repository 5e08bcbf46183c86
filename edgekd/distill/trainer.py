"""The ``distill`` verb: train a student from labels and a teacher's soft targets.

With ``teacher=None`` (or alpha fixed at 0) it is plain supervised training, so teachers and
baseline students go through the same loop.

Resumable: with ``checkpoint=`` set, the full state (model, optimizer, epoch/step, RNG states,
curriculum position) is written atomically after every epoch, and every ``checkpoint_every``
steps inside one; ``resume=True`` continues from it. Each epoch's data order derives from
(seed, epoch), so a resumed run equals an uninterrupted one bit for bit.

Scales out: under ``torchrun`` each process trains on its shard of every global batch with
DistributedDataParallel, and the per-rank losses are weighted so one step equals the
single-process full-batch step (see :mod:`edgekd.distributed`). Only rank 0 writes checkpoints.
"""
from __future__ import annotations

import contextlib
import hashlib
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import distributed
from ..checkpoint import load_checkpoint, save_checkpoint
from ..errors import CheckpointError, ConfigError, DataError
from ..log import logger, set_log_level, show_progress
from .config import KDConfig
from .augment import make_views, view_plan
from .curriculum import difficulty, easy_first, paced_pool, pool_size
from .kd import feature_loss, kd_loss, soft_labels

PRECISIONS = ("fp32", "bf16")


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
    if not torch.is_floating_point(train.x):
        raise DataError(f"{name} split: inputs must be floating point (float32), got {train.x.dtype}")
    if train.y.dtype != torch.int64 or train.y.dim() != 1:
        raise DataError(f"{name} split: labels must be a 1-D int64 tensor, got {train.y.dtype} "
                        f"of shape {tuple(train.y.shape)}")
    classes = torch.unique(train.y)
    if len(classes) < 2:
        raise DataError(f"{name} split has a single class ({classes.tolist()}); a classifier needs at least 2")
    if classes.min() < 0 or classes.max() >= num_classes:
        raise DataError(f"{name} split: labels must be in [0, {num_classes}), found {classes.min().item()}.."
                        f"{classes.max().item()}")
    if not torch.isfinite(train.x).all():
        raise DataError(f"{name} split contains NaN or Inf inputs")


@torch.no_grad()
def _check_fits(model, x, num_classes, role, model_config=None):
    """One forward on two samples: inputs the model cannot take fail here, with a clear message."""
    shape = tuple(x.shape[1:])
    if model_config is not None and role == "student" and tuple(model_config.input_shape) != shape:
        raise DataError(f"train split: inputs have shape {shape} per sample, but the {role} "
                        f"({model_config.name}) expects {tuple(model_config.input_shape)}")
    was_training = model.training
    model.eval()
    try:
        out = model(x[:2])
    except (RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"train split: inputs of shape {shape} per sample do not fit the {role} ({first})") from None
    finally:
        model.train(was_training)
    if out.dim() != 2 or out.shape[1] != num_classes:
        raise DataError(f"the {role} outputs {tuple(out.shape[1:])} per sample, but the data has {num_classes} classes")


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


class _Trainable(nn.Module):
    """Student plus feature projections: one module, so DDP averages every trained parameter."""

    def __init__(self, student, projections):
        super().__init__()
        self.student, self.projections = student, projections

    def forward(self, x):
        return self.student(x)


def distill(teacher, student, data, config: KDConfig, *, device="cpu", checkpoint=None, resume=False,
            model_config=None, verbose=None, checkpoint_every: int = 0, precision: str = "fp32",
            view_logits=None) -> History:
    """Train ``student`` on ``data`` (a Splits) guided by ``teacher`` (or none) as ``config`` says.

    With ``config.augment`` on, every step trains on augmented views and the teacher labels those
    same views (function matching); ``view_logits`` (from :func:`~edgekd.distill.augment.label_views`
    with the same augment config and epochs) supplies the teacher's answers so it need not be re-run.
    ``checkpoint_every`` > 0 also checkpoints inside an epoch every that many steps;
    ``precision='bf16'`` runs forward passes under bf16 autocast. Under ``torchrun`` this joins
    the process group and trains data-parallel (see module docstring).
    """
    set_log_level(verbose)
    if not isinstance(config, KDConfig):
        raise ConfigError(f"distill: config must be a KDConfig, got {type(config).__name__}")
    if precision not in PRECISIONS:
        raise ConfigError(f"distill: precision must be one of {PRECISIONS}, got {precision!r}")
    if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 0:
        raise ConfigError(f"distill: checkpoint_every must be an integer >= 0, got {checkpoint_every!r}")
    train, val = data.train, data.val
    _check_data(train, data.num_classes)
    uses_teacher = teacher is not None and (config.alpha.start > 0 or config.alpha.end > 0 or config.feature_weight > 0)
    if config.curriculum is not None and teacher is None:
        raise ConfigError("KDConfig.curriculum: a curriculum ranks samples by the teacher, but no teacher was given")

    augment = config.augment
    if view_logits is not None:
        want = (augment.distinct_epochs(config.epochs), len(train), data.num_classes)
        if teacher is None or not augment.active:
            raise ConfigError("distill: view_logits are a teacher's answers on augmented views; they need the "
                              "teacher and KDConfig.augment (shift or mixup)")
        if tuple(view_logits.shape) != want:
            raise DataError(f"distill: view_logits must have shape (epochs of views, train samples, classes) = {want}, "
                            f"got {tuple(view_logits.shape)}")

    ctx = distributed.setup(device)
    device = ctx.device
    student.to(device)
    _check_fits(student, train.x[:2].to(device), data.num_classes, "student", model_config)
    teacher_logits = None
    if teacher is not None:
        teacher.to(device).eval()
        _check_fits(teacher, train.x[:2].to(device), data.num_classes, "teacher")
        if config.curriculum is not None or (uses_teacher and not augment.active):
            teacher_logits = soft_labels(teacher, train.x.to(device)).cpu()  # on the training images themselves
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

    trainable = _Trainable(student, projections)
    params = list(trainable.parameters())
    optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    n = len(train)
    sizes = [_pool_len(n, e, config) for e in range(config.epochs)]
    # every epoch has the same number of steps, with or without a curriculum (equal budgets)
    pools = [torch.as_tensor(paced_pool(order, s, n)) if order is not None else torch.arange(n) for s in sizes]
    steps_per_epoch = [int(np.ceil(n / config.batch_size))] * config.epochs
    total_steps = max(sum(steps_per_epoch), 1)
    sampler = distributed.CurriculumSampler(pools, [_epoch_seed(config.seed, e) for e in range(config.epochs)],
                                            config.batch_size, ctx.rank, ctx.world_size)
    curriculum = {"order_sha256": _digest(order), "pool_sizes": sizes}
    history = History()
    start_epoch, start_batch, loss_sum, rng = 0, 0, 0.0, None

    if checkpoint is not None and resume and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint)
        _check_resumable(state, checkpoint, config, model_config, curriculum)
        try:
            student.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if len(projections):
                projections.load_state_dict(state["projections"])
        except (KeyError, RuntimeError, ValueError) as err:
            first = str(err).strip().splitlines()[0]
            raise CheckpointError(f"{checkpoint}: cannot resume: the saved state does not fit this model ({first})") from None
        history.epochs = list(state.get("history", []))
        start_epoch = int(state.get("epoch", -1)) + 1
        position = state.get("position")
        if position and int(position["epoch"]) == start_epoch:
            start_batch, loss_sum, rng = int(position["batch"]), float(position["loss_sum"]), state.get("rng")
        logger.info(f"resumed from {checkpoint} at epoch {start_epoch + 1}, step {start_batch}")
    if checkpoint is not None and ctx.is_main:
        _remove_stale_temp(checkpoint)

    model = trainable
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(trainable, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if precision == "bf16" else contextlib.nullcontext

    def save(epoch_done, position=None):
        if checkpoint is None or not ctx.is_main:
            return
        save_checkpoint(checkpoint, student.state_dict(), model_config=model_config, train_config=config,
                        optimizer=optimizer.state_dict(), epoch=epoch_done, history=history.epochs,
                        position=position, rng=_rng_state(), curriculum=curriculum, world_size=ctx.world_size,
                        **({"projections": projections.state_dict()} if len(projections) else {}))

    step = sum(steps_per_epoch[:start_epoch]) + start_batch
    for epoch in range(start_epoch, config.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(_epoch_seed(config.seed, epoch))
        first_batch = start_batch if epoch == start_epoch else 0
        if rng is not None and epoch == start_epoch:
            _set_rng_state(rng)
        total_loss = loss_sum if (epoch == start_epoch and ctx.is_main) else 0.0
        sampler.set_epoch(epoch, first_batch)
        trainable.train()
        alpha = config.alpha(0.0)
        view_epoch = augment.view_epoch(epoch)
        plan = (view_plan(n, view_epoch, shift=augment.shift, mixup=augment.mixup, seed=augment.seed)
                if augment.active else None)
        bar = _progress(sampler.global_batches(), f"epoch {epoch + 1}/{config.epochs}", len(sampler))
        for b, (glob, idx) in enumerate(bar, start=first_batch):
            if plan is not None and len(idx):
                x, y = make_views(train.x, train.y, idx, plan, shift=augment.shift, num_classes=data.num_classes,
                                  mixup=augment.mixup > 0)
                x, y = x.to(device), y.to(device)
            else:
                x, y = train.x[idx].to(device), train.y[idx].to(device)
            alpha = config.alpha(step / total_steps) if uses_teacher else 0.0
            for group in optimizer.param_groups:  # a pure function of the step: resume stays exact
                group["lr"] = config.lr_at(step / total_steps)
            with autocast():
                logits = model(x)
                if len(idx) == 0:  # this rank's share of a tiny last batch: join the all-reduce with zeros
                    loss = logits.sum() * 0.0 + sum(p.sum() for p in projections.parameters()) * 0.0
                else:
                    if not uses_teacher:
                        t_logits = None
                    elif view_logits is not None:  # the teacher's answers on these very views, computed once
                        t_logits = view_logits[view_epoch][idx].to(device)
                    elif plan is not None:  # the teacher labels the same augmented view (function matching)
                        with torch.no_grad():
                            t_logits = teacher(x)
                    else:
                        t_logits = teacher_logits[idx].to(device)
                    loss = kd_loss(logits.float(), t_logits, y, alpha=alpha, temperature=config.temperature)
                    if taps is not None:
                        with torch.no_grad():
                            teacher(x)
                        for proj, (s_name, t_name) in zip(projections, config.feature_pairs):
                            loss = loss + config.feature_weight * feature_loss(
                                taps[0].outputs[s_name], taps[1].outputs[t_name], proj)
            optimizer.zero_grad(set_to_none=True)
            # DDP averages gradients over ranks; weight each rank's mean by its share so the
            # result is the mean over the whole global batch, as with one process.
            scaled = loss * (len(idx) * ctx.world_size / len(glob)) if ctx.distributed else loss
            scaled.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            total_loss += loss.item() * len(idx)
            step += 1
            if checkpoint_every and step % checkpoint_every == 0 and b + 1 < steps_per_epoch[epoch]:
                so_far = distributed.all_reduce_sum(total_loss, ctx)
                save(epoch - 1, {"epoch": epoch, "batch": b + 1, "step": step, "loss_sum": so_far})
        total_loss = distributed.all_reduce_sum(total_loss, ctx)
        metrics = {
            "epoch": epoch + 1,
            "loss": total_loss / len(pools[epoch]),
            "alpha": alpha,
            "pool": sizes[epoch],
            "steps": step,  # optimizer steps taken so far (equal for arms with and without a curriculum)
            "val_accuracy": evaluate(student, val, device=device) if len(val) else float("nan"),
            "seconds": time.perf_counter() - t0,
        }
        history.epochs.append(metrics)
        if ctx.is_main:
            logger.info("epoch {epoch:3d}  loss {loss:.4f}  alpha {alpha:.3f}  pool {pool:5d}  "
                        "val_acc {val_accuracy:.4f}  ({seconds:.1f}s)".format(**metrics))
        save(epoch)
    distributed.barrier(ctx)  # no rank returns before rank 0 has written the last checkpoint
    if taps is not None:
        for t in taps:
            t.remove()
    student.eval()
    return history


def _check_resumable(state, path, config, model_config, curriculum):
    """A checkpoint resumes only the run that wrote it: same configs, same curriculum order."""
    # more epochs continue a run exactly unless the curriculum or the alpha schedule depends on them
    fixed = config.curriculum is None and len({config.alpha(p) for p in (0.0, 0.25, 0.5, 0.75, 1.0)}) == 1
    for key, want, what in (("train_config", config, "KD config"), ("model_config", model_config, "model config")):
        want = want.to_dict() if hasattr(want, "to_dict") else want
        have = state.get(key)
        if key == "train_config" and fixed and isinstance(have, dict) and isinstance(want, dict):
            have = {**have, "epochs": want.get("epochs")}
        if want is not None and have is not None and have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            k = diff[0] if diff else "?"
            raise CheckpointError(
                f"{path}: cannot resume: it was written with a different {what} ({k}: {have.get(k)!r} there, "
                f"{want.get(k)!r} now); use another output path or start without --resume")
    saved = state.get("curriculum") or {}
    if saved.get("order_sha256") not in (None, curriculum["order_sha256"]):
        raise CheckpointError(f"{path}: cannot resume: the curriculum order differs (another teacher or data?); "
                              "use another output path or start without --resume")


def _digest(order):
    return None if order is None else hashlib.sha256(np.ascontiguousarray(order, dtype=np.int64).tobytes()).hexdigest()


def _rng_state() -> dict:
    """All RNG states as plain containers (checkpoints are loaded with weights_only=True)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *[float(v) for v in np_state[2:]]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _remove_stale_temp(path):
    """Delete temp files a killed writer left next to ``path`` (``.name.*.tmp``); never the real file."""
    path = Path(path)
    if path.parent.is_dir():
        for tmp in path.parent.glob(f".{path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()


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


def _progress(iterable, desc, total=None):
    if not show_progress() or not distributed.is_main_process():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, leave=False, total=total)
