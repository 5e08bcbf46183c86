"""``edgekd bci ablation``: the LDC scheduled-KD ablation with baselines; writes reports/bci.json."""


def add_parser(sub):
    p = sub.add_parser("bci", help="EEG motor-imagery BCI experiments")
    verbs = p.add_subparsers(dest="bci_verb", metavar="VERB", required=True)
    a = verbs.add_parser("ablation", help="LDC with/without (scheduled) KD and curriculum, teacher, CSP+LDA, HDC",
                         description="Mean/std over seeds of every arm. Without --data the synthetic "
                                     "motor-imagery set is written first (edgekd data eeg synthetic).")
    a.add_argument("--data", default=None, help="data root holding the dataset (default: synthetic set)")
    a.add_argument("--dataset", default="eegbci", choices=["eegbci", "bci_iv_2a"])
    a.add_argument("--subjects", type=int, nargs="*", default=None, help="subjects to use (default: all found)")
    a.add_argument("--synthetic-out", default="runs/bci/synthetic_mi", help="where the synthetic set is written")
    a.add_argument("--synthetic-subjects", type=int, default=20)
    a.add_argument("--seeds", type=int, default=5)
    a.add_argument("--config", default=None, help="AblationConfig JSON file (type 'bci_ablation')")
    a.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an AblationConfig field (JSON value), e.g. --set dim=128")
    a.add_argument("--out", default="reports/bci.json")
    a.set_defaults(func=run_ablation_cmd)
    return p


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


def run_ablation_cmd(args):
    import datetime
    import platform
    import time
    from pathlib import Path

    from ..bci import AblationConfig, run_ablation
    from ..config import Config, load_config
    from ..data.eeg import load_trials
    from ..data.eeg.synthetic import is_synthetic
    from ..errors import ConfigError
    from ..io import atomic_write_json, atomic_write_text
    from .distill import apply_overrides

    base = load_config(args.config) if args.config else AblationConfig()
    if not isinstance(base, AblationConfig):
        raise ConfigError(f"{args.config}: expected a config of type 'bci_ablation', got {base._type_name!r}")
    cfg = Config.from_dict(apply_overrides(base.replace(seeds=args.seeds).to_dict(), args.set))
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
        "config": cfg.to_dict(), "seconds": round(time.perf_counter() - t0, 1), "machine": platform.machine(),
    }
    atomic_write_json(args.out, result)
    md = Path(args.out).with_suffix(".md")
    atomic_write_text(md, table(result))
    print(table(result))
    print(f"wrote {args.out} and {md}")


def table(result) -> str:
    """A markdown table of every arm (mean +- std over seeds, bytes)."""
    meta = result.get("meta", {})
    lines = [f"| arm | accuracy (mean +- std over {meta.get('config', {}).get('seeds', '?')} seeds) | model bytes |",
             "|---|---|---|"]
    for arm, row in result.items():
        if arm == "meta":
            continue
        lines.append(f"| {arm} | {row['accuracy']:.3f} +- {row['accuracy_std']:.3f} | {row['model_bytes']:,} |")
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
