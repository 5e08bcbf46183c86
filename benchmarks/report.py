"""Render a ``bench.json`` into ``report.md`` and ``report.html`` (plots embedded: one file to open).

    python -m benchmarks.report reports/bench.json --out reports

Models first: one summary row per model (Cortex-M estimates per core, host measurements), host
latency per runtime (small multiples, one panel per model), the MLPerf Tiny models next to the
published results, accuracy vs flash, memory next to TFLite Micro's, the Cortex-M builds in detail,
agreement between runtimes, the other stages' reports, and an appendix with the kernels that
calibrate the cost model. Every number is labelled: ``est.`` (emulator + cost model), ``meas.``
(timed, or read from a built file, on this machine) or ``pub.`` (published board measurements).
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks.mlperf import MLPERF_TO_ZOO
from edgekd.errors import EdgeKDError
from edgekd.io import atomic_path, atomic_write_text

CORE_ORDER = ("cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33")
CORE_SHORT = {"cortex-m0plus": "M0+", "cortex-m4": "M4", "cortex-m7": "M7", "cortex-m33": "M33"}
APPENDIX_PREFIXES = ("reference-", "ldc")      # calibration kernels, not models a user deploys
HOST_ORDER = ("native-c", "tflm", "litert-ref", "litert", "tflite-runtime-ref", "tflite-runtime", "onnxruntime",
              "executorch", "torch")
MAX_SERIES = 8                                  # per plot; more become small multiples
LABELS = ("How to read the numbers: **est.** = estimate (one inference emulated in unicorn, instructions "
          "weighted by a per-core cost model: in-order tables from the Cortex-M technical reference manuals, "
          "a dual-issue block schedule for the M7; no flash wait states, no bus contention; ms = cycles / the "
          "stated clock). **meas.** = measured on this machine "
          "(host latency: median of timed runs after warm-up, 1 thread, every runtime fed the same input; "
          "sizes: read from the linked ELF or the planned arena). **pub.** = published board measurements by "
          "others.")
TFLM_BUILT_NOTE = ("TFLite Micro was also built from its sources for each core (`--tflm-src`, "
                   "`benchmarks/tflm_size.py`: TFLM's release flags, -Os core and -O2 reference kernels, a "
                   "MicroMutableOpResolver with exactly the model's ops, newlib-nano, --gc-sections): its flash is the "
                   "whole image, its code = that flash minus the model array (interpreter, resolver, kernels and the "
                   "libc/libm parts they pull in); one inference was emulated with the same cost model as the native C "
                   "rows (est.) and its output equals the tflite-micro Python interpreter's.")
TFLM_CODE_NOTE = ("TFLite Micro's own code (interpreter, op resolver, kernels) is not in these numbers: the "
                  "`tflite-micro` pip package ships the interpreter only as an x86-64 Python extension "
                  "(`_runtime.so`), with no C++ sources to cross-build for Cortex-M, so its flash cost could "
                  "not be measured here. The TFLM column is the model array (the int8 .tflite) alone; a TFLM "
                  "firmware adds the interpreter and its kernels on top of it. The native C flash is the whole "
                  "linked image (code, weights, startup).")


# ---- document model: sections of paragraphs, tables and images, rendered twice ----------------

class Doc:
    def __init__(self):
        self.blocks = []          # ("h", level, text) | ("p", text) | ("table", headers, rows) | ("img", path, alt)

    def h(self, text, level=2):
        self.blocks.append(("h", level, text))

    def p(self, text):
        self.blocks.append(("p", text))

    def table(self, headers, rows, folded=None):
        """A table; ``folded``: a summary line, and the table is collapsed under it in the HTML."""
        if rows:
            self.blocks.append(("table", list(headers), [list(r) for r in rows], folded))
        else:
            self.p("(no data)")

    def img(self, path, alt):
        if path is not None:
            self.blocks.append(("img", Path(path), alt))

    def markdown(self, base: Path) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "table":
                if b[3]:
                    out += [b[3], ""]
                out.append("| " + " | ".join(b[1]) + " |")
                out.append("|" + "---|" * len(b[1]))
                out += ["| " + " | ".join(_cell(c).replace("|", "\\|") for c in r) + " |" for r in b[2]]
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1].relative_to(base).as_posix()})")
            out.append("")
        return "\n".join(out)

    def html(self, title) -> str:
        heads = [(i, b[2]) for i, b in enumerate(self.blocks) if b[0] == "h" and b[1] == 2]
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
                 "<style>body{font-family:system-ui,sans-serif;max-width:1180px;margin:1.5em auto;padding:0 1em;"
                 "line-height:1.45;color:#222}h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;"
                 "padding-bottom:.2em}.wrap{overflow-x:auto;margin:.8em 0}table{border-collapse:collapse;"
                 "font-size:88%}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}"
                 "th{background:#f0f0f0;vertical-align:bottom;white-space:normal;min-width:4em}"
                 "td.t{text-align:left;white-space:normal}th{text-align:left}summary{cursor:pointer;margin:.6em 0;color:#245}tr:nth-child(even) td{background:#fafafa}"
                 "img{max-width:100%}code{background:#f4f4f4;padding:0 2px}nav{font-size:92%;columns:2}"
                 "p{max-width:60em}</style></head><body>"]
        for i, b in enumerate(self.blocks):
            if b[0] == "h":
                anchor = f" id='s{i}'" if b[1] == 2 else ""
                parts.append(f"<h{b[1]}{anchor}>{html.escape(b[2])}</h{b[1]}>")
                if b[1] == 1 and heads:
                    parts.append("<nav><ol>" + "".join(f"<li><a href='#s{j}'>{html.escape(t)}</a></li>"
                                                       for j, t in heads) + "</ol></nav>")
            elif b[0] == "p":
                parts.append(f"<p>{_inline(html.escape(b[1]))}</p>")
            elif b[0] == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
                body = "".join("<tr>" + "".join(_td(c) for c in r) + "</tr>" for r in b[2])
                table = f"<div class='wrap'><table><tr>{head}</tr>{body}</table></div>"
                if b[3]:
                    table = f"<details><summary>{_inline(html.escape(b[3]))}</summary>{table}</details>"
                parts.append(table)
            elif b[0] == "img":
                data = base64.b64encode(b[1].read_bytes()).decode()
                parts.append(f"<p><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'></p>")
        parts.append("</body></html>")
        return "\n".join(parts)


_NUMERIC = re.compile(r"^[-+]?[\d.,]+(e[-+]?\d+)?( ?(ms|us|ns|%|x|B|KiB|MiB|MHz))?$")


def _td(value):
    """A table cell: numbers (and latencies like "40.3 us") right-aligned, text left-aligned."""
    text = _cell(value)
    numeric = (isinstance(value, (int, float)) and not isinstance(value, bool)) or text == "-" or \
        bool(_NUMERIC.match(text))
    cls = "" if numeric else " class='t'"
    return f"<td{cls}>{html.escape(text)}</td>"


def _inline(text):
    """`code` and **bold** in an escaped paragraph."""
    pieces = text.split("`")
    text = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)


def _cell(v):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def format_ms(ms) -> str:
    """A latency in the unit that reads best: 22.3 ms, 40.3 us, 72 ns (never 0.0000x ms)."""
    if ms is None:
        return "-"
    ms = float(ms)
    if ms >= 1000:
        return f"{ms:,.0f} ms"
    if ms >= 1:
        return f"{ms:.3g} ms"
    if ms >= 1e-3:
        return f"{ms * 1e3:.3g} us"
    return f"{ms * 1e6:.3g} ns"


# ---- record queries ----------------------------------------------------------------------------

def load_records(path) -> list[dict]:
    """The records of a bench.json (a list of dicts with model/target/runtime/metric/value/unit)."""
    path = Path(path)
    if not path.is_file():
        raise EdgeKDError(f"{path}: not found; run `make bench` (edgekd bench --demo --zoo) first")
    try:
        recs = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise EdgeKDError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(recs, list):
        raise EdgeKDError(f"{path}: expected a list of records, got {type(recs).__name__}")
    for i, r in enumerate(recs):
        missing = {"model", "target", "runtime", "metric", "value", "unit"} - set(r) if isinstance(r, dict) else {"all"}
        if missing:
            raise EdgeKDError(f"{path}: record {i} lacks field(s) {sorted(missing)}")
    return recs


def select(recs, **match):
    return [r for r in recs if all(r.get(k) == v for k, v in match.items())]


def one(recs, **match):
    rows = select(recs, **match)
    return rows[0]["value"] if rows else None


def is_appendix(model) -> bool:
    return str(model).startswith(APPENDIX_PREFIXES)


def models_of(recs, appendix=False):
    """Model names in record order (the calibration kernels only with ``appendix``). An accuracy alone
    does not make a model: the demo's report folds in accuracies of arms that were not benchmarked."""
    seen = []
    for r in recs:
        m = r["model"]
        if r["metric"] in ("report", "skipped", "bench_seconds", "config", "accuracy") or m == "*" or m in seen:
            continue
        if is_appendix(m) == appendix:
            seen.append(m)
    return seen


