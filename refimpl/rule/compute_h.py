"""ComputeH: the per-layer h features of the update rule (SPEC 4), with its hand-composed VJP.

For layer l with N = N^l units (D = delta_dims, Hs = computeh_size,
Hd = h_dims), reading the forward weights W (not V):

    p0[j] = sin(2 pi j / N), p1[j] = cos(2 pi j / N)      j = 0..N-1, float64 then cast
    m1 = concat([x, z, p0, p1] as 4 channels, d)             [B, N, 4 + D]
    m2 = BN_in(m1)                                           [B, N, 4 + D]
    s0 = WeightStats(W_bot = W^l,     axis 0)  per unit j    [N, 4]
    s1 = WeightStats(W_top = W^{l+1}, axis 1)  per unit j    [N, 4]
    m3 = concat(s0, s1 tiled over batch, m2, b tiled)        [B, N, 13 + D]
    m5 = relu(BN0(ConvBatch(m3, computeh/conv0/w)))          [B, N, Hs]
    m7 = relu(BN1(ConvUnit (m5, computeh/conv1/w)))          [B, N, Hs]
    m9 = relu(BN2(ConvBatch(m7, computeh/conv2/w)))          [B, N, Hs]
    h  = relu(BN3(ConvUnit (m9, computeh/conv3/w)))          [B, N, Hd]

Every BN is BatchNormTheta (axes (0, 1), gamma/beta ``computeh/bn_in|bn<i>/*``,
eps = config.eps_theta); every convolution has K = 3 and no bias (each feeds a
batch norm); WeightStats uses eps = config.eps_s. The channel order of
``computeh/conv0/w``'s 13 + D inputs is s0 (4), s1 (4), m2 (4 + D: x, z, p0,
p1, then d), bias (1) (SPEC 9).

Absent inputs are exact zeros in their channels, not statistics of a zero
matrix (SPEC 4): at l = 0 there is no z (z^0 = 0), no W^0 and no b^0, so the
z channel, s0 and the bias channel are 0; at l = L there is no W^{L+1}, so
s1 = 0. Their gradients are returned as None.
Derivation: derivations/compute_h.md.
"""
from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from refimpl.config import N_STATS, Config, check_config
from refimpl.ops.batchnorm import BatchNormCache, batchnorm_backward, batchnorm_forward
from refimpl.ops.weight_stats import weight_stats_backward, weight_stats_forward
from refimpl.params import stage_theta_shapes
from refimpl.rule.conv_block import BN_AXES, conv_bn_relu_chain_backward, conv_bn_relu_chain_forward
from refimpl.validate import check_cotangent, check_inputs, check_named_arrays, fail

OP = "compute_h"
OP_BACKWARD = "compute_h_backward"

#: Axis of each ComputeH conv -> BN -> relu block i = 0..3 (0: ConvBatch, 1: ConvUnit).
COMPUTEH_BLOCK_AXES = (0, 1, 0, 1)
#: Number of per-unit channels of m1 before d: x, z, p0, p1.
N_M1_FIXED = 4


def channel_slices(D: int) -> dict[str, slice]:
    """Where each input lands among conv0's 13 + D input channels (SPEC 9 order)."""
    s = N_STATS
    return {"s0": slice(0, s), "s1": slice(s, 2 * s), "m2": slice(2 * s, 3 * s + D),
            "bias": slice(3 * s + D, 3 * s + D + 1)}


def positional_channels(N: int, dtype: npt.DTypeLike) -> tuple[np.ndarray, np.ndarray]:
    """p0[j] = sin(2 pi j / N), p1[j] = cos(2 pi j / N), j = 0..N-1: computed in float64, then cast."""
    return _positional_channels(int(N), np.dtype(dtype))


