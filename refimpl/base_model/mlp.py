"""The base model (SPEC 2) and its hand-composed VJP.

For l = 1..L, with x^0 = x [B, N^0]:

    a^l = x^{l-1} @ W^l                                   [B, N^l]
    z^l = (a^l - mean_b a^l) / sqrt(var_b a^l + eps_phi) + b^l
    x^l = f(z^l)                                          f = config.activation

The batch norm is :func:`refimpl.ops.batchnorm.batchnorm_forward` with axes
(0,), eps = config.eps_phi and neither gamma nor beta; b^l is added after it.
V^l is not used here (only the update rule reads it), so its gradient is
zero. The backward takes a cotangent for *every* x^l (l = 0..L) and every
z^l (l = 1..L), because the update rule reads all of them; None means zero.
Derivation: derivations/base_model.md.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from refimpl.config import Config, check_config
from refimpl.ops.activations import activation_backward, activation_forward
from refimpl.ops.batchnorm import batchnorm_backward, batchnorm_forward
from refimpl.params import phi_shapes, validate_phi
from refimpl.validate import check_array, check_inputs, fail

OP = "base_forward"
OP_BACKWARD = "base_backward"


class BaseCache(NamedTuple):
    xs: list            # [x^0 .. x^L], x^l [B, N^l] (references to the forward outputs)
    Ws: list            # [W^1 .. W^L], W^l [N^{l-1}, N^l] (references into phi)
    bn_caches: list     # BatchNormCache of layer 1..L
    act_caches: list    # ActivationCache of layer 1..L
    phi_names: tuple    # phi names in SPEC 9 order (keys of the returned dphi)
    phi_shapes: dict    # name -> shape, for the zero V gradients
    dtype: np.dtype


def base_forward(phi: Mapping[str, np.ndarray], x: np.ndarray, config: Config
                 ) -> tuple[list[np.ndarray], list[np.ndarray], BaseCache]:
    """Base-model forward pass (SPEC 2; derivations/base_model.md eq. 1-3).

    phi: mapping with layer<l>/W, layer<l>/V [N^{l-1}, N^l] and layer<l>/b [N^l],
    l = 1..L (config.layer_sizes = [N^0, ..., N^L]); x: [B, N^0], any B >= 1
    (the unlabeled batch or a labeled one), same dtype as phi.
    Returns (xs = [x^0, ..., x^L] with x^0 = x itself, zs = [z^1, ..., z^L],
    BaseCache); x^l and z^l are [B, N^l].
    """
    dtype = validate_phi(phi, check_config(OP, config), fn=OP)
    check_inputs(OP, {"x": "B N^0"}, {"x": x}, {"N^0": config.layer_sizes[0]})
    if x.dtype != dtype:
        fail(OP, f"arguments must share one dtype, got x: {x.dtype}, phi: {dtype}")
    return base_forward_unchecked(phi, x, config)


def base_forward_unchecked(phi: Mapping[str, np.ndarray], x: np.ndarray, config: Config
                           ) -> tuple[list[np.ndarray], list[np.ndarray], BaseCache]:
    """base_forward for arguments the caller has validated (update_step does, once)."""
    sizes, dtype = config.layer_sizes, x.dtype
    xs, zs, Ws, bn_caches, act_caches = [x], [], [], [], []
    for l in range(1, len(sizes)):
        W, b = phi[f"layer{l}/W"], phi[f"layer{l}/b"]
        a = xs[-1] @ W                                                        # eq. 1
        a_hat, bn_cache = batchnorm_forward(a, axes=(0,), eps=config.eps_phi)
        z = a_hat + b                                                         # eq. 2
        x_l, act_cache = activation_forward(z, name=config.activation)        # eq. 3
        xs.append(x_l)
        zs.append(z)
        Ws.append(W)
        bn_caches.append(bn_cache)
        act_caches.append(act_cache)
    shapes = phi_shapes(config)
    return xs, zs, BaseCache(xs, Ws, bn_caches, act_caches, tuple(shapes), shapes, dtype)


def _check_cotangents(kind: str, cots, refs, dtype) -> None:
    if not isinstance(cots, (list, tuple)) or len(cots) != len(refs):
        got = len(cots) if isinstance(cots, (list, tuple)) else type(cots).__name__
        fail(OP_BACKWARD, f"argument '{kind}' must be a list of {len(refs)} cotangents "
                          f"(None or arrays), got {got}")
    first = 0 if kind == "dxs" else 1
    for i, (c, ref) in enumerate(zip(cots, refs)):
        if c is None:
            continue
        name = f"{kind}[{i}] ({kind[1]}^{i + first})"
        check_array(OP_BACKWARD, name, c, 2)
        if c.shape != ref.shape:
            fail(OP_BACKWARD, f"argument '{name}' must have shape {ref.shape}, got {c.shape}")
        if c.dtype != dtype:
            fail(OP_BACKWARD, f"argument '{name}' must be {dtype} like the forward, got {c.dtype}")


def base_backward(dxs: Sequence[np.ndarray | None], dzs: Sequence[np.ndarray | None], cache: BaseCache
                  ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """VJP of base_forward (derivations/base_model.md eq. 4-9).

    dxs: [dx^0, ..., dx^L], dzs: [dz^1, ..., dz^L] (cotangents of the forward's
    xs and zs, each shaped like its output or None for zero).
    Returns (dphi: dict over every phi name in SPEC 9 order, layer<l>/V zero;
    dx: [B, N^0], which includes dxs[0]).
    """
    xs, Ws, bn_caches, act_caches, names, shapes, dtype = cache
    L = len(Ws)
    _check_cotangents("dxs", dxs, xs, dtype)
    _check_cotangents("dzs", dzs, xs[1:], dtype)

    dphi = {}
    gx = dxs[L]                        # total cotangent of x^L: eq. 4 (nothing above it)
    for l in range(L, 0, -1):
        gz = None if gx is None else activation_backward(gx, act_caches[l - 1]).z   # eq. 5
        if dzs[l - 1] is not None:
            gz = dzs[l - 1] if gz is None else gz + dzs[l - 1]                      # eq. 5
        gx_below = dxs[l - 1]
        if gz is None:                 # no cotangent reaches layer l or above
            dphi[f"layer{l}/W"] = np.zeros(shapes[f"layer{l}/W"], dtype)
            dphi[f"layer{l}/b"] = np.zeros(shapes[f"layer{l}/b"], dtype)
        else:
            dphi[f"layer{l}/b"] = gz.sum(axis=0)                                    # eq. 6
            ga = batchnorm_backward(gz, bn_caches[l - 1]).m                         # eq. 7
            dphi[f"layer{l}/W"] = xs[l - 1].T @ ga                                  # eq. 8
            through = ga @ Ws[l - 1].T                                              # eq. 9
            gx_below = through if gx_below is None else through + gx_below          # eq. 4
        dphi[f"layer{l}/V"] = np.zeros(shapes[f"layer{l}/V"], dtype)
        gx = gx_below
    if gx is None:
        dx = np.zeros(xs[0].shape, dtype)
    elif gx is dxs[0]:
        dx = gx.copy()                 # never hand back the caller's own array
    else:
        dx = gx
    return {name: dphi[name] for name in names}, dx
