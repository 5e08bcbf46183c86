"""The measuring pieces of ``edgekd bench`` (``benchmarks/bench.py`` runs them), and the old entry point.

* :class:`Records`: the flat list of records (model, target, runtime, metric, value, unit + the run's
  context) that ``bench.json`` holds and ``benchmarks/report.py`` renders.
* :func:`mcu_bench`: an export's C cross-built per Cortex-M core, flash/RAM from the ELF, one inference
  emulated in unicorn, cycles from the per-core cost model (ESTIMATES) and ms at a stated clock; the
  emulated output must equal the host build's.
* :func:`host_bench`: latency in every host runtime, one thread, the same input: native C (-O2),
  TFLite Micro, LiteRT (XNNPACK and reference kernels), onnxruntime, ExecuTorch, torch eager and
  tflite-runtime in its own numpy<2 venv.
* :func:`accuracy_bench`, :func:`fold_reports` (demo/bci/generators/selfdistill.json and parity),
  and the calibration kernels of the report's appendix (:func:`reference_kernel_bench`, :func:`ldc_bench`).

``python -m benchmarks.run`` is kept: it is ``edgekd bench --demo --zoo`` (what ``make bench`` runs).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from edgekd.errors import EdgeKDError
from edgekd.log import logger

DEMO_MODELS = ("teacher", "student_kd_seed0", "student_alone_seed0")
FOLDED_REPORTS = ("demo.json", "bci.json", "generators.json", "generators_deploy_c.json", "selfdistill.json")
REFERENCE_KERNEL = "reference-fc256x64"
SLOW_MODEL_MS = 2.0                   # torch latency above which a model gets fewer timed runs


# ---- records -----------------------------------------------------------------------------------

class Records:
    """The list of measurement records; every record carries the run's context."""

    def __init__(self, context: dict):
        self.context = context
        self.rows: list[dict] = []

    def add(self, model, target, runtime, metric, value, unit, **extra):
        if isinstance(value, (np.floating, np.integer)):
            value = value.item()
        row = {"model": model, "target": target, "runtime": runtime, "metric": metric,
               "value": value, "unit": unit, **extra, **self.context}
        self.rows.append(row)
        return row

    def skip(self, model, target, runtime, what, reason):
        logger.warning(f"skipped {model} {target} {runtime} {what}: {reason}")
        return self.add(model, target, runtime, "skipped", None, None, what=what, reason=str(reason)[:500])


def _version(dist):
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:        # noqa: BLE001 - informative only
        return None


def _cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_context(command: str) -> dict:
    """Machine, date, versions and the command, attached to every record."""
    from .host.native import host_compiler_version
    from .mcu.toolchain import compiler_version

    versions = {d: _version(d) for d in ("torch", "numpy", "onnxruntime", "ai-edge-litert", "tflite-micro",
                                         "litert-torch", "executorch", "unicorn", "capstone", "pyelftools")}
    versions["python"] = platform.python_version()
    return {"machine": f"{_cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": command,
            "versions": versions, "arm_compiler": compiler_version(), "host_compiler": host_compiler_version(),
            "cpu_count": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()]}


# ---- models ------------------------------------------------------------------------------------

def load_checkpoint_model(path):
    """(eval torch model, ModelConfig) of an edgekd checkpoint."""
    from edgekd.checkpoint import load_trained_model

    return load_trained_model(path)


def load_demo_models(runs_dir) -> dict:
    """{name: eval torch model} from the demo checkpoints; a clear error if the demo did not run."""
    runs_dir = Path(runs_dir)
    found = {n: runs_dir / f"{n}.pt" for n in DEMO_MODELS if (runs_dir / f"{n}.pt").is_file()}
    if not found:
        raise EdgeKDError(f"{runs_dir}: no demo checkpoints ({', '.join(n + '.pt' for n in DEMO_MODELS)}); "
                          "run `make demo` first (or `python -m benchmarks.run --train-quick` for a quick student)")
    return {name: load_checkpoint_model(path)[0] for name, path in found.items()}


