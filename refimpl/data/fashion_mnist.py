"""Fashion-MNIST from the IDX files of Debian's ``dataset-fashion-mnist`` package (SPEC 8).

The package (``apt-get install dataset-fashion-mnist``) installs, in
``/usr/share/datasets/fashion-mnist``::

    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   (60000 examples)
    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz    (10000 examples)

Uncompressed copies (the same names without ``.gz``) are accepted too. The
directory is, in order of precedence: the ``path`` argument, the environment
variable ``REFIMPL_FASHION_MNIST``, :data:`DEFAULT_DIR`. Nothing is ever
downloaded; missing files raise :class:`FashionMNISTNotFoundError` (a
``FileNotFoundError``) saying how to get them.

Images are 28x28 uint8; ``side=28`` keeps them, ``side=14`` averages 2x2
blocks. Pixels are scaled by 1/255 to [0, 1] (SPEC 2).
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from .base import ArraySource, DatasetNotFoundError
from .idx import IDXFormatError, read_idx

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
ENV_VAR = "REFIMPL_FASHION_MNIST"
FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class FashionMNISTNotFoundError(DatasetNotFoundError):
    """The Fashion-MNIST IDX files are not in the directory looked at."""


def resolve_dir(path=None) -> tuple[Path, str]:
    """The directory to read and where that choice came from."""
    if path is not None:
        return Path(path), "the path argument"
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env), f"${ENV_VAR}"
    return Path(DEFAULT_DIR), "the default directory"


def find_files(path=None) -> dict:
    """``{(split, kind): Path}`` of the four files (plain preferred over ``.gz``), or raise."""
    d, origin = resolve_dir(path)
    found, missing = {}, []
    for key, base in FILES.items():
        for cand in (d / base, d / f"{base}.gz"):
            if cand.is_file():
                found[key] = cand
                break
        else:
            missing.append(f"{base}[.gz]")
    if missing:
        raise FashionMNISTNotFoundError(
            f"Fashion-MNIST files not found in {d} ({origin}): missing {', '.join(missing)}. "
            f"Install Debian's package with `sudo apt-get install dataset-fashion-mnist` "
            f"(it puts them in {DEFAULT_DIR}), or pass path=DIR to the loader / set "
            f"{ENV_VAR}=DIR to a directory holding train-images-idx3-ubyte, "
            f"train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte "
            f"(plain or .gz). Nothing is downloaded.")
    return found


def load_split(images_path, labels_path):
    """Validated ``(images uint8 [n, 28, 28], labels int64 [n])`` of one split."""
    images = read_idx(images_path, expect_ndim=3)
    labels = read_idx(labels_path, expect_ndim=1)
    if images.dtype != np.uint8:
        raise IDXFormatError(images_path, f"expected unsigned byte pixels, found {images.dtype}")
    if images.shape[1:] != (28, 28):
        raise IDXFormatError(images_path, f"expected 28x28 images, found {images.shape[1]}x{images.shape[2]}")
    if labels.dtype != np.uint8:
        raise IDXFormatError(labels_path, f"expected unsigned byte labels, found {labels.dtype}")
    if len(labels) != len(images):
        raise ValueError(f"{labels_path}: {len(labels)} labels but {images_path} has {len(images)} images")
    if len(labels) and labels.max() >= len(CLASS_NAMES):
        raise IDXFormatError(labels_path, f"label {int(labels.max())} out of range 0..{len(CLASS_NAMES) - 1}")
    return images, labels.astype(np.int64)


@functools.lru_cache(maxsize=2)
def _load_raw(files_key: tuple):
    files = dict(files_key)
    return {s: load_split(files[(s, "images")], files[(s, "labels")]) for s in ("train", "test")}


def fashion_mnist_source(side: int = 28, path=None) -> ArraySource:
    """Fashion-MNIST at ``side`` 28 (as stored) or 14 (2x2 area average), pixels in [0, 1]."""
    if side not in (14, 28):
        raise ValueError(f"fashion_mnist: side must be 14 or 28, got {side!r}")
    files = find_files(path)
    raw = _load_raw(tuple(sorted((k, str(v.resolve())) for k, v in files.items())))
    xs, ys = {}, {}
    for s, (images, labels) in raw.items():
        if side == 28:
            xs[s], scale = images.reshape(len(images), 784), 1.0 / 255.0
        else:
            sums = images.reshape(len(images), 14, 2, 14, 2).sum(axis=(2, 4), dtype=np.uint16)
            xs[s], scale = sums.reshape(len(images), 196), 1.0 / (4 * 255.0)
        ys[s] = labels
    return ArraySource(f"fashion_mnist{side}", xs, ys, CLASS_NAMES, scale=scale,
                       image_shape=(side, side))
