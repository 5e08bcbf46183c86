"""Regression tables that ship in packages: Auto-MPG, Boston housing (mlxtend), diabetes
(scikit-learn), and the larger Fair affairs (6,366 rows) and RAND health insurance (20,190 rows)
tables from inside the statsmodels wheel.

``load_tabular(name, seed=...)`` returns a random train/val/test split (by ``seed``) with the
features standardised and the target centred using the TRAIN part's statistics only, so no
information from validation or test leaks into the fit. Tables with repeated measurements of the
same unit (randhie: up to 5 study years per person) are split by unit, so one person's rows never
sit on both sides of a split. Nothing is downloaded (statsmodels reads CSVs inside its wheel).
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
    groups_train: np.ndarray | None = None  # unit id per train row (tables split by unit), for grouped CV folds
    groups_val: np.ndarray | None = None

    @property
    def num_features(self) -> int:
        return self.x_train.shape[1]


@dataclass(frozen=True)
class Table:
    """A raw regression table: features, target, and (optional) the unit each row belongs to."""

    x: np.ndarray  # float64 (n, d)
    y: np.ndarray  # float64 (n,)
    feature_names: tuple
    target: str
    groups: np.ndarray | None = None  # unit id per row; splits keep each unit on one side


def _autompg():
    from mlxtend.data import autompg_data

    x, y = autompg_data()  # 392 cars, 8 columns; the last (car name) is all NaN in mlxtend
    x = np.asarray(x, dtype=np.float64)[:, :7]
    names = ["cylinders", "displacement", "horsepower", "weight", "acceleration", "model_year"]
    origin = x[:, 6]
    # origin is categorical (1 USA, 2 Europe, 3 Japan): one-hot, dropping USA as the reference
    onehot = np.stack([(origin == 2).astype(float), (origin == 3).astype(float)], axis=1)
    return Table(np.concatenate([x[:, :6], onehot], axis=1), np.asarray(y, float),
                 tuple(names + ["origin_europe", "origin_japan"]), "mpg")


def _boston():
    from mlxtend.data import boston_housing_data

    x, y = boston_housing_data()  # 506 x 13
    names = ["CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT"]
    return Table(np.asarray(x, float), np.asarray(y, float), tuple(names), "MEDV")


def _diabetes():
    from sklearn.datasets import load_diabetes

    d = load_diabetes()  # 442 x 10
    return Table(np.asarray(d.data, float), np.asarray(d.target, float), tuple(d.feature_names),
                 "disease progression after one year")


def _statsmodels_dataset(name):
    try:
        import importlib

        return importlib.import_module(f"statsmodels.datasets.{name}")
    except ImportError as e:
        raise DataError(f"{name}: needs statsmodels (pip install 'edgekd[tables]'): {e}") from None


def _one_hot(codes, reference):
    """Indicator columns for every level but ``reference`` (the most frequent level, so the
    dropped column is the common case and rare levels do not become near-collinear)."""
    levels = [v for v in np.unique(codes) if v != reference]
    return np.stack([(codes == v).astype(float) for v in levels], axis=1), levels


def _fair():
    """Fair (1978) Redbook survey, 6,366 married women: target ``affairs`` (time spent in affairs,
    statsmodels' endog; 68% zeros, heavy right tail). rate_marriage (1-5), religious (1-4) and
    educ (years) are ordinal and kept as numbers; occupation and occupation_husb are nominal
    codes 1-6, one-hot with the most frequent code as reference (wife 3 white-collar, husband 4
    teacher/skilled)."""
    df = _statsmodels_dataset("fair").load_pandas().data
    numeric = ["rate_marriage", "age", "yrs_married", "children", "religious", "educ"]
    cols, names = [df[numeric].to_numpy(float)], list(numeric)
    for col in ("occupation", "occupation_husb"):
        codes = df[col].to_numpy(float)
        values, counts = np.unique(codes, return_counts=True)
        onehot, levels = _one_hot(codes, values[np.argmax(counts)])
        cols.append(onehot)
        names += [f"{col}_{int(v)}" for v in levels]
    return Table(np.concatenate(cols, axis=1), df["affairs"].to_numpy(float), tuple(names), "affairs")


def _randhie():
    """RAND Health Insurance Experiment (statsmodels subset), 20,190 person-years: target ``mdvis``
    (outpatient visits to a doctor in the year, statsmodels' endog). The 9 features are used as
    shipped (already encoded: log coinsurance, deductible-plan flag, log incentive, fmde, physical
    limitation flag, chronic-disease count, and self-rated health as three indicators with
    'excellent' as reference). The features are baseline values, constant over a person's years,
    so rows are grouped by the person id (``zper`` in the full RAND file shipped next to it in
    ``statsmodels/datasets/randhie/src``; same rows, same order, checked on load)."""
    import os

    import pandas as pd

    module = _statsmodels_dataset("randhie")
    df = module.load_pandas().data
    src = pd.read_csv(os.path.join(os.path.dirname(module.__file__), "src", "randhie.csv"),
                      usecols=["zper", "mdvis", "disea"])
    if len(src) != len(df) or not (np.array_equal(src["mdvis"].to_numpy(), df["mdvis"].to_numpy())
                                   and np.allclose(src["disea"].to_numpy(), df["disea"].to_numpy())):
        raise DataError("randhie: statsmodels' randhie.csv and src/randhie.csv no longer hold the same rows; "
                        "cannot attach person ids")
    names = [c for c in df.columns if c != "mdvis"]
    return Table(df[names].to_numpy(float), df["mdvis"].to_numpy(float), tuple(names), "mdvis",
                 groups=src["zper"].to_numpy())


TABLES = {"autompg": _autompg, "boston": _boston, "diabetes": _diabetes, "fair": _fair, "randhie": _randhie}


def load_table(name: str) -> Table:
    """The raw ``Table`` (x, y, feature names, target, row groups) of a shipped regression table."""
    if name not in TABLES:
        raise DataError(invalid_value("dataset", list(TABLES), name))
    t = TABLES[name]()
    x, y = t.x, t.y
    if x.ndim != 2 or len(x) != len(y) or len(y) == 0:
        raise DataError(f"{name}: expected a 2-D table with one target per row, got x {x.shape}, y {y.shape}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError(f"{name}: table contains NaN or Inf values")
    if t.groups is not None and len(t.groups) != len(y):
        raise DataError(f"{name}: expected one group id per row, got {len(t.groups)} for {len(y)} rows")
    return t


def standardise(x_train, *others):
    """Centre and scale columns with the train mean/std (constant columns keep scale 1)."""
    mean = x_train.mean(axis=0)
    std = x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return tuple((a - mean) / std for a in (x_train, *others))


def _grouped_order(groups, rng):
    """Rows ordered by a random permutation of their groups (rows of one group stay adjacent)."""
    _, inverse = np.unique(groups, return_inverse=True)
    rank = rng.permutation(inverse.max() + 1)
    return np.argsort(rank[inverse], kind="stable"), rank[inverse]


def split_table(x, y, *, seed=0, val_frac=0.2, test_frac=0.2, name="table", feature_names=(),
                groups=None) -> TabularSplits:
    """Random train/val/test split by ``seed``; standardisation fitted on train only.

    With ``groups`` (one unit id per row) whole units are assigned: units are shuffled and the
    cut points move to the next unit boundary, so the parts hold about the requested fractions.
    """
    n = len(y)
    if not (0 < val_frac < 1 and 0 < test_frac < 1 and val_frac + test_frac < 1):
        raise DataError(f"{name}: val_frac and test_frac must be in (0, 1) with a sum below 1, "
                        f"got {val_frac} and {test_frac}")
    n_test, n_val = int(round(test_frac * n)), int(round(val_frac * n))
    if n - n_test - n_val < 2 or n_val < 2 or n_test < 1:
        raise DataError(f"{name}: {n} rows are too few for a train/val/test split")
    rng = np.random.default_rng(seed)
    if groups is None:
        perm = rng.permutation(n)
    else:
        if len(groups) != n:
            raise DataError(f"{name}: expected one group id per row, got {len(groups)} for {n} rows")
        perm, unit_rank = _grouped_order(np.asarray(groups), rng)
        ranks = unit_rank[perm]  # non-decreasing along perm
        # move each cut to the first row of the next unit so no unit straddles two parts
        n_test = int(np.searchsorted(ranks, ranks[n_test - 1], side="right"))
        n_val = int(np.searchsorted(ranks, ranks[min(n_test + n_val, n) - 1], side="right")) - n_test
        if n - n_test - n_val < 2 or n_val < 2:
            raise DataError(f"{name}: {n} rows in {len(np.unique(groups))} groups are too few for a split")
    test, val, train = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    x_tr, x_va, x_te = standardise(x[train], x[val], x[test])
    offset = float(y[train].mean())
    g = None if groups is None else np.asarray(groups)
    return TabularSplits(x_tr, y[train] - offset, x_va, y[val] - offset, x_te, y[test] - offset,
                         name=name, feature_names=tuple(feature_names), y_offset=offset, y_scale=float(y.std()),
                         groups_train=None if g is None else g[train], groups_val=None if g is None else g[val])


def load_tabular(name: str, *, seed: int = 0, val_frac=0.2, test_frac=0.2) -> TabularSplits:
    """A table of ``TABLES`` split by ``seed`` (train-only standardisation; grouped where the table has groups)."""
    t = load_table(name)
    return split_table(t.x, t.y, seed=seed, val_frac=val_frac, test_frac=test_frac, name=name,
                       feature_names=t.feature_names, groups=t.groups)
