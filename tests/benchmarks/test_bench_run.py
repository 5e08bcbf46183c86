"""Pieces of benchmarks.run: records of the MCU stage, folding other reports, clear errors."""
import json

import numpy as np
import pytest

from benchmarks import run
from benchmarks.mcu.toolchain import find_compiler
from edgekd.errors import EdgeKDError

needs_arm_gcc = pytest.mark.skipif(find_compiler() is None,
                                   reason="arm-none-eabi-gcc not installed (make toolchain / apt gcc-arm-none-eabi)")
CTX = {"machine": "test", "date": "today", "command": "pytest", "versions": {}, "arm_compiler": find_compiler(),
       "host_compiler": "cc"}


def _by(recs, **match):
    return [r for r in recs.rows if all(r.get(k) == v for k, v in match.items())]


@needs_arm_gcc
def test_reference_kernel_records(tmp_path):
    recs = run.Records(CTX)
    run.reference_kernel_bench(recs, tmp_path, cores=("cortex-m4",), opts=("-O2",))
    assert not _by(recs, metric="skipped")
    for variant in ("native-c", "native-c-dsp"):
        assert _by(recs, runtime=variant, metric="emulation_matches_host")[0]["value"] == 1
        cpm = _by(recs, runtime=variant, metric="cycles_per_mac")[0]
        assert cpm["macs"] == 256 * 64 and cpm["bound_cycles_per_mac"] == 0.5
        assert cpm["ratio_to_bound"] > 1 and cpm["estimate"] is True
        cycles = _by(recs, runtime=variant, metric="cycles")[0]["value"]
        assert _by(recs, runtime=variant, metric="latency_ms")[0]["value"] == pytest.approx(cycles / 80e3)
        ram = _by(recs, runtime=variant, metric="ram_bytes")[0]["value"]
        static = _by(recs, runtime=variant, metric="static_ram_bytes")[0]["value"]
        assert ram > static >= 256 + 64
    plain = _by(recs, runtime="native-c", metric="instructions")[0]["value"]
    dsp = _by(recs, runtime="native-c-dsp", metric="instructions")[0]["value"]
    assert dsp < plain
    assert all(r["unit"] is not None and r["machine"] == "test" for r in recs.rows)


@needs_arm_gcc
def test_ldc_records(tmp_path):
    pytest.importorskip("firmware_export.targets.ldc_c")
    recs = run.Records(CTX)
    run.ldc_bench(recs, tmp_path, tmp_path, cores=("cortex-m0plus",), opts=("-Os",), host_runs=5)
    assert not _by(recs, metric="skipped"), _by(recs, metric="skipped")
    assert _by(recs, target="cortex-m0plus", metric="emulation_matches_host")[0]["value"] == 1
    assert _by(recs, target="cortex-m0plus", metric="cycles")[0]["value"] > 0
    assert _by(recs, target="host", metric="max_abs_diff_vs_python")[0]["value"] == 0


def test_fold_reports(tmp_path):
    demo = {"dataset": "mnist5k", "student_kd": {"name": "student_kd", "accuracy": 0.9, "accuracy_per_seed": {"0": 0.9},
                                                 "params": 850, "bytes_int8": 1000}}
    (tmp_path / "demo.json").write_text(json.dumps(demo))
    (tmp_path / "bci.json").write_text("{broken")
    export = tmp_path / "work" / "student_kd" / "c"
    export.mkdir(parents=True)
    (export / "parity.json").write_text(json.dumps({"passed": True, "precision": "int8"}))
    recs = run.Records(CTX)
    run.fold_reports(recs, tmp_path, tmp_path / "work")
    assert _by(recs, model="demo", metric="report")[0]["data"] == demo
    acc = _by(recs, model="student_kd", metric="accuracy")[0]
    assert acc["value"] == 0.9 and acc["params"] == 850
    assert "not valid JSON" in _by(recs, metric="skipped")[0]["reason"]
    assert _by(recs, model="student_kd", runtime="c", metric="parity")[0]["value"] == 1


def test_missing_checkpoints_say_make_demo(tmp_path, capsys):
    with pytest.raises(EdgeKDError, match="make demo"):
        run.load_demo_models(tmp_path)
    assert run.main(["--runs-dir", str(tmp_path), "--out", str(tmp_path / "b.json"), "--no-tflite-runtime",
                     "--no-zoo", "--work-dir", str(tmp_path / "w")]) == 1
    assert "make demo" in capsys.readouterr().err
    assert not (tmp_path / "b.json").exists()


def test_records_convert_numpy_values():
    recs = run.Records(CTX)
    row = recs.add("m", "host", "torch", "latency_ms", np.float64(1.5), "ms")
    assert type(row["value"]) is float and json.dumps(row)
