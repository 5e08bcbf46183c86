"""``edgekd generators --quick`` end to end: JSON with FD per method and step count, grids, checkpoints."""
import json

import pytest

from edgekd.cli import main
from edgekd.errors import ConfigError
from edgekd.generative.run import GeneratorsConfig, preset


@pytest.mark.slow
def test_generators_quick_end_to_end(tmp_path, capsys):
    out = tmp_path / "reports" / "generators.json"
    rc = main(["generators", "--dataset", "digits8", "--quick", "--out", str(out), "--runs", str(tmp_path / "runs")])
    assert rc == 0
    report = json.loads(out.read_text())
    assert set(report["teacher_euler"]) == {"1", "2"} and set(report["cud"]) == {"1", "2"}
    assert set(report["dmd2"]) == {"1", "2"} and set(report["teacher_heun"]) == {"1"}
    for method in ("teacher_euler", "teacher_heun", "cud", "dmd2"):
        assert all(isinstance(v, float) and v >= 0 for v in report[method].values())
    cost = report["cost"]
    assert cost["flops"]["teacher_euler_2"] == 2 * cost["flops"]["teacher_euler_1"] > 0
    # the folded one-step module drops the time-embedding MLP: slightly fewer FLOPs than one NFE
    assert 0.9 * cost["flops_per_nfe"] <= cost["flops_one_step_generator"] <= cost["flops_per_nfe"]
    assert all(0 < cost["latency_min_ms"][k] <= v for k, v in cost["latency_ms"].items())
    assert report["grids"] and all(p.endswith(".png") for p in report["grids"])
    assert (tmp_path / "runs" / "teacher.pt").is_file() and (tmp_path / "runs" / "dmd2_1step.pt").is_file()
    assert "FD-LeNet" in capsys.readouterr().out
    # export from the checkpoints without retraining: the onnx target takes whatever torch.onnx
    # takes, the GroupNorm/SiLU UNet included, with its parity record
    pytest.importorskip("onnxruntime")
    rc = main(["generators", "--dataset", "digits8", "--export-only", "--target", "onnx", "--out", str(out),
               "--runs", str(tmp_path / "runs")])
    assert rc == 0
    exported = json.loads(out.read_text())["export"]
    assert exported["dmd2_1/onnx"]["ok"] and exported["dmd2_1/onnx"]["parity_passed"]
    assert exported["dmd2_1/onnx"]["checks"]["onnxruntime_vs_torch"]["rel_err"] < 1e-4
    assert exported["cud/onnx"]["ok"] and exported["cud/onnx"]["parity_passed"]


def test_presets_and_validation():
    assert preset("digits8").n_samples >= 2000
    assert preset("mnist").n_samples >= 2000
    assert GeneratorsConfig.from_dict(preset("mnist", quick=True).to_dict()).dataset == "mnist"
    with pytest.raises(ConfigError, match="dataset"):
        preset("cifar10")
    with pytest.raises(ConfigError, match="steps"):
        GeneratorsConfig(euler_steps=(0,))


def test_bad_dataset_is_a_one_line_error(capsys):
    assert main(["generators", "--dataset", "cifar10", "--quick", "--out", "/nonexistent/x.json"]) == 2
    err = capsys.readouterr().err
    assert "cifar10" in err and "Traceback" not in err
