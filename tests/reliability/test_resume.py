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
