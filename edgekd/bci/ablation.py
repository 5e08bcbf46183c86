"""The scheduled-KD ablation for the LDC student (after Liu, Duan, Xu, Ren, arXiv 2403.13844).

Per seed: a stratified train/val/test split of the trials; an EEGNet teacher trained on raw
epochs; band-power features quantized into levels; four LDC students that differ only in how
the teacher is used; and three baselines. Arms:

    ldc_no_kd                 LDC on labels only (alpha = 0)
    ldc_const_alpha           KD with a constant teacher weight
    ldc_scheduled             KD with an alpha schedule (teacher weight changes over training)
    ldc_scheduled_curriculum  the same plus a teacher-confidence curriculum (easy trials first)
    teacher                   EEGNet on raw epochs
    csp_lda                   CSP + LDA on the same epochs
    hdc_large                 random-projection HDC, D = 10,000, on the same (unquantized) features

Protocol (the same as the image demo's): every LDC arm takes the same number of optimizer steps
(a curriculum repeats its pool to a full epoch); the KD arms' hyperparameters (temperature, alpha,
schedule, curriculum) are chosen on the validation split only: each candidate LDC is fitted on the
training trials and scored on the validation trials of every seed, and the best mean wins, one arm
after the other (the constant arm picks T and alpha, the scheduled arm the schedule at that T, the
curriculum arm the pacing on top of that schedule). The chosen settings are then refitted on
train + validation and scored once on the test trials. Each arm is compared with ``ldc_no_kd``
seed by seed (paired difference, 95% t-interval; :mod:`edgekd.stats`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..config import Config, register
from ..distill import AlphaSchedule, Curriculum
from ..errors import ConfigError
from ..log import logger, set_log_level
from ..stats import compare_arms

BASELINE = "ldc_no_kd"
KD_ARMS = ("ldc_const_alpha", "ldc_scheduled", "ldc_scheduled_curriculum")
ARMS = (BASELINE, *KD_ARMS, "teacher", "csp_lda", "hdc_large")


@register("bci_ablation", version=2)
@dataclass
class AblationConfig(Config):
    seeds: int = 10
    test_frac: float = 0.2
    val_frac: float = 0.1
    num_levels: int = 8  # quantization levels per feature
    dim: int = 64  # LDC dimension D
    ldc_epochs: int = 60
    ldc_lr: float = 1e-2
    batch_size: int = 32
    # KD settings; with select=True these are replaced by the validation choice among the candidates
    temperature: float = 4.0
    const_alpha: float = 0.5
    schedule: AlphaSchedule = field(default_factory=lambda: AlphaSchedule("exponential", 0.9, 0.1, rate=5.0))
    curriculum: Curriculum = field(default_factory=lambda: Curriculum("confidence", "linear", 0.3, 0.8))
    select: bool = True
    temperatures: tuple[float, ...] = (2.0, 4.0)
    const_alphas: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
    schedules: tuple[AlphaSchedule, ...] = field(default_factory=lambda: (
        AlphaSchedule("exponential", 0.9, 0.1, rate=5.0), AlphaSchedule("linear", 0.9, 0.3),
        AlphaSchedule("linear", 0.3, 0.9)))
    curricula: tuple[Curriculum, ...] = field(default_factory=lambda: (
        Curriculum("confidence", "linear", 0.3, 0.8), Curriculum("confidence", "linear", 0.6, 0.5),
        Curriculum("confidence", "root", 0.5, 0.5)))
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
        if len(set(self.arms)) != len(self.arms):
            raise ConfigError(f"AblationConfig.arms: listed twice: {sorted({a for a in self.arms if self.arms.count(a) > 1})}")
        if BASELINE not in self.arms and any(a in self.arms for a in KD_ARMS):
            raise ConfigError(f"AblationConfig.arms: the KD arms are compared with {BASELINE!r}; include it")
        if not 0 < self.test_frac < 0.5 or not 0 <= self.val_frac < 0.5:
            raise ConfigError("AblationConfig.test_frac/val_frac: must be in (0, 0.5)")
        if self.select and self.val_frac == 0:
            raise ConfigError("AblationConfig.select: choosing on the validation split needs val_frac > 0")
        if self.select and (not self.temperatures or not self.const_alphas or not self.schedules or not self.curricula):
            raise ConfigError("AblationConfig: select=True needs at least one candidate in temperatures, "
                              "const_alphas, schedules and curricula")

    def arm_settings(self, arm: str) -> dict:
        """``LDCClassifier.fit`` keyword arguments and the temperature of one LDC arm (no teacher logits)."""
        if arm == BASELINE:
            return {"temperature": self.temperature}
        if arm == "ldc_const_alpha":
            return {"temperature": self.temperature, "alpha": self.const_alpha}
        if arm == "ldc_scheduled":
            return {"temperature": self.temperature, "alpha": self.schedule}
        if arm == "ldc_scheduled_curriculum":
            return {"temperature": self.temperature, "alpha": self.schedule, "curriculum": self.curriculum}
        raise ConfigError(f"arm_settings: {arm!r} is not an LDC arm")


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


@dataclass
class SeedData:
    """What every arm of one seed shares: the split, the teacher's logits and the quantized features."""

    seed: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    logits: np.ndarray  # the teacher's logits on every trial (N, classes)
    levels_select: np.ndarray  # levels from a quantizer fitted on the training trials only (selection)
    levels: np.ndarray  # levels from a quantizer fitted on train + val (the final fits)
    quantizer_bytes: int
    baselines: dict  # teacher / csp_lda / hdc_large results on the test trials

    @property
    def fit(self):
        return np.concatenate([self.train, self.val])  # the final fits use val too (no early stopping)


