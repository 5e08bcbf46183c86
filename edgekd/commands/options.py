"""One spelling per option across every ``edgekd`` subcommand, and one help format.

:data:`SPELLINGS` is the concept -> spelling table: an option that means the same thing is spelled
the same in every subcommand (a test walks every parser against it). A new option reuses a spelling
here or adds its concept. :data:`DEPRECATED` keeps old spellings that scripts may still use, hidden
from ``--help``; using one prints a note naming the new spelling.
"""
from __future__ import annotations

import argparse
import sys
import textwrap

SPELLINGS = {
    # shared by several subcommands
    "log progress and library messages, show tracebacks": "--verbose",
    "where the command writes its result (file or folder)": "--out",
    "folder of checkpoints, reused when their configs match": "--runs",
    "where the input data lives (folder or file)": "--data",
    "dataset name": "--dataset",
    "export target(s)": "--target",
    "numeric precision (of training or of the exported model)": "--precision",
    "one random seed": "--seed",
    "number of seeds (repeats)": "--seeds",
    "EEG subject numbers to use": "--subjects",
    "number of subjects of the synthetic EEG set": "--synthetic-subjects",
    "folder the synthetic EEG set is written to": "--synthetic-out",
    "config file (JSON)": "--config",
    "override one config field": "--set",
    "registered model name": "--model",
    "tiny settings for smoke tests": "--quick",
    "input shape of a model file": "--input-shape",
    "state_dict for a FILE.py:factory model": "--weights",
    "int8 calibration inputs": "--calibration",
    "training epochs": "--epochs",
    # one subcommand each
    "demo: folder for the exports of the distilled student": "--exports",
    "demo: stop after training and quantization": "--no-export",
    "demo: retrain, ignoring checkpoints": "--fresh",
    "demo: worker processes for training": "--workers",
    "demo: which student arms to train": "--arms",
    "distill: builder options of the model (JSON)": "--model-options",
    "distill: teacher checkpoint": "--teacher",
    "distill: continue an unfinished checkpoint": "--resume",
    "distill: checkpoint every N steps": "--checkpoint-every",
    "distill: device": "--device",
    "distill: deterministic algorithms": "--deterministic",
    "data eeg synthetic: cues per run": "--trials",
    "data eeg synthetic: sampling rate": "--sfreq",
    "bci export: LDC variant": "--arm",
    "generators: folder for sample grids": "--grids",
    "generators: images per method and step count": "--samples",
    "generators: export existing checkpoints without training": "--export-only",
    "generators: load checkpoints trained with the same configs": "--reuse",
    "selfdistill: random splits": "--splits",
    "selfdistill: largest number of SD steps": "--max-k",
    "selfdistill: how SD's ridge lam is chosen": "--sd-lam",
    "selfdistill: range of the xi's": "--xi-range",
    "selfdistill: noise draws": "--draws",
    "selfdistill: network generations": "--generations",
    "selfdistill: teacher weight": "--alpha",
    "export: the demo's distilled student": "--demo-student",
    "export: held-out parity inputs": "--parity",
    "export: device input layout": "--input-layout",
    "export: file stem / C identifier": "--name",
    "bench: Cortex-M cores": "--cores",
    "bench: clock per core": "--clock",
    "bench: host runtimes": "--runtimes",
    "bench: also the demo's checkpoints": "--demo",
    "bench: also the model zoo": "--zoo",
    "bench: folder of the reports --demo reads": "--reports",
    "bench: folder for exports and builds": "--work",
    "bench: a tflite-micro source tree": "--tflm-src",
}
SHORT = {"-v": "--verbose"}  # the only short option

# subcommand path -> {old spelling: the one spelling}; only where the repo's scripts and docs used
# the old one (they are updated; the alias keeps users' scripts working)
DEPRECATED = {
    ("generators",): {"--export": "--target"},
    ("data", "eeg", "eegbci"): {"--path": "--data"},
    ("data", "eeg", "bci_iv_2a"): {"--path": "--data"},
    ("data", "eeg", "synthetic"): {"--subjects": "--synthetic-subjects"},
}


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every meaningful default; wraps long description lines and keeps indented example lines."""

    def _fill_text(self, text, width, indent):
        out = []
        for line in text.splitlines():
            if not line.strip() or line[0].isspace():
                out.append(indent + line)
            else:
                out.append(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent))
        return "\n".join(out)

    def _get_help_string(self, action):
        text = action.help or ""
        if shows_default(action) and "%(default)" not in text and "(default:" not in text:
            value = action.default
            if isinstance(value, (list, tuple)):
                value = " ".join(map(str, value))
            text += " (default: " + str(value).replace("%", "%%") + ")"
        return text


def shows_default(action) -> bool:
    """True for a default worth printing: set, not a flag's False, not an empty list or string."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction,
                           argparse._VersionAction, argparse._SubParsersAction)):
        return False
    return action.default not in (None, argparse.SUPPRESS, "", [], ())


class Parser(argparse.ArgumentParser):
    """Every edgekd parser: the one help format, no abbreviated options (one spelling each)."""

    def __init__(self, *args, **kwargs):
        kwargs["formatter_class"] = HelpFormatter
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)


def subcommand_parsers(parser, path=()):
    """``(path, parser)`` for ``parser`` and every subcommand below it, e.g. ``(("data", "eeg"), p)``."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from subcommand_parsers(sub, (*path, name))


class _DeprecatedAlias(argparse.Action):
    def __init__(self, option_strings, dest, new=None, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: note: {option_string} is deprecated; use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_deprecated_aliases(parser):
    """Give the subcommands in :data:`DEPRECATED` their old spellings back, hidden."""
    parsers = dict(subcommand_parsers(parser))
    for path, renames in DEPRECATED.items():
        for old, new in renames.items():
            target = parsers.get(path) and parsers[path]._option_string_actions.get(new)
            if target is None:  # table out of date: the CLI still works, a test names the entry
                continue
            parsers[path].add_argument(old, dest=target.dest, nargs=target.nargs, type=target.type,
                                       choices=target.choices, default=argparse.SUPPRESS, help=argparse.SUPPRESS,
                                       action=_DeprecatedAlias, new=new)
