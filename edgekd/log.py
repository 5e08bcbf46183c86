"""Logging in MNE's style: public functions take ``verbose=None`` and log rather than print."""
import contextlib
import logging

logger = logging.getLogger("edgekd")
if not logger.handlers:
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.WARNING)
    logger.propagate = False


def set_log_level(verbose=None):
    """``verbose``: None leaves the level alone, True/False is INFO/WARNING, or a level name."""
    if verbose is None:
        return logger.level
    if isinstance(verbose, bool):
        level = logging.INFO if verbose else logging.WARNING
    elif isinstance(verbose, str):
        level = getattr(logging, verbose.upper())
    else:
        level = int(verbose)
    logger.setLevel(level)
    return level


def is_verbose():
    return logger.isEnabledFor(logging.INFO)


_forced_progress = 0


@contextlib.contextmanager
def showing_progress():
    """Progress bars on inside the block even without ``verbose``: long work the user did not ask
    for (training a missing checkpoint) is never silent."""
    global _forced_progress
    _forced_progress += 1
    try:
        yield
    finally:
        _forced_progress -= 1


def show_progress():
    return is_verbose() or _forced_progress > 0
