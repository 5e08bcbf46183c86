"""From recordings to trials and features.

Raw -> band-pass 8-30 Hz (mu and beta) -> epochs in a window after each cue -> resample ->
per-trial standardization -> (for the LDC student) log band power per channel and band,
optionally CSP log-variance features, quantized into a few levels per feature.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import DataError
from ...log import logger

BANDS = ((8.0, 12.0), (13.0, 20.0), (20.0, 30.0))  # mu, low beta, high beta


@dataclass
class EEGTrials:
    x: np.ndarray  # float32 (N, channels, times), standardized per trial
    y: np.ndarray  # int64 (N,)
    subject: np.ndarray  # int64 (N,)
    sfreq: float
    ch_names: list
    classes: tuple

    def __len__(self):
        return len(self.y)


def standardize_trials(x):
    """Per-trial standardization: remove each channel's mean, divide by the trial's overall std.

    One scale per trial (not per channel) keeps the relative power between channels, which is
    where motor imagery lives (contralateral mu/beta desynchronization).
    """
    x = x - x.mean(axis=-1, keepdims=True)
    return x / np.maximum(x.std(axis=(-2, -1), keepdims=True), 1e-12)


def epochs_from_raws(raws, event_id: dict, classes: tuple, *, tmin=0.5, tmax=2.5, l_freq=8.0, h_freq=30.0,
                     sfreq=80.0, channels=None, verbose=None) -> EEGTrials:
    """Epoch ``[(subject, Raw)]`` around the cues named in ``event_id`` (description -> class index)."""
    import mne

    xs, ys, subs = [], [], []
    names = None
    n_keep = int(round((tmax - tmin) * sfreq))
    for subject, raw in raws:
        fname = raw.filenames[0] if raw.filenames and raw.filenames[0] else f"subject {subject}"
        raw = raw.copy().pick("eeg")
        if channels is not None:
            missing = [c for c in channels if c not in raw.ch_names]
            if missing:
                raise DataError(f"{fname}: channels {missing} not found; has {raw.ch_names}")
            raw.pick(list(channels))
        if names is None:
            names = list(raw.ch_names)
        elif list(raw.ch_names) != names:
            raise DataError(f"{fname}: channels {raw.ch_names} differ from the first file's {names}")
        if raw.info["sfreq"] / 2 <= h_freq:
            raise DataError(f"{fname}: sampling rate {raw.info['sfreq']} Hz is too low for a {h_freq} Hz band edge")
        raw.filter(l_freq, h_freq, fir_design="firwin", verbose="error")
        present = {d: i + 1 for i, d in enumerate(event_id) if d in set(raw.annotations.description)}
        if not present:
            raise DataError(f"{fname}: none of the cue annotations {sorted(event_id)} found")
        events, _ = mne.events_from_annotations(raw, event_id=present, verbose="error")
        epochs = mne.Epochs(raw, events, present, tmin=tmin, tmax=tmax, baseline=None, preload=True,
                            reject_by_annotation=False, on_missing="ignore", verbose="error")
        if len(epochs) == 0:
            raise DataError(f"{fname}: no complete epoch in [{tmin}, {tmax}] s after the cues")
        if abs(epochs.info["sfreq"] - sfreq) > 1e-6:
            epochs.resample(sfreq, verbose="error")
        data = epochs.get_data(copy=False)
        if data.shape[-1] < n_keep:
            raise DataError(f"{fname}: epochs have {data.shape[-1]} samples, expected {n_keep}")
        code_to_class = {code: event_id[d] for d, code in present.items()}
        xs.append(data[..., :n_keep])
        ys.append(np.array([code_to_class[c] for c in epochs.events[:, 2]]))
        subs.append(np.full(len(epochs), subject))
    if not xs:
        raise DataError("no recordings to epoch")
    x = standardize_trials(np.concatenate(xs)).astype(np.float32)
    y = np.concatenate(ys).astype(np.int64)
    logger.info(f"{len(y)} trials, {x.shape[1]} channels, {x.shape[2]} samples at {sfreq} Hz")
    return EEGTrials(x, y, np.concatenate(subs).astype(np.int64), float(sfreq), names, tuple(classes))


def band_power_features(x, sfreq, bands=BANDS):
    """log mean power per channel and band (Welch), features ordered channel-major: (N, C * B)."""
    from scipy.signal import welch

    freqs, psd = welch(x, fs=sfreq, nperseg=min(x.shape[-1], int(sfreq)), axis=-1)
    out = []
    for lo, hi in bands:
        sel = (freqs >= lo) & (freqs <= hi)
        if not sel.any():
            raise DataError(f"band {lo}-{hi} Hz has no frequency bin at sfreq {sfreq}")
        out.append(np.log(psd[..., sel].mean(axis=-1) + 1e-12))
    return np.stack(out, axis=-1).reshape(len(x), -1).astype(np.float32)


def fit_csp(x, y, n_components=4):
    """MNE's CSP (Koles 1991; Ramoser et al. 2000) fitted on training epochs, log-variance output."""
    import mne
    from mne.decoding import CSP

    with mne.utils.use_log_level("error"):
        return CSP(n_components=n_components, log=True, reg="ledoit_wolf").fit(x.astype(np.float64), y)


def features(x, sfreq, *, csp=None, bands=BANDS):
    """The LDC student's inputs: band powers, plus CSP log-variances when a fitted CSP is given."""
    f = band_power_features(x, sfreq, bands)
    if csp is not None:
        f = np.concatenate([f, csp.transform(x.astype(np.float64)).astype(np.float32)], axis=1)
    return f


class Quantizer:
    """Per-feature quantile bins learned on training data: float features -> uint8 levels 0..L-1."""

    def __init__(self, num_levels=8):
        if not 2 <= int(num_levels) <= 256:
            raise ValueError(f"num_levels must be in 2..256, got {num_levels}")
        self.num_levels = int(num_levels)

    def fit(self, X):
        X = np.asarray(X, dtype=np.float64)
        q = np.linspace(0, 1, self.num_levels + 1)[1:-1]
        self.edges_ = np.quantile(X, q, axis=0).T.copy()  # (F, L-1), nondecreasing per feature
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise DataError(f"Quantizer: expected (N, {self.n_features_in_}) features, got {X.shape}")
        return (X[:, :, None] > self.edges_[None]).sum(-1).astype(np.uint8)

    def fit_transform(self, X):
        return self.fit(X).transform(X)


def load_trials(dataset="eegbci", path=None, subjects=None, verbose=None, **epoch_kw) -> EEGTrials:
    """Trials of a local dataset: ``eegbci`` (real or synthetic EEGMMI layout) or ``bci_iv_2a``."""
    from ...errors import invalid_value

    if dataset == "eegbci":
        from .eegbci import EEGBCI_CLASSES, EEGBCI_EVENTS, load_eegbci

        raws = load_eegbci(subjects, path=path, verbose=verbose)
        return epochs_from_raws(raws, EEGBCI_EVENTS, EEGBCI_CLASSES, verbose=verbose, **epoch_kw)
    if dataset == "bci_iv_2a":
        from .bci_iv_2a import BCI_IV_2A_CLASSES, BCI_IV_2A_EVENTS, load_bci_iv_2a

        raws = load_bci_iv_2a(path=path, subjects=subjects, verbose=verbose)
        return epochs_from_raws(raws, BCI_IV_2A_EVENTS, BCI_IV_2A_CLASSES, verbose=verbose, **epoch_kw)
    raise DataError(invalid_value("dataset", ["eegbci", "bci_iv_2a"], dataset))
