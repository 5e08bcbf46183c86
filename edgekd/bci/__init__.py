"""Brain-computer interface experiments: baselines (CSP+LDA, large-D HDC) and the KD ablation."""
from .baselines import CSPLDA, RandomProjectionHDC
from .ablation import ARMS, AblationConfig, run_ablation

__all__ = ["CSPLDA", "RandomProjectionHDC", "ARMS", "AblationConfig", "run_ablation"]
