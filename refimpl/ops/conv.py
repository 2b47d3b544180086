"""1-D convolutions of the update rule along the batch or the unit axis (SPEC 3).

ConvBatch runs along axis 0 (batch), independently for every unit n; ConvUnit
runs along axis 1 (units), independently for every batch element b. Both are
cross-correlations with zero "same" padding and an odd kernel size K:

    y[b, n, o] = bias[o] + sum_k sum_c m[b + k - P, n, c] w[k, c, o]     (ConvBatch)
    y[b, n, o] = bias[o] + sum_k sum_c m[b, n + k - P, c] w[k, c, o]     (ConvUnit)

with P = (K - 1) / 2 and m = 0 outside the array. Shapes: m [B, N, C],
w [K, C, Cout], bias [Cout] (optional), y [B, N, Cout].

Two evaluations of the same sum (derivations/conv_batch.md, "Two evaluations"):

- the plain form (``conv_im2col`` / ``conv_im2col_vjp``): im2col, i.e. the K
  shifted copies of m stacked into ``cols`` [B, N, K, C], then one BLAS matmul
  [B*N, K*C] @ [K*C, Cout]; the backward rebuilds ``cols`` from the cached m,
  then two more matmuls and a scatter-add of the K shifts. It is the
  definition, and float64 (the checking dtype, whose summation order the
  golden set records) always runs it;
- the tap form (``conv_taps`` / ``conv_taps_vjp``): K matmuls
  accumulated on shifted row ranges of the [B*N, C] view of m, no copy of m.
  A shift along the batch is a shift by whole blocks of N rows (exact); a shift
  along the units wraps, in the flattened view, into the neighbouring batch
  element at the first and last P units, which are recomputed exactly (and,
  for dw, the wrapped products subtracted). float32 runs it when C >= max(4, Cout / 2)
  (with fewer input channels the im2col copy is cheaper); tests compare it with the
  plain form in both dtypes (tests/test_fast_paths.py).
The public forwards validate their arguments, then dispatch
(``conv_forward_unchecked``); the rule's blocks call the unchecked form.
Derivation: derivations/conv_batch.md (ConvUnit: derivations/conv_unit.md).
"""
from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from refimpl.validate import check_array, check_same_dtype, check_shape, fail

OP_BATCH = "conv_batch"
OP_UNIT = "conv_unit"


class ConvCache(NamedTuple):
    m: np.ndarray       # [B, N, C], the input itself (no copy); the shifted copies are rebuilt in the backward
    w: np.ndarray       # [K, C, Cout]
    has_bias: bool
    axis: int           # 0 for conv_batch, 1 for conv_unit


class ConvGrads(NamedTuple):
    m: np.ndarray
    w: np.ndarray
    bias: np.ndarray | None


def _taps(length: int, K: int):
    """For each tap k: (k, destination slice, source slice) along the conv axis.

    Tap k reads m[i + s] into position i, s = k - P; positions whose source
    falls outside [0, length) are the zero padding.
    """
    P = (K - 1) // 2
    for k in range(K):
        s = k - P
        valid = max(0, length - abs(s))   # 0 when the kernel reaches past the whole axis
        dst0 = max(0, -s) if valid else 0
        src0 = max(0, s) if valid else 0
        yield k, slice(dst0, dst0 + valid), slice(src0, src0 + valid)


def _along(axis: int, index) -> tuple:
    """Index tuple selecting ``index`` on ``axis`` (0 or 1) of a [B, N, ...] array."""
    return (index, slice(None)) if axis == 0 else (slice(None), index)


def _im2col(m: np.ndarray, K: int, axis: int) -> np.ndarray:
    B, N, C = m.shape
    length = m.shape[axis]
    cols = np.empty((B, N, K, C), dtype=m.dtype)
    for k, dst, src in _taps(length, K):  # loop over the K taps only
        cols[_along(axis, dst) + (k,)] = m[_along(axis, src)]
        cols[_along(axis, slice(0, dst.start)) + (k,)] = 0.0       # zero padding, leading edge
        cols[_along(axis, slice(dst.stop, length)) + (k,)] = 0.0   # zero padding, trailing edge
    return cols


