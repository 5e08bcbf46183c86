"""EEG motor-imagery data: MNE-style path resolution, readers for PhysioNet EEGMMI (EDF) and BCI
Competition IV-2a (GDF), a synthetic motor-imagery generator that writes real EDF files, and the
preprocessing that turns recordings into epochs and quantized features.

Nothing here downloads: every loader reads local files and names the folder it looked in.
"""
from .paths import data_path
from .eegbci import EEGBCI_RUNS, eegbci_files, load_eegbci
from .bci_iv_2a import bci_iv_2a_files, load_bci_iv_2a
from .synthetic import SyntheticMIConfig, write_synthetic_mi
from .preprocess import EEGTrials, Quantizer, band_power_features, epochs_from_raws, features, fit_csp, load_trials

__all__ = [
    "data_path", "EEGBCI_RUNS", "eegbci_files", "load_eegbci", "bci_iv_2a_files", "load_bci_iv_2a",
    "SyntheticMIConfig", "write_synthetic_mi", "EEGTrials", "Quantizer", "band_power_features",
    "epochs_from_raws", "features", "fit_csp", "load_trials",
]
