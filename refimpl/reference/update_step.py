"""Independent transcription of SPEC 2, 4 and 5 in ``autograd.numpy``: the
oracle for the base model, TopD, ComputeH and the whole update step.

Written from the SPEC text alone, sharing no code with ``refimpl.ops`` or
``refimpl.rule``; every primitive it composes is the oracle beside it (the
rule in refimpl/reference/__init__.py). Vectorised (but plain) so that autograd applied to it is
also the baseline of ``benchmarks/update_step.py`` at the paper's sizes.
Loops run over layers and kernel taps only.

Conventions: theta and phi are dicts with the SPEC 9 names; ``cfg`` is a
``refimpl.config.Config`` (only its fields are read).
"""
import autograd.numpy as anp
import numpy as np

from refimpl.reference.activations import activation_vectorized
from refimpl.reference.batchnorm import batchnorm_vectorized
from refimpl.reference.conv import conv_vectorized as conv
from refimpl.reference.elementwise import gate_vectorized, gauss_reference, signed_square_reference, soft_sqrt_reference
from refimpl.reference.lowrr import lowrr_vectorized as lowrr
from refimpl.reference.normalize import (
    channel_rms_normalize_vectorized,
    column_normalize_vectorized,
    frobenius_normalize_vectorized,
    plane_normalize_vectorized as plane_norm,
)
from refimpl.reference.planes import (
    bias_centre_vectorized,
    cross_cov_vectorized,
    orth_vectorized,
    sym_zero_diag_vectorized as sym_zero_diag,
)
from refimpl.reference.weight_stats import weight_stats_vectorized


def relu(v):
    return anp.where(v > 0, v, 0.0 * v)


def act(name, z):
    """SPEC 2 activations (the vectorised oracle form shared with the activation registry entry)."""
    return activation_vectorized(z, name=name)


def bn_theta(theta, prefix, m, cfg):
    """SPEC 3 BatchNormTheta: per channel over batch and units."""
    return batchnorm_vectorized(m, theta[prefix + "/gamma"], theta[prefix + "/beta"], axes=(0, 1),
                                eps=cfg.eps_theta)


def base_forward(phi, x, cfg):
    """SPEC 2: returns [x^0..x^L], [z^1..z^L]."""
    L = len(cfg.layer_sizes) - 1
    xs, zs = [x], []
    for l in range(1, L + 1):
        a = xs[-1] @ phi[f"layer{l}/W"]
        z = batchnorm_vectorized(a, axes=(0,), eps=cfg.eps_phi) + phi[f"layer{l}/b"]
        zs.append(z)
        xs.append(act(cfg.activation, z))
    return xs, zs


def topd(theta, xL, cfg):
    """SPEC 4 TopD: [B, N^L] -> [B, N^L, D]."""
    m = xL[:, :, None]
    layers = [(0, 0), (1, 1), (2, 1), (3, 0), (4, 0)]   # (index, axis): ConvBatch = 0, ConvUnit = 1
    for i, axis in layers:
        m = relu(bn_theta(theta, f"topd/bn{i}", conv(m, theta[f"topd/conv{i}/w"], axis), cfg))
    return conv(m, theta["topd/conv5/w"], 0, theta["topd/conv5/b"])


def compute_h(theta, d, x, z, W_bot, W_top, b, cfg):
    """SPEC 4 ComputeH for a layer with N units; absent inputs (None) are exact zeros."""
    B, N = x.shape
    dtype = x.dtype
    j = np.arange(N, dtype=np.float64)
    p0 = np.sin(2 * np.pi * j / N).astype(dtype)
    p1 = np.cos(2 * np.pi * j / N).astype(dtype)
    ones_b = np.ones((B, 1), dtype=dtype)
    zz = z if z is not None else np.zeros((B, N), dtype=dtype)
    m1 = anp.concatenate([x[:, :, None], zz[:, :, None], (ones_b * p0)[:, :, None],
                          (ones_b * p1)[:, :, None], d], axis=2)
    m2 = bn_theta(theta, "computeh/bn_in", m1, cfg)
    zeros4 = np.zeros((N, 4), dtype=dtype)
    s0 = weight_stats_vectorized(W_bot, axis=0, eps=cfg.eps_s) if W_bot is not None else zeros4
    s1 = weight_stats_vectorized(W_top, axis=1, eps=cfg.eps_s) if W_top is not None else zeros4
    bias = (ones_b * b) if b is not None else np.zeros((B, N), dtype=dtype)
    m3 = anp.concatenate([ones_b[:, :, None] * s0[None], ones_b[:, :, None] * s1[None], m2,
                          bias[:, :, None]], axis=2)
    m = m3
    for i, axis in [(0, 0), (1, 1), (2, 0), (3, 1)]:
        m = relu(bn_theta(theta, f"computeh/bn{i}", conv(m, theta[f"computeh/conv{i}/w"], axis), cfg))
    return m


