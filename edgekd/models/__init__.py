"""Models built only from ops every export target supports:
conv2d, depthwise conv2d, linear, relu/relu6, max/avg pooling, add, flatten.
"""
from .registry import ModelConfig, build_model, model_names, register_model
from . import cnn, eegnet, mlp  # noqa: F401  (register the built-in models)

__all__ = ["ModelConfig", "build_model", "model_names", "register_model"]
