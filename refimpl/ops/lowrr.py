"""LowRR: the low-rank readout of a pair of unit-feature tensors (SPEC 3).

    ra = ha @ pa,  rb = hb @ pb                      [B, Na, R], [B, Nb, R]
    y[i, j] = 1/(B R) sum_b sum_k ra[b, i, k] rb[b, j, k]              [Na, Nb]

Shapes: ha [B, Na, Hd], hb [B, Nb, Hd], pa, pb [Hd, R]; no bias.
Decision (SPEC 3): the paper's 1/(B lambda_hdims) is read as 1/(B R).
ha and hb may be the very same array (LowRR(h_lo, h_lo)); the backward still
returns one gradient per argument and the caller sums them.
Derivation: derivations/lowrr.md.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refimpl.validate import check_array, check_same_dtype, check_shape, fail

OP = "lowrr"


class LowRRCache(NamedTuple):
    ha: np.ndarray      # [B, Na, Hd]
    hb: np.ndarray      # [B, Nb, Hd]
    pa: np.ndarray      # [Hd, R]
    pb: np.ndarray      # [Hd, R]
    ra: np.ndarray      # [B, Na, R]
    rb: np.ndarray      # [B, Nb, R]
    scale: float        # 1 / (B R)


class LowRRGrads(NamedTuple):
    ha: np.ndarray
    hb: np.ndarray
    pa: np.ndarray
    pb: np.ndarray


def _contract(a, b, a_axes, b_axes):
    """``np.tensordot`` of two [B, n, k] arrays over two axes, as tensordot computes it (the same
    transposed copies and the same ``dot``) without its argument handling: ``a_axes`` puts a's kept
    axis first, ``b_axes`` b's kept axis last. ([1, 0, 2], [0, 2, 1]) contracts axes (0, 2) of both;
    ([2, 0, 1], [0, 1, 2]) contracts axes (0, 1) of both."""
    at = a.transpose(a_axes)
    bt = b.transpose(b_axes)
    return np.dot(at.reshape(at.shape[0], -1), bt.reshape(-1, bt.shape[-1]))


def lowrr_forward(ha: np.ndarray, hb: np.ndarray, pa: np.ndarray, pb: np.ndarray) -> tuple[np.ndarray, LowRRCache]:
    """LowRR forward.

    ha [B, Na, Hd], hb [B, Nb, Hd], pa [Hd, R], pb [Hd, R].
    Returns (y [Na, Nb], LowRRCache) with
    y[i, j] = 1/(B R) sum_b sum_k (ha @ pa)[b, i, k] (hb @ pb)[b, j, k].
    """
    check_array(OP, "ha", ha, 3)
    check_array(OP, "hb", hb, 3)
    check_array(OP, "pa", pa, 2)
    check_array(OP, "pb", pb, 2)
    B, Na, Hd = ha.shape
    if hb.shape[0] != B or hb.shape[2] != Hd:
        fail(OP, f"argument 'hb' must have shape ({B}, Nb, {Hd}) to match ha {ha.shape} "
                 f"(same batch and channels), got {hb.shape}")
    if pa.shape[0] != Hd:
        fail(OP, f"argument 'pa' must have {Hd} rows (Hd of ha {ha.shape}), got shape {pa.shape}")
    check_shape(OP, "pb", pb, pa.shape, "same as pa")
    check_same_dtype(OP, ha=ha, hb=hb, pa=pa, pb=pb)

    Nb, R = hb.shape[1], pa.shape[1]
    ra = (ha.reshape(B * Na, Hd) @ pa).reshape(B, Na, R)                   # eq. 1
    rb = (hb.reshape(B * Nb, Hd) @ pb).reshape(B, Nb, R)
    scale = 1.0 / (B * R)
    y = _contract(ra, rb, (1, 0, 2), (0, 2, 1)) * scale                    # eq. 2
    return y, LowRRCache(ha, hb, pa, pb, ra, rb, scale)


def lowrr_backward(dy: np.ndarray, cache: LowRRCache) -> LowRRGrads:
    """VJP of lowrr_forward: dy [Na, Nb] -> LowRRGrads(ha, hb, pa, pb), each shaped like its input."""
    ha, hb, pa, pb, ra, rb, scale = cache
    B, Na, R = ra.shape
    Nb = rb.shape[1]
    g = dy * scale
    # eq. 3-4: dra = einsum("ij,bjk->bik", g, rb), drb = einsum("ij,bik->bjk", g, ra), each as
    # numpy's einsum evaluates them: one matmul of the [B*R, N] transposed copy, read back transposed.
    dra = np.matmul(rb.transpose(0, 2, 1).reshape(B * R, Nb), g.T).reshape(B, R, Na).transpose(0, 2, 1)
    drb = np.matmul(ra.transpose(0, 2, 1).reshape(B * R, Na), g).reshape(B, R, Nb).transpose(0, 2, 1)
    dha = dra @ pa.T                                                       # eq. 5
    dhb = drb @ pb.T
    dpa = _contract(ha, dra, (2, 0, 1), (0, 1, 2))                         # eq. 6
    dpb = _contract(hb, drb, (2, 0, 1), (0, 1, 2))
    return LowRRGrads(dha, dhb, dpa, dpb)
