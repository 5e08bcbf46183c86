"""The scheduled-KD ablation for the LDC student (after Liu, Duan, Xu, Ren, arXiv 2403.13844).

Per seed: a stratified train/val/test split of the trials; an EEGNet teacher trained on raw
epochs; band-power features quantized into levels; four LDC students that differ only in how
the teacher is used; and two baselines. Arms:

    ldc_no_kd                 LDC on labels only (alpha = 0)
    ldc_const_alpha           KD with a constant teacher weight
    ldc_scheduled             KD with an exponential alpha schedule (teacher weight decays)
    ldc_scheduled_curriculum  the same plus a teacher-confidence curriculum (easy trials first)
    teacher                   EEGNet on raw epochs
    csp_lda                   CSP + LDA on the same epochs
    hdc_large                 random-projection HDC, D = 10,000, on the same (unquantized) features
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..config import Config, register
from ..distill import AlphaSchedule, Curriculum
from ..errors import ConfigError
from ..log import logger, set_log_level

ARMS = ("ldc_no_kd", "ldc_const_alpha", "ldc_scheduled", "ldc_scheduled_curriculum", "teacher", "csp_lda",
        "hdc_large")


@register("bci_ablation")
@dataclass
class AblationConfig(Config):
    seeds: int = 5
    test_frac: float = 0.2
    val_frac: float = 0.1
    num_levels: int = 8  # quantization levels per feature
    dim: int = 64  # LDC dimension D
    ldc_epochs: int = 60
    ldc_lr: float = 1e-2
    batch_size: int = 32
    temperature: float = 4.0
    const_alpha: float = 0.5
    schedule: AlphaSchedule = field(default_factory=lambda: AlphaSchedule("exponential", 0.9, 0.1, rate=5.0))
    curriculum: Curriculum = field(default_factory=lambda: Curriculum("confidence", "linear", 0.3, 0.8))
    use_csp_features: bool = False  # add CSP log-variances to the LDC's band powers
    teacher_epochs: int = 40
    teacher_lr: float = 3e-3
    teacher_options: dict = field(default_factory=dict)  # EEGNet builder options
    hdc_dim: int = 10_000
    arms: tuple[str, ...] = ARMS

    def validate(self):
        if self.seeds < 1:
            raise ConfigError(f"AblationConfig.seeds: must be >= 1, got {self.seeds}")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown:
            raise ConfigError(f"AblationConfig.arms: unknown {unknown}; allowed {list(ARMS)}")
        if not 0 < self.test_frac < 0.5 or not 0 <= self.val_frac < 0.5:
            raise ConfigError("AblationConfig.test_frac/val_frac: must be in (0, 0.5)")


def split_indices(y, seed, test_frac, val_frac):
    """Stratified train/val/test indices (the same split for every arm of a seed)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=test_frac, random_state=seed, stratify=y)
    if val_frac == 0:
        return rest, idx[:0], test
    train, val = train_test_split(rest, test_size=val_frac / (1 - test_frac), random_state=seed, stratify=y[rest])
    return train, val, test


def train_teacher(trials, train, val, seed, cfg: AblationConfig):
    """EEGNet on raw epochs through the shared ``distill`` loop (alpha 0: plain training)."""
    import torch

    from ..data.images import Split, Splits
    from ..distill import distill, train_config
    from ..models import ModelConfig, build_model

    x = torch.from_numpy(trials.x[:, None])
    y = torch.from_numpy(trials.y)
    part = lambda i: Split(x[i], y[i])  # noqa: E731
    data = Splits(part(train), part(val), part(val), int(trials.y.max()) + 1, "eeg")
    mcfg = ModelConfig("eegnet", data.input_shape, data.num_classes, dict(cfg.teacher_options))
    torch.manual_seed(seed)
    model = build_model(mcfg)
    distill(None, model, data, train_config(epochs=cfg.teacher_epochs, lr=cfg.teacher_lr,
                                            batch_size=cfg.batch_size, seed=seed))
    return model, mcfg


def teacher_logits(model, x):
    import torch

    from ..distill import soft_labels

    return soft_labels(model, torch.from_numpy(x[:, None])).numpy()


def float_bytes(model) -> int:
    return 4 * sum(p.numel() for p in model.parameters())


