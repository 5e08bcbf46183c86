"""``edgekd data eeg ...`` and ``edgekd bci ablation`` end to end on tiny settings."""
import json

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


def test_bci_ablation_writes_every_arm(synthetic_root, tmp_path, capsys):
    out = tmp_path / "bci.json"
    assert main(["bci", "ablation", "--data", str(synthetic_root), "--seeds", "2", "--out", str(out),
                 "--set", "teacher_epochs=2", "--set", "ldc_epochs=3", "--set", "hdc_dim=2000"]) == 0
    report = json.loads(out.read_text())
    arms = ["ldc_no_kd", "ldc_const_alpha", "ldc_scheduled", "ldc_scheduled_curriculum", "teacher", "csp_lda",
            "hdc_large"]
    assert [k for k in report if k != "meta"] == arms
    for arm in arms:
        row = report[arm]
        assert 0.0 <= row["accuracy"] <= 1.0 and row["accuracy_std"] >= 0 and row["model_bytes"] > 0
        assert len(row["accuracy_per_seed"]) == 2
        assert abs(row["accuracy"] - sum(row["accuracy_per_seed"]) / 2) < 1e-9
    assert report["meta"]["synthetic"] is True and report["meta"]["trials"] == 180
    assert report["ldc_no_kd"]["model_bytes"] < report["teacher"]["model_bytes"] < report["hdc_large"]["model_bytes"]
    assert report["csp_lda"]["accuracy"] > 0.7  # the clear-ERD test set is easy for CSP
    assert (tmp_path / "bci.md").read_text().count("|") > 20


def test_bci_export_ldc_c(synthetic_root, tmp_path, capsys):
    out = tmp_path / "exports"
    assert main(["bci", "export", "--data", str(synthetic_root), "--out", str(out), "--set", "teacher_epochs=5",
                 "--set", "ldc_epochs=20", "--target"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    ldc = summary["ldc"]
    assert ldc["parity"]["passed"] and ldc["parity"]["inputs"] == summary["test_trials"] == 36
    assert ldc["accuracy_c"] == ldc["accuracy_python"] > 0.6
    assert (out / "ldc" / "bci_ldc.c").is_file() and ldc["model_bytes"] == 464