def _levels(trials, feats_of, fit_idx, cfg):
    from ..data.eeg.preprocess import Quantizer

    feats = feats_of(fit_idx)
    quant = Quantizer(cfg.num_levels).fit(feats[fit_idx])
    return quant.transform(feats), 4 * quant.edges_.size


def prepare_seed(trials, seed, cfg: AblationConfig) -> SeedData:
    """Split, teacher (trained on the training trials), features, and the baselines of one seed."""
    from ..data.eeg.preprocess import features, fit_csp
    from .baselines import CSPLDA, RandomProjectionHDC

    train, val, test = split_indices(trials.y, seed, cfg.test_frac, cfg.val_frac)
    fit_idx = np.concatenate([train, val])
    base = {}
    t0 = time.perf_counter()
    teacher, _ = train_teacher(trials, train, val, seed, cfg)
    logits = teacher_logits(teacher, trials.x)
    base["teacher"] = {"accuracy": float((logits[test].argmax(1) == trials.y[test]).mean()),
                       "model_bytes": float_bytes(teacher), "params": sum(p.numel() for p in teacher.parameters()),
                       "seconds": time.perf_counter() - t0}

    def feats_of(idx):
        csp = fit_csp(trials.x[idx], trials.y[idx]) if cfg.use_csp_features else None
        return features(trials.x, trials.sfreq, csp=csp)

    levels_select, _ = _levels(trials, feats_of, train, cfg)
    levels, quantizer_bytes = _levels(trials, feats_of, fit_idx, cfg)
    if "csp_lda" in cfg.arms:
        t0 = time.perf_counter()
        m = CSPLDA().fit(trials.x[fit_idx], trials.y[fit_idx])
        base["csp_lda"] = {"accuracy": m.score(trials.x[test], trials.y[test]), "model_bytes": m.model_bytes_,
                           "seconds": time.perf_counter() - t0}
    if "hdc_large" in cfg.arms:
        t0 = time.perf_counter()
        feats = features(trials.x, trials.sfreq)
        m = RandomProjectionHDC(dim=cfg.hdc_dim, seed=seed).fit(feats[fit_idx], trials.y[fit_idx])
        base["hdc_large"] = {"accuracy": m.score(feats[test], trials.y[test]), "model_bytes": m.model_bytes_,
                             "seconds": time.perf_counter() - t0}
    return SeedData(seed, train, val, test, logits, levels_select, levels, quantizer_bytes, base)


