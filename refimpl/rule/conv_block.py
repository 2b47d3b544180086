"""The rule's conv -> batch norm -> relu block (SPEC 4), shared by TopD and ComputeH.

    y = relu(BatchNormTheta(Conv(m, w); gamma, beta, eps))

Conv is ConvBatch (axis 0) or ConvUnit (axis 1), without bias (it feeds a
batch norm, SPEC 3); BatchNormTheta normalises per channel over batch and
units. Derivation: derivations/topd.md eq. 1 and 4.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from refimpl.ops.activations import ActivationCache, activation_backward, activation_forward
from refimpl.ops.batchnorm import BatchNormCache, batchnorm_backward, batchnorm_forward
from refimpl.ops.conv import (ConvCache, conv_batch_backward, conv_batch_forward,
                              conv_unit_backward, conv_unit_forward)

#: BatchNormTheta axes: per channel, over batch and units (SPEC 3).
BN_AXES = (0, 1)
_CONV = {0: (conv_batch_forward, conv_batch_backward), 1: (conv_unit_forward, conv_unit_backward)}


class ConvBnReluCache(NamedTuple):
    conv: ConvCache          # conv input (as im2col columns) and weight
    bn: BatchNormCache       # normalised conv output, inverse std, gamma
    act: ActivationCache     # relu input (BN output) and output
    axis: int                # 0: ConvBatch, 1: ConvUnit


class ConvBnReluGrads(NamedTuple):
    m: np.ndarray            # [B, N, Cin]
    w: np.ndarray            # [K, Cin, Cout]
    gamma: np.ndarray        # [Cout]
    beta: np.ndarray         # [Cout]


def conv_bn_relu_forward(m, w, gamma, beta, *, axis: int, eps: float):
    """One rule block: relu(BatchNormTheta(Conv(m, w); gamma, beta, eps)).

    m [B, N, Cin]; w [K, Cin, Cout]; gamma, beta [Cout]; axis 0 = ConvBatch,
    1 = ConvUnit; the convolution has no bias (it feeds a batch norm).
    Returns (y [B, N, Cout], ConvBnReluCache).
    """
    conv_fwd, _ = _CONV[axis]
    c, conv_cache = conv_fwd(m, w)                                         # topd.md eq. 1a
    n, bn_cache = batchnorm_forward(c, gamma, beta, axes=BN_AXES, eps=eps)  # eq. 1b
    y, act_cache = activation_forward(n, name="relu")                      # eq. 1c
    return y, ConvBnReluCache(conv_cache, bn_cache, act_cache, axis)


def conv_bn_relu_backward(dy, cache: ConvBnReluCache) -> ConvBnReluGrads:
    """VJP of conv_bn_relu_forward: dy [B, N, Cout] -> grads for m, w, gamma, beta."""
    _, conv_bwd = _CONV[cache.axis]
    dn = activation_backward(dy, cache.act).z                              # topd.md eq. 4a
    g_bn = batchnorm_backward(dn, cache.bn)                                # eq. 4b
    g_conv = conv_bwd(g_bn.m, cache.conv)                                  # eq. 4c
    return ConvBnReluGrads(g_conv.m, g_conv.w, g_bn.gamma, g_bn.beta)


def conv_bn_relu_chain_forward(m, theta, prefix: str, axes, *, eps: float):
    """Blocks i = 0, 1, ... in a row, block i reading ``<prefix>/conv<i>/w`` and
    ``<prefix>/bn<i>/gamma|beta`` with conv axis ``axes[i]``.

    Returns (y, tuple of ConvBnReluCache).
    """
    caches = []
    for i, axis in enumerate(axes):
        m, cache = conv_bn_relu_forward(m, theta[f"{prefix}/conv{i}/w"], theta[f"{prefix}/bn{i}/gamma"],
                                        theta[f"{prefix}/bn{i}/beta"], axis=axis, eps=eps)
        caches.append(cache)
    return m, tuple(caches)


def conv_bn_relu_chain_backward(dy, caches, prefix: str):
    """VJP of conv_bn_relu_chain_forward: (dm, {``<prefix>/conv<i>/w``, ``<prefix>/bn<i>/*``: grad})."""
    dtheta = {}
    dm = dy
    for i in range(len(caches) - 1, -1, -1):
        g = conv_bn_relu_backward(dm, caches[i])
        dtheta[f"{prefix}/conv{i}/w"] = g.w
        dtheta[f"{prefix}/bn{i}/gamma"] = g.gamma
        dtheta[f"{prefix}/bn{i}/beta"] = g.beta
        dm = g.m
    return dm, dtheta
