"""A synthetic motor-imagery set written as real EDF files in the EEGMMI layout.

No EEG recording can be downloaded here, so this stands in for PhysioNet EEGMMI runs 4/8/12:
the same file names, channel labels (``C3..``), sampling rate and ``T0``/``T1``/``T2``
annotations, read back by exactly the code that reads the real files.

Signal model per subject (physiology after Pfurtscheller & Lopes da Silva 1999):
- background EEG with a 1/f^beta spectrum per channel, spatially smeared by a Gaussian kernel
  over the standard_1005 electrode positions (volume conduction);
- two motor-cortex generators near C3 and C4, each a mu (subject's peak in 8-12 Hz) plus a beta
  (13-30 Hz) rhythm, projected to the scalp with a Gaussian spatial spread;
- imagery of the right hand desynchronizes (ERD) the contralateral, left-hemisphere generator
  (C3), the left hand the right-hemisphere one (C4); the ERD ramps in over ~0.5 s after the cue
  and its depth varies per subject (some subjects barely modulate) and per trial;
- sensor noise, per-channel gains and a little line noise.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...config import Config, register
from ...errors import ConfigError, DataError
from ...io import atomic_dir
from ...log import logger, set_log_level
from .eegbci import EEGBCI_RUNS, SUBFOLDER
from .paths import standard_montage_name

MOTOR_CHANNELS = ("FC5", "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "C5", "C3", "C1", "Cz", "C2", "C4",
                  "C6", "CP3", "CP4")
MARKER = "SYNTHETIC.json"


@register("synthetic_mi")
@dataclass
class SyntheticMIConfig(Config):
    subjects: int = 10
    trials_per_run: int = 20  # cues per run (left/right balanced); 3 runs per subject
    runs: tuple[int, ...] = EEGBCI_RUNS
    sfreq: float = 160.0  # EEGMMI's rate
    channels: tuple[str, ...] = MOTOR_CHANNELS
    cue_s: float = 4.0  # imagery period after each cue (EEGMMI: ~4.1 s)
    rest_s: float = 2.0  # rest between cues (jittered +-0.5 s)
    erd_depth: float = 0.6  # mean fractional drop of contralateral mu power during imagery
    snr: float = 1.0  # rhythm amplitude relative to the background
    seed: int = 0

    def validate(self):
        if not 1 <= self.subjects <= 109:
            raise ConfigError(f"SyntheticMIConfig.subjects: must be in 1..109, got {self.subjects}")
        if self.trials_per_run < 2:
            raise ConfigError(f"SyntheticMIConfig.trials_per_run: must be >= 2, got {self.trials_per_run}")
        if self.sfreq < 64:
            raise ConfigError(f"SyntheticMIConfig.sfreq: must be >= 64 Hz (beta band up to 30 Hz), got {self.sfreq}")
        for ch in ("C3", "C4"):
            if ch not in self.channels:
                raise ConfigError(f"SyntheticMIConfig.channels: must include {ch} (motor cortex)")
        if not 0.0 <= self.erd_depth < 1.0:
            raise ConfigError(f"SyntheticMIConfig.erd_depth: must be in [0, 1), got {self.erd_depth}")
        if self.snr <= 0:
            raise ConfigError(f"SyntheticMIConfig.snr: must be > 0, got {self.snr}")


def edf_label(name: str) -> str:
    """EEGMMI's channel label style: 'FC5' -> 'Fc5.', 'C3' -> 'C3..' (mne's standardize undoes it)."""
    return (name[0].upper() + name[1:].lower()).ljust(4, ".")


def pink_noise(rng, n_channels, n_times, sfreq, exponent=1.0):
    """Gaussian noise with power ~ 1/f^exponent (flat below 1 Hz), unit std per channel."""
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    shape = 1.0 / np.maximum(freqs, 1.0) ** (exponent / 2.0)
    spec = (rng.standard_normal((n_channels, len(freqs))) + 1j * rng.standard_normal((n_channels, len(freqs))))
    x = np.fft.irfft(spec * shape, n=n_times, axis=-1)
    return x / x.std(axis=-1, keepdims=True)


def narrowband(rng, n_times, sfreq, center, width):
    """A rhythm: white noise shaped by a Gaussian spectral bump at ``center`` Hz, unit std."""
    freqs = np.fft.rfftfreq(n_times, 1.0 / sfreq)
    shape = np.exp(-0.5 * ((freqs - center) / width) ** 2)
    spec = rng.standard_normal(len(freqs)) + 1j * rng.standard_normal(len(freqs))
    x = np.fft.irfft(spec * shape, n=n_times)
    return x / x.std()


def spatial_weights(positions, center, sigma=0.03):
    """Gaussian fall-off of a generator's field with scalp distance (metres)."""
    d2 = ((positions - center) ** 2).sum(axis=-1)
    return np.exp(-0.5 * d2 / sigma**2)


