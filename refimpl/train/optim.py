"""Schedules, gradient clipping and Adam for meta-training (SPEC 7).

Step numbers are ``k`` = the number of meta-steps already taken (0 for the
first). Rounding to the nearest integer rounds halves up (``floor(x + 0.5)``),
not to even as Python's ``round`` does.

Adam is Kingma & Ba's Algorithm 1 with bias correction:

    m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2;   t <- t + 1
    theta <- theta - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)

The moments are kept in float64 whatever theta's dtype; the update is
computed in float64 and cast back to theta's dtype. This is refimpl's one
Adam: the evaluation's VAE and supervised baselines use it too
(refimpl/evaluation/baselines.py, on their flattened parameters).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


def round_half_up(x: float) -> int:
    """Nearest integer, halves rounded up (2.5 -> 3, -2.5 -> -2)."""
    return int(math.floor(x + 0.5))


def _ramp(k: int, steps: int) -> float:
    """Fraction of a linear ramp over ``steps`` meta-steps done at step k (0 at k=0, 1 from k=steps)."""
    if k < 0:
        raise ValueError(f"meta-step must be >= 0, got {k}")
    if steps == 0:
        return 1.0
    return min(k / steps, 1.0)


def unroll_range(tc, k: int) -> tuple[int, int]:
    """(lo, hi) of the unroll length U at meta-step k (inclusive), each end rounded."""
    f = _ramp(k, tc.unroll_ramp_steps)
    (lo0, hi0), (lo1, hi1) = tc.unroll_start, tc.unroll_end
    lo = round_half_up(lo0 + (lo1 - lo0) * f)
    hi = round_half_up(hi0 + (hi1 - hi0) * f)
    return lo, max(lo, hi)


def budget_scale(tc, k: int) -> float:
    """Scale s of the inner-step budget at meta-step k."""
    f = _ramp(k, tc.budget_ramp_steps)
    return tc.budget_scale_start + (tc.budget_scale_end - tc.budget_scale_start) * f


def budget_from_normal(s: float, n: float) -> int:
    """The budget ``max(1, round(s + s * n))`` for a standard-normal draw n."""
    return max(1, round_half_up(s + s * n))


def sample_budget(tc, k: int, rng: np.random.Generator) -> int:
    """A task's total inner-step budget drawn at meta-step k (one standard-normal draw)."""
    return budget_from_normal(budget_scale(tc, k), float(rng.standard_normal()))


def learning_rate(tc, k: int) -> float:
    """Piecewise-constant Adam learning rate at meta-step k."""
    a, b = tc.lr_boundaries
    return tc.lr[0] if k < a else (tc.lr[1] if k < b else tc.lr[2])


# -------------------------------------------------------------------------------------
# gradients
# -------------------------------------------------------------------------------------
def global_norm(grads: dict) -> float:
    """sqrt of the sum of squares of every entry of every array (computed in float64).

    The per-array sums are added in sorted-name order, so the result does not
    depend on the dict's order (a theta read from a file may be ordered
    differently from a freshly initialised one; a resumed run must match bit
    for bit)."""
    return math.sqrt(sum(float(np.sum(np.square(grads[k], dtype=np.float64))) for k in sorted(grads)))


def clip_by_global_norm(grads: dict, max_norm: float):
    """``(clipped, norm)``: grads scaled by ``min(1, max_norm / norm)`` (float64 arrays).

    ``norm`` is the global norm before clipping. A non-finite norm is a
    ValueError (the trainer drops non-finite task gradients before this).
    """
    norm = global_norm(grads)
    if not math.isfinite(norm):
        raise ValueError(f"clip_by_global_norm: the gradient's global norm is {norm}")
    scale = 1.0 if norm <= max_norm else max_norm / norm
    return {k: np.asarray(g, dtype=np.float64) * scale for k, g in grads.items()}, norm


def mean_grads(grads: list) -> dict:
    """Entry-wise mean of a non-empty list of gradient dicts (same names), in float64.

    Summed in list order, so the result is the same bits for the same inputs.
    """
    if not grads:
        raise ValueError("mean_grads: no gradients to average")
    names = list(grads[0])
    for i, g in enumerate(grads[1:], 1):
        if set(g) != set(names):
            raise ValueError(f"mean_grads: gradient {i} has names {sorted(g)}, expected {sorted(names)}")
    out = {}
    for name in names:
        acc = np.array(grads[0][name], dtype=np.float64)
        for g in grads[1:]:
            acc = acc + g[name]
        out[name] = acc / len(grads)
    return out


# -------------------------------------------------------------------------------------
# Adam
# -------------------------------------------------------------------------------------
class AdamState(NamedTuple):
    m: dict      # first moments (float64)
    v: dict      # second moments (float64)
    t: int       # number of Adam steps taken


def adam_init(theta: dict) -> AdamState:
    return AdamState({k: np.zeros(v.shape) for k, v in theta.items()},
                     {k: np.zeros(v.shape) for k, v in theta.items()}, 0)


def adam_step(theta: dict, grads: dict, state: AdamState, lr: float, *,
              beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
    """One Adam step; returns ``(new_theta, new_state)`` (inputs are not modified)."""
    if set(grads) != set(theta):
        raise ValueError(f"adam_step: grads names {sorted(set(grads) ^ set(theta))} do not match theta")
    t = state.t + 1
    c1 = 1.0 - beta1 ** t
    c2 = 1.0 - beta2 ** t
    new_theta, m, v = {}, {}, {}
    for name, p in theta.items():
        g = np.asarray(grads[name], dtype=np.float64)
        if g.shape != p.shape:
            raise ValueError(f"adam_step: grad '{name}' has shape {g.shape}, theta {p.shape}")
        m[name] = beta1 * state.m[name] + (1.0 - beta1) * g
        v[name] = beta2 * state.v[name] + (1.0 - beta2) * (g * g)
        step = lr * (m[name] / c1) / (np.sqrt(v[name] / c2) + eps)
        new_theta[name] = (p.astype(np.float64) - step).astype(p.dtype)
    return new_theta, AdamState(m, v, t)
