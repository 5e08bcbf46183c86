"""EEG loaders on files written here: synthetic EDF (EEGMMI layout), hand-made GDF 2 (BCI IV-2a)."""
import os
import shutil

import numpy as np
import pytest

from edgekd.data.eeg import data_path, load_trials
from edgekd.data.eeg.bci_iv_2a import CHANNELS, EOG, bci_iv_2a_files, load_bci_iv_2a, read_gdf
from edgekd.data.eeg.eegbci import eegbci_file, eegbci_files, read_edf
from edgekd.data.eeg.preprocess import Quantizer, band_power_features
from edgekd.data.eeg.synthetic import SyntheticMIConfig, is_synthetic, write_synthetic_mi
from edgekd.errors import ConfigError, DataError

from .conftest import SMALL
from .gdf_writer import write_gdf


def test_path_resolution_order(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEKD_DATA", str(tmp_path / "env"))
    assert data_path(tmp_path / "arg") == tmp_path / "arg"
    assert data_path() == tmp_path / "env"
    monkeypatch.delenv("EDGEKD_DATA")
    assert data_path() == data_path("~/edgekd_data")


def test_synthetic_edf_files_read_back(synthetic_root):
    files = eegbci_files(path=synthetic_root)  # goes through mne.datasets.eegbci.load_data: must not download
    assert len(files) == SMALL.subjects * 3 and all(f.suffix == ".edf" for f in files)
    assert is_synthetic(synthetic_root)
    raw = read_edf(files[0])
    assert raw.ch_names == list(SMALL.channels)  # 'C3..' / 'Fcz.' labels standardized to C3 / FCz
    assert raw.info["sfreq"] == SMALL.sfreq
    pos = np.array([ch["loc"][:3] for ch in raw.info["chs"]])
    assert np.isfinite(pos).all() and (np.abs(pos).sum(1) > 0).all()  # montage set
    desc = list(raw.annotations.description)
    assert desc.count("T1") + desc.count("T2") == SMALL.trials_per_run
    assert abs(desc.count("T1") - desc.count("T2")) <= 1


def test_trials_show_contralateral_erd(trials):
    """The generator's physiology survives EDF and preprocessing: right-hand imagery lowers mu power
    at C3 relative to C4, left-hand imagery the reverse."""
    assert trials.x.shape == (SMALL.subjects * 3 * SMALL.trials_per_run, len(SMALL.channels), 160)
    assert trials.x.dtype == np.float32 and np.isfinite(trials.x).all()
    np.testing.assert_allclose(trials.x.std(axis=(1, 2)), 1.0, rtol=1e-4)  # per-trial standardization
    mu = band_power_features(trials.x, trials.sfreq, bands=((8, 12),))
    c3, c4 = trials.ch_names.index("C3"), trials.ch_names.index("C4")
    lateral = mu[:, c3] - mu[:, c4]
    left, right = lateral[trials.y == 0].mean(), lateral[trials.y == 1].mean()
    assert right < left - 0.3


def test_missing_eegbci_names_the_path(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGEKD_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere.*EDGEKD_DATA.*To obtain"):
        eegbci_files()
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        load_trials("eegbci")


def test_incomplete_eegbci_names_the_missing_file(tmp_path, synthetic_root):
    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    missing = eegbci_file(root, 2, 8)
    missing.unlink()
    with pytest.raises(DataError, match="S002R08.edf"):
        eegbci_files(path=root)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "header_only"])
def test_damaged_edf_gives_data_error_naming_the_file(tmp_path, synthetic_root, damage):
    src = eegbci_files(subjects=[1], runs=[4], path=synthetic_root)[0]
    data = src.read_bytes()
    bad = tmp_path / "S001R04.edf"
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": os.urandom(4000),
                     "header_only": data[:200]}[damage])
    with pytest.raises(DataError, match=str(bad)):
        read_edf(bad)


def test_synthetic_refuses_to_overwrite_real_data(tmp_path):
    (tmp_path / "MNE-eegbci-data").mkdir()
    with pytest.raises(DataError, match="not a synthetic set"):
        write_synthetic_mi(tmp_path, SyntheticMIConfig(subjects=1, trials_per_run=2))
    with pytest.raises(ConfigError, match="C3"):
        SyntheticMIConfig(channels=("Cz", "C4"))


