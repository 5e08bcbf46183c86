"""Exceptions that the CLI turns into one-line messages (no traceback unless --verbose)."""


class EdgeKDError(Exception):
    """Base for errors a user can act on: the message names the file/field and what was expected."""


class ConfigError(EdgeKDError, ValueError):
    """A config field has an unknown name, a wrong type or an out-of-range value."""


class DataError(EdgeKDError, ValueError):
    """A dataset is missing, unreadable, empty or not what was expected."""


class CheckpointError(EdgeKDError, ValueError):
    """A checkpoint is missing, truncated, corrupt or holds something other than weights."""


def invalid_value(name, allowed, got):
    """MNE-style message for a bad option."""
    allowed = ", ".join(repr(a) for a in allowed)
    return f"Invalid value for the {name!r} parameter. Allowed values are {allowed}, but got {got!r} instead."
