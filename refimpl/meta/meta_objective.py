"""The meta-objective (SPEC 6) and its hand-composed VJP with respect to phi.

For each of the n_eval labeled pairs e (x_a[e], y_a[e]), (x_b[e], y_b[e]):

    F_a = x^L(x_a[e]),  F_b = x^L(x_b[e])      two separate base-model forwards,
                                               each with its own batch statistics
    A   = [F_a, 1];     C = RidgeSolve(A, center_labels(y_a[e]), ridge)
    P   = [F_b, 1] @ C; Ph = RowNormalize(P, eps_p)
    loss_e = meta_loss(Ph, center_labels(y_b[e]))

and the meta-objective is ``mean_e loss_e``. Accuracy (argmax of P over the
n_cls class columns against the class label, mean over pairs and rows) is
reported beside it and not differentiated; labels are data and are never
differentiated either. Composed from the primitive ops (center_labels,
ridge_solve, matmul, row_normalize, meta_loss) and base_forward/base_backward;
derivation: derivations/meta_objective.md.

The loop over the n_eval pairs is a loop over independent evaluations
(n_eval = 5 in the paper), each fully vectorised.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from refimpl.base_model.mlp import base_backward, base_forward_unchecked
from refimpl.config import Config, check_config
from refimpl.ops.matmul import MatmulCache, matmul_backward, matmul_forward
from refimpl.ops.meta_loss import center_labels_forward, meta_loss_backward, meta_loss_forward
from refimpl.ops.normalize import row_normalize_backward, row_normalize_forward
from refimpl.ops.ridge import RidgeSolveCache, ridge_solve_backward, ridge_solve_forward
from refimpl.params import validate_phi
from refimpl.validate import check_array, fail

OP = "meta_objective"
OP_BACKWARD = "meta_objective_backward"


class PairCache(NamedTuple):
    """Everything one labeled pair's backward needs (derivations/meta_objective.md)."""

    base_a: object          # BaseCache of the forward on x_a[e]
    base_b: object          # BaseCache of the forward on x_b[e]
    ridge: object           # RidgeSolveCache (A = [F_a, 1], Yh_a)
    matmul: object          # MatmulCache ([F_b, 1], C)
    row_norm: object        # RowNormalizeCache of P
    loss: object            # MetaLossCache (Ph - Yh_b)


class MetaObjectiveCache(NamedTuple):
    pairs: list             # PairCache per pair e = 0..n_eval-1
    n_layers: int           # L
    dtype: np.dtype


def check_labeled_pairs(op: str, x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray,
                        config: Config, n_cls: int, dtype: npt.DTypeLike | None = None, lead: tuple = ()) -> tuple:
    """Validate labeled pairs; return (n_eval, n_label, n_targets).

    x_a, x_b: [*lead, n_eval, n_label, N^0]; y_a, y_b: [*lead, n_eval, n_label,
    n_cls + n_reg], all of one float dtype (``dtype`` when given). ``lead``
    is the expected shape of the leading axes (``(U,)`` for an unroll's
    stacked batches, ``()`` for one step). n_eval must equal config.n_eval,
    n_label >= 2, 2 <= n_cls <= n_cls + n_reg, and every row's first n_cls
    target columns must be one-hot (exactly one 1, the rest 0).
    """
    if isinstance(n_cls, bool) or not isinstance(n_cls, (int, np.integer)):
        fail(op, f"argument 'n_cls' must be an integer, got {n_cls!r} ({type(n_cls).__name__})")
    n_cls = int(n_cls)
    nd = len(lead) + 3
    for name, arr in (("x_a", x_a), ("y_a", y_a), ("x_b", x_b), ("y_b", y_b)):
        check_array(op, name, arr, nd)
    lead_names = "U, " if lead else ""
    if tuple(x_a.shape[:len(lead)]) != tuple(lead):
        fail(op, f"argument 'x_a' must start with the axes {tuple(lead)}, got shape {x_a.shape}")
    n_eval, n_label, n_in = x_a.shape[len(lead):]
    if n_eval != config.n_eval:
        fail(op, f"argument 'x_a' has {n_eval} labeled pairs on its n_eval axis (shape {x_a.shape}), "
                 f"but config.n_eval is {config.n_eval}")
    if n_label < 2:
        fail(op, f"labeled batches need n_label >= 2 rows (each feeds a batch norm), got shape {x_a.shape}")
    if n_in != config.layer_sizes[0]:
        fail(op, f"argument 'x_a' must have N^0 = {config.layer_sizes[0]} features on its last axis "
                 f"(layer_sizes {list(config.layer_sizes)}), got shape {x_a.shape}")
    if x_b.shape != x_a.shape:
        fail(op, f"argument 'x_b' must have the shape of x_a {x_a.shape} "
                 f"([{lead_names}n_eval, n_label, N^0]), got {x_b.shape}")
    n_targets = y_a.shape[-1]
    expected_y = tuple(lead) + (n_eval, n_label, n_targets)
    if y_a.shape != expected_y:
        fail(op, f"argument 'y_a' must have shape [{lead_names}n_eval, n_label, n_cls + n_reg] = "
                 f"{expected_y[:-1] + ('n_cls + n_reg',)} to match x_a {x_a.shape}, got {y_a.shape}")
    if y_b.shape != y_a.shape:
        fail(op, f"argument 'y_b' must have the shape of y_a {y_a.shape}, got {y_b.shape}")
    if not 2 <= n_cls <= n_targets:
        fail(op, f"argument 'n_cls' must be in [2, n_cls + n_reg = {n_targets}] "
                 f"(the targets' last axis), got {n_cls}")
    dtypes = {name: arr.dtype for name, arr in (("x_a", x_a), ("y_a", y_a), ("x_b", x_b), ("y_b", y_b))}
    if dtype is not None:
        dtypes = {"phi": np.dtype(dtype), **dtypes}
    if len(set(dtypes.values())) > 1:
        fail(op, "arguments must share one dtype, got " + ", ".join(f"{k}: {v}" for k, v in dtypes.items()))
    for name, y in (("y_a", y_a), ("y_b", y_b)):
        cls = y[..., :n_cls]
        binary = np.all((cls == 0) | (cls == 1))
        if not binary or not np.all(cls.sum(axis=-1) == 1):
            bad = np.argwhere(~(((cls == 0) | (cls == 1)).all(axis=-1) & (cls.sum(axis=-1) == 1)))[0]
            fail(op, f"argument '{name}': the first n_cls = {n_cls} target columns must be one-hot "
                     f"(exactly one 1, the rest 0); row {tuple(int(i) for i in bad)} is "
                     f"{cls[tuple(bad)].tolist()}")
    return n_eval, n_label, n_targets


