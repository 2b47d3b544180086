"""Error propagation of the update rule, one layer down (SPEC 4 step 3).

For one layer l >= 1, with N = N^l units, Nb = N^{l-1} units below:

    g       = sigmoid(z^l)                                   [B, N]
    delta   = d^l * g[..., None] + h^l @ E_w + E_b           [B, N, D]
    dt[b, m, c] = sum_j V^l[m, j] delta[b, j, c]             [B, Nb, D]
    d^{l-1} = dt / sqrt(mean_c dt[b, m, c]^2 + eps_d)        [B, Nb, D]

with E_w = theta['errprop/w'] [Hd, D], E_b = theta['errprop/b'] [D] and
eps_d = config.eps_d. The sigmoid gate is the rule's own (SPEC 4), not the
base model's activation.

Composed from the primitives activation (sigmoid), gate, matmul and
channel_rms_normalize; the bias add is a broadcast whose VJP is a sum. Both
contractions are single BLAS matmuls: h @ E_w on the [B*N, Hd] reshape, and
the contraction over j as V @ delta laid out [N, B*D] (units first).
Derivation: derivations/error_prop.md.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from refimpl.config import Config, check_config
from refimpl.ops.activations import activation_backward, activation_forward
from refimpl.ops.elementwise import gate_backward, gate_forward
from refimpl.ops.matmul import matmul_backward, matmul_forward
from refimpl.ops.normalize import channel_rms_normalize_backward, channel_rms_normalize_forward
from refimpl.validate import check_array, check_inputs, check_named_arrays, check_shape

OP = "error_prop"


class ErrorPropCache(NamedTuple):
    shape: tuple            # (B, N, Nb, D, Hd)
    sig_cache: object       # ActivationCache of g = sigmoid(z)
    gate_cache: object      # GateCache of d * g[..., None]
    hE_cache: object        # MatmulCache of h2 [B*N, Hd] @ E_w [Hd, D]
    prop_cache: object      # MatmulCache of V [Nb, N] @ delta_t [N, B*D]
    norm_cache: object      # ChannelRmsNormalizeCache of dt [B, Nb, D]


class ErrorPropGrads(NamedTuple):
    theta: dict             # {'errprop/w': [Hd, D], 'errprop/b': [D]}
    d: np.ndarray           # [B, N, D]
    h: np.ndarray           # [B, N, Hd]
    z: np.ndarray           # [B, N]
    V: np.ndarray           # [Nb, N]


def error_prop_forward(theta: Mapping[str, np.ndarray], d: np.ndarray, h: np.ndarray, z: np.ndarray,
                       V: np.ndarray, config: Config) -> tuple[np.ndarray, ErrorPropCache]:
    """Propagate the top-down signal from layer l to layer l - 1 (SPEC 4 step 3).

    theta: mapping with 'errprop/w' [Hd, D] and 'errprop/b' [D] (other names ignored);
    d: d^l [B, N, D]; h: h^l [B, N, Hd]; z: z^l [B, N]; V: V^l [Nb, N]
    (N = N^l, Nb = N^{l-1}); config: for D, Hd and eps_d. All one dtype.

        delta   = d * sigmoid(z)[..., None] + h @ E_w + E_b        [B, N, D]
        dt      = sum_j V[m, j] delta[b, j, c]                     [B, Nb, D]
        d_below = dt / sqrt(mean_c dt^2 + eps_d)                   [B, Nb, D]

    Returns (d_below [B, Nb, D], ErrorPropCache).
    """
    D, Hd = check_config(OP, config).delta_dims, config.h_dims
    _, dtype = check_inputs(OP, {"d": "B N D", "h": "B N Hd", "z": "B N", "V": "Nb N"},
                            {"d": d, "h": h, "z": z, "V": V}, {"D": D, "Hd": Hd})
    check_named_arrays(OP, "theta", theta, {"errprop/w": (Hd, D), "errprop/b": (D,)}, dtype)
    return error_prop_forward_unchecked(theta, d, h, z, V, config)


def error_prop_forward_unchecked(theta: Mapping[str, np.ndarray], d: np.ndarray, h: np.ndarray, z: np.ndarray,
                                 V: np.ndarray, config: Config) -> tuple[np.ndarray, ErrorPropCache]:
    """error_prop_forward for arguments the caller has validated (update_step does, once)."""
    B, N, D = d.shape
    Nb, Hd = V.shape[0], h.shape[2]
    E_w, E_b = theta["errprop/w"], theta["errprop/b"]

    g, sig_cache = activation_forward(z, name="sigmoid")              # [B, N]
    gated, gate_cache = gate_forward(d, g)                            # [B, N, D]
    hE, hE_cache = matmul_forward(h.reshape(B * N, Hd), E_w)          # [B*N, D]
    delta = gated + hE.reshape(B, N, D) + E_b                         # eq. 1

    # eq. 2: dt = V @ delta with units first: delta_t [N, B*D] (one gemm).
    delta_t = np.ascontiguousarray(delta.transpose(1, 0, 2)).reshape(N, B * D)
    dt_t, prop_cache = matmul_forward(V, delta_t)                     # [Nb, B*D]
    dt = dt_t.reshape(Nb, B, D).transpose(1, 0, 2)                    # [B, Nb, D] (a view)

    d_below, norm_cache = channel_rms_normalize_forward(dt, eps=config.eps_d)   # eq. 3
    return d_below, ErrorPropCache((B, N, Nb, D, Hd), sig_cache, gate_cache, hE_cache,
                                   prop_cache, norm_cache)


def error_prop_backward(dd_below: np.ndarray, cache: ErrorPropCache) -> ErrorPropGrads:
    """VJP of error_prop_forward (derivations/error_prop.md eq. 4-9).

    dd_below: cotangent of d_below [B, Nb, D].
    Returns ErrorPropGrads(theta={'errprop/w', 'errprop/b'}, d, h, z, V).
    """
    B, N, Nb, D, Hd = cache.shape
    check_array(OP, "dd_below", dd_below, 3)
    check_shape(OP, "dd_below", dd_below, (B, Nb, D), "like d_below")

    ddt = channel_rms_normalize_backward(dd_below, cache.norm_cache).x      # eq. 4
    ddt_t = np.ascontiguousarray(ddt.transpose(1, 0, 2)).reshape(Nb, B * D)
    g_prop = matmul_backward(ddt_t, cache.prop_cache)                       # eq. 5
    dV = g_prop.a                                                           # [Nb, N]
    ddelta = g_prop.b.reshape(N, B, D).transpose(1, 0, 2)                   # [B, N, D]

    dE_b = ddelta.sum(axis=(0, 1))                                          # eq. 6
    g_hE = matmul_backward(np.ascontiguousarray(ddelta).reshape(B * N, D), cache.hE_cache)  # eq. 7
    g_gate = gate_backward(ddelta, cache.gate_cache)                        # eq. 8
    dz = activation_backward(g_gate.g, cache.sig_cache).z                   # eq. 9
    return ErrorPropGrads({"errprop/w": g_hE.b, "errprop/b": dE_b},
                          g_gate.d, g_hE.a.reshape(B, N, Hd), dz, dV)
