"""benchmarks.mlperf on the smallest MLPerf Tiny model: C == TFLM, the emulated Cortex-M4 build ==
the host build, and the ratios are computed from the published table and the measured values."""
import shutil

import pytest

pytest.importorskip("litert_torch")
pytest.importorskip("tflite_micro")


@pytest.mark.slow
def test_mlperf_dscnn_measured_exact(tmp_path):
    from benchmarks import mlperf

    cores = ("cortex-m4",) if shutil.which("arm-none-eabi-gcc") else ()
    r = mlperf.measure_model("dscnn", work_dir=tmp_path, cores=cores, n_exact=4, host_runs=5)
    assert r["macs"] == 2656768                 # the reference DS-CNN's MAC count (conv, 4 blocks, dense)
    assert r["exact_c_vs_tflm"]
    assert r["arena_bytes"] < r["tflm_arena_bytes"]
    assert r["host_speedup"] == pytest.approx(r["host_tflm_ms"] / r["host_c_ms"])
    if cores:
        m4 = r["cores"]["cortex-m4"]
        assert m4["matches_host"] and m4["estimate"]
        assert m4["ms"] == pytest.approx(m4["cycles"] / 120e3)
        assert m4["speedup_vs_xcubeai"] == pytest.approx(43.2 / m4["ms"])
        table = mlperf.format_table({"models": {"dscnn": r}})
        assert "keyword spotting DS-CNN" in table and "| 43.2 |" in table
