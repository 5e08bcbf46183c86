"""``edgekd bci ablation``: the LDC scheduled-KD ablation with baselines; writes reports/bci.json."""


def add_parser(sub):
    p = sub.add_parser("bci", help="EEG motor-imagery BCI experiments")
    verbs = p.add_subparsers(dest="bci_verb", metavar="VERB", required=True)
    a = verbs.add_parser("ablation", help="LDC with/without (scheduled) KD and curriculum, teacher, CSP+LDA, HDC",
                         description="Mean/std (ddof 1) over seeds of every arm and each arm's paired "
                                     "difference to ldc_no_kd with a 95%% t-interval; KD settings are chosen on "
                                     "the validation split. Without --data the synthetic motor-imagery set is "
                                     "written first (edgekd data eeg synthetic).")
    a.add_argument("--data", default=None, help="data root holding the dataset (default: synthetic set)")
    a.add_argument("--dataset", default="eegbci", choices=["eegbci", "bci_iv_2a"],
                   help="EEGMMI (EDF) or BCI Competition IV-2a (GDF) files under --data")
    a.add_argument("--subjects", type=int, nargs="*", default=None, help="subjects to use (default: all found)")
    a.add_argument("--synthetic-out", default="runs/bci/synthetic_mi",
                   help="where the synthetic set is written when --data is not given")
    a.add_argument("--synthetic-subjects", type=int, default=20, help="subjects of the synthetic set")
    a.add_argument("--seeds", type=int, default=10, help="seeds per arm (paired 95%% CIs need at least 2)")
    a.add_argument("--config", default=None, help="AblationConfig JSON file (type 'bci_ablation')")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an AblationConfig field (JSON value), e.g. --set dim=128")
    a.add_argument("--out", default="reports/bci.json", help="JSON report; the markdown table goes next to it (.md)")
    a.set_defaults(func=run_ablation_cmd)

    e = verbs.add_parser("export", help="train one teacher + LDC student and export them (LDC C, EEGNet int8)",
                         description="LDC -> native C (bit-exact parity on the test trials); EEGNet -> int8 "
                                     "through the normal export targets; summary.json with artifact accuracies.")
    e.add_argument("--data", default=None, help="data root (default: the synthetic set, written if absent)")
    e.add_argument("--dataset", default="eegbci", choices=["eegbci", "bci_iv_2a"],
                   help="EEGMMI (EDF) or BCI Competition IV-2a (GDF) files under --data")
    e.add_argument("--subjects", type=int, nargs="*", default=None, help="subjects to use (default: all found)")
    e.add_argument("--synthetic-out", default="runs/bci/synthetic_mi",
                   help="where the synthetic set is written when --data is not given")
    e.add_argument("--synthetic-subjects", type=int, default=20, help="subjects of the synthetic set")
    e.add_argument("--seed", type=int, default=0, help="seed of the trained teacher and student")
    e.add_argument("--arm", default="ldc_scheduled_curriculum", help="which LDC variant to export")
    e.add_argument("--target", nargs="*", default=["tflite", "c"], help="export targets for the int8 teacher")
    e.add_argument("--config", default=None, help="AblationConfig JSON file (type 'bci_ablation')")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override an AblationConfig field")
    e.add_argument("--out", default="exports/bci", help="folder: ldc/, eegnet_<target>/ and summary.json")
    e.set_defaults(func=run_export_cmd)
    return p


def run_export_cmd(args):
    import json
    from pathlib import Path

    import torch

    from ..bci.ablation import train_for_export
    from ..data.eeg import load_trials
    from ..io import atomic_write_json

    from firmware_export import export
    from firmware_export.targets.ldc_c import export_ldc_c

    root = Path(args.data) if args.data else _synthetic(args)
    trials = load_trials(args.dataset, path=root, subjects=args.subjects, verbose=args.verbose or None)
    r = train_for_export(trials, args.seed, _config(args), args.arm)
    out = Path(args.out)
    ldc = r["ldc"]
    art = export_ldc_c(ldc.export_packed(), out / "ldc", name="bci_ldc", parity_levels=r["test_levels"],
                       expected_scores=ldc.decision_function(r["test_levels"]))
    summary = {"seed": args.seed, "data": str(root), "test_trials": len(r["test"]), "ldc": {
        "arm": args.arm, "folder": str(out / "ldc"), "model_bytes": art.model_bytes,
        "quantizer_bytes": 4 * r["quantizer"].edges_.size, "parity": art.parity,
        "accuracy_python": float(ldc.score(r["test_levels"], r["test_y"])),
        "accuracy_c": float((ldc.classes_[art.predict(r["test_levels"])] == r["test_y"]).mean())}}
    teacher = r["teacher"].eval()
    x_test = torch.from_numpy(r["test_x"][:, None])
    with torch.no_grad():
        summary["teacher_fp32_accuracy"] = float((teacher(x_test).argmax(1).numpy() == r["test_y"]).mean())
    calib = torch.from_numpy(trials.x[r["fit"][:256], None])
    for target in args.target:
        t_art = export(teacher, target=target, example_input=x_test[:1], out_dir=out / f"eegnet_{target}",
                       calibration_data=calib, parity_inputs=x_test, name="eegnet")
        pred = t_art.predict(x_test.numpy()).argmax(1)
        summary[f"eegnet_{target}"] = {"folder": str(out / f"eegnet_{target}"), "precision": t_art.precision,
                                       "parity_passed": bool(t_art.parity.get("passed")),
                                       "accuracy": float((pred == r["test_y"]).mean()),
                                       "file_bytes": sum(f.stat().st_size for f in t_art.files)}
    atomic_write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=2, default=str))


