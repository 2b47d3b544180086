"""Diagnostics of a base model's top features, and the readout objective on given features.

A learned rule can "win" the meta-objective by driving every unit to one
data-independent function of the input (the total ink, say). Accuracy alone
does not show that; these numbers do. Every function takes a feature matrix
``F [n, F]`` (rows = examples, columns = units) and returns a float.

- :func:`effective_rank`: ``exp(H(p))`` with ``p_i = s_i / sum_j s_j`` over the
  singular values ``s`` of the column-centred ``F`` and ``H`` the Shannon
  entropy in nats (Roy and Vetterli, 2007). k equal non-zero singular values
  give exactly k; a matrix whose columns are all one function (up to scale
  and shift) gives 1; a constant matrix (all ``s = 0``) gives 0.
- :func:`mean_abs_correlation`: the mean of ``|corr(F_i, F_j)|`` over pairs of
  distinct units, both with non-zero variance (NaN when fewer than two have).
- :func:`zero_row_fraction`: the fraction of examples whose every feature is 0
  (a ReLU top layer that is off for that input).
- :func:`dead_unit_fraction`: the fraction of units that are constant over
  the examples (carry no information).
- :func:`ink_features`: the one-feature "ink" baseline, the mean input
  ``x.mean(axis=1)`` as an ``[n, 1]`` matrix.
- :func:`readout_objective`: the SPEC 6 meta-objective of one labeled pair
  evaluated on given features (the same ridge readout, centring, row
  normalisation and loss ops as :mod:`refimpl.meta.meta_objective`), so any
  feature extractor (raw inputs, ink, PCA, a VAE) is scored exactly as
  meta-training scores phi.
- :func:`collapsed_phi`: a base model constructed so that every unit of every
  layer reads plus or minus one monotone function of the ink (the fixed point
  the ``small`` preset with 4-shot labeled batches learned), for measuring
  what the meta-objective thinks of a collapsed representation.
"""
from __future__ import annotations

import numpy as np

from refimpl.config import Config
from refimpl.meta.meta_objective import ridge_readout
from refimpl.ops.meta_loss import center_labels_forward, meta_loss_forward
from refimpl.ops.normalize import row_normalize_forward
from refimpl.params import init_phi

#: Relative size below which a singular value or a standard deviation counts as zero.
REL_TOL = 1e-6


def _matrix(fn: str, F) -> np.ndarray:
    F = np.asarray(F, dtype=np.float64)
    if F.ndim != 2 or F.shape[0] < 2 or F.shape[1] < 1:
        raise ValueError(f"{fn}: features must be a 2-D array [n >= 2, F >= 1], got shape {F.shape}")
    if not np.isfinite(F).all():
        raise ValueError(f"{fn}: features contain NaN or Inf")
    return F


def singular_values(F) -> np.ndarray:
    """Singular values of the column-centred ``F [n, F]`` (descending, float64)."""
    F = _matrix("singular_values", F)
    return np.linalg.svd(F - F.mean(axis=0), compute_uv=False)


def effective_rank(F) -> float:
    r"""The effective rank of the column-centred features: the exponential of the entropy of their
    normalised singular values.

    .. math::

        p_i = \frac{s_i}{\sum_j s_j}, \qquad \text{erank}(F) = \exp\Big(-\sum_i p_i \log p_i\Big)

    It is 1 for features that vary along one direction (the one-feature ink baseline) and F for
    features whose F singular values are equal.

    Parameters
    ----------
    F : ndarray, shape [n, F]
        Features of n examples by F units.

    Returns
    -------
    float
        In [1, min(n, F)]; 0 for features that are constant.
    """
    s = singular_values(F)
    if s.size == 0 or s[0] <= 0:
        return 0.0
    s = s[s > REL_TOL * s[0]]
    p = s / s.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def _live_columns(F: np.ndarray) -> np.ndarray:
    std = F.std(axis=0)
    scale = max(float(np.abs(F).max()), 1e-300)
    return std > REL_TOL * scale


