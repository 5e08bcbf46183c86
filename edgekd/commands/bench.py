"""``edgekd bench``: a model on Cortex-M cores (estimated) and host runtimes (measured); one table,
bench.json and an HTML report."""
from __future__ import annotations

import argparse

EXAMPLES = """examples:
  edgekd bench exports/c --out reports/mine                 an export folder (or a folder of them)
  edgekd bench net.py:make_model --input-shape 1,3,32,32 --weights sd.pt --calibration cal.npy --out reports/net
  edgekd bench model.pt2 --cores m4,m7 --out reports/mine   (also: an int8 .tflite, an edgekd checkpoint)
  edgekd bench exports --clock m4=80 --runtimes native-c,tflm --out reports/mine
  edgekd bench --demo --zoo --out reports                   what `make bench` runs"""


def add_parser(sub):
    from benchmarks.bench import CORE_ALIASES, DEFAULT_CLOCK_MHZ, DEFAULT_RUNTIMES

    clocks = ",".join(f"{alias}={DEFAULT_CLOCK_MHZ[core]:g}" for alias, core in CORE_ALIASES.items() if alias != "m0+")
    p = sub.add_parser(
        "bench", help="measure a model: Cortex-M flash/RAM/cycles (estimated) and host latency per runtime",
        description="Measure MODEL on Cortex-M cores (cross-built, emulated: cycles and ms are ESTIMATES) and "
                    "on host runtimes (latency MEASURED, 1 thread, the same input). Prints one table, writes "
                    "OUT/bench.json and OUT/report.html.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="an export folder (edgekd export --out DIR, or one target's folder), or a model exported "
                        "first: a .pt2, FILE.py:factory, a fully-int8 .tflite or an edgekd checkpoint")
    p.add_argument("--out", required=True, metavar="DIR", help="bench.json, report.html and report.md go here")
    p.add_argument("--cores", default=",".join(a for a in CORE_ALIASES if a != "m0+"), metavar="LIST",
                   help="Cortex-M cores, or 'none' (default: %(default)s)")
    p.add_argument("--clock", default="", metavar="CORE=MHZ,...",
                   help=f"clock per core for the ms estimate (default: {clocks}: the MLPerf Tiny boards' "
                        "clocks, M0+ a common 48 MHz part)")
    p.add_argument("--runtimes", default=",".join(DEFAULT_RUNTIMES), metavar="LIST",
                   help="host runtimes, or 'none' (default: %(default)s)")
    p.add_argument("--input-shape", metavar="1,C,H,W",
                   help="input shape, batch 1 first: needed for FILE.py:factory (default: from the model file)")
    p.add_argument("--weights", metavar="FILE", help="state_dict for FILE.py:factory (default: its own initialization)")
    p.add_argument("--calibration", default=None, metavar="FILE|N",
                   help="int8 calibration inputs for a torch model: a .npy/.npz of float inputs (N, ...), or N "
                        "seeded standard-normal inputs (default: 64 seeded standard-normal inputs)")
    p.add_argument("--demo", action="store_true",
                   help="also the demo checkpoints in --runs, with the appendix kernels and the reports in "
                        "--reports folded in")
    p.add_argument("--zoo", nargs="*", metavar="NAME", default=None,
                   help="also the model zoo (all of it, or the NAMEs given), seeded random weights")
    p.add_argument("--runs", default="runs/demo", help="demo checkpoint folder for --demo (default: %(default)s)")
    p.add_argument("--reports", default="reports",
                   help="where --demo reads demo/bci/generators/selfdistill.json (default: %(default)s)")
    p.add_argument("--work", default=None, metavar="DIR", help="exports and builds (default: OUT/work)")
    p.add_argument("--tflm-src", default=None, metavar="DIR",
                   help="a tflite-micro checkout (after its `make ... third_party_downloads`): also build TFLM itself "
                        "for each core, size the whole image and emulate it (default: $EDGEKD_TFLM_SRC, else off)")
    p.add_argument("--quick", action="store_true",
                   help="fewer timed runs; models over 200k MACs sized but not emulated (default: off)")
    p.set_defaults(func=run)
    return p


def run(args):
    import shlex
    import sys

    from benchmarks.bench import BenchConfig, bench, parse_clocks, parse_cores, parse_runtimes

    import os

    changes = {"cores": parse_cores(args.cores), "runtimes": parse_runtimes(args.runtimes),
               "tflm_src": args.tflm_src or os.environ.get("EDGEKD_TFLM_SRC") or None}
    if args.clock:
        changes["clocks_mhz"] = {**BenchConfig().clocks_mhz, **parse_clocks(args.clock)}
    config = BenchConfig.quick(**changes) if args.quick else BenchConfig(**changes)
    command = "edgekd " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["bench"] else None
    from firmware_export.model_files import parse_shape

    shape = parse_shape(args.input_shape) if args.input_shape else None
    bench(args.models, out_dir=args.out, config=config, demo=args.demo, input_shape=shape, weights=args.weights,
          calibration=args.calibration,
          zoo=(args.zoo or True) if args.zoo is not None else False, runs_dir=args.runs, reports_dir=args.reports,
          work_dir=args.work, command=command, verbose=args.verbose or None)
    return 0
