"""Render ``reports/bench.json`` into ``report.md`` and ``report.html`` with matplotlib plots.

    python -m benchmarks.report reports/bench.json --out reports

Sections: headline per model, host latency per runtime (plot), accuracy vs flash (Pareto plot),
Cortex-M table and cycles/MAC vs the SMLAD bound (plot; cycles are ESTIMATES from a cost model),
arenas, parity, and the folded EEG/LDC, generators (FD vs steps, cost) and self-distillation
reports when present. PNGs go to ``<out>/plots/``; the HTML embeds them (one file to open).
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import sys
from collections import defaultdict
from pathlib import Path

from edgekd.errors import EdgeKDError
from edgekd.io import atomic_path, atomic_write_text

CYCLE_NOTE = ("Cortex-M cycles are ESTIMATES: instructions executed in the unicorn emulator, weighted by a "
              "per-core cost model from the Cortex-M technical reference manuals (no wait states, no bus "
              "contention); the Cortex-M7 by an in-order dual-issue schedule of each basic block (see "
              "benchmarks/mcu/costmodel.py).")


# ---- document model: sections of paragraphs, tables and images, rendered twice ----------------

class Doc:
    def __init__(self):
        self.blocks = []          # ("h", level, text) | ("p", text) | ("table", headers, rows) | ("img", path, alt)

    def h(self, text, level=2):
        self.blocks.append(("h", level, text))

    def p(self, text):
        self.blocks.append(("p", text))

    def table(self, headers, rows):
        if rows:
            self.blocks.append(("table", list(headers), [list(r) for r in rows]))
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
                out.append("| " + " | ".join(b[1]) + " |")
                out.append("|" + "---|" * len(b[1]))
                out += ["| " + " | ".join(_cell(c).replace("|", "\\|") for c in r) + " |" for r in b[2]]
            elif b[0] == "img":
                out.append(f"![{b[2]}]({b[1].relative_to(base).as_posix()})")
            out.append("")
        return "\n".join(out)

    def html(self, title) -> str:
        parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
                 "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
                 "table{border-collapse:collapse;margin:1em 0;font-size:90%}td,th{border:1px solid #bbb;"
                 "padding:3px 8px;text-align:right}th{background:#eee}td:first-child{text-align:left}"
                 "img{max-width:100%}code{background:#f4f4f4}</style></head><body>"]
        for b in self.blocks:
            if b[0] == "h":
                parts.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                parts.append(f"<p>{_inline_code(html.escape(b[1]))}</p>")
            elif b[0] == "table":
                head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
                body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(c))}</td>" for c in r) + "</tr>" for r in b[2])
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
            elif b[0] == "img":
                data = base64.b64encode(b[1].read_bytes()).decode()
                parts.append(f"<p><img alt='{html.escape(b[2])}' src='data:image/png;base64,{data}'></p>")
        parts.append("</body></html>")
        return "\n".join(parts)


def _inline_code(text):
    pieces = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))


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


# ---- record queries ----------------------------------------------------------------------------

def load_records(path) -> list[dict]:
    """The records of a bench.json (a list of dicts with model/target/runtime/metric/value/unit)."""
    path = Path(path)
    if not path.is_file():
        raise EdgeKDError(f"{path}: not found; run `make bench` (python -m benchmarks.run) first")
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


def models_of(recs):
    seen = []
    for r in recs:
        if r["metric"] not in ("report", "skipped", "bench_seconds") and r["model"] not in seen and r["model"] != "*":
            seen.append(r["model"])
    return seen


# ---- plots -------------------------------------------------------------------------------------

def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    _plt().close(fig)
    return path


def plot_latency(rows, path):
    """Grouped bars: host latency (median, 1 thread; log scale) per model and runtime."""
    if not rows:
        return None
    plt = _plt()
    import numpy as np
    models = sorted({r[0] for r in rows})
    runtimes = sorted({r[1] for r in rows})
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(runtimes) * len(models) / 2), 4))
    width = 0.8 / max(1, len(runtimes))
    for j, rt in enumerate(runtimes):
        vals = [next((v for m, r, v in rows if m == model and r == rt), np.nan) for model in models]
        ax.bar(np.arange(len(models)) + j * width, vals, width, label=rt)
    ax.set_xticks(np.arange(len(models)) + width * (len(runtimes) - 1) / 2, models, rotation=10)
    ax.set_yscale("log")
    ax.set_ylabel("latency, median ms (1 thread, log)")
    ax.set_title("Host latency per runtime")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_pareto(points, path):
    """Accuracy vs flash (Cortex-M4 -O2); the Pareto front joined by a line."""
    if not points:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for model, flash, acc in points:
        ax.scatter(flash, acc)
        ax.annotate(model, (flash, acc), fontsize=7, xytext=(4, 4), textcoords="offset points")
    front, best = [], -1.0
    for model, flash, acc in sorted(points, key=lambda p: (p[1], -p[2])):
        if acc > best:
            front.append((flash, acc))
            best = acc
    ax.plot([f for f, _ in front], [a for _, a in front], "k--", lw=0.8, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel("flash bytes (Cortex-M4, -O2, linked ELF)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Accuracy vs flash")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_cycles_per_mac(rows, path):
    """Bars: estimated cycles/MAC per (model, core, variant) with the lower bound as a marker."""
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(rows)), 4))
    labels = [f"{m}\n{c.replace('cortex-', '')} {v.replace('native-c', 'c')}" for m, c, v, _, _ in rows]
    ax.bar(range(len(rows)), [r[3] for r in rows], color="tab:blue", label="estimated cycles/MAC")
    ax.scatter(range(len(rows)), [r[4] for r in rows], color="tab:red", marker="_", s=400, label="lower bound")
    ax.set_xticks(range(len(rows)), labels, fontsize=6, rotation=60, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("cycles per MAC (estimate, log)")
    ax.set_title("Cortex-M cycles per MAC vs bound (-O2)")
    ax.legend(fontsize=7)
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
    for method, pts in series.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
    ax.set_xscale("log")
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("FD (classifier features; lower is better)")
    ax.set_title("Generators: FD vs steps")
    ax.legend(fontsize=7)
    if lat:
        ax2 = axes[0][1]
        names = list(lat)
        ax2.barh(range(len(names)), [lat[n] for n in names])
        ax2.set_yticks(range(len(names)), names, fontsize=7)
        ax2.set_xscale("log")
        ax2.set_xlabel("host latency per image, ms (log)")
        ax2.set_title("Generators: cost")
    return _save(fig, path)


# ---- sections ----------------------------------------------------------------------------------

def _ctx(recs):
    for r in recs:
        if "machine" in r:
            return r
    return {}


def render(recs, out_dir) -> Doc:
    """Build the report document (and its PNGs under ``out_dir/plots``)."""
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    doc = Doc()
    ctx = _ctx(recs)
    doc.h("edgekd benchmark report", 1)
    doc.p(f"Machine: {ctx.get('machine', '?')}. Date: {ctx.get('date', '?')}. Command: `{ctx.get('command', '?')}`.")
    doc.p(f"Cross compiler: {ctx.get('arm_compiler') or 'not installed (Cortex-M parts skipped)'}. "
          f"Host compiler: {ctx.get('host_compiler') or '?'}.")
    versions = ctx.get("versions") or {}
    if versions:
        doc.p("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if v) + ".")
    doc.p(CYCLE_NOTE)
    models = models_of(recs)
    _headline(doc, recs, models)
    _host(doc, recs, models, plots)
    _pareto(doc, recs, models, plots)
    _mcu(doc, recs, plots)
    _arena(doc, recs, models)
    _parity(doc, recs)
    _folded(doc, recs, plots)
    skipped = select(recs, metric="skipped")
    if skipped:
        doc.h("Skipped")
        doc.table(["model", "target", "runtime", "what", "reason"],
                  [[r["model"], r["target"], r["runtime"], r.get("what"), (r.get("reason") or "").splitlines()[0][:160]]
                   for r in skipped])
    secs = one(recs, metric="bench_seconds")
    if secs is not None:
        doc.p(f"Benchmark wall time: {secs:.0f} s.")
    return doc


def _best_mcu(recs, model, core="cortex-m4", opt="-O2", metric="cycles"):
    for variant in ("native-c-dsp", "native-c"):
        v = one(recs, model=model, target=core, runtime=variant, metric=metric, opt=opt)
        if v is not None:
            return v, variant
    return None, None


def _headline(doc, recs, models):
    doc.h("Headline")
    rows = []
    for m in models:
        acc_fp = one(recs, model=m, runtime="torch", metric="accuracy", precision="fp32")
        acc_c = one(recs, model=m, runtime="native-c", metric="accuracy")
        flash, _ = _best_mcu(recs, m, metric="flash_bytes")
        ram, _ = _best_mcu(recs, m, metric="ram_bytes")
        cyc, variant = _best_mcu(recs, m)
        lat_m4, _ = _best_mcu(recs, m, metric="latency_ms")
        c_host = one(recs, model=m, target="host", runtime="native-c", metric="latency_ms")
        tflm = one(recs, model=m, target="host", runtime="tflm", metric="latency_ms")
        c_arena = one(recs, model=m, target="host", runtime="native-c", metric="arena_bytes")
        tflm_arena = one(recs, model=m, target="host", runtime="tflm", metric="arena_bytes")
        rows.append([m, acc_fp, acc_c, flash, ram, cyc, variant, lat_m4, c_host,
                     tflm / c_host if tflm and c_host else None,
                     c_arena / tflm_arena if c_arena and tflm_arena else None])
    doc.table(["model", "acc fp32", "acc int8 C", "flash M4 B", "RAM M4 B", "M4 cycles (est.)", "variant",
               "M4 ms @80MHz (est.)", "host C ms", "TFLM / C time", "C / TFLM arena"], rows)
    doc.p("Targets (read here, not asserted in tests): native C on the host at least 3x faster than the TFLM "
          "interpreter with an arena at most 0.6x TFLM's; Cortex-M4 DSP int8 layers within 2x of the SMLAD bound; "
          "the LDC student under 5,000 cycles per EEG trial on M4.")
    goals = []
    for m in models:
        tflm = one(recs, model=m, target="host", runtime="tflm", metric="latency_ms")
        c_host = one(recs, model=m, target="host", runtime="native-c", metric="latency_ms")
        if tflm and c_host:
            goals.append([m, "host: TFLM time / native C time", ">= 3", tflm / c_host, tflm / c_host >= 3])
        c_arena = one(recs, model=m, target="host", runtime="native-c", metric="arena_bytes")
        t_arena = one(recs, model=m, target="host", runtime="tflm", metric="arena_bytes")
        if c_arena and t_arena:
            goals.append([m, "arena: native C / TFLM", "<= 0.6", c_arena / t_arena, c_arena / t_arena <= 0.6])
        cpm = select(recs, model=m, target="cortex-m4", runtime="native-c-dsp", metric="cycles_per_mac", opt="-O2")
        if cpm:
            ratio = cpm[0].get("ratio_to_bound")
            goals.append([m, "M4 DSP -O2: cycles / SMLAD bound (whole model)", "<= 2", ratio,
                          None if ratio is None else ratio <= 2])
        if "ldc" in m.lower():
            cyc = one(recs, model=m, target="cortex-m4", metric="cycles", opt="-O2")
            if cyc:
                goals.append([m, "LDC: M4 -O2 cycles per trial (est.)", "< 5,000", cyc, cyc < 5000])
    if goals:
        doc.table(["model", "goal", "target", "measured", "met"], goals)


def _host(doc, recs, models, plots):
    doc.h("Host latency")
    rows, plot_rows = [], []
    for r in select(recs, target="host", metric="latency_ms"):
        rows.append([r["model"], r["runtime"], r.get("precision"), r.get("threads"), r["value"], r.get("p90_ms"),
                     r.get("runs"), r.get("version")])
        if r.get("threads") == 1:
            label = f"{r['runtime']} {r.get('precision') or ''}".strip()
            plot_rows.append((r["model"], label, r["value"]))
    doc.table(["model", "runtime", "precision", "threads", "median ms", "p90 ms", "runs", "version"], rows)
    doc.img(plot_latency(plot_rows, plots / "latency.png"), "host latency per runtime")
    mem = select(recs, metric="peak_rss_bytes")
    if mem:
        doc.p("Peak memory (VmHWM of the runner process, interpreter and numpy included):")
        doc.table(["model", "runtime", "precision", "peak RSS MiB"],
                  [[r["model"], r["runtime"], r.get("precision"), r["value"] / 2 ** 20] for r in mem])


def _pareto(doc, recs, models, plots):
    doc.h("Accuracy vs flash")
    points = []
    for m in models:
        acc = one(recs, model=m, runtime="native-c", metric="accuracy") or \
            one(recs, model=m, runtime="torch", metric="accuracy")
        flash, _ = _best_mcu(recs, m, metric="flash_bytes")
        if acc is not None and flash is not None:
            points.append((m, flash, acc))
    doc.table(["model", "flash bytes (M4 -O2)", "accuracy"], points)
    doc.img(plot_pareto(points, plots / "pareto.png"), "accuracy vs flash")


def _mcu(doc, recs, plots):
    doc.h("Cortex-M (emulated; cycles are estimates)")
    keys = []
    for r in recs:
        if r["target"].startswith("cortex-") and r["metric"] == "flash_bytes":
            keys.append((r["model"], r["target"], r.get("opt"), r["runtime"]))
    rows, plot_rows = [], []
    for model, core, opt, variant in keys:
        q = dict(model=model, target=core, opt=opt, runtime=variant)
        cpm = select(recs, metric="cycles_per_mac", **q)
        match = one(recs, metric="emulation_matches_host", **q)
        clock = (select(recs, metric="flash_bytes", **q) or [{}])[0].get("clock_mhz")
        rows.append([model, core, opt, variant, one(recs, metric="flash_bytes", **q), one(recs, metric="ram_bytes", **q),
                     one(recs, metric="instructions", **q), one(recs, metric="cycles", **q),
                     cpm[0]["value"] if cpm else None, cpm[0].get("ratio_to_bound") if cpm else None,
                     one(recs, metric="latency_ms", **q), clock, None if match is None else bool(match)])
        if cpm and opt == "-O2":
            plot_rows.append((model, core, variant, cpm[0]["value"], cpm[0]["bound_cycles_per_mac"]))
    doc.table(["model", "core", "opt", "variant", "flash B", "RAM B", "instructions", "cycles (est.)",
               "cycles/MAC", "x bound", "ms (est.)", "MHz", "emu = host"], rows)
    doc.p("Bound: MACs/2 cycles with SMLAD on M4/M7/M33 (two int8 MACs per cycle); 1 cycle per MAC on M0+ "
          "(single-cycle MULS). RAM = .data + .bss (arena, I/O buffers) + stack measured in emulation.")
    doc.img(plot_cycles_per_mac(plot_rows, plots / "cycles_per_mac.png"), "cycles per MAC vs bound")
    prof_rows = []
    for r in select(recs, metric="cycles", target="cortex-m4", opt="-O2"):
        prof = r.get("profile") or {}
        total = r["value"] or 1
        prof_rows += [[r["model"], r["runtime"], fn, cyc, 100.0 * cyc / total] for fn, cyc in prof.items()]
    if prof_rows:
        doc.p("Where the cycles go (Cortex-M4 -O2, estimated cycles per function, largest first):")
        doc.table(["model", "variant", "function", "cycles (est.)", "% of total"], prof_rows)


def _arena(doc, recs, models):
    doc.h("Arena: TFLite Micro vs native C")
    rows = []
    for m in models:
        t = one(recs, model=m, runtime="tflm", metric="arena_bytes")
        c = one(recs, model=m, target="host", runtime="native-c", metric="arena_bytes")
        arr = one(recs, model=m, runtime="tflm", metric="model_array_bytes")
        flash, _ = _best_mcu(recs, m, metric="flash_bytes")
        if t or c:
            rows.append([m, t, c, c / t if t and c else None, arr, flash])
    doc.table(["model", "TFLM arena B (allocation report)", "native C arena B (planned)", "C / TFLM",
               "TFLM model array B (.tflite)", "native C image flash B (M4 -O2)"], rows)


def _parity(doc, recs):
    doc.h("Parity")
    rows = [[r["model"], r["runtime"], r["metric"].replace("max_abs_diff_vs_", "vs "), r.get("precision"),
             r["value"], r["unit"]] for r in recs if r["metric"].startswith("max_abs_diff_vs_")]
    rows += [[r["model"], f"export {r['runtime']}", "parity.json", (r.get("data") or {}).get("precision"),
              "passed" if r["value"] else "FAILED", ""] for r in select(recs, metric="parity")]
    emu = defaultdict(list)
    for r in select(recs, metric="emulation_matches_host"):
        emu[r["model"]].append(r)
    for model, rs in emu.items():
        bad = [f"{r['target']} {r['runtime']} {r.get('opt')}" for r in rs if not r["value"]]
        rows.append([model, "Cortex-M builds (emulated)", "output equals host build", "int8",
                     f"{len(rs) - len(bad)} of {len(rs)} equal" + (f"; DIFFERENT: {', '.join(bad)}" if bad else ""), ""])
    doc.table(["model", "runtime", "check", "precision", "max diff / result", "unit"], rows)


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
              "selfdistill": "Self-distillation"}
    for r in select(recs, metric="report"):
        data = r.get("data")
        doc.h(f"{titles.get(r['model'], r['model'])} (from {r.get('source')})")
        if r["model"] == "generators" and isinstance(data, dict):
            doc.img(plot_generators(data, plots / "generators.png"), "generators FD vs steps and cost")
        headers, rows = _flat_table(data)
        doc.table(headers, rows)
    ldc = [r for r in recs if r["target"].startswith("cortex-") and r["metric"] == "cycles" and "ldc" in r["model"].lower()]
    if ldc:
        doc.p("LDC on Cortex-M (goal: under 5,000 cycles per EEG trial on M4): " + "; ".join(
            f"{r['model']} {r['target']} {r['runtime']} {r.get('opt')}: {r['value']:,} cycles (est.)" for r in ldc))


def write_report(bench_json, out_dir="reports") -> tuple[Path, Path]:
    """Render ``report.md`` and ``report.html`` into ``out_dir``; returns their paths."""
    recs = load_records(bench_json)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = render(recs, out_dir)
    md, page = out_dir / "report.md", out_dir / "report.html"
    atomic_write_text(md, doc.markdown(out_dir))
    atomic_write_text(page, doc.html("edgekd benchmark report"))
    return md, page


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    p.add_argument("bench_json", nargs="?", default="reports/bench.json")
    p.add_argument("--out", default="reports")
    args = p.parse_args(argv)
    try:
        md, page = write_report(args.bench_json, args.out)
    except EdgeKDError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {md} and {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
