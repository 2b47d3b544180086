"""The truncated unroll of SPEC 7 and its meta-gradient by a hand-written reverse pass.

From the start of a truncation phi_0 (held constant), U rule steps

    phi_{u+1} = UnsupervisedUpdate(phi_u, x[u]; theta)          u = 0..U-1
    J = (1/U) sum_u MetaObjective(phi_{u+1}; x_a[u], y_a[u], x_b[u], y_b[u])

(phi_0 itself is not scored) and dJ/dtheta by reverse mode through all U
steps:

    g_{U} = (1/U) dMO_{U-1}/dphi_U
    (dtheta_u, dphi_u) = update_step_vjp(g_{u+1}) at step u
    g_{u} = dphi_u + (1/U) dMO_{u-1}/dphi_u    for u >= 1;  dphi_0 is dropped
    dJ/dtheta = sum_u dtheta_u

Memory (rematerialisation): the forward keeps only phi_0..phi_U (and the
caller's batches); a step's internals (update-step and meta-objective caches)
are recomputed from phi_u when that step's backward runs and freed right
after it, so the peak is U + 1 phi copies plus one step's internals, not U
steps' internals. The last step's caches, still alive at the end of the
forward, are used directly (no recomputation for it): U + (U - 1) update-step
forwards and U VJPs in all. Derivation: derivations/unroll.md.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from refimpl.config import Config
from refimpl.meta.meta_objective import check_labeled_pairs, meta_objective_backward, meta_objective_forward_unchecked
from refimpl.params import validate_phi, validate_theta
from refimpl.rule.update_step import update_step_forward_unchecked, update_step_vjp
from refimpl.validate import check_array, fail, trusted_inputs

OP = "meta_gradient"


class NonFiniteError(ValueError):
    """The unroll produced a NaN or Inf (in a phi or a meta-objective); ``step`` says where.

    A ValueError subclass, so a caller that only wants to skip the task
    (SPEC 7's meta-trainer: drop the gradient, reset the task) can catch this
    alone and let every other ValueError (bad input) through."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class UnrollBatches(NamedTuple):
    """The data of one truncated unroll of length U (SPEC 7).

    Attributes
    ----------
    x : ndarray, shape [U, B, N^0]
        The unlabeled batch of each update step.
    x_a, x_b : ndarray, shape [U, n_eval, n_label, N^0]
        The labeled pairs that score the phi after each step.
    y_a, y_b : ndarray, shape [U, n_eval, n_label, K + n_reg]
        Their targets (one-hot classes, then regression targets).
    """

    x: np.ndarray
    x_a: np.ndarray
    x_b: np.ndarray
    y_a: np.ndarray
    y_b: np.ndarray

    @property
    def U(self) -> int:
        return int(np.shape(self.x)[0])

    def validate(self, config: Config, *, n_cls: int, dtype: npt.DTypeLike | None = None,
                 op: str = "UnrollBatches") -> int:
        """Check shapes, dtypes and labels against ``config``; return U.

        B must equal config.batch_size (TopD is tied to it), n_eval config.n_eval,
        every array shares one float dtype (``dtype`` when given), the leading
        U axes agree, and each target's first n_cls columns are one-hot.
        """
        if not isinstance(config, Config):
            fail(op, f"argument 'config' must be a Config, got {type(config).__name__}")
        check_array(op, "batches.x", self.x, 3)
        U, B, n_in = self.x.shape
        if U < 1:
            fail(op, f"an unroll needs U >= 1 steps, got batches.x of shape {self.x.shape}")
        if B != config.batch_size or n_in != config.layer_sizes[0]:
            fail(op, f"batches.x must have shape [U, B = {config.batch_size}, N^0 = "
                     f"{config.layer_sizes[0]}] for this config, got {self.x.shape}")
        if dtype is None:
            dtype = self.x.dtype
        elif self.x.dtype != np.dtype(dtype):
            fail(op, f"batches.x is {self.x.dtype}, but the parameters are {np.dtype(dtype)}")
        for name in ("x_a", "x_b", "y_a", "y_b"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray) or value.ndim != 4 or value.shape[0] != U:
                shape = getattr(value, "shape", type(value).__name__)
                fail(op, f"batches.{name} must be a 4-D array whose first axis is U = {U} "
                         f"(the steps of batches.x {self.x.shape}), got {shape}")
        check_labeled_pairs(op, self.x_a, self.y_a, self.x_b, self.y_b, config, n_cls, dtype, lead=(U,))
        return U

    def step(self, u: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x, x_a, y_a, x_b, y_b) of step u."""
        return self.x[u], self.x_a[u], self.y_a[u], self.x_b[u], self.y_b[u]


class MetaGradient(NamedTuple):
    """What :func:`refimpl.meta_gradient` returns: J, its gradient and the unroll's end.

    Attributes
    ----------
    loss : float
        J, the mean of ``losses``.
    dtheta : dict[str, ndarray]
        dJ/dtheta, every SPEC 9 theta name, theta's dtype.
    phi_final : dict[str, ndarray]
        phi_U, the start of the task's next truncation.
    losses : list of float
        MetaObjective(phi_{u+1}) for u = 0..U-1.
    accuracies : list of float
        The readout's accuracy after each step (not differentiated).
    """

    loss: float
    dtheta: dict
    phi_final: dict
    losses: list
    accuracies: list


def _check_all(theta, phi, batches, config, n_cls, need_theta=True) -> tuple:
    if not isinstance(config, Config):
        fail(OP, f"argument 'config' must be a Config, got {type(config).__name__}")
    if not isinstance(batches, UnrollBatches):
        fail(OP, f"argument 'batches' must be an UnrollBatches, got {type(batches).__name__}")
    dtype = validate_phi(phi, config, fn=OP)
    if need_theta:
        validate_theta(theta, config, fn=OP, dtype=dtype)
    U = batches.validate(config, n_cls=n_cls, dtype=dtype, op=OP)
    return U, dtype


#: Keep every step's caches (no rematerialisation in the backward) when U times the first step's
#: caches fit in this many bytes: small models then skip U - 1 forward steps; the paper sizes
#: (hundreds of MB per step) rematerialise as before. Either way the numbers are the same.
KEEP_CACHES_BYTES = 96 * 2**20


def _cache_bytes(obj, seen: set) -> int:
    """Bytes of the distinct arrays (views counted once, by their base) reachable from a cache."""
    if isinstance(obj, np.ndarray):
        base = obj if obj.base is None else obj.base
        if id(base) in seen or not isinstance(base, np.ndarray):
            return 0
        seen.add(id(base))
        return base.nbytes
    if isinstance(obj, dict):
        return sum(_cache_bytes(v, seen) for v in obj.values())
    if isinstance(obj, (tuple, list)):
        return sum(_cache_bytes(v, seen) for v in obj)
    return 0


def _check_finite(phi_next: dict, u: int) -> None:
    bad = [k for k, v in phi_next.items() if not np.isfinite(v).all()]
    if bad:
        raise NonFiniteError(f"{OP}: phi after update step {u + 1} contains NaN or Inf in {bad}", u)


def _step_forward(theta, phi, batches, u, config, n_cls):
    """One step: (phi_next, step cache, loss, accuracy, meta-objective cache)."""
    x, x_a, y_a, x_b, y_b = batches.step(u)
    phi_next, _, step_cache = update_step_forward_unchecked(theta, phi, x, config)
    _check_finite(phi_next, u)
    loss, accuracy, mo_cache = meta_objective_forward_unchecked(phi_next, x_a, y_a, x_b, y_b, config,
                                                                n_cls=n_cls)
    if not np.isfinite(loss):
        raise NonFiniteError(f"{OP}: the meta-objective of step {u} is {float(loss)!r}", u)
    return phi_next, step_cache, float(loss), accuracy, mo_cache


def unroll_forward(theta: Mapping[str, np.ndarray], phi: Mapping[str, np.ndarray], batches: UnrollBatches,
                   config: Config, *, n_cls: int) -> tuple[float, dict[str, np.ndarray], list[float], list[float]]:
    """The unroll without a gradient (evaluation): returns (J, phi_final, losses, accuracies).

    Keeps nothing but the current phi; raises NonFiniteError on NaN/Inf."""
    _check_all(theta, phi, batches, config, n_cls)
    losses, accuracies = [], []
    with trusted_inputs():                     # validated above, once
        for u in range(batches.U):
            phi, _, loss, accuracy, _ = _step_forward(theta, phi, batches, u, config, n_cls)
            losses.append(loss)
            accuracies.append(accuracy)
    return sum(losses) / len(losses), phi, losses, accuracies


def meta_gradient(theta: Mapping[str, np.ndarray], phi: Mapping[str, np.ndarray], batches: UnrollBatches,
                  config: Config, *, n_cls: int) -> MetaGradient:
    r"""The SPEC 7 meta-gradient of one truncated unroll of U update steps.

    The rule is applied U times from phi, step u on its own unlabeled batch; after each update
    the meta-objective is scored on that step's labeled pairs, and

    .. math::

        J = \frac{1}{U} \sum_{u=0}^{U-1} \text{MetaObjective}(\phi_{u+1}), \qquad
        \frac{\partial J}{\partial \theta} \text{ by reverse mode through all U steps,}

    with phi, the truncation's start, held constant (no gradient flows into it). The steps'
    caches are kept when they fit in memory, and recomputed in the backward otherwise; the
    numbers are the same. Derivation: ``derivations/unroll.md``.

    Parameters
    ----------
    theta : Mapping[str, ndarray]
        The rule's parameters for ``config``.
    phi : Mapping[str, ndarray]
        The base model at the start of the truncation, of theta's dtype.
    batches : UnrollBatches
        The unroll's data: x [U, B, N^0] and the labeled pairs of every step.
    config : Config
        The sizes and rates.
    n_cls : int
        K, the one-hot class columns of the targets.

    Returns
    -------
    MetaGradient
        ``loss`` (J), ``dtheta`` (dJ/dtheta, every theta name), ``phi_final`` (the next
        truncation's start), and the ``losses`` and ``accuracies`` of every step.

    Raises
    ------
    NonFiniteError
        If a phi or a meta-objective of the unroll is not finite (a finite unroll's ``dtheta``
        is returned as computed: the caller checks it, SPEC 7).
    ValueError
        If an argument does not match ``config`` (names, shapes, one dtype, batch size).
    """
    U, dtype = _check_all(theta, phi, batches, config, n_cls)
    with trusted_inputs():                     # validated above, once
        return _meta_gradient(theta, phi, batches, config, n_cls, U, dtype)


def _cache_fits(config, batches: UnrollBatches, U: int, step_caches) -> bool:
    """Whether U steps' caches fit in KEEP_CACHES_BYTES; a step's cache size depends only on the
    shapes and the dtype, so it is measured once per (config, shapes, dtype) and remembered."""
    key = (config, batches.x.shape[1:], batches.x_a.shape[1:], batches.y_a.shape[1:], batches.x.dtype)
    size = _STEP_CACHE_BYTES.get(key)
    if size is None:
        if len(_STEP_CACHE_BYTES) >= 4096:    # one entry per architecture met; keep it bounded
            _STEP_CACHE_BYTES.clear()
        size = _STEP_CACHE_BYTES[key] = _cache_bytes(step_caches, set())
    return U * size <= KEEP_CACHES_BYTES


#: (config, batch shapes, dtype) -> bytes of one step's caches (see _cache_fits).
_STEP_CACHE_BYTES: dict = {}


def _meta_gradient(theta, phi, batches, config, n_cls, U, dtype) -> MetaGradient:
    # Forward (eq. 1-2): keep phi_0..phi_U only; the last step's caches survive
    # the loop because its backward runs first.
    phis = [phi]
    losses, accuracies = [], []
    kept = [None] * U                         # (step cache, meta-objective cache) when they all fit
    keep = False
    for u in range(U):
        phi_next, step_cache, loss, accuracy, mo_cache = _step_forward(theta, phis[u], batches, u, config, n_cls)
        phis.append(phi_next)
        losses.append(loss)
        accuracies.append(accuracy)
        if u == 0:
            keep = U > 1 and _cache_fits(config, batches, U, (step_cache, mo_cache))
        if u < U - 1:
            if keep:
                kept[u] = (step_cache, mo_cache)
            del step_cache, mo_cache          # rematerialised in the backward unless kept
    J = sum(losses) / U

    # Backward (eq. 3-6), u = U-1 .. 0.
    scale = np.asarray(1.0 / U, dtype=dtype)
    dtheta = {}
    carry = None                              # cotangent of phi_{u+1} from the steps after u
    for u in range(U - 1, -1, -1):
        if u < U - 1:                         # rematerialise step u from phi_u, or take its kept caches
            if kept[u] is not None:
                (step_cache, mo_cache), kept[u] = kept[u], None
            else:
                _, step_cache, _, _, mo_cache = _step_forward(theta, phis[u], batches, u, config, n_cls)
        g = meta_objective_backward(scale, mo_cache)                   # eq. 3
        del mo_cache
        if carry is not None:
            for k in g:
                g[k] += carry[k]                                        # eq. 4
        g_theta, carry = update_step_vjp(g, step_cache)                 # eq. 5
        del step_cache, g
        for k, v in g_theta.items():
            dtheta[k] = v if k not in dtheta else dtheta[k] + v          # eq. 6
        if u + 1 < U:
            phis[u + 1] = None                # its step is done: phi_{u+1} is no longer needed
    del carry                                                           # dJ/dphi_0: held constant, dropped
    dtheta = {k: np.asarray(dtheta[k], dtype=dtype) if k in dtheta else np.zeros_like(theta[k])
              for k in theta}
    return MetaGradient(J, dtheta, phis[U], losses, accuracies)
