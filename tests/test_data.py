"""The IDX reader/writer and the bundled MNIST data."""


import numpy as np
import pytest

from graphc import data
from graphc.data import IdxFormatError


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip(tmp_path, dtype, suffix):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(np.dtype(dtype).newbyteorder("="))
    if dtype == "u1":
        array = np.abs(array).astype("u1")
    path = tmp_path / f"a.idx{suffix}"
    data.write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    got = data.read_idx(path)
    assert got.dtype == array.dtype and np.array_equal(got, array)


def _valid(tmp_path):
    path = tmp_path / "ok.idx"
    data.write_idx(path, np.arange(12, dtype="u1").reshape(3, 4))
    return path.read_bytes()


@pytest.mark.parametrize("mangle, message", [
    (lambda b: b[:-3], "truncated: header says 3x4 = 12 bytes of uint8 but 9 bytes follow"),
    (lambda b: b + b"xx", "2 trailing bytes"),
    (lambda b: b"\x01" + b[1:], "bad magic"),
    (lambda b: b[:2] + b"\x42" + b[3:], "unknown data type code 0x42"),
    (lambda b: b"\x1f\x8b\x08\x00garbage-that-is-not-deflate", "corrupt gzip"),
    (lambda b: b"", "too short"),
    (lambda b: b[:6], "truncated header"),
])
def test_corrupt_files_are_reported(tmp_path, mangle, message):
    path = tmp_path / "bad.idx"
    path.write_bytes(mangle(_valid(tmp_path)))
    with pytest.raises(IdxFormatError, match=message) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        data.read_idx(tmp_path / "nope.idx")


def test_bundled_mnist_split():
    m = data.load_mnist()
    assert m.x_train.shape == (8000, 784) and m.x_test.shape == (2000, 784)
    assert m.x_train.dtype == np.float32 and 0 <= m.x_train.min() and m.x_train.max() <= 1
    labels = np.concatenate([m.y_train, m.y_test])
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    again, other = data.load_mnist(), data.load_mnist(seed=1)
    assert np.array_equal(again.y_train, m.y_train)
    assert not np.array_equal(other.y_train, m.y_train)
    with pytest.raises(ValueError, match="train_size"):
        data.load_mnist(train_size=10000)


def _fake_mnist(directory, n_train=5, n_test=3, bad_labels=False):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        data.write_idx(directory / f"{prefix}-images-idx3-ubyte.gz",
                       rng.integers(0, 256, (n, 28, 28)).astype("u1"))
        data.write_idx(directory / f"{prefix}-labels-idx1-ubyte",
                       rng.integers(0, 10, n + (1 if bad_labels else 0)).astype("u1"))


def test_full_mnist_directory(tmp_path, monkeypatch):
    _fake_mnist(tmp_path)
    m = data.load_mnist(tmp_path)
    assert m.x_train.shape == (5, 784) and m.x_test.shape == (3, 784)
    monkeypatch.setenv("GRAPHC_MNIST_DIR", str(tmp_path))
    assert data.load_mnist().x_train.shape == (5, 784)


def test_mismatched_counts(tmp_path):
    _fake_mnist(tmp_path, bad_labels=True)
    with pytest.raises(ValueError, match="5 images but .* 6 labels"):
        data.load_mnist(tmp_path)


def test_one_hot():
    assert data.one_hot(np.array([2, 0]), 3).tolist() == [[0, 0, 1], [1, 0, 0]]
    with pytest.raises(ValueError, match="0..9"):
        data.one_hot(np.array([10]))
    with pytest.raises(ValueError, match="integers"):
        data.one_hot(np.array([1.5]))
