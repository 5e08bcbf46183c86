"""`edgekd bench` on the export of a tiny model defined in a user's own file: the table, bench.json and the
report carry the emulator's cycles, ms = cycles / the stated clock, estimates labelled as such."""
import json
import re
import textwrap

import numpy as np
import pytest

from benchmarks.bench import (DEFAULT_CLOCK_MHZ, BenchConfig, parse_clocks, parse_cores, parse_runtimes,
                              table_rows)
from benchmarks.mcu.toolchain import find_compiler
from benchmarks.report import format_ms
from edgekd.cli import main as cli_main
from edgekd.errors import ConfigError

needs_arm_gcc = pytest.mark.skipif(find_compiler() is None,
                                   reason="arm-none-eabi-gcc not installed (make toolchain / apt gcc-arm-none-eabi)")

USER_FILE = textwrap.dedent('''
    import torch
    from torch import nn


    def make_model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(4 * 4 * 4, 3)).eval()
''')


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The user's net.py:make_model, exported with `edgekd export` to c (int8) and onnx (fp32)."""
    pytest.importorskip("torch")
    root = tmp_path_factory.mktemp("user")
    (root / "net.py").write_text(USER_FILE)
    np.save(root / "cal.npy", np.random.default_rng(1).random((64, 1, 8, 8), dtype=np.float32))
    for target in ("c", "onnx"):
        assert cli_main(["export", f"{root / 'net.py'}:make_model", "--input-shape", "1,1,8,8", "--target", target,
                         "--calibration", str(root / "cal.npy"), "--parity", "8", "--name", "net",
                         "--out", str(root / "exports")]) == 0
    return root


def _bench(root, out, capsys, *extra):
    assert cli_main(["bench", str(root / "exports"), "--out", str(out), "--runtimes", "native-c,tflm,onnxruntime,torch",
                     *extra]) == 0
    printed = capsys.readouterr().out
    records = json.loads((out / "bench.json").read_text())
    return printed, records


def _rec(records, **match):
    rows = [r for r in records if all(r.get(k) == v for k, v in match.items())]
    assert rows, match
    return rows[0]


@pytest.mark.slow
@needs_arm_gcc
def test_bench_table_json_and_html_carry_the_emulators_cycles(exported, tmp_path, capsys):
    from benchmarks.mcu.costmodel import cost_model
    from benchmarks.mcu.emulate import Emulator
    from benchmarks.mcu.toolchain import build_elf

    root = exported
    out = tmp_path / "bench"
    printed, records = _bench(root, out, capsys, "--cores", "m0plus,m4,m7", "--clock", "m4=80")
    lines = {tuple(line.split()[:3]): line for line in printed.splitlines() if line.startswith("net ")}
    m4 = _rec(records, model="net", target="cortex-m4", metric="cycles")
    assert m4["runtime"] == "native-c-dsp" and m4["estimate"] is True and m4["clock_mhz"] == 80.0
    # the cycles are the emulator's: rebuild the same ELF and run it here on the same int8 input
    c_dir = root / "exports" / "c"
    x = np.load(out / "work" / "host" / "net" / "input.npy")
    scale, zero = json.loads((c_dir / "export.json").read_text())["input_quant"]
    x_q = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)
    build = build_elf(c_dir, "cortex-m4", "-O2", name="net", out_dir=tmp_path / "elf")
    trace = Emulator.from_elf(build.elf, "cortex-m4").call("net_invoke", x_q.tobytes(), bytes(3), outputs=[(1, 3)])
    assert trace.cycles(cost_model("cortex-m4")) == m4["value"]
    assert _rec(records, model="net", target="cortex-m4", metric="flash_bytes")["value"] == build.flash_bytes
    # the printed row: those cycles, ms = cycles / 80 MHz (the --clock given), labelled an estimate
    row = lines[("net", "cortex-m4", "native-c")]
    assert f"{m4['value']:,}" in row and format_ms(m4["value"] / 80e3) in row and "80 MHz" in row
    assert row.rstrip().endswith("estimate")
    m0 = _rec(records, model="net", target="cortex-m0plus", metric="cycles")["value"]
    assert format_ms(m0 / (DEFAULT_CLOCK_MHZ["cortex-m0plus"] * 1e3)) in lines[("net", "cortex-m0plus", "native-c")]
    assert "48 MHz" in lines[("net", "cortex-m0plus", "native-c")]
    m7 = _rec(records, model="net", target="cortex-m7", metric="cycles")["value"]     # the dual-issue model
    assert format_ms(m7 / 280e3) in lines[("net", "cortex-m7", "native-c")] and m7 < m4["value"]
    assert _rec(records, model="net", target="cortex-m4", metric="emulation_matches_host")["value"] == 1
    # host rows are measured, one thread; native C equals TFLM (an independent runtime) bit for bit
    for runtime in ("native-c", "tflm", "onnxruntime"):
        lat = _rec(records, model="net", target="host", runtime=runtime, metric="latency_ms")
        assert lat["threads"] == 1
        host_row = lines[("net", "host", runtime)]
        assert format_ms(lat["value"]) in host_row and "measured" in host_row
    assert _rec(records, model="net", runtime="native-c", metric="max_abs_diff_vs_tflm")["value"] == 0
    assert "no torch model" in _rec(records, model="net", runtime="torch", metric="skipped")["reason"]
    assert "ESTIMATES" in printed and "MEASURED" in printed
    # the HTML report: the same numbers, labelled est. and meas., M4 at the stated clock
    page = (out / "report.html").read_text()
    assert "M4 @ 80 MHz (est.)" in page and "M0+ @ 48 MHz (est.)" in page and "native C host (meas.)" in page
    assert f"<td>{format_ms(m4['value'] / 80e3)}</td>" in page and f"<td>{m4['value']:,}</td>" in page
    assert page.count("data:image/png;base64,") >= 3


