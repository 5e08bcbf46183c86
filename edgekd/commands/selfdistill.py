"""``edgekd selfdistill``: repeated self-distillation experiments (Pareek, Du, Oh 2024).

Regression tables (autompg, boston, diabetes, fair, randhie): test MSE of tuned ridge, 1-step,
2-step and k-step SD over random splits, the paired gain over ridge with a 95% CI, and the spectral
diagnostic that says whether the paper's conditions for a gain hold. ``synthetic``: fixed-design excess risk per number of steps, where the
paper's conditions hold and where they do not. ``mnist5k`` / ``digits8``: accuracy per generation
of a network distilled from its previous generation.
"""
import datetime
from pathlib import Path

TABLES = ("autompg", "boston", "diabetes", "fair", "randhie")
NETWORKS = ("mnist5k", "digits8")
CHOICES = (*TABLES, "synthetic", *NETWORKS)


def add_parser(sub):
    p = sub.add_parser("selfdistill", help="repeated self-distillation: ridge closed form, tables, networks",
                       description="Tuned ridge vs k-step self-distillation on regression tables, the "
                                   "synthetic fixed-design case, or network generations.")
    p.add_argument("--dataset", default="autompg",
                   help=f"one or more (comma-separated) of {', '.join(CHOICES)}, or 'tables' for all five tables")
    p.add_argument("--splits", type=int, default=20, help="random train/val/test splits (tables)")
    p.add_argument("--max-k", type=int, default=None,
                   help="largest number of SD steps (tables: sdk picks k <= this, default 5; synthetic: default d)")
    p.add_argument("--sd-lam", choices=("cv", "ridge"), default="cv",
                   help="SD's ridge lam: chosen with the xis on validation (cv) or ridge's tuned lam")
    p.add_argument("--xi-range", choices=("any", "unit"), default="any",
                   help="'any' real xi (the paper) or keep each xi in [0, 1]")
    p.add_argument("--draws", type=int, default=200, help="noise draws for the synthetic validation column")
    p.add_argument("--model", default="student_mlp", help="network for mnist5k/digits8")
    p.add_argument("--generations", type=int, default=4, help="network generations (0 = trained on labels)")
    p.add_argument("--seeds", type=int, default=1, help="network seeds")
    p.add_argument("--epochs", type=int, default=5, help="epochs per network generation")
    p.add_argument("--alpha", type=float, default=0.5, help="teacher weight for generations >= 1")
    p.add_argument("--out", default=None,
                   help="JSON report to write (atomically); the markdown tables go next to it (.md)")
    p.set_defaults(func=run)
    return p


def _datasets(spec):
    from ..errors import ConfigError, invalid_value

    names = []
    for name in spec.split(","):
        name = name.strip()
        if name == "tables":
            names.extend(TABLES)
        elif name in CHOICES:
            names.append(name)
        else:
            raise ConfigError(invalid_value("dataset", [*CHOICES, "tables"], name))
    return names


METHOD_LABELS = {"ridge": "ridge (lam by CV on train)", "ridge_trainval": "ridge on train+val (reference)",
                 "sd1": "1-step SD", "sd2": "2-step SD", "sdk": "k-step SD (k on val)"}


def _gain_text(gain):
    if "ci95" not in gain:
        return f"{gain['mean']:+.4g}"
    low, high = gain["ci95"]
    return f"{gain['mean']:+.4g} [{low:+.4g}, {high:+.4g}] ({100 * gain['relative']:+.1f}%)"


