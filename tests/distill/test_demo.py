"""The demo's comparison on a tiny config: equal budgets, paired statistics, reuse of checkpoints."""
import json

import numpy as np
import pytest

from edgekd.demo import ARMS, demo_config, run_demo
from edgekd.models import ModelConfig


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    cfg = demo_config("digits8", seeds=(0, 1, 2))
    cfg = cfg.replace(teacher=ModelConfig("student_mlp", options={"hidden": 32}),
                      student=ModelConfig("student_mlp", options={"hidden": 8}),
                      teacher_train=cfg.teacher_train.replace(epochs=3, lr=1e-2),
                      student_train=cfg.student_train.replace(epochs=2, lr=1e-2))
    report = run_demo(cfg, out_dir=out / "reports", run_dir=out / "runs", command="test", workers=1)
    return cfg, out, report


def test_report_holds_per_seed_values_and_paired_intervals(tiny_report):
    from scipy import stats

    cfg, out, report = tiny_report
    on_disk = json.loads((out / "reports" / "demo_digits8.json").read_text())
    assert on_disk["student_kd"]["accuracy"] == pytest.approx(report["student_kd"]["accuracy"])
    base = np.array(list(report["student_alone"]["accuracy_per_seed"].values()))
    assert list(report["student_alone"]["accuracy_per_seed"]) == ["0", "1", "2"]
    for arm in ARMS[1:]:
        acc = np.array(list(report[arm]["accuracy_per_seed"].values()))
        assert report[arm]["accuracy"] == pytest.approx(acc.mean())
        assert report[arm]["accuracy_std"] == pytest.approx(acc.std(ddof=1))
        diff = report[arm]["vs_student_alone"]
        if (acc - base).std() > 0:
            ci = stats.ttest_rel(acc, base).confidence_interval(0.95)
            assert (diff["ci_low"], diff["ci_high"]) == pytest.approx((ci.low, ci.high))
    # one budget for every arm: the steps each run took (from its history), the same views
    steps = {report[arm]["optimizer_steps"] for arm in ARMS}
    assert steps == {2 * -(-report["train_samples"] // 64)}
    kd_cfgs = [cfg.arm_config(arm) for arm in ARMS]
    assert len({json.dumps([c.epochs, c.batch_size, c.lr, c.lr_schedule, c.augment.to_dict()]) for c in kd_cfgs}) == 1
    assert kd_cfgs[-1].curriculum is not None and kd_cfgs[0].alpha.start == kd_cfgs[0].alpha.end == 0
    table = (out / "reports" / "demo_digits8.md").read_text()
    assert all(sum(line.startswith(f"| {arm} |") for line in table.splitlines()) == 1 for arm in ARMS)


def test_second_run_reuses_every_checkpoint(tiny_report):
    cfg, out, report = tiny_report
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.pt")}
    again = run_demo(cfg, out_dir=out / "reports2", run_dir=out / "runs", command="test", workers=1)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").glob("*.pt")} == before
    for arm in ARMS:
        assert again[arm]["accuracy_per_seed"] == report[arm]["accuracy_per_seed"]
    assert "view_labelling_seconds" not in again["teacher"]  # no student trained, so no teacher pass over views


@pytest.mark.slow
def test_two_worker_processes_give_the_same_students(tiny_report, tmp_path):
    cfg, out, report = tiny_report
    two = run_demo(cfg.replace(arms=ARMS[:2]), out_dir=tmp_path / "r", run_dir=tmp_path / "runs", command="test",
                   workers=2)
    for arm in ARMS[:2]:
        assert two[arm]["accuracy_per_seed"] == report[arm]["accuracy_per_seed"]
        assert two[arm]["val_accuracy_per_seed"] == report[arm]["val_accuracy_per_seed"]
