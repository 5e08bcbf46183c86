"""``edgekd bench``: measure a model on Cortex-M cores and host runtimes; one table, ``bench.json``, a report.

    edgekd bench exports/c --out reports/mine           # an export folder, or a folder of them
    edgekd bench runs/mine.pt --out reports/mine        # an edgekd checkpoint: exported first
    edgekd bench --demo --zoo --out reports             # what `make bench` runs

Per Cortex-M core (M0+, M4, M7, M33): the C export cross-built at ``-O2`` as it is (its SMLAD path
on DSP cores), flash and static RAM from the linked ELF, the planned arena, the stack measured in
emulation, and cycles: one inference emulated in unicorn, weighted by a per-core cost model. Those
cycles, and the milliseconds at the stated clock, are ESTIMATES (no flash wait states, no bus
contention). Per host runtime (native C, TFLite Micro, LiteRT XNNPACK and reference kernels,
onnxruntime, ExecuTorch, torch, the tflite-runtime venv): latency MEASURED on this machine, one
thread, every runtime fed the same input. The records go to ``bench.json``
(:class:`benchmarks.run.Records` format) and ``benchmarks.report`` renders them.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekd.errors import ConfigError, EdgeKDError
from edgekd.log import set_log_level

from . import run
from .run import EXPORT_KINDS, HOST_RUNTIMES, RUNTIME_EXPORTS, Records

# The MLPerf Tiny boards' clocks (NUCLEO-L4R5ZI M4, NUCLEO-H7A3ZI-Q M7, NUCLEO-U575 M33); the M0+ at
# 48 MHz, the clock of common M0+ parts (SAMD21, STM32L0 at 32, RP2040 higher): a stated choice.
DEFAULT_CLOCK_MHZ = {"cortex-m0plus": 48.0, "cortex-m4": 120.0, "cortex-m7": 280.0, "cortex-m33": 160.0}
CORE_ALIASES = {"m0plus": "cortex-m0plus", "m0+": "cortex-m0plus", "m4": "cortex-m4", "m7": "cortex-m7",
                "m33": "cortex-m33"}
DEFAULT_RUNTIMES = HOST_RUNTIMES
CALIBRATION_SAMPLES = 64
ESTIMATE_NOTE = ("Cortex-M rows are ESTIMATES: one inference emulated in unicorn, instructions weighted by a "
                 "per-core cost model (no flash wait states, no bus contention); ms = cycles / clock. "
                 "Host rows are MEASURED here: median of timed runs after warm-up, 1 thread, the same input.")


# ---- configuration -----------------------------------------------------------------------------

@dataclass(frozen=True)
class BenchConfig:
    """What to measure and how long to try."""

    cores: tuple = tuple(DEFAULT_CLOCK_MHZ)
    clocks_mhz: dict = field(default_factory=lambda: dict(DEFAULT_CLOCK_MHZ))
    runtimes: tuple = DEFAULT_RUNTIMES
    opt: str = "-O2"
    warmup: int = 20
    runs: int = 200
    calibration_samples: int = CALIBRATION_SAMPLES
    parity_samples: int = 16
    accuracy_samples: int | None = None     # demo models: test images for accuracy (None: the whole split)
    emulate_max_macs: int | None = None     # bigger models get sizes but no emulation (None: emulate all)
    emulate_timeout_s: float = 1800.0
    seed: int = 0
    tflm_src: str | None = None             # a tflite-micro checkout: TFLM itself built and emulated per core

    def __post_init__(self):
        for core in self.cores:
            if core not in DEFAULT_CLOCK_MHZ:
                raise ConfigError(f"core {core!r}: expected one of {', '.join(DEFAULT_CLOCK_MHZ)}")
        for runtime in self.runtimes:
            if runtime not in HOST_RUNTIMES:
                raise ConfigError(f"runtime {runtime!r}: expected one of {', '.join(HOST_RUNTIMES)}")
        for core, mhz in self.clocks_mhz.items():
            if core not in DEFAULT_CLOCK_MHZ or not mhz > 0:
                raise ConfigError(f"clock {core}={mhz}: expected a core of {', '.join(DEFAULT_CLOCK_MHZ)} and MHz > 0")

    @classmethod
    def quick(cls, **changes) -> "BenchConfig":
        """M0+ and M4, fewer timed runs, a 500-image accuracy subset, big models sized but not emulated."""
        return cls(**{"cores": ("cortex-m0plus", "cortex-m4"), "warmup": 5, "runs": 30, "accuracy_samples": 500,
                      "emulate_max_macs": 200_000, **changes})

    def replace(self, **changes) -> "BenchConfig":
        return dataclasses.replace(self, **changes)

    def clock(self, core) -> float:
        return float(self.clocks_mhz.get(core, DEFAULT_CLOCK_MHZ[core]))

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "cores": list(self.cores), "runtimes": list(self.runtimes)}


def parse_cores(text: str) -> tuple:
    """``"m0plus,m4"`` (or full names) -> ("cortex-m0plus", "cortex-m4"); ``"none"`` -> ()."""
    if text.strip().lower() == "none":
        return ()
    cores = []
    for item in filter(None, (t.strip().lower() for t in text.split(","))):
        core = CORE_ALIASES.get(item, item)
        if core not in DEFAULT_CLOCK_MHZ:
            raise ConfigError(f"--cores {item!r}: expected a list of {', '.join(CORE_ALIASES)} (or 'none')")
        cores.append(core)
    return tuple(dict.fromkeys(cores))


def parse_clocks(text: str) -> dict:
    """``"m4=120,m7=280"`` -> {"cortex-m4": 120.0, "cortex-m7": 280.0}."""
    clocks = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        core, sep, mhz = item.partition("=")
        core = CORE_ALIASES.get(core.strip().lower(), core.strip().lower())
        try:
            value = float(mhz)
        except ValueError:
            value = -1.0
        if not sep or core not in DEFAULT_CLOCK_MHZ or not value > 0:
            raise ConfigError(f"--clock {item!r}: expected CORE=MHZ with CORE one of {', '.join(CORE_ALIASES)}, "
                              "e.g. m4=120")
        clocks[core] = value
    return clocks


def parse_runtimes(text: str) -> tuple:
    """``"native-c,tflm"`` -> ("native-c", "tflm"); ``"none"`` -> ()."""
    if text.strip().lower() == "none":
        return ()
    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    for name in names:
        if name not in HOST_RUNTIMES:
            raise ConfigError(f"--runtimes {name!r}: expected a list of {', '.join(HOST_RUNTIMES)} (or 'none')")
    return tuple(dict.fromkeys(names))


# ---- what is measured: a model with its exports and one input ------------------------------------

@dataclass
class Subject:
    """One model under test: its exports (made here when a torch model is given) and the one input
    every runtime gets."""

    name: str
    source: str                  # what the user gave (a path, "zoo:resnet8", "demo:teacher")
    kind: str                    # "export" | "checkpoint" | "zoo" | "demo" | ...
    x: np.ndarray                # (1, ...) float32
    input_desc: str
    model: object = None         # the float torch model, when there is one
    arts: dict = field(default_factory=dict)        # export kind -> firmware_export.Artifact
    calibration: np.ndarray | None = None
    parity: np.ndarray | None = None
    data: object = None          # a labelled dataset (demo models): accuracy
    tflite: object = None        # a user's int8 .tflite (firmware_export.TFLiteModel), exported as it is


def _random_inputs(shape, n, seed) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _export_folders(path: Path) -> list[Path]:
    if (path / "export.json").is_file():
        return [path]
    return sorted(p.parent for p in path.glob("*/export.json"))


def from_export_folder(path, seed=0) -> Subject:
    """An export folder (``export.json``), or a folder of them (``edgekd export --target all --out DIR``)."""
    import firmware_export

    path = Path(path)
    folders = _export_folders(path)
    if not folders:
        raise EdgeKDError(f"{path}: not an export folder (no export.json here or in its subfolders)")
    arts = {}
    for folder in folders:
        art = firmware_export.load(folder)
        arts.setdefault(run.kind_of(art), art)
    first = arts.get("c") or next(iter(arts.values()))
    shape = tuple(first.config["input_shape"][1:])
    quant = next((a.input_quant for a in arts.values() if a.input_quant), None)
    if quant:
        x, desc = _int8_input(shape, quant, seed)
    else:
        x, desc = _random_inputs(shape, 1, seed), f"seeded standard normal (seed {seed})"
    return Subject(first.name, str(path), "export", x, desc, arts=arts)


def _int8_input(shape, quant, seed):
    """Uniform int8 codes, as the floats every runtime quantizes back to the same codes; and a description."""
    codes = np.random.default_rng(seed).integers(-128, 128, size=(1, *shape))
    x = ((codes - quant[1]) * quant[0]).astype(np.float32)
    return x, f"seeded random int8 codes (seed {seed}) at the model's input scale {quant[0]:.4g}, zero point {quant[1]}"


def from_torch_model(model, name, source, kind, input_shape, config: BenchConfig, calibration=None) -> Subject:
    """A float torch model, exported to what the runtimes need; int8 calibrated on ``calibration``
    (``--calibration``: a file or a count; default: seeded standard-normal inputs)."""
    shape = tuple(input_shape)
    calib, calib_desc = _calibration(calibration, (1, *shape), config)
    desc = f"seeded standard normal (seed {config.seed + 1}); int8 calibrated on {calib_desc}"
    return Subject(name, source, kind, _random_inputs(shape, 1, config.seed + 1), desc, model=model.eval(),
                   calibration=calib, parity=_random_inputs(shape, config.parity_samples, config.seed + 2))


def from_tflite(loaded, name, config: BenchConfig) -> Subject:
    """A user's fully-int8 .tflite: the C is generated from it as it is (no torch model: no torch,
    onnxruntime or ExecuTorch rows)."""
    tfl = loaded.model
    x, desc = _int8_input(tfl.input_shape[1:], tfl.input_quant, config.seed)
    return Subject(name, loaded.source, "tflite", x, desc, tflite=tfl)


def checkpoint_model(path):
    """``path -> (float model, input shape)``: how :func:`firmware_export.load_model` rebuilds an edgekd checkpoint."""
    model, cfg = run.load_checkpoint_model(path)
    return model, (1, *cfg.input_shape)


def _calibration(calibration, input_shape, config: BenchConfig):
    """(inputs, description) for ``--calibration``: a .npy/.npz of float inputs, or a count of seeded
    standard-normal inputs (default ``config.calibration_samples``)."""
    if calibration is None or str(calibration).isdigit():
        n = int(calibration) if calibration is not None else config.calibration_samples
        return _random_inputs(tuple(input_shape[1:]), n, config.seed), f"{n} seeded standard normal inputs"
    from firmware_export.model_files import load_inputs

    calib = load_inputs(calibration, input_shape).numpy()
    return calib, f"{len(calib)} inputs from {calibration}"


def resolve(spec, config: BenchConfig, *, input_shape=None, weights=None, calibration=None) -> Subject:
    """MODEL as the user gave it: an export folder (or a folder of them), or a model file exported
    first: a ``.pt2``, ``FILE.py:factory`` (with ``input_shape``, optional ``weights``), a fully-int8
    ``.tflite`` or an edgekd checkpoint (read by :func:`firmware_export.load_model`)."""
    from firmware_export.model_files import TFLiteModel, load_model, split_factory

    path = Path(str(spec))
    if path.is_dir():
        return from_export_folder(path, config.seed)
    loaded = load_model(spec, input_shape=input_shape, weights=weights, checkpoint_loader=checkpoint_model)
    file, factory = split_factory(str(spec))
    name = factory if factory else Path(file).stem
    if isinstance(loaded.model, TFLiteModel):
        return from_tflite(loaded, name, config)
    return from_torch_model(loaded.model, name, loaded.source, loaded.kind, loaded.input_shape[1:], config,
                            calibration)


def zoo_subjects(names, config: BenchConfig) -> list[Subject]:
    """The model zoo (``edgekd.models.zoo``), seeded random weights: speed and size do not depend on them."""
    from edgekd.models.zoo import ZOO, zoo_model

    names = list(names) if names else list(ZOO)
    subjects = []
    for name in names:
        if name not in ZOO:
            raise ConfigError(f"--zoo {name!r}: expected one of {', '.join(ZOO)}")
        subjects.append(from_torch_model(zoo_model(name, config.seed), name, f"zoo:{name}", "zoo", ZOO[name][0],
                                         config))
    return subjects


def demo_subjects(runs_dir, reports_dir, config: BenchConfig) -> list[Subject]:
    """The demo's checkpoints with their dataset: a real test image, real calibration, accuracy."""
    import json

    from edgekd.data import load_dataset

    models = run.load_demo_models(runs_dir)
    dataset = "mnist5k"
    demo_json = Path(reports_dir) / "demo.json"
    if demo_json.is_file():
        dataset = json.loads(demo_json.read_text()).get("dataset", dataset)
    data = load_dataset(dataset, seed=0)
    calibration = np.asarray(data.train.x[:256], np.float32)
    parity = np.asarray(data.test.x[:64], np.float32)
    x = np.asarray(data.test.x[:1], np.float32)
    return [Subject(name, str(Path(runs_dir) / f"{name}.pt"), "demo", x, f"the first {dataset} test image",
                    model=model, calibration=calibration, parity=parity, data=data) for name, model in models.items()]