def train_quick(runs_dir, dataset="mnist5k", epochs=3, verbose=None) -> Path:
    """A small student_cnn trained for a few epochs (when the demo has not been run)."""
    import torch

    from edgekd.data import load_dataset
    from edgekd.distill import distill, train_config
    from edgekd.models import ModelConfig, build_model

    data = load_dataset(dataset, seed=0)
    cfg = ModelConfig("student_cnn", input_shape=data.input_shape, num_classes=data.num_classes, options={"width": 4})
    torch.manual_seed(0)
    path = Path(runs_dir) / "student_alone_seed0.pt"
    distill(None, build_model(cfg), data, train_config(epochs=epochs, lr=5e-3, batch_size=64), checkpoint=path,
            model_config=cfg, verbose=verbose)
    return path


# ---- exports -----------------------------------------------------------------------------------

# what each export kind is: (target, precision); "c" also holds the int8 .tflite that TFLM and LiteRT run
EXPORT_KINDS = {"c": ("c", "int8"), "onnx": ("onnx", "fp32"), "tflite-fp32": ("tflite", "fp32"),
                "executorch-fp32": ("executorch", "fp32"), "executorch-int8": ("executorch", "int8")}
# the exports each host runtime (and the Cortex-M builds) need
RUNTIME_EXPORTS = {"native-c": ("c",), "tflm": ("c",), "litert": ("c", "tflite-fp32"), "litert-ref": ("c",),
                   "tflite-runtime": ("c", "tflite-fp32"), "onnxruntime": ("onnx",),
                   "executorch": ("executorch-fp32", "executorch-int8"), "torch": (), "cortex-m": ("c",)}


def kind_of(art) -> str:
    """The export kind (a key of EXPORT_KINDS, or "tflite-int8"/"tflm") of an Artifact."""
    if art.target in ("c", "onnx", "tflm"):
        return art.target
    return f"{art.target}-{art.precision}"


def export_model(model, name, x, calibration, parity, work_dir, recs: Records, kinds=tuple(EXPORT_KINDS)) -> dict:
    """{kind: Artifact} for the export ``kinds`` of a float torch model (int8 ones calibrated on
    ``calibration``) or of a user's int8 .tflite (``firmware_export.TFLiteModel``, c only); a failed
    export is a skipped record, not a stop."""
    import torch

    import firmware_export

    arts = {}
    tflite = isinstance(model, firmware_export.TFLiteModel)       # a user's int8 .tflite, taken as it is
    for kind in kinds:
        target, precision = EXPORT_KINDS[kind]
        t0 = time.perf_counter()
        try:
            arts[kind] = firmware_export.export(
                model, target=target, example_input=None if tflite else torch.as_tensor(x),
                out_dir=Path(work_dir) / name / kind,
                calibration_data=torch.as_tensor(calibration) if precision == "int8" and not tflite else None,
                precision=precision, parity_inputs=None if parity is None else torch.as_tensor(parity))
            recs.add(name, "host", kind, "export_seconds", time.perf_counter() - t0, "s")
        except Exception as err:       # noqa: BLE001 - one failed export must not stop the others
            recs.skip(name, "host", kind, f"export {target}/{precision}", err)
    return arts


def _quantize(x, quant):
    scale, zero = quant
    return np.clip(np.round(np.asarray(x, np.float32) / scale) + zero, -128, 127).astype(np.int8)


# ---- Cortex-M ----------------------------------------------------------------------------------

NO_CROSS_COMPILER = "arm-none-eabi-gcc not found (run `make toolchain` or apt-get install gcc-arm-none-eabi)"


