"""Few-shot evaluation of a base model: apply a rule, read out its top features (SPEC 6 readout).

The question a meta-learned rule answers is "does running me on unlabeled
data make the base model's top features better for a few-shot linear
readout?". This module measures exactly that, with no gradients:

- :func:`apply_rule`: ``n_steps`` updates ``phi <- UnsupervisedUpdate(phi, x; theta)``
  on fresh unlabeled batches (``config.batch_size`` rows) of the dataset's
  train split, optionally recording the few-shot accuracy every k steps.
- :func:`readout_accuracy`: the SPEC 6 readout as a classifier; it calls
  :func:`refimpl.meta.meta_objective.ridge_readout`, the readout the
  meta-objective itself uses, so evaluation and meta-training read features
  out the same way.
- :func:`few_shot_accuracy`: K labeled examples per class (the support set)
  and a disjoint query set of the same classes; features ``x^L`` from one
  base-model forward pass per set (each with its own batch statistics, as
  in SPEC 6). ``phi=None`` reads out the raw inputs.

Choices (the SPEC defines only the meta-objective used in training):

- Support and query sets are disjoint examples
  (:meth:`refimpl.data.base.Dataset.support_query_batch`): for glyphs,
  glyphs of different fonts, never one image augmented twice.
- The readout regresses only the class columns (regression targets such as
  the glyph angles are not used). The accuracy does not depend on it:
  centring subtracts one scalar from every column and scales all by one
  scalar, so the class columns of the ridge prediction change only by a
  common shift and a positive scale, which keeps their argmax.
- A rule whose phi becomes non-finite raises :class:`RuleDivergedError`.
"""
from __future__ import annotations

import numpy as np

from refimpl.base_model.mlp import base_forward
from refimpl.config import Config
from refimpl.data.base import Dataset, as_rng, check_split
from refimpl.meta.meta_objective import ridge_readout
from refimpl.ops.meta_loss import center_labels_forward
from refimpl.params import validate_phi, validate_theta
from refimpl.rule.update_step import update_step
from refimpl.validate import check_int as _check_int, fail as _fail

#: Query examples per class when ``k_query`` is not given (fewer if a class has fewer).
DEFAULT_K_QUERY = 20


class RuleDivergedError(FloatingPointError):
    """phi became non-finite (NaN or Inf) while a rule was being applied."""


# ---------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------
def _check_config(fn: str, config) -> Config:
    if not isinstance(config, Config):
        _fail(fn, f"argument 'config' must be a Config, got {type(config).__name__}")
    return config


def _check_dataset(fn: str, dataset) -> Dataset:
    if not isinstance(dataset, Dataset):
        _fail(fn, f"argument 'dataset' must be a refimpl.data Dataset, got {type(dataset).__name__}")
    return dataset


def _check_inputs_match(fn: str, dataset: Dataset, config: Config) -> None:
    if dataset.n_features != config.layer_sizes[0]:
        _fail(fn, f"the dataset {dataset.name!r} has {dataset.n_features} input features but the "
                  f"config's layer_sizes start with {config.layer_sizes[0]}; use "
                  f"config.replace(layer_sizes=({dataset.n_features}, ...)) "
                  f"(see eval_config)")


def eval_config(config: Config, n_features: int, layer_sizes=None) -> Config:
    """The config of a base model on ``n_features`` inputs: ``layer_sizes`` (given, first entry
    ``n_features``) or ``[n_features, *config.layer_sizes[1:]]`` (the rule's hidden widths and top)."""
    _check_config("eval_config", config)
    if layer_sizes is None:
        layer_sizes = (n_features,) + tuple(config.layer_sizes[1:])
    layer_sizes = tuple(layer_sizes)
    if not layer_sizes or layer_sizes[0] != n_features:
        _fail("eval_config", f"layer_sizes must start with the {n_features} input features, "
                             f"got {list(layer_sizes)}")
    return config.replace(layer_sizes=layer_sizes)


# ---------------------------------------------------------------------------------
# readout
# ---------------------------------------------------------------------------------
def features(phi, x: np.ndarray, config: Config) -> np.ndarray:
    """The top features of one base-model forward pass, or the inputs themselves.

    Parameters
    ----------
    phi : Mapping[str, ndarray] or None
        The base model's parameters; None returns ``x`` (the raw-inputs baseline).
    x : ndarray, shape [n, N^0]
        The inputs; the batch norms use the statistics of this batch.
    config : Config
        The base model's sizes and activation.

    Returns
    -------
    ndarray, shape [n, N^L]
        x^L.
    """
    if phi is None:
        return x
    xs, _, _ = base_forward(phi, x, config)
    return xs[-1]


