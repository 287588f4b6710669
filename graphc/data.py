"""Data: a reader for MNIST's IDX files, and the real MNIST test set bundled with graphc.

graphc's main job - training a digit classifier - must run on a fresh machine with no
download.  The package ships the official 10,000-image MNIST test set (1.6 MB); by
default ``load_mnist`` splits it, with a fixed seed, into training and test parts.
Given a directory with the full MNIST files, it uses the official 60,000/10,000 split.
"""

from __future__ import annotations

import gzip
import os
import zlib
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .atomic import atomic_write

_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
          0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_CODES = {dt.newbyteorder("="): code for code, dt in _TYPES.items()}


class IdxFormatError(ValueError):
    """An IDX file that is truncated, corrupt, or not IDX at all."""


def _read_bytes(path):
    path = Path(path)
    raw = path.read_bytes()                     # FileNotFoundError names the path
    if raw[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IdxFormatError(f"{path}: corrupt gzip stream ({exc})") from None
    return raw


def read_idx(path):
    """The array stored in an IDX file (gzip-compressed or raw), native byte order."""
    data = _read_bytes(path)
    if len(data) < 4:
        raise IdxFormatError(f"{path}: {len(data)} bytes is too short for an IDX header")
    zero, code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if zero != 0:
        raise IdxFormatError(f"{path}: bad magic 0x{data[:4].hex()} (an IDX file starts "
                             "with two zero bytes)")
    if code not in _TYPES:
        raise IdxFormatError(f"{path}: unknown data type code 0x{code:02x}")
    if ndim == 0:
        raise IdxFormatError(f"{path}: an IDX file needs at least one dimension")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(f"{path}: truncated header ({len(data)} of {header} bytes)")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = _TYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header
    shape_text = "x".join(map(str, dims))
    if found < expected:
        raise IdxFormatError(f"{path}: truncated: header says {shape_text} = {expected} bytes "
                             f"of {dtype.name} but {found} bytes follow")
    if found > expected:
        raise IdxFormatError(f"{path}: {found - expected} trailing bytes after the "
                             f"{shape_text} {dtype.name} payload")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="))


def write_idx(path, array, compress=None):
    """Write `array` as an IDX file (gzip when `compress`, or when the name ends in
    .gz), atomically: readers see the old file or the new one, never half of it."""
    path = Path(path)
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"write_idx: dtype {array.dtype} has no IDX type code")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"write_idx: need 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_TYPES[code]).tobytes()
    if compress or (compress is None and path.suffix == ".gz"):
        payload = gzip.compress(payload)
    atomic_write(path, lambda f: f.write(payload))


class MnistData(NamedTuple):
    x_train: np.ndarray    # (N, 784) floats in [0, 1]
    y_train: np.ndarray    # (N,) int64 labels 0..9
    x_test: np.ndarray
    y_test: np.ndarray


def _find(directory, stem):
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"{directory}: no {stem} or {stem}.gz")


def _images_and_labels(directory, prefix, dtype):
    images_path = _find(directory, f"{prefix}-images-idx3-ubyte")
    labels_path = _find(directory, f"{prefix}-labels-idx1-ubyte")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3:
        raise IdxFormatError(f"{images_path}: expected images (N, rows, cols), got shape "
                             f"{images.shape}")
    if labels.ndim != 1:
        raise IdxFormatError(f"{labels_path}: expected labels (N,), got shape {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} holds "
                         f"{len(labels)} labels")
    x = images.reshape(len(images), -1).astype(dtype) / np.asarray(255, dtype)
    return x, labels.astype(np.int64)


def bundled_mnist_dir():
    return Path(str(resources.files("graphc") / "datasets" / "mnist"))


def load_mnist(path=None, *, train_size=8000, seed=0, dtype=np.float32):
    """MNIST as (x_train, y_train, x_test, y_test).

    With `path` (or ``$GRAPHC_MNIST_DIR``) naming a directory with the full MNIST files,
    the official split is used (`train_size` and `seed` are ignored).  Otherwise the
    bundled 10,000-image test set is shuffled with `seed` and split into `train_size`
    training and ``10000 - train_size`` test images."""
    path = path or os.environ.get("GRAPHC_MNIST_DIR")
    if path:
        directory = Path(path)
        x_train, y_train = _images_and_labels(directory, "train", dtype)
        x_test, y_test = _images_and_labels(directory, "t10k", dtype)
        return MnistData(x_train, y_train, x_test, y_test)
    x, y = _images_and_labels(bundled_mnist_dir(), "t10k", dtype)
    if not 0 < train_size < len(x):
        raise ValueError(f"load_mnist: train_size must be between 1 and {len(x) - 1}, "
                         f"got {train_size}")
    order = np.random.default_rng(seed).permutation(len(x))
    train, test = order[:train_size], order[train_size:]
    return MnistData(x[train], y[train], x[test], y[test])


def one_hot(labels, num_classes=10, dtype=np.float32):
    """Integer labels as one-hot rows."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise ValueError(f"one_hot: labels must be integers, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: labels must be in 0..{num_classes - 1}, got values from "
                         f"{labels.min()} to {labels.max()}")
    return np.eye(num_classes, dtype=dtype)[labels]
