"""Hyper-parameters of the base model and the update rule (SPEC 1).

:class:`Config` holds exactly the SPEC 1 fields, with the ``paper`` preset's
values as defaults. It is frozen (hashable, safe to share) and validated on
construction, so a bad size or an unknown activation fails where it is made,
not deep inside a step. The presets ``tiny``, ``mid``, ``small`` and ``paper``
are in :data:`PRESETS`, the same names as the meta-training presets
(:func:`refimpl.train.train_preset`, whose ``model`` is this preset); the sizes a preset fixes that are *not* config fields
(n_label, n_cls, U: they are read from the arrays they describe) are in
:data:`PRESET_EXTRAS` for tests and golden files.

Kernel sizes are constants, not fields (SPEC 1): the first TopD convolution
has :data:`TOPD_KERNEL0` = 5 taps, every other convolution :data:`KERNEL` = 3.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from refimpl.ops.activations import ACTIVATIONS
from refimpl.validate import check_int, check_positive, fail

#: Number of statistics WeightStats returns per unit (SPEC 3).
N_STATS = 4


def check_kernel_size(name: str, k: int) -> int:
    """A convolution kernel size must be a positive odd int ("same" padding needs a centre tap)."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0 or k % 2 == 0:
        fail("config", f"kernel size {name} must be a positive odd integer, got {k!r}")
    return k


#: Taps of TopD's first convolution (ConvBatch on x^L, SPEC 4).
TOPD_KERNEL0 = check_kernel_size("TOPD_KERNEL0", 5)
#: Taps of every other convolution (TopD and ComputeH, SPEC 4).
KERNEL = check_kernel_size("KERNEL", 3)

_INT_FIELDS = ("batch_size", "delta_dims", "h_dims", "computeh_size", "topd_size",
               "readout_rank", "n_eval")
_POSITIVE_FLOAT_FIELDS = ("lr_phi", "ridge", "eps_phi", "eps_theta", "eps_d", "eps_s",
                          "eps_w", "eps_p")


_Fields = TypeVar("_Fields", bound="JsonFields")