# ---- measuring ---------------------------------------------------------------------------------

def needed_exports(config: BenchConfig) -> list[str]:
    wanted = set()
    for runtime in (*config.runtimes, *(("cortex-m",) if config.cores else ())):
        wanted.update(RUNTIME_EXPORTS[runtime])
    return [k for k in EXPORT_KINDS if k in wanted]


def measure(recs: Records, subj: Subject, config: BenchConfig, work_dir, tflite_runtime_py=None):
    """Every record of one subject: exports (if needed), host runtimes, accuracy, Cortex-M cores."""
    work_dir = Path(work_dir)
    recs.add(subj.name, "model", subj.kind, "input_shape", list(subj.x.shape), "shape", source=subj.source,
             input=subj.input_desc)
    if subj.model is not None or subj.tflite is not None:
        kinds = [k for k in needed_exports(config) if k not in subj.arts]
        if subj.tflite is not None:         # a .tflite goes to C as it is; the others need the torch model
            kinds = [k for k in kinds if k == "c"]
        subj.arts.update(run.export_model(subj.tflite or subj.model, subj.name, subj.x, subj.calibration, subj.parity,
                                          work_dir / "exports", recs, kinds))
    native = run.host_bench(recs, subj.name, subj.model, subj.arts, subj.x, work_dir / "host",
                            runtimes=config.runtimes, warmup=config.warmup, runs=config.runs,
                            tflite_runtime_py=tflite_runtime_py)
    if subj.data is not None and subj.model is not None:
        run.accuracy_bench(recs, subj.name, subj.model, subj.arts, native[0] if native else None, subj.data,
                           config.accuracy_samples)
    if not config.cores:
        return
    if native is None:
        why = "no c export of this model" if "c" not in subj.arts else "its C did not build for the host"
        recs.skip(subj.name, "cortex-m", "native-c", "mcu", why)
        return
    host, x_q, y = native
    c_art = subj.arts["c"]
    macs = host.entry.constants.get(f"{c_art.name.upper()}_MACS")
    if macs is not None:
        recs.add(subj.name, "model", "int8", "macs", macs, "MAC", note="multiply-accumulates of one inference")
    emulate = config.emulate_max_macs is None or macs is None or macs <= config.emulate_max_macs
    if not emulate:
        recs.skip(subj.name, "cortex-m", "native-c", "emulation",
                  f"{macs:,} MACs > {config.emulate_max_macs:,} (quick run): flash/RAM only")
    run.mcu_bench(recs, subj.name, c_art.file(".h").parent, x_q, y, macs, name=c_art.name, cores=config.cores,
                  opts=(config.opt,), emulate=emulate, work_dir=work_dir / "mcu" / subj.name,
                  arena_bytes=host.entry.constants.get(f"{c_art.name.upper()}_ARENA_SIZE"),
                  timeout_s=config.emulate_timeout_s, clocks=config.clocks_mhz, plain_too=False)
    if config.tflm_src and emulate:
        run.tflm_mcu_bench(recs, subj.name, run.int8_tflite(subj.arts), x_q, config.cores, config.tflm_src,
                           work_dir / "mcu" / subj.name, clocks=config.clocks_mhz, timeout_s=config.emulate_timeout_s,
                           lib_dir=work_dir / "tflm-lib")


