"""The rule's conv -> batch norm -> relu block (SPEC 4), shared by TopD and ComputeH.

    y = relu(BatchNormTheta(Conv(m, w); gamma, beta, eps))

Conv is ConvBatch (axis 0) or ConvUnit (axis 1), without bias (it feeds a
batch norm, SPEC 3); BatchNormTheta normalises per channel over batch and
units. Derivation: derivations/topd.md eq. 1 and 4.

Two evaluations: the plain composition of the three operators (the
definition; float64 runs it) and, for float32, :func:`conv_bn_relu_fused_forward`
/ :func:`conv_bn_relu_fused_backward`: the unchecked convolution (tap form),
batch norm in place on the conv output with relu applied in place on its
output, and a backward that takes the relu mask from the output and the
batch-norm means from dbeta and dgamma (derivations/batchnorm.md eq. 7); the
cache keeps the centred conv output (xhat = centred * inv_std is never
stored): fewer full passes over [B, N, Cout] than the plain form (counted in
benchmarks/RESULTS.md, "Where the time of an update step goes").
tests/test_topd.py compares the two in both dtypes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from refimpl.ops.activations import ActivationCache, activation_backward, activation_forward
from refimpl.ops.batchnorm import BatchNormCache, batchnorm_backward, batchnorm_forward
from refimpl.ops.conv import (
    ConvCache,
    conv_backward,
    conv_batch_backward,
    conv_batch_forward,
    conv_forward_unchecked,
    conv_unit_backward,
    conv_unit_forward,
)

#: BatchNormTheta axes: per channel, over batch and units (SPEC 3).
BN_AXES = (0, 1)
_CONV = {0: (conv_batch_forward, conv_batch_backward), 1: (conv_unit_forward, conv_unit_backward)}


class ConvBnReluCache(NamedTuple):
    conv: ConvCache          # conv input and weight
    bn: BatchNormCache       # normalised conv output, inverse std, gamma
    act: ActivationCache     # relu input (BN output) and output
    axis: int                # 0: ConvBatch, 1: ConvUnit


class ConvBnReluGrads(NamedTuple):
    m: np.ndarray            # [B, N, Cin]
    w: np.ndarray            # [K, Cin, Cout]
    gamma: np.ndarray        # [Cout]
    beta: np.ndarray         # [Cout]


class ConvBnReluFusedCache(NamedTuple):
    conv: ConvCache          # conv input and weight
    centred: np.ndarray      # [B*N, Cout] conv output minus its channel means (xhat = centred * inv_std)
    inv_std: np.ndarray      # [Cout]
    gamma: np.ndarray        # [Cout]
    y: np.ndarray            # [B, N, Cout] the block's output (relu mask: y > 0)
    axis: int


#: Dtypes that run the fused block (float64 runs the plain composition; see the module docstring).
FUSED_DTYPES = (np.dtype(np.float32),)


def conv_bn_relu_forward(m: np.ndarray, w: np.ndarray, gamma: np.ndarray, beta: np.ndarray, *, axis: int, eps: float
                         ) -> tuple[np.ndarray, ConvBnReluCache | ConvBnReluFusedCache]:
    """One rule block, fused for float32 (:func:`conv_bn_relu_fused_forward`), plain otherwise."""
    if m.dtype in FUSED_DTYPES:
        return conv_bn_relu_fused_forward(m, w, gamma, beta, axis=axis, eps=eps)
    return conv_bn_relu_plain_forward(m, w, gamma, beta, axis=axis, eps=eps)


def conv_bn_relu_backward(dy: np.ndarray, cache: ConvBnReluCache | ConvBnReluFusedCache) -> ConvBnReluGrads:
    """VJP of conv_bn_relu_forward, in the form its forward used."""
    if isinstance(cache, ConvBnReluFusedCache):
        return conv_bn_relu_fused_backward(dy, cache)
    return conv_bn_relu_plain_backward(dy, cache)


def conv_bn_relu_fused_forward(m: np.ndarray, w: np.ndarray, gamma: np.ndarray, beta: np.ndarray, *, axis: int,
                               eps: float) -> tuple[np.ndarray, ConvBnReluFusedCache]:
    """conv_bn_relu_plain_forward's result (up to rounding) for validated arguments, in place where it can be."""
    B, N, _ = m.shape
    c, conv_cache = conv_forward_unchecked(m, w, None, axis)              # topd.md eq. 1a
    centred = c.reshape(B * N, -1)                                         # eq. 1b, batchnorm.md eq. 1-3,
    n = centred.shape[0]                                                   # in place on the fresh conv output
    centred -= centred.mean(axis=0)
    inv_std = 1.0 / np.sqrt(np.einsum("ij,ij->j", centred, centred) / n + eps)
    y = np.multiply(centred, gamma * inv_std)                              # gamma xhat, xhat never stored
    y += beta
    np.maximum(y, 0, out=y)                                                # eq. 1c
    y = y.reshape(B, N, -1)
    return y, ConvBnReluFusedCache(conv_cache, centred, inv_std, gamma, y, axis)


def conv_bn_relu_fused_backward(dy: np.ndarray, cache: ConvBnReluFusedCache) -> ConvBnReluGrads:
    """VJP of conv_bn_relu_fused_forward (topd.md eq. 4; batchnorm.md eq. 7)."""
    centred, inv_std, gamma = cache.centred, cache.inv_std, cache.gamma
    n = centred.shape[0]
    dn = np.multiply(dy, cache.y > 0).reshape(n, -1)                       # eq. 4a: relu' from the output
    dbeta = dn.sum(axis=0)                                                 # batchnorm.md eq. 6
    dgamma = np.einsum("ij,ij->j", dn, centred) * inv_std                  # eq. 5, xhat = centred inv_std
    scale = gamma * inv_std
    # batchnorm.md eq. 7: dm = gamma inv_std (dn - dbeta / n - xhat dgamma / n)
    dn *= scale
    dn -= scale * dbeta / n
    correction = np.multiply(centred, scale * inv_std * dgamma / n)
    dn -= correction
    del correction
    g_conv = conv_backward(dn.reshape(cache.y.shape), cache.conv)          # eq. 4c
    return ConvBnReluGrads(g_conv.m, g_conv.w, dgamma, dbeta)


def conv_bn_relu_plain_forward(m: np.ndarray, w: np.ndarray, gamma: np.ndarray, beta: np.ndarray, *, axis: int,
                               eps: float) -> tuple[np.ndarray, ConvBnReluCache]:
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


def conv_bn_relu_plain_backward(dy: np.ndarray, cache: ConvBnReluCache) -> ConvBnReluGrads:
    """VJP of conv_bn_relu_plain_forward: dy [B, N, Cout] -> grads for m, w, gamma, beta."""
    _, conv_bwd = _CONV[cache.axis]
    dn = activation_backward(dy, cache.act).z                              # topd.md eq. 4a
    g_bn = batchnorm_backward(dn, cache.bn)                                # eq. 4b
    g_conv = conv_bwd(g_bn.m, cache.conv)                                  # eq. 4c
    return ConvBnReluGrads(g_conv.m, g_conv.w, g_bn.gamma, g_bn.beta)


def conv_bn_relu_chain_forward(m: np.ndarray, theta: Mapping[str, np.ndarray], prefix: str, axes: Sequence[int], *,
                               eps: float) -> tuple[np.ndarray, tuple[ConvBnReluCache | ConvBnReluFusedCache, ...]]:
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


def conv_bn_relu_chain_backward(dy: np.ndarray, caches: Sequence[ConvBnReluCache | ConvBnReluFusedCache], prefix: str
                                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
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
