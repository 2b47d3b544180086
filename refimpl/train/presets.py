"""Meta-training settings (SPEC 7): :class:`TrainConfig` and the presets ``tiny``, ``mid``, ``small``, ``mixture``,
``paper`` (the names of :data:`refimpl.config.PRESET_NAMES`; a preset's ``model`` is ``refimpl.preset`` of its name).

A :class:`TrainConfig` is frozen and validated on construction; it holds the
rule's sizes (a :class:`refimpl.config.Config`; its ``layer_sizes[-1]`` is
the fixed top width N^L of every sampled base model, the other entries of
``layer_sizes`` are not used for training), the task distribution, the
schedules, the optimiser, and the run bookkeeping. It round-trips through
JSON exactly (``to_json`` / ``from_json``).

Everything that shapes the trajectory of a run (and therefore must not
change when a run is resumed) is a field here, except ``n_steps``, the
number of meta-steps to run: the schedules do not depend on it, so a run
stopped after k steps and continued to n is the run of n steps.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from refimpl.config import PRESET_NAMES, Config, JsonFields, preset as model_preset
from refimpl.validate import fail, is_int as _is_int, is_number as _is_num

DTYPES = ("float32", "float64")

_PAIR_INT_FIELDS = ("n_way", "depth", "width", "unroll_start", "unroll_end")
_PROBABILITY_FIELDS = ("p_permute", "p_task_dropout", "p_example_dropout", "p_x_shift")

#: Fields added after runs had been checkpointed without them. A stored config that
#: lacks one means its default, which reproduces what those runs did.
_LATER_FIELDS = ("n_way_choices",) + _PROBABILITY_FIELDS + ("dropout_rate", "max_x_shift", "exclude_classes")
_POS_INT_FIELDS = ("k_shot", "tasks_per_step", "n_steps", "checkpoint_every")
_NONNEG_INT_FIELDS = ("unroll_ramp_steps", "budget_ramp_steps", "seed")


_fail = functools.partial(fail, "train config")


def _int_pair(name, value, minimum=1) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        _fail(f"field '{name}' must be a pair (lo, hi) of integers, got {value!r}")
    value = tuple(value)
    if len(value) != 2 or not all(_is_int(v) for v in value):
        _fail(f"field '{name}' must be a pair (lo, hi) of integers, got {value!r}")
    lo, hi = int(value[0]), int(value[1])
    if lo < minimum or hi < lo:
        _fail(f"field '{name}' must satisfy {minimum} <= lo <= hi, got {(lo, hi)}")
    return (lo, hi)


@dataclass(frozen=True)
class TrainConfig(JsonFields):
    """Meta-training settings. Ranges are inclusive ``(lo, hi)`` pairs.

    Task distribution (SPEC 7): ``datasets`` (names for
    :func:`refimpl.data.get_dataset`, drawn uniformly: built in, registered
    with :func:`refimpl.data.register_dataset` in the process that trains,
    or dataset ``.npz`` paths; a name may repeat to weight it), ``n_way`` (classes
    per task, uniform integer), ``k_shot`` (examples per class in each
    labeled batch, so n_label = n_way * k_shot), ``depth`` (number of hidden
    layers between the input and the top layer, uniform integer; the base
    model has L = depth + 1 layers), ``width`` (hidden widths, each
    log-uniform then rounded), top width ``model.layer_sizes[-1]``.

    Schedules (step k = number of meta-steps already taken):
    unroll range (lo, hi) moves linearly from ``unroll_start`` to
    ``unroll_end`` over ``unroll_ramp_steps``, each end rounded to the
    nearest integer (halves up); U is uniform in [lo, hi]. Inner budget
    ``max(1, round(s + s n))``, n ~ N(0, 1), s moving linearly from
    ``budget_scale_start`` to ``budget_scale_end`` over ``budget_ramp_steps``.
    Learning rate ``lr[0]`` for k < ``lr_boundaries[0]``, ``lr[1]`` for k <
    ``lr_boundaries[1]``, else ``lr[2]``.

    The paper's further task variety (appendix "Training Data Distribution"),
    every part off by default: ``n_way_choices`` (when non-empty, n_way is
    drawn uniformly from these values instead of the ``n_way`` range, capped
    at the dataset's class count; the paper mixes 10, 13, 14, 17, 20 and 30);
    ``p_permute`` (probability that a task permutes its inputs; otherwise
    the identity); per task, with probabilities ``p_task_dropout``,
    ``p_example_dropout`` and ``p_x_shift``: one input dropout mask fixed for
    the task, a fresh mask per example (each at ``dropout_rate``), and a
    random horizontal shift of each image by up to ``max_x_shift`` pixels
    (see :mod:`refimpl.train.tasks`).

    Controls: ``exclude_classes`` (class names or class-set names such as
    ``"digits"``, :meth:`refimpl.data.base.Dataset.without`) are never
    sampled into a task of any dataset that has them.
    """

    _ERROR_PREFIX = "train config"   # not a field: no annotation

    name: str = "custom"
    model: Config = dataclasses.field(default_factory=Config)
    datasets: tuple = ("glyphs",)
    split: str = "train"
    n_way: tuple = (10, 30)
    k_shot: int = 5
    depth: tuple = (1, 4)
    width: tuple = (64, 512)
    tasks_per_step: int = 256
    unroll_start: tuple = (2, 4)
    unroll_end: tuple = (8, 15)
    unroll_ramp_steps: int = 50_000
    budget_scale_start: float = 20.0
    budget_scale_end: float = 20_000.0
    budget_ramp_steps: int = 5_000
    lr: tuple = (3e-4, 1e-4, 2e-5)
    lr_boundaries: tuple = (100_000, 150_000)
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_eps: float = 1e-8
    clip_norm: float = 5.0
    n_steps: int = 200_000
    checkpoint_every: int = 100
    dtype: str = "float32"
    seed: int = 0
    n_way_choices: tuple = ()
    p_permute: float = 1.0
    p_task_dropout: float = 0.0
    p_example_dropout: float = 0.0
    p_x_shift: float = 0.0
    dropout_rate: float = 0.2
    max_x_shift: int = 2
    exclude_classes: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            _fail(f"field 'name' must be a non-empty string, got {self.name!r}")
        if not isinstance(self.model, Config):
            _fail(f"field 'model' must be a refimpl.config.Config, got {type(self.model).__name__}")
        ds = self.datasets
        if isinstance(ds, str) or not hasattr(ds, "__iter__"):
            _fail(f"field 'datasets' must be a sequence of dataset names, got {ds!r}")
        ds = tuple(ds)
        if not ds or not all(isinstance(d, str) and d for d in ds):
            _fail(f"field 'datasets' must be a non-empty sequence of names, got {ds!r}")
        from refimpl.data import is_dataset_name, list_datasets
        unknown = [d for d in ds if not is_dataset_name(d)]
        if unknown:
            _fail(f"unknown dataset(s) {unknown}; known: {', '.join(list_datasets())}, a name given to "
                  f"refimpl.data.register_dataset, or the path of a dataset .npz")
        object.__setattr__(self, "datasets", ds)
        if self.split not in ("train", "test"):
            _fail(f"field 'split' must be 'train' or 'test', got {self.split!r}")
        for name in _PAIR_INT_FIELDS:
            object.__setattr__(self, name, _int_pair(name, getattr(self, name),
                                                     minimum=2 if name == "n_way" else 1))
        for name in _POS_INT_FIELDS:
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                _fail(f"field '{name}' must be a positive integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        for name in _NONNEG_INT_FIELDS:
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                _fail(f"field '{name}' must be a non-negative integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        for name in ("budget_scale_start", "budget_scale_end", "adam_eps", "clip_norm"):
            v = getattr(self, name)
            if not _is_num(v) or not math.isfinite(v) or v <= 0:
                _fail(f"field '{name}' must be a positive finite number, got {v!r}")
            object.__setattr__(self, name, float(v))
        for name in ("adam_beta1", "adam_beta2"):
            v = getattr(self, name)
            if not _is_num(v) or not 0 <= v < 1:
                _fail(f"field '{name}' must be in [0, 1), got {v!r}")
            object.__setattr__(self, name, float(v))
        lr = tuple(self.lr) if hasattr(self.lr, "__iter__") else self.lr
        if (not isinstance(lr, tuple) or len(lr) != 3
                or not all(_is_num(v) and math.isfinite(v) and v > 0 for v in lr)):
            _fail(f"field 'lr' must be three positive learning rates, got {self.lr!r}")
        object.__setattr__(self, "lr", tuple(float(v) for v in lr))
        b = tuple(self.lr_boundaries) if hasattr(self.lr_boundaries, "__iter__") else self.lr_boundaries
        if (not isinstance(b, tuple) or len(b) != 2 or not all(_is_int(v) and v >= 0 for v in b)
                or b[0] > b[1]):
            _fail(f"field 'lr_boundaries' must be two step counts a <= b, got {self.lr_boundaries!r}")
        object.__setattr__(self, "lr_boundaries", tuple(int(v) for v in b))
        choices = self.n_way_choices
        if isinstance(choices, (str, bytes)) or not hasattr(choices, "__iter__"):
            _fail(f"field 'n_way_choices' must be a sequence of integers >= 2, got {choices!r}")
        choices = tuple(choices)
        if not all(_is_int(c) and c >= 2 for c in choices):
            _fail(f"field 'n_way_choices' must be a sequence of integers >= 2, got {choices!r}")
        object.__setattr__(self, "n_way_choices", tuple(int(c) for c in choices))
        for name in _PROBABILITY_FIELDS:
            v = getattr(self, name)
            if not _is_num(v) or not 0 <= v <= 1:
                _fail(f"field '{name}' must be a probability in [0, 1], got {v!r}")
            object.__setattr__(self, name, float(v))
        if not _is_num(self.dropout_rate) or not 0 <= self.dropout_rate < 1:
            _fail(f"field 'dropout_rate' must be in [0, 1), got {self.dropout_rate!r}")
        object.__setattr__(self, "dropout_rate", float(self.dropout_rate))
        if not _is_int(self.max_x_shift) or self.max_x_shift < 0:
            _fail(f"field 'max_x_shift' must be a non-negative integer, got {self.max_x_shift!r}")
        object.__setattr__(self, "max_x_shift", int(self.max_x_shift))
        ex = self.exclude_classes
        if isinstance(ex, (str, bytes)) or not hasattr(ex, "__iter__") or not all(
                isinstance(c, str) and c for c in ex):
            _fail(f"field 'exclude_classes' must be a sequence of class or class-set names, got {ex!r}")
        object.__setattr__(self, "exclude_classes", tuple(ex))
        if self.dtype not in DTYPES:
            _fail(f"field 'dtype' must be one of {DTYPES}, got {self.dtype!r}")

    # -- derived ----------------------------------------------------------------------
    @property
    def top_width(self) -> int:
        """N^L of every sampled base model."""
        return self.model.layer_sizes[-1]

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    # -- conversions --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Config):
                v = v.to_dict()
            elif isinstance(v, tuple):
                v = list(v)
            d[f.name] = v
        return d

    @property
    def input_augmentation(self) -> bool:
        """Whether any per-task or per-example input augmentation is switched on."""
        return self.p_task_dropout > 0 or self.p_example_dropout > 0 or self.p_x_shift > 0

    @classmethod
    def from_dict(cls, d):
        """As :meth:`JsonFields.from_dict`; a field added later (``_LATER_FIELDS``) may be absent."""
        if isinstance(d, dict):
            defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.name in _LATER_FIELDS}
            d = {**{k: v for k, v in defaults.items() if k not in d}, **d}
        return super().from_dict(d)

    @classmethod
    def _from_fields(cls, d: dict) -> TrainConfig:
        d["model"] = Config.from_dict(d["model"])
        return cls(**d)


def _tiny() -> TrainConfig:
    # Model preset tiny (B=7, D=6, Hd=11, Hs=12, T=13, R=2, n_eval=4, top 8);
    # a handful of short unrolls on 2-4-way glyph tasks: seconds per run.
    return TrainConfig(
        name="tiny", model=model_preset("tiny"), datasets=("glyphs",),
        n_way=(2, 4), k_shot=2, depth=(1, 2), width=(6, 12), tasks_per_step=2,
        unroll_start=(1, 2), unroll_end=(2, 3), unroll_ramp_steps=20,
        budget_scale_start=3.0, budget_scale_end=8.0, budget_ramp_steps=10,
        lr=(3e-4, 1e-4, 2e-5), lr_boundaries=(20, 30),
        n_steps=30, checkpoint_every=5)


def _mid() -> TrainConfig:
    # Model preset mid (B=32, D=8, Hd=16, Hs=24, T=20, R=3, n_eval=5, top 16) on 5-10-way glyph
    # tasks with short unrolls: between tiny (a smoke test) and small (a useful run).
    return TrainConfig(
        name="mid", model=model_preset("mid"), datasets=("glyphs",),
        n_way=(5, 10), k_shot=5, depth=(1, 2), width=(16, 48), tasks_per_step=2,
        unroll_start=(1, 2), unroll_end=(2, 4), unroll_ramp_steps=100,
        budget_scale_start=5.0, budget_scale_end=20.0, budget_ramp_steps=50,
        lr=(1e-3, 3e-4, 1e-4), lr_boundaries=(100, 150),
        n_steps=200, checkpoint_every=20)


def _small() -> TrainConfig:
    # A useful run in about an hour on one core: batch 32, small rule widths,
    # narrow base models, schedules scaled down. The inner step lr_phi is
    # 1e-2 (paper 3e-4) so that a task's phi moves within the hundred or so
    # inner steps a short run can afford (EMA time constant 100 steps).
    # Labelled batches follow SPEC 7: 10 examples per class. Glyphs rotated by up
    # to 30 degrees, not shifted, and budgets of about 45 inner steps: how these
    # were chosen, on glyphs only, is docs/transfer.md, section 5.
    return TrainConfig(
        name="small", model=model_preset("small"), datasets=("glyphs_rotation",),
        n_way=(10, 20), k_shot=10, depth=(1, 2), width=(32, 96), tasks_per_step=4,
        unroll_start=(2, 3), unroll_end=(3, 6), unroll_ramp_steps=800,
        budget_scale_start=20.0, budget_scale_end=40.0, budget_ramp_steps=300,
        lr=(1e-3, 3e-4, 1e-4), lr_boundaries=(1000, 1400),
        n_steps=2000, checkpoint_every=50)


def _mixture() -> TrainConfig:
    # The small preset's rule sizes, batch and inner lr on the paper's task distribution (appendix
    # "Training Data Distribution"): glyphs at 10x10, 14x14 and 20x20, the letter, math and currency
    # subsets, three augmentations (none; rotations to 30 degrees, the small preset's; the paper's
    # rotations to 180 degrees with shifts to 5 px), the paper's n_way values, per-task and
    # per-example input dropout and horizontal shifts on a tenth of the tasks each. The paper's
    # shifted augmentation gets one draw in nine: with shifts the small preset's runs learned to
    # encode the shift targets instead of the classes (see _small). Base models of 1-4 hidden layers
    # 32-160 wide (log-uniform, so 64 and 128 are inside) and a 32-wide top layer cover the small
    # evaluation net [n_in, 64, 64, 32] and the paper's [n_in, 128 x 4, 32]. Inner horizons grow late
    # in training: budgets from about 20 to 150 inner steps over 1200 meta-steps, unrolls from 2-3 to
    # 4-8 steps.
    model = model_preset("mixture")
    datasets = ("glyphs_rotation", "glyphs_rotation", "glyphs_plain", "glyphs_paper_aug", "glyphs10_rotation",
                "glyphs20_rotation", "glyphs_letters_rotation", "glyphs_math_rotation", "glyphs_currency_rotation")
    return TrainConfig(
        name="mixture", model=model, datasets=datasets,
        n_way=(10, 30), n_way_choices=(10, 13, 14, 17, 20, 30), k_shot=10, depth=(1, 4), width=(32, 160),
        tasks_per_step=4, unroll_start=(2, 3), unroll_end=(4, 8), unroll_ramp_steps=1200,
        budget_scale_start=20.0, budget_scale_end=150.0, budget_ramp_steps=1200,
        lr=(1e-3, 3e-4, 1e-4), lr_boundaries=(1000, 1400),
        p_task_dropout=0.1, p_example_dropout=0.1, p_x_shift=0.1, dropout_rate=0.2, max_x_shift=2,
        n_steps=1600, checkpoint_every=25)


def _paper() -> TrainConfig:
    # SPEC 1 paper sizes and the paper's schedules (appendix); 256 tasks per meta-step.
    return TrainConfig(name="paper", model=model_preset("paper"))


_PRESETS = {"tiny": _tiny, "mid": _mid, "small": _small, "mixture": _mixture, "paper": _paper}
assert tuple(_PRESETS) == PRESET_NAMES, "one set of preset names for refimpl.preset and the trainer"


def train_preset(name: str) -> TrainConfig:
    """The meta-training preset ``name`` (one of :data:`PRESET_NAMES`: "tiny", "mid", "small", "mixture", "paper")."""
    try:
        return _PRESETS[name]()
    except (KeyError, TypeError):
        raise ValueError(f"train config: unknown preset {name!r}; known: {', '.join(_PRESETS)}") from None
