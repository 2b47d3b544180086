"""One interface for every dataset: :class:`Dataset`, a view of a :class:`Source`.

A *source* holds the data of one dataset (both splits) and knows how to turn
example indices into input rows (for augmented sources, with fresh random
augmentation per draw, returning the augmentation parameters as regression
targets). A :class:`Dataset` is an immutable view of a source: a choice and
order of classes (``subset``) and an optional fixed input permutation
(``permuted``). Views are cheap and share the source's arrays.

Conventions (SPEC 2, 6):

- inputs are rows ``x [n, n_features]`` scaled to ``[0, 1]``, float32 unless
  a ``dtype`` is given; an image is flattened in C order (row-major);
- targets ``y [n, n_classes + n_reg]``: the one-hot class label in the view's
  class order, then the ``n_reg`` regression targets (each in ``[-1, 1]``);
- a permutation ``perm`` maps input rows as ``x_permuted = x[:, perm]`` and is
  applied to unlabeled and labeled inputs alike;
- every random choice comes from the ``numpy.random.Generator`` passed in, so
  the same generator state gives the same batch.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

SPLITS = ("train", "test")


class DatasetNotFoundError(FileNotFoundError):
    """The files a dataset is read from are not on this machine; the message says how to get them."""


def check_split(split) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def check_dtype(dtype) -> np.dtype:
    try:
        dt = np.dtype(np.float32 if dtype is None else dtype)
    except TypeError as e:
        raise ValueError(f"dtype must be a floating dtype, got {dtype!r}") from e
    if dt.kind != "f":
        raise ValueError(f"dtype must be a floating dtype, got {dt}")
    return dt


def as_rng(rng) -> np.random.Generator:
    """A ``numpy.random.Generator`` (passed through) or a new one from an int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng must be a numpy.random.Generator or an int seed, got {type(rng).__name__}")


def _check_count(name, k, minimum=1) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {k!r}")
    return int(k)


class Source:
    """The data behind a dataset. Subclasses set the attributes and implement :meth:`realise`
    (and, when they augment at random, :meth:`draw_params`); :meth:`draw` is the two in a row.

    The split lets a dataset make every random draw of many batches first and their rows in
    one call afterwards (:meth:`Dataset.rows`), with the numbers a batch-by-batch draw gives.

    Attributes: ``name``, ``n_features``, ``image_shape`` (tuple or None),
    ``class_names`` (tuple of str), ``n_reg``, ``augmented`` (True when every
    draw of an example is a fresh random variant, so an example may be drawn
    more than once in a labeled batch), ``labels`` (dict split -> int array of
    class ids, one per example).
    """

    name: str
    n_features: int
    image_shape: tuple | None
    class_names: tuple
    n_reg: int = 0
    augmented: bool = False
    labels: dict

    def draw(self, rng: np.random.Generator, idx: np.ndarray, split: str, dtype: np.dtype):
        """Inputs ``x [len(idx), n_features]`` (dtype) and regression targets ``[len(idx), n_reg]``."""
        return self.realise(idx, self.draw_params(rng, len(idx)), split, dtype)

    def draw_params(self, rng: np.random.Generator, n: int):
        """The random part of a draw of ``n`` examples (every number :meth:`draw` takes from ``rng``, in
        its order), or None for a source without random augmentation."""
        return None

    def realise(self, idx: np.ndarray, params, split: str, dtype: np.dtype):
        """:meth:`draw`'s result from the examples ``idx`` and their :meth:`draw_params`. A pure function
        of its arguments, row by row, so the params of several draws, joined by :meth:`join_params`,
        give the rows of those draws in one call."""
        raise NotImplementedError(f"{type(self).__name__} must implement realise(idx, params, split, dtype) "
                                  f"(and draw_params(rng, n) if it augments at random)")

    @staticmethod
    def join_params(params: list):
        """The params of several draws as the params of their rows in one draw (in the given order)."""
        if all(p is None for p in params):
            return None
        return tuple(np.concatenate(parts) for parts in zip(*params))

    def clean(self, idx: np.ndarray, split: str, dtype: np.dtype) -> np.ndarray:
        """Inputs without augmentation (equal to :meth:`draw` for unaugmented sources)."""
        x, _ = self.draw(np.random.default_rng(0), idx, split, dtype)
        return x


