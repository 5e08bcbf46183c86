"""The end-to-end demo: a teacher, the student alone, and distilled students, compared fairly.

Protocol (what makes the comparison honest):
- every student arm trains from the same ``student_train`` config: the same number of optimizer
  steps, learning rate schedule, batch size and augmented views (shift + mixup, a pure function of
  ``(Augment.seed, epoch, sample)``); the arms differ only in how the teacher is used;
- the distilled students use *function matching* (Beyer et al. 2022): the teacher labels the very
  view the student sees, so its soft targets come from images it did not memorize; the scheduled
  alpha and the curriculum are options on top, each measured as its own arm;
- every arm runs on the same seeds, and each is compared with the student alone seed by seed
  (paired difference, 95% t-interval, :mod:`edgekd.stats`);
- hyperparameters were chosen on the validation split (docs/distillation.md lists the sweep);
  the test split is only reported.

Writes ``reports/demo.json`` and ``reports/demo.md`` (``demo_<dataset>.*`` for other datasets) and
keeps checkpoints under ``runs/demo/`` (the distilled student of seed 0 is what ``make export``
exports). Later stages (quantization) add rows through :data:`EXTRA_STAGES`.
"""
from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .config import Config, register
from .data import load_dataset
from .distill import AlphaSchedule, Augment, Curriculum, KDConfig, distill, evaluate, label_views, train_config
from .errors import ConfigError
from .io import atomic_write_json, atomic_write_text
from .log import logger, set_log_level, showing_progress
from .models import ModelConfig, build_model
from .stats import compare_arms, format_difference

BASELINE = "student_alone"
ARMS = (BASELINE, "student_kd", "student_kd_sched", "student_kd_sched_curriculum")


