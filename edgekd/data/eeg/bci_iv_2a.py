"""BCI Competition IV dataset 2a (Brunner et al. 2008): 9 subjects, 22 EEG + 3 EOG channels,
250 Hz, GDF files ``A01T.gdf`` ... ``A09E.gdf``, 4 motor-imagery classes.

Cue events: 769 left hand, 770 right hand, 771 feet, 772 tongue. Evaluation sessions (``A0xE``)
carry only 783 (cue, class unknown); their labels ship separately, so those files are refused.
Files are read from ``<root>/BCI-IV-2a/`` (or from ``path`` itself when it holds the GDF files).
"""
from __future__ import annotations

import re
from pathlib import Path

from ...errors import DataError
from ...log import logger
from .paths import data_path, describe_root, standard_montage_name

SUBFOLDER = "BCI-IV-2a"
BCI_IV_2A_EVENTS = {"769": 0, "770": 1}  # left vs right hand
BCI_IV_2A_EVENTS_4 = {"769": 0, "770": 1, "771": 2, "772": 3}
BCI_IV_2A_CLASSES = ("left_hand", "right_hand")
BCI_IV_2A_CLASSES_4 = ("left_hand", "right_hand", "feet", "tongue")
EOG = ("EOG-left", "EOG-central", "EOG-right")
# The GDF labels of the 22 EEG channels and their 10-20 names (dataset description, Fig. 1).
CHANNELS = {
    "EEG-Fz": "Fz", "EEG-0": "FC3", "EEG-1": "FC1", "EEG-2": "FCz", "EEG-3": "FC2", "EEG-4": "FC4",
    "EEG-5": "C5", "EEG-C3": "C3", "EEG-6": "C1", "EEG-Cz": "Cz", "EEG-7": "C2", "EEG-C4": "C4",
    "EEG-8": "C6", "EEG-9": "CP3", "EEG-10": "CP1", "EEG-11": "CPz", "EEG-12": "CP2", "EEG-13": "CP4",
    "EEG-14": "P1", "EEG-Pz": "Pz", "EEG-15": "P2", "EEG-16": "POz",
}
HOW_TO_GET = ("download the GDF files from https://www.bbci.de/competition/iv/ (dataset 2a) on a "
              "machine with internet and copy A01T.gdf ... A09T.gdf into <folder>")


def bci_iv_2a_folder(path=None) -> Path:
    root = data_path(path)
    if path is not None and root.is_dir() and any(root.glob("A0*.gdf")):
        return root
    return root / SUBFOLDER


def bci_iv_2a_files(path=None, subjects=None, sessions=("T",)) -> list[Path]:
    """Local GDF files, sorted; DataError naming the folder when none (or a requested one) is there."""
    folder = bci_iv_2a_folder(path)
    found = sorted(p for p in folder.glob("A*.gdf") if re.fullmatch(r"A0\d[TE]\.gdf", p.name)) if folder.is_dir() else []
    found = [p for p in found if p.name[3] in sessions]
    if subjects is not None:
        subjects = [subjects] if isinstance(subjects, int) else list(subjects)
        wanted = [folder / f"A{s:02d}{sess}.gdf" for s in subjects for sess in sessions]
        missing = [w for w in wanted if not w.is_file()]
        if missing:
            raise DataError(f"BCI IV-2a file missing: {missing[0]}; looked in {describe_root(path)}. To obtain "
                            "it, " + HOW_TO_GET.replace("<folder>", str(folder)))
        found = wanted
    if not found:
        raise DataError(f"BCI IV-2a dataset not found: no A0xT.gdf files in {folder}; looked in "
                        f"{describe_root(path)}. To obtain it, " + HOW_TO_GET.replace("<folder>", str(folder)))
    return found


GDF_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 8, 8: 8, 16: 4, 17: 8}


def check_gdf_size(file):
    """DataError if a GDF 2.x file is shorter than its header says (header + data records)."""
    import struct

    size = Path(file).stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(256)
        if len(head) < 256 or not head.startswith(b"GDF"):
            raise DataError(f"{file}: not a GDF file (no 'GDF' version string in a 256-byte header)")
        try:
            version = float(head[4:8].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise DataError(f"{file}: not a GDF file (bad version field {head[:8]!r})") from None
        if version < 1.9:
            return  # GDF 1.x: left to MNE
        blocks, = struct.unpack_from("<H", head, 184)
        n_records, = struct.unpack_from("<q", head, 236)
        nchan, = struct.unpack_from("<H", head, 252)
        fh.seek(256 + nchan * 216)
        raw = fh.read(8 * nchan)
    if len(raw) < 8 * nchan:
        raise DataError(f"{file}: GDF file is truncated inside its channel header ({size} bytes)")
    spr = struct.unpack_from(f"<{nchan}i", raw, 0)
    types = struct.unpack_from(f"<{nchan}i", raw, 4 * nchan)
    unknown = [t for t in types if t not in GDF_TYPE_BYTES]
    if unknown:
        raise DataError(f"{file}: unsupported GDF sample type {unknown[0]}")
    expected = blocks * 256 + n_records * sum(n * GDF_TYPE_BYTES[t] for n, t in zip(spr, types))
    if size < expected:
        raise DataError(f"{file}: GDF file is truncated: the header announces at least {expected} bytes, found {size}")


def read_gdf(file):
    """One GDF file as a preloaded Raw: EOG typed, EEG renamed to 10-20 names, standard_1005 montage."""
    import mne

    file = Path(file)
    if not file.is_file():
        raise DataError(f"{file}: file not found")
    check_gdf_size(file)
    try:
        raw = mne.io.read_raw_gdf(file, preload=True, verbose="error")
    except Exception as err:  # bad header/size surfaces as ValueError/struct.error/OSError/IndexError
        raise DataError(f"{file}: not a readable GDF file ({type(err).__name__}: {err})") from None
    if raw.n_times == 0:
        raise DataError(f"{file}: GDF file holds no samples")
    eog = [c for c in EOG if c in raw.ch_names]
    if eog:
        raw.set_channel_types({c: "eog" for c in eog})
    raw.rename_channels({k: v for k, v in CHANNELS.items() if k in raw.ch_names})
    raw.set_montage(standard_montage_name(), match_case=False, on_missing="ignore")
    return raw


def load_bci_iv_2a(path=None, subjects=None, classes=2, verbose=None) -> list[tuple[int, object]]:
    """[(subject, Raw)] for the training sessions, checked for class cue events."""
    events = BCI_IV_2A_EVENTS if classes == 2 else BCI_IV_2A_EVENTS_4
    out = []
    for file in bci_iv_2a_files(path, subjects):
        raw = read_gdf(file)
        found = set(raw.annotations.description)
        if not found & set(events):
            hint = " (783 = cue of unknown class: evaluation sessions need the separate label files)" if "783" in found else ""
            raise DataError(f"{file}: no class cue events {sorted(events)}; found {sorted(found) or 'none'}{hint}")
        out.append((int(file.name[1:3]), raw))
        logger.info(f"read {file} ({raw.info['nchan']} channels, {raw.n_times / raw.info['sfreq']:.0f} s)")
    return out
