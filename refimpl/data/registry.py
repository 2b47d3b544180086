"""``get_dataset(name, **kwargs)``: every dataset by name, as a :class:`~refimpl.data.base.Dataset`.

A name is one of the built-in :data:`DATASETS`, a name given to
``register_dataset`` (a user's own data, in this process), or the path
of a dataset ``.npz`` (``refimpl.data.user.load_npz``: ``x_train,
y_train, x_test, y_test``), which is what a saved TrainConfig or the command
line can name in any process.
"""
from __future__ import annotations

import os
from pathlib import Path

from .base import Dataset


def _glyphs(**kw):
    from .glyphs import GlyphSource
    return GlyphSource(**kw)


def _glyph_variant(**fixed):
    """A glyph dataset with some GlyphSource arguments fixed (the paper's training distribution)."""
    def make(**kw):
        from .glyphs import GlyphSource
        return GlyphSource(**{**fixed, **kw})
    return make


def _glyph_chars(what: str) -> str:
    from . import glyphs
    return {"letters": glyphs.UPPER + glyphs.LOWER, "math": glyphs.MATH, "currency": glyphs.CURRENCY}[what]


def _glyph_subset(what: str, **fixed):
    def make(**kw):
        from .glyphs import GlyphSource
        return GlyphSource(**{"chars": _glyph_chars(what), **fixed, **kw})
    return make


def _digits(**kw):
    from .small import digits_source
    return digits_source(**kw)


def _moons(**kw):
    from .small import moons_source
    return moons_source(**kw)


def _fashion(side):
    def make(**kw):
        from .fashion_mnist import fashion_mnist_source
        return fashion_mnist_source(side=side, **kw)
    return make


#: name -> (source factory, one-line description). Keyword arguments go to the factory.
DATASETS = {
    "glyphs": (_glyphs, "14x14 font glyphs (letters, digits, math, currency) with rotation/shift "
                        "augmentation; n_reg=4 (sin, cos, dx, dy); kwargs: augment, max_angle, "
                        "max_shift, chars, train_fonts, test_fonts, supersample"),
    # The paper's glyph distribution (appendix "Training Data Distribution"): other
    # resolutions, its stronger augmentation (rotations up to 360 degrees, shifts up to
    # 5 pixels at 14x14), no augmentation, and the specialised subsets.
    "glyphs_rotation": (_glyph_variant(max_shift=0.0),
                        "14x14 glyphs rotated by up to 30 degrees either way, not shifted; targets sin, cos "
                        "and two zero shift columns (n_reg=4)"),
    "glyphs_classes": (_glyph_variant(regression_targets=False),
                       "14x14 glyphs with the same augmentation as glyphs but class targets only (n_reg=0)"),
    "glyphs_plain": (_glyph_variant(augment=False), "14x14 glyphs without augmentation; n_reg=0"),
    "glyphs_paper_aug": (_glyph_variant(max_angle=180.0, max_shift=5.0),
                         "14x14 glyphs rotated by up to 180 degrees either way and shifted up to 5 pixels"),
    "glyphs10": (_glyph_variant(side=10, max_shift=10 / 7), "10x10 glyphs (100 features), shift up to 10/7 px"),
    "glyphs20": (_glyph_variant(side=20, max_shift=20 / 7), "20x20 glyphs (400 features), shift up to 20/7 px"),
    "glyphs_letters": (_glyph_subset("letters", max_angle=180.0, max_shift=5.0),
                       "14x14 glyphs of the 52 Latin letters, paper augmentation"),
    "glyphs_math": (_glyph_subset("math", max_angle=180.0, max_shift=5.0),
                    "14x14 glyphs of the math symbols, paper augmentation"),
    "glyphs_currency": (_glyph_subset("currency", max_angle=180.0, max_shift=5.0),
                        "14x14 glyphs of the currency symbols, paper augmentation"),
    # The same resolutions and subsets with the rotation-only augmentation of glyphs_rotation
    # (the mixture training preset; see refimpl/train/presets.py).
    "glyphs10_rotation": (_glyph_variant(side=10, max_shift=0.0), "10x10 glyphs rotated by up to 30 degrees, not shifted"),
    "glyphs20_rotation": (_glyph_variant(side=20, max_shift=0.0), "20x20 glyphs rotated by up to 30 degrees, not shifted"),
    "glyphs_letters_rotation": (_glyph_subset("letters", max_shift=0.0),
                                "14x14 glyphs of the 52 Latin letters rotated by up to 30 degrees, not shifted"),
    "glyphs_math_rotation": (_glyph_subset("math", max_shift=0.0),
                             "14x14 glyphs of the math symbols rotated by up to 30 degrees, not shifted"),
    "glyphs_currency_rotation": (_glyph_subset("currency", max_shift=0.0),
                                 "14x14 glyphs of the currency symbols rotated by up to 30 degrees, not shifted"),
    # The glyph evaluation reported beside the transfer datasets: held-out fonts of the "final"
    # families (Computer Modern), letters and digits; no choice is made on it.
    "glyphs_rotation_final": (_glyph_variant(max_shift=0.0, heldout="final"),
                              "glyphs_rotation whose test split is the final held-out font families "
                              "(Computer Modern), letters and digits only"),
    "digits": (_digits, "scikit-learn's 8x8 handwritten digits, 10 classes; kwargs: test_fraction, seed"),
    "moons": (_moons, "two moons, 2 features, 2 classes; kwargs: n_train, n_test, noise, seed"),
    "fashion_mnist14": (_fashion(14), "Fashion-MNIST 14x14 (2x2 area average); kwargs: path"),
    "fashion_mnist28": (_fashion(28), "Fashion-MNIST 28x28; kwargs: path"),
}


