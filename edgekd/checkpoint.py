"""Checkpoints: weights plus the configs that made them, written atomically, loaded safely.

Loading uses ``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only.
A checkpoint holding pickled objects is refused, never executed.
"""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from .errors import CheckpointError
from .io import atomic_path

FORMAT = "edgekd-checkpoint"
FORMAT_VERSION = 1


def save_checkpoint(path, model_state: dict, *, model_config=None, train_config=None, **extra) -> Path:
    """Write ``{'model': state, 'model_config': ..., 'train_config': ..., **extra}`` atomically.

    Configs are stored as plain dicts (``to_dict()``), so the file says how it was made.
    ``extra`` may hold optimizer state, epoch, RNG states, metrics: anything torch can save
    with plain containers.
    """
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {k: v.detach().cpu() for k, v in model_state.items()},
        "model_config": model_config.to_dict() if hasattr(model_config, "to_dict") else model_config,
        "train_config": train_config.to_dict() if hasattr(train_config, "to_dict") else train_config,
        **extra,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`; clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if "Weights only load failed" in str(err) or "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path}: refused to load: the file holds pickled Python objects, not only weights "
                f"({_unsupported_global(str(err)) or first}). edgekd never unpickles arbitrary objects."
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated: {first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated: {first})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an edgekd checkpoint (missing format marker {FORMAT!r})")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload['format_version']} is newer than this edgekd")
    return payload


def _unsupported_global(message: str) -> str:
    for line in message.splitlines():
        if "Unsupported global" in line:
            return line.strip()
    return ""
