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
    assert set(report["dmd2"]) == {"1", "2"} and set(report["teacher_heun"]) == {"2"}
    assert set(report["cud_one_step"]) == {"1"} and set(report["deploy_mlp"]) == {"1"}
    nfe = {m: {k: d["nfe"] for k, d in v.items()} for m, v in report["details"].items()}
    assert nfe["teacher_heun"] == {"2": 3} and nfe["dmd2"] == {"1": 1, "2": 2} and nfe["cud"] == {"1": 1, "2": 2}
    # learning curves: one point per eval_every and one at the end of every stage
    assert report["curves"]["teacher"]["iteration"] == [15, 30]
    assert report["curves"]["dmd2_1"]["iteration"] == [5, 10] and len(report["curves"]["dmd2_1"]["1_step"]) == 2
    cost = report["cost"]
    # counted FLOPs: two Euler steps are two network evaluations (+ the elementwise update, not counted)
    assert cost["flops"]["teacher_euler_2"] == 2 * cost["flops"]["teacher_euler_1"] > 0
    # the folded one-step module drops the time-embedding MLP: slightly fewer FLOPs than one NFE
    assert 0.9 * cost["flops_per_nfe"] <= cost["flops_one_step_generator"] <= cost["flops_per_nfe"]
    assert all(0 < cost["latency_min_ms"][k] <= v for k, v in cost["latency_ms"].items())
    assert any(p.endswith("curves.png") for p in report["grids"])
    for name in ("teacher", "cud", "cud_1step", "dmd2_1step", "deploy_mlp"):
        assert (tmp_path / "runs" / f"{name}.pt").is_file()
    assert "FD-LeNet" in capsys.readouterr().out
    # export from the checkpoints without retraining: onnx takes whatever torch.onnx takes, the
    # GroupNorm/SiLU UNets included, each with its parity record
    pytest.importorskip("onnxruntime")
    rc = main(["generators", "--dataset", "digits8", "--quick", "--export-only", "--target", "onnx", "--out", str(out),
               "--runs", str(tmp_path / "runs")])
    assert rc == 0
    exported = json.loads(out.read_text())["export"]
    assert exported["deploy_mlp/onnx"]["ok"] and exported["deploy_mlp/onnx"]["parity_passed"]
    # the export is scored on the same evaluation noise as the float model: fp32 ONNX gives the same FD
    assert exported["deploy_mlp/onnx"]["fd"] == pytest.approx(report["deploy_mlp"]["1"], rel=1e-3, abs=1e-4)
    for unet in ("dmd2_1/onnx", "cud_1step/onnx"):
        assert exported[unet]["ok"] and exported[unet]["parity_passed"]
        assert exported[unet]["checks"]["onnxruntime_vs_torch"]["rel_err"] < 1e-4


def test_presets_and_validation():
    assert preset("digits8").n_samples >= 2000 and preset("digits8").deploy is not None
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


def test_reuse_loads_only_a_checkpoint_trained_with_the_same_configs(tmp_path):
    import torch

    from edgekd.checkpoint import save_checkpoint
    from edgekd.generative.run import model_config, reusable
    from edgekd.models.unet import UNet

    cfg = preset("digits8", quick=True)
    mcfg = model_config(cfg, (1, 8, 8), 10)
    torch.manual_seed(1)
    trained = UNet((1, 8, 8), cfg.channels)
    save_checkpoint(tmp_path / "teacher.pt", trained.state_dict(), model_config=mcfg, train_config=cfg.teacher)
    torch.manual_seed(2)
    loaded = reusable(tmp_path / "teacher.pt", UNet((1, 8, 8), cfg.channels), mcfg, cfg.teacher)
    assert loaded is not None
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), trained.state_dict().values()))
    other_schedule = cfg.teacher.replace(steps=cfg.teacher.steps + 1)
    assert reusable(tmp_path / "teacher.pt", UNet((1, 8, 8), cfg.channels), mcfg, other_schedule) is None
    wider = model_config(cfg.replace(channels=(16, 32)), (1, 8, 8), 10)
    assert reusable(tmp_path / "teacher.pt", UNet((1, 8, 8), (16, 32)), wider, cfg.teacher) is None
    assert reusable(tmp_path / "absent.pt", UNet((1, 8, 8), cfg.channels), mcfg, cfg.teacher) is None


def test_set_overrides_nested_config_fields():
    from edgekd.commands.distill import apply_overrides
    from edgekd.config import Config

    cfg = Config.from_dict(apply_overrides(preset("digits8").to_dict(),
                                           ["dmd2_1.iterations=2000", "deploy.init.pairs=100"]))
    assert cfg.dmd2_1.iterations == 2000 and cfg.deploy.init.pairs == 100
    assert cfg.dmd2_4.iterations == preset("digits8").dmd2_4.iterations