def format_table(result) -> str:
    """Per method: test MSE mean and std, the paired gain over ridge with its 95% CI, the verdict;
    then the spectral diagnostic."""
    m, diag = result["methods"], result["diagnostic"]
    lines = [f"{result['dataset']} (n={result['n']}, d={result['d']}, target {result['target']}, "
             f"std {result['target_std']:.3g}{', split by unit' if result.get('grouped') else ''}), "
             f"test MSE over {result['config']['splits']} splits; gain = ridge - method, 95% CI",
             f"  {'method':15s} {'mean':>10s} {'std':>9s}  {'gain [95% CI] (relative)':46s} {'verdict':14s} notes"]
    for name, row in m.items():
        gain = row.get("gain")
        notes = []
        if "k" in row:
            notes.append("k chosen " + ", ".join(f"{k}:{c}x" for k, c in row["k"].items()))
        if "xi_outside_unit" in row:
            notes.append(f"xi outside [0,1] in {row['xi_outside_unit']} splits")
        if gain:
            notes.insert(0, f"wins {gain['wins']}")
        lines.append(f"  {name:15s} {row['mean']:10.4g} {row['std']:9.3g}  {_gain_text(gain) if gain else '':46s} "
                     f"{gain.get('verdict', '') if gain else '':14s} {'; '.join(notes)}")
    lines.append(f"  diagnostic (train design, mean over splits): {_diagnostic_text(diag)}")
    lines.append("  singular values / sqrt(n): " + " ".join(f"{v:.3g}" for v in diag["singular_values"]))
    return "\n".join(lines)


def _diagnostic_text(diag) -> str:
    plug = diag["plugin"]
    return (f"s_max/s_min {diag['condition']:.3g}, min relative gap {diag['min_relative_gap']:.3g}; "
            f"ridge solution along top-1 {100 * diag['top1_fraction']:.0f}%, top-3 {100 * diag['top3_fraction']:.0f}%, "
            f"best single direction {100 * diag['max_direction_fraction']:.0f}%; weakest shrinkage r_min "
            f"{diag['shrinkage_min']:.3g}; plug-in oracle: 2-step SD excess risk {plug['ratio']:.3g} x ridge's, "
            f"ridge excess risk {100 * plug['ridge_over_noise']:.2g}% of the noise variance, so at best "
            f"{100 * plug['best_mse_gain']:.2g}% lower MSE")