class JsonFields:
    """JSON round trip, ``replace`` and ``diff`` for a frozen dataclass of settings.

    Subclasses set ``_ERROR_PREFIX`` and may override ``to_dict`` and
    ``_from_fields`` (to rebuild nested values); ``from_dict`` insists on
    exactly the dataclass's fields, so a stale or hand-edited file is named,
    not silently completed.
    """

    _ERROR_PREFIX = "config"

    @classmethod
    def _from_fields(cls, d: dict):
        return cls(**d)

    @classmethod
    def from_dict(cls: type[_Fields], d: dict[str, Any]) -> _Fields:
        """Inverse of ``to_dict``. Every field must be present, no other key."""
        if not isinstance(d, dict):
            fail(cls._ERROR_PREFIX, f"expected a mapping of fields, got {type(d).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(d) - set(names))
        missing = [n for n in names if n not in d]
        if unknown:
            fail(cls._ERROR_PREFIX, f"unknown field(s) {unknown}")
        if missing:
            fail(cls._ERROR_PREFIX, f"missing field(s) {missing}")
        return cls._from_fields(dict(d))

    def to_json(self) -> str:
        """Compact JSON text with every field (floats round-trip exactly); inverse of :meth:`from_json`."""
        return json.dumps(self.to_dict(), sort_keys=False)

    @classmethod
    def from_json(cls: type[_Fields], text: str) -> _Fields:
        """The settings written by :meth:`to_json`; every field must be present, no other key."""
        try:
            d = json.loads(text)
        except (TypeError, json.JSONDecodeError) as e:
            fail(cls._ERROR_PREFIX, f"not valid JSON: {e}")
        return cls.from_dict(d)

    def replace(self: _Fields, **changes: Any) -> _Fields:
        """A copy with some fields changed (validated like a new instance)."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            fail(self._ERROR_PREFIX, f"unknown field(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def diff(self, other: JsonFields) -> list[str]:
        """Names of the fields where ``self`` and ``other`` differ."""
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(other, f.name)]


@dataclass(frozen=True)
class Config(JsonFields):
    """The hyper-parameters of SPEC 1: sizes of the base model and of the rule, rates and epsilons.

    A frozen dataclass; the defaults are the ``paper`` preset (:func:`preset` gives the others).
    Every field is validated on construction (a wrong type or range raises one ``ValueError``
    naming the field). The shape letters the docstrings use come from these fields.

    Parameters
    ----------
    batch_size : int
        B, the examples in one unsupervised batch.
    layer_sizes : tuple of int
        [N^0, ..., N^L], the input size and the sizes of the L layers of the base MLP.
    delta_dims : int
        D, the channels of the top-down signal d^l [B, N^l, D].
    h_dims : int
        Hd, the channels of the per-unit features h^l [B, N^l, Hd].
    computeh_size : int
        Hs, the channels inside ComputeH's convolutions.
    topd_size : int
        T, the channels inside TopD's convolutions.
    readout_rank : int
        R, the rank of each low-rank readout (LowRR).
    lr_phi : float
        The rate of the exponential moving average that applies an update to phi (SPEC 4 step 5).
    ridge : float
        The ridge penalty of the meta-objective's readout (SPEC 6).
    n_eval : int
        The number of labeled pairs whose meta-objectives are averaged (SPEC 6).
    activation : str
        The base model's activation, one of the eight of SPEC 2.
    eps_phi, eps_theta, eps_d, eps_s, eps_w, eps_p : float
        The epsilons of the base model's batch norm, the rule's batch norms, the normalisation
        of the propagated error, WeightStats, the column normalisation of the weights in the
        planes, and the row normalisation of the meta-objective's predictions.

    Examples
    --------
    >>> import refimpl
    >>> config = refimpl.preset("tiny").replace(batch_size=8)
    >>> config.layer_sizes
    (15, 9, 14, 8)
    """

    batch_size: int = 128
    layer_sizes: tuple = (196, 128, 128, 128, 128, 32)
    delta_dims: int = 32
    h_dims: int = 64
    computeh_size: int = 64
    topd_size: int = 64
    readout_rank: int = 4
    lr_phi: float = 3e-4
    ridge: float = 0.1
    n_eval: int = 5
    activation: str = "relu"
    eps_phi: float = 1e-6
    eps_theta: float = 1e-3
    eps_d: float = 1e-6
    eps_s: float = 1e-8
    eps_w: float = 1e-8
    eps_p: float = 1e-12

    def __post_init__(self):
        for name in _INT_FIELDS:
            object.__setattr__(self, name, check_int("config", name, getattr(self, name), what="field"))
        sizes = self.layer_sizes
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            fail("config", f"field 'layer_sizes' must be a sequence of integers, got {sizes!r}")
        sizes = tuple(sizes)
        if len(sizes) < 2:
            fail("config", f"field 'layer_sizes' needs at least two entries (input and one layer), "
                  f"got {list(sizes)}")
        sizes = tuple(check_int("config", f"layer_sizes[{i}]", s, what="field") for i, s in enumerate(sizes))
        object.__setattr__(self, "layer_sizes", sizes)
        for name in _POSITIVE_FLOAT_FIELDS:
            object.__setattr__(self, name, check_positive("config", name, getattr(self, name), what="field"))
        if self.lr_phi > 1:
            fail("config", f"field 'lr_phi' is the EMA step of phi and must be in (0, 1], got {self.lr_phi!r}")
        if self.activation not in ACTIVATIONS:
            fail("config", f"field 'activation' must be one of {', '.join(ACTIVATIONS)}; "
                  f"got {self.activation!r}")

    # -- derived sizes ---------------------------------------------------------------
    @property
    def L(self) -> int:
        """Number of layers (len(layer_sizes) - 1)."""
        return len(self.layer_sizes) - 1

    # -- conversions -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (layer_sizes as a list)."""
        d = dataclasses.asdict(self)
        d["layer_sizes"] = list(self.layer_sizes)
        return d



#: SPEC 1 presets, by the names the meta-training presets share. A preset differs from ``paper`` only
#: in the fields it lists. ``small`` is the rule of the trainer's ``small`` preset (the shipped rule's):
#: its inner step lr_phi is 1e-2 so that phi moves within the hundred or so inner steps a short run affords.
PRESETS: dict[str, Config] = {
    "tiny": Config(batch_size=7, layer_sizes=(15, 9, 14, 8), delta_dims=6, h_dims=11,
                   computeh_size=12, topd_size=13, readout_rank=2, n_eval=4),
    "mid": Config(batch_size=32, layer_sizes=(64, 48, 40, 16), delta_dims=8, h_dims=16,
                  computeh_size=24, topd_size=20, readout_rank=3),
    "small": Config(batch_size=32, layer_sizes=(196, 64, 64, 16), delta_dims=8, h_dims=16,
                    computeh_size=16, topd_size=16, readout_rank=3, n_eval=2, lr_phi=1e-2),
    # the small rule with a 32-wide top layer, for the trainer's ``mixture`` preset (the paper's task distribution)
    "mixture": Config(batch_size=32, layer_sizes=(196, 64, 64, 32), delta_dims=8, h_dims=16,
                      computeh_size=16, topd_size=16, readout_rank=3, n_eval=2, lr_phi=1e-2),
    "paper": Config(),
}
#: The preset names, smallest first (refimpl.preset and the trainer's presets take the same ones).
PRESET_NAMES = tuple(PRESETS)

#: Preset sizes that are not config fields (they are read from the arrays):
#: labeled batch size n_label, number of classes n_cls, unroll length U.
PRESET_EXTRAS: dict[str, dict[str, int]] = {
    "tiny": {"n_label": 16, "n_cls": 5, "U": 3},
    "mid": {"n_label": 50, "n_cls": 10, "U": 2},
}


def check_config(op: str, config: object) -> Config:
    """``config`` must be a :class:`Config` (a stage's boundary check)."""
    if not isinstance(config, Config):
        fail(op, f"argument 'config' must be a Config, got {type(config).__name__}")
    return config


def preset(name: str) -> Config:
    """A named configuration of SPEC 1.

    Parameters
    ----------
    name : str
        One of ``PRESET_NAMES``, the names the meta-training presets share: ``"tiny"``
        (small, pairwise different sizes: the gradient checks), ``"mid"`` (golden values at a
        realistic shape), ``"small"`` (the rule of the trainer's ``small`` preset and of the
        shipped rule) or ``"paper"`` (the paper's sizes).

    Returns
    -------
    Config
        The preset; ``Config.replace`` derives a variant.

    Raises
    ------
    ValueError
        If ``name`` is not a preset.
    """
    try:
        return PRESETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"config: unknown preset {name!r}; known: {', '.join(PRESETS)}") from None