def _conv_along(op: str, axis: int, m, w, bias):
    _check_conv(op, m, w, bias)
    return conv_forward_unchecked(m, w, bias, axis)


def _check_conv(op, m, w, bias) -> None:
    check_array(op, "m", m, 3)
    check_array(op, "w", w, 3)
    if bias is not None:
        check_array(op, "bias", bias, 1)
    K, C, Cout = w.shape
    if K % 2 == 0:
        fail(op, f"kernel size K = w.shape[0] must be odd, got K = {K} (w of shape {w.shape})")
    if C != m.shape[2]:
        fail(op, f"argument 'w' has {C} input channels (w of shape {w.shape}) "
                 f"but m of shape {m.shape} has C = {m.shape[2]}")
    if bias is not None:
        check_shape(op, "bias", bias, (Cout,), f"Cout = w.shape[2] of w {w.shape}")
    check_same_dtype(op, m=m, w=w, bias=bias)


#: Dtypes that run the tap form; float64 runs the plain form (see the module docstring).
TAP_FORM_DTYPES = (np.dtype(np.float32),)


def uses_tap_form(m: np.ndarray, w: np.ndarray) -> bool:
    """float32 with C >= Cout / 2: with fewer input channels the K thin matmuls, each writing the whole
    [B*N, Cout] output, cost more than one im2col copy of m (benchmarks/RESULTS.md, "When the float32
    convolution uses the tap form")."""
    _, C, Cout = w.shape
    return m.dtype in TAP_FORM_DTYPES and C >= 4 and 2 * C >= Cout


def conv_forward_unchecked(m: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                           axis: int) -> tuple[np.ndarray, ConvCache]:
    """conv_batch_forward (axis 0) / conv_unit_forward (axis 1) for arguments the caller has validated."""
    if uses_tap_form(m, w):
        return conv_taps(m, w, bias, axis)
    return conv_im2col(m, w, bias, axis)


def conv_backward(dy: np.ndarray, cache: ConvCache) -> ConvGrads:
    """VJP of conv_forward_unchecked, in the form its forward used."""
    if uses_tap_form(cache.m, cache.w):
        return conv_taps_vjp(dy, cache)
    return conv_im2col_vjp(dy, cache)


def conv_im2col(m: np.ndarray, w: np.ndarray, bias: np.ndarray | None, axis: int) -> tuple[np.ndarray, ConvCache]:
    """The plain form (im2col, one matmul): derivations/conv_batch.md eq. 2."""
    K, C, Cout = w.shape
    B, N, _ = m.shape
    cols = _im2col(m, K, axis)
    y = cols.reshape(B * N, K * C) @ w.reshape(K * C, Cout)  # eq. 2
    if bias is not None:
        y += bias
    # Keeping m rather than cols costs one im2col in the backward and saves K copies of every conv
    # input for as long as the cache lives (benchmarks/RESULTS.md, "The plain convolution keeps m").
    return y.reshape(B, N, Cout), ConvCache(m, w, bias is not None, axis)


def conv_im2col_vjp(dy: np.ndarray, cache: ConvCache) -> ConvGrads:
    m, w, has_bias, axis = cache
    K, C, Cout = w.shape
    B, N, _ = m.shape
    cols = _im2col(m, K, axis)
    dy2 = dy.reshape(B * N, Cout)
    dw = (cols.reshape(B * N, K * C).T @ dy2).reshape(K, C, Cout)          # eq. 3
    dbias = dy2.sum(axis=0) if has_bias else None                          # eq. 4
    dcols = (dy2 @ w.reshape(K * C, Cout).T).reshape(B, N, K, C)           # eq. 5
    dm = np.zeros((B, N, C), dtype=dcols.dtype)
    for k, dst, src in _taps(cols.shape[axis], K):                         # eq. 6
        dm[_along(axis, src)] += dcols[_along(axis, dst) + (k,)]
    return ConvGrads(dm, dw, dbias)


