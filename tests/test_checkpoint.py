import os
import pickle

import pytest
import torch

from edgekd.checkpoint import load_checkpoint, save_checkpoint
from edgekd.distill import KDConfig
from edgekd.errors import CheckpointError
from edgekd.models import ModelConfig, build_model


def test_checkpoint_stores_weights_and_configs(tmp_path):
    cfg = ModelConfig("student_mlp", (1, 8, 8), 10, {"hidden": 5})
    model = build_model(cfg)
    path = save_checkpoint(tmp_path / "m.pt", model.state_dict(), model_config=cfg, train_config=KDConfig(epochs=2), epoch=1)
    state = load_checkpoint(path)
    assert ModelConfig.from_dict(state["model_config"]) == cfg
    assert state["train_config"]["epochs"] == 2 and state["epoch"] == 1
    clone = build_model(cfg)
    clone.load_state_dict(state["model"])
    for a, b in zip(model.state_dict().values(), clone.state_dict().values()):
        assert torch.equal(a, b)


def test_write_is_atomic_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"w": torch.ones(3)})
    before = path.read_bytes()

    def boom(obj, f, *a, **k):
        with open(f, "wb") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": torch.zeros(3)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind


def test_truncated_and_corrupt_files_give_clear_errors(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", {"w": torch.randn(100)})
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="trunc.pt: not a readable checkpoint"):
        load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(os.urandom(512))
    with pytest.raises(CheckpointError, match="garbage.pt"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="nothere.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "nothere.pt")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED_MARKER",))


def test_pickled_objects_are_refused_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"format": "edgekd-checkpoint", "model": {}, "x": _Payload()}, evil)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_checkpoint(evil)
    assert not (tmp_path / "PWNED_MARKER").exists()


def test_a_plain_torch_file_is_not_an_edgekd_checkpoint(tmp_path):
    torch.save({"w": torch.ones(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not an edgekd checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import stat

    from edgekd.io import atomic_dir, atomic_write_text

    mask = os.umask(0o022)
    try:
        f = atomic_write_text(tmp_path / "r.json", "{}")
        with atomic_dir(tmp_path / "folder") as d:
            (d / "x").write_text("1")
    finally:
        os.umask(mask)
    assert stat.S_IMODE(f.stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