def mcu_bench(recs, model, c_dir, x_q, expected, macs, *, name="model", kind="nn", cores=None, opts=None,
              emulate=True, work_dir=None, timeout_s=60.0, arena_bytes=None, clocks=None, plain_too=True):
    """Cross-build + sizes + emulation of one C export folder on every core/opt/variant.

    Variants: ``native-c-dsp`` is the export as it is (its SMLAD path on DSP cores), ``native-c`` the
    plain C path (the only one on M0+); ``plain_too=False`` builds the export as it is only.
    ``clocks``: {core: MHz} for the latency (default: ``CORES[core].clock_mhz``)."""
    from .mcu.costmodel import cost_model
    from .mcu.toolchain import CORES, OPT_LEVELS, find_compiler

    if not find_compiler():
        recs.skip(model, "cortex-m", "native-c", "mcu", NO_CROSS_COMPILER)
        return
    for core in cores or CORES:
        info = CORES[core]
        clock = (clocks or {}).get(core, info.clock_mhz)
        for opt in opts or OPT_LEVELS:
            dsp = info.dsp and kind == "nn"
            for variant in (("native-c", "native-c-dsp") if plain_too else ("native-c-dsp",)) if dsp else ("native-c",):
                tag = dict(opt=opt, clock_mhz=clock, compiler=recs.context["arm_compiler"])
                try:
                    build = _build(c_dir, core, opt, name, kind, variant, work_dir)
                except EdgeKDError as err:
                    recs.skip(model, core, variant, f"build {opt}", err)
                    continue
                recs.add(model, core, variant, "flash_bytes", build.flash_bytes, "B", sections=build.sections, **tag)
                recs.add(model, core, variant, "static_ram_bytes", build.ram_bytes, "B", **tag)
                if arena_bytes is not None:
                    recs.add(model, core, variant, "arena_bytes", arena_bytes, "B", **tag)
                if not (emulate(core, opt, variant) if callable(emulate) else emulate):
                    continue
                try:
                    em, trace = _emulate(build.elf, core, name, kind, x_q, expected, timeout_s)
                except EdgeKDError as err:
                    recs.skip(model, core, variant, f"emulate {opt}", err)
                    continue
                out = np.frombuffer(trace.outputs[0], np.int8) if trace.outputs else np.array([trace.returned])
                match = bool(np.array_equal(out.astype(np.int64), np.asarray(expected).astype(np.int64)))
                recs.add(model, core, variant, "emulation_matches_host", int(match), "bool", **tag)
                recs.add(model, core, variant, "instructions", trace.instructions, "instr", mix=trace.mix, **tag)
                recs.add(model, core, variant, "stack_bytes", trace.stack_bytes, "B", **tag)
                recs.add(model, core, variant, "ram_bytes", build.ram_bytes + trace.stack_bytes, "B",
                         note="static RAM (.data+.bss incl. arena and I/O buffers) + measured stack", **tag)
                if macs:
                    recs.add(model, core, variant, "instructions_per_mac", trace.instructions / macs, "instr/MAC",
                             macs=macs, **tag)
                cm = cost_model(core)
                if cm is None:
                    continue
                cycles = trace.cycles(cm)
                top = dict(list(em.profile(trace, cm).items())[:8])
                recs.add(model, core, variant, "cycles", cycles, "cycles", estimate=True, cost_model=cm.source,
                         profile=top, **tag)
                recs.add(model, core, variant, "latency_ms", cycles / (clock * 1e3), "ms", estimate=True, **tag)
                if macs:
                    bound = macs / 2 if info.dsp else macs     # SMLAD: 2 MACs/cycle; M0+: 1 MAC/cycle (MULS)
                    recs.add(model, core, variant, "cycles_per_mac", cycles / macs, "cycles/MAC", macs=macs,
                             bound_cycles_per_mac=bound / macs, ratio_to_bound=cycles / bound, estimate=True, **tag)


def _build(c_dir, core, opt, name, kind, variant, work_dir):
    from .mcu.toolchain import build_elf

    extra = ("-DEDGEKD_NN_NO_DSP",) if variant == "native-c" else ()
    return build_elf(c_dir, core, opt, name=name, kind=kind, variant=variant, extra_flags=extra,
                     out_dir=Path(work_dir or c_dir) / "mcu-build")


def _emulate(elf, core, name, kind, x_q, expected, timeout_s):
    from .mcu.emulate import Emulator

    em = Emulator.from_elf(elf, core)
    data = np.ascontiguousarray(x_q).reshape(-1).tobytes()
    if kind == "nn":
        n_out = int(np.asarray(expected).size)
        trace = em.call(f"{name}_invoke", data, bytes(n_out), outputs=[(1, n_out)], timeout_s=timeout_s)
    else:
        trace = em.call(f"{name}_predict", data, timeout_s=timeout_s)
    return em, trace