@register("demo", version=2)
@dataclass
class DemoConfig(Config):
    dataset: str = "mnist5k"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    teacher: ModelConfig = field(default_factory=lambda: ModelConfig("teacher_cnn", options={"width": 32}))
    # about 8.5k parameters, 8.9 KB as int8: the size of a model that runs on a Cortex-M
    student: ModelConfig = field(default_factory=lambda: ModelConfig("student_cnn", options={"width": 32}))
    teacher_train: KDConfig = field(default_factory=lambda: train_config(
        epochs=30, lr=3e-3, lr_schedule="cosine", augment=Augment(shift=2, seed=100)))
    # The budget and the views every student arm shares (alpha 0 here: this is the student alone).
    # Patience: 180 epochs; the views repeat every 60 epochs, so the teacher labels 60 epochs of views once.
    student_train: KDConfig = field(default_factory=lambda: train_config(
        epochs=180, lr=3e-3, lr_schedule="cosine", augment=Augment(shift=2, mixup=1.0, seed=0, period=60)))
    # Function matching: the teacher's weight and temperature (chosen on the validation split).
    alpha: float = 1.0
    temperature: float = 1.0
    # Options on top of function matching, each its own arm.
    schedule: AlphaSchedule = field(default_factory=lambda: AlphaSchedule("exponential", 1.0, 0.5, rate=3.0))
    curriculum: Curriculum = field(default_factory=lambda: Curriculum("confidence", "linear", start=0.5, saturate=0.5))
    # make demo runs the two arms the headline needs; `edgekd demo --arms all` adds the options on top
    arms: tuple[str, ...] = (BASELINE, "student_kd")
    quantize: bool = True  # int8 PTQ/QAT and 4-bit rows for student_kd (seed of the first seed)

    def validate(self):
        if not self.seeds:
            raise ConfigError("DemoConfig.seeds: needs at least one seed")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or BASELINE not in self.arms:
            raise ConfigError(f"DemoConfig.arms: must include {BASELINE!r} and only {list(ARMS)}, got {list(self.arms)}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"DemoConfig.alpha: must be in [0, 1], got {self.alpha}")

    def arm_config(self, arm: str) -> KDConfig:
        """The KD config of one arm: ``student_train`` with only the teacher's part changed."""
        if arm == BASELINE:
            return self.student_train
        kd = self.student_train.replace(temperature=self.temperature,
                                        alpha=AlphaSchedule("constant", self.alpha, self.alpha))
        if arm == "student_kd":
            return kd
        kd = kd.replace(alpha=self.schedule)
        return kd if arm == "student_kd_sched" else kd.replace(curriculum=self.curriculum)


def demo_config(dataset: str = "mnist5k", **overrides) -> DemoConfig:
    """The demo's settings for ``dataset`` (each chosen on that dataset's validation split)."""
    if dataset == "mnist5k":
        return DemoConfig(**overrides)
    if dataset == "digits8":  # 8x8 images: an MLP student (a pixel of shift is an eighth of the image: mixup only)
        overrides.setdefault("arms", ARMS)
        return DemoConfig(
            dataset="digits8",
            teacher=ModelConfig("teacher_cnn", options={"width": 32}),
            student=ModelConfig("student_mlp", options={"hidden": 32}),
            teacher_train=train_config(epochs=100, lr=3e-3, lr_schedule="cosine",
                                       augment=Augment(shift=1, mixup=1.0, seed=100)),
            student_train=train_config(epochs=1000, lr=3e-3, lr_schedule="cosine", augment=Augment(mixup=1.0, seed=0)),
            quantize=False, **overrides)
    raise ConfigError(f"demo: no demo settings for dataset {dataset!r}; choose mnist5k or digits8")


def param_bytes(model) -> dict:
    """Parameter count and storage at fp32 and int8 (int8 weights, int32 biases)."""
    params = sum(p.numel() for p in model.parameters())
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    return {"params": params, "bytes_fp32": 4 * params, "bytes_int8": (params - biases) + 4 * biases}


# Each extra stage: fn(context: dict) -> list of table rows; appended by later stages of the pipeline.
EXTRA_STAGES: list = []


def _quant_stage(context):
    if not context["config"].quantize:
        return []
    from .quant.stage import quant_rows  # lazy: torchao / litert-torch / brevitas load only when the demo runs

    return quant_rows(context)


EXTRA_STAGES.append(_quant_stage)  # rows: int8 PTQ, int8 QAT, 4-bit brevitas (issue 3)


def report_name(dataset: str) -> str:
    return "demo" if dataset == "mnist5k" else f"demo_{dataset}"


def run_demo(config: DemoConfig = None, *, out_dir="reports", run_dir="runs/demo", fresh=False, verbose=None,
             command="make demo", workers: int | None = None):
    """Train and compare every arm; ``workers`` processes (default: one per core, at most 2) train
    the students side by side, one torch thread each (tiny models gain little from intra-op threads)."""
    set_log_level(verbose)
    config = config or DemoConfig()
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    t_start, cpu_start = time.perf_counter(), time.process_time()
    data = load_dataset(config.dataset, seed=0)
    teacher_cfg = config.teacher.replace(input_shape=data.input_shape, num_classes=data.num_classes)
    student_cfg = config.student.replace(input_shape=data.input_shape, num_classes=data.num_classes)

    teacher, (teacher_seconds, _) = _trained(teacher_cfg, config.teacher_train.replace(seed=0), None, data,
                                             run_dir / "teacher.pt", fresh, "teacher")
    rows = {"teacher": {**_row("teacher", teacher, [evaluate(teacher, data.test)], [teacher_seconds]),
                        "val_accuracy": evaluate(teacher, data.val)}}
    views = _TeacherViews(teacher, data, config.student_train)
    results = _student_runs(config, data, teacher, teacher_cfg, student_cfg, views, run_dir, fresh, workers, verbose)
    student = build_model(student_cfg)
    test_acc, val_acc, seconds, steps = ({arm: [results[arm, seed][k] for seed in config.seeds] for arm in config.arms}
                                         for k in ("test", "val", "seconds", "steps"))
    stats_test = compare_arms(test_acc, BASELINE)
    stats_val = compare_arms(val_acc, BASELINE)
    steps = {arm: (s[0] if len(set(s)) == 1 else s) for arm, s in steps.items()}  # as taken, from the histories
    for arm in config.arms:
        row = _row(arm, student, test_acc[arm], seconds[arm], seeds=config.seeds)
        row.update(accuracy_std=stats_test[arm]["std"], val_accuracy=stats_val[arm]["mean"],
                   val_accuracy_per_seed=dict(zip(map(str, config.seeds), val_acc[arm])), optimizer_steps=steps[arm])
        if arm != BASELINE:
            row["vs_" + BASELINE] = stats_test[arm]["vs_" + BASELINE]
            row["val_vs_" + BASELINE] = stats_val[arm]["vs_" + BASELINE]
        rows[arm] = row
    if views.seconds:
        rows["teacher"]["view_labelling_seconds"] = views.seconds

    seed0 = config.seeds[0]
    context = {"config": config, "data": data, "teacher": teacher, "run_dir": run_dir,
               "student_cfg": student_cfg, "student_kd_checkpoint": run_dir / f"student_kd_seed{seed0}.pt"}
    if "student_kd" in config.arms:
        for stage in EXTRA_STAGES:
            for row in stage(context):
                rows[row["name"]] = row
    report = {
        "dataset": config.dataset,
        "test_samples": len(data.test),
        "val_samples": len(data.val),
        "train_samples": len(data.train),
        **rows,
        "protocol": protocol_text(config, steps[BASELINE]),
        "config": config.to_dict(),
        "machine": f"{platform.machine()} {platform.system()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch "
                   f"threads, students trained in {workers or min(2, os.cpu_count() or 1)} processes",
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "total_seconds": time.perf_counter() - t_start,
        "cpu_seconds": time.process_time() - cpu_start,
        "command": command,
    }
    name = report_name(config.dataset)
    atomic_write_json(out_dir / f"{name}.json", report)
    table = render_table(report)
    atomic_write_text(out_dir / f"{name}.md", table)
    print(table)
    return report


def protocol_text(config: DemoConfig, steps: int) -> str:
    aug = config.student_train.augment
    steps = f"{steps:,}" if isinstance(steps, int) else str(steps)
    return (f"every student arm: {steps} optimizer steps ({config.student_train.epochs} epochs, batch "
            f"{config.student_train.batch_size}, lr {config.student_train.lr} {config.student_train.lr_schedule}), "
            f"the same views (shift {aug.shift} px, mixup Beta({aug.mixup}, {aug.mixup}), view seed {aug.seed}); "
            f"KD arms: the teacher labels those views (function matching), T = {config.temperature}; "
            f"seeds {list(config.seeds)}; paired differences to {BASELINE} with 95% t-intervals; "
            f"hyperparameters chosen on the validation split")


def _student_runs(config, data, teacher, teacher_cfg, student_cfg, views, run_dir, fresh, workers, verbose) -> dict:
    """``{(arm, seed): {"test", "val", "seconds", "steps"}}``; finished checkpoints are reused, the
    others are trained (in ``workers`` processes when there are several)."""
    results, pending = {}, []
    for arm in config.arms:
        for seed in config.seeds:
            kd_cfg, path = config.arm_config(arm).replace(seed=seed), run_dir / f"{arm}_seed{seed}.pt"
            if not fresh and _reusable(path, student_cfg, kd_cfg):
                results[arm, seed] = _run_job(student_cfg, kd_cfg, None, data, path, False, f"{arm} seed {seed}")
            else:
                pending.append((arm, seed, kd_cfg, path))
    logits = views.get() if any(arm != BASELINE for arm, *_ in pending) else None
    workers = min(workers or min(2, os.cpu_count() or 1), len(pending))
    if workers <= 1:
        for arm, seed, kd_cfg, path in pending:
            results[arm, seed] = _run_job(student_cfg, kd_cfg, teacher if arm != BASELINE else None, data, path, fresh,
                                          f"{arm} seed {seed}", logits if arm != BASELINE else None)
        return results
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    init = (config.dataset, teacher_cfg, teacher.state_dict(), logits, verbose)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_init,
                             initargs=init) as pool:
        futures = {(arm, seed): pool.submit(_worker_job, student_cfg, kd_cfg, arm != BASELINE, str(path), fresh,
                                            f"{arm} seed {seed}") for arm, seed, kd_cfg, path in pending}
        for key, future in futures.items():
            results[key] = future.result()
    return results