def _synthetic(args):
    import json
    from pathlib import Path

    from ..data.eeg import SyntheticMIConfig, write_synthetic_mi
    from ..data.eeg.synthetic import MARKER

    cfg = SyntheticMIConfig(subjects=args.synthetic_subjects)
    marker = Path(args.synthetic_out) / "MNE-eegbci-data" / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("config") == cfg.to_dict():
        return Path(args.synthetic_out)  # same config: the files are the same
    return write_synthetic_mi(args.synthetic_out, cfg)


def _config(args, **fixed):
    from ..bci import AblationConfig
    from ..config import Config, load_config
    from ..errors import ConfigError
    from .distill import apply_overrides

    base = load_config(args.config) if args.config else AblationConfig()
    if not isinstance(base, AblationConfig):
        raise ConfigError(f"{args.config}: expected a config of type 'bci_ablation', got {base._type_name!r}")
    return Config.from_dict(apply_overrides(base.replace(**fixed).to_dict(), args.set))


def run_ablation_cmd(args):
    import datetime
    import platform
    import time
    from pathlib import Path

    from ..bci import run_ablation
    from ..data.eeg import load_trials
    from ..data.eeg.preprocess import BANDS
    from ..data.eeg.synthetic import is_synthetic
    from ..io import atomic_write_json, atomic_write_text

    cfg = _config(args, seeds=args.seeds)
    root = Path(args.data) if args.data else _synthetic(args)
    t0 = time.perf_counter()
    trials = load_trials(args.dataset, path=root, subjects=args.subjects, verbose=args.verbose or None)
    result = run_ablation(trials, cfg, verbose=args.verbose or None)
    result["meta"] = {
        "command": "edgekd bci ablation " + " ".join(_argv(args)),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "dataset": args.dataset, "data": str(root), "synthetic": args.dataset == "eegbci" and is_synthetic(root),
        "trials": len(trials), "channels": len(trials.ch_names), "samples": int(trials.x.shape[-1]),
        "sfreq": trials.sfreq, "subjects": sorted(set(trials.subject.tolist())),
        "num_features": len(trials.ch_names) * len(BANDS) + (4 if cfg.use_csp_features else 0),
        "num_classes": len(trials.classes), "num_levels": cfg.num_levels, "dim": cfg.dim,
        "config": cfg.to_dict(), "seconds": round(time.perf_counter() - t0, 1), "machine": platform.machine(),
    }
    atomic_write_json(args.out, result)
    md = Path(args.out).with_suffix(".md")
    atomic_write_text(md, table(result))
    print(table(result))
    print(f"wrote {args.out} and {md}")


def table(result) -> str:
    """A markdown table of every arm (mean +- std over seeds, per seed, paired difference to ldc_no_kd)."""
    from ..bci.ablation import BASELINE
    from ..stats import format_difference

    meta = result.get("meta", {})
    arms = [arm for arm, row in result.items() if isinstance(row, dict) and "accuracy_per_seed" in row]
    n = len(result[arms[0]]["accuracy_per_seed"]) if arms else 0
    lines = [f"| arm | accuracy (mean +- std over {n} seeds) | per seed | vs {BASELINE}: paired diff [95% CI] "
             "| established | model bytes |", "|---|---|---|---|---|---|"]
    for arm in arms:
        row = result[arm]
        per_seed = " ".join(f"{v:.3f}" for v in row["accuracy_per_seed"])
        diff = row.get("vs_" + BASELINE)
        text = format_difference(diff) if diff else ""
        established = ("yes" if diff["established"] else "no") if diff else ""
        std = f"{row['accuracy_std']:.3f}" if n > 1 else "-"
        lines.append(f"| {arm} | {row['accuracy']:.3f} +- {std} | {per_seed} | {text} | {established} | "
                     f"{row['model_bytes']:,} |")
    selection = result.get("selection")
    if selection:
        from ..config import Config

        sched, cur = Config.from_dict(selection["schedule"]), Config.from_dict(selection["curriculum"])
        lines += ["", f"Chosen on the validation split: T = {selection['temperature']}, constant alpha = "
                      f"{selection['const_alpha']}, schedule {sched.kind} {sched.start} -> {sched.end}, curriculum "
                      f"{cur.by} {cur.pacing} start {cur.start} saturate {cur.saturate}."]
    if meta:
        lines += ["", f"`{meta.get('command', '')}`, {meta.get('date', '')}, {meta.get('seconds', '?')} s, "
                      f"{meta.get('trials', '?')} trials{' (synthetic)' if meta.get('synthetic') else ''}."]
    return "\n".join(lines) + "\n"


def _argv(args):
    out = []
    if args.data:
        out += ["--data", args.data]
    if args.dataset != "eegbci":
        out += ["--dataset", args.dataset]
    out += ["--seeds", str(args.seeds), "--out", args.out]
    for s in args.set:
        out += ["--set", s]
    return out
