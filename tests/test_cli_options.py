"""One spelling per option, help on every option with its default, and the README's snippets run.

Every subcommand's parser is walked; every ``edgekd ...`` command line in README.md, docs/*.md and
the Makefile's recipes is parsed by the real parser, so a renamed option is caught where it is used.
"""
import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgekd.cli import build_parser
from edgekd.commands.options import DEPRECATED, SHORT, SPELLINGS, shows_default, subcommand_parsers

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _visible(parser):
    return [a for a in parser._actions if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]


def _help_block(help_text, action):
    """The lines of ``--help`` that describe ``action`` (its invocation line and the wrapped help under it)."""
    lines = help_text.splitlines()
    starts = tuple(action.option_strings) or (action.metavar or action.dest,)
    for i, line in enumerate(lines):
        if line.strip().startswith(starts):
            block = [line]
            for nxt in lines[i + 1:]:
                if not nxt.strip() or re.match(r"\s{2}\S", nxt):  # blank, or the next option (2-space indent)
                    break
                block.append(nxt)
            return " ".join(" ".join(block).split())
    raise AssertionError(f"{starts} not found in help")


def test_every_option_has_help_and_shows_its_default(monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")  # argparse wraps long defaults at hyphens ('litert- ref')
    checked = 0
    for path, parser in subcommand_parsers(build_parser()):
        text = parser.format_help()
        where = "edgekd " + " ".join(path)
        for action in _visible(parser):
            if isinstance(action, argparse._SubParsersAction):
                for choice in action._choices_actions:  # each subcommand's one-line help in the list
                    assert (choice.help or "").strip(), f"{where} {choice.dest}: no help"
                continue
            name = "/".join(action.option_strings) or action.dest
            assert (action.help or "").strip(), f"{where} {name}: blank help"
            if shows_default(action):
                value = action.default
                shown = " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
                block = _help_block(text, action)
                assert f"default: {shown})" in block or f"(default: {shown}" in block, \
                    f"{where} {name}: default {shown!r} not shown in: {block}"
                checked += 1
    assert checked > 40  # the walk reached the nested subcommands (data eeg synthetic, bci ablation, ...)


def test_one_spelling_per_concept():
    spellings = list(SPELLINGS.values())
    assert len(spellings) == len(set(spellings)), "a spelling names two concepts"
    for path, parser in subcommand_parsers(build_parser()):
        for action in _visible(parser):
            for option in action.option_strings:
                if option in SHORT:
                    assert SHORT[option] in action.option_strings, f"{option} is short for {SHORT[option]} only"
                    continue
                assert option in spellings, (f"edgekd {' '.join(path)} {option}: not in edgekd.commands.options."
                                             "SPELLINGS; reuse the spelling of its concept or add the concept")


def test_old_spellings_still_parse_hidden_with_a_note(capsys):
    parser = build_parser()
    parsers = dict(subcommand_parsers(parser))
    for path, renames in DEPRECATED.items():
        for old, new in renames.items():
            assert path in parsers and new in parsers[path]._option_string_actions, f"{path}: no {new} for {old}"
            assert not re.search(re.escape(old) + r"(?![\w-])", parsers[path].format_help()), f"{old} in --help of {path}"
            dest = parsers[path]._option_string_actions[new].dest
            extra = ["--out", "x"] if path == ("data", "eeg", "synthetic") else []
            args = parser.parse_args([*path, old, "7", *extra])
            assert str(getattr(args, dest)) == "7"
            assert f"note: {old} is deprecated; use {new}" in capsys.readouterr().err
    # and the renamed options themselves
    args = parser.parse_args(["bci", "export", "--target", "tflite"])
    assert args.target == ["tflite"]
    assert parser.parse_args(["generators", "--target", "onnx,c"]).target == "onnx,c"


# --- command lines in the docs ---------------------------------------------------------------------

def _code_lines(text):
    """Lines of fenced bash/sh/plain blocks (continuations joined) and inline code spans."""
    out, fence = [], None
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("```"):
            fence = None if fence is not None else line[3:].strip()
            continue
        if fence in ("bash", "sh", "shell", "console", ""):
            out.append(line)
        elif fence is None:
            out.extend(re.findall(r"`([^`\n]+)`", line))
    return out


def _commands(line, names):
    """``edgekd SUBCOMMAND ...`` token lists found in one line, comments included (``# = edgekd ...``)."""
    found = []
    for part in line.split("#"):
        try:
            tokens = shlex.split(part)
        except ValueError:
            continue
        for i, tok in enumerate(tokens[:-1]):
            if (tok in ("edgekd", "edgekd.cli") or tok.endswith("/edgekd")) and tokens[i + 1] in names:
                cmd = []
                for t in tokens[i + 1:]:
                    if t in ("&&", "|", ";", "||") or t.startswith(("(", ")")):
                        break
                    cmd.append(t)
                found.append(cmd)
    return found


def _check(parser, cmd):
    """Parse ``cmd``; with a ``...`` placeholder, check only that every option exists (no required ones)."""
    parsers = dict(subcommand_parsers(parser))
    path = []
    for tok in cmd:
        if tuple(path + [tok]) in parsers:
            path.append(tok)
        elif not tok.startswith("-"):
            break
    sub = parsers[tuple(path)]
    if len(path) == len(cmd):  # a name in the text ("`edgekd distill` runs unchanged under torchrun")
        return None
    for tok in cmd:
        option = tok.split("=", 1)[0]
        if option.startswith("--") and option in DEPRECATED.get(tuple(path), {}):
            return f"{option} is deprecated here; use {DEPRECATED[tuple(path)][option]}"
    if "..." in cmd:
        unknown = [t for t in cmd if t.startswith("-") and t.split("=", 1)[0] not in sub._option_string_actions]
        return f"unknown options {unknown}" if unknown else None
    try:
        parser.parse_args(cmd)
    except SystemExit:
        return "does not parse"
    return None


def test_every_documented_command_line_parses(capsys):
    parser = build_parser()
    names = {path[0] for path, _ in subcommand_parsers(parser) if path}
    failures, count = [], 0
    for doc in DOCS:
        for line in _code_lines(doc.read_text()):
            for cmd in _commands(line, names):
                count += 1
                problem = _check(parser, cmd)
                if problem:
                    failures.append(f"{doc.name}: edgekd {' '.join(cmd)}: {problem}")
    assert not failures, "\n".join(failures) + "\n" + capsys.readouterr().err
    assert count > 30


@pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")
def test_makefile_recipes_parse(capsys):
    parser = build_parser()
    names = {path[0] for path, _ in subcommand_parsers(parser) if path}
    targets = re.findall(r"^([a-z]+):", (ROOT / "Makefile").read_text(), re.M)
    cmds = []
    for target in ("demo", "export", "bench"):
        if target not in targets:
            continue
        dry = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, timeout=60)
        for line in dry.stdout.splitlines():
            cmds += _commands(line, names)
    assert cmds, "no edgekd command in the Makefile recipes"
    for cmd in cmds:
        assert _check(parser, cmd) is None, f"Makefile: edgekd {' '.join(cmd)} does not parse"


# --- the README's Python snippets ------------------------------------------------------------------

def _python_blocks(text):
    return re.findall(r"^```python\n(.*?)^```", text, re.M | re.S)


# The snippets run in one session, in order, as a reader would paste them. Only the training budget
# shrinks (1 epoch), so the suite stays fast; every other line runs as written.
TINY_BUDGET = textwrap.dedent("""
    import edgekd.distill as _distill
    _real_distill = _distill.distill
    def _one_epoch(teacher, student, data, config, **kw):
        return _real_distill(teacher, student, data, config.replace(epochs=1), **kw)
    _distill.distill = _one_epoch
""")


@pytest.mark.slow
def test_readme_python_snippets_run(tmp_path):
    pytest.importorskip("litert_torch")
    blocks = _python_blocks((ROOT / "README.md").read_text())
    assert len(blocks) >= 2
    script = TINY_BUDGET + "\n".join(blocks) + "\nprint('README OK', art.parity['passed'])\n"
    run = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    assert "README OK True" in run.stdout
    assert (tmp_path / "exports" / "c" / "parity.json").is_file()