def _run_job(student_cfg, kd_cfg, teacher, data, path, fresh, label, logits=None) -> dict:
    student, (secs, steps) = _trained(student_cfg, kd_cfg, teacher, data, path, fresh, label, view_logits=logits)
    return {"test": evaluate(student, data.test), "val": evaluate(student, data.val), "seconds": secs, "steps": steps}


_WORKER: dict = {}


def _worker_init(dataset, teacher_cfg, teacher_state, logits, verbose):
    torch.set_num_threads(1)
    set_log_level(verbose)
    teacher = build_model(teacher_cfg)
    teacher.load_state_dict(teacher_state)
    _WORKER.update(data=load_dataset(dataset, seed=0), teacher=teacher.eval(), logits=logits)


def _worker_job(student_cfg, kd_cfg, uses_teacher, path, fresh, label) -> dict:
    w = _WORKER
    return _run_job(student_cfg, kd_cfg, w["teacher"] if uses_teacher else None, w["data"], Path(path), fresh, label,
                    w["logits"] if uses_teacher else None)


class _TeacherViews:
    """The teacher's logits on the shared views, computed once, when a distilled arm first needs them."""

    def __init__(self, teacher, data, train_cfg: KDConfig):
        self.teacher, self.data, self.cfg = teacher, data, train_cfg
        self.logits, self.seconds = None, 0.0

    def get(self):
        if self.logits is None and self.cfg.augment.active:
            t0 = time.perf_counter()
            logger.info(f"teacher: labelling {self.cfg.epochs} epochs of views of {len(self.data.train)} images")
            self.logits = label_views(self.teacher, self.data.train, self.cfg.augment, self.cfg.epochs,
                                      self.data.num_classes)
            self.seconds = time.perf_counter() - t0
        return self.logits


