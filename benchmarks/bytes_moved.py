"""Bytes moved by a computation: every numpy call's array operands and results, counted once each.

``count_bytes(fn, *arrays)`` runs ``fn`` on views of ``arrays`` as :class:`Counted`, an ndarray
subclass whose ufunc (``__array_ufunc__``: elementwise operations, reductions, ``@``) and
numpy-function (``__array_function__``: ``einsum``, ``tensordot``, ``concatenate`` ...) calls
add the bytes of their array inputs and outputs to a total. Results are Counted again, so the
count follows the data through the whole computation.

It is the traffic of a machine without caches that streams every operand of every numpy call
from memory once: slicing, ``astype`` and ``copy`` are not seen (a lower bound there), while a
small operand that stays in cache is counted every time it is read (an upper bound there). At
the paper sizes the operands of the hot calls are 1-12 MB, larger than the caches, so the total
is a fair estimate of the memory traffic; divided by the run time it gives the bandwidth used.
"""
from __future__ import annotations

import numpy as np


class Counted(np.ndarray):
    total = 0

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        args = tuple(_plain(x) for x in inputs)
        if out is not None:
            kwargs["out"] = tuple(_plain(o) for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        moved = _nbytes(args) + _nbytes(result if out is None else ())
        if out is not None:
            moved += _nbytes(kwargs["out"])
        Counted.total += moved
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types, args, kwargs):
        args, kwargs = _plain(args), {k: _plain(v) for k, v in kwargs.items()}
        result = func(*args, **kwargs)
        Counted.total += _nbytes(args) + _nbytes(tuple(kwargs.values())) + _nbytes(result)
        return _wrap(result)


def _plain(x):
    if isinstance(x, Counted):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    return x


def _nbytes(x) -> int:
    if isinstance(x, np.ndarray):
        return x.nbytes
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(v) for v in x)
    return 0


def _wrap(x):
    if isinstance(x, np.ndarray) and not isinstance(x, Counted):
        return x.view(Counted)
    if isinstance(x, tuple) and not hasattr(x, "_fields"):
        return tuple(_wrap(v) for v in x)
    if isinstance(x, list):
        return [_wrap(v) for v in x]
    return x


def counted(tree):
    """``tree`` (an array, or a dict / list / tuple of them) with every array viewed as Counted."""
    if isinstance(tree, dict):
        return {k: counted(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(counted(v) for v in tree)
    return tree.view(Counted) if isinstance(tree, np.ndarray) else tree


def count_bytes(fn, *args) -> int:
    """Bytes moved by ``fn(*args)`` (see the module docstring); ``args`` are viewed as Counted."""
    Counted.total = 0
    fn(*(counted(a) for a in args))
    return Counted.total
