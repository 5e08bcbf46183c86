"""edgekd: distill big teachers into tiny quantized students for microcontrollers and phones.

Three stages, three packages: ``edgekd`` (train), ``firmware_export`` (export), ``benchmarks``
(measure). Importing ``edgekd`` stays lean: no TensorFlow, JAX or LiteRT.
"""
__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_checkpoint
from .config import Config, load_config
from .errors import CheckpointError, ConfigError, DataError, EdgeKDError
from .log import set_log_level

__all__ = [
    "__version__", "load_checkpoint", "save_checkpoint", "Config", "load_config",
    "CheckpointError", "ConfigError", "DataError", "EdgeKDError", "set_log_level",
]