def format_markdown(report) -> str:
    """The tables of a report as markdown: MSE with paired CIs, then the diagnostic."""
    tables = {k: v for k, v in report["results"].items() if "methods" in v}
    if not tables:
        return ""
    first = next(iter(tables.values()))
    cfg = first["config"]
    lines = [f"# edgekd selfdistill ({report['date']})", "",
             f"Test MSE over {cfg['splits']} random splits (train/val/test {1 - cfg['val_frac'] - cfg['test_frac']:.0%}/"
             f"{cfg['val_frac']:.0%}/{cfg['test_frac']:.0%}), mean ± std (ddof=1). Gain = ridge MSE - method MSE "
             "per split (positive: the method is better), mean [95% t-interval over splits] (relative to ridge), "
             "and the number of splits the method wins.", "",
             "| dataset (n, d) | method | test MSE | gain over ridge [95% CI] | wins | verdict |",
             "|---|---|---|---|---|---|"]
    for name, r in tables.items():
        for i, (method, row) in enumerate(r["methods"].items()):
            label = f"{name} ({r['n']}, {r['d']})" if i == 0 else ""
            gain = row.get("gain")
            extra = ""
            if "k" in row:
                extra = " (k: " + ", ".join(f"{k}×{c}" for k, c in row["k"].items()) + ")"
            lines.append(f"| {label} | {METHOD_LABELS.get(method, method)}{extra} | {row['mean']:.4g} ± {row['std']:.3g} | "
                         f"{_gain_text(gain) if gain else ''} | {gain['wins'] if gain else ''} | "
                         f"{gain.get('verdict', '') if gain else ''} |")
    lines += ["", "Spectral diagnostic of the standardised train design (mean over splits): singular values s, "
              "the tuned ridge solution's squared norm along the singular directions, the weakest direction's "
              "ridge shrinkage r = s²/(s²+lam), and a plug-in oracle (least squares as theta*, its residual "
              "variance as sigma²; the paper's fixed-design setting).", "",
              "| dataset | s_max/s_min | min rel. gap | top-1 | top-3 | best single direction | r_min | "
              "oracle 2-step / ridge excess risk | ridge excess / noise | best MSE gain (oracle 2-step) |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in tables.items():
        d, p = r["diagnostic"], r["diagnostic"]["plugin"]
        lines.append(f"| {name} | {d['condition']:.3g} | {d['min_relative_gap']:.3g} | {100 * d['top1_fraction']:.0f}% | "
                     f"{100 * d['top3_fraction']:.0f}% | {100 * d['max_direction_fraction']:.0f}% | "
                     f"{d['shrinkage_min']:.3g} | {p['ratio']:.3g} | {100 * p['ridge_over_noise']:.2g}% | "
                     f"{100 * p['best_mse_gain']:.2g}% |")
    return "\n".join(lines) + "\n"


def format_synthetic(result) -> str:
    k = len(next(iter(result["cases"].values()))["oracle"])
    head = "  " + f"{'case':18s} {'column':10s}" + "".join(f"{'k=' + str(i):>8s}" for i in range(k))
    lines = [f"synthetic fixed design n={result['n']} d={result['d']} sigma={result['sigma']}: "
             f"excess risk ||X(theta-theta*)||^2/n (k=0 is tuned ridge)", head]
    for name, case in result["cases"].items():
        for col in ("oracle", "validation"):
            lines.append(f"  {name:18s} {col:10s}" + "".join(f"{v:8.4f}" for v in case[col]))
    return "\n".join(lines)


def format_generations(result) -> str:
    lines = [f"{result['dataset']} {result['model']}: test accuracy per generation "
             f"(alpha {result['alpha']}, {result['epochs']} epochs each)"]
    for seed, rows in result["seeds"].items():
        lines.append(f"  seed {seed}: " + "  ".join(f"g{r['generation']} {r['test_accuracy']:.4f}" for r in rows))
    return "\n".join(lines)


def run(args):
    from .. import __version__
    from ..distill.self_distill import SelfDistillConfig, synthetic_experiment, tabular_experiment
    from ..io import atomic_write_json, atomic_write_text

    names = _datasets(args.dataset)
    config = SelfDistillConfig(splits=args.splits, max_k=5 if args.max_k is None else args.max_k, sd_lam=args.sd_lam, xi_range=args.xi_range)
    report = {"args": {k: v for k, v in vars(args).items() if k != "func"},
              "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "edgekd_version": __version__, "results": {}}
    for name in names:
        if name in TABLES:
            result = tabular_experiment(name, config)
            text = format_table(result)
        elif name == "synthetic":
            result = synthetic_experiment(max_k=args.max_k, draws=args.draws)
            text = format_synthetic(result)
        else:
            result = _generations(name, args)
            text = format_generations(result)
        print(text, flush=True)
        report["results"][name] = result
    if args.out:
        atomic_write_json(args.out, report)
        print(f"wrote {args.out}")
        markdown = format_markdown(report)
        if markdown:
            md = Path(args.out).with_suffix(".md")
            atomic_write_text(md, markdown)
            print(f"wrote {md}")


def _generations(name, args):
    import torch

    from ..data import load_dataset
    from ..distill import KDConfig
    from ..distill.self_distill import network_generations
    from ..errors import ConfigError
    from ..models import ModelConfig

    if not 0.0 <= args.alpha <= 1.0:
        raise ConfigError(f"--alpha: must be in [0, 1], got {args.alpha}")
    torch.set_num_threads(1)
    seeds = {}
    for seed in range(args.seeds):
        data = load_dataset(name, seed=seed)
        model_config = ModelConfig(args.model, data.input_shape, data.num_classes, {})
        seeds[str(seed)] = network_generations(data, model_config, generations=args.generations, alpha=args.alpha,
                                               config=KDConfig(epochs=args.epochs, seed=seed), seed=seed)
    return {"dataset": name, "model": args.model, "alpha": args.alpha, "epochs": args.epochs,
            "generations": args.generations, "seeds": seeds}
