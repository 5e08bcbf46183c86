"""The report of a real quick run (fixtures/bench_quick.json): models first, the records' numbers in the
tables, every number labelled est./meas./pub., latencies in a readable unit, honest accuracy axes."""
import json
import re
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from benchmarks.report import (accuracy_axis_limits, format_ms, load_records, main, mlperf_from_records,  # noqa: E402
                               render, write_report)
from edgekd.errors import EdgeKDError  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
QUICK = FIXTURES / "bench_quick.json"     # `python -m benchmarks.run --quick --train-quick ...`, unedited
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MODEL = "student_alone_seed0"


@pytest.fixture(scope="module")
def records():
    return json.loads(QUICK.read_text())


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    md, page = write_report(QUICK, out)
    return out, md.read_text(), page.read_text()


def _rec(records, **match):
    rows = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    assert rows, match
    return rows[0]


def _section(md, title):
    return md.split(f"## {title}")[1].split("\n## ")[0]


def _table(text):
    """(headers, rows) of the first markdown table in ``text``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    split = [[c.strip() for c in line.strip("|").split(" | ")] for line in lines[start:end]]
    return split[0], split[2:]


def test_models_come_first_and_the_appendix_last(rendered):
    _, md, _ = rendered
    heads = re.findall(r"^## (.+)$", md, re.M)
    assert heads[0] == "Models"
    assert heads.index("Host latency (meas.)") < heads.index("Appendix: calibration kernels")
    assert heads.index("Appendix: calibration kernels") > heads.index("Agreement between runtimes")
    models = _section(md, "Models")
    assert "reference-fc256x64" not in models and "ldc_" not in models        # kernels only in the appendix
    assert "reference-fc256x64" in _section(md, "Appendix: calibration kernels")


def test_models_row_carries_the_records(rendered, records):
    _, md, _ = rendered
    headers, rows = _table(_section(md, "Models"))
    row = dict(zip(headers, next(r for r in rows if r[0] == MODEL)))
    m4 = _rec(records, model=MODEL, target="cortex-m4", runtime="native-c-dsp", metric="latency_ms")
    assert m4["estimate"] is True
    assert row[f"M4 @ {m4['clock_mhz']:g} MHz (est.)"] == format_ms(m4["value"])
    cycles = _rec(records, model=MODEL, target="cortex-m4", runtime="native-c-dsp", metric="cycles")["value"]
    assert m4["value"] == pytest.approx(cycles / (m4["clock_mhz"] * 1e3))
    flash = _rec(records, model=MODEL, target="cortex-m4", runtime="native-c-dsp", metric="flash_bytes")["value"]
    assert row["flash B, M4 (meas.)"] == f"{flash:,}"
    host = _rec(records, model=MODEL, target="host", runtime="native-c", metric="latency_ms")["value"]
    assert row["native C host (meas.)"] == format_ms(host)
    acc = _rec(records, model=MODEL, runtime="native-c", metric="accuracy")["value"]
    assert row["accuracy, int8 C (meas.)"] == f"{acc:,.4g}"
    # every column but the names and MAC counts says how it was obtained
    assert all(re.search(r"\((est|meas)\.\)", h) for h in headers if h not in ("model", "MACs"))


def test_cortex_m_and_host_tables_label_every_number(rendered, records):
    _, md, _ = rendered
    headers, _ = _table(_section(md, "Cortex-M builds (cycles and latency are estimates)"))
    for h in ("cycles (est.)", "latency (est.)", "flash B (meas.)", "stack B (meas.)"):
        assert h in headers
    headers, rows = _table(_section(md, "Host latency (meas.)"))
    assert headers[0] == "model" and all(h.endswith("(meas.)") for h in headers[1:])
    row = dict(zip(headers, next(r for r in rows if r[0] == MODEL)))
    for runtime, precision in (("native-c", "int8"), ("tflm", "int8"), ("executorch", "fp32"), ("litert", "int8")):
        rec = _rec(records, model=MODEL, target="host", runtime=runtime, precision=precision, metric="latency_ms")
        assert rec["threads"] == 1 and row[f"{runtime} {precision} (meas.)"] == format_ms(rec["value"])
        assert re.fullmatch(r"[\d.,]+ (ms|us|ns)", row[f"{runtime} {precision} (meas.)"])
    assert not re.search(r"\b0\.000\d* ?ms", md)          # never 0.000x ms: microseconds instead


def test_format_ms_picks_a_readable_unit():
    assert [format_ms(v) for v in (1500.2, 22.34, 1.0, 0.0403, 0.001, 7.2e-5, None)] == \
        ["1,500 ms", "22.3 ms", "1 ms", "40.3 us", "1 us", "72 ns", "-"]


def test_accuracy_axis_does_not_exaggerate_a_one_point_gap():
    low, high = accuracy_axis_limits([85.3, 86.3])
    assert (low, high) == (80.0, 100.0) and 1.0 / (high - low) <= 0.05    # one point is 5 % of the axis
    assert accuracy_axis_limits([40.0, 97.0]) == (35.0, 100.0)            # wide spreads are shown whole


def test_plots_written_and_embedded(rendered):
    out, md, page = rendered
    names = ("cortex_m_latency.png", "host_latency.png", "pareto.png", "cycles_per_mac.png")
    for name in names:
        assert (out / "plots" / name).read_bytes()[:8] == PNG_MAGIC, name
        assert f"(plots/{name})" in md
    assert page.count("data:image/png;base64,") == len(names)
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")


MLPERF = {"context": {"published_source": "a test source"},
          "models": {"resnet8": {"task": "image classification ResNet-8", "macs": 12_500_000,
                                 "published_ms": {"tflm_m4": 704.2, "xcubeai_m4": 160.0, "plumerai_m4": 170.0,
                                                  "xcubeai_m7": 40.0},
                                 "cores": {"cortex-m4": {"ms": 200.0, "cycles": 24_000_000, "flash_bytes": 100_000,
                                                         "static_ram_bytes": 50_000, "stack_bytes": 400},
                                           "cortex-m7": {"ms": None, "cycles": None, "instructions": 9_000_000}},
                                 "flash_bytes": 100_000, "arena_bytes": 40_000, "tflm_arena_bytes": 60_000,
                                 "tflm_model_bytes": 90_000}}}


def test_mlperf_section_puts_estimates_next_to_published_numbers(tmp_path, records):
    md = render(records, tmp_path, mlperf=MLPERF).markdown(tmp_path)
    text = _section(md, "MLPerf Tiny models next to the published results")
    assert "ours are emulator ESTIMATES, theirs are board MEASUREMENTS" in text and "no flash wait states" in text
    m4_part = text.split("Cortex-M4 at 120 MHz")[1]
    headers, rows = _table(m4_part)
    row = dict(zip(headers, rows[0]))
    assert row["edgekd native C (est.)"] == "200 ms"
    assert row["TFLM reference v0.5 (pub.)"] == "704.2 ms"   # as published, not rounded
    assert row["X-CUBE-AI 9.0 (pub.)"] == "160 ms"
    assert row["X-CUBE-AI / ours"] == "0.8"                             # 160 / 200: slower than X-CUBE-AI
    headers, rows = _table(text.split("Cortex-M7 at 280 MHz")[1])
    m7 = dict(zip(headers, rows[0]))
    assert m7["edgekd native C (est.)"] == "counts only (9,000,000 instr.)" and m7["X-CUBE-AI / ours"] == "-"
    headers, rows = _table(text.split("Flash and RAM next to TFLite Micro's")[1])
    mem = dict(zip(headers, rows[0]))
    assert mem["C / TFLM arena"] == f"{40_000 / 60_000:.4g}" and mem["TFLM code, M4 (meas.)"] == "not measured"
    assert mem["native C RAM, static + stack (meas.)"] == "50,400"
    assert "ships the interpreter only as an x86-64 Python extension" in text


def test_mlperf_section_with_tflm_built_here_compares_it_with_the_published_tflm(tmp_path, records):
    built = json.loads(json.dumps(MLPERF))
    built["models"]["resnet8"]["cores"]["cortex-m4"].update(tflm_ms=352.1, tflm_code_bytes=41_000,
                                                             tflm_flash_bytes=131_000)
    md = render(records, tmp_path, mlperf=built).markdown(tmp_path)
    text = _section(md, "MLPerf Tiny models next to the published results")
    row = dict(zip(*(lambda t: (t[0], t[1][0]))(_table(text.split("Cortex-M4 at 120 MHz")[1]))))
    assert row["TFLM reference kernels, built here (est.)"] == "352 ms"
    assert row["TFLM v0.5 board / our TFLM estimate"] == f"{704.2 / 352.1:.4g}"           # 2: the board is slower
    mem = dict(zip(*(lambda t: (t[0], t[1][0]))(_table(text.split("Flash and RAM next to TFLite Micro's")[1]))))
    assert mem["TFLM code, M4 (meas.)"] == "41,000" and mem["TFLM image flash, M4 (meas.)"] == "131,000"
    assert "built from its sources" in text


def test_mlperf_dict_from_zoo_records_takes_published_numbers_from_benchmarks_mlperf(monkeypatch):
    fake = types.ModuleType("benchmarks.mlperf")
    fake.PUBLISHED_MS = {"dscnn": {"tflm_m4": 1.0, "xcubeai_m4": 2.0, "plumerai_m4": 3.0, "xcubeai_m7": 4.0}}
    fake.TASKS = {"dscnn": "keyword spotting DS-CNN"}
    fake.PUBLISHED_SOURCE = "fake"
    monkeypatch.setitem(sys.modules, "benchmarks.mlperf", fake)
    base = {"model": "dscnn_kws", "opt": "-O2", "unit": "x", "runtime": "native-c-dsp", "clock_mhz": 120.0}
    recs = [{**base, "target": "cortex-m4", "metric": m, "value": v}
            for m, v in (("flash_bytes", 5000), ("cycles", 1_200_000), ("latency_ms", 10.0))]
    recs.append({**base, "target": "model", "runtime": "int8", "metric": "macs", "value": 2_660_000})
    got = mlperf_from_records(recs)["models"]
    assert list(got) == ["dscnn"]
    assert got["dscnn"]["published_ms"] is fake.PUBLISHED_MS["dscnn"] and got["dscnn"]["macs"] == 2_660_000
    assert got["dscnn"]["cores"]["cortex-m4"]["ms"] == 10.0 and got["dscnn"]["cores"]["cortex-m4"]["clock_mhz"] == 120.0
    assert mlperf_from_records([{**base, "model": "teacher", "target": "cortex-m4", "metric": "cycles", "value": 1}]) is None


def test_the_older_fixture_still_renders(tmp_path):
    md, _ = write_report(FIXTURES / "bench.json", tmp_path)
    text = md.read_text()
    for heading in ("## Models", "## Host latency (meas.)", "## Cortex-M builds", "## Appendix: calibration kernels",
                    "## Skipped"):
        assert heading in text


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(EdgeKDError, match="not found"):
        load_records(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"model": "m", "target": "host", "runtime": "torch", "metric": "latency_ms"}]))
    with pytest.raises(EdgeKDError, match=r"record 0 lacks field\(s\) \['unit', 'value'\]"):
        load_records(bad)
    bad.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(EdgeKDError, match="expected a list of records"):
        load_records(bad)
    assert main([str(tmp_path / "missing.json"), "--out", str(tmp_path)]) == 1


def test_deploy_generator_section_reads_its_measurement():
    from benchmarks.report import Doc, _deploy_generator

    data = {"c_int8": {"fd": 2.6139}, "float": {"fd": 2.6007}, "arena_bytes": 1024, "tflm_arena_bytes": 10720,
            "params": 164672, "parity": {"checks": {"c_vs_tflm": {"max_lsb_diff": 0}}},
            "cores": {"cortex-m4": {"flash_bytes": 182904, "static_ram_bytes": 1156, "stack_bytes": 216,
                                    "cycles": 302562, "ms": 302562 / 120e3, "clock_mhz": 120.0,
                                    "output_equals_host_c": True}}}
    doc = Doc()
    _deploy_generator(doc, data)
    (_, text), (_, headers, rows, _) = doc.blocks
    assert "int8 C outputs (meas.): 2.614, float model 2.601" in text and "max 0 LSB" in text
    assert "arena 1,024 B (TFLM 10,720 B)" in text
    assert dict(zip(headers, rows[0])) == {"core": "cortex-m4", "flash B (meas.)": "182,904",
                                           "static RAM B (meas.)": "1,156", "stack B (meas.)": "216",
                                           "cycles (est.)": "302,562", "latency (est.)": "2.52 ms @ 120 MHz",
                                           "emulated == host C": "yes"}