def demo_student(run_dir="runs/demo", *, config: DemoConfig = None, fresh=False, verbose=None):
    """The demo's distilled student (first seed) as ``(model, checkpoint_path, data)``.

    Reuses ``runs/demo/student_kd_seed0.pt`` when it was made with the demo's configs; otherwise
    trains the teacher and this one student arm exactly as ``run_demo`` would.
    """
    set_log_level(verbose)
    config = config or DemoConfig()
    run_dir = Path(run_dir)
    data = load_dataset(config.dataset, seed=0)
    teacher_cfg = config.teacher.replace(input_shape=data.input_shape, num_classes=data.num_classes)
    student_cfg = config.student.replace(input_shape=data.input_shape, num_classes=data.num_classes)
    seed = config.seeds[0]
    path = run_dir / f"student_kd_seed{seed}.pt"
    kd_cfg = config.arm_config("student_kd").replace(seed=seed)
    teacher = None
    stale = fresh or not _reusable(path, student_cfg, kd_cfg)
    with showing_progress():  # training nobody asked for: say why first, then show progress
        if stale:  # the student must be (re)trained, from scratch (a stale checkpoint cannot be resumed): it needs the teacher
            t_cfg, t_path = config.teacher_train.replace(seed=0), run_dir / "teacher.pt"
            t_stale = fresh or not _reusable(t_path, teacher_cfg, t_cfg)
            if t_stale:
                logger.warning(_why_training("the teacher", t_path, t_cfg, fresh))
            teacher, _ = _trained(teacher_cfg, t_cfg, None, data, t_path, t_stale, "teacher")
            logger.warning(_why_training(f"the distilled student (seed {seed})", path, kd_cfg, fresh))
        student, _ = _trained(student_cfg, kd_cfg, teacher, data, path, stale, f"student_kd seed {seed}")
    return student, path, data


