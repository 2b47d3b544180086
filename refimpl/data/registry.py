"""``get_dataset(name, **kwargs)``: every dataset by name, as a :class:`~refimpl.data.base.Dataset`."""
from __future__ import annotations

from .base import Dataset


def _glyphs(**kw):
    from .glyphs import GlyphSource
    return GlyphSource(**kw)


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
    "digits": (_digits, "scikit-learn's 8x8 handwritten digits, 10 classes; kwargs: test_fraction, seed"),
    "moons": (_moons, "two moons, 2 features, 2 classes; kwargs: n_train, n_test, noise, seed"),
    "fashion_mnist14": (_fashion(14), "Fashion-MNIST 14x14 (2x2 area average); kwargs: path"),
    "fashion_mnist28": (_fashion(28), "Fashion-MNIST 28x28; kwargs: path"),
}


def list_datasets() -> tuple:
    return tuple(DATASETS)


def get_dataset(name: str, **kwargs) -> Dataset:
    """The dataset ``name`` (one of :data:`DATASETS`), all classes, unpermuted."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    factory, _ = DATASETS[name]
    try:
        source = factory(**kwargs)
    except TypeError as e:
        raise ValueError(f"dataset {name!r}: bad keyword arguments {sorted(kwargs)}: {e}") from e
    return Dataset(source)