def fit_ldc(levels, y, logits, idx, seed, cfg: AblationConfig, temperature, **kd):
    """One LDC on trials ``idx``; ``kd`` holds alpha/curriculum (none: labels only)."""
    from ..models.ldc import LDCClassifier

    ldc = LDCClassifier(dim=cfg.dim, num_levels=cfg.num_levels, epochs=cfg.ldc_epochs, lr=cfg.ldc_lr,
                        batch_size=cfg.batch_size, temperature=temperature, seed=seed)
    return ldc.fit(levels[idx], y[idx], teacher_logits=logits[idx] if kd else None, **kd)


def _val_score(prepared, y, cfg, temperature, **kd) -> float:
    """Mean validation accuracy over seeds of LDCs fitted on the training trials."""
    scores = [fit_ldc(p.levels_select, y, p.logits, p.train, p.seed, cfg, temperature, **kd)
              .score(p.levels_select[p.val], y[p.val]) for p in prepared]
    return float(np.mean(scores))


def select_settings(prepared, y, cfg: AblationConfig) -> tuple[AblationConfig, dict]:
    """Choose T, alpha, schedule and curriculum on the validation split; returns the updated config
    and every candidate's mean validation accuracy (ties go to the first candidate listed)."""
    scores = {"ldc_no_kd": {"labels only": _val_score(prepared, y, cfg, cfg.temperature)}}

    def best(arm, candidates):
        scores[arm] = {}
        for label, kw in candidates:
            scores[arm][label] = _val_score(prepared, y, cfg, **kw)
            logger.info(f"select {arm}: {label}: val accuracy {scores[arm][label]:.4f}")
        label = max(scores[arm], key=scores[arm].get)  # max keeps the first of equal scores
        return dict(candidates)[label]

    if "ldc_const_alpha" in cfg.arms or any(a in cfg.arms for a in KD_ARMS):
        chosen = best("ldc_const_alpha", [(f"T={t} alpha={a}", {"temperature": t, "alpha": a})
                                          for t in cfg.temperatures for a in cfg.const_alphas])
        cfg = cfg.replace(temperature=chosen["temperature"], const_alpha=chosen["alpha"])
    if "ldc_scheduled" in cfg.arms or "ldc_scheduled_curriculum" in cfg.arms:
        chosen = best("ldc_scheduled", [(_label(s), {"temperature": cfg.temperature, "alpha": s})
                                        for s in cfg.schedules])
        cfg = cfg.replace(schedule=chosen["alpha"])
    if "ldc_scheduled_curriculum" in cfg.arms:
        chosen = best("ldc_scheduled_curriculum", [(_label(c), {"temperature": cfg.temperature, "alpha": cfg.schedule,
                                                                "curriculum": c}) for c in cfg.curricula])
        cfg = cfg.replace(curriculum=chosen["curriculum"])
    return cfg, scores


def _label(c) -> str:
    if isinstance(c, AlphaSchedule):
        return f"{c.kind} {c.start}->{c.end}" + (f" rate {c.rate}" if c.kind == "exponential" else "")
    return f"{c.by} {c.pacing} start {c.start} saturate {c.saturate}"


def run_arms(p: SeedData, y, cfg: AblationConfig) -> dict:
    """Every arm of one prepared seed, scored on its test trials."""
    out = {}
    for arm in cfg.arms:
        if arm in p.baselines:
            out[arm] = p.baselines[arm]
            continue
        if arm not in (BASELINE, *KD_ARMS):
            continue
        t0 = time.perf_counter()
        settings = cfg.arm_settings(arm)
        ldc = fit_ldc(p.levels, y, p.logits, p.fit, p.seed, cfg, **settings)
        out[arm] = {"accuracy": float(ldc.score(p.levels[p.test], y[p.test])), "model_bytes": ldc.model_bytes_,
                    "quantizer_bytes": p.quantizer_bytes, "seconds": time.perf_counter() - t0,
                    "steps": ldc.history_[-1]["steps"]}
    return out


