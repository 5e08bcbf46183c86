"""Where datasets live, resolved in MNE's order: the argument, then ``EDGEKD_DATA``, then
``~/edgekd_data``. Nothing is ever downloaded."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "EDGEKD_DATA"
DEFAULT = "~/edgekd_data"


def data_path(path=None) -> Path:
    """The data root: ``path`` if given, else $EDGEKD_DATA, else ~/edgekd_data (not created)."""
    if path is None or str(path) == "":
        path = os.environ.get(ENV_VAR) or DEFAULT
    return Path(path).expanduser()


def describe_root(path=None) -> str:
    """How the root was chosen, for error messages."""
    if path is not None and str(path) != "":
        return f"{data_path(path)} (from the path argument)"
    if os.environ.get(ENV_VAR):
        return f"{data_path(None)} (from ${ENV_VAR})"
    return f"{data_path(None)} (the default; set ${ENV_VAR} or pass a path to look elsewhere)"


def standard_montage_name() -> str:
    """MNE's template 10-05 montage: 'standard_1005', renamed 'colin27_1005' in MNE 1.13."""
    import mne

    return "colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages() else "standard_1005"
