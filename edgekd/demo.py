"""The end-to-end demo: teacher, student alone, student distilled (scheduled alpha + curriculum).

Writes ``reports/demo.json`` and ``reports/demo.md`` and keeps checkpoints under ``runs/demo/``
(the distilled student there is what ``make export`` exports). Later stages (quantization,
export, benchmarks) add rows through :data:`EXTRA_STAGES`.
"""
from __future__ import annotations

import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import load_checkpoint
from .config import Config, register
from .distill import AlphaSchedule, Curriculum, KDConfig, distill, evaluate, train_config
from .data import load_dataset
from .io import atomic_write_json, atomic_write_text
from .log import logger, set_log_level, showing_progress
from .models import ModelConfig, build_model


@register("demo")
@dataclass
class DemoConfig(Config):
    dataset: str = "mnist5k"
    seeds: tuple[int, ...] = (0, 1, 2)
    teacher: ModelConfig = field(default_factory=lambda: ModelConfig("teacher_cnn", options={"width": 32}))
    student: ModelConfig = field(default_factory=lambda: ModelConfig("student_cnn", options={"width": 8}))
    teacher_train: KDConfig = field(default_factory=lambda: train_config(
        epochs=25, lr=3e-3, lr_schedule="cosine"))
    student_train: KDConfig = field(default_factory=lambda: train_config(
        epochs=20, lr=3e-3, lr_schedule="cosine"))
    # A tiny student cannot follow a very soft teacher (capacity gap): T=2, not Hinton's 4+.
    student_kd_const: KDConfig = field(default_factory=lambda: KDConfig(
        epochs=20, lr=3e-3, lr_schedule="cosine", temperature=2.0, alpha=AlphaSchedule("constant", 0.5, 0.5)))
    student_kd_sched: KDConfig = field(default_factory=lambda: KDConfig(
        epochs=20, lr=3e-3, lr_schedule="cosine", temperature=2.0,
        alpha=AlphaSchedule("exponential", start=0.9, end=0.3, rate=3.0)))
    student_kd: KDConfig = field(default_factory=lambda: KDConfig(
        epochs=20, lr=3e-3, lr_schedule="cosine", temperature=2.0,
        alpha=AlphaSchedule("exponential", start=0.9, end=0.3, rate=3.0),
        curriculum=Curriculum("confidence", "linear", start=0.8, saturate=0.3)))

    def arms(self):
        """(name, KD config, uses the teacher) for each student arm, in table order."""
        return [("student_alone", self.student_train, False), ("student_kd_const", self.student_kd_const, True),
                ("student_kd_sched", self.student_kd_sched, True), ("student_kd", self.student_kd, True)]


def param_bytes(model) -> dict:
    """Parameter count and storage at fp32 and int8 (int8 weights, int32 biases)."""
    params = sum(p.numel() for p in model.parameters())
    biases = sum(p.numel() for n, p in model.named_parameters() if n.endswith("bias"))
    return {"params": params, "bytes_fp32": 4 * params, "bytes_int8": (params - biases) + 4 * biases}


# Each extra stage: fn(context: dict) -> list of table rows; appended by later stages of the pipeline.
EXTRA_STAGES: list = []


def _quant_stage(context):
    from .quant.stage import quant_rows  # lazy: torchao / litert-torch / brevitas load only when the demo runs

    return quant_rows(context)


EXTRA_STAGES.append(_quant_stage)  # rows: int8 PTQ, int8 QAT, 4-bit brevitas (issue 3)


def run_demo(config: DemoConfig = None, *, out_dir="reports", run_dir="runs/demo", fresh=False, verbose=None):
    set_log_level(verbose)
    config = config or DemoConfig()
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    t_start = time.perf_counter()
    data = load_dataset(config.dataset, seed=0)
    teacher_cfg = config.teacher.replace(input_shape=data.input_shape, num_classes=data.num_classes)
    student_cfg = config.student.replace(input_shape=data.input_shape, num_classes=data.num_classes)

    teacher, teacher_seconds = _trained(teacher_cfg, config.teacher_train.replace(seed=0), None, data,
                                        run_dir / "teacher.pt", fresh, "teacher")
    rows = {"teacher": _row("teacher", teacher, data, [evaluate(teacher, data.test)], [teacher_seconds])}
    for arm, kd_cfg, uses_teacher in config.arms():
        t = teacher if uses_teacher else None
        accs, secs = [], []
        for seed in config.seeds:
            student, seconds = _trained(student_cfg, kd_cfg.replace(seed=seed), t, data,
                                        run_dir / f"{arm}_seed{seed}.pt", fresh, f"{arm} seed {seed}")
            accs.append(evaluate(student, data.test))
            secs.append(seconds)
        rows[arm] = _row(arm, student, data, accs, secs, seeds=config.seeds)

    context = {"config": config, "data": data, "teacher": teacher, "run_dir": run_dir,
               "student_cfg": student_cfg, "student_kd_checkpoint": run_dir / f"student_kd_seed{config.seeds[0]}.pt"}
    for stage in EXTRA_STAGES:
        for row in stage(context):
            rows[row["name"]] = row
    report = {
        "dataset": config.dataset,
        "test_samples": len(data.test),
        **rows,
        "config": config.to_dict(),
        "machine": f"{platform.machine()} {platform.system()}, {torch.get_num_threads()} torch threads",
        "date": time.strftime("%Y-%m-%d"),
        "torch": torch.__version__,
        "total_seconds": time.perf_counter() - t_start,
        "command": "make demo",
    }
    atomic_write_json(out_dir / "demo.json", report)
    table = render_table(report)
    atomic_write_text(out_dir / "demo.md", table)
    print(table)
    return report


def demo_student(run_dir="runs/demo", *, config: DemoConfig = None, fresh=False, verbose=None):
    """The demo's distilled student (seed 0) as ``(model, checkpoint_path, data)``.

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
    kd_cfg = config.student_kd.replace(seed=seed)
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


def _trained(model_cfg, train_cfg, teacher, data, path, fresh, label):
    """Train, resume an unfinished run of the same configs, or reuse a finished one.

    A checkpoint made with other configs is not resumed (it would mix two runs): it is replaced.
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
            return model.eval(), float(sum(e["seconds"] for e in state["history"]))
        resume = same
        if not same:
            logger.info(f"{label}: {path} was made with other configs; training from scratch")
    torch.manual_seed(train_cfg.seed)
    model = build_model(model_cfg)
    logger.info(f"{label}: training {model_cfg.name}")
    if not resume and path.is_file():
        path.unlink()
    history = distill(teacher, model, data, train_cfg, checkpoint=path, resume=resume, model_config=model_cfg)
    return model.eval(), float(sum(e["seconds"] for e in history.epochs))


def _row(name, model, data, accs, secs, seeds=(0,)):
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
        f"{report['total_seconds']:.0f} s in all",
        "",
        "| model | test accuracy (mean) | per seed | params | bytes fp32 | bytes int8 | train s (mean) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, row in report.items():
        if isinstance(row, dict) and "accuracy" in row and "params" in row:
            seeds = ", ".join(f"{v:.4f}" for v in row.get("accuracy_per_seed", {}).values())
            lines.append(f"| {row['name']} | {row['accuracy']:.4f} | {seeds} | {row['params']:,} | "
                         f"{row['bytes_fp32']:,} | {row['bytes_int8']:,} | {row.get('train_seconds', 0):.1f} |")
    return "\n".join(lines) + "\n"
