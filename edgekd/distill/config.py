"""Configs for the distill verb."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

from ..config import Config, register
from ..errors import ConfigError
from .curriculum import PACINGS
from .schedules import SCHEDULES


@register("alpha_schedule")
@dataclass
class AlphaSchedule(Config):
    kind: str = "constant"  # constant | linear | cosine | exponential | step
    start: float = 0.9  # teacher weight at the start of training
    end: float = 0.9  # ... and at the end (start > end: listen to the teacher less over time)
    rate: float = 5.0  # exponential only
    steps: int = 4  # step only

    def validate(self):
        if self.kind not in SCHEDULES:
            raise ConfigError(f"AlphaSchedule.kind: allowed values are {sorted(SCHEDULES)}, got {self.kind!r}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"AlphaSchedule.{name}: alpha must be in [0, 1], got {value}")
        if self.kind == "exponential" and self.rate <= 0:
            raise ConfigError(f"AlphaSchedule.rate: must be > 0, got {self.rate}")
        if self.steps < 1:
            raise ConfigError(f"AlphaSchedule.steps: must be >= 1, got {self.steps}")

    def __call__(self, progress: float) -> float:
        from .schedules import alpha_at

        return alpha_at(self.kind, progress, self.start, self.end, rate=self.rate, steps=self.steps)


@register("curriculum")
@dataclass
class Curriculum(Config):
    by: Literal["confidence", "loss"] = "confidence"
    pacing: str = "linear"  # linear | root | step
    start: float = 0.3  # fraction of the easiest samples in the first epoch's pool
    saturate: float = 0.8  # fraction of training after which the whole set is used

    def validate(self):
        if self.pacing not in PACINGS:
            raise ConfigError(f"Curriculum.pacing: allowed values are {sorted(PACINGS)}, got {self.pacing!r}")
        if not 0.0 < self.start <= 1.0:
            raise ConfigError(f"Curriculum.start: must be in (0, 1], got {self.start}")
        if not 0.0 < self.saturate <= 1.0:
            raise ConfigError(f"Curriculum.saturate: must be in (0, 1], got {self.saturate}")


@register("augment")
@dataclass
class Augment(Config):
    """Views for function matching (``edgekd.distill.augment``); the teacher labels the same view."""

    shift: int = 0  # random translation of up to this many pixels (a crop of the zero-padded image)
    mixup: float = 0.0  # mix each image with a partner, weight ~ Beta(mixup, mixup); 0 disables
    seed: int = 0  # views are a pure function of (seed, epoch, sample): every arm and seed sees the same ones
    # > 0: the views repeat every `period` epochs (epoch e shows the views of e mod period), so the
    # teacher labels `period` epochs of views once and a long schedule reuses them; 0: new views every epoch
    period: int = 0

    def validate(self):
        if self.shift < 0:
            raise ConfigError(f"Augment.shift: must be >= 0 pixels, got {self.shift}")
        if self.mixup < 0:
            raise ConfigError(f"Augment.mixup: must be >= 0 (the Beta parameter; 0 disables), got {self.mixup}")
        if self.period < 0:
            raise ConfigError(f"Augment.period: must be >= 0 epochs (0: new views every epoch), got {self.period}")

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.mixup > 0

    def view_epoch(self, epoch: int) -> int:
        """Which epoch's views epoch ``epoch`` shows."""
        return epoch % self.period if self.period else epoch

    def distinct_epochs(self, epochs: int) -> int:
        """How many epochs of distinct views a run of ``epochs`` epochs shows."""
        return min(self.period, epochs) if self.period else epochs


@register("kd")
@dataclass
class KDConfig(Config):
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3
    lr_schedule: Literal["constant", "cosine"] = "constant"  # cosine: lr * (1 + cos(pi p)) / 2
    weight_decay: float = 0.0
    temperature: float = 4.0
    alpha: AlphaSchedule = field(default_factory=AlphaSchedule)
    curriculum: Optional[Curriculum] = None
    # Feature matching (FitNets hints): pairs of (student module name, teacher module name).
    feature_pairs: list[tuple[str, str]] = field(default_factory=list)
    feature_weight: float = 0.0
    # Augmented views (shift, mixup); with a teacher, the teacher labels the same view the student
    # sees (function matching), which is where small-data KD gains come from.
    augment: Augment = field(default_factory=Augment)
    seed: int = 0
    grad_clip: float = 0.0  # 0 disables clipping

    def validate(self):
        if self.epochs < 1:
            raise ConfigError(f"KDConfig.epochs: must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"KDConfig.batch_size: must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise ConfigError(f"KDConfig.lr: must be > 0, got {self.lr}")
        if not 0.0 < self.temperature <= 100.0:
            raise ConfigError(f"KDConfig.temperature: must be in (0, 100], got {self.temperature}")
        if self.feature_weight < 0:
            raise ConfigError(f"KDConfig.feature_weight: must be >= 0, got {self.feature_weight}")
        if self.feature_weight > 0 and not self.feature_pairs:
            raise ConfigError("KDConfig.feature_pairs: feature_weight > 0 needs at least one (student, teacher) pair")


    def lr_at(self, progress: float) -> float:
        if self.lr_schedule == "cosine":
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
        return self.lr


def train_config(**kw) -> KDConfig:
    """A KDConfig for plain supervised training (no teacher): alpha fixed at 0."""
    kw.setdefault("alpha", AlphaSchedule("constant", 0.0, 0.0))
    return KDConfig(**kw)
