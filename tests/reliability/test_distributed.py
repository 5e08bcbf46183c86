"""Data parallel training: 2 CPU processes under torchrun give the single-process result."""
import pytest
import torch

from edgekd.checkpoint import load_checkpoint
from edgekd.cli import main
from edgekd.distributed import CurriculumSampler, DistContext, setup, shard

from ._run import torchrun


def test_shards_are_disjoint_cover_each_global_batch_and_keep_the_pool():
    pool = torch.tensor([7, 3, 9, 1, 4, 8, 2])  # an epoch's curriculum pool (easiest first)
    one = CurriculumSampler([pool], [5], batch_size=3)
    ranks = [CurriculumSampler([pool], [5], batch_size=3, rank=r, world_size=2) for r in range(2)]
    single = list(one.global_batches())
    per_rank = [list(s.global_batches()) for s in ranks]
    assert len(single) == len(per_rank[0]) == len(per_rank[1]) == 3  # ranks stay in lockstep
    for step, (glob, local) in enumerate(single):
        parts = [per_rank[r][step][1] for r in range(2)]
        assert torch.equal(torch.cat(parts), glob)  # disjoint and complete, in order
        assert torch.equal(per_rank[0][step][0], glob)  # every rank sees the same global batch
    assert sorted(torch.cat([g for g, _ in single]).tolist()) == sorted(pool.tolist())
    assert [len(b) for b in ranks[1]] == [1, 1, 0]  # last global batch of 1: rank 1 gets none
    ranks[0].set_epoch(0, start=2)
    assert len(ranks[0]) == 1 and list(ranks[0]) == [per_rank[0][2][1].tolist()]
    assert shard(torch.arange(5), 1, 2).tolist() == [3, 4]


def test_the_sampler_drives_a_dataloader_over_several_epochs():
    data = torch.utils.data.TensorDataset(torch.arange(10.0))
    pools = [torch.tensor([4, 2, 0]), torch.arange(10)]  # a curriculum that grows from 3 to 10 samples
    per_rank = []
    for rank in range(2):
        sampler = CurriculumSampler(pools, [11, 12], batch_size=4, rank=rank, world_size=2)
        seen = []
        for epoch in range(2):
            sampler.set_epoch(epoch)
            seen.append([int(v) for (batch,) in torch.utils.data.DataLoader(data, batch_sampler=sampler)
                         for v in batch])
        per_rank.append(seen)
    for epoch, pool in enumerate(pools):
        union = per_rank[0][epoch] + per_rank[1][epoch]
        assert sorted(union) == sorted(pool.tolist())  # each epoch: exactly the curriculum pool, no overlap


def test_without_torchrun_the_context_is_one_cpu_process(monkeypatch):
    for k in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(k, raising=False)
    assert setup("cpu") == DistContext()


@pytest.mark.slow
def test_two_processes_equal_one_process(tmp_path, digits8):
    """Teacher, curriculum, feature matching and an uneven last batch (rank 1 gets no sample)."""
    n = len(digits8.train)
    assert n % 8 == 1  # every epoch (curriculum pools are repeated to n entries) ends on 1 sample
    teacher = tmp_path / "teacher.pt"
    assert main(["distill", "--dataset", "digits8", "--model", "student_mlp", "--model-options", '{"hidden": 24}',
                 "--set", "epochs=1", "--set", "lr=0.01", "--out", str(teacher)]) == 0
    common = ["distill", "--dataset", "digits8", "--model", "student_mlp", "--teacher", teacher,
              "--set", "epochs=2", "--set", "batch_size=8", "--set", 'alpha={"kind": "linear", "start": 0.9, "end": 0.3}',
              "--set", 'curriculum={"by": "confidence", "pacing": "linear", "start": 0.3, "saturate": 0.8}',
              "--set", 'feature_pairs=[["fc1", "fc1"]]', "--set", "feature_weight=0.5"]
    assert main([*map(str, common), "--out", str(tmp_path / "one.pt")]) == 0
    run = torchrun(2, *common, "--out", tmp_path / "two.pt", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("test accuracy") == 1  # only rank 0 reports
    one, two = load_checkpoint(tmp_path / "one.pt"), load_checkpoint(tmp_path / "two.pt")
    assert two["world_size"] == 2 and one["world_size"] == 1
    for key in one["model"]:
        torch.testing.assert_close(two["model"][key], one["model"][key], rtol=0, atol=2e-5)
    torch.testing.assert_close(two["projections"]["0.weight"], one["projections"]["0.weight"], rtol=0, atol=2e-5)
    for a, b in zip(one["history"], two["history"]):
        assert a["pool"] == b["pool"] and a["val_accuracy"] == b["val_accuracy"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written left behind


class _Crash(Exception):
    pass


@pytest.mark.slow
def test_a_run_crashed_on_one_process_resumes_on_two(tmp_path, monkeypatch):
    """The checkpoint does not depend on the world size: global batches are the same."""
    args = ["distill", "--dataset", "digits8", "--model", "student_mlp", "--set", "epochs=2", "--set", "batch_size=16",
            "--checkpoint-every", "10"]
    assert main([*args, "--out", str(tmp_path / "ref.pt")]) == 0
    real_step, calls = torch.optim.Adam.step, {"n": 0}

    def crashing_step(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > 95:  # epoch 1 has 79 steps: dies inside epoch 2
            raise _Crash
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", crashing_step)
    with pytest.raises(_Crash):
        main([*args, "--out", str(tmp_path / "run.pt")])
    monkeypatch.setattr(torch.optim.Adam, "step", real_step)
    mid = load_checkpoint(tmp_path / "run.pt")
    assert mid["epoch"] == 0 and mid["position"]["step"] == 90 and mid["world_size"] == 1
    run = torchrun(2, *args, "--out", tmp_path / "run.pt", "--resume", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    ref, done = load_checkpoint(tmp_path / "ref.pt"), load_checkpoint(tmp_path / "run.pt")
    assert done["epoch"] == 1 and done["position"] is None and done["world_size"] == 2
    for key in ref["model"]:
        torch.testing.assert_close(done["model"][key], ref["model"][key], rtol=0, atol=2e-5)
    assert [e["loss"] for e in done["history"]] == pytest.approx([e["loss"] for e in ref["history"]], rel=1e-5)