def _with_ones(F):
    """[F, 1]: the features with a ones-column appended (the ridge regression's intercept)."""
    return np.concatenate([F, np.ones((F.shape[0], 1), dtype=F.dtype)], axis=1)


def ridge_readout(F_a: np.ndarray, Yh_a: np.ndarray, F_b: np.ndarray, ridge: float
                  ) -> tuple[np.ndarray, RidgeSolveCache, MatmulCache]:
    """The SPEC 6 readout (derivations/meta_objective.md eq. 3-4), shared by the meta-objective and the
    few-shot evaluation: ``C = RidgeSolve([F_a, 1], Yh_a, ridge)`` and predictions ``P = [F_b, 1] @ C``.
    F_a: [n_a, F]; Yh_a: [n_a, T] centred targets; F_b: [n_b, F]. Returns (P [n_b, T], ridge cache,
    matmul cache)."""
    C, ridge_cache = ridge_solve_forward(_with_ones(F_a), Yh_a, ridge=ridge)
    P, matmul_cache = matmul_forward(_with_ones(F_b), C)
    return P, ridge_cache, matmul_cache


def meta_objective_forward(phi: Mapping[str, np.ndarray], x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray,
                           y_b: np.ndarray, config: Config, *, n_cls: int
                           ) -> tuple[np.ndarray, float, MetaObjectiveCache]:
    """SPEC 6 meta-objective of phi on n_eval labeled pairs (derivations/meta_objective.md eq. 1-7).

    phi: SPEC 9 mapping for ``config``; x_a, x_b: [n_eval, n_label, N^0] inputs
    (already permuted, in [0, 1]); y_a, y_b: [n_eval, n_label, n_cls + n_reg]
    targets whose first n_cls columns are one-hot classes; n_cls: int >= 2.
    All arrays share phi's dtype.
    Returns (loss: 0-d array of phi's dtype, the mean over pairs of loss_e;
    accuracy: float in [0, 1]; MetaObjectiveCache).
    """
    dtype = validate_phi(phi, check_config(OP, config), fn=OP)
    check_labeled_pairs(OP, x_a, y_a, x_b, y_b, config, n_cls, dtype)
    return meta_objective_forward_unchecked(phi, x_a, y_a, x_b, y_b, config, n_cls=n_cls)


def meta_objective_forward_unchecked(phi: Mapping[str, np.ndarray], x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray,
                                     y_b: np.ndarray, config: Config, *, n_cls: int
                                     ) -> tuple[np.ndarray, float, MetaObjectiveCache]:
    """meta_objective_forward for arguments the caller has validated (the unroll does, once)."""
    n_eval, L, dtype = x_a.shape[0], config.L, x_a.dtype
    pairs, losses, hits = [], [], []
    for e in range(n_eval):
        xs_a, _, base_a = base_forward_unchecked(phi, x_a[e], config)            # eq. 1
        xs_b, _, base_b = base_forward_unchecked(phi, x_b[e], config)
        Yh_a, _ = center_labels_forward(y_a[e])                                   # eq. 2
        Yh_b, _ = center_labels_forward(y_b[e])
        P, ridge_cache, matmul_cache = ridge_readout(xs_a[L], Yh_a, xs_b[L], config.ridge)   # eq. 3-4
        Ph, row_cache = row_normalize_forward(P, eps=config.eps_p)                # eq. 5
        loss_e, loss_cache = meta_loss_forward(Ph, Yh_b)                          # eq. 6
        losses.append(loss_e)
        hits.append(np.argmax(P[:, :n_cls], axis=1) == np.argmax(y_b[e][:, :n_cls], axis=1))   # eq. 8
        pairs.append(PairCache(base_a, base_b, ridge_cache, matmul_cache, row_cache, loss_cache))
    loss = np.asarray(np.sum(np.stack(losses)) / n_eval, dtype=dtype)            # eq. 7
    accuracy = float(np.mean(np.stack(hits)))
    return loss, accuracy, MetaObjectiveCache(pairs, L, dtype)