def conv_batch_forward(m: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray, ConvCache]:
    """ConvBatch: 1-D cross-correlation along the batch axis, per unit.

    y[b, n, o] = bias[o] + sum_k sum_c m[b + k - (K-1)/2, n, c] w[k, c, o],
    zero "same" padding. m [B, N, C], w [K, C, Cout] with K odd,
    bias [Cout] or None. Returns (y [B, N, Cout], ConvCache).
    """
    return _conv_along(OP_BATCH, 0, m, w, bias)


def conv_batch_backward(dy: np.ndarray, cache: ConvCache) -> ConvGrads:
    """VJP of conv_batch_forward: dy [B, N, Cout] -> ConvGrads(m [B, N, C], w [K, C, Cout], bias [Cout] or None).

    derivations/conv_batch.md eqs. 3-6.
    """
    return conv_backward(dy, cache)


def conv_unit_forward(m: np.ndarray, w: np.ndarray, bias: np.ndarray | None = None) -> tuple[np.ndarray, ConvCache]:
    """ConvUnit: 1-D cross-correlation along the unit axis, per batch element.

    y[b, n, o] = bias[o] + sum_k sum_c m[b, n + k - (K-1)/2, c] w[k, c, o],
    zero "same" padding. m [B, N, C], w [K, C, Cout] with K odd,
    bias [Cout] or None. Returns (y [B, N, Cout], ConvCache).
    """
    return _conv_along(OP_UNIT, 1, m, w, bias)


def conv_unit_backward(dy: np.ndarray, cache: ConvCache) -> ConvGrads:
    """VJP of conv_unit_forward: dy [B, N, Cout] -> ConvGrads(m [B, N, C], w [K, C, Cout], bias [Cout] or None).

    derivations/conv_unit.md (the equations of derivations/conv_batch.md eqs. 3-6 on axis 1).
    """
    return conv_backward(dy, cache)


# ---------------------------------------------------------------------------------
# The tap form: K accumulated matmuls on shifted views (derivations/conv_batch.md eq. 7-9)
# ---------------------------------------------------------------------------------
def _edge_units(N: int, P: int) -> np.ndarray:
    """Units whose taps, in the flattened [B*N] row order, may wrap into another batch element."""
    return np.unique(np.concatenate([np.arange(min(P, N)), np.arange(max(N - P, 0), N)]))


@functools.lru_cache(maxsize=256)
def _edge_plan(N: int, K: int) -> tuple:
    """(edge units, ((k, which edge units tap k reaches in range, the units it reads), ...)) for
    the ConvUnit edge recomputation of eq. 8; a function of N and K only, so built once per pair."""
    P = (K - 1) // 2
    edge = _edge_units(N, P)
    taps = []
    for k in range(K):
        s = k - P
        src = edge + s
        ok = (s != 0) & (src >= 0) & (src < N)
        if ok.any():
            taps.append((k, ok, src[ok]))
    for a in [edge] + [a for _, ok, src in taps for a in (ok, src)]:
        a.setflags(write=False)
    return edge, tuple(taps)


def _tap_geometry(B: int, N: int, K: int, axis: int) -> tuple[int, int, int, int]:
    """(P, length, row_step, rows): the half-width, the length of the conv axis, the rows one step along
    it moves in the flattened [B*N] order, and B*N."""
    length, row_step = (B, N) if axis == 0 else (N, 1)
    return (K - 1) // 2, length, row_step, B * N


def _tap_rows(s: int, row_step: int, rows: int) -> tuple[slice, slice]:
    """(dst, src): the flattened rows where tap offset s (|s| < length) writes and the rows it reads."""
    off = abs(s) * row_step
    return (slice(0, rows - off), slice(off, rows)) if s > 0 else (slice(off, rows), slice(0, rows - off))