def mean_abs_correlation(F) -> float:
    """The mean absolute Pearson correlation over pairs of distinct non-constant units.

    Parameters
    ----------
    F : ndarray, shape [n, F]
        Features of n examples by F units.

    Returns
    -------
    float
        In [0, 1]; NaN if fewer than two units vary.
    """
    F = _matrix("mean_abs_correlation", F)
    F = F[:, _live_columns(F)]
    k = F.shape[1]
    if k < 2:
        return float("nan")
    Z = (F - F.mean(axis=0)) / F.std(axis=0)
    C = (Z.T @ Z) / F.shape[0]
    off = np.abs(C[~np.eye(k, dtype=bool)])
    return float(np.clip(off, 0.0, 1.0).mean())


def zero_row_fraction(F) -> float:
    """Fraction of examples (rows) whose every feature is exactly 0."""
    F = _matrix("zero_row_fraction", F)
    return float(np.mean(np.all(F == 0, axis=1)))


def dead_unit_fraction(F) -> float:
    """Fraction of units (columns) that are constant over the examples."""
    F = _matrix("dead_unit_fraction", F)
    return float(np.mean(~_live_columns(F)))


def feature_diagnostics(F) -> dict:
    """The numbers that look under an accuracy figure: how many directions the features span.

    Parameters
    ----------
    F : ndarray, shape [n, F]
        Features of n examples (rows) by F units (columns).

    Returns
    -------
    dict
        ``effective_rank`` (:func:`effective_rank`), ``mean_abs_corr``
        (:func:`mean_abs_correlation`), ``zero_rows`` (the fraction of examples whose every feature
        is 0), ``dead_units`` (the fraction of units constant over the examples) and ``n_units``.
    """
    F = _matrix("feature_diagnostics", F)
    return {"effective_rank": effective_rank(F), "mean_abs_corr": mean_abs_correlation(F),
            "zero_rows": zero_row_fraction(F), "dead_units": dead_unit_fraction(F),
            "n_units": int(F.shape[1])}


def ink_features(x) -> np.ndarray:
    """The one-feature "ink" baseline: the mean input of each row, ``[n, 1]``."""
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"ink_features: inputs must be [n, N0], got shape {x.shape}")
    return x.mean(axis=1, keepdims=True)


def readout_objective(F_a, y_a, F_b, y_b, n_cls: int, ridge: float, eps_p: float = 1e-12):
    """SPEC 6 for one labeled pair on given features: ``(J, accuracy)``.

    ``C = RidgeSolve([F_a, 1], center_labels(y_a), ridge)``, ``P = [F_b, 1] @ C``,
    ``J = meta_loss(RowNormalize(P), center_labels(y_b))``; accuracy is the argmax of
    ``P`` over the ``n_cls`` class columns against the class label. float64 throughout.
    """
    F_a, F_b = np.asarray(F_a, np.float64), np.asarray(F_b, np.float64)
    y_a, y_b = np.asarray(y_a, np.float64), np.asarray(y_b, np.float64)
    if F_a.ndim != 2 or F_b.ndim != 2 or F_a.shape[1] != F_b.shape[1]:
        raise ValueError(f"readout_objective: features must be [n, F] with one F, got {F_a.shape}, {F_b.shape}")
    if y_a.shape[0] != F_a.shape[0] or y_b.shape[0] != F_b.shape[0] or y_a.shape[1] != y_b.shape[1]:
        raise ValueError(f"readout_objective: targets {y_a.shape}, {y_b.shape} do not match features "
                         f"{F_a.shape}, {F_b.shape}")
    Yh_a, _ = center_labels_forward(y_a)
    Yh_b, _ = center_labels_forward(y_b)
    P, _, _ = ridge_readout(F_a, Yh_a, F_b, float(ridge))
    Ph, _ = row_normalize_forward(P, eps=eps_p)
    J, _ = meta_loss_forward(Ph, Yh_b)
    acc = float(np.mean(np.argmax(P[:, :n_cls], axis=1) == np.argmax(y_b[:, :n_cls], axis=1)))
    return float(J), acc


