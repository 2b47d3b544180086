"""TopD: the top-layer error signal d^L = TopD(x^L) (SPEC 4), with its hand-composed VJP.

The paper's literal layer list, built from the two convolution primitives
only (shapes for x^L [B, N], N = N^L; T = topd_size, D = delta_dims):

    m0  = x^L[..., None]                                    [B, N, 1]
    m2  = relu(BN0(ConvBatch(m0,  topd/conv0/w)))  K = 5    [B, N, T]
    m4  = relu(BN1(ConvUnit (m2,  topd/conv1/w)))  K = 3    [B, N, B]
    m6  = relu(BN2(ConvUnit (m4,  topd/conv2/w)))  K = 3    [B, N, B]
    m8  = relu(BN3(ConvBatch(m6,  topd/conv3/w)))  K = 3    [B, N, T]
    m10 = relu(BN4(ConvBatch(m8,  topd/conv4/w)))  K = 3    [B, N, T]
    d^L = ConvBatch(m10, topd/conv5/w, topd/conv5/b)  K = 3  [B, N, D]

Each BNi is BatchNormTheta: axes (0, 1) of [B, N, C], per channel, gamma =
``topd/bn<i>/gamma``, beta = ``topd/bn<i>/beta``, eps = config.eps_theta.
No convolution that feeds a batch norm has a bias (SPEC 3 decision); only
conv5 has one. The ConvUnit widths are B (the paper's "S=B"), so a theta is
tied to the batch size it was built for (the last axis of ``topd/conv1/w``).

The conv -> BN -> relu block (:mod:`refimpl.rule.conv_block`) is shared
with ComputeH. Derivation: derivations/topd.md.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from refimpl.config import Config, check_config
from refimpl.ops.conv import ConvCache, conv_backward, conv_forward_unchecked
from refimpl.params import stage_theta_shapes
from refimpl.rule.conv_block import conv_bn_relu_chain_backward, conv_bn_relu_chain_forward
from refimpl.validate import check_cotangent, check_inputs, check_named_arrays, fail

OP = "topd"
OP_BACKWARD = "topd_backward"

#: Axis of each TopD conv -> BN -> relu block i = 0..4 (0: ConvBatch, 1: ConvUnit).
TOPD_BLOCK_AXES = (0, 1, 1, 0, 0)


# ---------------------------------------------------------------------------------
# TopD
# ---------------------------------------------------------------------------------
class TopDCache(NamedTuple):
    blocks: tuple            # ConvBnReluCache of blocks 0..4
    last: ConvCache          # conv5 (ConvBatch with bias)
    names: tuple             # every topd/* theta name, SPEC 9 order (keys of dtheta)
    shape: tuple             # (B, N) of xL
    dtype: np.dtype


def topd_forward(theta: Mapping[str, np.ndarray], xL: np.ndarray, config: Config) -> tuple[np.ndarray, TopDCache]:
    """TopD forward (SPEC 4; derivations/topd.md eq. 1-3).

    theta: mapping holding (at least) every ``topd/*`` name of SPEC 9 for
    ``config`` (other names are ignored); xL: x^L [B, N] with B =
    config.batch_size = the last axis of ``topd/conv1/w``, any N >= 1,
    same dtype as theta. Returns (d [B, N, D], TopDCache); d is not
    normalised (SPEC 4 step 2). A theta built for another batch size raises
    ValueError.
    """
    check_config(OP, config)
    check_inputs(OP, {"xL": "B N"}, {"xL": xL})
    _check_batch_size(theta, xL, config)
    check_named_arrays(OP, "theta", theta, stage_theta_shapes(OP, config), xL.dtype)
    return topd_forward_unchecked(theta, xL, config)


def topd_forward_unchecked(theta: Mapping[str, np.ndarray], xL: np.ndarray, config: Config
                           ) -> tuple[np.ndarray, TopDCache]:
    """topd_forward for arguments the caller has validated (update_step does, once)."""
    B, N = xL.shape
    eps = config.eps_theta
    m0 = xL[:, :, None]                                                    # eq. 2: m0 [B, N, 1]
    m, blocks = conv_bn_relu_chain_forward(m0, theta, OP, TOPD_BLOCK_AXES, eps=eps)   # eq. 2: m2 .. m10
    d, last = conv_forward_unchecked(m, theta["topd/conv5/w"], theta["topd/conv5/b"], 0)   # eq. 3
    return d, TopDCache(blocks, last, tuple(stage_theta_shapes(OP, config)), (B, N), xL.dtype)


def _check_batch_size(theta, xL, config: Config) -> None:
    """TopD's ConvUnit widths are B: a theta and a config serve one batch size (SPEC 4)."""
    B = xL.shape[0]
    conv1 = theta.get("topd/conv1/w") if hasattr(theta, "get") else None
    if isinstance(conv1, np.ndarray) and conv1.ndim == 3 and conv1.shape[-1] != B:
        fail(OP, f"theta was built for batch size {conv1.shape[-1]}, got a batch of {B} "
                 f"(last axis of 'topd/conv1/w' has shape {conv1.shape}, xL has shape "
                 f"{xL.shape}); TopD is tied to the batch size (SPEC 4)")
    if config.batch_size != B:
        fail(OP, f"config.batch_size is {config.batch_size} but xL has a batch of {B} "
                 f"(xL shape {xL.shape}); TopD is tied to the batch size (SPEC 4)")


def topd_backward(dd: np.ndarray, cache: TopDCache) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """VJP of topd_forward (derivations/topd.md eq. 4-7).

    dd: cotangent of d, [B, N, D], the forward's dtype.
    Returns (dtheta: dict over every ``topd/*`` name in SPEC 9 order,
    dxL [B, N]).
    """
    B, N = cache.shape
    D = cache.last.w.shape[2]
    check_cotangent(OP_BACKWARD, "dd", dd, (B, N, D), cache.dtype)

    g = conv_backward(dd, cache.last)                                      # eq. 5
    dm, dtheta = conv_bn_relu_chain_backward(g.m, cache.blocks, OP)        # eq. 6
    dtheta["topd/conv5/w"], dtheta["topd/conv5/b"] = g.w, g.bias
    dxL = np.ascontiguousarray(dm[:, :, 0])                                # eq. 7
    return {name: dtheta[name] for name in cache.names}, dxL
