"""Regression tables that ship in packages: Auto-MPG, Boston housing (mlxtend), diabetes (scikit-learn).

``load_tabular(name, seed=...)`` returns a random train/val/test split (by ``seed``) with the
features standardised and the target centred using the TRAIN part's statistics only, so no
information from validation or test leaks into the fit. Nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError, invalid_value


@dataclass(frozen=True)
class TabularSplits:
    x_train: np.ndarray  # float64 (n, d), standardised with train mean/std
    y_train: np.ndarray  # float64 (n,), centred with the train mean
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str
    feature_names: tuple
    y_offset: float  # train mean of the raw target (add it back to get raw predictions)
    y_scale: float  # raw target std over the whole table (for reading MSEs in context)

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]


def _autompg():
    from mlxtend.data import autompg_data

    x, y = autompg_data()  # 392 cars, 8 columns; the last (car name) is all NaN in mlxtend
    x = np.asarray(x, dtype=np.float64)[:, :7]
    names = ["cylinders", "displacement", "horsepower", "weight", "acceleration", "model_year"]
    origin = x[:, 6]
    # origin is categorical (1 USA, 2 Europe, 3 Japan): one-hot, dropping USA as the reference
    onehot = np.stack([(origin == 2).astype(float), (origin == 3).astype(float)], axis=1)
    return np.concatenate([x[:, :6], onehot], axis=1), np.asarray(y, float), names + ["origin_europe", "origin_japan"]


def _boston():
    from mlxtend.data import boston_housing_data

    x, y = boston_housing_data()  # 506 x 13
    names = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]
    return np.asarray(x, float), np.asarray(y, float), names


def _diabetes():
    from sklearn.datasets import load_diabetes

    d = load_diabetes()  # 442 x 10
    return np.asarray(d.data, float), np.asarray(d.target, float), list(d.feature_names)


TABLES = {"autompg": _autompg, "boston": _boston, "diabetes": _diabetes}


def load_table(name: str):
    """Raw ``(x, y, feature_names)`` of a shipped regression table."""
    if name not in TABLES:
        raise DataError(invalid_value("dataset", list(TABLES), name))
    x, y, names = TABLES[name]()
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise DataError(f"{name}: expected a 2-D table with one target per row, got x {x.shape}, y {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError(f"{name}: table contains NaN or Inf values")
    return x, y, tuple(names)


def standardise(x_train, *others):
    """Centre and scale columns with the train mean/std (constant columns keep scale 1)."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple((a - mean) / std for a in (x_train, *others))


def split_table(x, y, *, seed=0, val_frac=0.2, test_frac=0.2, name="table", feature_names=()) -> TabularSplits:
    """Random train/val/test split by ``seed``; standardisation fitted on train only."""
    n = len(y)
    if not (0 < val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise DataError(f"{name}: val_frac and test_frac must be in (0, 1) with a sum below 1, "
                        f"got {val_frac} and {test_frac}")
    n_test, n_val = int(round(test_frac * n)), int(round(val_frac * n))
    if n - n_test - n_val < 2 or n_val < 2 or n_test < 1:
        raise DataError(f"{name}: {n} rows are too few for a train/val/test split")
    perm = np.random.default_rng(seed).permutation(n)
    test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    x_tr, x_va, x_te = standardise(x[train], x[val], x[test])
    offset = float(y[train].mean())
    return TabularSplits(x_tr, y[train] - offset, x_va, y[val] - offset, x_te, y[test] - offset,
                         name=name, feature_names=tuple(feature_names), y_offset=offset, y_scale=float(y.std()))


def load_tabular(name: str, *, seed: int = 0, val_frac=0.2, test_frac=0.2) -> TabularSplits:
    """``autompg`` | ``boston`` | ``diabetes`` split by ``seed`` (train-only standardisation)."""
    x, y, names = load_table(name)
    return split_table(x, y, seed=seed, val_frac=val_frac, test_frac=test_frac, name=name, feature_names=names)
