"""The normalisations of the update rule and the meta-objective.

Every one of them divides an array by a scale computed from the array itself:

- column_normalize       Mh = M / sqrt(mean_i M^2 + eps_w), per column (SPEC 5 Mh)
- frobenius_normalize    Mf = M / ||M||_F, no epsilon (SPEC 5 Mf)
- plane_normalize        P / sqrt(1 + mean P^2), over all entries (SPEC 5 Pt_i,
                         dM_final, db_final)
- channel_rms_normalize  x / sqrt(mean_c x^2 + eps_d), per (b, n) (SPEC 4 step 3)
- row_normalize          P_b / sqrt(sum_c P_bc^2 + eps_p), per row (SPEC 3, 6)

Each forward caches its output ``y`` and its scale ``r`` (the reciprocal
root), which is all the backward needs: for ``y = x * r(x)`` with
``r = (a * sum x^2 + c)^{-1/2}`` the VJP is ``r * (g - y * a * sum(g * y))``.
Derivations: derivations/<operator>.md.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refimpl.validate import check_array, check_positive, fail


def _check_nonempty(op: str, name: str, x: np.ndarray) -> None:
    if x.size == 0:
        fail(op, f"argument '{name}' must not be empty, got shape {x.shape}")


def _rms_scale(op: str, name: str, x, ndim: int, axis: int, eps):
    """y = x r with r = 1 / sqrt(mean(x^2 over ``axis``) + eps); returns (y, r).

    Column normalisation (axis 0 of M) and the channel normalisation of d
    (axis 2) are this one map on different axes; ``op``, ``name`` and
    ``ndim`` name and check the argument.
    """
    check_array(op, name, x, ndim)
    _check_nonempty(op, name, x)
    eps = check_positive(op, "eps", eps)
    r = 1.0 / np.sqrt(np.mean(x * x, axis=axis, keepdims=True) + eps)
    return x * r, r


def _rms_scale_vjp(dy, y, r, axis: int):
    """VJP of :func:`_rms_scale`: r (dy - y mean(dy y over ``axis``))."""
    return r * (dy - y * np.mean(dy * y, axis=axis, keepdims=True))


# --------------------------------------------------------------------------- column_normalize

class ColumnNormalizeCache(NamedTuple):
    y: np.ndarray   # Mh [Nin, Nout]
    r: np.ndarray   # 1 / sqrt(mean_i M^2 + eps) [1, Nout]


class ColumnNormalizeGrads(NamedTuple):
    M: np.ndarray


def column_normalize_forward(M: np.ndarray, *, eps: float = 1e-8) -> tuple[np.ndarray, ColumnNormalizeCache]:
    """Per-column RMS normalisation of a weight matrix (SPEC 5, "Mh").

        Mh[i, j] = M[i, j] / sqrt((1/Nin) sum_i M[i, j]^2 + eps)

    M: [Nin, Nout]. Returns (Mh [Nin, Nout], ColumnNormalizeCache).
    """
    y, r = _rms_scale("column_normalize", "M", M, 2, 0, eps)
    return y, ColumnNormalizeCache(y, r)


def column_normalize_backward(dy: np.ndarray, cache: ColumnNormalizeCache) -> ColumnNormalizeGrads:
    """VJP of column_normalize_forward."""
    y, r = cache
    return ColumnNormalizeGrads(_rms_scale_vjp(dy, y, r, 0))     # derivations/column_normalize.md eq. 3


# --------------------------------------------------------------------------- frobenius_normalize

class FrobeniusNormalizeCache(NamedTuple):
    y: np.ndarray   # Mf, shaped like M
    r: np.floating  # 1 / ||M||_F (a scalar of M's dtype)


class FrobeniusNormalizeGrads(NamedTuple):
    M: np.ndarray


def frobenius_normalize_forward(M: np.ndarray) -> tuple[np.ndarray, FrobeniusNormalizeCache]:
    """Scale an array to unit Frobenius norm (SPEC 5, "Mf").

        Mf = M / ||M||_F,   ||M||_F = sqrt(sum M^2),   no epsilon

    M: any shape (the rule uses [Nin, Nout]); an all-zero M is outside the
    domain and raises. Returns (Mf shaped like M, FrobeniusNormalizeCache).
    """
    op = "frobenius_normalize"
    check_array(op, "M", M)
    flat = M.reshape(-1)
    with np.errstate(over="ignore"):  # reported below as a ValueError
        norm = np.sqrt(np.dot(flat, flat))
    if not norm > 0:
        fail(op, f"argument 'M' (shape {M.shape}) is all zeros: ||M||_F = 0 is outside "
                 "the domain (SPEC 5: no epsilon)")
    if not np.isfinite(norm):
        fail(op, f"argument 'M' (shape {M.shape}, {M.dtype}): ||M||_F overflows")
    r = 1.0 / norm
    y = M * r
    return y, FrobeniusNormalizeCache(y, r)


def frobenius_normalize_backward(dy: np.ndarray, cache: FrobeniusNormalizeCache) -> FrobeniusNormalizeGrads:
    """VJP of frobenius_normalize_forward."""
    y, r = cache
    # derivations/frobenius_normalize.md eq. 3
    return FrobeniusNormalizeGrads(r * (dy - y * np.vdot(dy, y)))


# --------------------------------------------------------------------------- plane_normalize

class PlaneNormalizeCache(NamedTuple):
    y: np.ndarray   # P / sqrt(1 + mean P^2), shaped like P
    r: np.floating  # 1 / sqrt(1 + mean P^2) (a scalar of P's dtype)


class PlaneNormalizeGrads(NamedTuple):
    P: np.ndarray


def plane_normalize_forward(P: np.ndarray) -> tuple[np.ndarray, PlaneNormalizeCache]:
    """Soft second-moment normalisation of a whole plane (SPEC 5, "Pt_i").

        Pt = P / sqrt(1 + mean(P^2)),   mean over all entries

    P: any non-empty shape (the rule uses [Nin, Nout] for each plane and for
    dM_final, [N] for db_final). Returns (Pt shaped like P, PlaneNormalizeCache).
    """
    op = "plane_normalize"
    check_array(op, "P", P)
    _check_nonempty(op, "P", P)
    flat = P.reshape(-1)
    r = 1.0 / np.sqrt(1.0 + np.dot(flat, flat) / flat.size)
    y = P * r
    return y, PlaneNormalizeCache(y, r)


def plane_normalize_backward(dy: np.ndarray, cache: PlaneNormalizeCache) -> PlaneNormalizeGrads:
    """VJP of plane_normalize_forward."""
    y, r = cache
    # derivations/plane_normalize.md eq. 3
    return PlaneNormalizeGrads(r * (dy - y * (np.vdot(dy, y) / y.size)))


# --------------------------------------------------------------------------- channel_rms_normalize

class ChannelRmsNormalizeCache(NamedTuple):
    y: np.ndarray   # [B, N, D]
    r: np.ndarray   # 1 / sqrt(mean_c x^2 + eps) [B, N, 1]


class ChannelRmsNormalizeGrads(NamedTuple):
    x: np.ndarray


def channel_rms_normalize_forward(x: np.ndarray, *, eps: float = 1e-6) -> tuple[np.ndarray, ChannelRmsNormalizeCache]:
    """RMS normalisation over the channel axis (SPEC 4 step 3, d^{l-1}).

        y[b, n, c] = x[b, n, c] / sqrt((1/D) sum_c' x[b, n, c']^2 + eps)

    x: [B, N, D]. Returns (y [B, N, D], ChannelRmsNormalizeCache).
    """
    y, r = _rms_scale("channel_rms_normalize", "x", x, 3, 2, eps)
    return y, ChannelRmsNormalizeCache(y, r)


def channel_rms_normalize_backward(dy: np.ndarray, cache: ChannelRmsNormalizeCache) -> ChannelRmsNormalizeGrads:
    """VJP of channel_rms_normalize_forward."""
    y, r = cache
    return ChannelRmsNormalizeGrads(_rms_scale_vjp(dy, y, r, 2))  # derivations/channel_rms_normalize.md eq. 3


# --------------------------------------------------------------------------- row_normalize

class RowNormalizeCache(NamedTuple):
    y: np.ndarray   # [B, C]
    r: np.ndarray   # 1 / sqrt(sum_c P^2 + eps) [B, 1]


class RowNormalizeGrads(NamedTuple):
    P: np.ndarray


def row_normalize_forward(P: np.ndarray, *, eps: float = 1e-12) -> tuple[np.ndarray, RowNormalizeCache]:
    """Scale every row to (almost) unit Euclidean norm (SPEC 3 RowNormalize).

        y[b, c] = P[b, c] / sqrt(sum_c' P[b, c']^2 + eps)

    P: [B, C] (predictions: n_label rows, n_cls + n_reg columns).
    Returns (y [B, C], RowNormalizeCache).
    """
    op = "row_normalize"
    check_array(op, "P", P, 2)
    eps = check_positive(op, "eps", eps)
    r = 1.0 / np.sqrt(np.sum(P * P, axis=1, keepdims=True) + eps)
    y = P * r
    return y, RowNormalizeCache(y, r)


def row_normalize_backward(dy: np.ndarray, cache: RowNormalizeCache) -> RowNormalizeGrads:
    """VJP of row_normalize_forward."""
    y, r = cache
    # derivations/row_normalize.md eq. 3
    return RowNormalizeGrads(r * (dy - y * np.sum(dy * y, axis=1, keepdims=True)))