def tflm_mcu_bench(recs, model, tflite, x_q, cores, tflm_src, work_dir, clocks=None, timeout_s=1800.0, lib_dir=None):
    """TFLite Micro itself on each core, built from its sources (``benchmarks/tflm_size.py``): flash and
    RAM of the whole image (interpreter and kernels included) and one emulated inference (ESTIMATED
    cycles of the invoke, with the same cost model as the native C rows); the emulated output must
    equal the Python TFLM's."""
    from firmware_export.interp import tflm_module

    from .mcu.toolchain import CORES, find_compiler
    from .tflm_size import build_image, emulate

    if not find_compiler():
        recs.skip(model, "cortex-m", "tflm", "mcu", NO_CROSS_COMPILER)
        return
    interp = tflm_module().Interpreter.from_file(str(tflite))
    interp.set_input(np.asarray(x_q, np.int8).reshape(interp.get_input_details(0)["shape"]), 0)
    interp.invoke()
    expected = np.asarray(interp.get_output(0)).reshape(-1)
    for core in cores:
        clock = (clocks or {}).get(core, CORES[core].clock_mhz)
        tag = dict(opt="-Os/-O2", clock_mhz=clock, compiler=recs.context["arm_compiler"], source=str(tflm_src))
        try:
            img = build_image(tflite, tflm_src, core, Path(work_dir) / "tflm-build", lib_dir=lib_dir)
            recs.add(model, core, "tflm", "flash_bytes", img["flash_bytes"], "B", sections=img["sections"],
                     code_bytes=img["code_bytes"], ops=img["ops"], **tag)
            recs.add(model, core, "tflm", "static_ram_bytes", img["static_ram_bytes"], "B", **tag)
            recs.add(model, core, "tflm", "code_bytes", img["code_bytes"], "B",
                     note="TFLM image flash minus the model array: interpreter, resolver, kernels, libc/libm parts",
                     **tag)
            em = emulate(img, x_q, timeout_s=timeout_s)
        except EdgeKDError as err:
            recs.skip(model, core, "tflm", "TFLM build/emulation", err)
            continue
        recs.add(model, core, "tflm", "emulation_matches_host", int(np.array_equal(em["output"], expected)), "bool",
                 note="emulated TFLM output == the tflite-micro Python interpreter's", **tag)
        recs.add(model, core, "tflm", "instructions", em["instructions"], "instr", **tag)
        recs.add(model, core, "tflm", "stack_bytes", em["stack_bytes"], "B", **tag)
        if em.get("cycles") is not None:
            recs.add(model, core, "tflm", "cycles", em["cycles"], "cycles", estimate=True, **tag)
            recs.add(model, core, "tflm", "latency_ms", em["cycles"] / (clock * 1e3), "ms", estimate=True, **tag)


def reference_kernel_bench(recs, work_dir, cores=None, opts=None, clocks=None):
    """The hand-written 256x64 int8 FC layer: calibrates the cost model against a known kernel."""
    from .mcu.reference import fc_reference, make_fc, write_fc_kernel

    kernel = make_fc(256, 64, seed=0)
    src = write_fc_kernel(Path(work_dir) / REFERENCE_KERNEL, kernel, name="ref")
    x = np.random.default_rng(1).integers(-128, 128, 256).astype(np.int8)
    mcu_bench(recs, REFERENCE_KERNEL, src, x, fc_reference(kernel, x), kernel.macs, name="ref", cores=cores,
              opts=opts, work_dir=Path(work_dir) / REFERENCE_KERNEL, clocks=clocks)


