"""Config objects: dataclasses that validate themselves and round-trip through plain dicts.

Every config is registered under a type name, so ``Config.from_dict(d)`` can rebuild it from
what a checkpoint or an exported artifact stored, and refuses unknown keys or wrong types with
a message naming the field.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

from .errors import ConfigError

_REGISTRY: dict[str, type] = {}


def register(name: str, version: int = 1):
    """Class decorator: register a config dataclass under ``name`` with a schema ``version``."""

    def wrap(cls):
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ConfigError(f"config type {name!r} is registered twice")
        cls._type_name = name
        cls._version = version
        _REGISTRY[name] = cls
        return cls

    return wrap


def registered_configs() -> dict[str, type]:
    return dict(_REGISTRY)


def _check_type(value, hint, where):
    """Check ``value`` against a (simple) type hint and convert lists->tuples where asked."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is typing.Any:
        return value
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        options = [a for a in args if a is not type(None)]
        if value is not None and len(options) == 1:  # Optional[X]: X's own message says what is wrong
            return _check_type(value, options[0], where)
        errors = []
        for option in args:
            try:
                return _check_type(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: expected {hint}, got {type(value).__name__} {value!r}")
    if hint is type(None):
        if value is not None:
            raise ConfigError(f"{where}: expected None, got {value!r}")
        return None
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            items = [_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        else:
            item_hint = args[0] if args else typing.Any
            items = [_check_type(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else list(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if origin is typing.Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where}: allowed values are {allowed}, got {value!r}")
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if isinstance(value, dict):
            return hint.from_dict(value, where=where)
        raise ConfigError(f"{where}: expected {hint.__name__} or a mapping, got {type(value).__name__}")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    return value


class Config:
    """Mixin for ``@register``-ed dataclasses. Override ``validate`` to check values."""

    _type_name = "config"
    _version = 1

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            where = f"{type(self).__name__}.{field.name}"
            object.__setattr__(self, field.name, _check_type(value, hints[field.name], where))
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the field when a value is out of range."""

    def to_dict(self) -> dict:
        out = {"type": self._type_name, "version": self._version}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = value.to_dict() if isinstance(value, Config) else _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str | None = None):
        """Rebuild a config; ``cls`` may be ``Config`` itself (dispatch on ``data['type']``)."""
        where = where or cls.__name__
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
        data = dict(data)
        type_name = data.pop("type", getattr(cls, "_type_name", None))
        version = data.pop("version", None)
        if not isinstance(type_name, (str, type(None))):
            raise ConfigError(f"{where}.type: expected a config type name (string), got {type_name!r}")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise ConfigError(f"{where}.version: expected an integer, got {version!r}")
        target = _REGISTRY.get(type_name) if cls is Config else cls
        if target is None:
            raise ConfigError(f"{where}: unknown config type {type_name!r}; known: {sorted(_REGISTRY)}")
        if cls is not Config and type_name not in (None, cls._type_name):
            raise ConfigError(f"{where}: expected config type {cls._type_name!r}, got {type_name!r}")
        if version is not None and version > target._version:
            raise ConfigError(f"{where}: config version {version} is newer than this edgekd ({target._version})")
        names = {f.name for f in dataclasses.fields(target)}
        unknown = sorted(set(data) - names, key=repr)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(names)}")
        missing = [f.name for f in dataclasses.fields(target) if f.name not in data
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ConfigError(f"{where}: missing key(s) {missing}")
        return target(**data)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _plain(value):
    if isinstance(value, Config):  # a config inside a list or tuple (e.g. candidate schedules)
        return value.to_dict()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def load_config(path) -> Config:
    """Read a JSON config file; the error names the file and the bad field."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text (UTF-8) JSON file (byte {err.start}: {err.reason})") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file ({err.strerror or err})") from None
    try:
        return Config.from_dict(data, where=str(path))
    except ConfigError as err:
        message = str(err)
        raise ConfigError(message if message.startswith(str(path)) else f"{path}: {message}") from None