def error_prop(E_w, E_b, d, h, z, V, eps_d):
    """SPEC 4 step 3: d^l [B, N, D] at layer l -> d^(l-1) [B, N_b, D] through V^l [N_b, N]."""
    gate = 0.5 * (anp.tanh(0.5 * z) + 1.0)      # sigmoid(z) (its form: refimpl/reference/__init__.py)
    delta = gate_vectorized(d, gate) + anp.dot(h, E_w) + E_b
    dt = anp.transpose(anp.tensordot(V, delta, axes=([1], [1])), (1, 0, 2))
    return channel_rms_normalize_vectorized(dt, eps=eps_d)


def readout(theta, name, ha, hb):
    return lowrr(ha, hb, theta[f"readout/{name}/a"], theta[f"readout/{name}/b"])


def shared_planes(theta, h_lo, h_up, x_lo, x_up):
    """SPEC 5, what one layer's W and V updates share: the readouts (the square
    ones through A) and the cross-covariance, keyed by readout name and "cross_cov"."""
    Nin, Nout = h_lo.shape[1], h_up.shape[1]
    return {
        "zero": readout(theta, "zero", h_lo, h_up),
        "rbf": readout(theta, "rbf", h_lo, h_up),
        "first": readout(theta, "first", h_lo, h_up),
        "lin_lower": sym_zero_diag(readout(theta, "lin_lower", h_lo, h_lo) / np.sqrt(Nin)),
        "sqr_lower": sym_zero_diag(readout(theta, "sqr_lower", h_lo, h_lo) / np.sqrt(Nin)),
        "lin_upper": sym_zero_diag(readout(theta, "lin_upper", h_up, h_up) / np.sqrt(Nout)),
        "sqr_upper": sym_zero_diag(readout(theta, "sqr_upper", h_up, h_up) / np.sqrt(Nout)),
        "cross_cov": cross_cov_vectorized(x_lo, x_up),
    }


def matrix_update(merge_w, M, s, eps_w, parts=False):
    """SPEC 5: dM_final for M = W^l or V^l from the shared quantities ``s``;
    with ``parts`` also (dM_orth, <merge, Mf>)."""
    Mh = column_normalize_vectorized(M, eps=eps_w)
    Q = soft_sqrt_reference(Mh)
    planes = [
        Mh,
        signed_square_reference(Mh),
        s["zero"],
        gauss_reference(Mh) * s["rbf"],
        Mh * s["first"],
        s["cross_cov"],
        s["lin_lower"] @ Mh,
        s["sqr_lower"] @ Q,
        Mh @ s["lin_upper"],
        Q @ s["sqr_upper"],
    ]
    merge = 0.0
    for i, P in enumerate(planes):
        merge = merge + merge_w[i] * plane_norm(P)
    merge = merge / 10.0
    Mf = frobenius_normalize_vectorized(M)
    ip = anp.sum(merge * Mf)
    orth = orth_vectorized(merge, Mf)
    final = plane_norm(orth)
    return (final, orth, ip) if parts else final


def bias_change(theta, h_up):
    B = h_up.shape[0]
    base = anp.sum(anp.dot(h_up, theta["bias/w"]), axis=0) / B
    return plane_norm(bias_centre_vectorized(base))


def update_step(theta, phi, x, cfg, return_internals=False):
    """One step of SPEC 4: returns (phi_next, deltas) with deltas keyed like phi."""
    L = len(cfg.layer_sizes) - 1
    xs, zs = base_forward(phi, x, cfg)
    zs = [None] + zs                                     # z^0 is absent
    d = {L: topd(theta, xs[L], cfg)}
    h = {}
    for l in range(L, -1, -1):
        W_bot = phi[f"layer{l}/W"] if l >= 1 else None
        W_top = phi[f"layer{l + 1}/W"] if l < L else None
        b = phi[f"layer{l}/b"] if l >= 1 else None
        h[l] = compute_h(theta, d[l], xs[l], zs[l], W_bot, W_top, b, cfg)
        if l >= 1:
            d[l - 1] = error_prop(theta["errprop/w"], theta["errprop/b"], d[l], h[l], zs[l],
                                  phi[f"layer{l}/V"], cfg.eps_d)
    phi_next, deltas = {}, {}
    for l in range(1, L + 1):
        shared = shared_planes(theta, h[l - 1], h[l], xs[l - 1], xs[l])
        for kind in ("W", "V"):
            key = f"layer{l}/{kind}"
            deltas[key] = matrix_update(theta["merge/w"], phi[key], shared, cfg.eps_w)
        deltas[f"layer{l}/b"] = bias_change(theta, h[l])
        for kind in ("W", "V", "b"):
            key = f"layer{l}/{kind}"
            phi_next[key] = (1.0 - cfg.lr_phi) * phi[key] + cfg.lr_phi * deltas[key]
    if return_internals:
        return phi_next, deltas, {"xs": xs, "zs": zs, "d": d, "h": h}
    return phi_next, deltas
