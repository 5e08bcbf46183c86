"""Host runners: the standalone .tflite runner, TFLM arena parsing, latency bookkeeping."""
import sys

import numpy as np
import pytest

from benchmarks.host import runtimes as rt
from benchmarks.host import tflite_runner


def test_quantize_input_uses_scale_zero_point_and_clips():
    detail = {"dtype": np.int8, "quantization": (0.5, -3)}
    x = np.array([0.0, 1.0, -1.26, 1000.0, -1000.0], np.float32)
    np.testing.assert_array_equal(tflite_runner.quantize_input(x, detail), [-3, -1, -6, 127, -128])
    assert tflite_runner.quantize_input(x, {"dtype": np.float32, "quantization": (0.0, 0)}).dtype == np.float32


def test_time_calls_counts_runs():
    calls = []
    res = rt.time_calls(lambda: calls.append(1), warmup=3, runs=7)
    assert len(calls) == 10 and res["runs"] == 7 and res["warmup"] == 3
    assert 0 <= res["median_ms"] <= res["p90_ms"]


def test_runner_usage_error(capsys):
    assert tflite_runner.main([]) == 2
    assert "request.json" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    torch = pytest.importorskip("torch")
    litert_torch = pytest.importorskip("litert_torch")
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, 4)).eval()
    x = torch.rand(1, 16)
    folder = tmp_path_factory.mktemp("tfl")
    q = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    g = prepare_pt2e(torch.export.export(model, (x,)).module(), q)
    for _ in range(16):
        g(torch.rand(1, 16))
    g = convert_pt2e(g, fold_quantize=False)
    litert_torch.convert(g, (x,), quant_config=QuantConfig(pt2e_quantizer=q)).export(str(folder / "int8.tflite"))
    np.save(folder / "x.npy", x.numpy())
    return folder


@pytest.mark.slow
def test_runner_and_tflm_agree_on_int8(tiny_tflite):
    pytest.importorskip("ai_edge_litert")
    spec = {"key": "int8", "path": str(tiny_tflite / "int8.tflite"), "input": str(tiny_tflite / "x.npy")}
    res = rt.run_tflite_runner(sys.executable, [{**spec, "threads": [1, 2]},
                                                {**spec, "threads": [1], "resolver": "reference"}], warmup=2, runs=5)
    rows = res["results"]
    assert [(r["threads"], r["resolver"]) for r in rows] == [(1, "default"), (2, "default"), (1, "reference")]
    assert all(r["runtime"] == "litert" and r["runs"] == 5 and r["output_dtype"] == "int8" for r in rows)
    assert res["peak_rss_bytes"] > 0
    x = np.load(tiny_tflite / "x.npy")
    tflm = rt.tflm_latency(tiny_tflite / "int8.tflite", x, warmup=1, runs=3)
    assert tflm["output"] == rows[2]["output"]                       # TFLM == TFLite reference kernels, exactly
    assert np.max(np.abs(np.subtract(rows[0]["output"], rows[2]["output"]))) <= 1     # XNNPACK within 1 LSB
    assert tflm["arena_bytes"] and tflm["arena_bytes"] > 0


@pytest.mark.slow
def test_tflite_runtime_venv_matches_litert(tiny_tflite):
    py = rt.TFLITE_RUNTIME_VENV / "bin" / "python"
    if not py.exists():
        pytest.skip(f"{rt.TFLITE_RUNTIME_VENV} not created (make bench creates it)")
    spec = {"key": "int8", "path": str(tiny_tflite / "int8.tflite"), "input": str(tiny_tflite / "x.npy"),
            "threads": [1]}
    side = rt.run_tflite_runner(py, [spec], warmup=1, runs=3)["results"][0]
    main = rt.run_tflite_runner(sys.executable, [spec], warmup=1, runs=3)["results"][0]
    assert side["runtime"] == "tflite-runtime" and main["runtime"] == "litert"
    assert side["output"] == main["output"]


@pytest.mark.slow
def test_executorch_runner_times_one_thread_and_returns_torchs_output(tmp_path):
    pytest.importorskip("executorch", reason="executorch not installed")
    torch = pytest.importorskip("torch")
    import firmware_export as fe

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5)).eval()
    x = torch.rand(1, 1, 8, 8)
    art = fe.export(model, "executorch", precision="fp32", example_input=x, out_dir=tmp_path / "et")
    np.save(tmp_path / "x.npy", x.numpy())
    res = rt.executorch_latency(art.file(".pte"), tmp_path / "x.npy", threads=1, warmup=2, runs=5)
    assert res["threads"] == 1 and res["runs"] == 5 and res["median_ms"] > 0 and res["peak_rss_bytes"] > 0
    with torch.no_grad():
        ref = model(x).reshape(-1).numpy()
    np.testing.assert_allclose(res["output"], ref, rtol=1e-5, atol=1e-5)   # XNNPACK's kernels vs torch's


@pytest.mark.slow
def test_executorch_runner_failure_names_the_program(tmp_path):
    from edgekd.errors import EdgeKDError

    pytest.importorskip("executorch", reason="executorch not installed")
    bad = tmp_path / "bad.pte"
    bad.write_bytes(b"not a program")
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    with pytest.raises(EdgeKDError, match="executorch_runner.py"):
        rt.executorch_latency(bad, tmp_path / "x.npy", warmup=1, runs=1)
