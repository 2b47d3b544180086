"""``get_dataset(name, **kwargs)``: every dataset by name, as a :class:`~refimpl.data.base.Dataset`."""
from __future__ import annotations

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


def list_datasets() -> tuple:
    return tuple(DATASETS)


def get_dataset(name: str, exclude_classes=(), **kwargs) -> Dataset:
    """A dataset by name, with unpermuted inputs and all its classes but ``exclude_classes``.

    Every dataset is made on this machine (rendered glyphs, scikit-learn's digits, two moons)
    or read from a Debian package (Fashion-MNIST); nothing is downloaded.

    Parameters
    ----------
    name : str
        A key of ``refimpl.data.registry.DATASETS``: ``"glyphs"`` and its variants (the
        meta-training data), ``"digits"``, ``"moons"``, ``"fashion_mnist14"``,
        ``"fashion_mnist28"``, ...
    exclude_classes : sequence of str
        Class names, or names of the source's class sets (glyphs: ``"digits"``, ``"letters"``,
        ``"math"``, ...), left out of the view (:meth:`~refimpl.data.base.Dataset.without`): the
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
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    factory, _ = DATASETS[name]
    try:
        source = factory(**kwargs)
    except TypeError as e:
        raise ValueError(f"dataset {name!r}: bad keyword arguments {sorted(kwargs)}: {e}") from e
    ds = Dataset(source)
    return ds.without(tuple(exclude_classes)) if exclude_classes else ds
