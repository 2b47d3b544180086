"""Tasks of meta-training (SPEC 7): sampling, per-task state, and the batches of one unroll.

A task is a dataset with an n-way class subset, a base architecture
(``layer_sizes``: input width of the dataset, sampled hidden widths, the
fixed top width), a random input permutation, a random phi_0 and a total
inner-step budget. Its *state* adds the current phi, the number of inner
steps done, and the state of the task slot's random generator, so a task is
fully described by plain data (JSON + arrays) and can be checkpointed.

Every random choice of a slot comes from that slot's generator, in a fixed
order; see :func:`sample_task` and :func:`draw_unroll`.

Input augmentation (the paper's appendix, "Training Data Distribution"; off
unless the TrainConfig's probabilities are positive), applied to the
unpermuted inputs of every batch of a task, unlabeled and labeled alike,
before the task's permutation:

- a horizontal shift of each image by an integer number of pixels, uniform
  in ``[-max_x_shift, max_x_shift]``, fresh per example, zeros shifted in
  (inputs without an image shape are shifted along their feature axis);
- a per-example dropout mask: each input set to 0 with probability
  ``dropout_rate``, fresh per example;
- a per-task dropout mask: the same for every example of the task.

Which of the three a task uses, and its fixed mask, are drawn by
:func:`task_augmentation` from a generator seeded by the task's own
definition (dataset, classes, permutation, architecture, budget), so a
checkpoint that stores the task also determines them. Per-example shifts
and masks come from the slot's generator, after each batch's own draws.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from refimpl.params import init_phi
from refimpl.train.optim import sample_budget

_DATASETS: dict = {}


def dataset(name: str):
    """The full (all classes, unpermuted) dataset ``name``, built once per process (a registered
    dataset or a dataset .npz is looked up each time: refimpl.data keeps those)."""
    from refimpl.data import DATASETS, get_dataset

    if name not in DATASETS:
        return get_dataset(name)
    if name not in _DATASETS:
        _DATASETS[name] = get_dataset(name)
    return _DATASETS[name]


def training_view(tc, name: str):
    """The classes of dataset ``name`` that tasks are sampled from: all but ``tc.exclude_classes``
    (names a dataset does not have are ignored; a class set removes those of its classes it has)."""
    full = dataset(name)
    if not tc.exclude_classes:
        return full

    def known(ds):
        return set(getattr(ds.source, "class_sets", {}) or {}) | set(ds.class_names)
    unknown = set(tc.exclude_classes) - set().union(*(known(dataset(d)) for d in tc.datasets))
    if unknown:
        raise ValueError(f"exclude_classes: no dataset of {list(tc.datasets)} has a class or class set "
                         f"named {sorted(unknown)[0]!r}")
    names = [c for c in tc.exclude_classes if c in known(full)]
    return full.without(names) if names else full


class TaskDef(NamedTuple):
    """What defines a task (fixed for its lifetime)."""
    dataset: str            # name for refimpl.data.get_dataset
    classes: tuple          # source class ids, in label order (n_way of them)
    perm: np.ndarray        # input permutation, int64 [n_features]
    layer_sizes: tuple      # [N^0, hidden..., N^L]
    budget: int             # total inner steps

    @property
    def n_way(self) -> int:
        return len(self.classes)

    def view(self):
        """The task's dataset view: its classes (labels 0..n_way-1) and permutation."""
        return dataset(self.dataset).subset(list(self.classes)).permuted(self.perm)

    def config(self, model):
        """The rule config for this task's architecture."""
        return model.replace(layer_sizes=tuple(self.layer_sizes))

    def to_json_dict(self) -> dict:
        """The JSON part (perm and classes are stored as arrays by the checkpoint too)."""
        return {"dataset": self.dataset, "classes": [int(c) for c in self.classes],
                "layer_sizes": [int(s) for s in self.layer_sizes], "budget": int(self.budget)}


class TaskState(NamedTuple):
    """A task slot's persistent truncated state."""
    task: TaskDef
    phi: dict               # current base-model parameters
    steps_done: int         # inner steps applied so far
    serial: int             # how many tasks this slot has drawn (1 for its first)
    rng_state: dict         # the slot generator's bit_generator.state (plain JSON data)

    @property
    def remaining(self) -> int:
        return self.task.budget - self.steps_done


