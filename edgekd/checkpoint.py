"""Checkpoints: weights plus the configs that made them, written atomically, loaded safely.

Loading uses ``torch.load(weights_only=True)``: tensors, numbers, strings, lists and dicts only.
A checkpoint holding pickled objects is refused, never executed.
"""
from __future__ import annotations

import hashlib
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
    payload["sha256"] = _content_digest(payload)  # torch's zip reader does not notice flipped bytes
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return Path(path)


def load_checkpoint(path) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`; clear errors for bad files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip; anything else is damaged or foreign
        size = path.stat().st_size
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt or truncated: "
                              f"{'empty file' if size == 0 else f'{size} bytes without a complete zip archive'})")
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
    if "sha256" in payload and payload["sha256"] != _content_digest(payload):
        raise CheckpointError(f"{path}: corrupt checkpoint: its contents do not match the checksum written with them")
    return payload


def load_trained_model(path):
    """``(model in eval mode, ModelConfig)`` rebuilt from an edgekd checkpoint's config and weights."""
    from .errors import ConfigError
    from .models import ModelConfig, build_model

    state = load_checkpoint(path)
    if not state.get("model_config"):
        raise ConfigError(f"{path}: no model_config stored in the checkpoint; cannot rebuild the model")
    config = ModelConfig.from_dict(state["model_config"], where=f"{path}: model_config")
    model = build_model(config)
    model.load_state_dict(state["model"])
    return model.eval(), config


def _content_digest(payload) -> str:
    """SHA-256 over every tensor's bytes and every other value, in a fixed order (the digest itself excluded)."""
    h = hashlib.sha256()

    def feed(value):
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(value, dict):
            h.update(b"{")
            for k in sorted(value, key=repr):
                if k != "sha256" or value is not payload:
                    feed(k), feed(value[k])
            h.update(b"}")
        elif isinstance(value, (list, tuple)):
            h.update(b"[")
            for v in value:
                feed(v)
            h.update(b"]")
        else:
            h.update(repr(value).encode())

    feed(payload)
    return h.hexdigest()


def _unsupported_global(message: str) -> str:
    for line in message.splitlines():
        if "Unsupported global" in line:
            return line.strip()
    return ""
