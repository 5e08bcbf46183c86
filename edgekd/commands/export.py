"""``edgekd export``: a model file or checkpoint to ONNX / TFLite / TFLite Micro / native C folders, with parity."""
from __future__ import annotations

import argparse

TARGET_CHOICES = ("onnx", "tflite", "tflm", "c", "all")

EXAMPLES = """examples:
  edgekd export model.pt2 --target c --calibration cal.npy --parity held.npy --out exports
  edgekd export net.py:make_model --input-shape 1,3,32,32 --weights sd.pt --calibration cal.npy --out exports
  edgekd export kws_int8.tflite --target c --parity held.npy --out exports
  edgekd export runs/x.pt --dataset mnist5k --target all --out exports      (an edgekd checkpoint)
  edgekd export --demo-student --target tflm --out exports"""


def add_parser(sub):
    p = sub.add_parser("export", help="export a model file or checkpoint to onnx/tflite/tflm/c with a parity record",
                       description="Export a model to each target's folder, proven by parity.json.\n"
                                   "MODEL: a torch.export program (.pt2), FILE.py:factory, a fully-int8 .tflite\n"
                                   "(to tflite, tflm, c; no torch involved) or an edgekd checkpoint. int8 targets\n"
                                   "of a torch model are calibrated on --calibration; parity uses --parity.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", metavar="MODEL",
                   help="model.pt2 (torch.export.save), path/net.py:factory, model.tflite (int8) or an edgekd "
                        "checkpoint .pt; or use --demo-student")
    p.add_argument("--demo-student", action="store_true",
                   help="the demo's distilled student (runs/demo/student_kd_seed0.pt; trained if absent)")
    p.add_argument("--runs", default="runs/demo",
                   help="demo checkpoint folder for --demo-student (default: %(default)s)")
    p.add_argument("--target", default="all", choices=TARGET_CHOICES,
                   help="'all': onnx, tflite, tflm, c (tflite, tflm, c for a .tflite) (default: %(default)s)")
    p.add_argument("--out", default="exports", help="folder; each target is written to OUT/<target>/ "
                                                    "(default: %(default)s)")
    p.add_argument("--precision", default=None, choices=("int8", "fp32"),
                   help="default: int8 for tflite/tflm/c, fp32 for onnx (with --target all, defaults only)")
    p.add_argument("--input-shape", metavar="1,C,H,W",
                   help="input shape, batch 1 first: needed for FILE.py:factory (and a .pt2 with dynamic dims); "
                        "default: taken from the .pt2, .tflite or checkpoint")
    p.add_argument("--weights", metavar="FILE",
                   help="state_dict for FILE.py:factory, read with torch.load(weights_only=True) "
                        "(default: the factory's own initialization)")
    p.add_argument("--calibration", default="256", metavar="FILE|N",
                   help="int8 calibration inputs: a .npy/.npz of float inputs (N, ...) (a .npz: one array or key 'x' "
                        "or 'inputs'); or, for a checkpoint, N seeded train samples of --dataset "
                        "(default: %(default)s)")
    p.add_argument("--parity", default="200", metavar="FILE|N",
                   help="held-out parity inputs: a .npy/.npz (float; int8 codes too for a .tflite); or N: the first "
                        "N test samples of --dataset for a checkpoint, N seeded random inputs in the calibration "
                        "range otherwise (default: %(default)s)")
    p.add_argument("--dataset", default="mnist5k",
                   help="dataset a checkpoint was trained on (calibration, parity, accuracy) (default: %(default)s)")
    p.add_argument("--input-layout", default="nchw", choices=("nchw", "nhwc"),
                   help="layout of the device input for an image model (1,C,H,W): 'nhwc' makes the tflite, tflm "
                        "and c models take (1,H,W,C), an HWC camera buffer as it is, with no leading transpose "
                        "(onnx stays NCHW) (default: %(default)s)")
    p.add_argument("--name", default="model",
                   help="file stem / C identifier of the exported model (default: %(default)s)")
    p.set_defaults(func=run)
    return p