def meta_objective_backward(dloss: float | np.ndarray, cache: MetaObjectiveCache) -> dict[str, np.ndarray]:
    """VJP of meta_objective_forward with respect to phi (derivations/meta_objective.md eq. 9-15).

    dloss: the cotangent of the loss (a scalar or 0-d array).
    Returns dphi: a dict over every phi name in SPEC 9 order (layer<l>/V zero).
    """
    pairs, L, dtype = cache
    g = np.asarray(dloss)
    if g.ndim != 0 or not np.issubdtype(g.dtype, np.number) or np.issubdtype(g.dtype, np.complexfloating):
        fail(OP_BACKWARD, f"argument 'dloss' must be a real scalar, got {dloss!r}")
    if not np.isfinite(g):
        fail(OP_BACKWARD, f"argument 'dloss' must be finite, got {float(g)!r}")
    g_pair = np.asarray(g / len(pairs), dtype=dtype)                             # eq. 9
    dphi = None
    for pair in pairs:
        dPh = meta_loss_backward(g_pair, pair.loss).Ph                            # eq. 10
        dP = row_normalize_backward(dPh, pair.row_norm).P                         # eq. 11
        dAb, dC = matmul_backward(dP, pair.matmul)                                # eq. 12
        dA = ridge_solve_backward(dC, pair.ridge).A                               # eq. 13
        dphi_a, _ = base_backward([None] * L + [dA[:, :-1]], [None] * L, pair.base_a)   # eq. 14
        dphi_b, _ = base_backward([None] * L + [dAb[:, :-1]], [None] * L, pair.base_b)
        if dphi is None:
            dphi = {k: dphi_a[k] + dphi_b[k] for k in dphi_a}                     # eq. 15
        else:
            for k in dphi:
                dphi[k] += dphi_a[k] + dphi_b[k]
    return dphi


def meta_objective(phi: Mapping[str, np.ndarray], x_a: np.ndarray, y_a: np.ndarray, x_b: np.ndarray, y_b: np.ndarray,
                   config: Config, *, n_cls: int) -> tuple[float, float]:
    r"""The SPEC 6 meta-objective of phi on n_eval labeled pairs, and the readout's accuracy.

    For each pair e, x_a and x_b go through the base model in two independent forward passes;
    a ridge regression fitted on the features of x_a predicts the targets of x_b:

    .. math::

        A = [x^L(x_a), 1], \qquad C = \text{RidgeSolve}(A, \hat Y_a, \text{ridge}), \qquad
        \hat P = \text{RowNormalize}\big([x^L(x_b), 1]\, C\big),

    .. math::

        J_e = \frac{1}{n_\text{label}} \sum_{i=1}^{n_\text{label}} \big\lVert \hat P[i] - \hat Y_b[i] \big\rVert^2,

    with :math:`\hat Y_a`, :math:`\hat Y_b` the centred and scaled targets (each with its own
    statistics); the result is the mean of :math:`J_e` over the pairs. Nothing is kept for a backward (see ``meta_objective_forward`` and
    ``meta_objective_backward`` in ``refimpl.meta.meta_objective`` for the VJP).

    Parameters
    ----------
    phi : Mapping[str, ndarray]
        The base model's parameters for ``config``.
    x_a, x_b : ndarray, shape [n_eval, n_label, N^0]
        The inputs of each pair's two batches (n_eval = ``config.n_eval``).
    y_a, y_b : ndarray, shape [n_eval, n_label, K + n_reg]
        Their targets: one-hot classes in the first K = ``n_cls`` columns, then n_reg regression
        targets in [-1, 1].
    config : Config
        The base model's sizes, the ridge penalty and eps_p.
    n_cls : int
        K >= 2, the class columns of the targets (it cannot be read from their width).

    Returns
    -------
    loss : float
        The meta-objective.
    accuracy : float
        The fraction of rows of x_b whose predicted class (the argmax of the K class columns of
        the prediction) is right, over all pairs; not differentiated.

    Raises
    ------
    ValueError
        If a shape, the dtype or the one-hot class columns do not match.
    """
    loss, accuracy, _ = meta_objective_forward(phi, x_a, y_a, x_b, y_b, config, n_cls=n_cls)
    return float(loss), accuracy