def rng_from_state(state: dict) -> np.random.Generator:
    """A new Generator whose bit generator is set to ``state`` (a ``bit_generator.state`` dict)."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    bitgen_cls = getattr(np.random, str(name), None) if name else None
    if bitgen_cls is None or not isinstance(bitgen_cls, type) or not issubclass(bitgen_cls, np.random.BitGenerator):
        raise ValueError(f"rng state names an unknown bit generator {name!r}")
    bg = bitgen_cls()
    bg.state = state
    return np.random.Generator(bg)


def sample_architecture(tc, n_features: int, rng: np.random.Generator) -> tuple:
    """``[n_features, w_1..w_depth, N^L]``: depth uniform in ``tc.depth``, widths log-uniform in
    ``tc.width`` (rounded to the nearest integer, halves up, and kept inside the range)."""
    depth = int(rng.integers(tc.depth[0], tc.depth[1] + 1))
    lo, hi = tc.width
    u = rng.uniform(math.log(lo), math.log(hi), size=depth)
    widths = np.clip(np.floor(np.exp(u) + 0.5).astype(np.int64), lo, hi)
    return (int(n_features), *(int(w) for w in widths), tc.top_width)


def sample_task(tc, k: int, rng: np.random.Generator) -> tuple[TaskDef, dict]:
    """A new task for first use at meta-step k, and its phi_0.

    Draw order: dataset index, n_way, classes (again while an unaugmented dataset's draw has a class
    with fewer than k_shot examples), (whether to permute, only when
    ``p_permute < 1``), permutation, architecture, phi_0, budget.
    """
    name = tc.datasets[int(rng.integers(len(tc.datasets)))]
    full = training_view(tc, name)
    if tc.n_way_choices:
        n_way = min(tc.n_way_choices[int(rng.integers(len(tc.n_way_choices)))], full.n_classes)
    else:
        hi = min(tc.n_way[1], full.n_classes)
        if tc.n_way[0] > hi:
            raise ValueError(f"n_way range {tc.n_way} does not fit {name}'s {full.n_classes} classes")
        n_way = int(rng.integers(tc.n_way[0], hi + 1))
    sub = full.sample_classes(rng, n_way)
    # An unaugmented dataset cannot give k_shot distinct examples of a class that has fewer (the
    # glyph '∅' has 8 train fonts): draw the subset again. Only such draws (which would otherwise
    # fail in draw_unroll) consume more of the generator, so every other run is unchanged.
    while not full.augmented and sub.class_counts(tc.split).min() < tc.k_shot:
        if int((full.class_counts(tc.split) >= tc.k_shot).sum()) < n_way:
            raise ValueError(f"{name} has fewer than {n_way} classes with {tc.k_shot} examples in its "
                             f"{tc.split} split")
        sub = full.sample_classes(rng, n_way)
    permute = True if tc.p_permute >= 1 else bool(rng.random() < tc.p_permute)
    perm = full.random_permutation(rng).astype(np.int64)
    if not permute:
        perm = np.arange(full.n_features, dtype=np.int64)
    sizes = sample_architecture(tc, full.n_features, rng)
    phi = init_phi(tc.model.replace(layer_sizes=sizes), rng, tc.np_dtype)
    budget = sample_budget(tc, k, rng)
    return TaskDef(name, tuple(int(c) for c in sub.classes), perm, sizes, budget), phi


def new_task_state(tc, k: int, rng: np.random.Generator, serial: int) -> TaskState:
    """Draw a task with ``rng`` (advancing it) and wrap it as a fresh state."""
    task, phi = sample_task(tc, k, rng)
    return TaskState(task, phi, 0, serial, rng.bit_generator.state)


class TaskAugmentation(NamedTuple):
    """A task's input augmentation (see the module docstring)."""
    x_shift: bool
    example_dropout: bool
    task_mask: np.ndarray | None     # [n_features] 0/1 in the unpermuted input order, or None


def task_augmentation(tc, task: TaskDef) -> TaskAugmentation:
    """The input augmentation of ``task``, a function of the task's definition alone."""
    entropy = [int(b) for b in task.dataset.encode()] + [int(c) for c in task.classes]
    entropy += [int(i) for i in task.perm] + [int(n) for n in task.layer_sizes] + [int(task.budget)]
    rng = np.random.default_rng(np.random.SeedSequence(entropy))
    x_shift, example, task_drop = rng.random(3) < (tc.p_x_shift, tc.p_example_dropout, tc.p_task_dropout)
    keep = rng.random(len(task.perm)) >= tc.dropout_rate
    mask = keep.astype(tc.np_dtype) if task_drop else None
    return TaskAugmentation(bool(x_shift), bool(example), mask)


def shift_columns(x: np.ndarray, shifts: np.ndarray, image_shape) -> np.ndarray:
    """Each row of ``x [n, F]`` shifted right by ``shifts[i]`` pixels along the image's last axis
    (``image_shape``; None: along the feature axis), zeros shifted in."""
    n = x.shape[0]
    rows = x.reshape(n, -1, x.shape[1]) if image_shape is None else x.reshape(n, *image_shape)
    width = rows.shape[-1]
    src = np.arange(width)[None, :] - np.asarray(shifts, np.int64)[:, None]        # [n, width]
    valid = (src >= 0) & (src < width)
    gathered = np.take_along_axis(rows, np.clip(src, 0, width - 1)[:, None, :], axis=2)
    return (gathered * valid[:, None, :]).reshape(n, -1).astype(x.dtype, copy=False)