@functools.lru_cache(maxsize=256)
def _positional_channels(N: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    angle = 2.0 * np.pi * np.arange(N, dtype=np.float64) / N
    p0, p1 = np.sin(angle).astype(dtype), np.cos(angle).astype(dtype)
    p0.setflags(write=False)        # shared by every call with this N and dtype
    p1.setflags(write=False)
    return p0, p1


class ComputeHCache(NamedTuple):
    bn_in: BatchNormCache    # m1 -> m2
    ws_bot: object           # WeightStats cache of W_bot (axis 0), or None (l = 0)
    ws_top: object           # WeightStats cache of W_top (axis 1), or None (l = L)
    blocks: tuple            # ConvBnReluCache of blocks 0..3
    has_z: bool
    has_b: bool
    names: tuple             # every computeh/* theta name, SPEC 9 order (keys of dtheta)
    shape: tuple             # (B, N, D)
    dtype: np.dtype


class ComputeHGrads(NamedTuple):
    theta: dict              # every computeh/* name -> grad, SPEC 9 order
    d: np.ndarray            # [B, N, D]
    x: np.ndarray            # [B, N]
    z: np.ndarray | None     # [B, N], None when z was absent
    W_bot: np.ndarray | None  # [N^{l-1}, N], None when absent
    W_top: np.ndarray | None  # [N, N^{l+1}], None when absent
    b: np.ndarray | None     # [N], None when absent


def compute_h_forward(theta: Mapping[str, np.ndarray], d: np.ndarray, x: np.ndarray, z: np.ndarray | None,
                      W_bot: np.ndarray | None, W_top: np.ndarray | None, b: np.ndarray | None, config: Config
                      ) -> tuple[np.ndarray, ComputeHCache]:
    """ComputeH forward (SPEC 4; derivations/compute_h.md eq. 1-6).

    theta: mapping holding (at least) every ``computeh/*`` name of SPEC 9;
    d [B, N, D]; x [B, N]; z [B, N] or None (l = 0); W_bot = W^l [N^{l-1}, N]
    or None (l = 0); W_top = W^{l+1} [N, N^{l+1}] or None (l = L); b [N] or
    None (l = 0). z, W_bot and b are absent together. All one dtype.
    Returns (h [B, N, Hd], ComputeHCache).
    """
    check_config(OP, config)
    absent = [name for name, v in (("z", z), ("W_bot", W_bot), ("b", b)) if v is None]
    if absent and len(absent) != 3:
        fail(OP, f"z, W_bot and b are absent together (the bottom layer l = 0) or present "
                 f"together; got only {absent} absent")
    _, dtype = check_inputs(OP, {"d": "B N delta_dims", "x": "B N", "z": "B N", "W_bot": "N_below N",
                                 "W_top": "N N_above", "b": "N"},
                            {"d": d, "x": x, "z": z, "W_bot": W_bot, "W_top": W_top, "b": b},
                            {"delta_dims": config.delta_dims})
    check_named_arrays(OP, "theta", theta, stage_theta_shapes("computeh", config), dtype)
    return compute_h_forward_unchecked(theta, d, x, z, W_bot, W_top, b, config)


def compute_h_forward_unchecked(theta: Mapping[str, np.ndarray], d: np.ndarray, x: np.ndarray, z: np.ndarray | None,
                                W_bot: np.ndarray | None, W_top: np.ndarray | None, b: np.ndarray | None,
                                config: Config) -> tuple[np.ndarray, ComputeHCache]:
    """compute_h_forward for arguments the caller has validated (update_step does, once)."""
    B, N, D = d.shape
    dtype = d.dtype
    eps = config.eps_theta

    p0, p1 = positional_channels(N, dtype)                                # eq. 1
    # eq. 2: m1 = [x, z, p0, p1, d]; absent z is an exact zero channel
    m1 = np.empty((B, N, N_M1_FIXED + D), dtype=dtype)
    m1[:, :, 0] = x
    m1[:, :, 1] = 0.0 if z is None else z
    m1[:, :, 2] = p0
    m1[:, :, 3] = p1
    m1[:, :, N_M1_FIXED:] = d
    # eq. 3: m2 = BN_in(m1)
    m2, bn_in = batchnorm_forward(m1, theta["computeh/bn_in/gamma"], theta["computeh/bn_in/beta"],
                                  axes=BN_AXES, eps=eps)
    # eq. 4: s0, s1 (exact zeros when the matrix is absent)
    ch = channel_slices(D)
    m3 = np.empty((B, N, 3 * N_STATS + 1 + D), dtype=dtype)
    ws_bot = ws_top = None
    if W_bot is None:
        m3[:, :, ch["s0"]] = 0.0
    else:
        s0, ws_bot = weight_stats_forward(W_bot, axis=0, eps=config.eps_s)    # [N, 4]
        m3[:, :, ch["s0"]] = s0
    if W_top is None:
        m3[:, :, ch["s1"]] = 0.0
    else:
        s1, ws_top = weight_stats_forward(W_top, axis=1, eps=config.eps_s)    # [N, 4]
        m3[:, :, ch["s1"]] = s1
    # eq. 5: m3 = [s0, s1, m2, b] (s0, s1, b tiled over the batch)
    m3[:, :, ch["m2"]] = m2
    m3[:, :, ch["bias"]] = 0.0 if b is None else b[:, None]
    # eq. 6: four conv -> BN -> relu blocks (derivations/topd.md eq. 1)
    m, blocks = conv_bn_relu_chain_forward(m3, theta, "computeh", COMPUTEH_BLOCK_AXES, eps=eps)
    return m, ComputeHCache(bn_in, ws_bot, ws_top, blocks, z is not None, b is not None,
                            tuple(stage_theta_shapes("computeh", config)), (B, N, D), dtype)


def compute_h_backward(dh: np.ndarray, cache: ComputeHCache) -> ComputeHGrads:
    """VJP of compute_h_forward (derivations/compute_h.md eq. 7-11).

    dh: cotangent of h, [B, N, Hd], the forward's dtype.
    Returns ComputeHGrads(theta = dict over every ``computeh/*`` name in SPEC 9
    order, d [B, N, D], x [B, N], z, W_bot, W_top, b shaped like their inputs,
    or None for each input that was absent).
    """
    B, N, D = cache.shape
    Hd = cache.blocks[-1].conv.w.shape[2]
    check_cotangent(OP_BACKWARD, "dh", dh, (B, N, Hd), cache.dtype)

    dm3, dtheta = conv_bn_relu_chain_backward(dh, cache.blocks, "computeh")   # eq. 7: [B, N, 13 + D]
    ch = channel_slices(D)
    # eq. 8: tiled channels collect their cotangent summed over the batch; eq. 9: WeightStats VJP
    dW_bot = dW_top = db = None
    if cache.ws_bot is not None:
        dW_bot = weight_stats_backward(dm3[:, :, ch["s0"]].sum(axis=0), cache.ws_bot).M
    if cache.ws_top is not None:
        dW_top = weight_stats_backward(dm3[:, :, ch["s1"]].sum(axis=0), cache.ws_top).M
    if cache.has_b:
        db = dm3[:, :, ch["bias"].start].sum(axis=0)
    # eq. 10: back through BN_in; eq. 11: split m1's channels
    g_in = batchnorm_backward(dm3[:, :, ch["m2"]], cache.bn_in)
    dtheta["computeh/bn_in/gamma"] = g_in.gamma
    dtheta["computeh/bn_in/beta"] = g_in.beta
    dm1 = g_in.m
    dx = np.ascontiguousarray(dm1[:, :, 0])
    dz = np.ascontiguousarray(dm1[:, :, 1]) if cache.has_z else None
    dd = np.ascontiguousarray(dm1[:, :, N_M1_FIXED:])                      # eq. 11
    return ComputeHGrads({name: dtheta[name] for name in cache.names}, dd, dx, dz,
                         dW_bot, dW_top, db)
