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

from refimpl.ops._checks import check_array, check_positive, check_same_dtype, check_shape, fail

OP = "batchnorm"


class BatchNormCache(NamedTuple):
    xhat: np.ndarray        # (m - mu) / sqrt(var + eps), shaped like m
    inv_std: np.ndarray     # 1 / sqrt(var + eps), keepdims over axes
    gamma: np.ndarray | None  # keepdims-shaped gamma, or None
    has_beta: bool
    axes: tuple[int, ...]
    param_shape: tuple[int, ...]


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


def batchnorm_forward(m, gamma=None, beta=None, *, axes, eps):
    """BatchNorm forward.

    m: any shape, e.g. [B, N, C] or [B, N]; gamma, beta: optional, shaped
    like m with ``axes`` removed (e.g. [C] for axes (0, 1) of [B, N, C]).
    Returns (y shaped like m, BatchNormCache).
    """
    check_array(OP, "m", m)
    axes = _normalise_axes(m, axes)
    eps = check_positive(OP, "eps", eps)
    param_shape = tuple(s for i, s in enumerate(m.shape) if i not in axes)
    keep_shape = tuple(1 if i in axes else s for i, s in enumerate(m.shape))
    for name, p in (("gamma", gamma), ("beta", beta)):
        if p is not None:
            check_array(OP, name, p)
            check_shape(OP, name, p, param_shape, f"m {m.shape} with axes {axes} removed")
    check_same_dtype(OP, m=m, gamma=gamma, beta=beta)

    mu = m.mean(axis=axes, keepdims=True)
    centred = m - mu
    var = np.mean(centred * centred, axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + m.dtype.type(eps))
    xhat = centred * inv_std
    gamma_k = None if gamma is None else gamma.reshape(keep_shape)
    y = xhat if gamma_k is None else xhat * gamma_k
    if beta is not None:
        y = y + beta.reshape(keep_shape)
    return y, BatchNormCache(xhat, inv_std, gamma_k, beta is not None, axes, param_shape)


def batchnorm_backward(dy, cache: BatchNormCache) -> BatchNormGrads:
    """VJP of batchnorm_forward: grads for m, gamma, beta (None where absent)."""
    xhat, inv_std, gamma_k, has_beta, axes, param_shape = cache
    dgamma = None if gamma_k is None else np.sum(dy * xhat, axis=axes).reshape(param_shape)  # eq. 5
    dbeta = np.sum(dy, axis=axes).reshape(param_shape) if has_beta else None               # eq. 6
    dxhat = dy if gamma_k is None else dy * gamma_k
    # derivations/batchnorm.md eq. 4
    dm = inv_std * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                    - xhat * np.mean(dxhat * xhat, axis=axes, keepdims=True))
    return BatchNormGrads(dm, dgamma, dbeta)