@pytest.mark.slow
def test_bench_without_cross_compiler_skips_cortex_m_with_a_reason(exported, tmp_path, capsys, monkeypatch):
    import benchmarks.mcu.toolchain as toolchain

    monkeypatch.setattr(toolchain, "find_compiler", lambda name="arm-none-eabi-gcc": None)
    root = exported
    printed, records = _bench(root, tmp_path / "b", capsys, "--cores", "m4")
    skip = _rec(records, model="net", target="cortex-m", metric="skipped")
    assert "arm-none-eabi-gcc not found" in skip["reason"]
    assert not [r for r in records if r["target"].startswith("cortex-m4")]
    assert "skipped: net cortex-m native-c mcu: arm-none-eabi-gcc not found" in printed
    assert [line for line in printed.splitlines() if line.startswith("net ") and " host " in line]   # host still measured


@pytest.mark.slow
def test_bench_exports_a_model_file_first(exported, tmp_path, capsys):
    root = exported
    out = tmp_path / "b"
    assert cli_main(["bench", f"{root / 'net.py'}:make_model", "--input-shape", "1,1,8,8", "--calibration",
                     str(root / "cal.npy"), "--cores", "none", "--runtimes", "native-c,tflm,onnxruntime,torch",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    records = json.loads((out / "bench.json").read_text())
    assert {p.name for p in (out / "work" / "exports" / "make_model").iterdir()} == {"c", "onnx"}
    info = _rec(records, model="make_model", metric="input_shape")
    assert info["value"] == [1, 1, 8, 8] and info["runtime"] == "factory" and "64 inputs from" in info["input"]   # cal.npy
    for runtime in ("native-c", "tflm", "onnxruntime", "torch"):
        assert _rec(records, model="make_model", target="host", runtime=runtime, metric="latency_ms")["threads"] == 1
    assert _rec(records, model="make_model", runtime="native-c", metric="max_abs_diff_vs_tflm")["value"] == 0
    assert not [r for r in records if r["target"] in DEFAULT_CLOCK_MHZ]             # --cores none
    assert [line for line in printed.splitlines() if line.startswith("make_model") and " torch " in line]


def test_a_bad_model_fails_in_one_line_before_measuring(tmp_path, capsys):
    assert cli_main(["bench", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
    (tmp_path / "empty").mkdir()
    assert cli_main(["bench", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "not an export folder" in capsys.readouterr().err
    assert cli_main(["bench", "--out", str(tmp_path / "o")]) == 2
    assert "nothing to measure" in capsys.readouterr().err


def test_core_clock_and_runtime_options():
    assert parse_cores("m0plus,M4,cortex-m7,m4") == ("cortex-m0plus", "cortex-m4", "cortex-m7")
    assert parse_cores("none") == ()
    assert parse_clocks("m4=80, m33=110.5") == {"cortex-m4": 80.0, "cortex-m33": 110.5}
    assert parse_runtimes("native-c,tflm") == ("native-c", "tflm")
    for bad, parse, what in (("m5", parse_cores, "--cores 'm5'"), ("m4=fast", parse_clocks, "--clock 'm4=fast'"),
                             ("m4", parse_clocks, "CORE=MHZ"), ("m4=0", parse_clocks, "m4=0"),
                             ("tvm", parse_runtimes, "--runtimes 'tvm'")):
        with pytest.raises(ConfigError, match=re.escape(what)):
            parse(bad)
    assert BenchConfig().clock("cortex-m4") == 120.0 and BenchConfig().clock("cortex-m7") == 280.0
    assert BenchConfig(clocks_mhz={"cortex-m4": 80.0}).clock("cortex-m33") == 160.0
    with pytest.raises(ConfigError, match="core 'cortex-m3'"):
        BenchConfig(cores=("cortex-m3",))


def test_table_rows_prefer_the_dsp_build_and_divide_by_the_clock():
    base = {"model": "m", "opt": "-O2", "unit": "x"}
    records = [{**base, "target": "cortex-m4", "runtime": v, "metric": k, "value": val}
               for v, k, val in (("native-c", "flash_bytes", 900), ("native-c-dsp", "flash_bytes", 1000),
                                 ("native-c-dsp", "cycles", 240_000), ("native-c-dsp", "latency_ms", 2.0),
                                 ("native-c", "cycles", 999_999))]
    records.append({**base, "target": "cortex-m7", "runtime": "native-c-dsp", "metric": "flash_bytes", "value": 990})
    records.append({**base, "target": "cortex-m7", "runtime": "native-c-dsp", "metric": "instructions", "value": 5})
    records.append({**base, "target": "host", "runtime": "native-c", "metric": "arena_bytes", "value": 512})
    records.append({**base, "target": "host", "runtime": "native-c", "metric": "latency_ms", "value": 0.05,
                    "threads": 1, "runs": 200, "precision": "int8"})
    rows = table_rows(records, ["m"], BenchConfig(cores=("cortex-m4", "cortex-m7")))
    assert rows[0][:5] == ["m", "cortex-m4", "native-c -O2 DSP", "int8", 1000]
    assert rows[0][6] == 512 and rows[0][8] == 240_000 and rows[0][10] == "120 MHz" and rows[0][11] == "estimate"
    # a core without a cycle model: no latency is made up
    assert rows[1][1] == "cortex-m7" and rows[1][8] is None and rows[1][9] is None and "counts only" in rows[1][11]
    assert rows[2][1:4] == ["host", "native-c", "int8"] and rows[2][9] == 0.05 and "measured" in rows[2][11]