def run(args):
    import json
    from pathlib import Path

    import firmware_export as fe
    from firmware_export.firmware import LAYOUT_TARGETS
    from firmware_export.model_files import LoadedModel, load_model, parse_shape
    from firmware_export.parity import table

    from ..errors import ConfigError
    from ..io import atomic_write_json, atomic_write_text

    if args.demo_student == bool(args.model):
        raise ConfigError("export: give either a MODEL or --demo-student (exactly one)")
    if args.target == "all" and args.precision:
        raise ConfigError("export: --precision applies to a single --target, not 'all'")
    if args.input_layout == "nhwc" and args.target not in LAYOUT_TARGETS + ("all",):
        raise ConfigError(f"export: --input-layout nhwc applies to {', '.join(LAYOUT_TARGETS)}; --target "
                          f"{args.target} keeps the torch model's NCHW input")
    shape = parse_shape(args.input_shape) if args.input_shape else None
    if args.demo_student:
        from ..demo import demo_student

        model, checkpoint, data = demo_student(args.runs, verbose=args.verbose or None)
        loaded = LoadedModel("checkpoint", model.eval(), data.test.x[:1], str(checkpoint))
    else:
        loaded = load_model(args.model, input_shape=shape, weights=args.weights, checkpoint_loader=_rebuild)
        data = _dataset(args.dataset, loaded) if loaded.kind == "checkpoint" else None
    is_tflite = loaded.kind == "tflite"
    if is_tflite and args.input_layout == "nhwc":
        raise ConfigError(f"{loaded.source}: --input-layout applies to torch models; a .tflite keeps the input "
                          f"layout it was converted with {tuple(loaded.input_shape)}")
    targets = _targets(args.target, loaded)
    precisions = {t: args.precision or ("fp32" if t == "onnx" else "int8") for t in targets}
    parity_in, parity_desc = _parity(args.parity, loaded, data)
    calibration, calibration_desc = _calibration(args.calibration, loaded, data)
    needs_int8 = not is_tflite and "int8" in precisions.values()
    graph, quantization = _int8_graph(loaded, calibration, args.calibration, data) if needs_int8 else (None, None)
    out = Path(args.out)
    records, summary = {}, {}
    for target in targets:
        precision = precisions[target]
        int8 = precision == "int8" and not is_tflite
        source = graph if int8 else loaded.model
        folder = out / target
        # calibration_data with an int8 graph: recorded, and the range of random parity inputs
        art = fe.export(source, target, example_input=loaded.example_input, out_dir=folder, precision=precision,
                        name=args.name, calibration_data=calibration, parity_inputs=parity_in,
                        float_reference=loaded.model if int8 else None, verbose=args.verbose or None,
                        input_layout="nhwc" if args.input_layout == "nhwc" and target in LAYOUT_TARGETS
                        else None)  # with --target all, onnx stays NCHW
        records[f"{target}/{precision}"] = art.parity
        entry = {"folder": str(folder), "precision": precision, "passed": art.parity["passed"],
                 "files": [f.name for f in art.files], "runtime": art.config["default_runtime"],
                 "bytes": {f.name: f.stat().st_size for f in art.files}}
        line = f"{target:7s} {precision}  parity {'passed' if art.parity['passed'] else 'FAILED'}"
        if data is not None:
            entry.update(_accuracy(art, source, data))
            line += (f"  test accuracy {entry['test_accuracy_artifact']:.4f} ({art.config['default_runtime']}; "
                     f"torch {entry['test_accuracy_torch']:.4f})")
        summary[target] = entry
        print(f"{line}  -> {folder}")
    print()
    print(table(records))
    record = {"model": loaded.source, "kind": loaded.kind, "input_shape": list(loaded.input_shape),
              "parity_inputs": parity_desc, "calibration": calibration_desc, "targets": summary}
    if loaded.kind == "checkpoint":
        record["checkpoint"] = loaded.source
    if data is not None:
        record.update(dataset=data.name, test_samples=len(data.test))
    if quantization is not None:
        record["quantization"] = quantization
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


def _rebuild(path):
    """An edgekd checkpoint -> (float model, input shape): the loader firmware_export.load_model asks for."""
    from ..checkpoint import load_trained_model

    model, config = load_trained_model(path)
    return model, (1, *config.input_shape)


def _dataset(name, loaded):
    from ..data import load_dataset
    from ..errors import ConfigError

    data = load_dataset(name, seed=0)
    if tuple(data.input_shape) != tuple(loaded.input_shape[1:]):
        raise ConfigError(f"{loaded.source}: model input {tuple(loaded.input_shape[1:])} does not match "
                          f"--dataset {name} samples {tuple(data.input_shape)}")
    return data


