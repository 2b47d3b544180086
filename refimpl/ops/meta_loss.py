"""The meta-objective's label centring and squared-error loss (SPEC 6).

    center_labels:  Yc = Y - mean(Y)  (mean over all entries, a scalar)
                    Yh = Yc / sqrt(mean_b sum_c Yc[b, c]^2)   (one scalar divisor)
    meta_loss:      loss = (1/n) sum_b ||Ph_b - Yh_b||^2

The meta-objective never differentiates center_labels (labels are data), but
it has a backward so that every operator is checked the same way.
Derivations: derivations/center_labels.md, derivations/meta_loss.md.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refimpl.validate import check_array, check_same_dtype, check_shape, fail

OP_CENTER = "center_labels"
OP_LOSS = "meta_loss"


class CenterLabelsCache(NamedTuple):
    Yh: np.ndarray         # [n, c], the output
    inv_scale: np.ndarray  # 0-d, 1 / sqrt(mean_b sum_c Yc[b, c]^2)


class CenterLabelsGrads(NamedTuple):
    Y: np.ndarray


def center_labels_forward(Y: np.ndarray) -> tuple[np.ndarray, CenterLabelsCache]:
    """Label centring forward (derivations/center_labels.md eq. 1-2).

    Y: [n, c] targets (n = n_label rows; c = n_cls one-hot columns, then n_reg
    regression columns). Returns (Yh [n, c], CenterLabelsCache). Raises when
    every entry of Y is equal (the divisor would be zero).
    """
    check_array(OP_CENTER, "Y", Y, 2)
    if Y.size == 0:
        fail(OP_CENTER, f"argument 'Y' must not be empty, got shape {Y.shape}")
    if not np.any(Y != Y.flat[0]):
        fail(OP_CENTER, f"argument 'Y' has all entries equal ({float(Y.flat[0])!r}, shape "
                        f"{Y.shape}): the centred labels are zero and cannot be scaled")
    n = Y.shape[0]
    Yc = Y - Y.mean()                                                  # eq. 1
    inv_scale = 1.0 / np.sqrt(np.sum(Yc * Yc) / n)                     # eq. 2
    Yh = Yc * inv_scale
    return Yh, CenterLabelsCache(Yh, np.asarray(inv_scale, dtype=Y.dtype))


def center_labels_backward(dYh: np.ndarray, cache: CenterLabelsCache) -> CenterLabelsGrads:
    """VJP of center_labels_forward: grad for Y [n, c]."""
    Yh, inv_scale = cache
    n = Yh.shape[0]
    g = np.asarray(dYh).astype(Yh.dtype, copy=False)
    # derivations/center_labels.md eq. 5
    dY = inv_scale * (g - g.mean() - Yh * (np.sum(g * Yh) / n))
    return CenterLabelsGrads(dY)


class MetaLossCache(NamedTuple):
    diff: np.ndarray       # [n, c], Ph - Yh


class MetaLossGrads(NamedTuple):
    Ph: np.ndarray
    Yh: np.ndarray


def meta_loss_forward(Ph: np.ndarray, Yh: np.ndarray) -> tuple[np.ndarray, MetaLossCache]:
    """Meta-objective loss forward (derivations/meta_loss.md eq. 1).

    Ph: [n, c] row-normalised predictions; Yh: [n, c] centred labels.
    Returns (0-d array loss, MetaLossCache).
    """
    check_array(OP_LOSS, "Ph", Ph, 2)
    check_array(OP_LOSS, "Yh", Yh, 2)
    check_shape(OP_LOSS, "Yh", Yh, Ph.shape, "same as Ph")
    check_same_dtype(OP_LOSS, Ph=Ph, Yh=Yh)
    if Ph.shape[0] < 1:
        fail(OP_LOSS, f"argument 'Ph' must have at least one row, got shape {Ph.shape}")
    diff = Ph - Yh
    loss = np.asarray(np.sum(diff * diff) / Ph.shape[0], dtype=Ph.dtype)   # eq. 1
    return loss, MetaLossCache(diff)


def meta_loss_backward(dloss: float | np.ndarray, cache: MetaLossCache) -> MetaLossGrads:
    """VJP of meta_loss_forward: grads for Ph and Yh, both [n, c]."""
    (diff,) = cache
    scale = np.asarray(dloss).astype(diff.dtype) * (2.0 / diff.shape[0])
    dPh = scale * diff                     # derivations/meta_loss.md eq. 2
    return MetaLossGrads(dPh, -dPh)        # eq. 3