def readout_accuracy(f_support, y_support, f_query, y_query, n_classes: int, ridge: float) -> float:
    """The SPEC 6 readout used as a classifier; the fraction of query rows it classifies right.

    ``C = RidgeSolve([f_s, 1], center_labels(Y_s), ridge)`` on the support set, predictions
    ``[f_q, 1] @ C`` on the query set; a row is right when the argmax over the K class columns is
    the true class.

    Parameters
    ----------
    f_support : ndarray, shape [n_s, F]
        Support features.
    y_support : ndarray, shape [n_s, K + n_reg]
        One-hot support labels (then any regression targets).
    f_query : ndarray, shape [n_q, F]
        Query features.
    y_query : ndarray, shape [n_q, K + n_reg]
        One-hot query labels.
    n_classes : int
        K.
    ridge : float
        The ridge penalty.

    Returns
    -------
    float
        The accuracy, in [0, 1].
    """
    fn = "readout_accuracy"
    f_support, f_query = np.asarray(f_support), np.asarray(f_query)
    if f_support.ndim != 2 or f_query.ndim != 2 or f_support.shape[1] != f_query.shape[1]:
        _fail(fn, f"features must be [n, F] with the same F, got {f_support.shape} and {f_query.shape}")
    for name, f, y in (("support", f_support, y_support), ("query", f_query, y_query)):
        if np.ndim(y) != 2 or np.shape(y)[0] != f.shape[0] or np.shape(y)[1] < n_classes:
            _fail(fn, f"{name} targets must be [{f.shape[0]}, >= {n_classes}], got {np.shape(y)}")
    if not (np.isfinite(f_support).all() and np.isfinite(f_query).all()):
        _fail(fn, "features contain NaN or Inf")
    Yh, _ = center_labels_forward(np.asarray(y_support[:, :n_classes], dtype=f_support.dtype))
    P, _, _ = ridge_readout(f_support, Yh, np.asarray(f_query, dtype=f_support.dtype), ridge)
    predicted = np.argmax(P, axis=1)
    truth = np.argmax(y_query[:, :n_classes], axis=1)
    return float(np.mean(predicted == truth))


def _k_query(fn: str, dataset: Dataset, split: str, k_shot: int, k_query) -> int:
    if k_query is not None:
        return _check_int(fn, "k_query", k_query, 1)
    if dataset.augmented:
        return DEFAULT_K_QUERY
    available = int(dataset.class_counts(split).min()) - k_shot
    if available < 1:
        _fail(fn, f"k_shot={k_shot} leaves no query examples: the smallest class of {dataset.name!r} "
                  f"has {available + k_shot} examples in the {split} split")
    return min(DEFAULT_K_QUERY, available)


def few_shot_accuracy(phi, dataset, config, rng, k_shot: int = 10, n_trials: int = 10,
                      split: str = "test", k_query=None, dtype=None):
    """Mean and standard deviation, over ``n_trials`` draws, of the few-shot readout accuracy.

    Each trial draws ``k_shot`` support and ``k_query`` disjoint query examples per class from
    ``split`` of ``dataset`` (all its K classes), runs the base model once on each set and scores
    :func:`readout_accuracy` with ``config.ridge``. Chance is 1 / K.

    Parameters
    ----------
    phi : Mapping[str, ndarray] or None
        The base model's parameters; None reads out the raw inputs.
    dataset : Dataset
        The labeled data.
    config : Config
        The base model's sizes and the ridge penalty.
    rng : numpy.random.Generator
        The source of the draws.
    k_shot : int
        Support examples per class.
    n_trials : int
        Draws to average.
    split : {"train", "test"}
        The split to draw from.
    k_query : int, optional
        Query examples per class (default 20, fewer if a class is small).
    dtype : dtype, optional
        The inputs' dtype when ``phi`` is None (float32); otherwise phi's.

    Returns
    -------
    mean, std : float
        Over the trials.
    """
    fn = "few_shot_accuracy"
    config = _check_config(fn, config)
    dataset = _check_dataset(fn, dataset)
    split = check_split(split)
    rng = as_rng(rng)
    k_shot = _check_int(fn, "k_shot", k_shot, 1)
    n_trials = _check_int(fn, "n_trials", n_trials, 1)
    if dataset.n_classes < 2:
        _fail(fn, f"need at least 2 classes, the dataset has {dataset.n_classes}")
    if phi is not None:
        dtype = validate_phi(phi, config, fn=fn)
        _check_inputs_match(fn, dataset, config)
    elif dtype is None:
        dtype = np.float32
    k_query = _k_query(fn, dataset, split, k_shot, k_query)
    n_cls = dataset.n_classes
    accs = np.empty(n_trials)
    for t in range(n_trials):
        x_s, y_s, x_q, y_q = dataset.support_query_batch(rng, k_shot, k_query, split=split, dtype=dtype)
        accs[t] = readout_accuracy(features(phi, x_s, config), y_s, features(phi, x_q, config), y_q,
                                   n_cls, config.ridge)
    return float(accs.mean()), float(accs.std())