#: name -> Dataset: the datasets registered in this process (``register_dataset``).
REGISTERED: dict = {}
#: (resolved path, mtime_ns, size) -> Dataset: each dataset .npz is read once per process.
_NPZ_CACHE: dict = {}


def list_datasets() -> tuple:
    """The built-in names, then the registered ones."""
    return tuple(DATASETS) + tuple(REGISTERED)


def is_npz_path(name) -> bool:
    """Whether ``name`` names a dataset file (it ends with ``.npz``) rather than a dataset."""
    return isinstance(name, (str, os.PathLike)) and str(name).endswith(".npz")


def is_dataset_name(name) -> bool:
    """Whether ``name`` can be given to :func:`get_dataset`: built in, registered, or an ``.npz`` path
    (whether that file exists and holds a dataset is checked when it is read)."""
    return isinstance(name, str) and (name in DATASETS or name in REGISTERED or is_npz_path(name))


def register_dataset(name: str, dataset: Dataset, *, replace: bool = False) -> Dataset:
    """Make ``dataset`` (e.g. :func:`refimpl.data.user.from_arrays`) available as ``name`` in this process:
    to :func:`get_dataset`, ``evaluate_rule`` and a TrainConfig's ``datasets``. A built-in name cannot be
    taken; a registered one only with ``replace=True``."""
    if not isinstance(name, str) or not name.strip() or is_npz_path(name):
        raise ValueError(f"register_dataset: name must be a non-empty string not ending in .npz, got {name!r}")
    if not isinstance(dataset, Dataset):
        raise ValueError(f"register_dataset: expected a refimpl.data.Dataset (e.g. from_arrays(...)), "
                         f"got {type(dataset).__name__}")
    if name in DATASETS:
        raise ValueError(f"register_dataset: {name!r} is a built-in dataset; choose another name")
    if name in REGISTERED and not replace:
        raise ValueError(f"register_dataset: {name!r} is registered already; pass replace=True to replace it")
    REGISTERED[name] = dataset
    return dataset


def unregister_dataset(name: str) -> None:
    """Forget a registered dataset (a missing name is not an error)."""
    REGISTERED.pop(name, None)


def _npz_dataset(path) -> Dataset:
    from .user import load_npz

    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise ValueError(f"dataset {path}: no such file") from None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    if key not in _NPZ_CACHE:
        if len(_NPZ_CACHE) >= 8:     # a long-lived process that reads many files keeps only the latest
            _NPZ_CACHE.clear()
        _NPZ_CACHE[key] = load_npz(path)
    return _NPZ_CACHE[key]


def get_dataset(name: str, exclude_classes=(), **kwargs) -> Dataset:
    """A dataset by name (built in, registered, or a dataset ``.npz`` path), with unpermuted inputs and
    all its classes but ``exclude_classes``; a :class:`~refimpl.data.Dataset` given as ``name`` is returned as it is
    (with those classes left out).

    Every dataset is made on this machine (rendered glyphs, scikit-learn's digits, two moons)
    or read from a Debian package (Fashion-MNIST); nothing is downloaded.

    Parameters
    ----------
    name : str or Dataset
        A key of ``refimpl.data.registry.DATASETS``: ``"glyphs"`` and its variants (the
        meta-training data), ``"digits"``, ``"moons"``, ``"fashion_mnist14"``,
        ``"fashion_mnist28"``, ...; a name given to ``register_dataset``; or the path of an
        ``.npz`` holding ``x_train, y_train, x_test, y_test`` (``refimpl.data.user.load_npz``).
    exclude_classes : sequence of str
        Class names, or names of the source's class sets (glyphs: ``"digits"``, ``"letters"``,
        ``"math"``, ...), left out of the view (``Dataset.without``): the
        controls of meta-training.
    **kwargs
        Passed to the dataset's source (e.g. ``seed`` for ``"digits"`` and ``"moons"``,
        ``path`` for Fashion-MNIST).

    Returns
    -------
    Dataset
        A view that draws unlabeled batches [B, n_features] and labeled few-shot batches.

    Raises
    ------
    ValueError
        If ``name`` is unknown, a keyword argument is not the source's, or ``exclude_classes``
        names a class the dataset does not have.
    DatasetNotFoundError
        If the files of a packaged dataset are not on this machine (the message says how to
        install them).

    Examples
    --------
    >>> import numpy as np, refimpl
    >>> digits = refimpl.get_dataset("digits")
    >>> digits.unlabeled_batch(np.random.default_rng(0), 32).shape
    (32, 64)
    """
    def without(ds: Dataset) -> Dataset:
        return ds.without(tuple(exclude_classes)) if exclude_classes else ds

    if isinstance(name, Dataset) and not kwargs:
        return without(name)
    if not is_dataset_name(name if not isinstance(name, os.PathLike) else str(name)):
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(list_datasets())}, or the path of a "
                         f"dataset .npz (x_train, y_train, x_test, y_test)")
    if name in REGISTERED or is_npz_path(name):
        if kwargs:
            raise ValueError(f"dataset {name!r}: takes no keyword arguments, got {sorted(kwargs)}")
        return without(REGISTERED[name] if name in REGISTERED else _npz_dataset(name))
    factory, _ = DATASETS[name]
    try:
        source = factory(**kwargs)
    except TypeError as e:
        raise ValueError(f"dataset {name!r}: bad keyword arguments {sorted(kwargs)}: {e}") from e
    return without(Dataset(source))
