"""Shared fixtures: one small synthetic motor-imagery set (real EDF files) per test session."""
import pytest
import torch

from edgekd.data.eeg import SyntheticMIConfig, write_synthetic_mi

torch.set_num_threads(1)

# Small and quick: 3 subjects x 3 runs x 20 cues at 100 Hz, a clear ERD (tests check the code,
# not how hard the task is; the ablation uses the default, harder set).
SMALL = SyntheticMIConfig(subjects=3, trials_per_run=20, sfreq=100.0, erd_depth=0.7, snr=1.5, seed=1)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    return write_synthetic_mi(tmp_path_factory.mktemp("eeg") / "data", SMALL)


@pytest.fixture(scope="session")
def trials(synthetic_root):
    from edgekd.data.eeg import load_trials

    return load_trials("eegbci", path=synthetic_root)


@pytest.fixture(scope="session")
def levels_split(trials):
    """Quantized band-power features with a fixed stratified train/test split."""
    from sklearn.model_selection import train_test_split

    from edgekd.data.eeg import Quantizer, features

    import numpy as np

    feats = features(trials.x, trials.sfreq)
    tr, te = train_test_split(np.arange(len(trials)), test_size=0.3, random_state=0, stratify=trials.y)
    quant = Quantizer(8).fit(feats[tr])
    lv = quant.transform(feats)
    return lv[tr], trials.y[tr], lv[te], trials.y[te]
