"""Structural pieces of the weight-update planes (SPEC 5).

- sym_zero_diag  A(S) = (S + S^T)/sqrt(2), diagonal set to 0 (planes P7-P10)
- orth           dM + Mf * relu(-<dM, Mf>_F) (dM_orth)
- bias_centre    db - relu(mean_j db) (db_c)
- cross_cov      (1/B) (xa - mean_b xa)^T (xb - mean_b xb) (plane P6)

The normalisations (Mh, Mf, Pt_i, ...) are in refimpl/ops/normalize.py, the
matrix product in refimpl/ops/matmul.py and the low-rank readouts in their own module; derivations/planes.md shows how they
combine. Derivations: derivations/<operator>.md.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from refimpl.validate import check_array, check_same_dtype, check_shape, fail

_INV_SQRT2 = 1.0 / math.sqrt(2.0)  # a Python float: keeps float32 inputs float32


# --------------------------------------------------------------------------- sym_zero_diag

class SymZeroDiagCache(NamedTuple):
    n: int          # N (A is linear and self-adjoint: nothing else is needed)


class SymZeroDiagGrads(NamedTuple):
    S: np.ndarray


def _sym_zero_diag(S: np.ndarray) -> np.ndarray:
    out = (S + S.T) * _INV_SQRT2
    np.fill_diagonal(out, 0.0)
    return out


def sym_zero_diag_forward(S: np.ndarray) -> tuple[np.ndarray, SymZeroDiagCache]:
    """Symmetrise and drop the diagonal (SPEC 5, "A(S)").

        A(S)[i, j] = (S[i, j] + S[j, i]) / sqrt(2)  for i != j,   0 for i == j

    S: [N, N]. Returns (A(S) [N, N], SymZeroDiagCache).
    """
    op = "sym_zero_diag"
    check_array(op, "S", S, 2)
    if S.shape[0] != S.shape[1]:
        fail(op, f"argument 'S' must be square [N, N], got shape {S.shape}")
    return _sym_zero_diag(S), SymZeroDiagCache(S.shape[0])


def sym_zero_diag_backward(dy: np.ndarray, cache: SymZeroDiagCache) -> SymZeroDiagGrads:
    """VJP of sym_zero_diag_forward: A is self-adjoint, so dS = A(dy)."""
    # derivations/sym_zero_diag.md eq. 3
    return SymZeroDiagGrads(_sym_zero_diag(dy))


# --------------------------------------------------------------------------- orth

class OrthCache(NamedTuple):
    dM: np.ndarray
    Mf: np.ndarray
    active: bool          # ip < 0 (relu'(0) = 0: ip == 0 is inactive)
    c: np.floating        # relu(-ip), a scalar of the inputs' dtype


class OrthGrads(NamedTuple):
    dM: np.ndarray
    Mf: np.ndarray


def orth_forward(dM: np.ndarray, Mf: np.ndarray) -> tuple[np.ndarray, OrthCache]:
    """Remove the part of a weight change that shrinks the weights (SPEC 5, "dM_orth").

        ip = <dM, Mf>_F = sum_ij dM[i, j] Mf[i, j]
        y  = dM + Mf * relu(-ip)

    dM, Mf: [Nin, Nout] (Mf = M / ||M||_F, so <y, Mf> = max(ip, 0)).
    Returns (y [Nin, Nout], OrthCache).
    """
    op = "orth"
    check_array(op, "dM", dM, 2)
    check_array(op, "Mf", Mf, 2)
    check_shape(op, "Mf", Mf, dM.shape, "like dM")
    check_same_dtype(op, dM=dM, Mf=Mf)
    ip = np.vdot(dM, Mf)
    active = bool(ip < 0)
    c = -ip if active else ip * 0
    y = dM + Mf * c if active else dM.copy()
    return y, OrthCache(dM, Mf, active, c)


def orth_backward(dy: np.ndarray, cache: OrthCache) -> OrthGrads:
    """VJP of orth_forward."""
    dM, Mf, active, c = cache
    if not active:
        # derivations/orth.md eq. 4
        return OrthGrads(dy.copy(), np.zeros_like(Mf))
    t = -np.vdot(dy, Mf)
    # derivations/orth.md eq. 3
    return OrthGrads(dy + t * Mf, c * dy + t * dM)


# --------------------------------------------------------------------------- bias_centre

class BiasCentreCache(NamedTuple):
    active: bool    # mean_j db > 0 (relu'(0) = 0)


class BiasCentreGrads(NamedTuple):
    db: np.ndarray


def bias_centre_forward(db: np.ndarray) -> tuple[np.ndarray, BiasCentreCache]:
    """Keep the mean of a bias change non-positive (SPEC 5, "db_c").

        y[j] = db[j] - relu((1/N) sum_j' db[j'])

    db: [N]. Returns (y [N], BiasCentreCache).
    """
    op = "bias_centre"
    check_array(op, "db", db, 1)
    if db.size == 0:
        fail(op, f"argument 'db' must not be empty, got shape {db.shape}")
    mean = np.mean(db)
    active = bool(mean > 0)
    y = db - mean if active else db.copy()
    return y, BiasCentreCache(active)


def bias_centre_backward(dy: np.ndarray, cache: BiasCentreCache) -> BiasCentreGrads:
    """VJP of bias_centre_forward."""
    # derivations/bias_centre.md eq. 2
    return BiasCentreGrads(dy - np.mean(dy) if cache.active else dy.copy())


# --------------------------------------------------------------------------- cross_cov

class CrossCovCache(NamedTuple):
    ca: np.ndarray  # xa - mean_b xa [B, Nin]
    cb: np.ndarray  # xb - mean_b xb [B, Nout]


class CrossCovGrads(NamedTuple):
    xa: np.ndarray
    xb: np.ndarray


def cross_cov_forward(xa: np.ndarray, xb: np.ndarray) -> tuple[np.ndarray, CrossCovCache]:
    """Batch cross-covariance of two layers' activations (SPEC 5, plane P6).

        y = (1/B) (xa - mean_b xa)^T @ (xb - mean_b xb)

    xa: [B, Nin], xb: [B, Nout] (x^{l-1}, x^l). Returns (y [Nin, Nout], CrossCovCache).
    """
    op = "cross_cov"
    check_array(op, "xa", xa, 2)
    check_array(op, "xb", xb, 2)
    if xb.shape[0] != xa.shape[0]:
        fail(op, f"arguments 'xa' {xa.shape} and 'xb' {xb.shape} must share the batch axis B")
    if xa.shape[0] == 0:
        fail(op, f"argument 'xa' must have a non-empty batch axis, got shape {xa.shape}")
    check_same_dtype(op, xa=xa, xb=xb)
    ca = xa - xa.mean(axis=0, keepdims=True)
    cb = xb - xb.mean(axis=0, keepdims=True)
    inv_b = 1.0 / xa.shape[0]
    return (ca.T @ cb) * inv_b, CrossCovCache(ca, cb)


def cross_cov_backward(dy: np.ndarray, cache: CrossCovCache) -> CrossCovGrads:
    """VJP of cross_cov_forward (no re-centring needed: eq. 4)."""
    ca, cb = cache
    inv_b = 1.0 / ca.shape[0]
    # derivations/cross_cov.md eq. 5
    return CrossCovGrads((cb @ dy.T) * inv_b, (ca @ dy) * inv_b)
