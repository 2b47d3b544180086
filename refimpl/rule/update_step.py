"""One application of the learned rule (SPEC 4 and 5) and its hand-composed VJP.

    phi_next = UnsupervisedUpdate(phi, x; theta)

Forward, in SPEC order: base model -> TopD -> for l = L..0 ComputeH and (l >= 1)
error propagation -> per layer the shared planes, the W and V changes and the
bias change -> EMA. The VJP walks the same graph backwards, composed from the
stage backwards (derivations/update_step.md); autograd is only the checker.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from refimpl.base_model.mlp import base_backward, base_forward_unchecked
from refimpl.config import Config, check_config
from refimpl.params import validate_phi, validate_theta
from refimpl.rule.compute_h import compute_h_backward, compute_h_forward_unchecked
from refimpl.rule.error_prop import error_prop_backward, error_prop_forward_unchecked
from refimpl.rule.topd import topd_backward, topd_forward_unchecked
from refimpl.rule.weight_update import (
    bias_update_backward,
    bias_update_forward_unchecked,
    matrix_update_backward,
    matrix_update_forward_unchecked,
    shared_planes_backward,
    shared_planes_forward_unchecked,
)
from refimpl.validate import check_inputs, fail, trusted_inputs

OP = "update_step"


class UpdateStepCache(NamedTuple):
    config: object
    phi: dict
    base: object               # base-model cache
    topd: object
    compute_h: list            # per layer l = 0..L
    error_prop: list           # per layer l = 1..L (index 0 unused)
    shared: list               # per layer l = 1..L
    matrix: dict               # "layer<l>/W" / "layer<l>/V" -> matrix-update cache
    bias: list                 # per layer l = 1..L
    xs: list
    h: list


def _add(acc: dict, grads: dict) -> None:
    for name, g in grads.items():
        if g is None:
            continue
        acc[name] = g if name not in acc else acc[name] + g


def _sum_shared(a, b):
    """Field-wise sum of two SharedPlanes cotangents (None is zero)."""
    fields = {}
    for name in a._fields:
        u, v = getattr(a, name), getattr(b, name)
        fields[name] = u if v is None else (v if u is None else u + v)
    return type(a)(**fields)


def update_step_forward(theta: Mapping[str, np.ndarray], phi: Mapping[str, np.ndarray], x: np.ndarray,
                        config: Config) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], UpdateStepCache]:
    """SPEC 4: returns (phi_next, deltas, cache); deltas holds dW_final, dV_final, db_final keyed like phi.

    theta, phi: every SPEC 9 name for ``config``; x [batch_size, N^0]; all one dtype.
    Validated here once; the stages below trust what this checked.
    """
    _check_step_inputs(theta, phi, x, config)
    with trusted_inputs():
        return update_step_forward_unchecked(theta, phi, x, config)


def update_step_forward_unchecked(theta: Mapping[str, np.ndarray], phi: Mapping[str, np.ndarray], x: np.ndarray,
                                  config: Config
                                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], UpdateStepCache]:
    """update_step_forward for arguments the caller has validated (the unroll does, once)."""
    L = len(config.layer_sizes) - 1
    xs, zs, base_cache = base_forward_unchecked(phi, x, config)
    z = [None] + list(zs)                                   # z^0 is absent (exact zeros in ComputeH)
    d = [None] * (L + 1)
    h = [None] * (L + 1)
    ch_caches = [None] * (L + 1)
    ep_caches = [None] * (L + 1)
    d[L], topd_cache = topd_forward_unchecked(theta, xs[L], config)
    for l in range(L, -1, -1):
        W_bot = phi[f"layer{l}/W"] if l >= 1 else None
        W_top = phi[f"layer{l + 1}/W"] if l < L else None
        b = phi[f"layer{l}/b"] if l >= 1 else None
        h[l], ch_caches[l] = compute_h_forward_unchecked(theta, d[l], xs[l], z[l], W_bot, W_top, b, config)
        if l >= 1:
            d[l - 1], ep_caches[l] = error_prop_forward_unchecked(theta, d[l], h[l], z[l], phi[f"layer{l}/V"], config)

    lr = config.lr_phi
    deltas, phi_next = {}, {}
    shared_caches = [None] * (L + 1)
    bias_caches = [None] * (L + 1)
    matrix_caches = {}
    for l in range(1, L + 1):
        shared, shared_caches[l] = shared_planes_forward_unchecked(theta, h[l - 1], h[l], xs[l - 1], xs[l], config)
        for kind in ("W", "V"):
            key = f"layer{l}/{kind}"
            deltas[key], matrix_caches[key] = matrix_update_forward_unchecked(theta, phi[key], shared, config)
        deltas[f"layer{l}/b"], bias_caches[l] = bias_update_forward_unchecked(theta, h[l], config)
    for key, value in phi.items():
        phi_next[key] = (1 - lr) * value + lr * deltas[key]      # EMA, SPEC 4 step 5
    cache = UpdateStepCache(config, phi, base_cache, topd_cache, ch_caches, ep_caches, shared_caches,
                            matrix_caches, bias_caches, xs, h)
    return phi_next, deltas, cache


def _check_step_inputs(theta, phi, x, config) -> None:
    """Everything the stages would check, once: names, shapes, one dtype, finite, the batch size."""
    theta_dtype = validate_theta(theta, check_config(OP, config), fn=OP)
    phi_dtype = validate_phi(phi, config, fn=OP)
    _, x_dtype = check_inputs(OP, {"x": "batch_size N^0"}, {"x": x},
                              {"batch_size": config.batch_size, "N^0": config.layer_sizes[0]})
    if not theta_dtype == phi_dtype == x_dtype:
        fail(OP, f"theta, phi and x must share one dtype, got {theta_dtype}, {phi_dtype}, {x_dtype}")


def update_step(theta: Mapping[str, np.ndarray], phi: Mapping[str, np.ndarray], x: np.ndarray,
                config: Config) -> dict[str, np.ndarray]:
    r"""One unsupervised step of the learned rule: phi_next = UnsupervisedUpdate(phi, x; theta).

    SPEC 4 and 5, in order: the base model's forward pass on ``x``; TopD's top-down signal
    d^L; the downward pass computing h^l and propagating d^{l-1} through V^l; the weight and
    bias changes of every layer from the ten planes; and the moving average

    .. math::

        W \leftarrow (1 - \text{lr}_\phi) W + \text{lr}_\phi\, \Delta W_\text{final}

    (the same for V and b). No labels are used. The arguments are validated once, here.

    Parameters
    ----------
    theta : Mapping[str, ndarray]
        The rule's parameters, every SPEC 9 theta name for ``config``
        (:func:`refimpl.init_theta`).
    phi : Mapping[str, ndarray]
        The base MLP's parameters: ``layer<l>/W`` and ``layer<l>/V`` [N^{l-1}, N^l],
        ``layer<l>/b`` [N^l] for l = 1..L (:func:`refimpl.init_phi`).
    x : ndarray, shape [B, N^0]
        One unlabeled batch, B = ``config.batch_size``.
    config : Config
        The sizes and rates (SPEC 1).

    Returns
    -------
    dict[str, ndarray]
        phi after the step, the same names and shapes.

    Raises
    ------
    ValueError
        If a name is missing, a shape or the batch size does not match ``config``, the
        arrays do not share one float dtype, or an entry is not finite.

    See Also
    --------
    refimpl.meta_gradient : the gradient of the meta-objective through an unroll of this step.

    Examples
    --------
    >>> import numpy as np, refimpl
    >>> config = refimpl.preset("tiny")
    >>> rng = np.random.default_rng(0)
    >>> theta, phi = refimpl.init_theta(config, rng), refimpl.init_phi(config, rng)
    >>> x = rng.standard_normal((config.batch_size, config.layer_sizes[0]))
    >>> phi_next = refimpl.update_step(theta, phi, x, config)
    >>> phi_next["layer1/W"].shape
    (15, 9)
    """
    return update_step_forward(theta, phi, x, config)[0]


def update_step_vjp(dphi_next: Mapping[str, np.ndarray],
                    cache: UpdateStepCache) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Cotangents for theta and phi, given cotangents for phi_next (missing names are zero).

    derivations/update_step.md: EMA, then per layer the weight and bias changes
    into h, x and phi, then the h/d recursion from l = 0 up to L (each d^l
    complete before it is used), TopD, and the base model last.
    """
    config, phi = cache.config, cache.phi
    L = len(config.layer_sizes) - 1
    lr = config.lr_phi
    dtheta: dict = {}
    dphi = {key: np.zeros_like(value) for key, value in phi.items()}
    ddelta = {}
    for key in phi:                                           # eq. 1: the EMA
        g = dphi_next.get(key)
        if g is not None:
            dphi[key] += (1 - lr) * g
            ddelta[key] = lr * g
    dh = [np.zeros_like(hl) for hl in cache.h]
    dxs = [np.zeros_like(xl) for xl in cache.xs]
    dzs = [None] + [np.zeros_like(xl) for xl in cache.xs[1:]]

    for l in range(1, L + 1):                                 # eq. 2: planes and bias change
        dshared = None
        for kind in ("W", "V"):
            key = f"layer{l}/{kind}"
            if key not in ddelta:
                continue
            g_theta, g_M, g_shared = matrix_update_backward(ddelta[key], cache.matrix[key])
            _add(dtheta, g_theta)
            dphi[key] += g_M
            dshared = g_shared if dshared is None else _sum_shared(dshared, g_shared)
        if dshared is not None:
            g_theta, g_hlo, g_hup, g_xlo, g_xup = shared_planes_backward(dshared, cache.shared[l])
            _add(dtheta, g_theta)
            dh[l - 1] += g_hlo
            dh[l] += g_hup
            dxs[l - 1] += g_xlo
            dxs[l] += g_xup
        if f"layer{l}/b" in ddelta:
            g_theta, g_hup = bias_update_backward(ddelta[f"layer{l}/b"], cache.bias[l])
            _add(dtheta, g_theta)
            dh[l] += g_hup

    dd_below = None                                           # eq. 3: cotangent of d^{l-1}
    for l in range(0, L + 1):
        dd = None
        if l >= 1:
            g = error_prop_backward(dd_below, cache.error_prop[l])
            _add(dtheta, g.theta)
            dd = g.d
            dh[l] += g.h
            dzs[l] += g.z
            dphi[f"layer{l}/V"] += g.V
        g = compute_h_backward(dh[l], cache.compute_h[l])
        _add(dtheta, g.theta)
        dd = g.d if dd is None else dd + g.d
        dxs[l] += g.x
        if l >= 1:
            dzs[l] += g.z
            dphi[f"layer{l}/W"] += g.W_bot
            dphi[f"layer{l}/b"] += g.b
        if l < L:
            dphi[f"layer{l + 1}/W"] += g.W_top
        dd_below = dd

    g_theta, g_xL = topd_backward(dd_below, cache.topd)       # eq. 4
    _add(dtheta, g_theta)
    dxs[L] += g_xL
    g_phi, _ = base_backward(dxs, dzs[1:], cache.base)         # eq. 5
    for key, g in g_phi.items():
        dphi[key] += g
    return dtheta, dphi
