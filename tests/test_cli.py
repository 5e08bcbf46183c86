import subprocess
import sys

import pytest

from edgekd.cli import build_parser, main


def test_help_lists_subcommands_and_each_has_help(capsys):
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert {"demo", "distill"} <= set(sub.choices)
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage: edgekd " + name)


def test_unknown_option_is_rejected_with_a_clear_message():
    out = subprocess.run([sys.executable, "-m", "edgekd.cli", "demo", "--frobnicate"], capture_output=True, text=True)
    assert out.returncode == 2
    assert "unrecognized arguments: --frobnicate" in out.stderr


def test_user_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "cfg.json"
    bad.write_text('{"type": "kd", "epochs": "many"}')
    code = main(["distill", "--dataset", "digits8", "--config", str(bad), "--out", str(tmp_path / "o.pt")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "KDConfig.epochs: expected an integer" in err
    assert not (tmp_path / "o.pt").exists()


def test_distill_command_trains_and_writes_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "m.pt"
    code = main(["distill", "--dataset", "digits8", "--model", "student_mlp", "--model-options", '{"hidden": 16}',
                 "--set", "epochs=4", "--set", "lr=0.01", "--out", str(out)])
    assert code == 0 and out.is_file()
    acc = float(capsys.readouterr().out.split("test accuracy ")[1].split(";")[0])
    assert acc > 0.5
