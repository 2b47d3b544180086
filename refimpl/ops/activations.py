"""Elementwise activations of the base model (SPEC 2) and the rule's sigmoid gate.

    x = f(z),  f one of ACTIVATIONS

Each takes the ``z <= 0`` branch at exactly 0 (so relu'(0) = 0,
leaky_relu'(0) = 0.2, step' = 0 everywhere). sigmoid, softplus and swish are
computed from e = exp(-|z|) <= 1, which never overflows, so |z| ~ 1000 is
fine in float32 and float64. Derivation: derivations/activations.md.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refimpl.validate import check_array, fail

OP = "activation"

#: Every valid ``name`` of activation_forward, in SPEC 1 order.
ACTIVATIONS = ("relu", "leaky_relu", "elu", "tanh", "swish", "sigmoid", "softplus", "step")

LEAKY_SLOPE = 0.2   # leaky_relu slope for z <= 0 (SPEC 2)
# The cache drops z for these: their derivative depends only on the sign of z,
# which the output shows, so the rule's many relu blocks keep one array, not two.
_DERIVATIVE_FROM_OUTPUT = frozenset({"relu", "leaky_relu", "step"})
# |z| beyond which cosh(z)^2 overflows (float32: cosh(44)^2 ~ 1.6e38; float64: cosh(350)^2 ~ 2.5e303)
_COSH_LIMIT = {"f": 44.0, "d": 350.0}


class ActivationCache(NamedTuple):
    name: str
    z: np.ndarray | None      # the input (a reference), None for relu, leaky_relu and step, whose
                              # derivative is read off the output (x > 0 exactly when z > 0)
    x: np.ndarray             # the output f(z)
    aux: tuple                # sigmoid: (sigmoid(-z),); swish: (sigmoid(z), sigmoid(-z)); others: ()


class ActivationGrads(NamedTuple):
    z: np.ndarray


def _sigmoid_pair(z):
    """(sigmoid(z), sigmoid(-z)) from e = exp(-|z|): no overflow, no cancellation."""
    e = np.exp(-np.abs(z))
    r = 1.0 / (1.0 + e)          # sigmoid(|z|)
    er = e * r                   # sigmoid(-|z|)
    pos = z >= 0
    return np.where(pos, r, er), np.where(pos, er, r)


def activation_forward(z: np.ndarray, *, name: str) -> tuple[np.ndarray, ActivationCache]:
    """Activation forward (derivations/activations.md eq. 1-8).

    z: any shape, e.g. [B, N] (base model) or [B, N, C] (the rule's gate).
    name: one of ACTIVATIONS.
    Returns (x shaped like z, ActivationCache).
    """
    check_array(OP, "z", z)
    if not isinstance(name, str) or name not in ACTIVATIONS:
        fail(OP, f"argument 'name' must be one of {', '.join(ACTIVATIONS)}; got {name!r} "
                 f"(z shape {z.shape})")
    aux = ()
    if name == "relu":
        x = np.maximum(z, 0)   # eq. 1; not np.where: benchmarks/RESULTS.md, "relu: np.maximum"
    elif name == "leaky_relu":
        x = np.where(z > 0, z, LEAKY_SLOPE * z)                                     # eq. 2
    elif name == "elu":
        x = np.where(z > 0, z, np.expm1(np.minimum(z, 0.0)))                        # eq. 3
    elif name == "tanh":
        x = np.tanh(z)                                                              # eq. 4
    elif name == "sigmoid":
        x, sm = _sigmoid_pair(z)                                                    # eq. 5
        aux = (sm,)
    elif name == "swish":
        s, sm = _sigmoid_pair(z)
        x = z * s                                                                   # eq. 6
        aux = (s, sm)
    elif name == "softplus":
        x = np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))                       # eq. 7
    else:  # step
        x = (z > 0).astype(z.dtype)                                                 # eq. 8
    kept_z = None if name in _DERIVATIVE_FROM_OUTPUT else z
    return x, ActivationCache(name, kept_z, x, aux)


def activation_backward(dx: np.ndarray, cache: ActivationCache) -> ActivationGrads:
    """VJP of activation_forward: dz = dx * f'(z).

    f' reuses the forward's sigmoid(z) and sigmoid(-z) (sigmoid, swish) and
    output (softplus); for tanh and elu it is recomputed from z in a form
    that keeps its relative accuracy in the tails.
    """
    name, z, x, aux = cache
    if name == "relu":
        dz = dx * (x > 0)                                  # derivations/activations.md eq. 9 (x > 0 iff z > 0)
    elif name == "leaky_relu":
        dz = np.where(x > 0, dx, LEAKY_SLOPE * dx)         # eq. 10 (x > 0 iff z > 0)
    elif name == "elu":
        # eq. 11: exp(z) for z <= 0, recomputed (x + 1 = expm1(z) + 1 cancels for z << 0)
        dz = np.where(z > 0, dx, dx * np.exp(np.minimum(z, 0.0)))
    elif name == "tanh":
        # eq. 12: sech^2 z = 1 / cosh^2 z, not 1 - x^2, which cancels to 0 for
        # |z| >~ 9 in float32. z is clipped where cosh^2 would overflow; beyond
        # that sech^2 is below the smallest normal number anyway.
        c = np.cosh(np.clip(z, -_COSH_LIMIT[z.dtype.char], _COSH_LIMIT[z.dtype.char]))
        c *= c
        dz = dx / c
    elif name == "sigmoid":
        (sm,) = aux
        dz = dx * (x * sm)                                 # eq. 13: s(z) s(-z) = s (1 - s)
    elif name == "swish":
        s, sm = aux
        dz = dx * (s * (1.0 + z * sm))                     # eq. 14
    elif name == "softplus":
        dz = dx * np.exp(z - x)                            # eq. 15: sigmoid(z) = exp(z - softplus(z))
    else:  # step
        dz = np.zeros_like(dx)                             # eq. 16
    return ActivationGrads(dz.astype(x.dtype, copy=False))