class ArraySource(Source):
    """A source held as arrays: ``x[split]`` stored compactly, ``x * scale`` lies in [0, 1]."""

    def __init__(self, name, x, labels, class_names, scale=1.0, image_shape=None):
        self.name = name
        self.x = {s: np.ascontiguousarray(x[s]) for s in SPLITS}
        self.labels = {s: np.asarray(labels[s], dtype=np.int64) for s in SPLITS}
        self.class_names = tuple(class_names)
        self.scale = float(scale)
        self.image_shape = None if image_shape is None else tuple(image_shape)
        self.n_features = int(self.x["train"].shape[1])
        for s in SPLITS:
            if self.x[s].ndim != 2 or self.x[s].shape[1] != self.n_features:
                raise ValueError(f"{name}: split {s} has shape {self.x[s].shape}, "
                                 f"expected [n, {self.n_features}]")
            if self.labels[s].shape != (self.x[s].shape[0],):
                raise ValueError(f"{name}: split {s} has {self.x[s].shape[0]} inputs "
                                 f"but {self.labels[s].shape} labels")

    def realise(self, idx, params, split, dtype):
        x = self.x[split][idx].astype(dtype)
        if self.scale != 1.0:
            x *= dtype.type(self.scale)
        return x, np.zeros((len(idx), 0))


class BatchRequest(NamedTuple):
    """A batch whose random draws are made and whose rows are not (:meth:`Dataset.realise` makes them)."""
    idx: np.ndarray              # source example ids, in row order
    params: object               # the source's draw_params for those rows (None: no augmentation)
    k_per_class: int | None      # labeled batch: examples per class; None: unlabeled


