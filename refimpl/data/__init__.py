"""Offline datasets behind one interface (SPEC 2, 6, 8); nothing is downloaded.

May import only the foundation (refimpl.validate, npzio) and itself.

    from refimpl.data import get_dataset
    ds = get_dataset("glyphs")                       # or digits, moons, fashion_mnist14/28
    task = ds.sample_classes(rng, 5).permuted(ds.random_permutation(rng))
    x = task.unlabeled_batch(rng, 128)               # [128, 196] float32 in [0, 1]
    x, y = task.labeled_batch(rng, 10)               # [50, 196], [50, 5 + 4]

See ``refimpl/data/README.md`` for each dataset and its targets.
"""
from .base import SPLITS, ArraySource, Dataset, DatasetNotFoundError, Source
from .fashion_mnist import FashionMNISTNotFoundError
from .idx import IDXFormatError, read_idx, write_idx
from .registry import DATASETS, get_dataset, list_datasets

__all__ = [
    "SPLITS", "ArraySource", "Dataset", "DatasetNotFoundError", "Source",
    "FashionMNISTNotFoundError", "IDXFormatError", "read_idx", "write_idx",
    "DATASETS", "get_dataset", "list_datasets",
]
