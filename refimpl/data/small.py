"""Small bundled or generated datasets: scikit-learn's 8x8 digits and two moons (SPEC 8).

Neither has a train/test split of its own; each gets a deterministic one
from a fixed seed. Both need scikit-learn (imported when the dataset is
built; the digits are bundled with it, nothing is downloaded).
"""
from __future__ import annotations

import functools

import numpy as np

from .base import ArraySource


def _sklearn_datasets(what: str):
    try:
        import sklearn.datasets
    except ImportError as e:
        raise ImportError(f"the {what} dataset needs scikit-learn (pip install scikit-learn)") from e
    return sklearn.datasets


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int):
    """Deterministic per-class split: ``round(test_fraction * count)`` test examples of each class
    (at least one in each split when the class has two or more). Returns sorted (train, test) indices."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        members = members[rng.permutation(len(members))]
        n_test = int(round(test_fraction * len(members)))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@functools.lru_cache(maxsize=4)
def digits_source(test_fraction: float = 0.25, seed: int = 0) -> ArraySource:
    """sklearn's 1797 8x8 handwritten digits (values 0..16, scaled by 1/16), 10 classes."""
    d = _sklearn_datasets("digits").load_digits()
    x = np.asarray(d.data, dtype=np.uint8)          # integer values 0..16
    y = np.asarray(d.target, dtype=np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    return ArraySource("digits", {"train": x[tr], "test": x[te]}, {"train": y[tr], "test": y[te]},
                       class_names=[str(i) for i in range(10)], scale=1.0 / 16.0, image_shape=(8, 8))


@functools.lru_cache(maxsize=4)
def moons_source(n_train: int = 1000, n_test: int = 1000, noise: float = 0.1,
                 seed: int = 0) -> ArraySource:
    """Two interleaved half-circles (sklearn ``make_moons``), 2 features min-max scaled to [0, 1]
    over both splits together, 2 classes. Train and test are one generated sample, split
    by the seeded shuffle make_moons already does."""
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 2:
            raise ValueError(f"moons: {name} must be an int >= 2, got {v!r}")
    if noise < 0:
        raise ValueError(f"moons: noise must be >= 0, got {noise!r}")
    x, y = _sklearn_datasets("moons").make_moons(
        n_samples=n_train + n_test, noise=noise, shuffle=True, random_state=seed)
    lo, hi = x.min(axis=0), x.max(axis=0)
    x = (x - lo) / (hi - lo)
    y = y.astype(np.int64)
    return ArraySource("moons", {"train": x[:n_train], "test": x[n_train:]},
                       {"train": y[:n_train], "test": y[n_train:]},
                       class_names=["upper moon", "lower moon"])