class Dataset:
    """A view of a dataset's source: some of its classes, in a fixed order, optionally permuted inputs.

    Made by :func:`refimpl.get_dataset`; :meth:`subset`, :meth:`sample_classes` and
    :meth:`permuted` derive other views without copying the data.

    Attributes
    ----------
    name : str
        The dataset's name.
    n_features : int
        N^0, the input size.
    n_classes : int
        K, the classes of this view (labels 0..K-1 in the order of ``classes``).
    n_reg : int
        Regression targets appended to the one-hot labels (0 for most datasets).
    image_shape : tuple of int or None
        The shape of an unpermuted input as an image.
    class_names : tuple of str
        The names of the view's classes, in label order.
    classes : tuple of int
        The source's class ids, in label order.
    perm : ndarray or None
        The permutation applied to the input features.
    augmented : bool
        Whether the source draws augmented examples (then examples may repeat with fresh
        augmentation).
    """

    def __init__(self, source: Source, classes=None, perm=None):
        self.source = source
        n_src = len(source.class_names)
        classes = np.arange(n_src) if classes is None else np.asarray(classes, dtype=np.int64)
        self.classes = tuple(int(c) for c in classes)
        self.perm = None if perm is None else np.asarray(perm, dtype=np.int64)
        if self.perm is not None:
            self.perm.setflags(write=False)
        to_local = np.full(n_src, -1, dtype=np.int64)
        to_local[classes] = np.arange(len(classes))
        self._pool, self._local, self._by_class = {}, {}, {}
        for s in SPLITS:
            lab = to_local[source.labels[s]]
            pool = np.flatnonzero(lab >= 0)
            self._pool[s] = pool
            self._local[s] = lab[pool]
            order = np.argsort(self._local[s], kind="stable")
            counts = np.bincount(self._local[s], minlength=len(classes))
            self._by_class[s] = np.split(pool[order], np.cumsum(counts)[:-1])

    # -- description ---------------------------------------------------------------
    name = property(lambda self: self.source.name)
    n_features = property(lambda self: self.source.n_features)
    n_reg = property(lambda self: self.source.n_reg)
    image_shape = property(lambda self: self.source.image_shape)
    augmented = property(lambda self: self.source.augmented)
    n_classes = property(lambda self: len(self.classes))

    @property
    def class_names(self) -> tuple:
        return tuple(self.source.class_names[c] for c in self.classes)

    def n_examples(self, split: str = "train") -> int:
        """Number of (unaugmented) examples of the view's classes in ``split``."""
        return len(self._pool[check_split(split)])

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Examples per class (view order) in ``split``."""
        return np.array([len(p) for p in self._by_class[check_split(split)]], dtype=np.int64)

    def __repr__(self) -> str:
        perm = "" if self.perm is None else ", permuted"
        return (f"Dataset({self.name!r}, n_features={self.n_features}, n_classes={self.n_classes}, "
                f"n_reg={self.n_reg}, train={self.n_examples('train')}, "
                f"test={self.n_examples('test')}{perm})")

    # -- views --------------------------------------------------------------------
    def subset(self, classes) -> Dataset:
        """The view restricted to ``classes`` (indices into this view's classes, or class names),
        relabelled 0..n-1 in the order given."""
        classes = list(np.atleast_1d(np.asarray(classes, dtype=object)))
        if not classes:
            raise ValueError("subset: need at least one class")
        ids = []
        names = self.class_names
        for c in classes:
            if isinstance(c, str):
                if c not in names:
                    raise ValueError(f"subset: {self.name} has no class named {c!r}")
                ids.append(names.index(c))
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
                if not 0 <= c < self.n_classes:
                    raise ValueError(f"subset: class index {c} out of range [0, {self.n_classes})")
                ids.append(int(c))
            else:
                raise ValueError(f"subset: classes must be ints or class names, got {c!r}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"subset: repeated classes in {classes}")
        return Dataset(self.source, [self.classes[i] for i in ids], self.perm)

    def sample_classes(self, rng, n_way: int) -> Dataset:
        """A random ``n_way``-class subset (classes in random order)."""
        n_way = _check_count("n_way", n_way)
        if n_way > self.n_classes:
            raise ValueError(f"n_way={n_way} is larger than the {self.n_classes} classes of {self.name}")
        return self.subset(as_rng(rng).permutation(self.n_classes)[:n_way].tolist())

    def permuted(self, perm) -> Dataset:
        """The view whose inputs are ``x[:, perm]``; composes with an existing permutation."""
        perm = np.asarray(perm)
        if (perm.shape != (self.n_features,) or perm.dtype.kind not in "iu"
                or not np.array_equal(np.sort(perm), np.arange(self.n_features))):
            raise ValueError(f"permuted: perm must be a permutation of range({self.n_features}), "
                             f"got shape {perm.shape} dtype {perm.dtype}")
        total = perm if self.perm is None else self.perm[perm]
        return Dataset(self.source, self.classes, total)

    def random_permutation(self, rng) -> np.ndarray:
        """A uniformly random permutation of the input features (for :meth:`permuted`)."""
        return as_rng(rng).permutation(self.n_features)

    # -- batches ------------------------------------------------------------------
    def _finish(self, x):
        return x if self.perm is None else np.ascontiguousarray(x[:, self.perm])

    def unlabeled_batch(self, rng, batch_size: int, split: str = "train", dtype=None) -> np.ndarray:
        """Examples drawn i.i.d. uniformly (with replacement), without labels.

        Parameters
        ----------
        rng : numpy.random.Generator or int
            The source of the draws (an int is a seed).
        batch_size : int
            B, the examples to draw.
        split : {"train", "test"}
            The split to draw from.
        dtype : dtype, optional
            The floating dtype of the result (float32 by default).

        Returns
        -------
        ndarray, shape [B, n_features]
        """
        split, dtype = check_split(split), check_dtype(dtype)
        return self.realise([self.unlabeled_request(rng, batch_size, split)], split, dtype)[0]

    def labeled_batch(self, rng, k_per_class: int, split: str = "train", dtype=None):
        """A labeled batch of ``k_per_class`` examples of every class, class-major order.

        Each class contributes k distinct examples. An augmented source draws an example again
        (with fresh augmentation) only when k exceeds its count, after using every example of
        the class; any other source raises ``ValueError`` if k exceeds the count of some class.

        Parameters
        ----------
        rng : numpy.random.Generator or int
            The source of the draws (an int is a seed).
        k_per_class : int
            k, the examples of each class.
        split : {"train", "test"}
            The split to draw from.
        dtype : dtype, optional
            The floating dtype of the result (float32 by default).

        Returns
        -------
        x : ndarray, shape [K k, n_features]
            The inputs, the k examples of class 0 first.
        y : ndarray, shape [K k, K + n_reg]
            One-hot labels, then the regression targets.
        """
        split, dtype = check_split(split), check_dtype(dtype)
        return self.realise([self.labeled_request(rng, k_per_class, split)], split, dtype)[0]

    # -- batches in two phases: every random draw first, then the rows of many batches at once ----
    def unlabeled_request(self, rng, batch_size: int, split: str = "train") -> BatchRequest:
        """The random draws of :meth:`unlabeled_batch` (the same numbers from ``rng``, in its order)."""
        rng, split = as_rng(rng), check_split(split)
        batch_size = _check_count("batch_size", batch_size)
        pool = self._pool[split]
        if len(pool) == 0:
            raise ValueError(f"{self.name}: split {split!r} has no examples of the selected classes")
        idx = pool[rng.integers(len(pool), size=batch_size)]
        return BatchRequest(idx, self.source.draw_params(rng, len(idx)), None)

    def labeled_request(self, rng, k_per_class: int, split: str = "train") -> BatchRequest:
        """The random draws of :meth:`labeled_batch` (the same numbers from ``rng``, in its order)."""
        rng, split = as_rng(rng), check_split(split)
        k = _check_count("k_per_class", k_per_class)
        counts = self.class_counts(split)
        if counts.min() == 0 or (not self.augmented and k > counts.min()):
            c = int(np.argmin(counts))
            raise ValueError(
                f"k_per_class={k} is larger than the {counts[c]} examples of class "
                f"{self.class_names[c]!r} in the {split} split of {self.name}")
        picks = []
        for members in self._by_class[split]:
            reps = -(-k // len(members))
            order = np.concatenate([rng.permutation(len(members)) for _ in range(reps)])[:k]
            picks.append(members[order])
        idx = np.concatenate(picks)
        return BatchRequest(idx, self.source.draw_params(rng, len(idx)), k)

    def rows(self, requests, split: str = "train", dtype=None, *, permute: bool = True):
        """The rows of all ``requests`` (from this view, one split) in order, made by one call of the
        source (and one gather of the permutation; ``permute=False`` leaves the inputs unpermuted):
        ``(x [rows, n_features], reg [rows, n_reg])``. Row for row what :meth:`unlabeled_batch` and
        :meth:`labeled_batch` compute for the same draws."""
        split, dtype = check_split(split), check_dtype(dtype)
        idx = np.concatenate([r.idx for r in requests])
        x, reg = self.source.realise(idx, self.source.join_params([r.params for r in requests]), split, dtype)
        return (self._finish(x) if permute else x), reg

    def targets(self, request: BatchRequest, reg: np.ndarray, dtype=None) -> np.ndarray:
        """``y [n, n_classes + n_reg]`` of a labeled request: its one-hot classes, then ``reg`` (its rows)."""
        n = len(request.idx)
        y = np.zeros((n, self.n_classes + self.n_reg), dtype=check_dtype(dtype))
        y[np.arange(n), np.repeat(np.arange(self.n_classes), request.k_per_class)] = 1
        y[:, self.n_classes:] = reg
        return y

    def realise(self, requests, split: str = "train", dtype=None) -> list:
        """The batches of ``requests``: for each, ``x`` (unlabeled) or ``(x, y)`` (labeled), exactly
        what :meth:`unlabeled_batch` / :meth:`labeled_batch` return for the same draws."""
        x, reg = self.rows(requests, split, dtype)
        out, start = [], 0
        for r in requests:
            part = slice(start, start + len(r.idx))
            out.append(x[part] if r.k_per_class is None else (x[part], self.targets(r, reg[part], dtype)))
            start = part.stop
        return out

    def support_query_batch(self, rng, k_shot: int, k_query: int, split: str = "test", dtype=None):
        """A few-shot trial ``(x_s, y_s, x_q, y_q)``: ``k_shot`` support and ``k_query`` query rows per
        class (each class-major, targets as :meth:`labeled_batch`) whose examples are disjoint.

        Support and query are never the same example, augmented or not. An
        unaugmented source draws ``k_shot + k_query`` distinct examples per
        class (:meth:`labeled_batch`) and splits them. An augmented source
        (glyphs: an example is one font's glyph) splits each class's examples
        at random into a support part (``round(n k_shot / (k_shot + k_query))``,
        kept between 1 and n-1) and a query part, and draws each set's rows from
        its own part, with fresh augmentation when a part has fewer examples than
        rows. A class with fewer than 2 examples (augmented) or fewer than
        ``k_shot + k_query`` (otherwise) raises ``ValueError``.
        """
        rng, split, dtype = as_rng(rng), check_split(split), check_dtype(dtype)
        k_shot, k_query = _check_count("k_shot", k_shot), _check_count("k_query", k_query)
        n_cls = self.n_classes
        if not self.augmented:
            x, y = self.labeled_batch(rng, k_shot + k_query, split=split, dtype=dtype)
            support = np.tile(np.arange(k_shot + k_query) < k_shot, n_cls)
            return x[support], y[support], x[~support], y[~support]
        counts = self.class_counts(split)
        if counts.min() < 2:
            c = int(np.argmin(counts))
            raise ValueError(f"class {self.class_names[c]!r} has {counts[c]} example(s) in the {split} split of "
                             f"{self.name}; support and query need at least 2 different ones")

        def cycle(members, k):
            reps = -(-k // len(members))
            return members[np.concatenate([rng.permutation(len(members)) for _ in range(reps)])[:k]]
        picks_s, picks_q = [], []
        for members in self._by_class[split]:
            n = len(members)
            order = members[rng.permutation(n)]
            n_s = min(max(int(np.floor(n * k_shot / (k_shot + k_query) + 0.5)), 1), n - 1)
            picks_s.append(cycle(order[:n_s], k_shot))
            picks_q.append(cycle(order[n_s:], k_query))
        idx = np.concatenate(picks_s + picks_q)
        x, reg = self.source.draw(rng, idx, split, dtype)
        labels = np.concatenate([np.repeat(np.arange(n_cls), k_shot), np.repeat(np.arange(n_cls), k_query)])
        y = np.zeros((len(idx), n_cls + self.n_reg), dtype=dtype)
        y[np.arange(len(idx)), labels] = 1
        y[:, n_cls:] = reg
        x = self._finish(x)
        m = n_cls * k_shot
        return x[:m], y[:m], x[m:], y[m:]

    def without(self, names) -> Dataset:
        """The view without the classes ``names``: class names, or names of the source's class sets
        (``source.class_sets``, e.g. ``"digits"`` for glyphs), which remove every class of the set
        the view has. Unknown names raise ``ValueError``; labels become 0..n-1 in the remaining order."""
        if isinstance(names, str):
            names = (names,)
        sets = getattr(self.source, "class_sets", {}) or {}
        drop = set()
        own = self.class_names
        for name in names:
            if name in sets:
                drop |= {c for c in sets[name] if c in own}
            elif name in own:
                drop.add(name)
            else:
                known = f"; class sets: {', '.join(sets)}" if sets else ""
                raise ValueError(f"{self.name}: no class or class set named {name!r}{known}")
        keep = [i for i, c in enumerate(own) if c not in drop]
        if not keep:
            raise ValueError(f"{self.name}: excluding {list(names)} leaves no class")
        return self.subset(keep)

    def arrays(self, split: str = "test", dtype=None):
        """Every example of ``split`` without augmentation: ``(x [n, F], labels [n] int)``."""
        split, dtype = check_split(split), check_dtype(dtype)
        x = self.source.clean(self._pool[split], split, dtype)
        return self._finish(x), self._local[split].copy()