def _positions(channels):
    import mne

    montage = mne.channels.make_standard_montage(standard_montage_name())
    pos = montage.get_positions()["ch_pos"]
    lower = {k.lower(): v for k, v in pos.items()}
    missing = [c for c in channels if c.lower() not in lower]
    if missing:
        raise ConfigError(f"SyntheticMIConfig.channels: not in the standard_1005 montage: {missing}")
    return np.array([lower[c.lower()] for c in channels])


def _subject_params(rng, cfg):
    return {
        "mu_freq": rng.uniform(9.0, 12.0),
        "beta_freq": rng.uniform(16.0, 26.0),
        "mu_amp": cfg.snr * rng.uniform(0.7, 1.3),
        "beta_amp": cfg.snr * rng.uniform(0.3, 0.6),
        "erd": float(np.clip(cfg.erd_depth * rng.uniform(0.4, 1.5), 0.05, 0.9)),  # responders vary
        "exponent": rng.uniform(0.8, 1.6),
        "noise": rng.uniform(0.2, 0.5),
        "gain": rng.uniform(0.8, 1.2, size=len(cfg.channels)),
        "shift": rng.normal(0.0, 0.006, size=(2, 3)),  # generator positions differ per head
    }


def simulate_run(cfg: SyntheticMIConfig, rng, params, positions, run_index=0):
    """One run: (data in volts (n_channels, n_times), annotations as (onset, duration, label) lists)."""
    sf = cfg.sfreq
    labels = np.array([0, 1] * (cfg.trials_per_run // 2) + [0] * (cfg.trials_per_run % 2))
    rng.shuffle(labels)
    onsets, t = [], 1.0
    for _ in labels:
        onsets.append(t)
        t += cfg.cue_s + cfg.rest_s + rng.uniform(-0.5, 0.5)
    n_times = int(round(np.ceil(t + 1.0) * sf))  # whole seconds: EDF records of 1 s, no padding
    times = np.arange(n_times) / sf

    # Background: 1/f noise smeared over neighbouring electrodes.
    d2 = ((positions[:, None] - positions[None]) ** 2).sum(-1)
    smear = np.exp(-0.5 * d2 / 0.025**2)
    smear /= smear.sum(axis=1, keepdims=True)
    background = smear @ pink_noise(rng, len(positions), n_times, sf, params["exponent"])
    background /= background.std(axis=-1, keepdims=True)

    # Motor generators: index 0 = left hemisphere (near C3), 1 = right hemisphere (near C4).
    names = [c.lower() for c in cfg.channels]
    centers = [positions[names.index("c3")] + params["shift"][0], positions[names.index("c4")] + params["shift"][1]]
    envelopes = np.ones((2, n_times))
    ramp_in = 0.5
    for onset, label in zip(onsets, labels):
        depth = np.clip(params["erd"] * rng.uniform(0.2, 1.4), 0.0, 0.95)  # trial-to-trial variability
        rel = times - onset - rng.uniform(0.1, 0.4)
        shape = np.clip(rel / ramp_in, 0, 1) * np.clip((cfg.cue_s - rel) / ramp_in, 0, 1)
        contra = 1 if label == 0 else 0  # left hand -> right hemisphere (C4), right hand -> C3
        envelopes[contra] *= 1.0 - depth * shape
        envelopes[1 - contra] *= 1.0 + 0.1 * depth * shape  # slight ipsilateral ERS
    signal = np.zeros((len(positions), n_times))
    for g in range(2):
        rhythm = (params["mu_amp"] * narrowband(rng, n_times, sf, params["mu_freq"], 1.0)
                  + params["beta_amp"] * narrowband(rng, n_times, sf, params["beta_freq"], 2.5))
        slow = 1.0 + 0.3 * narrowband(rng, n_times, sf, 0.2, 0.1)  # spontaneous waxing and waning
        signal += np.outer(spatial_weights(positions, centers[g]), rhythm * envelopes[g] * np.clip(slow, 0.2, None))
    # A central rhythm that does not depend on the class (a distractor).
    signal += np.outer(spatial_weights(positions, positions[names.index("cz")], 0.04),
                       0.5 * params["mu_amp"] * narrowband(rng, n_times, sf, params["mu_freq"] - 1.0, 1.0))
    line = 0.05 * np.sin(2 * np.pi * 60.0 * times)
    noise = params["noise"] * rng.standard_normal((len(positions), n_times))
    data = params["gain"][:, None] * (background + signal + noise) + line
    data *= 10e-6  # ~10 microvolts

    annotations = [(0.0, onsets[0], "T0")]
    for i, (onset, label) in enumerate(zip(onsets, labels)):
        annotations.append((onset, cfg.cue_s, "T1" if label == 0 else "T2"))
        end = onsets[i + 1] if i + 1 < len(onsets) else n_times / sf
        annotations.append((onset + cfg.cue_s, max(end - onset - cfg.cue_s, 0.0), "T0"))
    return data, annotations


def to_raw(data, annotations, cfg: SyntheticMIConfig):
    import mne

    info = mne.create_info([edf_label(c) for c in cfg.channels], cfg.sfreq, ch_types="eeg")
    raw = mne.io.RawArray(data, info, verbose="error")
    onset, duration, desc = zip(*annotations)
    raw.set_annotations(mne.Annotations(onset, duration, desc))
    return raw


def write_synthetic_mi(out, config: SyntheticMIConfig | None = None, verbose=None) -> Path:
    """Write ``config.subjects`` x 3 EDF runs under ``out`` in the EEGMMI layout; returns ``out``.

    The folder ``out/MNE-eegbci-data`` is written atomically and marked synthetic; an existing
    folder there that is not marked synthetic (real data) is never overwritten.
    """
    import mne

    set_log_level(verbose)
    cfg = config or SyntheticMIConfig()
    out = Path(out).expanduser()
    top = out / SUBFOLDER.parts[0]
    if top.exists() and not (top / MARKER).is_file():
        raise DataError(f"{top} exists and is not a synthetic set (no {MARKER}); refusing to overwrite it")
    positions = _positions(cfg.channels)
    master = np.random.default_rng(cfg.seed)
    with atomic_dir(top) as tmp:
        folder = tmp.joinpath(*SUBFOLDER.parts[1:])
        for subject in range(1, cfg.subjects + 1):
            rng = np.random.default_rng(master.integers(2**63))
            params = _subject_params(rng, cfg)
            sdir = folder / f"S{subject:03d}"
            sdir.mkdir(parents=True)
            for k, run in enumerate(cfg.runs):
                data, ann = simulate_run(cfg, rng, params, positions, k)
                raw = to_raw(data, ann, cfg)
                mne.export.export_raw(sdir / f"S{subject:03d}R{run:02d}.edf", raw, fmt="edf", verbose="error")
            logger.info(f"subject {subject}: erd {params['erd']:.2f}, mu {params['mu_freq']:.1f} Hz")
        (tmp / MARKER).write_text(json.dumps({"what": "synthetic motor imagery (edgekd)", "config": cfg.to_dict()},
                                             indent=2) + "\n")
    return out


def is_synthetic(path) -> bool:
    return (Path(path).expanduser() / SUBFOLDER.parts[0] / MARKER).is_file()
