"""Seed spread of the digits8 headline: DMD2 one step vs the teacher's 32 Euler steps.

Retrains only the one-step DMD2 generator (the preset's config, other ``DMD2Config.seed`` values)
from the saved teacher of ``edgekd generators --dataset digits8`` and scores it with the same
FD-LeNet scorer and 2,000 evaluation noises; scores the teacher at 32 Euler steps on the
evaluation noise and on other noise sets (the spread that comes from the noise alone). One JSON:

    python -m benchmarks.generators_seeds runs/generators/digits8 reports/generators_seeds.json --teacher 5 6

(``--teacher``: also score the teacher on three noise sets; ``--teacher-curve``: retrain the teacher
with the preset's config and seed, recording its FD-LeNet curve on the run's 500-noise probe and
whether the final weights equal the saved ones; ``--cud-curve``: the same for CUD; the seeds are ``DMD2Config.seed`` values, the
preset's is 4.)
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch


def main(run_dir, out_json, *seeds):
    from edgekd.checkpoint import load_checkpoint
    from edgekd.generative.dmd2 import train_dmd2
    from edgekd.generative.run import (batched, euler, evaluation_context, gen_sampler, load_images, preset,
                                       to_image, to_model)
    from edgekd.models.unet import UNet

    torch.set_num_threads(1)
    config = preset("digits8")
    scorer, noise = evaluation_context(config)
    shape = tuple(noise.shape[1:])
    teacher = UNet(shape, config.channels)
    teacher.load_state_dict(load_checkpoint(Path(run_dir) / "teacher.pt")["model"])
    teacher.eval()
    res = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "teacher_euler_32": {}, "dmd2_1": {}}
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    for noise_seed in (1, 101, 201) if "--teacher" in seeds else ():   # 1 = the evaluation noise (config.seed + 1)
        z = torch.randn(config.n_samples, *shape, generator=torch.Generator().manual_seed(noise_seed))
        res["teacher_euler_32"][str(noise_seed)] = scorer.fd(to_image(batched(lambda b: euler(32)(teacher, b), z)))
        print("teacher euler 32, noise seed", noise_seed, res["teacher_euler_32"][str(noise_seed)], flush=True)
    x_train = to_model(load_images(config).train.x)
    if "--teacher-curve" in seeds:
        from edgekd.generative.flow import train_flow
        from edgekd.generative.run import curve_monitor

        probe = torch.randn(config.curve_samples, *shape, generator=torch.Generator().manual_seed(config.seed + 2))
        curves = {}
        mon = curve_monitor(curves, "teacher", scorer, probe, {"euler_8": euler(8), "euler_32": euler(32)}, "step")
        torch.manual_seed(config.seed)
        t0 = time.perf_counter()
        retrained, _ = train_flow(UNet(shape, config.channels), x_train, config.teacher, monitor=mon)
        res["teacher_curve"] = {**curves["teacher"], "wall_s": round(time.perf_counter() - t0, 1),
                                "equals_saved_teacher": all(torch.equal(a, b) for a, b in zip(
                                    retrained.state_dict().values(), teacher.state_dict().values()))}
        print("teacher curve", res["teacher_curve"], flush=True)
        Path(out_json).write_text(json.dumps(res, indent=1))
    if "--cud-curve" in seeds:
        from edgekd.generative.cud import build_cud_model, train_cud
        from edgekd.generative.run import cud_sampler, curve_monitor

        probe = torch.randn(config.curve_samples, *shape, generator=torch.Generator().manual_seed(config.seed + 2))
        curves = {}
        mon = curve_monitor(curves, "cud", scorer, probe, {"euler_4": cud_sampler(4), "euler_16": cud_sampler(16)},
                            "step")
        saved = build_cud_model(shape, config.channels, config.cud)
        saved.load_state_dict(load_checkpoint(Path(run_dir) / "cud.pt")["model"])
        torch.manual_seed(config.seed)
        t0 = time.perf_counter()
        retrained, _ = train_cud(build_cud_model(shape, config.channels, config.cud), x_train, config.cud, monitor=mon)
        res["cud_curve"] = {**curves["cud"], "wall_s": round(time.perf_counter() - t0, 1),
                            "equals_saved_cud": all(torch.equal(a, b) for a, b in zip(
                                retrained.state_dict().values(), saved.state_dict().values()))}
        print("cud curve", res["cud_curve"], flush=True)
        Path(out_json).write_text(json.dumps(res, indent=1))
    for seed in (s for s in seeds if not s.startswith("--")):
        t0 = time.perf_counter()
        cfg = config.dmd2_1.replace(seed=int(seed))
        gen, _, _, _ = train_dmd2(teacher, x_train, cfg)
        fd = scorer.fd(to_image(batched(lambda b: gen_sampler(cfg.generator_ts)(gen, b), noise)))
        res["dmd2_1"][str(seed)] = {"fd": fd, "wall_s": round(time.perf_counter() - t0, 1)}
        print("dmd2 1-step seed", seed, res["dmd2_1"][str(seed)], flush=True)
        Path(out_json).write_text(json.dumps(res, indent=1))
    Path(out_json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