def _unique(subjects):
    seen = {}
    for s in subjects:
        n = seen[s.name] = seen.get(s.name, 0) + 1
        if n > 1:
            s.name = f"{s.name}_{n}"
    return subjects


def bench(specs=(), *, out_dir, config: BenchConfig | None = None, demo=False, zoo=False, runs_dir="runs/demo",
          reports_dir="reports", work_dir=None, input_shape=None, weights=None, calibration=None,
          json_name="bench.json", command=None,
          verbose=None, echo=print) -> list[dict]:
    """Measure ``specs`` (export folders or checkpoints), the demo models (``demo``: with the calibration
    kernels of the appendix and the other stages' reports folded in) and the zoo (``zoo``: True or a
    list of names); write ``out_dir/bench.json`` and the report; print the table. Returns the records."""
    import torch

    from edgekd.io import atomic_write_json

    from .report import write_report

    set_log_level(verbose)
    config = config or BenchConfig()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    work_dir = Path(work_dir) if work_dir else out_dir / "work"
    # every model is resolved first: a bad MODEL fails in a second, not after an hour of measuring
    subjects = [resolve(s, config, input_shape=input_shape, weights=weights, calibration=calibration) for s in specs]
    if zoo:
        subjects += zoo_subjects(zoo if isinstance(zoo, (list, tuple)) else (), config)
    no_demo = None
    if demo:
        try:
            subjects = demo_subjects(runs_dir, reports_dir, config) + subjects
        except EdgeKDError as err:      # `make bench` before `make demo`: the zoo is still worth measuring
            if not subjects:
                raise
            no_demo = err
    if not subjects:
        raise ConfigError("bench: nothing to measure; give a MODEL, --demo or --zoo")
    _unique(subjects)
    recs = Records(run.run_context(command or "edgekd bench " + " ".join(map(str, specs))))
    recs.add("*", "host", "bench", "config", None, None, config=config.to_dict())
    if no_demo is not None:
        recs.skip("demo", "host", "checkpoints", "demo models", no_demo)
    trt_py = None
    if "tflite-runtime" in config.runtimes:
        from .host.runtimes import ensure_tflite_runtime_venv
        try:
            trt_py = ensure_tflite_runtime_venv()
        except Exception as err:        # noqa: BLE001
            recs.skip("*", "host", "tflite-runtime", "venv", err)
    for i, subj in enumerate(subjects, 1):      # long work is never silent: one line per model
        if echo:
            print(f"bench [{i}/{len(subjects)}] {subj.name} ({subj.source})", file=sys.stderr, flush=True)
        measure(recs, subj, config, work_dir, trt_py)
    if demo:        # the appendix: kernels that calibrate the cost model, and the other stages' reports
        if echo:
            print("bench: appendix (reference FC kernel, LDC) and the other stages' reports", file=sys.stderr,
                  flush=True)
        run.reference_kernel_bench(recs, work_dir / "appendix", config.cores, (config.opt,), config.clocks_mhz)
        run.ldc_bench(recs, work_dir / "appendix", reports_dir, config.cores, (config.opt,), clocks=config.clocks_mhz)
        run.fold_reports(recs, reports_dir, work_dir / "exports", models={s.name for s in subjects})
    recs.add("*", "host", "benchmarks", "bench_seconds", time.perf_counter() - t_start, "s")
    out_dir.mkdir(parents=True, exist_ok=True)
    bench_json = atomic_write_json(out_dir / json_name, recs.rows)
    md, page = write_report(bench_json, out_dir)
    if echo:
        echo(format_table(recs.rows, [s.name for s in subjects], config))
        echo(f"\nwrote {bench_json}, {page} and {md}")
    return recs.rows


