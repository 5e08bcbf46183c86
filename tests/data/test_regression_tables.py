"""The statsmodels regression tables (fair, randhie) and unit-grouped splits."""
import csv
import os
import socket

import numpy as np
import pytest

from edgekd.data.tabular import load_table, load_tabular, split_table

statsmodels = pytest.importorskip("statsmodels", reason="fair/randhie ship inside the statsmodels wheel")


def _raw_csv(module_name, *parts):
    import importlib

    module = importlib.import_module(f"statsmodels.datasets.{module_name}")
    with open(os.path.join(os.path.dirname(module.__file__), *parts), newline="") as fh:
        return list(csv.DictReader(fh))


def test_fair_shape_and_known_rows():
    t = load_table("fair")
    # statsmodels' docstring: "Number of observations: 6366"; 6 numeric + 5 + 5 one-hot columns
    assert t.x.shape == (6366, 16) and t.y.shape == (6366,) and t.target == "affairs"
    # first row of fair.csv: 3,32,9,3,3,17,2,5,0.1111111 (wife occupation 2, husband 5)
    names = list(t.feature_names)
    np.testing.assert_allclose(t.x[0, :6], [3, 32, 9, 3, 3, 17])
    assert t.x[0, names.index("occupation_2")] == 1 and t.x[0, names.index("occupation_husb_5")] == 1
    assert t.x[0, 6:].sum() == 2
    assert t.y[0] == pytest.approx(0.1111111)
    # the most frequent codes (wife 3, husband 4) are the references, so they have no column
    assert "occupation_3" not in names and "occupation_husb_4" not in names
    # every row against the raw CSV read with the csv module
    rows = _raw_csv("fair", "fair.csv")
    assert len(rows) == 6366
    y = np.array([float(r["affairs"]) for r in rows])
    np.testing.assert_array_equal(t.y, y)
    assert int(np.sum(y == 0)) == 4313
    wife = np.array([int(r["occupation"]) for r in rows])
    np.testing.assert_array_equal(t.x[:, names.index("occupation_6")], (wife == 6).astype(float))
    # one-hot rows: at most one indicator per variable, none for the reference level
    np.testing.assert_array_equal(t.x[:, 6:11].sum(1), (wife != 3).astype(float))


def test_randhie_shape_known_rows_and_persons():
    t = load_table("randhie")
    assert t.x.shape == (20190, 9) and t.target == "mdvis"  # docstring: 20,190 observations, 10 variables
    assert t.feature_names == ("lncoins", "idp", "lpi", "fmde", "physlm", "disea", "hlthg", "hlthf", "hlthp")
    # first rows of randhie.csv: 0,4.61512,1,6.907755,0,0,13.73189,1,0,0 then mdvis 2 and 0
    np.testing.assert_allclose(t.x[0], [4.61512, 1, 6.907755, 0, 0, 13.73189, 1, 0, 0])
    np.testing.assert_array_equal(t.y[:3], [0, 2, 0])
    rows = _raw_csv("randhie", "randhie.csv")
    np.testing.assert_array_equal(t.y, [float(r["mdvis"]) for r in rows])
    assert t.y.max() == 77 and t.y.sum() == 57752
    # person ids from the full RAND file: 5,912 people, the first is 125024
    assert len(np.unique(t.groups)) == 5912 and t.groups[0] == 125024
    # baseline covariates: every person's rows share one feature vector
    order = np.argsort(t.groups, kind="stable")
    g, x = t.groups[order], t.x[order]
    same = g[1:] == g[:-1]
    np.testing.assert_array_equal(x[1:][same], x[:-1][same])


def test_tables_load_without_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert len(load_table("fair").y) == 6366
    assert len(load_table("randhie").y) == 20190


def test_randhie_split_keeps_each_person_on_one_side():
    t = load_table("randhie")
    s = load_tabular("randhie", seed=3)
    n = len(t.y)
    parts = [set(s.groups_train), set(s.groups_val)]
    assert not parts[0] & parts[1]
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == n
    assert abs(len(s.y_test) - 0.2 * n) <= 5 and abs(len(s.y_val) - 0.2 * n) <= 5  # cut moves <= one person
    np.testing.assert_allclose(s.x_train.mean(0), 0, atol=1e-10)


def test_grouped_split_on_a_hand_made_table():
    groups = np.repeat(np.arange(10), [1, 2, 3, 4, 1, 2, 3, 4, 1, 2])  # 23 rows
    x = groups[:, None].astype(float) + np.arange(23)[:, None] * 1e-3
    y = x[:, 0] * 10
    s = split_table(x, y, seed=0, groups=groups, val_frac=0.25, test_frac=0.25)
    test_rows = np.round((s.y_test + s.y_offset) / 10).astype(int)  # raw group id of each test row
    train, val, test = set(s.groups_train), set(s.groups_val), set(test_rows)
    assert not (train & val or train & test or val & test)
    assert train | val | test == set(range(10))
    for part, rows in ((train, len(s.y_train)), (val, len(s.y_val)), (test, len(s.y_test))):
        assert rows == sum(np.sum(groups == g) for g in part)  # whole groups only
    from edgekd.errors import DataError

    with pytest.raises(DataError, match="one group id per row"):
        split_table(x, y, groups=groups[:-1])
