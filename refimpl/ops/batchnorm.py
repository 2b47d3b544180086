"""Batch normalisation over chosen axes (SPEC 3, "BatchNorm").

    y = gamma * (m - mu) / sqrt(var + eps) + beta

with mu and var (biased) taken over ``axes`` for every remaining index.
The rule's form (BatchNormTheta) is m [B, N, C], axes (0, 1), gamma/beta [C],
eps = 1e-3; the base model's form is m [B, N], axes (0,), no gamma, no beta,
eps = 1e-6. Derivation: derivations/batchnorm.md.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refimpl.validate import check_array, check_positive, check_same_dtype, check_shape, fail

OP = "batchnorm"


class BatchNormCache(NamedTuple):
    xhat: np.ndarray        # (m - mu) / sqrt(var + eps), as a 2-D view [groups..., kept] (see _as_2d)
    inv_std: np.ndarray     # 1 / sqrt(var + eps), [kept]
    gamma: np.ndarray | None  # gamma flattened to [kept], or None
    has_beta: bool
    axes: tuple[int, ...]
    param_shape: tuple[int, ...]
    shape: tuple[int, ...]  # shape of m
    order: tuple[int, ...]  # axes permutation that puts the reduced axes first


class BatchNormGrads(NamedTuple):
    m: np.ndarray
    gamma: np.ndarray | None
    beta: np.ndarray | None


def _normalise_axes(m: np.ndarray, axes) -> tuple[int, ...]:
    try:
        axes = tuple(int(a) for a in (axes if np.iterable(axes) else (axes,)))
    except (TypeError, ValueError):
        fail(OP, f"argument 'axes' must be a tuple of ints, got {axes!r}")
    resolved = tuple(sorted(a % m.ndim if -m.ndim <= a < m.ndim else fail(
        OP, f"argument 'axes' {axes} out of range for m of shape {m.shape}") for a in axes))
    if not resolved or len(set(resolved)) != len(resolved):
        fail(OP, f"argument 'axes' must be non-empty and without repeats, got {axes}")
    return resolved


def _as_2d(a: np.ndarray, order: tuple[int, ...], n_reduced: int) -> np.ndarray:
    """View (or, for non-leading axes, copy) ``a`` as [reduced entries, kept entries].

    Both of the project's forms reduce leading axes ((0,) and (0, 1)), where
    this is a free reshape, so the statistics become column reductions of a
    C-contiguous matrix.
    """
    moved = a if order == tuple(range(a.ndim)) else np.transpose(a, order)
    rows = int(np.prod(moved.shape[:n_reduced]))
    return moved.reshape(rows, -1)


def _from_2d(a2: np.ndarray, shape: tuple[int, ...], order: tuple[int, ...]) -> np.ndarray:
    moved_shape = tuple(shape[i] for i in order)
    out = a2.reshape(moved_shape)
    return out if order == tuple(range(len(shape))) else np.transpose(out, np.argsort(order))


def batchnorm_forward(m: np.ndarray, gamma: np.ndarray | None = None, beta: np.ndarray | None = None, *,
                      axes: int | tuple[int, ...], eps: float) -> tuple[np.ndarray, BatchNormCache]:
    """BatchNorm forward.

    m: any shape, e.g. [B, N, C] or [B, N]; gamma, beta: optional, shaped
    like m with ``axes`` removed (e.g. [C] for axes (0, 1) of [B, N, C]).
    Returns (y shaped like m, BatchNormCache).
    """
    check_array(OP, "m", m)
    axes = _normalise_axes(m, axes)
    eps = check_positive(OP, "eps", eps)
    param_shape = tuple(s for i, s in enumerate(m.shape) if i not in axes)
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p is not None:
            check_array(OP, name, p)
            check_shape(OP, name, p, param_shape, f"m {m.shape} with axes {axes} removed")
    check_same_dtype(OP, m=m, gamma=gamma, beta=beta)

    order = axes + tuple(i for i in range(m.ndim) if i not in axes)
    m2 = _as_2d(m, order, len(axes))                          # [n, kept]
    n = m2.shape[0]
    xhat = m2 - m2.mean(axis=0)                               # eq. 1, centred (a new array)
    var = np.einsum("ij,ij->j", xhat, xhat) / n               # biased variance, no temporary square
    inv_std = (1.0 / np.sqrt(var + eps)).astype(m.dtype, copy=False)
    xhat *= inv_std                                           # in place: centred -> xhat
    gamma_f = None if gamma is None else gamma.reshape(-1)
    y2 = xhat.copy() if gamma_f is None else xhat * gamma_f    # never hand out the cached xhat itself
    if beta is not None:
        y2 += beta.reshape(-1)
    y = _from_2d(y2, m.shape, order)
    return y, BatchNormCache(xhat, inv_std, gamma_f, beta is not None, axes, param_shape, m.shape, order)


def batchnorm_backward(dy: np.ndarray, cache: BatchNormCache) -> BatchNormGrads:
    """VJP of batchnorm_forward: grads for m, gamma, beta (None where absent)."""
    xhat, inv_std, gamma_f, has_beta, axes, param_shape, shape, order = cache
    dy2 = _as_2d(dy, order, len(axes))
    n = dy2.shape[0]
    dgamma = None if gamma_f is None else np.einsum("ij,ij->j", dy2, xhat).reshape(param_shape)   # eq. 5
    dbeta = dy2.sum(axis=0).reshape(param_shape) if has_beta else None                            # eq. 6
    dxhat = dy2 * gamma_f if gamma_f is not None else dy2.copy()      # a fresh array, updated in place below
    mean_dxhat = dxhat.mean(axis=0)
    mean_dxhat_xhat = np.einsum("ij,ij->j", dxhat, xhat) / n
    # derivations/batchnorm.md eq. 4: inv_std (dxhat - mean(dxhat) - xhat mean(dxhat xhat))
    dxhat -= mean_dxhat
    dxhat -= xhat * mean_dxhat_xhat
    dxhat *= inv_std
    return BatchNormGrads(_from_2d(dxhat, shape, order), dgamma, dbeta)
