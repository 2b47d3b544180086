"""A user's own data as a :class:`~refimpl.data.base.Dataset`: :func:`from_arrays` and :func:`load_npz`.

    import refimpl
    ds = refimpl.data.from_arrays(x_train, y_train, x_test, y_test, name="mine")
    refimpl.evaluate_rule("small-glyphs-rotation", [ds], inner_steps=[0, 45], seeds=3)
    refimpl.data.register_dataset("mine", ds)       # a name the trainer's TrainConfig can hold

    refimpl eval small-glyphs-rotation --datasets mine.npz   # the same four arrays in one .npz

Inputs ``x [n, n_features]`` (or images ``[n, H, W]``, flattened in C order,
the image shape kept) must be finite and lie in ``[0, 1]`` (SPEC 2: scale
them first, e.g. divide pixel values by 255), or be ``uint8`` (then divided
by 255 here). Labels are one value per example (ints or strings); the
classes are the sorted distinct training labels, and every test label must
be one of them. Both splits need every class at least once. Every check
fails with one line naming the array and what is wrong.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from refimpl.data.base import ArraySource, Dataset

#: The entries of a dataset ``.npz`` (:func:`load_npz`); ``class_names`` (strings) is optional.
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def _inputs(name: str, which: str, x) -> tuple[np.ndarray, tuple | None, float]:
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise ValueError(f"dataset {name}: {which} must be a numeric array, got dtype {x.dtype}")
    if x.ndim not in (2, 3) or x.shape[0] == 0 or 0 in x.shape[1:]:
        raise ValueError(f"dataset {name}: {which} must have shape [n, n_features] or [n, H, W] with n >= 1, "
                         f"got {x.shape}")
    image_shape = tuple(int(s) for s in x.shape[1:]) if x.ndim == 3 else None
    x = x.reshape(x.shape[0], -1)
    if x.dtype == np.uint8:
        return x, image_shape, 1.0 / 255.0
    x = x.astype(np.float32) if x.dtype.kind != "f" else x
    if not np.isfinite(x).all():
        raise ValueError(f"dataset {name}: {which} holds non-finite values")
    lo, hi = float(x.min()), float(x.max())
    if lo < 0 or hi > 1:
        raise ValueError(f"dataset {name}: {which} must lie in [0, 1] (SPEC 2), got values in [{lo:g}, {hi:g}]; "
                         f"scale it first (e.g. divide pixel values by 255)")
    return x, image_shape, 1.0


def _labels(name: str, which: str, y, n: int) -> np.ndarray:
    y = np.asarray(y)
    if y.dtype.kind not in "iuUS":
        raise ValueError(f"dataset {name}: {which} must hold one integer or string label per example, "
                         f"got dtype {y.dtype}")
    if y.shape != (n,):
        raise ValueError(f"dataset {name}: {which} must have shape [{n}] (one label per input row), got {y.shape}")
    return y


def from_arrays(x_train, y_train, x_test, y_test, *, name: str = "arrays", class_names=None,
                image_shape=None) -> Dataset:
    """A :class:`Dataset` (all classes, unpermuted) of the given arrays; see the module docstring.

    ``class_names`` (optional): one name per class, in sorted label order
    (default: the labels as strings). ``image_shape`` (optional): the
    ``(H, W)`` of a flattened image input (used by image augmentations).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"dataset: name must be a non-empty string, got {name!r}")
    xs, ys, scales, shapes = {}, {}, set(), set()
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        xs[split], shape, scale = _inputs(name, f"x_{split}", x)
        ys[split] = _labels(name, f"y_{split}", y, xs[split].shape[0])
        scales.add(scale)
        shapes.add(shape)
    if xs["train"].shape[1] != xs["test"].shape[1]:
        raise ValueError(f"dataset {name}: x_train has {xs['train'].shape[1]} features per example, "
                         f"x_test {xs['test'].shape[1]}")
    if len(scales) > 1:
        raise ValueError(f"dataset {name}: x_train and x_test must both be uint8 or both floating")
    if ys["train"].dtype.kind in "US" and ys["test"].dtype.kind not in "US" \
            or ys["train"].dtype.kind in "iu" and ys["test"].dtype.kind not in "iu":
        raise ValueError(f"dataset {name}: y_train and y_test must both hold integers or both strings")
    classes = np.unique(ys["train"])
    if len(classes) < 2:
        raise ValueError(f"dataset {name}: y_train must hold at least 2 classes, got {len(classes)}")
    missing = np.setdiff1d(np.unique(ys["test"]), classes)
    if missing.size:
        raise ValueError(f"dataset {name}: y_test has labels that y_train lacks: {missing[:5].tolist()}")
    absent = np.setdiff1d(classes, ys["test"])
    if absent.size:
        raise ValueError(f"dataset {name}: y_test has no example of the class(es) {absent[:5].tolist()}")
    labels = {s: np.searchsorted(classes, ys[s]) for s in ys}
    if class_names is None:
        class_names = [str(c) for c in classes.tolist()]
    class_names = [str(c) for c in class_names]
    if len(class_names) != len(classes) or len(set(class_names)) != len(class_names):
        raise ValueError(f"dataset {name}: class_names must be {len(classes)} distinct names (one per class), "
                         f"got {len(class_names)}")
    if image_shape is None:
        image_shape = shapes.pop() if len(shapes) == 1 else None
    elif int(np.prod(image_shape)) != xs["train"].shape[1]:
        raise ValueError(f"dataset {name}: image_shape {tuple(image_shape)} does not hold "
                         f"{xs['train'].shape[1]} features")
    source = ArraySource(name, xs, labels, class_names, scale=scales.pop(), image_shape=image_shape)
    return Dataset(source)


def load_npz(path) -> Dataset:
    """The dataset in an ``.npz`` with the arrays :data:`NPZ_KEYS` (and optionally ``class_names``),
    named after the file (its stem)."""
    from refimpl.npzio import read_npz

    path = Path(path)
    arrays = read_npz(path, what="dataset")
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"dataset {path}: missing array(s) {', '.join(missing)} (a dataset .npz holds "
                         f"{', '.join(NPZ_KEYS)})")
    unknown = sorted(set(arrays) - set(NPZ_KEYS) - {"class_names"})
    if unknown:
        raise ValueError(f"dataset {path}: unknown array(s) {', '.join(unknown)} (a dataset .npz holds "
                         f"{', '.join(NPZ_KEYS)} and optionally class_names)")
    names = arrays.get("class_names")
    return from_arrays(*(arrays[k] for k in NPZ_KEYS), name=str(path),
                       class_names=None if names is None else names.tolist())
