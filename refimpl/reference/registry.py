"""The operator registry (in the spirit of PyTorch's OpInfo).

One :class:`OpInfo` per registered operator variant. Tests, the golden
export and the benchmarks iterate over :func:`all_ops`, so an operator that
is registered is automatically checked, exported and timed, and a test
(``tests/test_registry.py``) fails when an ``*_forward`` in ``refimpl/ops``
has no entry here.

The entries live next to their oracles: each module of ``refimpl/reference``
defines ``OPINFOS = [...]``. The registry sits here, above ``refimpl/ops``,
because an entry pairs an operator with its oracle: ``refimpl.ops`` imports
nothing from this layer, and the oracle shares no code with what it checks.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Size:
    """Shape letters used by every sample generator.

    B batch, N units (first/only unit axis), Nout a second unit count
    (columns of a weight matrix, second LowRR argument), C input channels,
    Cout output channels, K kernel size (odd), R readout rank.
    """

    B: int = 5
    N: int = 4
    Nout: int = 3
    C: int = 3
    Cout: int = 2
    K: int = 3
    R: int = 2


#: The sizes of SPEC's `paper` preset, used by the benchmarks.
PAPER_SIZE = Size(B=128, N=128, Nout=128, C=64, Cout=64, K=3, R=4)
#: Small sizes, every one different, used for the golden set.
GOLDEN_SIZE = Size(B=7, N=6, Nout=5, C=4, Cout=3, K=3, R=2)


@dataclass(frozen=True)
class Sample:
    """Inputs (arrays, optional ones omitted) and attrs (non-array arguments)."""

    inputs: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpInfo:
    """Everything the generic machinery needs to know about one operator.

    forward(**inputs, **attrs) -> (out, cache)
    backward(dout, cache) -> NamedTuple of grads, one field per input, None
        for an absent optional input or a non-differentiable one
    reference(**inputs, **attrs) -> out: an independent plain transcription
        of the SPEC formula in ``autograd.numpy`` (loops allowed); the oracle
    sample(rng, dtype, size) -> Sample
    diff_inputs: names of inputs that are differentiated (when present)
    bad_inputs(rng) -> list of (inputs, attrs, substring the message must contain)
        for operator-specific bad input (NaN and wrong ndim are generic)
    any_ndim: inputs that legitimately take any number of dimensions (the
        generic wrong-ndim test skips them)
    vectorized: the same computation written with vectorised autograd.numpy,
        so the benchmark times autograd fairly (the looped oracle is slow by
        design); defaults to ``reference``
    """

    name: str
    kind: str
    forward: Callable
    backward: Callable
    reference: Callable
    sample: Callable
    diff_inputs: tuple[str, ...]
    output: str = "y"
    derivation: str = ""
    rtol: float = 1e-6
    grad_rtol: float = 1e-8
    f32_rtol: float = 1e-4
    bad_inputs: Callable | None = None
    any_ndim: tuple[str, ...] = ()
    vectorized: Callable | None = None

    def run(self, sample: Sample):
        return self.forward(**sample.inputs, **sample.attrs)


def _discover() -> list[OpInfo]:
    import refimpl.reference as reference_pkg

    infos: list[OpInfo] = []
    for mod in sorted(pkgutil.iter_modules(reference_pkg.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        module = importlib.import_module(f"refimpl.reference.{mod.name}")
        infos.extend(getattr(module, "OPINFOS", []))
    names = [info.name for info in infos]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise RuntimeError(f"duplicate operator names in the registry: {duplicates}")
    return sorted(infos, key=lambda info: info.name)


_REGISTRY: list[OpInfo] | None = None


def all_ops() -> list[OpInfo]:
    """Every registered operator, sorted by name."""
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _discover()
    return list(_REGISTRY)


def get_op(name: str) -> OpInfo:
    for info in all_ops():
        if info.name == name:
            return info
    raise KeyError(f"no operator named {name!r}; known: {[i.name for i in all_ops()]}")


def grads_dict(grads) -> dict[str, np.ndarray]:
    """A backward's NamedTuple as a dict, absent (None) entries dropped."""
    return {k: v for k, v in grads._asdict().items() if v is not None}
