"""Offline datasets behind one interface (SPEC 2, 6, 8); nothing is downloaded.

May import only the foundation (refimpl.validate, npzio) and itself.

    from refimpl.data import get_dataset
    ds = get_dataset("glyphs")                       # or digits, moons, fashion_mnist14/28
    task = ds.sample_classes(rng, 5).permuted(ds.random_permutation(rng))
    x = task.unlabeled_batch(rng, 128)               # [128, 196] float32 in [0, 1]
    x, y = task.labeled_batch(rng, 10)               # [50, 196], [50, 5 + 4]

    mine = from_arrays(x_train, y_train, x_test, y_test, name="mine")   # a user's own data
    register_dataset("mine", mine)                   # get_dataset("mine"), TrainConfig(datasets=("mine",))
    get_dataset("path/to/mine.npz")                  # the same four arrays in one file

See ``refimpl/data/README.md`` for each dataset and its targets.
"""
from .base import SPLITS, ArraySource, Dataset, DatasetNotFoundError, Source
from .fashion_mnist import FashionMNISTNotFoundError
from .idx import IDXFormatError, read_idx, write_idx
from .registry import (
    DATASETS,
    get_dataset,
    is_dataset_name,
    list_datasets,
    register_dataset,
    unregister_dataset,
)
from .user import from_arrays, load_npz

__all__ = [
    "SPLITS", "ArraySource", "Dataset", "DatasetNotFoundError", "Source",
    "FashionMNISTNotFoundError", "IDXFormatError", "read_idx", "write_idx",
    "DATASETS", "get_dataset", "list_datasets", "is_dataset_name", "register_dataset", "unregister_dataset",
    "from_arrays", "load_npz",
]