def cores_in(recs):
    present = {r["target"] for r in recs if r["target"].startswith("cortex-") and r["metric"] == "flash_bytes"}
    return [c for c in CORE_ORDER if c in present] + sorted(present - set(CORE_ORDER))


def best_mcu(recs, model, core="cortex-m4", metric="cycles", opt="-O2"):
    """(value, variant) of the export as it is (DSP path where the core has one), else plain C."""
    for variant in ("native-c-dsp", "native-c"):
        v = one(recs, model=model, target=core, runtime=variant, metric=metric, opt=opt)
        if v is not None:
            return v, variant
    return None, None


def clock_of(recs, core):
    for r in recs:
        if r["target"] == core and r.get("clock_mhz"):
            return r["clock_mhz"]
    return None


# ---- plots -------------------------------------------------------------------------------------

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
    _plt().close(fig)
    return path


def _ms_axis(axis, values=()):
    """Log axis in ms with tick labels in the unit that reads best (us below 1 ms); 1-2-5 ticks when the
    values span less than two decades, one tick per decade otherwise (labels must not collide)."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    values = [v for v in values if v and v > 0]
    span = math.log10(max(values) / min(values)) if values else 0.0
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if span < 2 else (1.0,)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: format_ms(v).replace(".0 ", " ")))
    axis.set_minor_formatter(NullFormatter())


def plot_core_latency(rows, cores, path):
    """Grouped bars: estimated ms per model (groups) and core (at most MAX_SERIES series), labelled."""
    if not rows:
        return None
    import numpy as np
    plt = _plt()
    models = list(rows)
    cores = [c for c in cores if any(rows[m].get(c) is not None for m in models)][:MAX_SERIES]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.3 * len(models) * max(1, len(cores)) / 2 + 2), 4))
    width = 0.8 / max(1, len(cores))
    for j, core in enumerate(cores):
        vals = [rows[m].get(core) for m in models]
        bars = ax.bar(np.arange(len(models)) + j * width, [np.nan if v is None else v for v in vals], width,
                      label=f"{CORE_SHORT.get(core, core)}")
        ax.bar_label(bars, labels=[format_ms(v) if v is not None else "" for v in vals], fontsize=7, rotation=90,
                     padding=2)
    ax.set_xticks(np.arange(len(models)) + width * (len(cores) - 1) / 2, models, rotation=20 if len(models) > 3 else 0,
                  ha="right" if len(models) > 3 else "center")
    ax.set_yscale("log")
    ax.margins(y=0.25)
    _ms_axis(ax.yaxis, [v for m in models for v in rows[m].values()])
    ax.set_ylabel("ms per inference, est. (log)")
    ax.set_title("Cortex-M latency per inference: ESTIMATES at the stated clocks")
    ax.legend(fontsize=8, ncol=len(cores), loc="lower center", bbox_to_anchor=(0.5, 1.08), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_host_latency(per_model, path):
    """Small multiples: one panel per model, one bar per runtime (measured ms, log axis)."""
    if not per_model:
        return None
    plt = _plt()
    models = list(per_model)
    ncols = min(3, len(models))
    nrows = -(-len(models) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 0.28 * max(len(v) for v in per_model.values()) *
                                                    nrows + 1.2 * nrows), squeeze=False)
    for ax, model in zip(axes.flat, models):
        items = sorted(per_model[model].items(), key=lambda kv: kv[1])
        bars = ax.barh(range(len(items)), [v for _, v in items], color="tab:blue")
        ax.bar_label(bars, labels=[format_ms(v) for _, v in items], fontsize=7, padding=2)
        ax.margins(x=0.3)
        ax.set_yticks(range(len(items)), [k for k, _ in items], fontsize=8)
        ax.set_xscale("log")
        _ms_axis(ax.xaxis, [v for _, v in items])
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(model, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(models):]:
        ax.axis("off")
    fig.suptitle("Host latency, meas. (median, 1 thread; log axis, shorter is faster)", fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


def accuracy_axis_limits(accuracies_pct, span=20.0):
    """(low, high) in percent: at least ``span`` points tall and ending at 100, so a one-point gap
    looks like one point out of twenty, not like half the plot."""
    lo = min(accuracies_pct)
    low = min(lo - 2.0, 100.0 - span)
    return max(0.0, 5.0 * (low // 5.0)), 100.0


def plot_pareto(points, path):
    """Accuracy (%) vs flash (KiB, M4 ELF); the Pareto front dashed; honest axes (see accuracy_axis_limits)."""
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for model, flash, acc in points:
        ax.scatter(flash / 1024, 100 * acc, color="tab:blue")
        ax.annotate(f"{model} ({100 * acc:.1f}%)", (flash / 1024, 100 * acc), fontsize=8, xytext=(5, 4),
                    textcoords="offset points")
    front, best = [], -1.0
    for model, flash, acc in sorted(points, key=lambda p: (p[1], -p[2])):
        if acc > best:
            front.append((flash / 1024, 100 * acc))
            best = acc
    ax.plot([f for f, _ in front], [a for _, a in front], "k--", lw=0.8, label="Pareto front")
    ax.set_xscale("log")
    ax.set_ylim(*accuracy_axis_limits([100 * a for _, _, a in points]))
    ax.set_xlabel("flash, KiB (meas.: linked Cortex-M4 ELF, -O2; log)")
    ax.set_ylabel("test accuracy, % (meas.)")
    ax.set_title("Accuracy vs flash")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def plot_cycles_per_mac(rows, path):
    """Bars: estimated cycles/MAC per (model, core) with the lower bound as a marker."""
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(rows) + 1), 3.8))
    labels = [f"{m} {CORE_SHORT.get(c, c)}{' DSP' if v.endswith('dsp') else ''}" for m, c, v, _, _ in rows]
    ax.bar(range(len(rows)), [r[3] for r in rows], color="tab:blue", label="cycles/MAC, est.")
    ax.scatter(range(len(rows)), [r[4] for r in rows], color="tab:red", marker="_", s=300, label="lower bound")
    ax.set_xticks(range(len(rows)), labels, fontsize=7, rotation=60, ha="right")
    ax.set_yscale("log")
    from matplotlib.ticker import FuncFormatter, NullFormatter
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylabel("cycles per MAC, est. (log)")
    ax.set_title("Cortex-M cycles per MAC vs the multiply bound (-O2)", pad=24)
    ax.legend(fontsize=8, ncol=2, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_generators(report, path):
    """FD vs sampling steps per generator method (from reports/generators.json), and host cost."""
    series = {}
    for method, val in report.items():
        if isinstance(val, dict) and val and all(k.isdigit() and isinstance(v, (int, float)) for k, v in val.items()):
            series[method] = sorted((int(k), float(v)) for k, v in val.items())
    if not series:
        return None
    plt = _plt()
    cost = report.get("cost", {}) if isinstance(report.get("cost"), dict) else {}
    lat = cost.get("latency_ms", {}) if isinstance(cost.get("latency_ms"), dict) else {}
    fig, axes = plt.subplots(1, 2 if lat else 1, figsize=(11 if lat else 6, 4), squeeze=False)
    ax = axes[0][0]
    for method, pts in list(series.items())[:MAX_SERIES]:
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("FD, meas. (classifier features; lower is better)")
    ax.set_title("Generators: FD vs steps")
    ax.legend(fontsize=7)
    if lat:
        ax2 = axes[0][1]
        names = list(lat)
        ax2.barh(range(len(names)), [lat[n] for n in names])
        ax2.set_yticks(range(len(names)), names, fontsize=7)
        ax2.set_xscale("log")
        _ms_axis(ax2.xaxis, list(lat.values()))
        ax2.set_xlabel("host latency per image, meas. (log)")
        ax2.set_title("Generators: cost")
    return _save(fig, path)


# ---- sections ----------------------------------------------------------------------------------

def _ctx(recs):
    for r in recs:
        if "machine" in r:
            return r
    return {}


def render(recs, out_dir, mlperf=None) -> Doc:
    """Build the report document (and its PNGs under ``out_dir/plots``). ``mlperf``: a dict in the shape
    of ``benchmarks.mlperf.measure()`` (default: folded in bench.json, or built from the zoo records)."""
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    doc = Doc()
    ctx = _ctx(recs)
    doc.h("edgekd benchmark report", 1)
    doc.p(f"{ctx.get('date', '?')} on {ctx.get('machine', '?')}. Command: `{ctx.get('command', '?')}`.")
    load = ctx.get("load_average")
    if load:
        busy = " The machine was busy: host latencies are noisy (read medians, compare within a model)." \
            if load[0] > (ctx.get("cpu_count") or 1) else ""
        doc.p(f"Load average when the run started: {', '.join(f'{v:.1f}' for v in load)} "
              f"({ctx.get('cpu_count', '?')} cores).{busy}")
    doc.p(LABELS)
    models = models_of(recs)
    _summary(doc, recs, models, plots)
    _goals(doc, recs, models + models_of(recs, appendix=True))
    _host(doc, recs, models, plots)
    _mlperf(doc, recs, mlperf)
    _pareto(doc, recs, models, plots)
    _memory(doc, recs, models)
    _mcu(doc, recs, models, plots)
    _parity(doc, recs)
    _folded(doc, recs, plots)
    _appendix(doc, recs)
    skipped = select(recs, metric="skipped")
    if skipped:
        doc.h("Skipped")
        doc.p(f"{len(skipped)} measurements could not be made; each says why.")
        doc.table(["model", "target", "runtime", "what", "reason"],
                  [[r["model"], r["target"], r["runtime"], r.get("what"), (r.get("reason") or "").splitlines()[0][:200]]
                   for r in skipped], folded="The skipped measurements and their reasons")
    doc.h("Machine, versions and inputs")
    inputs = [[r["model"], r["runtime"], r.get("source"), "x".join(map(str, r["value"][1:])), r.get("input")]
              for r in select(recs, metric="input_shape")]
    if inputs:
        doc.table(["model", "kind", "source", "input shape", "input every runtime got"], inputs)
    doc.p(f"Cross compiler: {ctx.get('arm_compiler') or 'not installed (Cortex-M parts skipped)'}. "
          f"Host compiler: {ctx.get('host_compiler') or '?'}.")
    versions = ctx.get("versions") or {}
    if versions:
        doc.p("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".")
    secs = one(recs, metric="bench_seconds")
    if secs is not None:
        doc.p(f"Benchmark wall time: {secs:.0f} s.")
    return doc


def _summary(doc, recs, models, plots):
    doc.h("Models")
    cores = cores_in(recs)
    doc.p("One row per model. Cortex-M: the C export cross-built at -O2 as it is (SMLAD path on cores with "
          "the DSP extension), est. latency at the clock in the header. Host: meas. median, 1 thread.")
    headers = ["model", "MACs", "flash B, M4 (meas.)", "RAM B, M4 (meas.)"]
    headers += [f"{CORE_SHORT.get(c, c)}" + (f" @ {clock_of(recs, c):g} MHz" if clock_of(recs, c) else "") + " (est.)"
                for c in cores]
    extra = [("native C host (meas.)", lambda m: format_ms(one(recs, model=m, target="host", runtime="native-c",
                                                                metric="latency_ms"))),
             ("TFLM host (meas.)", lambda m: format_ms(one(recs, model=m, target="host", runtime="tflm",
                                                            metric="latency_ms"))),
             ("accuracy, int8 C (meas.)", lambda m: one(recs, model=m, runtime="native-c", metric="accuracy"))]
    extra = [(h, f) for h, f in extra if any(f(m) not in (None, "-") for m in models)]   # no empty columns
    headers += [h for h, _ in extra]
    rows, plot_rows = [], {}
    for m in models:
        lat = {c: best_mcu(recs, m, c, "latency_ms")[0] for c in cores}
        plot_rows[m] = {c: v for c, v in lat.items() if v is not None}
        ram, _ = best_mcu(recs, m, metric="ram_bytes")
        static, _ = best_mcu(recs, m, metric="static_ram_bytes")
        rows.append([m, one(recs, model=m, metric="macs"), best_mcu(recs, m, metric="flash_bytes")[0],
                     ram if ram is not None else static]
                    + [format_ms(lat[c]) if lat[c] is not None else _no_cycles(recs, m, c) for c in cores]
                    + [f(m) for _, f in extra])
    doc.table(headers, rows)
    doc.p("RAM = static RAM (.data + .bss: the arena and I/O buffers) + the stack measured in emulation. "
          "\"counts only\": the core has no cycle model (instructions are in the Cortex-M section).")
    if any(plot_rows.values()):
        doc.img(plot_core_latency({m: v for m, v in plot_rows.items() if v}, cores, plots / "cortex_m_latency.png"),
                "estimated Cortex-M latency per model and core")


def _no_cycles(recs, model, core):
    instr, _ = best_mcu(recs, model, core, "instructions")
    if instr is not None:
        return "counts only"
    return "-"


GOALS = (("host: TFLM time / native C time (meas.)", ">= 3"), ("arena: native C / TFLM (meas.)", "<= 0.6"),
         ("M4 DSP -O2: cycles / SMLAD bound (est.)", "<= 2"), ("LDC: M4 -O2 cycles per trial (est.)", "< 5,000"))


def goal_values(recs, m) -> list:
    """(value, met) per GOALS entry for model ``m``; None where it does not apply or was not measured."""
    tflm = one(recs, model=m, target="host", runtime="tflm", metric="latency_ms")
    c_host = one(recs, model=m, target="host", runtime="native-c", metric="latency_ms")
    c_arena = one(recs, model=m, target="host", runtime="native-c", metric="arena_bytes")
    t_arena = one(recs, model=m, target="host", runtime="tflm", metric="arena_bytes")
    cpm = select(recs, model=m, target="cortex-m4", runtime="native-c-dsp", metric="cycles_per_mac", opt="-O2")
    ratio = cpm[0].get("ratio_to_bound") if cpm else None
    ldc = one(recs, model=m, target="cortex-m4", metric="cycles", opt="-O2") if "ldc" in m.lower() else None
    return [(tflm / c_host, tflm / c_host >= 3) if tflm and c_host else None,
            (c_arena / t_arena, c_arena / t_arena <= 0.6) if c_arena and t_arena else None,
            (ratio, ratio <= 2) if ratio is not None else None,
            (ldc, ldc < 5000) if ldc else None]


def _goals(doc, recs, models):
    rows = []
    for m in models:
        vals = goal_values(recs, m)
        if any(v is not None for v in vals):
            rows.append([m] + ["-" if v is None else f"{_cell(v[0])} ({'met' if v[1] else 'not met'})" for v in vals])
    if not rows:
        return
    used = [i for i in range(len(GOALS)) if any(r[1 + i] != "-" for r in rows)]
    doc.h("Goals")
    doc.p("The project's targets for the native C target, read here (not asserted in tests).")
    doc.table(["model"] + [f"{GOALS[i][0]}, target {GOALS[i][1]}" for i in used], [[r[0]] + [r[1 + i] for i in used]
                                                                                   for r in rows])


def _label(runtime, precision):
    return f"{runtime} {precision or ''}".strip()


def _pivot(recs, models, metric, order, value=lambda r: r["value"], where=lambda r: True):
    """{model: {label: value}} and the labels in ``order``, of the records of ``metric``."""
    table, labels = defaultdict(dict), []
    for r in select(recs, metric=metric):
        if r["model"] in models and where(r):
            label = _label(r["runtime"], r.get("precision"))
            table[r["model"]].setdefault(label, value(r))
            if label not in labels:
                labels.append(label)
    rank = {rt: i for i, rt in enumerate(order)}
    labels.sort(key=lambda lab: (rank.get(lab.split()[0], 99), lab))
    return table, labels


def _host(doc, recs, models, plots):
    doc.h("Host latency (meas.)")
    one_thread = lambda r: r["target"] == "host" and r.get("threads", 1) == 1   # noqa: E731
    table, labels = _pivot(recs, models, "latency_ms", HOST_ORDER, where=one_thread)
    doc.p("Median per inference, 1 thread, the same input for every runtime. native-c = the C export built "
          "with `cc -O2`, timed inside C; tflm = the TFLite Micro interpreter; litert-ref = LiteRT's reference "
          "kernels (`OpResolverType.BUILTIN_REF`, the arithmetic TFLM follows); litert = LiteRT with XNNPACK; "
          "executorch = a .pte on the XNNPACK delegate, float in and out; tflite-runtime = the 2.14 wheel in its "
          "own numpy<2 venv.")
    doc.table(["model"] + [f"{lab} (meas.)" for lab in labels],
              [[m] + [format_ms(table[m].get(lab)) for lab in labels] for m in models if m in table])
    doc.img(plot_host_latency({m: table[m] for m in models if m in table}, plots / "host_latency.png"),
            "host latency per runtime, one panel per model")
    order = {rt: i for i, rt in enumerate(HOST_ORDER)}
    host = sorted((r for r in select(recs, target="host", metric="latency_ms") if r["model"] in models),
                  key=lambda r: (models.index(r["model"]), order.get(r["runtime"], 99), str(r.get("precision"))))
    doc.table(["model", "runtime", "precision", "threads", "median (meas.)", "p90 (meas.)", "runs", "version"],
              [[r["model"], r["runtime"], r.get("precision"), r.get("threads"), format_ms(r["value"]),
                format_ms(r.get("p90_ms")), r.get("runs"), r.get("version")] for r in host],
              folded="Every timing: median, p90, runs, versions")
    mem, labels = _pivot(recs, models, "peak_rss_bytes", HOST_ORDER, value=lambda r: r["value"] / 2 ** 20)
    if mem:
        doc.table(["model"] + [f"{lab} MiB (meas.)" for lab in labels],
                  [[m] + [mem[m].get(lab) for lab in labels] for m in models if m in mem],
                  folded="Peak memory of the runner processes (VmHWM: interpreter, numpy and the model; the "
                         "ExecuTorch runner also holds torch)")


# MLPerf Tiny: our zoo names -> the names benchmarks.mlperf uses
ZOO_TO_MLPERF = {zoo: name for name, zoo in MLPERF_TO_ZOO.items()}
MLPERF_COLUMNS = (("tflm_m4", "TFLM reference v0.5 (pub.)"), ("xcubeai_m4", "X-CUBE-AI 9.0 (pub.)"),
                  ("plumerai_m4", "Plumerai (pub.)"))


def mlperf_from_records(recs):
    """The MLPerf Tiny dict (the shape ``benchmarks.mlperf.measure()`` returns, the keys this report
    reads) built from the zoo models' records and the published numbers in ``benchmarks.mlperf``;
    None when the zoo records are missing."""
    import importlib

    mlperf = importlib.import_module("benchmarks.mlperf")

    models = {}
    for zoo_name, name in ZOO_TO_MLPERF.items():
        if not select(recs, model=zoo_name):
            continue
        cores = {}
        for core in ("cortex-m4", "cortex-m7"):
            q = {k: best_mcu(recs, zoo_name, core, k)[0] for k in
                 ("cycles", "latency_ms", "flash_bytes", "static_ram_bytes", "stack_bytes", "instructions")}
            if q["flash_bytes"] is not None:
                cores[core] = dict(cycles=q["cycles"], ms=q["latency_ms"], flash_bytes=q["flash_bytes"],
                                   static_ram_bytes=q["static_ram_bytes"], stack_bytes=q["stack_bytes"],
                                   instructions=q["instructions"], clock_mhz=clock_of(recs, core), estimate=True)
                tflm = {k: one(recs, model=zoo_name, target=core, runtime="tflm", metric=k)
                        for k in ("latency_ms", "flash_bytes", "code_bytes", "static_ram_bytes", "stack_bytes")}
                if tflm["flash_bytes"] is not None:      # TFLM built from source here (optional keys)
                    cores[core].update(tflm_ms=tflm["latency_ms"], tflm_flash_bytes=tflm["flash_bytes"],
                                       tflm_code_bytes=tflm["code_bytes"], tflm_static_ram_bytes=tflm["static_ram_bytes"],
                                       tflm_stack_bytes=tflm["stack_bytes"])
        models[name] = dict(task=mlperf.TASKS[name], macs=one(recs, model=zoo_name, metric="macs"),
                            published_ms=mlperf.PUBLISHED_MS[name], cores=cores,
                            flash_bytes=cores.get("cortex-m4", {}).get("flash_bytes"),
                            arena_bytes=one(recs, model=zoo_name, target="host", runtime="native-c",
                                            metric="arena_bytes"),
                            tflm_arena_bytes=one(recs, model=zoo_name, target="host", runtime="tflm",
                                                 metric="arena_bytes"),
                            tflm_model_bytes=one(recs, model=zoo_name, runtime="tflm", metric="model_array_bytes"),
                            source=f"zoo:{zoo_name}")
    if not models:
        return None
    return {"context": {"published_source": mlperf.PUBLISHED_SOURCE}, "models": models}


def _mlperf(doc, recs, mlperf):
    doc.h("MLPerf Tiny models next to the published results")
    folded = select(recs, model="mlperf", metric="report")
    mlperf = mlperf or (folded[0].get("data") if folded else None) or mlperf_from_records(recs)
    if not mlperf or not mlperf.get("models"):
        doc.p("(not in this run: `edgekd bench --zoo --out DIR` measures the four MLPerf Tiny models of the zoo and puts "
              "them next to the published board numbers; `make bench` does)")
        return
    m4_clock, m7_clock = (_mlperf_clock(mlperf, core, default) for core, default in (("cortex-m4", 120.0),
                                                                                        ("cortex-m7", 280.0)))
    doc.p("**Read with care: ours are emulator ESTIMATES, theirs are board MEASUREMENTS.** Our cycles come "
          "from an emulator and a cost model that has no flash wait states, no cache misses and no bus "
          "contention, so they flatter us; the published latencies were measured on real boards. Our ms are "
          "at the boards' clocks. Our weights are seeded random (speed does not depend on trained values).")
    rows, rows7 = [], []
    built = any(m.get("cores", {}).get("cortex-m4", {}).get("tflm_ms") for m in mlperf["models"].values())
    for name, m in mlperf["models"].items():
        pub = m.get("published_ms", {})
        m4 = m.get("cores", {}).get("cortex-m4", {})
        m7 = m.get("cores", {}).get("cortex-m7", {})
        rows.append([m.get("task", name), m.get("macs"), _ms_or_counts(m4)]
                    + ([format_ms(m4.get("tflm_ms")), _ratio(pub.get("tflm_m4"), m4.get("tflm_ms"))] if built else [])
                    + [_published(pub.get(k)) for k, _ in MLPERF_COLUMNS] + [_ratio(pub.get("xcubeai_m4"), m4.get("ms"))])
        rows7.append([m.get("task", name), _ms_or_counts(m7), _published(pub.get("xcubeai_m7")),
                      _ratio(pub.get("xcubeai_m7"), m7.get("ms"))])
    doc.p(f"Cortex-M4 at {m4_clock:g} MHz (published: NUCLEO-L4R5ZI), ms per inference:")
    doc.table(["model", "MACs", "edgekd native C (est.)"]
              + (["TFLM reference kernels, built here (est.)", "TFLM v0.5 board / our TFLM estimate"] if built else [])
              + [h for _, h in MLPERF_COLUMNS] + ["X-CUBE-AI / ours"], rows)
    if built:
        doc.p("The TFLM column built here runs TFLite Micro's reference kernels through the same emulator and cost "
              "model as our C: its ratio to the published TFLM v0.5 board measurement says how far the estimates "
              "are from a board for interpreter code (a ratio above 1: the board was slower than our estimate; "
              "TFLM has changed since v0.5).")
    doc.p(f"Cortex-M7 at {m7_clock:g} MHz (published: NUCLEO-H7A3ZI-Q), ms per inference:")
    doc.table(["model", "edgekd native C (est.)", "X-CUBE-AI 9.0 (pub.)", "X-CUBE-AI / ours"], rows7)
    doc.p("X-CUBE-AI / ours above 1 means our estimate is faster than their board measurement; with no wait "
          "states modelled, read a ratio near 1 as a tie at best. \"counts only\": no cycle model for that core. "
          f"Published numbers: {mlperf.get('context', {}).get('published_source', 'benchmarks.mlperf')}.")
    mem = []
    for name, m in mlperf["models"].items():
        m4 = m.get("cores", {}).get("cortex-m4", {})
        ram = (m4.get("static_ram_bytes") or 0) + (m4.get("stack_bytes") or 0) if m4.get("static_ram_bytes") else None
        mem.append([m.get("task", name), m.get("flash_bytes") or m4.get("flash_bytes"), m.get("tflm_model_bytes"),
                    m4.get("tflm_code_bytes") or "not measured", m4.get("tflm_flash_bytes"), ram,
                    m.get("arena_bytes"), m.get("tflm_arena_bytes"),
                    m["arena_bytes"] / m["tflm_arena_bytes"] if m.get("arena_bytes") and m.get("tflm_arena_bytes")
                    else None])
    doc.p("Flash and RAM next to TFLite Micro's, bytes:")
    doc.table(["model", "native C flash, M4 ELF (meas.)", "TFLM model array, .tflite (meas.)",
               "TFLM code, M4 (meas.)", "TFLM image flash, M4 (meas.)", "native C RAM, static + stack (meas.)",
               "native C arena (meas.)", "TFLM arena (meas.)", "C / TFLM arena"], mem)
    doc.p(TFLM_BUILT_NOTE if any(r[3] != "not measured" for r in mem) else TFLM_CODE_NOTE)


def _mlperf_clock(mlperf, core, default):
    for m in mlperf["models"].values():
        clock = m.get("cores", {}).get(core, {}).get("clock_mhz")
        if clock:
            return clock
    return (mlperf.get("context", {}).get("clock_mhz") or {}).get(core, default)


def _ms_or_counts(core):
    if core.get("ms") is not None:
        return format_ms(core["ms"])
    if core.get("instructions"):
        return f"counts only ({core['instructions']:,} instr.)"
    return "-"


def _published(ms):
    """A published latency as it was published (181.9 ms stays 181.9 ms)."""
    return "-" if ms is None else f"{ms:g} ms"


def _ratio(published, ours):
    return published / ours if published and ours else None


def _pareto(doc, recs, models, plots):
    points = []
    for m in models:
        acc = one(recs, model=m, runtime="native-c", metric="accuracy") or \
            one(recs, model=m, runtime="torch", metric="accuracy")
        flash, _ = best_mcu(recs, m, metric="flash_bytes")
        if acc is not None and flash is not None:
            points.append((m, flash, acc))
    if not points:
        return
    doc.h("Accuracy vs flash")
    doc.table(["model", "flash B, M4 -O2 ELF (meas.)", "test accuracy, int8 C (meas.)"], points)
    doc.img(plot_pareto(points, plots / "pareto.png"), "accuracy vs flash")
    doc.p("The accuracy axis spans at least 20 points and ends at 100 %, so a one-point gap looks like one.")


def _memory(doc, recs, models):
    rows = []
    for m in models:
        t = one(recs, model=m, runtime="tflm", metric="arena_bytes")
        c = one(recs, model=m, target="host", runtime="native-c", metric="arena_bytes")
        arr = one(recs, model=m, runtime="tflm", metric="model_array_bytes")
        flash, _ = best_mcu(recs, m, metric="flash_bytes")
        image = one(recs, model=m, target="cortex-m4", runtime="tflm", metric="flash_bytes")
        if t or c or arr:
            rows.append([m, flash, arr, image, c, t, c / t if t and c else None])
    if not rows:
        return
    built = any(r[3] is not None for r in rows)
    doc.h("Memory: native C vs TFLite Micro")
    doc.table(["model", "native C flash B, M4 ELF: code + weights (meas.)", "TFLM model array B, .tflite (meas.)"]
              + (["TFLM image flash B, M4, built here (meas.)"] if built else [])
              + ["native C arena B, planned (meas.)", "TFLM arena B, allocator report (meas.)", "C / TFLM arena"],
              [r[:3] + (r[3:4] if built else []) + r[4:] for r in rows])
    if built:
        doc.p(TFLM_BUILT_NOTE)
    elif not any(m in ZOO_TO_MLPERF for m in models):
        doc.p(TFLM_CODE_NOTE)
    else:
        doc.p("TFLite Micro's own code is not in the TFLM column (see the note in the MLPerf Tiny section).")


def _mcu_rows(recs, models):
    keys = []
    for r in recs:
        if r["target"].startswith("cortex-") and r["metric"] == "flash_bytes" and r["model"] in models:
            keys.append((r["model"], r["target"], r.get("opt"), r["runtime"]))
    rows, plot_rows = [], []
    for model, core, opt, variant in keys:
        q = dict(model=model, target=core, opt=opt, runtime=variant)
        cpm = select(recs, metric="cycles_per_mac", **q)
        match = one(recs, metric="emulation_matches_host", **q)
        clock = (select(recs, metric="flash_bytes", **q) or [{}])[0].get("clock_mhz")
        lat = one(recs, metric="latency_ms", **q)
        rows.append([model, CORE_SHORT.get(core, core), f"{variant.replace('native-c', 'C').replace('-dsp', ' DSP')} {opt}",
                     one(recs, metric="flash_bytes", **q), one(recs, metric="static_ram_bytes", **q),
                     one(recs, metric="stack_bytes", **q), one(recs, metric="instructions", **q),
                     one(recs, metric="cycles", **q), cpm[0]["value"] if cpm else None,
                     cpm[0].get("ratio_to_bound") if cpm else None,
                     f"{format_ms(lat)} @ {clock:g} MHz" if lat is not None and clock else format_ms(lat),
                     None if match is None else bool(match)])
        if cpm and opt == "-O2":
            plot_rows.append((model, core, variant, cpm[0]["value"], cpm[0]["bound_cycles_per_mac"]))
    return rows, plot_rows


MCU_HEADERS = ["model", "core", "build", "flash B (meas.)", "static RAM B (meas.)", "stack B (meas.)",
               "instructions (emulated)", "cycles (est.)", "cycles/MAC (est.)", "x bound (est.)", "latency (est.)",
               "emulated = host"]


def _mcu(doc, recs, models, plots):
    doc.h("Cortex-M builds (cycles and latency are estimates)")
    rows, plot_rows = _mcu_rows(recs, models)
    doc.table(MCU_HEADERS, rows, folded=f"Every build: {len(rows)} rows (sizes, instructions, cycles, cycles/MAC)")
    doc.p("Bound: MACs/2 cycles with SMLAD on M4/M7/M33 (two int8 MACs per cycle); 1 cycle per MAC on M0+ "
          "(single-cycle MULS). \"emulated = host\": the emulated output equals the host build's, bit for bit.")
    doc.img(plot_cycles_per_mac(plot_rows[:40], plots / "cycles_per_mac.png"), "cycles per MAC vs bound")
    prof_rows = []
    for r in select(recs, metric="cycles", target="cortex-m4", opt="-O2"):
        if r["model"] not in models or not r.get("profile"):
            continue
        total = r["value"] or 1
        top = list(r["profile"].items())[:4]
        rest = 100.0 * (total - sum(c for _, c in top)) / total
        prof_rows.append([r["model"]] + [f"{fn} {100.0 * c / total:.0f}%" for fn, c in top] + [""] * (4 - len(top))
                         + [f"{max(rest, 0.0):.0f}%"])
    if prof_rows:
        doc.p("Where the cycles go on the Cortex-M4 (-O2, share of the estimated cycles per function):")
        doc.table(["model", "1st", "2nd", "3rd", "4th", "the rest"], prof_rows)


def _parity(doc, recs):
    doc.h("Agreement between runtimes")
    models = models_of(recs) + models_of(recs, appendix=True)
    checks, cols = defaultdict(dict), []
    for r in recs:
        if r["metric"].startswith("max_abs_diff_vs_") and r["model"] in models:
            col = f"{r['runtime']} vs {r['metric'][len('max_abs_diff_vs_'):]}" + \
                (f" {r.get('precision')}" if r["runtime"] in ("executorch", "tflite-runtime", "tflite-runtime-ref") else "")
            checks[r["model"]][col] = f"{_cell(r['value'])} {r['unit']}"
            cols.append(col) if col not in cols else None
    for r in select(recs, metric="emulation_matches_host"):
        cell = checks[r["model"]].get("Cortex-M emulated = host", [0, 0])
        checks[r["model"]]["Cortex-M emulated = host"] = [cell[0] + int(bool(r["value"])), cell[1] + 1]
    if any("Cortex-M emulated = host" in v for v in checks.values()):
        cols.append("Cortex-M emulated = host")
    for r in select(recs, metric="parity"):
        checks[r["model"]].setdefault("export parity.json", [])
        checks[r["model"]]["export parity.json"].append(f"{r['runtime']} {'passed' if r['value'] else 'FAILED'}")
    if any("export parity.json" in v for v in checks.values()):
        cols.append("export parity.json")

    def show(v):
        if isinstance(v, list) and v and isinstance(v[0], int):
            return f"{v[0]} of {v[1]} builds equal"
        if isinstance(v, list):
            return ", ".join(v)
        return v

    rows = [[m] + [show(checks[m].get(c)) for c in cols] for m in checks]
    doc.p("Largest difference between outputs on the bench input (meas.): int8 outputs in LSB, float outputs "
          "absolute. Native C is judged against TFLite Micro bit for bit; XNNPACK differences are reported, not "
          "judged.")
    doc.table(["model"] + cols, rows)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _flatten(d, prefix="", depth=2):
    """Numeric leaves of nested dicts as dotted names (``methods.ridge.mse``), ``depth`` levels down."""
    out = {}
    for k, v in d.items():
        if _is_number(v):
            out[prefix + str(k)] = v
        elif isinstance(v, dict) and depth > 0 and k not in ("config", "args", "versions"):
            out.update(_flatten(v, f"{prefix}{k}.", depth - 1))
    return out


def _flat_table(data, max_cols=10):
    """Rows of a folded report: one per child dict with numeric fields (descending into e.g. a
    ``results`` dict when the top level holds no such rows)."""
    if not isinstance(data, dict):
        return ["name"], []
    children = {k: v for k, v in data.items() if isinstance(v, dict)}
    nested = [v for v in children.values() if sum(isinstance(x, dict) for x in v.values()) > len(children)]
    if nested:          # e.g. {"args": {...}, "results": {"a": {...}, "b": {...}, ...}}: tabulate the results
        best = max(nested, key=lambda v: sum(isinstance(x, dict) for x in v.values()))
        return _flat_table(best, max_cols)
    rows, cols = [], []
    for key, val in children.items():
        flat = _flatten(val)
        if flat:
            rows.append((key, flat))
            cols += [c for c in flat if c not in cols]
    cols = cols[:max_cols]
    return ["name"] + cols, [[k] + [f.get(c) for c in cols] for k, f in rows]


def _folded(doc, recs, plots):
    titles = {"demo": "Demo (distillation)", "bci": "EEG / LDC", "generators": "Generators",
              "generators_deploy_c": "Generators: the int8 deploy generator as native C", "selfdistill": "Self-distillation"}
    for r in select(recs, metric="report"):
        if r["model"] == "mlperf":
            continue                    # rendered in its own section
        data = r.get("data")
        doc.h(f"{titles.get(r['model'], r['model'])} (from {r.get('source')})")
        if r["model"] == "generators" and isinstance(data, dict):
            doc.img(plot_generators(data, plots / "generators.png"), "generators FD vs steps and cost")
        if r["model"] == "generators_deploy_c" and isinstance(data, dict) and "cores" in data:
            _deploy_generator(doc, data)
            continue
        headers, rows = _flat_table(data)
        doc.table(headers, rows)


def _deploy_generator(doc, data):
    """The int8 deploy generator as native C: quality next to the float model, then one row per core."""
    fd_c, fd_f = data.get("c_int8", {}).get("fd"), data.get("float", {}).get("fd")
    checks = data.get("parity", {}).get("checks", {})
    exact = checks.get("c_vs_tflm", {}).get("max_lsb_diff")
    doc.p(f"FD-LeNet of the int8 C outputs (meas.): {fd_c:.3f}, float model {fd_f:.3f} (lower is better); "
          f"C vs TFLite Micro: max {exact} LSB; arena {data.get('arena_bytes'):,} B (TFLM "
          f"{data.get('tflm_arena_bytes'):,} B); {data.get('params'):,} parameters.")
    rows = [[core, f"{c['flash_bytes']:,}", f"{c['static_ram_bytes']:,}", f"{c['stack_bytes']:,}",
             f"{c['cycles']:,}", f"{format_ms(c['ms'])} @ {c['clock_mhz']:g} MHz",
             "yes" if c.get("output_equals_host_c") else "no"]
            for core, c in data["cores"].items()]
    doc.table(["core", "flash B (meas.)", "static RAM B (meas.)", "stack B (meas.)", "cycles (est.)",
               "latency (est.)", "emulated == host C"], rows)


def _appendix(doc, recs):
    kernels = models_of(recs, appendix=True)
    if not kernels:
        return
    doc.h("Appendix: calibration kernels")
    doc.p("Small kernels that check the cross-build, emulation and cost-model chain, not models to deploy: "
          "`reference-fc256x64` is a hand-written 256x64 int8 fully connected layer (plain loop and SMLAD path, "
          "checked against numpy); `ldc_*` is the LDC (binary hyperdimensional) student's C at the BCI shape.")
    rows, _ = _mcu_rows(recs, kernels)
    doc.table(MCU_HEADERS, rows)
    host = [[r["model"], r["runtime"], r.get("precision"), format_ms(r["value"]), r.get("runs")]
            for r in select(recs, target="host", metric="latency_ms") if is_appendix(r["model"])]
    if host:
        doc.table(["kernel", "runtime", "precision", "host median (meas.)", "runs"], host)


def write_report(bench_json, out_dir="reports", mlperf=None) -> tuple[Path, Path]:
    """Render ``report.md`` and ``report.html`` into ``out_dir``; returns their paths."""
    recs = load_records(bench_json)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = render(recs, out_dir, mlperf)
    md, page = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md, doc.markdown(out_dir))
    atomic_write_text(page, doc.html("edgekd benchmark report"))
    return md, page


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    p.add_argument("bench_json", nargs="?", default="reports/bench.json")
    p.add_argument("--out", default="reports")
    p.add_argument("--mlperf", default=None, metavar="JSON",
                   help="a `python -m benchmarks.mlperf --json` result to render in the MLPerf Tiny section")
    args = p.parse_args(argv)
    try:
        mlperf = json.loads(Path(args.mlperf).read_text()) if args.mlperf else None
        md, page = write_report(args.bench_json, args.out, mlperf)
    except (EdgeKDError, OSError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {md} and {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
