"""Resumable runs: a run killed with SIGKILL mid-epoch and resumed ends bit-identical to an uninterrupted one."""
import signal
import subprocess
import sys
import time

import pytest
import torch

from edgekd.checkpoint import load_checkpoint
from edgekd.cli import main
from edgekd.errors import CheckpointError

from ._run import ROOT, env

# The child registers a student with dropout (so the saved RNG state matters) and, when asked,
# slows each optimizer step so the parent can kill it between two checkpoints.
CHILD = r"""
import sys, time, torch
from torch import nn
from edgekd.models import register_model
from edgekd.cli import main

@register_model("dropout_mlp")
def dropout_mlp(input_shape, num_classes, hidden=24):
    import math
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(),
                         nn.Dropout(0.3), nn.Linear(hidden, num_classes))

torch.set_num_threads(1)
if sys.argv[1] == "slow":
    step = torch.optim.Adam.step
    def slow_step(self, *a, **k):
        time.sleep(0.04)
        return step(self, *a, **k)
    torch.optim.Adam.step = slow_step
sys.exit(main(sys.argv[2:]))
"""


def _register_dropout_mlp():
    from edgekd.models.registry import _BUILDERS

    if "dropout_mlp" not in _BUILDERS:
        exec(CHILD.split("torch.set_num_threads")[0], {})


