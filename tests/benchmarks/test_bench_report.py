"""The report renders from a small fixture bench.json with the expected sections and plots."""
import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from benchmarks.report import load_records, main, write_report  # noqa: E402
from edgekd.errors import EdgeKDError  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "bench.json"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    md, page = write_report(FIXTURE, out)
    return out, md.read_text(), page.read_text()


def test_markdown_has_every_section(rendered):
    _, md, _ = rendered
    for heading in ("# edgekd benchmark report", "## Headline", "## Host latency", "## Accuracy vs flash",
                    "## Cortex-M (emulated; cycles are estimates)", "## Arena: TFLite Micro vs native C",
                    "## Parity", "## EEG / LDC (from reports/bci.json)", "## Generators (from reports/generators.json)",
                    "## Skipped"):
        assert heading in md, heading
    assert "ESTIMATES" in md and "arm-none-eabi-gcc" in md and "python -m benchmarks.run --quick" in md


def test_tables_carry_the_fixture_numbers(rendered):
    _, md, _ = rendered
    recs = json.loads(FIXTURE.read_text())
    m4 = next(r for r in recs if r["model"] == "student_alone_seed0" and r["target"] == "cortex-m4"
              and r["metric"] == "cycles" and r["runtime"] == "native-c")
    assert f"{m4['value']:,}" in md                                  # the M4 cycles of the student
    headline = md.split("## Headline")[1].split("##")[0]
    row = next(line for line in headline.splitlines() if line.startswith("| student_alone_seed0"))
    tflm = next(r["value"] for r in recs if r["model"] == "student_alone_seed0" and r["runtime"] == "tflm"
                and r["metric"] == "latency_ms")
    c = next(r["value"] for r in recs if r["model"] == "student_alone_seed0" and r["runtime"] == "native-c"
             and r["metric"] == "latency_ms")
    assert f"{tflm / c:,.4g}" in row                                 # TFLM / C speed ratio computed, not copied
    assert "| student_alone_seed0 | arena: native C / TFLM | <= 0.6 | 0.3792 | yes |" in md    # 1808 / 4768
    # the LDC record is the measured one (make bench, 2026-11-23): 7,371 cycles, so the < 5,000 goal is not met
    assert "| ldc_d64_f48_c2 | LDC: M4 -O2 cycles per trial (est.) | < 5,000 | 7,371 | no |" in md
    assert "| ldc_scheduled_curriculum | 0.798 |" in md               # folded EEG table
    assert "7,371 cycles (est.)" in md                               # LDC on M4 line
    assert "export c | parity.json | int8 | passed" in md
    profile = md.split("Where the cycles go")[1].split("##")[0]
    assert "| student_alone_seed0 | native-c | ekd_dwconv2d_s8 |" in profile and "| 70 |" in profile


def test_the_ldc_goal_is_judged_from_the_measured_cycles(tmp_path):
    """The same records with the LDC under the 5,000-cycle goal: the report must now say it is met."""
    recs = json.loads(FIXTURE.read_text())
    for r in recs:
        if r["model"] == "ldc_d64_f48_c2" and r["metric"] == "cycles":
            r["value"] = 4999
    faster = tmp_path / "bench.json"
    faster.write_text(json.dumps(recs))
    md, _ = write_report(faster, tmp_path / "out")
    text = md.read_text()
    assert "| ldc_d64_f48_c2 | LDC: M4 -O2 cycles per trial (est.) | < 5,000 | 4,999 | yes |" in text
    assert "7,371" not in text


def test_plots_written_and_embedded(rendered):
    out, md, page = rendered
    for name in ("latency.png", "pareto.png", "cycles_per_mac.png", "generators.png"):
        png = out / "plots" / name
        assert png.read_bytes()[:8] == PNG_MAGIC, name
        assert f"(plots/{name})" in md
    assert page.count("data:image/png;base64,") == 4
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")


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