def ldc_bench(recs, work_dir, reports_dir, cores=None, opts=None, host_runs=200, clocks=None):
    """The LDC (binary VSA) student's C on Cortex-M and the host, at the BCI ablation's shape.

    Cycles of XOR/popcount inference depend on the shape (dim, features, levels, classes), not on
    the learned bits, so a model fitted for one epoch on random levels of that shape is measured;
    the shape comes from ``reports/bci.json`` when it records it."""
    from edgekd.models.ldc import LDCClassifier
    from firmware_export.targets.ldc_c import export_ldc_c

    shape = {"dim": 64, "num_levels": 8, "num_features": 48, "num_classes": 2}
    bci = Path(reports_dir) / "bci.json"
    if bci.is_file():
        try:
            data = json.loads(bci.read_text())
            meta = data.get("meta", {}) if isinstance(data.get("meta"), dict) else {}
            for where in (data.get("config"), meta.get("config"), data, meta):   # later wins
                for key in shape:
                    if isinstance(where, dict) and isinstance(where.get(key), int):
                        shape[key] = where[key]
        except (json.JSONDecodeError, AttributeError):
            pass
    name = f"ldc_d{shape['dim']}_f{shape['num_features']}_c{shape['num_classes']}"
    rng = np.random.default_rng(0)
    X = rng.integers(0, shape["num_levels"], size=(256, shape["num_features"])).astype(np.uint8)
    y = np.arange(256) % shape["num_classes"]
    try:
        clf = LDCClassifier(dim=shape["dim"], num_levels=shape["num_levels"], epochs=1, seed=0).fit(X, y)
        art = export_ldc_c(clf.export_packed(), Path(work_dir) / name / "ldc-c", name="ldc", parity_levels=X[:32],
                           expected_scores=clf.decision_function(X[:32]))
    except Exception as err:            # noqa: BLE001
        recs.skip(name, "host", "native-c", "ldc export", err)
        return
    del art                             # its parity.json is folded in with the other exports'
    folder = Path(work_dir) / name / "ldc-c"
    expected = np.array([int(clf.decision_function(X[:1]).argmax(1)[0])])
    try:
        from .host.native import build_host

        host = build_host(folder, "ldc", kind="ldc", out_dir=Path(work_dir) / name / "host-build")
        status, _ = host.predict(X[0])
        res = host.time(X[0], warmup=20, runs=host_runs)
        recs.add(name, "host", "native-c", "latency_ms", res["median_ms"], "ms", p90_ms=res["p90_ms"],
                 runs=res["runs"], warmup=res["warmup"], inner=res["inner"], threads=1, precision="binary",
                 compiler=recs.context["host_compiler"], shape=shape)
        recs.add(name, "host", "native-c", "max_abs_diff_vs_python", abs(status - int(expected[0])), "class",
                 precision="binary")
    except Exception as err:            # noqa: BLE001
        recs.skip(name, "host", "native-c", "ldc host build", err)
    mcu_bench(recs, name, folder, X[0], expected, None, name="ldc", kind="ldc", cores=cores, opts=opts,
              work_dir=Path(work_dir) / name, clocks=clocks)
    try:                                # the same model with precomputed bound vectors (more flash, fewer loads)
        table = export_ldc_c(clf.export_packed(), Path(work_dir) / f"{name}_bound_table" / "ldc-c", name="ldc",
                             bound_table=True,
                             parity_levels=X[:32], expected_scores=clf.decision_function(X[:32]))
    except Exception as err:            # noqa: BLE001
        recs.skip(f"{name}_bound_table", "host", "native-c", "ldc export", err)
        return
    mcu_bench(recs, f"{name}_bound_table", table.path, X[0], expected, None, name="ldc", kind="ldc", cores=cores,
              opts=opts, work_dir=Path(work_dir) / f"{name}_bound_table", clocks=clocks)


# ---- host --------------------------------------------------------------------------------------

HOST_RUNTIMES = ("native-c", "tflm", "litert", "litert-ref", "onnxruntime", "executorch", "tflite-runtime", "torch")


def int8_tflite(arts):
    """The int8 .tflite among the exports (the c folder holds one; a tflm or tflite int8 folder is one)."""
    for kind in ("c", "tflm", "tflite-int8"):
        if kind in arts:
            return arts[kind].file(".tflite")
    return None


