"""``edgekd selfdistill``: repeated self-distillation experiments (Pareek, Du, Oh 2024).

Regression tables (autompg, boston, diabetes): test MSE of tuned ridge, 1-step, 2-step and k-step
SD over random splits. ``synthetic``: fixed-design excess risk per number of steps, where the
paper's conditions hold and where they do not. ``mnist5k`` / ``digits8``: accuracy per generation
of a network distilled from its previous generation.
"""
import datetime

TABLES = ("autompg", "boston", "diabetes")
NETWORKS = ("mnist5k", "digits8")
CHOICES = (*TABLES, "synthetic", *NETWORKS)


def add_parser(sub):
    p = sub.add_parser("selfdistill", help="repeated self-distillation: ridge closed form, tables, networks",
                       description="Tuned ridge vs k-step self-distillation on regression tables, the "
                                   "synthetic fixed-design case, or network generations.")
    p.add_argument("--dataset", default="autompg",
                   help=f"one or more (comma-separated) of {', '.join(CHOICES)}, or 'tables' for all three tables")
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
    p.add_argument("--out", default=None, help="JSON report to write (atomically)")
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


def format_table(result) -> str:
    """Rows 'method  mean  std  vs ridge' for one table's result."""
    m = result["methods"]
    lines = [f"{result['dataset']} (n={result['n']}, d={result['d']}, target std {result['target_std']:.2f}), "
             f"test MSE over {result['config']['splits']} splits",
             f"  {'method':8s} {'mean':>10s} {'std':>9s} {'vs ridge':>9s} {'wins':>5s}  notes"]
    for name, row in m.items():
        rel = f"{100 * row['vs_ridge']['relative']:+8.1f}%" if "vs_ridge" in row else f"{'':9s}"
        wins = f"{row['vs_ridge']['wins']:5d}" if "vs_ridge" in row else f"{'':5s}"
        notes = []
        if "k" in row:
            notes.append("k chosen " + ", ".join(f"{k}:{c}x" for k, c in row["k"].items()))
        if "xi_outside_unit" in row:
            notes.append(f"xi outside [0,1] in {row['xi_outside_unit']} splits")
        lines.append(f"  {name:8s} {row['mean']:10.3f} {row['std']:9.3f} {rel} {wins}  {'; '.join(notes)}")
    return "\n".join(lines)


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
    from ..io import atomic_write_json

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
