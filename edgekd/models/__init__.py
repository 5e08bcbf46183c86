"""Models by name (``build_model(ModelConfig(name, ...))``).

The classifiers (``teacher_cnn``, ``student_cnn``, ``student_mlp``, ``eegnet``) use only ops every
export target supports: conv2d, depthwise conv2d, linear, relu/relu6, max/avg pooling, add,
flatten (BatchNorm folds into the conv before it). ``unet`` (the flow teacher) also uses
GroupNorm and SiLU, so it exports to ONNX and float TFLite only. ``zoo`` holds the MLPerf Tiny
reference models and a MobileNetV2 written in everyday PyTorch idioms (``zoo.ZOO``, ``zoo.zoo_config``).
"""
from .registry import ModelConfig, build_model, model_names, register_model
from . import cnn, eegnet, mlp, mlp_generator, unet, zoo  # noqa: F401  (register the built-in models)

__all__ = ["ModelConfig", "build_model", "model_names", "register_model"]