def _targets(target, loaded):
    from firmware_export import TFLITE_TARGETS

    from ..errors import ConfigError

    if loaded.kind != "tflite":
        return ["onnx", "tflite", "tflm", "c"] if target == "all" else [target]
    if target == "all":
        return list(TFLITE_TARGETS)
    if target not in TFLITE_TARGETS:
        raise ConfigError(f"{loaded.source}: a .tflite exports to {', '.join(TFLITE_TARGETS)}, not {target}; "
                          "give the torch model (.pt2 or FILE.py:factory) for onnx")
    return [target]


def _is_file(value) -> bool:
    return not str(value).isdigit()


def _count(value, option):
    from ..errors import ConfigError

    n = int(value)
    if n < 1:
        raise ConfigError(f"{option} {value}: expected a file or a count of at least 1")
    return n


def _calibration(value, loaded, data):
    """Calibration inputs from a file (also the range of random parity inputs), or None for a count."""
    import sys

    from firmware_export import load_inputs

    if not _is_file(value):
        n = _count(value, "--calibration")
        return None, f"{n} seeded train samples of {data.name}" if data is not None else None
    if loaded.kind == "tflite":
        print(f"note: {loaded.source} is already int8; --calibration {value} is not used", file=sys.stderr)
        return None, None
    x = load_inputs(value, loaded.input_shape, what="--calibration")
    return x, f"{len(x)} inputs from {value}"


def _int8_graph(loaded, calibration, value, data):
    """The ONE int8 PT2E graph every int8 target of this export converts, and how it was made:
    ``firmware_export.quantize`` (canonical graph, the export's int8 quantizer) for every kind of model."""
    import firmware_export as fe
    from firmware_export.targets.tflite import QUANTIZER_DESC

    from ..errors import ConfigError
    from ..quant.pt2e import Int8Config, calibration_inputs

    if calibration is not None:
        desc = {"method": "ptq", **QUANTIZER_DESC, "calibration_inputs": f"{len(calibration)} from {value}"}
        return fe.quantize(loaded.model, loaded.example_input, calibration), desc
    if data is None:
        sample = ", ".join(map(str, loaded.input_shape[1:]))
        raise ConfigError(f"{loaded.source}: int8 targets need calibration data: pass --calibration FILE.npy with a "
                          f"few hundred representative float inputs shaped (N, {sample}) (a count of --dataset "
                          "samples is for edgekd checkpoints)")
    config = Int8Config(calibration_samples=_count(value, "--calibration"))
    inputs = calibration_inputs(data.train, config)
    return fe.quantize(loaded.model, loaded.example_input, inputs), {**config.to_dict(), **QUANTIZER_DESC}


def _parity(value, loaded, data):
    """Parity inputs: a file, the first N test samples (checkpoints), or a count N of random inputs."""
    from firmware_export import load_inputs

    if _is_file(value):
        quant = loaded.model.input_quant if loaded.kind == "tflite" else None
        x = load_inputs(value, loaded.input_shape, what="--parity", int8_quant=quant)
        return x, f"{len(x)} inputs from {value}"
    n = _count(value, "--parity")
    if data is not None:
        return data.test.x[:n], f"the first {n} test samples of {data.name}"
    return n, f"{n} seeded random inputs (range of the calibration data, or of a .tflite's input)"


def _accuracy(art, source, data) -> dict:
    import numpy as np
    import torch

    from firmware_export.firmware import to_layout

    pred = art.predict(to_layout(data.test.x, art.config.get("input_layout") or "nchw"))
    with torch.no_grad():
        torch_acc = float((source(data.test.x).argmax(1) == data.test.y).float().mean())
    return {"test_accuracy_artifact": float(np.mean(pred.argmax(1) == data.test.y.numpy())),
            "test_accuracy_torch": torch_acc}


def _merge(path, record, json):
    """Keep earlier targets' entries when one target is re-exported."""
    try:
        old = json.loads(path.read_text())
        targets = {**old.get("targets", {}), **record["targets"]}
        return {**record, "targets": targets}
    except (FileNotFoundError, ValueError):
        return record