# ---- the table ---------------------------------------------------------------------------------

TABLE_HEADERS = ("model", "target", "runtime", "precision", "flash B", "static RAM B", "arena B", "stack B",
                 "cycles", "latency", "at", "how")


def _one(rows, **match):
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def table_rows(records, models, config: BenchConfig) -> list[list]:
    """One row per Cortex-M core and per host runtime (and precision) of each model; values as numbers."""
    rows = []
    for m in models:
        mine = [r for r in records if r["model"] == m]
        c_arena = _one(mine, target="host", runtime="native-c", metric="arena_bytes")
        for core in config.cores:
            variant = next((v for v in ("native-c-dsp", "native-c")
                            if _one(mine, target=core, runtime=v, metric="flash_bytes", opt=config.opt)), None)
            if variant is None:
                continue
            q = dict(target=core, runtime=variant, opt=config.opt)
            val = {k: (_one(mine, metric=k, **q) or {}).get("value") for k in
                   ("flash_bytes", "static_ram_bytes", "stack_bytes", "cycles", "latency_ms", "instructions")}
            how = "estimate" if val["cycles"] is not None else (
                "counts only (no cycle model)" if val["instructions"] else "sizes only")
            rows.append([m, core, f"native-c {config.opt}" + (" DSP" if variant.endswith("dsp") else ""), "int8",
                         val["flash_bytes"], val["static_ram_bytes"], c_arena["value"] if c_arena else None,
                         val["stack_bytes"], val["cycles"], val["latency_ms"], f"{config.clock(core):g} MHz", how])
            tflm = {k: (_one(mine, target=core, runtime="tflm", metric=k) or {}).get("value") for k in
                    ("flash_bytes", "static_ram_bytes", "stack_bytes", "cycles", "latency_ms")}
            if tflm["flash_bytes"] is not None:
                t_arena = _one(mine, target="host", runtime="tflm", metric="arena_bytes")
                rows.append([m, core, "tflm (from source)", "int8", tflm["flash_bytes"], tflm["static_ram_bytes"],
                             t_arena["value"] if t_arena else None, tflm["stack_bytes"], tflm["cycles"],
                             tflm["latency_ms"], f"{config.clock(core):g} MHz",
                             "estimate" if tflm["cycles"] is not None else "sizes only"])
        host = [r for r in mine if r["target"] == "host" and r["metric"] == "latency_ms" and r.get("threads", 1) == 1]
        order = {rt: i for i, rt in enumerate(HOST_RUNTIMES)}
        for r in sorted(host, key=lambda r: (order.get(r["runtime"].replace("-ref", ""), 99), r["runtime"],
                                             r.get("precision") != "int8")):
            arena = _one(mine, target="host", runtime=r["runtime"], metric="arena_bytes")
            rows.append([m, "host", r["runtime"], r.get("precision"), None, None, arena["value"] if arena else None,
                         None, None, r["value"], "1 thread", f"measured, median of {r.get('runs')}"])
    return rows