def host_bench(recs, model_name, model, arts, x, work_dir, *, runtimes=HOST_RUNTIMES, threads=(1,), warmup=20,
               runs=200, tflite_runtime_py=None):
    """Latency (and arena, peak memory, agreement) of one model in each host runtime, on the same float
    input ``x`` (1, ...) (int8 runtimes quantize it with the model's own input scale and zero point).

    Returns ``(HostModel, x_q, y)`` of the native C build (the reference output the Cortex-M
    emulation must equal) when there is a c export, else None."""
    from .host import runtimes as rt

    def add_latency(runtime, res, **extra):
        recs.add(model_name, "host", runtime, "latency_ms", res["median_ms"], "ms", p90_ms=res["p90_ms"],
                 runs=res["runs"], warmup=res["warmup"], **extra)

    def missing(runtime, what, kinds):
        recs.skip(model_name, "host", runtime, what, f"no {' or '.join(kinds)} export of this model" +
                  ("" if model is not None else " (exporting one needs the torch model)"))

    x = np.asarray(x, np.float32)
    if model is None and "torch" in runtimes:
        recs.skip(model_name, "host", "torch", "latency", "no torch model (MODEL is an export folder or a .tflite)")
    if model is not None and "torch" in runtimes:
        if rt.torch_latency(model, x, 1, 2, 5)["median_ms"] > SLOW_MODEL_MS:   # big models: fewer timed runs
            warmup, runs = 3, 30
        for t in threads:
            try:
                add_latency("torch", rt.torch_latency(model, x, t, warmup, runs), threads=t, precision="fp32")
            except Exception as err:    # noqa: BLE001
                recs.skip(model_name, "host", "torch", "latency", err)
    if "onnxruntime" in runtimes:
        if "onnx" not in arts:
            missing("onnxruntime", "latency", ["onnx"])
        for t in threads if "onnx" in arts else ():
            try:
                add_latency("onnxruntime", rt.onnxruntime_latency(arts["onnx"].file(".onnx"), x, t, warmup, runs),
                            threads=t, precision="fp32")
            except Exception as err:    # noqa: BLE001
                recs.skip(model_name, "host", "onnxruntime", "latency", err)
    in_npy = Path(work_dir) / model_name / "input.npy"
    in_npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(in_npy, x)
    if "executorch" in runtimes:
        _executorch_bench(recs, model_name, model, arts, x, in_npy, threads, warmup, runs, add_latency)
    tfl_int8 = int8_tflite(arts)
    specs = []
    if "tflite-fp32" in arts:
        specs.append({"key": "fp32", "path": str(arts["tflite-fp32"].file(".tflite")), "input": str(in_npy),
                      "threads": list(threads)})
    if tfl_int8 is not None:
        specs.append({"key": "int8", "path": str(tfl_int8), "input": str(in_npy), "threads": list(threads)})
        specs.append({"key": "int8", "path": str(tfl_int8), "input": str(in_npy), "threads": [1], "resolver": "reference"})
    litert = {}
    for spec in specs:
        reference = spec.get("resolver") == "reference"
        if ("litert-ref" if reference else "litert") not in runtimes:
            continue
        try:
            res = rt.run_tflite_runner(sys.executable, [spec], warmup, runs)
        except Exception as err:        # noqa: BLE001
            recs.skip(model_name, "host", "litert-ref" if reference else "litert", f"latency {spec['key']}", err)
            continue
        for row in res["results"]:
            runtime = "litert" if row["resolver"] == "default" else "litert-ref"
            add_latency(runtime, {"median_ms": row["median_ms"], "p90_ms": row["p90_ms"], "runs": row["runs"],
                                  "warmup": row["warmup"]}, threads=row["threads"], precision=row["key"],
                        version=row["version"])
            litert[(runtime, row["key"], row["threads"])] = np.asarray(row["output"])
        recs.add(model_name, "host", "litert-ref" if reference else "litert", "peak_rss_bytes", res["peak_rss_bytes"],
                 "B", precision=spec["key"], note="peak RSS of the runner process (interpreter + numpy + model)")
    if "tflite-runtime" in runtimes and tflite_runtime_py is not None:
        for spec in specs:
            reference = spec.get("resolver") == "reference"
            runtime = "tflite-runtime-ref" if reference else "tflite-runtime"
            try:
                res = rt.run_tflite_runner(tflite_runtime_py, [{**spec, "threads": [1]}], warmup, runs)
            except Exception as err:    # noqa: BLE001
                recs.skip(model_name, "host", runtime, f"latency {spec['key']}", err)
                continue
            row = res["results"][0]
            add_latency(runtime, row, threads=1, precision=spec["key"], version=row["version"])
            recs.add(model_name, "host", runtime, "peak_rss_bytes", res["peak_rss_bytes"], "B", precision=spec["key"])
            ref = litert.get(("litert-ref" if reference else "litert", spec["key"], 1))
            if ref is not None:
                diff = float(np.max(np.abs(np.asarray(row["output"], np.float64) - ref.astype(np.float64))))
                recs.add(model_name, "host", runtime, "max_abs_diff_vs_" + ("litert-ref" if reference else "litert"),
                         diff, "LSB" if spec["key"] == "int8" else "abs", precision=spec["key"])
    tflm_out = None
    if tfl_int8 is not None:
        recs.add(model_name, "cortex-m", "tflm", "model_array_bytes", tfl_int8.stat().st_size, "B",
                 note="int8 .tflite flatbuffer = the TFLM model array in flash; TFLM's own code is not included")
        if "tflm" in runtimes:
            try:
                res = rt.tflm_latency(tfl_int8, x, warmup=3, runs=min(runs, 50))
                add_latency("tflm", res, threads=1, precision="int8", version=res.get("version"))
                if res.get("arena_bytes"):
                    recs.add(model_name, "host", "tflm", "arena_bytes", res["arena_bytes"], "B",
                             note="TFLM RecordingMicroAllocator 'Arena allocation total'")
                tflm_out = np.asarray(res["output"])
            except Exception as err:    # noqa: BLE001
                recs.skip(model_name, "host", "tflm", "latency", err)
    elif "tflm" in runtimes or "litert" in runtimes:
        missing("tflm", "latency", ["c", "tflm", "tflite int8"])
    if "c" not in arts:
        if "native-c" in runtimes:
            missing("native-c", "latency", ["c"])
        return None
    return _native_bench(recs, model_name, arts["c"], x, work_dir, "native-c" in runtimes, warmup, runs, litert,
                         tflm_out)


