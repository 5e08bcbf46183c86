"""Bad input gets a clear one-line error naming the file/field, no traceback, and no partial output."""
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from edgekd.checkpoint import load_checkpoint, save_checkpoint
from edgekd.cli import main
from edgekd.config import Config, load_config
from edgekd.data.images import Split, Splits, split_arrays
from edgekd.distill import AlphaSchedule, KDConfig, distill, kd_loss, train_config
from edgekd.errors import CheckpointError, ConfigError, DataError
from edgekd.models import ModelConfig, build_model

DISTILL = ["distill", "--dataset", "digits8", "--model", "student_mlp", "--set", "epochs=1"]


def _fails_cleanly(capsys, argv, *needles, out):
    """Exit code 2, one stderr line containing every needle, no traceback, and nothing at ``out``."""
    capsys.readouterr()
    assert main([*map(str, argv), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("edgekd distill: error: ")
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]  # no temp files
    return lines[0]


@pytest.fixture
def teacher_ckpt(tmp_path_factory, digits8):
    path = tmp_path_factory.mktemp("teacher") / "teacher.pt"
    cfg = ModelConfig("student_mlp", digits8.input_shape, digits8.num_classes, {"hidden": 8})
    save_checkpoint(path, build_model(cfg).state_dict(), model_config=cfg, train_config=train_config(epochs=1))
    return path


# ---- checkpoints -----------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "text"])
def test_truncated_or_corrupt_teacher_checkpoint(tmp_path, capsys, teacher_ckpt, damage):
    raw = teacher_ckpt.read_bytes()
    bad = tmp_path / "bad.pt"
    if damage == "truncate":
        bad.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":  # scramble the middle of the zip: central directory or data damaged
        mid = len(raw) // 3
        bad.write_bytes(raw[:mid] + bytes(b ^ 0xFF for b in raw[mid : mid + 64]) + raw[mid + 64 :])
    elif damage == "empty":
        bad.write_bytes(b"")
    else:
        bad.write_text("not a checkpoint\n")
    line = _fails_cleanly(capsys, [*DISTILL, "--teacher", bad], str(bad), out=tmp_path / "s.pt")
    assert "checkpoint" in line


def test_missing_teacher_checkpoint(tmp_path, capsys):
    _fails_cleanly(capsys, [*DISTILL, "--teacher", tmp_path / "nope.pt"], "nope.pt", "not found",
                   out=tmp_path / "s.pt")


class _Exploit:
    """Unpickling this would run exec() and write the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('pwned')",))


def test_pickled_objects_in_a_checkpoint_are_refused_never_executed(tmp_path, capsys):
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "edgekd-checkpoint", "format_version": 1, "model": {}, "model_config": _Exploit(marker)},
               evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    _fails_cleanly(capsys, [*DISTILL, "--teacher", evil], "refused", "evil.pt", out=tmp_path / "s.pt")
    resume = tmp_path / "resume.pt"
    shutil.copy(evil, resume)
    capsys.readouterr()
    assert main([*DISTILL, "--out", str(resume), "--resume"]) == 2
    assert "refused" in capsys.readouterr().err
    assert resume.read_bytes() == evil.read_bytes()  # the refused file is left as it was
    assert not marker.exists()
    torch.load(evil, weights_only=False)  # the exploit is real: an unsafe load runs it
    assert marker.read_text() == "pwned"


def test_checkpoint_from_an_incompatible_model_is_refused_on_resume(tmp_path, capsys, teacher_ckpt):
    out = tmp_path / "s.pt"
    shutil.copy(teacher_ckpt, out)  # hidden=8 weights; the run asks for the default hidden=32
    capsys.readouterr()
    assert main([*DISTILL, "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot resume" in err and "\n" not in err


# ---- configs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("content, needles", [
    ({"type": "kd", "epochs": 1, "learning_rate": 0.1}, ["unknown key", "learning_rate", "allowed keys"]),
    ({"type": "kd", "epochs": "three"}, ["KDConfig.epochs", "expected an integer", "'three'"]),
    ({"type": "kd", "lr": True}, ["KDConfig.lr", "expected a number"]),
    ({"type": "kd", "alpha": {"kind": "cosine", "start": 2.0}}, ["AlphaSchedule.start", "[0, 1]"]),
    ({"type": "kd", "alpha": {"kind": "wavy"}}, ["AlphaSchedule.kind", "'wavy'"]),
    ({"type": "kd", "temperature": 0}, ["KDConfig.temperature", "(0, 100]"]),
    ({"type": "kd", "curriculum": {"by": "vibes"}}, ["Curriculum.by", "'vibes'"]),
    ({"type": "kd", "feature_pairs": [["a"]]}, ["feature_pairs[0]", "expected 2 items"]),
    ({"type": "model", "name": "student_mlp"}, ["expected a config of type 'kd'"]),
    ({"type": "nope"}, ["unknown config type 'nope'"]),
    ([1, 2], ["expected a mapping"]),
])
def test_bad_config_files(tmp_path, capsys, content, needles):
    path = tmp_path / "kd.json"
    path.write_text(json.dumps(content))
    _fails_cleanly(capsys, [*DISTILL, "--config", path], "kd.json", *needles, out=tmp_path / "s.pt")


def test_config_file_that_is_not_json_or_missing(tmp_path, capsys):
    path = tmp_path / "kd.json"
    path.write_text('{"type": "kd", "epochs": 1,}')
    _fails_cleanly(capsys, [*DISTILL, "--config", path], "kd.json", "not valid JSON", "line 1", out=tmp_path / "s.pt")
    _fails_cleanly(capsys, [*DISTILL, "--config", tmp_path / "none.json"], "none.json", "not found",
                   out=tmp_path / "s.pt")


@pytest.mark.parametrize("override, needles", [
    ("alpha.start=1.5", ["AlphaSchedule.start", "alpha must be in [0, 1]", "1.5"]),
    ("alpha.end=-0.1", ["AlphaSchedule.end", "-0.1"]),
    ("temperature=0", ["KDConfig.temperature", "got 0"]),
    ("temperature=-2", ["KDConfig.temperature", "got -2"]),
    ("temperature=1e9", ["KDConfig.temperature"]),
    ("batch_size=0", ["KDConfig.batch_size", ">= 1"]),
    ("epochs=2.5", ["KDConfig.epochs", "expected an integer"]),
    ("nonsense=1", ["unknown key", "nonsense"]),
    ("alpha.kind.deep=1", ["--set alpha.kind.deep", "not a nested config"]),
    ("epochs", ["--set 'epochs'", "KEY=VALUE"]),
])
def test_out_of_range_alpha_temperature_and_bad_overrides(tmp_path, capsys, override, needles):
    _fails_cleanly(capsys, [*DISTILL, "--set", override], *needles, out=tmp_path / "s.pt")


def test_alpha_and_temperature_are_checked_by_the_api_too():
    with pytest.raises(ConfigError, match=r"AlphaSchedule.start: alpha must be in \[0, 1\], got 1.01"):
        AlphaSchedule("linear", 1.01, 0.5)
    with pytest.raises(ConfigError, match="KDConfig.temperature"):
        KDConfig(temperature=float("nan"))
    logits = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="alpha must be in"):
        kd_loss(logits, logits, torch.tensor([0, 1]), alpha=-0.5, temperature=2.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        kd_loss(logits, logits, torch.tensor([0, 1]), alpha=0.5, temperature=0.0)


def test_other_cli_mistakes(tmp_path, capsys):
    _fails_cleanly(capsys, [*DISTILL, "--model-options", "{hidden: 3}"], "--model-options", "not valid JSON",
                   out=tmp_path / "s.pt")
    _fails_cleanly(capsys, [*DISTILL, "--model-options", '{"depth": 3}'], "ModelConfig.options", "depth",
                   out=tmp_path / "s.pt")
    _fails_cleanly(capsys, [*DISTILL, "--model", "resnet9000"], "ModelConfig.name", "resnet9000",
                   out=tmp_path / "s.pt")
    _fails_cleanly(capsys, [*DISTILL, "--dataset", "cifar"], "'dataset'", "cifar", out=tmp_path / "s.pt")
    _fails_cleanly(capsys, [*DISTILL, "--device", "cuda:7" if torch.cuda.is_available() else "cuda"],
                   "--device", out=tmp_path / "s.pt")
    _fails_cleanly(capsys, [*DISTILL, "--device", "tpu"], "--device", "'tpu'", out=tmp_path / "s.pt")
    _fails_cleanly(capsys, [*DISTILL, "--checkpoint-every", "-1"], "checkpoint_every", out=tmp_path / "s.pt")


# ---- data ------------------------------------------------------------------------------------

def _splits(x, y, num_classes=10):
    s = Split(x, y)
    return Splits(s, s, s, num_classes, "bad")


def _student(shape=(1, 8, 8), classes=10):
    torch.manual_seed(0)
    cfg = ModelConfig("student_mlp", shape, classes, {"hidden": 4})
    return build_model(cfg), cfg


def test_inputs_with_the_wrong_shape_or_dtype(digits8):
    student, cfg = _student()
    x, y = digits8.train.x[:50], digits8.train.y[:50]
    with pytest.raises(DataError, match=r"shape \(1, 9, 9\) per sample, but the student \(student_mlp\) expects \(1, 8, 8\)"):
        distill(None, student, _splits(torch.zeros(50, 1, 9, 9), y), train_config(epochs=1), model_config=cfg)
    with pytest.raises(DataError, match=r"do not fit the student"):
        distill(None, student, _splits(torch.zeros(50, 3, 8, 8), y), train_config(epochs=1))
    with pytest.raises(DataError, match="inputs must be floating point"):
        distill(None, student, _splits((x * 16).to(torch.uint8), y), train_config(epochs=1))
    with pytest.raises(DataError, match="labels must be a 1-D int64"):
        distill(None, student, _splits(x, y.float()), train_config(epochs=1))
    with pytest.raises(DataError, match=r"labels must be in \[0, 10\), found -1..9"):
        distill(None, student, _splits(x, torch.where(y == 0, -1, y)), train_config(epochs=1))
    with pytest.raises(DataError, match=r"outputs \(10,\) per sample, but the data has 5 classes"):
        distill(None, student, _splits(x, y % 5, num_classes=5), train_config(epochs=1))
    with pytest.raises(DataError, match="NaN or Inf"):
        distill(None, student, _splits(torch.where(x > 0.5, float("nan"), x), y), train_config(epochs=1))
    with pytest.raises(DataError, match="differ in length"):
        Split(x, y[:10])


def test_a_teacher_that_does_not_fit_the_data(digits8):
    student, _ = _student()
    teacher, _ = _student(shape=(1, 28, 28))
    with pytest.raises(DataError, match="do not fit the teacher"):
        distill(teacher, student, digits8, KDConfig(epochs=1))


def test_empty_or_single_class_dataset(tmp_path, capsys):
    with pytest.raises(DataError, match="empty"):
        split_arrays(np.zeros((0, 1, 8, 8)), np.zeros(0), name="mine")
    with pytest.raises(DataError, match=r"mine: needs at least 2 classes, found 1 \(\[3\]\)"):
        split_arrays(np.zeros((20, 1, 8, 8)), np.full(20, 3), name="mine")
    one = tmp_path / "one.npz"
    np.savez(one, x=np.random.rand(40, 28, 28).astype(np.float32), y=np.full(40, 7))
    _fails_cleanly(capsys, ["distill", "--dataset", "mnist", "--data", one, "--model", "student_mlp"],
                   "needs at least 2 classes", out=tmp_path / "s.pt")
    empty = tmp_path / "empty.npz"
    np.savez(empty, x=np.zeros((0, 28, 28), np.float32), y=np.zeros(0, np.int64))
    _fails_cleanly(capsys, ["distill", "--dataset", "mnist", "--data", empty, "--model", "student_mlp"],
                   "empty", out=tmp_path / "s.pt")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((30, 8, 8), np.float32), y=np.arange(30) % 3)
    _fails_cleanly(capsys, ["distill", "--dataset", "mnist", "--data", wrong, "--model", "student_mlp"],
                   "wrong.npz", "expected 28x28 images", out=tmp_path / "s.pt")
    keys = tmp_path / "keys.npz"
    np.savez(keys, a=np.zeros(3))
    _fails_cleanly(capsys, ["distill", "--dataset", "mnist", "--data", keys, "--model", "student_mlp"],
                   "keys.npz", "expected arrays x/y", out=tmp_path / "s.pt")


# ---- the CLI as a user runs it ---------------------------------------------------------------

@pytest.mark.slow
def test_a_real_process_prints_one_line_and_verbose_adds_the_traceback(tmp_path, capsys):
    from ._run import edgekd

    run = edgekd(*DISTILL, "--set", "temperature=0", "--out", tmp_path / "s.pt")
    assert run.returncode == 2
    assert run.stderr.strip() == "edgekd distill: error: KDConfig.temperature: must be in (0, 100], got 0.0"
    verbose = edgekd("--verbose", *DISTILL, "--set", "temperature=0", "--out", tmp_path / "s.pt")
    assert verbose.returncode != 0 and "Traceback" in verbose.stderr
    with pytest.raises(SystemExit) as usage:  # argparse: usage line plus one error line, exit 2
        main(["distill", "--out", str(tmp_path / "s.pt"), "--no-such-flag"])
    assert usage.value.code == 2 and "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
    assert not (tmp_path / "s.pt").exists()


def test_teacher_checkpoint_without_a_model_config_or_with_foreign_weights(tmp_path, capsys, teacher_ckpt):
    bare = tmp_path / "bare.pt"
    save_checkpoint(bare, {"w": torch.zeros(2)})  # weights only, no model_config
    _fails_cleanly(capsys, [*DISTILL, "--teacher", bare], "bare.pt: model_config", "expected a mapping",
                   out=tmp_path / "s.pt")
    state = load_checkpoint(teacher_ckpt)
    odd = tmp_path / "odd.pt"
    save_checkpoint(odd, {"w": torch.zeros(2)}, model_config=state["model_config"])
    _fails_cleanly(capsys, [*DISTILL, "--teacher", odd], "odd.pt", "do not fit the model_config", out=tmp_path / "s.pt")