def collapsed_phi(config: Config, rng: np.random.Generator, dtype=np.float64) -> dict:
    """A phi in which every unit of every layer is ``+-`` one increasing function of the ink.

    Layer 1: column j of W^1 is ``s_j * 0.01`` (constant along the inputs), so
    after the batch norm unit j is ``s_j * bn(mean input)``. Layer l > 1:
    ``W^l[i, j] = 0.01 * s_i * s_j``, so unit j sums ``s_i relu(s_i g + b_i)``
    over the units below (each non-decreasing in g), times ``s_j``. Signs
    ``s`` are random; b and V are as drawn by :func:`refimpl.params.init_phi`.
    """
    phi = init_phi(config, rng, dtype)
    sizes = config.layer_sizes
    signs = [np.ones(sizes[0])] + [rng.choice([-1.0, 1.0], size=n) for n in sizes[1:]]
    for l in range(1, len(sizes)):
        below = np.ones(sizes[0]) if l == 1 else signs[l - 1]
        phi[f"layer{l}/W"] = (0.01 * np.outer(below, signs[l])).astype(dtype)
    return phi


def objective_comparison(dataset, layer_sizes, n_way: int, k_shot: int, *, n_tasks: int = 20,
                         ridge: float = 0.1, split: str = "test", seed: int = 0, dtype=np.float64,
                         classes_only: bool = False):
    """J (SPEC 6, one labeled pair per task) of random features phi_0, a collapsed phi and ink.

    Per task t (generator ``default_rng([seed, t])``): ``n_way`` random classes of
    ``dataset`` and a random input permutation, ``phi_0`` (``init_phi``) and a
    :func:`collapsed_phi` for ``layer_sizes`` (first entry the input width),
    then one pair of labeled batches with ``k_shot`` examples per class from
    ``split``, of disjoint examples (``Dataset.support_query_batch``). Returns ``{name: {"J", "J_se", "acc", "acc_se", "effective_rank"}}``
    for ``phi_0``, ``collapsed`` and ``ink``: means and standard errors over tasks,
    and the mean effective rank of the features on batch a. ``classes_only`` drops the
    regression targets (e.g. the glyphs' rotation and shift) from the targets.
    """
    from refimpl.base_model.mlp import base_forward
    if n_way > dataset.n_classes:
        raise ValueError(f"objective_comparison: n_way={n_way} > the {dataset.n_classes} classes of {dataset.name}")
    config = Config(layer_sizes=tuple(layer_sizes), ridge=ridge)
    out = {m: {"J": [], "acc": [], "effective_rank": []} for m in ("phi_0", "collapsed", "ink")}
    for t in range(n_tasks):
        rng = np.random.default_rng([seed, t])
        task = dataset.sample_classes(rng, n_way)
        task = task.permuted(task.random_permutation(rng))
        phis = {"phi_0": init_phi(config, rng, dtype), "collapsed": collapsed_phi(config, rng, dtype)}
        # a and b are different examples (for glyphs, different fonts), never one image augmented twice
        x_a, y_a, x_b, y_b = task.support_query_batch(rng, k_shot, k_shot, split=split, dtype=dtype)
        if classes_only:
            y_a, y_b = y_a[:, :n_way], y_b[:, :n_way]
        feats = {m: (base_forward(p, x_a, config)[0][-1], base_forward(p, x_b, config)[0][-1])
                 for m, p in phis.items()}
        feats["ink"] = (ink_features(x_a), ink_features(x_b))
        for m, (fa, fb) in feats.items():
            J, acc = readout_objective(fa, y_a, fb, y_b, n_way, ridge)
            out[m]["J"].append(J)
            out[m]["acc"].append(acc)
            out[m]["effective_rank"].append(effective_rank(fa))
    result = {}
    for m, d in out.items():
        J, acc = np.asarray(d["J"]), np.asarray(d["acc"])
        se = (lambda v: float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else float("nan"))
        result[m] = {"J": float(J.mean()), "J_se": se(J), "acc": float(acc.mean()), "acc_se": se(acc),
                     "effective_rank": float(np.mean(d["effective_rank"])), "J_per_task": J.tolist()}
    return result
