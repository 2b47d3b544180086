"""WeightStats: four statistics of a weight matrix per unit (SPEC 3).

Reducing over ``axis`` of M [Nin, Nout] (n_r = M.shape[axis] entries per
group), for each index of the other axis (n of them):

    y[:, 0] = mean |m|
    y[:, 1] = sqrt(mean m^2 + eps)
    y[:, 2] = mean m
    y[:, 3] = sqrt(var m + eps)        var biased: mean (m - mean m)^2

y is [n, 4]. ComputeH (SPEC 4) uses axis 0 of W^l (per unit j of layer l,
n = Nout) and axis 1 of W^{l+1} (per unit j of layer l, n = Nin);
eps = eps_s = 1e-8. d|m|/dm = sign(m), 0 at 0.
Derivation: derivations/weight_stats.md.
"""
from __future__ import annotations

import operator
from typing import NamedTuple

import numpy as np

from refimpl.validate import check_array, check_positive, fail

OP = "weight_stats"


class WeightStatsCache(NamedTuple):
    M: np.ndarray           # [Nin, Nout]
    centred: np.ndarray     # M - mean over axis, shaped like M
    rms: np.ndarray         # y[:, 1], expanded to broadcast against M
    std: np.ndarray         # y[:, 3], expanded to broadcast against M
    axis: int


class WeightStatsGrads(NamedTuple):
    M: np.ndarray


def weight_stats_forward(M: np.ndarray, *, axis: int, eps: float = 1e-8) -> tuple[np.ndarray, WeightStatsCache]:
    """WeightStats forward.

    M [Nin, Nout]; axis 0 or 1 (the reduced axis); eps > 0.
    Returns (y [n, 4], WeightStatsCache) with n = M.shape[1 - axis] and columns
    [mean |m|, sqrt(mean m^2 + eps), mean m, sqrt(var m + eps)].
    """
    check_array(OP, "M", M, 2)
    try:
        axis = operator.index(axis)
    except TypeError:
        fail(OP, f"argument 'axis' must be 0 or 1, got {axis!r}")
    if axis not in (0, 1):
        fail(OP, f"argument 'axis' must be 0 or 1, got {axis!r}")
    eps = check_positive(OP, "eps", eps)
    if M.shape[axis] == 0:
        fail(OP, f"argument 'M' has no entries along axis {axis} (shape {M.shape})")

    mean_abs = np.abs(M).mean(axis=axis)                                  # eq. 1
    rms = np.sqrt(np.mean(M * M, axis=axis) + eps)                        # eq. 2
    mean = M.mean(axis=axis)                                              # eq. 3
    centred = M - np.expand_dims(mean, axis)
    std = np.sqrt(np.mean(centred * centred, axis=axis) + eps)            # eq. 4
    y = np.stack([mean_abs, rms, mean, std], axis=1)
    return y, WeightStatsCache(M, centred, np.expand_dims(rms, axis), np.expand_dims(std, axis), axis)


def weight_stats_backward(dy: np.ndarray, cache: WeightStatsCache) -> WeightStatsGrads:
    """VJP of weight_stats_forward: dy [n, 4] -> WeightStatsGrads(M [Nin, Nout])."""
    M, centred, rms, std, axis = cache
    g = [np.expand_dims(dy[:, c], axis) for c in range(4)]  # each broadcasts against M
    # derivations/weight_stats.md eq. 9
    dM = (g[0] * np.sign(M) + g[1] * M / rms + g[2] + g[3] * centred / std) / M.shape[axis]
    return WeightStatsGrads(dM)