def run_seed(trials, seed, cfg: AblationConfig) -> dict:
    """One seed of every arm: {arm: {"accuracy", "model_bytes", "seconds"}}."""
    from ..data.eeg.preprocess import Quantizer, features, fit_csp
    from ..models.ldc import LDCClassifier
    from .baselines import CSPLDA, RandomProjectionHDC

    train, val, test = split_indices(trials.y, seed, cfg.test_frac, cfg.val_frac)
    fit_idx = np.concatenate([train, val])  # non-teacher models have no early stopping: use val too
    out = {}
    t0 = time.perf_counter()
    teacher, _ = train_teacher(trials, train, val, seed, cfg)
    t_test = teacher_logits(teacher, trials.x[test])
    out["teacher"] = {"accuracy": float((t_test.argmax(1) == trials.y[test]).mean()),
                      "model_bytes": float_bytes(teacher), "params": sum(p.numel() for p in teacher.parameters()),
                      "seconds": time.perf_counter() - t0}
    t_fit = teacher_logits(teacher, trials.x[fit_idx])

    csp = fit_csp(trials.x[fit_idx], trials.y[fit_idx]) if cfg.use_csp_features else None
    feats = features(trials.x, trials.sfreq, csp=csp)
    quant = Quantizer(cfg.num_levels).fit(feats[fit_idx])
    levels = quant.transform(feats)
    variants = {
        "ldc_no_kd": dict(teacher_logits=None),
        "ldc_const_alpha": dict(teacher_logits=t_fit, alpha=cfg.const_alpha),
        "ldc_scheduled": dict(teacher_logits=t_fit, alpha=cfg.schedule),
        "ldc_scheduled_curriculum": dict(teacher_logits=t_fit, alpha=cfg.schedule, curriculum=cfg.curriculum),
    }
    for arm, kw in variants.items():
        if arm not in cfg.arms:
            continue
        t0 = time.perf_counter()
        ldc = LDCClassifier(dim=cfg.dim, num_levels=cfg.num_levels, epochs=cfg.ldc_epochs, lr=cfg.ldc_lr,
                            batch_size=cfg.batch_size, temperature=cfg.temperature, seed=seed)
        ldc.fit(levels[fit_idx], trials.y[fit_idx], **kw)
        out[arm] = {"accuracy": float(ldc.score(levels[test], trials.y[test])), "model_bytes": ldc.model_bytes_,
                    "quantizer_bytes": 4 * quant.edges_.size, "seconds": time.perf_counter() - t0}
    if "csp_lda" in cfg.arms:
        t0 = time.perf_counter()
        m = CSPLDA().fit(trials.x[fit_idx], trials.y[fit_idx])
        out["csp_lda"] = {"accuracy": m.score(trials.x[test], trials.y[test]), "model_bytes": m.model_bytes_,
                          "seconds": time.perf_counter() - t0}
    if "hdc_large" in cfg.arms:
        t0 = time.perf_counter()
        m = RandomProjectionHDC(dim=cfg.hdc_dim, seed=seed).fit(feats[fit_idx], trials.y[fit_idx])
        out["hdc_large"] = {"accuracy": m.score(feats[test], trials.y[test]), "model_bytes": m.model_bytes_,
                            "seconds": time.perf_counter() - t0}
    return {arm: out[arm] for arm in cfg.arms if arm in out}


def summarize(per_seed: list[dict]) -> dict:
    """Mean/std over seeds per arm, keeping every seed's value."""
    summary = {}
    for arm in per_seed[0]:
        acc = np.array([s[arm]["accuracy"] for s in per_seed])
        row = {"accuracy": float(acc.mean()), "accuracy_std": float(acc.std()),
               "model_bytes": int(per_seed[0][arm]["model_bytes"]), "accuracy_per_seed": acc.tolist(),
               "seconds_per_seed": [round(s[arm]["seconds"], 2) for s in per_seed]}
        for extra in ("params", "quantizer_bytes"):
            if extra in per_seed[0][arm]:
                row[extra] = int(per_seed[0][arm][extra])
        summary[arm] = row
    return summary


def run_ablation(trials, config: AblationConfig | None = None, verbose=None) -> dict:
    """Every arm over ``config.seeds`` seeds on ``trials`` (an EEGTrials)."""
    import torch

    set_log_level(verbose)
    cfg = config or AblationConfig()
    per_seed = []
    for seed in range(cfg.seeds):
        torch.manual_seed(seed)
        result = run_seed(trials, seed, cfg)
        per_seed.append(result)
        logger.info(f"seed {seed}: " + ", ".join(f"{a} {r['accuracy']:.3f}" for a, r in result.items()))
    return summarize(per_seed)


def train_for_export(trials, seed: int = 0, cfg: AblationConfig | None = None, arm: str = "ldc_scheduled_curriculum"):
    """One seed's teacher and one LDC arm, for export: returns a dict with the models, the fitted
    quantizer, test indices, test levels and test epochs."""
    from ..data.eeg.preprocess import Quantizer, features
    from ..models.ldc import LDCClassifier

    cfg = cfg or AblationConfig()
    kinds = {"ldc_no_kd": {}, "ldc_const_alpha": {"alpha": cfg.const_alpha}, "ldc_scheduled": {"alpha": cfg.schedule},
             "ldc_scheduled_curriculum": {"alpha": cfg.schedule, "curriculum": cfg.curriculum}}
    if arm not in kinds:
        raise ConfigError(f"train_for_export: arm must be one of {sorted(kinds)}, got {arm!r}")
    train, val, test = split_indices(trials.y, seed, cfg.test_frac, cfg.val_frac)
    fit_idx = np.concatenate([train, val])
    teacher, mcfg = train_teacher(trials, train, val, seed, cfg)
    feats = features(trials.x, trials.sfreq)
    quant = Quantizer(cfg.num_levels).fit(feats[fit_idx])
    levels = quant.transform(feats)
    kw = dict(kinds[arm])
    if kw:
        kw["teacher_logits"] = teacher_logits(teacher, trials.x[fit_idx])
    ldc = LDCClassifier(dim=cfg.dim, num_levels=cfg.num_levels, epochs=cfg.ldc_epochs, lr=cfg.ldc_lr,
                        batch_size=cfg.batch_size, temperature=cfg.temperature, seed=seed)
    ldc.fit(levels[fit_idx], trials.y[fit_idx], **kw)
    return {"teacher": teacher, "teacher_config": mcfg, "ldc": ldc, "quantizer": quant, "test": test,
            "fit": fit_idx, "test_levels": levels[test], "test_x": trials.x[test], "test_y": trials.y[test]}
