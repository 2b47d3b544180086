"""Elementwise pieces of the update rule (SPEC 3 "elementwise ones", used in SPEC 4 and 5).

    signed_square(x) = x * |x|               P2 = Mh * |Mh|
    soft_sqrt(x)     = sqrt(1 + x^2) - 1     Q = sqrt(1 + Mh^2) - 1
    gauss(x)         = exp(-x^2)             P4's factor exp(-Mh^2)
    mul(a, b)        = a * b                 identical shapes, no broadcasting
    gate(d, g)       = d * g[..., None]      d [B, N, D], g [B, N]; delta = d * sigmoid(z)[..., None]

All but gate take any shape; y has the shape (and dtype) of the input.
Derivations: derivations/elementwise.md (index) and one file per operator.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refimpl.validate import check_array, check_same_dtype, check_shape

# --- signed_square ----------------------------------------------------------

class SignedSquareGrads(NamedTuple):
    x: np.ndarray


class SignedSquareCache(NamedTuple):
    abs_x: np.ndarray   # |x|


def signed_square_forward(x: np.ndarray) -> tuple[np.ndarray, SignedSquareCache]:
    """y = x * |x|, x any shape. Returns (y shaped like x, SignedSquareCache)."""
    check_array("signed_square", "x", x)
    abs_x = np.abs(x)
    return x * abs_x, SignedSquareCache(abs_x)


def signed_square_backward(dy: np.ndarray, cache: SignedSquareCache) -> SignedSquareGrads:
    """VJP: dx = 2 |x| dy (derivations/signed_square.md eq. 2)."""
    return SignedSquareGrads(2.0 * cache.abs_x * dy)


# --- soft_sqrt --------------------------------------------------------------

class SoftSqrtGrads(NamedTuple):
    x: np.ndarray


class SoftSqrtCache(NamedTuple):
    x: np.ndarray
    root: np.ndarray    # sqrt(1 + x^2)


def soft_sqrt_forward(x: np.ndarray) -> tuple[np.ndarray, SoftSqrtCache]:
    """y = sqrt(1 + x^2) - 1, x any shape, computed as x^2 / (sqrt(1 + x^2) + 1)
    (the same number without cancellation for small |x|; derivations/soft_sqrt.md eq. 2).
    Returns (y shaped like x, SoftSqrtCache)."""
    check_array("soft_sqrt", "x", x)
    x2 = x * x
    root = np.sqrt(1.0 + x2)
    return x2 / (root + 1.0), SoftSqrtCache(x, root)


def soft_sqrt_backward(dy: np.ndarray, cache: SoftSqrtCache) -> SoftSqrtGrads:
    """VJP: dx = x / sqrt(1 + x^2) dy (derivations/soft_sqrt.md eq. 3)."""
    return SoftSqrtGrads(cache.x / cache.root * dy)


# --- gauss ------------------------------------------------------------------

class GaussGrads(NamedTuple):
    x: np.ndarray


class GaussCache(NamedTuple):
    x: np.ndarray
    y: np.ndarray       # exp(-x^2)


def gauss_forward(x: np.ndarray) -> tuple[np.ndarray, GaussCache]:
    """y = exp(-x^2), x any shape. Returns (y shaped like x, GaussCache)."""
    check_array("gauss", "x", x)
    y = np.exp(-(x * x))
    return y, GaussCache(x, y)


def gauss_backward(dy: np.ndarray, cache: GaussCache) -> GaussGrads:
    """VJP: dx = -2 x y dy (derivations/gauss.md eq. 2)."""
    return GaussGrads(-2.0 * cache.x * cache.y * dy)


# --- mul --------------------------------------------------------------------

class MulCache(NamedTuple):
    a: np.ndarray
    b: np.ndarray


class MulGrads(NamedTuple):
    a: np.ndarray
    b: np.ndarray


def mul_forward(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, MulCache]:
    """y = a * b, a and b of one identical shape (any ndim, never broadcast).
    Returns (y shaped like a, MulCache)."""
    check_array("mul", "a", a)
    check_array("mul", "b", b)
    check_shape("mul", "b", b, a.shape, "same as a, no broadcasting")
    check_same_dtype("mul", a=a, b=b)
    return a * b, MulCache(a, b)


def mul_backward(dy: np.ndarray, cache: MulCache) -> MulGrads:
    """VJP: da = dy * b, db = dy * a (derivations/mul.md eq. 2)."""
    return MulGrads(dy * cache.b, dy * cache.a)


# --- gate -------------------------------------------------------------------

class GateCache(NamedTuple):
    d: np.ndarray       # [B, N, D]
    g: np.ndarray       # [B, N]


class GateGrads(NamedTuple):
    d: np.ndarray
    g: np.ndarray


def gate_forward(d: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, GateCache]:
    """y[b, n, c] = d[b, n, c] * g[b, n]; d [B, N, D], g [B, N]; y [B, N, D].
    Returns (y, GateCache)."""
    check_array("gate", "d", d, 3)
    check_array("gate", "g", g, 2)
    check_shape("gate", "g", g, d.shape[:2], f"[B, N] of d {d.shape}")
    check_same_dtype("gate", d=d, g=g)
    return d * g[..., None], GateCache(d, g)


def gate_backward(dy: np.ndarray, cache: GateCache) -> GateGrads:
    """VJP: dd = dy * g[..., None], dg = sum_c dy * d (derivations/gate.md eqs. 2-3)."""
    d, g = cache
    return GateGrads(dy * g[..., None], np.einsum("bnc,bnc->bn", dy, d, optimize=True))