def augment_inputs(tc, aug: TaskAugmentation, x: np.ndarray, rng, image_shape) -> np.ndarray:
    """The unpermuted inputs ``x [n, F]`` of a batch with the task's augmentation applied."""
    if aug.x_shift:
        x = shift_columns(x, rng.integers(-tc.max_x_shift, tc.max_x_shift + 1, size=x.shape[0]), image_shape)
    if aug.example_dropout:
        x = x * (rng.random(x.shape) >= tc.dropout_rate).astype(x.dtype)
    if aug.task_mask is not None:
        x = x * aug.task_mask
    return x


def draw_unroll(tc, task: TaskDef, U: int, rng: np.random.Generator):
    """The batches of a U-step unroll: ``(x [U,B,N0], x_a, x_b [U,n_eval,n_label,N0], y_a, y_b)``.

    Draw order: the U unlabeled batches, then for u = 0..U-1 and e = 0..n_eval-1
    the pair (x_a, y_a), (x_b, y_b). n_label = n_way * k_shot. With input
    augmentation, each batch's augmentation draws follow its own draws.

    Every random number is drawn first, batch by batch in that order (the
    numbers :func:`draw_unroll_plain` draws); then the rows of all U x B
    unlabeled and U x n_eval x 2 x n_label labeled examples are made by one
    call of the dataset, augmented and permuted at once. The result is
    :func:`draw_unroll_plain`'s, bit for bit.
    """
    dtype, split, B, E, K = tc.np_dtype, tc.split, tc.model.batch_size, tc.model.n_eval, tc.k_shot
    augment = tc.input_augmentation
    view = dataset(task.dataset).subset(list(task.classes)) if augment else task.view()
    aug = task_augmentation(tc, task) if augment else None
    requests, shifts, keeps = [], [], []

    def request(req):
        requests.append(req)
        if aug is not None:                       # augment_inputs' draws, right after the batch's own
            n = len(req.idx)
            if aug.x_shift:
                shifts.append(rng.integers(-tc.max_x_shift, tc.max_x_shift + 1, size=n))
            if aug.example_dropout:
                keeps.append(rng.random((n, view.n_features)) >= tc.dropout_rate)

    for _ in range(U):
        request(view.unlabeled_request(rng, B, split))
    for _ in range(U * E * 2):                    # (u, e, a|b) in row-major order
        request(view.labeled_request(rng, K, split))
    x_all, reg = view.rows(requests, split, dtype, permute=not augment)
    if aug is not None:                           # augment_inputs on all rows at once, then the permutation
        if aug.x_shift:
            x_all = shift_columns(x_all, np.concatenate(shifts), view.image_shape)
        if aug.example_dropout:
            x_all = x_all * np.concatenate(keeps).astype(x_all.dtype)
        if aug.task_mask is not None:
            x_all = x_all * aug.task_mask
        x_all = np.ascontiguousarray(x_all[:, task.perm])
    F = x_all.shape[1]
    n = len(requests[-1].idx)
    x = x_all[:U * B].reshape(U, B, F)
    labeled = x_all[U * B:].reshape(U, E, 2, n, F)
    reg = reg[U * B:]
    y = np.stack([view.targets(r, reg[i * n:(i + 1) * n], dtype) for i, r in enumerate(requests[U:])])
    y = y.reshape(U, E, 2, n, y.shape[-1])
    x_a, x_b = np.ascontiguousarray(labeled[:, :, 0]), np.ascontiguousarray(labeled[:, :, 1])
    y_a, y_b = np.ascontiguousarray(y[:, :, 0]), np.ascontiguousarray(y[:, :, 1])
    return x, x_a, x_b, y_a, y_b


def draw_unroll_plain(tc, task: TaskDef, U: int, rng: np.random.Generator):
    """:func:`draw_unroll` batch by batch: the definition, written plainly (tests compare the two)."""
    dtype, split, B, E, K = tc.np_dtype, tc.split, tc.model.batch_size, tc.model.n_eval, tc.k_shot
    if tc.input_augmentation:
        view = dataset(task.dataset).subset(list(task.classes))
        aug = task_augmentation(tc, task)

        def finish(x):
            return np.ascontiguousarray(augment_inputs(tc, aug, x, rng, view.image_shape)[:, task.perm])
    else:
        view = task.view()

        def finish(x):
            return x
    x = np.stack([finish(view.unlabeled_batch(rng, B, split=split, dtype=dtype)) for _ in range(U)])

    def labeled():
        xl, yl = view.labeled_batch(rng, K, split=split, dtype=dtype)
        return finish(xl), yl
    pairs = [[(labeled(), labeled()) for _ in range(E)] for _ in range(U)]
    x_a = np.stack([np.stack([p[0][0] for p in row]) for row in pairs])
    y_a = np.stack([np.stack([p[0][1] for p in row]) for row in pairs])
    x_b = np.stack([np.stack([p[1][0] for p in row]) for row in pairs])
    y_b = np.stack([np.stack([p[1][1] for p in row]) for row in pairs])
    return x, x_a, x_b, y_a, y_b
