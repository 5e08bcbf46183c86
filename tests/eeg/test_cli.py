"""``edgekd data eeg ...`` and ``edgekd bci ablation`` end to end on tiny settings."""
import json

import numpy as np
import pytest

from edgekd.cli import main


def test_data_commands(tmp_path, capsys):
    assert main(["data", "eeg", "synthetic", "--out", str(tmp_path), "--synthetic-subjects", "2", "--trials", "4",
                 "--sfreq", "100"]) == 0
    assert main(["data", "eeg", "eegbci", "--data", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "6 files (synthetic stand-in)" in out and "S002R12.edf" in out
    assert main(["data", "eeg", "bci_iv_2a", "--data", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "none" in err and "bbci" in err and "Traceback" not in err


def test_bci_ablation_reports_paired_statistics_and_equal_budgets(synthetic_root, tmp_path, capsys):
    from scipy import stats

    out = tmp_path / "bci.json"
    assert main(["bci", "ablation", "--data", str(synthetic_root), "--seeds", "3", "--out", str(out),
                 "--set", "teacher_epochs=2", "--set", "ldc_epochs=3", "--set", "hdc_dim=2000",
                 "--set", "temperatures=[2.0]", "--set", "const_alphas=[0.2, 0.9]"]) == 0
    report = json.loads(out.read_text())
    arms = ["ldc_no_kd", "ldc_const_alpha", "ldc_scheduled", "ldc_scheduled_curriculum", "teacher", "csp_lda",
            "hdc_large"]
    assert [k for k in report if k not in ("meta", "selection")] == arms
    base = np.array(report["ldc_no_kd"]["accuracy_per_seed"])
    for arm in arms:
        row = report[arm]
        acc = np.array(row["accuracy_per_seed"])
        assert len(acc) == 3
        assert row["accuracy"] == pytest.approx(acc.mean(), abs=1e-12)
        assert row["accuracy_std"] == pytest.approx(acc.std(ddof=1), abs=1e-12)  # sample std, not ddof=0
        if arm == "ldc_no_kd":
            assert "vs_ldc_no_kd" not in row
            continue
        diff, d = row["vs_ldc_no_kd"], acc - base
        assert diff["per_seed"] == pytest.approx(d.tolist()) and diff["mean"] == pytest.approx(d.mean())
        if d.std(ddof=1) > 0:  # the t-interval with 2 degrees of freedom, from scipy
            low, high = stats.t.interval(0.95, 2, loc=d.mean(), scale=stats.sem(d))
            assert (diff["ci_low"], diff["ci_high"]) == pytest.approx((low, high))
            assert diff["established"] == (low > 0 or high < 0)
    # every LDC arm took the same number of optimizer steps, curriculum or not
    assert len({report[a]["steps"] for a in arms[:4]}) == 1
    # the constant arm runs with the candidate that won on the validation split
    sel = report["selection"]
    val = sel["val_accuracy"]["ldc_const_alpha"]
    assert set(val) == {"T=2.0 alpha=0.2", "T=2.0 alpha=0.9"}
    assert val[f"T={sel['temperature']} alpha={sel['const_alpha']}"] == max(val.values())
    assert report["meta"]["synthetic"] is True and report["meta"]["trials"] == 180
    assert report["ldc_no_kd"]["model_bytes"] < report["teacher"]["model_bytes"] < report["hdc_large"]["model_bytes"]
    assert report["csp_lda"]["accuracy"] > 0.7  # the clear-ERD test set is easy for CSP
    md = (tmp_path / "bci.md").read_text().splitlines()
    for arm in arms:  # one row per arm, in order
        assert sum(line.startswith(f"| {arm} |") for line in md) == 1, arm
    assert [line.split(" |")[0][2:] for line in md if line.startswith("| ") and "---" not in line][1:] == arms


def test_selection_never_sees_the_test_trials():
    """Changing every test label leaves the validation scores, and so the choice, unchanged."""
    from edgekd.bci.ablation import AblationConfig, SeedData, select_settings
    from edgekd.distill import AlphaSchedule, Curriculum

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    levels = np.clip(y[:, None] * 3 + rng.integers(0, 5, (120, 6)), 0, 7).astype(np.int64)
    logits = np.stack([1 - 2 * y, 2 * y - 1], 1) + rng.normal(0, 1, (120, 2))
    idx = rng.permutation(120)
    prepared = [SeedData(s, idx[:70], idx[70:90], idx[90:], logits, levels, levels, 0, {}) for s in range(2)]
    cfg = AblationConfig(seeds=2, ldc_epochs=2, temperatures=(2.0,), const_alphas=(0.3, 0.9),
                         schedules=(AlphaSchedule("linear", 0.9, 0.1),),
                         curricula=(Curriculum("confidence", "linear", 0.5, 0.5),))
    chosen, scores = select_settings(prepared, y, cfg)
    flipped = y.copy()
    flipped[idx[90:]] = 1 - flipped[idx[90:]]
    chosen2, scores2 = select_settings(prepared, flipped, cfg)
    assert scores == scores2 and chosen == chosen2


def test_bci_export_ldc_c(synthetic_root, tmp_path, capsys):
    out = tmp_path / "exports"
    assert main(["bci", "export", "--data", str(synthetic_root), "--out", str(out), "--set", "teacher_epochs=5",
                 "--set", "ldc_epochs=20", "--target"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    ldc = summary["ldc"]
    assert ldc["parity"]["passed"] and ldc["parity"]["inputs"] == summary["test_trials"] == 36
    assert ldc["accuracy_c"] == ldc["accuracy_python"] > 0.6
    assert (out / "ldc" / "bci_ldc.c").is_file() and ldc["model_bytes"] == 464