def _child(mode, *args):
    return [sys.executable, "-c", CHILD, mode, *map(str, args)]


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_identical(tmp_path):
    teacher = tmp_path / "teacher.pt"
    assert main(["distill", "--dataset", "digits8", "--model", "student_mlp", "--set", "epochs=1",
                 "--set", "lr=0.01", "--out", str(teacher)]) == 0
    args = ["distill", "--dataset", "digits8", "--model", "dropout_mlp", "--teacher", teacher, "--seed", "1",
            "--set", "epochs=2", "--set", 'alpha={"kind": "cosine", "start": 0.9, "end": 0.2}',
            "--set", 'curriculum={"by": "loss", "pacing": "root", "start": 0.4, "saturate": 0.9}',
            "--deterministic", "--checkpoint-every", "4"]
    out = tmp_path / "run" / "student.pt"
    proc = subprocess.Popen(_child("slow", *args, "--out", out), env=env(), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # the uninterrupted reference runs here while the child starts up
    _register_dropout_mlp()
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        assert main([*map(str, args), "--out", str(tmp_path / "ref.pt")]) == 0
    finally:
        torch.use_deterministic_algorithms(deterministic)
    deadline = time.monotonic() + 90
    while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed = load_checkpoint(out)  # whatever was on disk at the kill is a complete checkpoint
    assert killed["position"] is not None and killed["epoch"] == -1  # killed inside the first epoch
    assert 0 < killed["position"]["batch"]

    resumed = subprocess.run(_child("fast", *args, "--out", out, "--resume"), env=env(), cwd=ROOT,
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_checkpoint(tmp_path / "ref.pt"), load_checkpoint(out)
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert [e["loss"] for e in a["history"]] == [e["loss"] for e in b["history"]]
    assert a["rng"]["torch"].equal(b["rng"]["torch"])  # dropout RNG continued where it stopped
    assert not list(out.parent.glob(".*.tmp"))


def test_resume_refuses_a_checkpoint_from_another_config(tmp_path, capsys):
    out = tmp_path / "s.pt"
    base = ["distill", "--dataset", "digits8", "--model", "student_mlp", "--set", "epochs=1", "--out", str(out)]
    assert main(base) == 0
    before = out.read_bytes()
    capsys.readouterr()
    assert main([*base, "--set", "lr=0.5", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot resume" in err and "lr" in err and "Traceback" not in err
    assert out.read_bytes() == before  # the old checkpoint is kept as it was
    with pytest.raises(CheckpointError, match="different model config"):
        main(["--verbose", *base, "--model-options", '{"hidden": 7}', "--resume"])


class _Killed(Exception):
    pass


def _kd_setup(digits8):
    from edgekd.distill import AlphaSchedule, Curriculum, KDConfig
    from edgekd.models import ModelConfig, build_model

    torch.manual_seed(0)
    teacher = build_model(ModelConfig("student_mlp", digits8.input_shape, digits8.num_classes, {"hidden": 24}))
    config = KDConfig(epochs=3, batch_size=32, lr=5e-3, seed=4, alpha=AlphaSchedule("linear", 0.9, 0.2),
                      curriculum=Curriculum("confidence", "step", start=0.5, saturate=0.7),
                      feature_pairs=[("fc1", "fc1")], feature_weight=0.3)
    cfg = ModelConfig("student_mlp", digits8.input_shape, digits8.num_classes, {"hidden": 12})

    def student():
        torch.manual_seed(1)
        return build_model(cfg)

    return teacher, config, cfg, student


# epochs end after steps 40, 80, 120 (1,257 samples at batch 32; the curriculum pools of 629, 838 and
# 1,048 samples are repeated to a full epoch, so a curriculum does not change the step count)
@pytest.mark.parametrize("die_after", [7, 30, 62, 73])
def test_crash_mid_epoch_then_resume_is_identical_in_process(digits8, tmp_path, monkeypatch, die_after):
    """The fast version of the SIGKILL test: the optimizer dies after N steps; the run resumes from disk."""
    from edgekd.distill import distill

    teacher, config, cfg, student = _kd_setup(digits8)
    ref = student()
    ref_hist = distill(teacher, ref, digits8, config, model_config=cfg)

    path = tmp_path / "run.pt"
    real_step, calls = torch.optim.Adam.step, {"n": 0}

    def dying_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > die_after:
            raise _Killed
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", dying_step)
    with pytest.raises(_Killed):
        distill(teacher, student(), digits8, config, checkpoint=path, model_config=cfg, checkpoint_every=5)
    monkeypatch.setattr(torch.optim.Adam, "step", real_step)
    state = load_checkpoint(path)
    ends = [40, 80, 120]
    saved = state["position"]["step"] if state["position"] else ends[state["epoch"]]
    assert saved == max([die_after // 5 * 5] + [e for e in ends if e <= die_after])  # the last save before the crash
    resumed = student()
    hist = distill(teacher, resumed, digits8, config, checkpoint=path, resume=True, model_config=cfg,
                   checkpoint_every=5)
    for key, value in ref.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert [e["loss"] for e in hist.epochs] == pytest.approx([e["loss"] for e in ref_hist.epochs], rel=1e-12)
    assert [e["pool"] for e in hist.epochs] == [e["pool"] for e in ref_hist.epochs]
    final = load_checkpoint(path)
    assert final["epoch"] == 2 and final["position"] is None


def test_resume_refuses_another_teacher_curriculum_order(digits8, tmp_path):
    from edgekd.distill import distill

    teacher, config, cfg, student = _kd_setup(digits8)
    path = tmp_path / "run.pt"
    distill(teacher, student(), digits8, config.replace(epochs=1), checkpoint=path, model_config=cfg)
    torch.manual_seed(99)
    other = type(teacher)(digits8.input_shape, digits8.num_classes, hidden=24)
    with pytest.raises(CheckpointError, match="curriculum order differs"):
        distill(other, student(), digits8, config.replace(epochs=1), checkpoint=path, resume=True, model_config=cfg)


def test_stale_temp_files_of_a_killed_writer_are_cleaned(digits8, tmp_path):
    from edgekd.distill import distill, train_config
    from edgekd.models import ModelConfig, build_model

    stale = tmp_path / ".s.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    keep = tmp_path / ".other.pt.abc.tmp"
    keep.write_bytes(b"not ours")
    cfg = ModelConfig("student_mlp", digits8.input_shape, digits8.num_classes, {"hidden": 4})
    distill(None, build_model(cfg), digits8, train_config(epochs=1), checkpoint=tmp_path / "s.pt", model_config=cfg)
    assert not stale.exists() and keep.exists() and load_checkpoint(tmp_path / "s.pt")["epoch"] == 0


def test_bf16_autocast_trains_above_chance(digits8):
    from edgekd.distill import distill, evaluate, train_config
    from edgekd.errors import ConfigError
    from edgekd.models import ModelConfig, build_model

    torch.manual_seed(0)
    model = build_model(ModelConfig("student_mlp", digits8.input_shape, digits8.num_classes, {"hidden": 32}))
    distill(None, model, digits8, train_config(epochs=3, lr=1e-2), precision="bf16")
    assert evaluate(model, digits8.test) > 0.6  # 10 classes: chance is 0.1
    assert next(model.parameters()).dtype == torch.float32  # weights stay fp32; only matmuls ran in bf16
    with pytest.raises(ConfigError, match="precision"):
        distill(None, model, digits8, train_config(epochs=1), precision="fp8")