def summarize(per_seed: list[dict]) -> dict:
    """Per arm: mean and std (ddof = 1) over seeds, every seed's value, and the paired difference
    to ``ldc_no_kd`` with its 95% t-interval."""
    arms = list(per_seed[0])
    stats = compare_arms({arm: [s[arm]["accuracy"] for s in per_seed] for arm in arms},
                         BASELINE if BASELINE in arms else arms[0])
    summary = {}
    for arm in arms:
        row = {"accuracy": stats[arm]["mean"], "accuracy_std": stats[arm]["std"],
               "model_bytes": int(per_seed[0][arm]["model_bytes"]), "accuracy_per_seed": stats[arm]["per_seed"],
               "seconds_per_seed": [round(s[arm]["seconds"], 2) for s in per_seed]}
        for extra in ("params", "quantizer_bytes", "steps"):
            if extra in per_seed[0][arm]:
                row[extra] = int(per_seed[0][arm][extra])
        diff = next((v for k, v in stats[arm].items() if k.startswith("vs_")), None)
        if diff is not None:
            row["vs_" + BASELINE] = diff
        summary[arm] = row
    return summary


def run_ablation(trials, config: AblationConfig | None = None, verbose=None) -> dict:
    """Every arm over ``config.seeds`` seeds on ``trials`` (an EEGTrials).

    Returns ``{arm: summary}`` plus ``"selection"`` (the chosen settings and every candidate's
    validation score) when ``config.select``.
    """
    import torch

    set_log_level(verbose)
    cfg = config or AblationConfig()
    prepared = []
    for seed in range(cfg.seeds):
        torch.manual_seed(seed)
        prepared.append(prepare_seed(trials, seed, cfg))
        logger.info(f"seed {seed}: teacher {prepared[-1].baselines['teacher']['accuracy']:.3f}")
    selection = None
    if cfg.select and any(a in cfg.arms for a in KD_ARMS):
        cfg, scores = select_settings(prepared, trials.y, cfg)
        selection = {"val_accuracy": scores, "temperature": cfg.temperature, "const_alpha": cfg.const_alpha,
                     "schedule": cfg.schedule.to_dict(), "curriculum": cfg.curriculum.to_dict()}
    per_seed = []
    for p in prepared:
        result = run_arms(p, trials.y, cfg)
        per_seed.append({arm: result[arm] for arm in cfg.arms if arm in result})
        logger.info(f"seed {p.seed}: " + ", ".join(f"{a} {r['accuracy']:.3f}" for a, r in per_seed[-1].items()))
    summary = summarize(per_seed)
    if selection is not None:
        summary["selection"] = selection
    return summary


def train_for_export(trials, seed: int = 0, cfg: AblationConfig | None = None, arm: str = "ldc_scheduled_curriculum"):
    """One seed's teacher and one LDC arm (with ``cfg``'s settings, e.g. those the ablation chose),
    for export: returns a dict with the models, the fitted quantizer, test indices, test levels and
    test epochs."""
    from ..data.eeg.preprocess import Quantizer, features

    cfg = cfg or AblationConfig()
    if arm not in (BASELINE, *KD_ARMS):
        raise ConfigError(f"train_for_export: arm must be one of {sorted((BASELINE, *KD_ARMS))}, got {arm!r}")
    train, val, test = split_indices(trials.y, seed, cfg.test_frac, cfg.val_frac)
    fit_idx = np.concatenate([train, val])
    teacher, mcfg = train_teacher(trials, train, val, seed, cfg)
    feats = features(trials.x, trials.sfreq)
    quant = Quantizer(cfg.num_levels).fit(feats[fit_idx])
    levels = quant.transform(feats)
    logits = teacher_logits(teacher, trials.x)
    ldc = fit_ldc(levels, trials.y, logits, fit_idx, seed, cfg, **cfg.arm_settings(arm))
    return {"teacher": teacher, "teacher_config": mcfg, "ldc": ldc, "quantizer": quant, "test": test,
            "fit": fit_idx, "test_levels": levels[test], "test_x": trials.x[test], "test_y": trials.y[test]}
