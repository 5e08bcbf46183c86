"""PhysioNet EEG Motor Movement/Imagery (EEGMMI, Schalk et al. 2004): left vs right hand imagery.

Runs 4, 8 and 12 are motor imagery of the left (annotation ``T1``) or right (``T2``) fist; ``T0``
is rest. Files are read from MNE's layout under the data root::

    <root>/MNE-eegbci-data/files/eegmmidb/1.0.0/S001/S001R04.edf

which is what ``mne.datasets.eegbci.load_data(subjects, runs, path=<root>)`` writes on a machine
with internet. We only ever call ``load_data`` once every file is present, so it never fetches.
"""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import DataError
from ...log import logger
from .paths import data_path, describe_root, standard_montage_name

EEGBCI_RUNS = (4, 8, 12)  # motor imagery, left vs right hand
EEGBCI_EVENTS = {"T1": 0, "T2": 1}  # T1 = left hand, T2 = right hand
EEGBCI_CLASSES = ("left_hand", "right_hand")
SUBFOLDER = Path("MNE-eegbci-data", "files", "eegmmidb", "1.0.0")
HOW_TO_GET = ("get the files on a machine with internet, e.g. python -c \"import mne; "
              "mne.datasets.eegbci.load_data(list(range(1, 110)), [4, 8, 12], path='<root>')\" "
              "(or download https://physionet.org/content/eegmmidb/1.0.0/), then copy the "
              "MNE-eegbci-data folder under the data root; or make a synthetic stand-in with "
              "`edgekd data eeg synthetic --out <root>`")


def eegbci_folder(path=None) -> Path:
    return data_path(path) / SUBFOLDER


def eegbci_file(root: Path, subject: int, run: int) -> Path:
    return root / SUBFOLDER / f"S{subject:03d}" / f"S{subject:03d}R{run:02d}.edf"


def available_subjects(path=None) -> list[int]:
    """Subjects with a folder under the EEGMMI layout."""
    folder = eegbci_folder(path)
    if not folder.is_dir():
        return []
    return sorted(int(m.group(1)) for p in folder.iterdir() if (m := re.fullmatch(r"S(\d{3})", p.name)))


def eegbci_files(subjects=None, runs=EEGBCI_RUNS, path=None) -> list[Path]:
    """Local paths of the requested EDF files; DataError naming the folder if any is missing."""
    root = data_path(path)
    if subjects is None:
        subjects = available_subjects(path)
        if not subjects:
            raise DataError(f"EEGBCI dataset not found: no subject folders (S001, ...) in "
                            f"{root / SUBFOLDER}; looked in {describe_root(path)}. To obtain it, "
                            + HOW_TO_GET.replace("<root>", str(root)))
    subjects = [int(s) for s in ([subjects] if isinstance(subjects, int) else subjects)]
    runs = [int(r) for r in ([runs] if isinstance(runs, int) else runs)]
    bad = [s for s in subjects if not 1 <= s <= 109]
    if bad:
        raise DataError(f"EEGBCI subjects must be in 1..109, got {bad}")
    wanted = [eegbci_file(root, s, r) for s in subjects for r in runs]
    missing = [f for f in wanted if not f.is_file()]
    if missing:
        raise DataError(f"EEGBCI dataset incomplete: {len(missing)} of {len(wanted)} files missing, "
                        f"first {missing[0]}; looked in {describe_root(path)}. To obtain it, "
                        + HOW_TO_GET.replace("<root>", str(root)))
    # Every file exists, so MNE's fetcher returns the local paths without downloading.
    from mne.datasets import eegbci

    paths = eegbci.load_data(subjects, runs, path=str(root), update_path=False, verbose=False)
    return [Path(p) for p in paths]


def check_edf_size(file):
    """DataError if the file is shorter than its EDF header says (MNE reads truncated files silently)."""
    size = Path(file).stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(256)
        try:
            header_bytes, n_records, ns = int(head[184:192]), int(head[236:244]), int(head[252:256])
            fh.seek(256 + ns * 216)
            per_record = sum(int(fh.read(8)) for _ in range(ns))
        except ValueError:
            raise DataError(f"{file}: not a readable EDF file (bad header)") from None
    expected = header_bytes + max(n_records, 0) * per_record * 2
    if size < expected:
        raise DataError(f"{file}: EDF file is truncated: the header announces {expected} bytes, found {size}")


def read_edf(file, *, standardize=True):
    """One EDF file as a preloaded Raw with standard channel names and the standard_1005 montage."""
    import mne
    from mne.datasets import eegbci

    file = Path(file)
    if not file.is_file():
        raise DataError(f"{file}: file not found")
    check_edf_size(file)
    try:
        raw = mne.io.read_raw_edf(file, preload=True, verbose="error")
    except Exception as err:  # MNE raises ValueError/RuntimeError/OSError/struct.error for bad files
        raise DataError(f"{file}: not a readable EDF file ({type(err).__name__}: {err})") from None
    if raw.n_times == 0:
        raise DataError(f"{file}: EDF file holds no samples")
    if standardize:
        eegbci.standardize(raw)
        raw.set_montage(standard_montage_name(), match_case=False, on_missing="ignore")
    return raw


def load_eegbci(subjects=None, runs=EEGBCI_RUNS, path=None, verbose=None) -> list[tuple[int, object]]:
    """[(subject, Raw)] for the motor-imagery runs, one Raw per file, checked for T1/T2 cues."""
    out = []
    for file in eegbci_files(subjects, runs, path):
        raw = read_edf(file)
        found = set(raw.annotations.description)
        if not found & set(EEGBCI_EVENTS):
            raise DataError(f"{file}: no motor-imagery cues; expected annotations {sorted(EEGBCI_EVENTS)}, "
                            f"found {sorted(found) or 'none'}")
        subject = int(file.name[1:4])
        out.append((subject, raw))
        logger.info(f"read {file} ({raw.info['nchan']} channels, {raw.n_times / raw.info['sfreq']:.0f} s)")
    return out
