"""``edgekd export``: a checkpoint to ONNX / TFLite / TFLite Micro / native C folders, each with parity."""
from __future__ import annotations

TARGET_CHOICES = ("onnx", "tflite", "tflm", "c", "all")


def add_parser(sub):
    p = sub.add_parser("export", help="export a checkpoint to onnx/tflite/tflm/c with a parity record",
                       description="Export an edgekd checkpoint. int8 targets are calibrated on the dataset's "
                                   "train split; parity is measured on held-out test samples.")
    p.add_argument("checkpoint", nargs="?", help="edgekd checkpoint (.pt); or use --demo-student")
    p.add_argument("--demo-student", action="store_true",
                   help="the demo's distilled student (runs/demo/student_kd_seed0.pt; trained if absent)")
    p.add_argument("--runs", default="runs/demo", help="demo checkpoint folder for --demo-student")
    p.add_argument("--target", default="all", choices=TARGET_CHOICES)
    p.add_argument("--out", default="exports", help="folder; each target is written to OUT/<target>/")
    p.add_argument("--precision", default=None, choices=("int8", "fp32"),
                   help="default: int8 for tflite/tflm/c, fp32 for onnx (with --target all, defaults only)")
    p.add_argument("--dataset", default="mnist5k", help="dataset the checkpoint was trained on (calibration, parity)")
    p.add_argument("--calibration", type=int, default=256, help="train samples for int8 calibration")
    p.add_argument("--parity", type=int, default=200, help="held-out test samples for the parity record")
    p.add_argument("--name", default="model", help="file stem / C identifier of the exported model")
    p.set_defaults(func=run)
    return p


def run(args):
    import json
    from pathlib import Path

    import numpy as np
    import torch

    import firmware_export as fe
    from firmware_export.parity import table

    from ..checkpoint import load_checkpoint
    from ..data import load_dataset
    from ..errors import ConfigError
    from ..io import atomic_write_json, atomic_write_text
    from ..models import ModelConfig, build_model
    from ..quant.pt2e import Int8Config, quantize

    if args.demo_student == bool(args.checkpoint):
        raise ConfigError("export: give either a CHECKPOINT or --demo-student (exactly one)")
    if args.target == "all" and args.precision:
        raise ConfigError("export: --precision applies to a single --target, not 'all'")
    if args.demo_student:
        from ..demo import demo_student

        model, checkpoint, data = demo_student(args.runs, verbose=args.verbose or None)
    else:
        checkpoint = Path(args.checkpoint)
        state = load_checkpoint(checkpoint)
        if not state.get("model_config"):
            raise ConfigError(f"{checkpoint}: no model_config stored; cannot rebuild the model")
        model_config = ModelConfig.from_dict(state["model_config"])
        model = build_model(model_config)
        model.load_state_dict(state["model"])
        data = load_dataset(args.dataset, seed=0)
        if tuple(data.input_shape) != tuple(model_config.input_shape):
            raise ConfigError(f"{checkpoint}: model input {tuple(model_config.input_shape)} does not match "
                              f"--dataset {args.dataset} samples {tuple(data.input_shape)}")
    model.eval()
    targets = ["onnx", "tflite", "tflm", "c"] if args.target == "all" else [args.target]
    held = data.test.x[:args.parity]
    example = data.test.x[:1]
    # ONE int8 graph for every int8 target: PT2E PTQ on seeded train samples
    int8 = Int8Config(calibration_samples=args.calibration)
    needs_int8 = any((args.precision or ("fp32" if t == "onnx" else "int8")) == "int8" for t in targets)
    graph = quantize(model, int8, data) if needs_int8 else None
    out = Path(args.out)
    records, summary = {}, {}
    for target in targets:
        precision = args.precision or ("fp32" if target == "onnx" else "int8")
        source = graph if precision == "int8" else model
        folder = out / target
        art = fe.export(source, target, example_input=example, out_dir=folder, precision=precision, name=args.name,
                        parity_inputs=held, float_reference=model if precision == "int8" else None,
                        verbose=args.verbose or None)
        pred = art.predict(data.test.x)
        acc = float(np.mean(pred.argmax(1) == data.test.y.numpy()))
        with torch.no_grad():
            torch_acc = float((((graph if precision == "int8" else model)(data.test.x)).argmax(1) == data.test.y)
                              .float().mean())
        records[f"{target}/{precision}"] = art.parity
        summary[target] = {"folder": str(folder), "precision": precision, "passed": art.parity["passed"],
                           "files": [f.name for f in art.files], "test_accuracy_artifact": acc,
                           "test_accuracy_torch": torch_acc, "runtime": art.config["default_runtime"],
                           "bytes": {f.name: f.stat().st_size for f in art.files}}
        print(f"{target:7s} {precision}  parity {'passed' if art.parity['passed'] else 'FAILED'}  "
              f"test accuracy {acc:.4f} ({art.config['default_runtime']}; torch {torch_acc:.4f})  -> {folder}")
    print()
    print(table(records))
    record = {"checkpoint": str(checkpoint), "dataset": data.name, "test_samples": len(data.test),
              "parity_inputs": len(held), "calibration_samples": args.calibration,
              "quantization": int8.to_dict(), "targets": summary}
    merged = _merge(out / "exports.json", record, json)
    atomic_write_json(out / "exports.json", merged)
    every = {}
    for target, entry in merged["targets"].items():  # the table over every folder now in OUT
        try:
            every[f"{target}/{entry['precision']}"] = json.loads((Path(entry["folder"]) / "parity.json").read_text())
        except (FileNotFoundError, ValueError):
            continue
    atomic_write_text(out / "parity.md", table(every) + "\n")
    return 0


def _merge(path, record, json):
    """Keep earlier targets' entries when one target is re-exported."""
    try:
        old = json.loads(path.read_text())
        targets = {**old.get("targets", {}), **record["targets"]}
        return {**record, "targets": targets}
    except (FileNotFoundError, ValueError):
        return record
