"""Name -> builder registry so a checkpoint's ``model_config`` rebuilds the exact model."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config import Config, register
from ..errors import ConfigError, invalid_value

_BUILDERS = {}


def register_model(name):
    def wrap(fn):
        _BUILDERS[name] = fn
        return fn

    return wrap


def model_names():
    return sorted(_BUILDERS)


@register("model")
@dataclass
class ModelConfig(Config):
    name: str
    input_shape: tuple[int, ...] = (1, 28, 28)  # (C, H, W) for images, (F,) for features
    num_classes: int = 10
    options: dict = field(default_factory=dict)  # builder keyword arguments (widths, ...)

    def validate(self):
        if self.name not in _BUILDERS:
            raise ConfigError("ModelConfig.name: " + invalid_value("name", model_names(), self.name))
        if self.num_classes < 2:
            raise ConfigError(f"ModelConfig.num_classes: needs at least 2 classes, got {self.num_classes}")
        if any(d <= 0 for d in self.input_shape):
            raise ConfigError(f"ModelConfig.input_shape: dimensions must be positive, got {self.input_shape}")


def build_model(config: ModelConfig):
    try:
        return _BUILDERS[config.name](config.input_shape, config.num_classes, **config.options)
    except TypeError as err:
        raise ConfigError(f"ModelConfig.options for {config.name!r}: {err}") from None