def _native_bench(recs, model_name, c_art, x, work_dir, timed, warmup, runs, litert, tflm_out):
    from .host.native import build_host

    try:
        host = build_host(c_art.file(".h").parent, c_art.name, out_dir=Path(work_dir) / model_name / "host-build")
        x_q = _quantize(x, c_art.input_quant)
        _, y = host.predict(x_q)
    except Exception as err:            # noqa: BLE001
        recs.skip(model_name, "host", "native-c", "host build", err)
        return None
    arena = host.entry.constants.get(f"{c_art.name.upper()}_ARENA_SIZE")
    if arena is not None:
        recs.add(model_name, "host", "native-c", "arena_bytes", arena, "B", note="static arena planned at export")
    if timed:
        res = host.time(x_q, warmup=warmup, runs=runs)
        recs.add(model_name, "host", "native-c", "latency_ms", res["median_ms"], "ms", p90_ms=res["p90_ms"],
                 runs=res["runs"], warmup=res["warmup"], threads=1, precision="int8", opt="-O2", inner=res["inner"],
                 compiler=recs.context["host_compiler"])
    for runtime, ref in (("litert-ref", litert.get(("litert-ref", "int8", 1))),
                         ("litert", litert.get(("litert", "int8", 1))), ("tflm", tflm_out)):
        if ref is not None:
            recs.add(model_name, "host", "native-c", "max_abs_diff_vs_" + runtime,
                     float(np.max(np.abs(y.astype(np.int64) - np.asarray(ref).astype(np.int64)))), "LSB",
                     precision="int8")
    return host, x_q, y


def _executorch_bench(recs, model_name, model, arts, x, in_npy, threads, warmup, runs, add_latency):
    """ExecuTorch .pte programs (fp32 and int8, float in/out), each in a fresh process sized to 1 thread."""
    from .host import runtimes as rt

    kinds = [k for k in ("executorch-fp32", "executorch-int8") if k in arts]
    if not kinds:
        recs.skip(model_name, "host", "executorch", "latency", "no executorch export of this model")
    ref = None
    if model is not None:
        import torch

        with torch.inference_mode():
            ref = model(torch.as_tensor(x)).reshape(-1).numpy().astype(np.float64)
    for kind in kinds:
        precision = arts[kind].precision
        try:
            res = rt.executorch_latency(arts[kind].file(".pte"), in_npy, threads=1, warmup=warmup, runs=runs)
        except Exception as err:        # noqa: BLE001
            recs.skip(model_name, "host", "executorch", f"latency {precision}", err)
            continue
        add_latency("executorch", res, threads=res["threads"], precision=precision, version=res.get("version"),
                    delegate="XnnpackBackend")
        recs.add(model_name, "host", "executorch", "peak_rss_bytes", res["peak_rss_bytes"], "B", precision=precision,
                 note="peak RSS of the runner process (torch + executorch runtime + program)")
        if ref is not None:
            out = np.asarray(res["output"], np.float64)
            recs.add(model_name, "host", "executorch", "max_abs_diff_vs_torch", float(np.max(np.abs(out - ref))),
                     "abs", precision=precision, note="float outputs; int8 differs by quantization (information)")
    if len(threads) > 1 or threads[0] != 1:
        logger.info("executorch is timed on 1 thread only")


# ---- accuracy ----------------------------------------------------------------------------------