def _tap_sum(m, w, axis: int) -> np.ndarray:
    """sum_k shift_k(m) @ w[k] (eq. 7), [B*N, Cout]: one matmul per tap on row ranges of m's [B*N, C] view."""
    B, N, C = m.shape
    K, _, Cout = w.shape
    P, length, row_step, rows = _tap_geometry(B, N, K, axis)
    m2 = np.ascontiguousarray(m).reshape(rows, C)
    y = m2 @ w[P]                                            # the centre tap covers every row
    tmp = np.empty_like(y)
    for k in range(K):                                       # loop over the taps only
        s = k - P
        if s == 0 or abs(s) >= length:                       # a tap past the whole axis reads only padding
            continue
        dst, src = _tap_rows(s, row_step, rows)
        part = tmp[: rows - abs(s) * row_step]
        np.matmul(m2[src], w[k], out=part)
        y[dst] += part
    if axis == 1 and P > 0:
        # eq. 8: the first and last P units read, in the flattened order, a neighbouring batch
        # element; recompute their outputs from the in-range taps only.
        m3, y3 = m2.reshape(B, N, C), y.reshape(B, N, Cout)
        edge, taps = _edge_plan(N, K)
        acc = m3[:, edge] @ w[P]
        for k, ok, src in taps:
            acc[:, ok] += m3[:, src] @ w[k]
        y3[:, edge] = acc
    return y


def conv_taps(m: np.ndarray, w: np.ndarray, bias: np.ndarray | None, axis: int) -> tuple[np.ndarray, ConvCache]:
    """The tap form of conv_batch_forward (axis 0) / conv_unit_forward (axis 1); same cache, same result
    up to rounding. m [B, N, C], w [K, C, Cout], bias [Cout] or None -> (y [B, N, Cout], ConvCache)."""
    B, N, _ = m.shape
    y = _tap_sum(m, w, axis)
    if bias is not None:
        y += bias
    return y.reshape(B, N, w.shape[2]), ConvCache(m, w, bias is not None, axis)


def conv_taps_vjp(dy: np.ndarray, cache: ConvCache) -> ConvGrads:
    """VJP of conv_taps (derivations/conv_batch.md eq. 9; the same grads as eqs. 3-6)."""
    m, w, has_bias, axis = cache
    K, C, Cout = w.shape
    B, N, _ = m.shape
    P, length, row_step, rows = _tap_geometry(B, N, K, axis)
    m2 = np.ascontiguousarray(m).reshape(rows, C)
    dy = np.ascontiguousarray(dy)
    dy2 = dy.reshape(rows, Cout)
    dbias = dy2.sum(axis=0) if has_bias else None                          # eq. 4
    # eq. 6 as a cross-correlation of dy with the kernel flipped in k and transposed in (c, o)
    dm = _tap_sum(dy, w[::-1].transpose(0, 2, 1), axis).reshape(B, N, C)
    dw = np.zeros_like(w)
    for k in range(K):                                                     # eq. 3, one matmul per tap
        s = k - P
        if abs(s) >= length:
            continue
        dst, src = _tap_rows(s, row_step, rows)
        dw[k] = m2[src].T @ dy2[dst]
        if axis == 1 and s != 0:
            # eq. 9: remove the products the flattened shift paired across batch elements
            m3, dy3 = m2.reshape(B, N, C), dy2.reshape(B, N, Cout)
            a = abs(s)
            if s > 0:
                wrong_m, wrong_dy = m3[1:, :a], dy3[:-1, N - a:]
            else:
                wrong_m, wrong_dy = m3[:-1, N - a:], dy3[1:, :a]
            dw[k] -= wrong_m.reshape(-1, C).T @ wrong_dy.reshape(-1, Cout)
    return ConvGrads(dm, dw, dbias)