# ---------------------------------------------------------------------------------
# applying a rule
# ---------------------------------------------------------------------------------
def _is_finite(phi) -> bool:
    return all(np.isfinite(v).all() for v in phi.values())


def apply_rule(theta, phi, dataset, n_steps: int, config, rng, *, eval_every=None,
               eval_seed: int = 0, k_shot: int = 10, n_trials: int = 5, split: str = "test"):
    """Apply the rule ``theta`` to ``phi`` for ``n_steps`` unsupervised steps.

    Step i draws a fresh unlabeled batch [B, N^0] (B = ``config.batch_size``) from the train split
    of ``dataset`` with ``rng``, so the same generator state gives the same batches, and sets
    ``phi <- update_step(theta, phi, x)``. ``phi`` is not modified in place.

    Parameters
    ----------
    theta : Mapping[str, ndarray]
        The rule's parameters.
    phi : Mapping[str, ndarray]
        The base model's parameters for ``config``.
    dataset : Dataset
        The source of the unlabeled batches (and of the labeled ones, for ``eval_every``).
    n_steps : int
        The steps to take.
    config : Config
        The sizes of ``phi`` and the rates.
    rng : numpy.random.Generator
        The source of the unlabeled batches.
    eval_every : int, optional
        If given, score :func:`few_shot_accuracy` at steps 0, k, 2k, ... and at ``n_steps``,
        each time with a new generator seeded ``eval_seed``, so every point is scored on the same
        labeled batches and the evaluation does not consume ``rng``.
    eval_seed : int
        The seed of those evaluations.
    k_shot, n_trials : int
        The evaluation's examples per class and trials.
    split : {"train", "test"}
        The evaluation's split.

    Returns
    -------
    phi : dict[str, ndarray]
        phi after ``n_steps`` steps.
    history : list of dict
        ``{"step", "accuracy", "std"}`` per evaluation (empty without ``eval_every``).

    Raises
    ------
    RuleDivergedError
        If phi becomes non-finite.
    """
    fn = "apply_rule"
    config = _check_config(fn, config)
    dataset = _check_dataset(fn, dataset)
    rng = as_rng(rng)
    n_steps = _check_int(fn, "n_steps", n_steps, 0)
    if eval_every is not None:
        eval_every = _check_int(fn, "eval_every", eval_every, 1)
    dtype = validate_phi(phi, config, fn=fn)
    _check_inputs_match(fn, dataset, config)
    theta_dtype = validate_theta(theta, config, fn=fn)
    if theta_dtype != dtype:
        theta = {k: v.astype(dtype) for k, v in theta.items()}

    history = []

    def record(step):
        mean, std = few_shot_accuracy(phi, dataset, config, np.random.default_rng(eval_seed),
                                      k_shot=k_shot, n_trials=n_trials, split=split)
        history.append({"step": step, "accuracy": mean, "std": std})

    if eval_every is not None:
        record(0)
    for step in range(1, n_steps + 1):
        x = dataset.unlabeled_batch(rng, config.batch_size, split="train", dtype=dtype)
        phi = update_step(theta, phi, x, config)
        if not _is_finite(phi):
            bad = [k for k, v in phi.items() if not np.isfinite(v).all()]
            raise RuleDivergedError(f"{fn}: phi became non-finite at step {step} of {n_steps} "
                                    f"(in {bad})")
        if eval_every is not None and (step % eval_every == 0 or step == n_steps):
            record(step)
    return phi, history
