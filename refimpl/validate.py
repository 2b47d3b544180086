"""The one family of input checks: operators, stages, configs and commands use it.

A public boundary validates its arguments before computing anything, so that
a wrong shape, dtype, count or a NaN raises one ValueError naming where
(``fail(where, message)``), the argument and what was seen, instead of
broadcasting silently or producing garbage deep inside a composed step.
"""
from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: True inside :func:`trusted_inputs`: the array checks below pass without looking.
_TRUSTED = contextvars.ContextVar("refimpl_trusted_inputs", default=False)


@contextlib.contextmanager
def trusted_inputs():
    """Within this block the array checks (check_array, check_shape, check_same_dtype,
    check_cotangent, check_named_arrays) do not look at their arguments.

    For a composed stage that has validated its inputs once at its public boundary
    (the unroll, the update step): everything its operators receive is then made
    by the maths from validated inputs, so checking again per operator only costs
    time. A non-finite intermediate is not reported by the operator that meets it
    but by the composed stage's own checks of its results (the unroll checks every
    phi and meta-objective). Checks of values outside an operator's domain (an
    all-zero matrix to normalise) still run.
    """
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def fail(op: str, message: str) -> None:
    raise ValueError(f"{op}: {message}")


def is_int(value: object) -> bool:
    """An int or numpy integer, not a bool (True as a size is a bug, not a 1)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """An int or float (Python or numpy), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def check_int(op: str, name: str, value: object, minimum: int = 1, *, what: str = "argument") -> int:
    """``value`` as an int if it is an integer >= ``minimum`` (``what`` is argument or field)."""
    if not is_int(value) or value < minimum:
        fail(op, f"{what} '{name}' must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_array(op: str, name: str, x: object, ndim: int | None = None, *, finite: bool = True) -> np.ndarray:
    """Return ``x`` if it is a float32/float64 ndarray of ``ndim`` dims with finite entries."""
    if _TRUSTED.get():
        return x
    if not isinstance(x, np.ndarray):
        fail(op, f"argument '{name}' must be a numpy array, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        fail(op, f"argument '{name}' must be float32 or float64, got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        fail(op, f"argument '{name}' must have {ndim} dimensions, got shape {x.shape}")
    if finite and not np.isfinite(x).all():
        fail(op, f"argument '{name}' contains NaN or Inf (shape {x.shape})")
    return x


def check_same_dtype(op: str, **arrays: np.ndarray | None) -> np.dtype:
    """All given (non-None) arrays share one float dtype; return it."""
    if _TRUSTED.get():
        return next(v.dtype for v in arrays.values() if v is not None)
    present = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {k: v.dtype for k, v in present.items()}
    if len(set(dtypes.values())) > 1:
        seen = ", ".join(f"{k}: {d}" for k, d in dtypes.items())
        fail(op, f"arguments must share one dtype, got {seen}")
    return next(iter(dtypes.values()))


def check_shape(op: str, name: str, x: np.ndarray, expected: tuple, context: str = "") -> None:
    """``x.shape`` must equal ``expected`` exactly (no broadcasting)."""
    if _TRUSTED.get():
        return
    if tuple(x.shape) != tuple(expected):
        extra = f" ({context})" if context else ""
        fail(op, f"argument '{name}' must have shape {tuple(expected)}{extra}, got {tuple(x.shape)}")


def check_positive(op: str, name: str, value: object, *, what: str = "argument") -> float:
    """``value`` as a float if it is a positive finite number."""
    if not is_number(value) or not np.isfinite(value) or value <= 0:
        fail(op, f"{what} '{name}' must be a positive finite number, got {value!r}")
    return float(value)


def check_cotangent(op: str, name: str, g: np.ndarray, shape: tuple, dtype: np.dtype) -> None:
    """A backward's cotangent must match its forward output's shape and dtype exactly."""
    if _TRUSTED.get():
        return
    check_array(op, name, g, len(shape))
    if g.shape != tuple(shape):
        fail(op, f"argument '{name}' must have shape {tuple(shape)} like the forward's output, got {g.shape}")
    if g.dtype != dtype:
        fail(op, f"argument '{name}' must be {dtype} like the forward, got {g.dtype}")


def check_named_arrays(op: str, what: str, arrays: Mapping[str, np.ndarray], expected: dict,
                       dtype: npt.DTypeLike) -> None:
    """``arrays`` maps every name of ``expected`` to a finite array of that shape and ``dtype``.

    One call validates a stage's parameters (``what`` is ``theta`` or ``phi``);
    names outside ``expected`` (other stages' parameters) are ignored.
    """
    if _TRUSTED.get():
        return
    if not hasattr(arrays, "keys") or not hasattr(arrays, "__getitem__"):
        fail(op, f"argument '{what}' must be a mapping name -> array, got {type(arrays).__name__}")
    missing = [n for n in expected if n not in arrays]
    if missing:
        fail(op, f"{what} is missing name(s) {missing}")
    for name, shape in expected.items():
        value = arrays[name]
        check_array(op, f"{what}['{name}']", value)
        if tuple(value.shape) != tuple(shape):
            fail(op, f"{what}['{name}'] must have shape {tuple(shape)} for this config, "
                     f"got {tuple(value.shape)}")
        if value.dtype != dtype:
            fail(op, f"{what}['{name}'] is {value.dtype} but the inputs are {dtype}; "
                     f"{what} and the inputs must share one dtype")


def check_inputs(op: str, shapes: dict[str, str], arrays: dict, sizes: dict | None = None) -> tuple[dict, np.dtype]:
    """One call validates a stage's array arguments against their declared shapes.

    ``shapes`` gives each argument's shape in letters (``"B Nin Hd"``);
    ``arrays`` its value (None: an absent optional argument, skipped). Each
    present value is a finite float ndarray with that many dimensions; a letter
    takes one size >= 1 across all arguments (the size in ``sizes`` when given,
    e.g. ``{"Hd": config.h_dims}``); all share one dtype. Returns (letter ->
    size, dtype).
    """
    sizes = dict(sizes or {})
    present = {}
    for name, letters in shapes.items():
        x = arrays.get(name)
        if x is None:
            continue
        letters = letters.split()
        check_array(op, name, x, len(letters))
        known = dict(sizes)
        for letter, n in zip(letters, x.shape):
            if n != known.setdefault(letter, n) or n < 1:
                want = ", ".join(f"{l} = {sizes[l]}" if l in sizes else l for l in letters)
                fail(op, f"argument '{name}' must have shape [{want}] (sizes >= 1), got {x.shape}")
        sizes = known
        present[name] = x
    return sizes, check_same_dtype(op, **present)