def format_table(records, models, config: BenchConfig) -> str:
    """The table ``edgekd bench`` prints, with the notes a reader needs (estimates, skips)."""
    from .report import format_ms

    def cell(v, col):
        if v is None:
            return "-"
        if col == "latency":
            return format_ms(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return f"{v:,.0f}"
        return str(v)

    rows = [[cell(v, h) for v, h in zip(r, TABLE_HEADERS)] for r in table_rows(records, models, config)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(TABLE_HEADERS)]
    numeric = {"flash B", "static RAM B", "arena B", "stack B", "cycles", "latency"}

    def line(cells):
        return "  ".join(c.rjust(w) if h in numeric else c.ljust(w)
                         for c, w, h in zip(cells, widths, TABLE_HEADERS)).rstrip()

    out = [line(TABLE_HEADERS), line(["-" * w for w in widths])] + [line(r) for r in rows]
    out += ["", ESTIMATE_NOTE]
    for m in models:
        for core in config.cores:
            counts = [r for r in records if r["model"] == m and r["target"] == core and r["metric"] == "instructions"]
            if counts and not any(r["model"] == m and r["target"] == core and r["metric"] == "cycles" for r in records):
                out.append(f"{m} on {core}: no cycle model for this core; {counts[0]['value']:,} instructions "
                           "executed in the emulator.")
    skipped = [r for r in records if r["metric"] == "skipped" and (r["model"] in models or r["model"] in ("*", "demo"))]
    for r in skipped:
        out.append(f"skipped: {r['model']} {r['target']} {r['runtime']} {r.get('what')}: "
                   f"{(r.get('reason') or '').splitlines()[0][:160] if r.get('reason') else ''}")
    return "\n".join(out)