def _gdf_subject(folder, subject, rng, sfreq=250.0, n_trials=12, session="T", cue_codes=(769, 770)):
    """A BCI IV-2a-like GDF: 22 EEG + 3 EOG channels, class cues every 6 s, right-hand ERD at C3."""
    names = list(CHANNELS) + list(EOG)
    n = int((n_trials * 6 + 4) * sfreq)
    t = np.arange(n) / sfreq
    data = rng.standard_normal((len(names), n)) * 5.0
    mu = 10 * np.sin(2 * np.pi * 10 * t)
    c3, c4 = names.index("EEG-C3"), names.index("EEG-C4")
    events, labels = [], []
    env = np.ones((2, n))
    for i in range(n_trials):
        onset = int((2 + 6 * i) * sfreq)
        code = cue_codes[i % len(cue_codes)]
        events += [(onset - int(2 * sfreq), 768), (onset, code)]
        labels.append(code)
        if code in (769, 770):  # 769 left hand -> C4 drops; 770 right hand -> C3 drops
            env[0 if code == 770 else 1, onset : onset + int(4 * sfreq)] = 0.3
    data[c3] += mu * env[0]
    data[c4] += mu * env[1]
    return write_gdf(folder / f"A{subject:02d}{session}.gdf", data, sfreq, names, events), labels


def test_gdf_reader_and_epochs(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "BCI-IV-2a"
    folder.mkdir()
    for s in (1, 2):
        _gdf_subject(folder, s, rng)
    assert [f.name for f in bci_iv_2a_files(tmp_path)] == ["A01T.gdf", "A02T.gdf"]
    raw = read_gdf(folder / "A01T.gdf")
    assert "C3" in raw.ch_names and "FC3" in raw.ch_names and raw.info["sfreq"] == 250.0
    assert raw.get_channel_types(picks=["EOG-left"]) == ["eog"]
    assert set(raw.annotations.description) == {"768", "769", "770"}
    trials = load_trials("bci_iv_2a", path=tmp_path)
    assert trials.x.shape == (24, 22, 160) and sorted(set(trials.y.tolist())) == [0, 1]
    mu = band_power_features(trials.x, trials.sfreq, bands=((8, 12),))
    lateral = mu[:, trials.ch_names.index("C3")] - mu[:, trials.ch_names.index("C4")]
    assert lateral[trials.y == 1].mean() < lateral[trials.y == 0].mean() - 1.0  # 770 = right hand: C3 ERD
    four = load_bci_iv_2a(tmp_path, classes=4)
    assert len(four) == 2


def test_gdf_damage_and_missing_cues(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    good, _ = _gdf_subject(tmp_path, 1, rng)
    data = good.read_bytes()
    cut = tmp_path / "A02T.gdf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=f"{cut}.*truncated"):
        read_gdf(cut)
    junk = tmp_path / "A03T.gdf"
    junk.write_bytes(os.urandom(1000))
    with pytest.raises(DataError, match=str(junk)):
        read_gdf(junk)
    ev = tmp_path / "eval"
    ev.mkdir()
    _gdf_subject(ev, 1, rng, session="T", cue_codes=(783,))  # evaluation-style: cue of unknown class
    with pytest.raises(DataError, match="783"):
        load_bci_iv_2a(ev)
    monkeypatch.setenv("EDGEKD_DATA", str(tmp_path / "none"))
    with pytest.raises(DataError, match=r"none.*BCI-IV-2a.*bbci"):
        bci_iv_2a_files()


def test_quantizer_levels():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 3))
    q = Quantizer(8).fit(x)
    lv = q.transform(x)
    assert lv.dtype == np.uint8 and lv.min() == 0 and lv.max() == 7
    assert (np.bincount(lv[:, 0], minlength=8) > 40).all()  # quantile bins: levels used evenly
    order = np.argsort(x[:, 1])
    assert (np.diff(lv[order, 1].astype(int)) >= 0).all()  # monotone in the feature
    with pytest.raises(DataError, match="expected"):
        q.transform(x[:, :2])