def _why_training(what, path, train_cfg, fresh) -> str:
    if fresh:
        reason = "fresh=True"
    elif not path.is_file():
        reason = f"{path} is missing"
    else:
        reason = f"{path} was made with other configs or is unfinished"
    return f"training {what} ({train_cfg.epochs} epochs) because {reason}"


def _reusable(path, model_cfg, train_cfg) -> bool:
    """True when ``path`` is a finished checkpoint made with these configs (what ``_trained`` reuses)."""
    if not path.is_file():
        return False
    state = load_checkpoint(path)
    return (state.get("epoch", -1) + 1 >= train_cfg.epochs and state.get("train_config") == train_cfg.to_dict()
            and state.get("model_config") == model_cfg.to_dict())


def _trained(model_cfg, train_cfg, teacher, data, path, fresh, label, view_logits=None):
    """Train, resume an unfinished run of the same configs, or reuse a finished one.

    A checkpoint made with other configs is not resumed (it would mix two runs): it is replaced.
    ``view_logits``: the teacher's answers on the views (``label_views``), or None to run the teacher.
    """
    resume = False
    if not fresh and path.is_file():
        state = load_checkpoint(path)
        same = (state.get("train_config") == train_cfg.to_dict()
                and state.get("model_config") == model_cfg.to_dict())
        if same and state.get("epoch", -1) + 1 >= train_cfg.epochs:
            model = build_model(model_cfg)
            model.load_state_dict(state["model"])
            logger.info(f"{label}: reusing {path}")
            return model.eval(), _seconds_and_steps(state["history"])
        resume = same
        if not same:
            logger.info(f"{label}: {path} was made with other configs; training from scratch")
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg)
    logger.info(f"{label}: training {model_cfg.name}")
    if not resume and path.is_file():
        path.unlink()
    history = distill(teacher, model, data, train_cfg, checkpoint=path, resume=resume, model_config=model_cfg,
                      view_logits=view_logits)
    return model.eval(), _seconds_and_steps(history.epochs)


def _seconds_and_steps(epochs) -> tuple:
    return float(sum(e["seconds"] for e in epochs)), int(epochs[-1].get("steps", -1))


def _row(name, model, accs, secs, seeds=(0,)):
    return {
        "name": name,
        "accuracy": statistics.fmean(accs),
        "accuracy_per_seed": dict(zip([str(s) for s in seeds], accs)),
        **param_bytes(model),
        "train_seconds": statistics.fmean(secs),
    }


def render_table(report) -> str:
    lines = [
        f"# edgekd demo ({report['dataset']}, {report['test_samples']} test images)",
        "",
        f"{report['machine']}, torch {report['torch']}, {report['date']}, `{report['command']}`, "
        f"{report['total_seconds']:.0f} s in all ({report.get('cpu_seconds', 0):.0f} s CPU)",
        "",
        f"Protocol: {report['protocol']}." if "protocol" in report else "",
        "",
        f"| model | test accuracy (mean +- std) | per seed | vs {BASELINE}: paired diff [95% CI] | val accuracy "
        "| params | bytes fp32 | bytes int8 | train s (mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, row in report.items():
        if isinstance(row, dict) and "accuracy" in row and "params" in row:
            per_seed = row.get("accuracy_per_seed", {})
            seeds = ", ".join(f"{v:.4f}" for v in per_seed.values())
            std = row.get("accuracy_std")
            acc = f"{row['accuracy']:.4f}" + (f" +- {std:.4f}" if std is not None and len(per_seed) > 1 else "")
            diff = row.get("vs_" + BASELINE)
            diff_text = format_difference(diff) if diff else ""
            val = f"{row['val_accuracy']:.4f}" if "val_accuracy" in row else ""
            lines.append(f"| {row['name']} | {acc} | {seeds} | {diff_text} | {val} | {row['params']:,} | "
                         f"{row['bytes_fp32']:,} | {row['bytes_int8']:,} | {row.get('train_seconds', 0):.1f} |")
    return "\n".join(lines) + "\n"