def accuracy_bench(recs, model_name, model, arts, host, data, max_samples=None):
    """Test accuracy of the float model (torch) and of the int8 artifact (native C on the host),
    on the same test images (a slow model uses the first 300 so the pass stays in seconds)."""
    import torch

    n = min(max_samples or len(data.test), len(data.test))
    x, y = np.asarray(data.test.x[:n], np.float32), np.asarray(data.test.y[:n])
    with_c = host is not None and "c" in arts
    if with_c:
        per_call = host.time(_quantize(x[:1], arts["c"].input_quant), warmup=1, runs=3)["median_ms"]
        if per_call > SLOW_MODEL_MS and n > 300:
            n, x, y = 300, x[:300], y[:300]
    with torch.inference_mode():
        pred = model(torch.as_tensor(x)).argmax(1).numpy()
    recs.add(model_name, "host", "torch", "accuracy", float((pred == y).mean()), "fraction", precision="fp32",
             samples=n, split="test")
    if with_c:
        xq = _quantize(x, arts["c"].input_quant)
        preds = np.array([int(np.argmax(host.predict(xi)[1])) for xi in xq])
        recs.add(model_name, "host", "native-c", "accuracy", float((preds == y).mean()), "fraction",
                 precision="int8", samples=n, split="test")


# ---- folded reports ----------------------------------------------------------------------------

def fold_reports(recs, reports_dir, work_dir, models=None):
    """Other stages' reports and the exports' parity records (of ``models``, default all folders
    under ``work_dir``), kept whole under ``data``."""
    for fname in FOLDED_REPORTS:
        path = Path(reports_dir) / fname
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            recs.skip(fname, "host", "report", "fold", f"{path}: not valid JSON ({err})")
            continue
        recs.add(path.stem, "host", "report", "report", None, None, source=str(path), data=data)
        if fname == "demo.json" and isinstance(data, dict):
            for row in data.values():
                if isinstance(row, dict) and "accuracy" in row and "name" in row:
                    recs.add(row["name"], "host", "torch", "accuracy", row["accuracy"], "fraction", precision="fp32",
                             source=str(path), seeds=len(row.get("accuracy_per_seed", {})) or 1,
                             bytes_int8=row.get("bytes_int8"), params=row.get("params"))
    for path in sorted(Path(work_dir).glob("*/*/parity.json")):
        model, kind = path.parent.parent.name, path.parent.name
        if models is not None and model not in models:
            continue                    # a stale folder from an earlier run
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue
        recs.add(model, "host", kind, "parity", 1 if data.get("passed") else 0, "bool", source=str(path), data=data)


# ---- main ---------------------------------------------------------------------------------------

def main(argv=None) -> int:
    """``python -m benchmarks.run``: the demo models, the zoo and the appendix, as ``make bench`` runs them."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                description="Same as `edgekd bench --demo --zoo`: every demo model and the "
                                            "model zoo, Cortex-M and host, into one bench.json and report.")
    p.add_argument("--out", default="reports/bench.json", help="bench.json path; the report goes beside it")
    p.add_argument("--quick", action="store_true", help="M0+ and M4 only, fewer runs, a test subset")
    p.add_argument("--runs-dir", default="runs/demo", help="folder of the demo checkpoints")
    p.add_argument("--work-dir", default="build/bench", help="exports and builds go here")
    p.add_argument("--reports-dir", default="reports", help="where demo/bci/generators/selfdistill.json are read")
    p.add_argument("--no-zoo", action="store_true", help="the demo models only")
    p.add_argument("--no-tflite-runtime", action="store_true", help="skip the numpy<2 tflite-runtime venv leg")
    p.add_argument("--train-quick", action="store_true", help="train a small student first if no checkpoint exists")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args(argv)
    from .bench import BenchConfig, bench

    command = "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    out = Path(args.out)
    try:
        if args.train_quick and not any((Path(args.runs_dir) / f"{n}.pt").is_file() for n in DEMO_MODELS):
            train_quick(args.runs_dir, verbose=args.verbose)
        config = BenchConfig.quick() if args.quick else BenchConfig()
        if args.no_tflite_runtime:
            config = config.replace(runtimes=tuple(r for r in config.runtimes if r != "tflite-runtime"))
        bench(out_dir=out.parent, json_name=out.name, demo=True, zoo=not args.no_zoo, config=config,
              runs_dir=args.runs_dir, work_dir=args.work_dir, reports_dir=args.reports_dir, command=command,
              verbose=args.verbose or None)
    except EdgeKDError as err:
        if args.verbose:
            raise
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
