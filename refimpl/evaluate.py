"""Evaluating an update rule: apply it, read out few-shot accuracy, compare rules (issue 4, part 5).

The question a meta-learned rule answers is "does running me on unlabeled
data make the base model's top features better for a few-shot linear
readout?". This module measures exactly that, with the SPEC 6 readout and
no gradients:

- :func:`apply_rule`: ``n_steps`` updates ``phi <- UnsupervisedUpdate(phi, x; theta)``
  on fresh unlabeled batches (``config.batch_size`` rows) of the dataset's
  train split, optionally recording the few-shot accuracy every k steps.
- :func:`few_shot_accuracy`: K labeled examples per class (the support set)
  and a disjoint query set of the same classes; features ``x^L`` from one
  base-model forward pass per set (each with its own batch statistics, as
  in SPEC 6); ridge regression (``config.ridge``) of the centred one-hot
  labels on ``[x^L, 1]``; accuracy = argmax over the class columns of the
  query predictions against the query labels. ``phi=None`` reads out the
  raw inputs instead of features (the "raw pixels" reference).
- :func:`compare`: the learned rule, a random rule (``init_theta``) and the
  untrained random init ``phi_0``, plus raw pixels, over several seeds,
  on a held-out dataset; :func:`format_table` prints the rows.
- :func:`run_demo`: the main job (``make demo``): a short meta-training
  (:func:`train_for`: the trainer's ``small`` preset for about ``minutes``
  minutes), the comparison on held-out digits at 10-shot, the table as
  text, JSON and Markdown, and plots, all under ``run_dir``;
  :func:`add_demo_parser` registers it as a ``demo`` command.

Choices (none of them is settled by the SPEC, which only defines the
meta-objective used in training):

- Support and query sets are disjoint: one labeled batch with
  ``k_shot + k_query`` examples per class is drawn and split per class
  (a dataset whose examples are re-drawn with fresh augmentation may repeat
  an example only when a class has fewer than ``k_shot + k_query`` of them).
- The readout regresses only the class columns (regression targets such as
  the glyph angles are not used). The accuracy does not depend on it:
  centring subtracts one scalar from every column and scales all by one
  scalar, so the class columns of the ridge prediction change only by a
  common shift and a positive scale, which keeps their argmax.
- Each seed is one task: an input permutation (SPEC 2; it does not change
  the distribution of a random fully connected base model, but keeps the
  evaluation the same kind of task as meta-training), a random ``phi_0``
  for layer sizes ``[n_features, *hidden]`` (the hidden widths and the top
  taken from the rule's config unless given), a random theta for the
  random-rule row, and one stream of unlabeled batches shared by both
  rules. Every method of a seed is scored on the same labeled batches, so
  the rows are paired comparisons.
- A rule whose phi becomes non-finite raises :class:`RuleDivergedError`;
  :func:`compare` counts such seeds in the row's ``diverged`` and leaves
  them out of its mean (never replaced by a value).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from refimpl.npzio import atomic_write_bytes
from refimpl.model.base_model import base_forward
from refimpl.config import Config
from refimpl.data import get_dataset
from refimpl.data.base import Dataset, as_rng, check_split
from refimpl.ops.meta_loss import center_labels_forward
from refimpl.ops.ridge import ridge_solve_forward
from refimpl.params import init_phi, init_theta, load_params, validate_phi, validate_theta
from refimpl.rule.update_step import update_step
from refimpl.validate import check_int as _check_int, fail as _fail

#: Query examples per class when ``k_query`` is not given (fewer if a class has fewer).
DEFAULT_K_QUERY = 20
#: The comparison's methods, in table order.
METHODS = ("learned", "random_rule", "init", "raw")


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
    """Top features ``x^L [n, N^L]`` of one base-model forward pass (batch statistics of ``x``),
    or ``x`` itself when ``phi`` is None (raw inputs)."""
    if phi is None:
        return x
    xs, _, _ = base_forward(phi, x, config)
    return xs[-1]


def _with_ones(f: np.ndarray) -> np.ndarray:
    return np.concatenate([f, np.ones((f.shape[0], 1), dtype=f.dtype)], axis=1)


def readout_accuracy(f_support, y_support, f_query, y_query, n_classes: int, ridge: float) -> float:
    """The SPEC 6 readout as a classifier: ``C = RidgeSolve([f_s, 1], center_labels(Y_s), ridge)``,
    predictions ``[f_q, 1] @ C``; the fraction of query rows whose argmax over the ``n_classes``
    class columns is the true class (the argmax of the one-hot part of ``y_query``)."""
    fn = "readout_accuracy"
    f_support, f_query = np.asarray(f_support), np.asarray(f_query)
    if f_support.ndim != 2 or f_query.ndim != 2 or f_support.shape[1] != f_query.shape[1]:
        _fail(fn, f"features must be [n, F] with the same F, got {f_support.shape} and {f_query.shape}")
    for name, f, y in (("support", f_support, y_support), ("query", f_query, y_query)):
        if np.ndim(y) != 2 or np.shape(y)[0] != f.shape[0] or np.shape(y)[1] < n_classes:
            _fail(fn, f"{name} targets must be [{f.shape[0]}, >= {n_classes}], got {np.shape(y)}")
    if not (np.isfinite(f_support).all() and np.isfinite(f_query).all()):
        _fail(fn, "features contain NaN or Inf")
    A = _with_ones(f_support)
    Yh, _ = center_labels_forward(np.asarray(y_support[:, :n_classes], dtype=A.dtype))
    C, _ = ridge_solve_forward(A, Yh, ridge=ridge)
    P = _with_ones(f_query) @ C
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
    """Mean and standard deviation (over ``n_trials`` draws) of the few-shot readout accuracy.

    Each trial draws ``k_shot`` support and ``k_query`` (default
    :data:`DEFAULT_K_QUERY`, fewer if a class is small) disjoint query
    examples per class from ``split`` of ``dataset`` (all its classes), runs
    the base model ``phi`` (config ``config``; None = raw inputs) once on each
    set and scores :func:`readout_accuracy` with ``config.ridge``. Inputs
    take phi's dtype (``dtype``, float32 by default, when phi is None).
    Returns ``(mean, std)`` as floats; chance is ``1 / dataset.n_classes``.
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
    k = k_shot + k_query
    n_cls = dataset.n_classes
    in_support = np.tile(np.arange(k) < k_shot, n_cls)    # labeled batches are class-major
    accs = np.empty(n_trials)
    for t in range(n_trials):
        x, y = dataset.labeled_batch(rng, k, split=split, dtype=dtype)
        f_s = features(phi, x[in_support], config)
        f_q = features(phi, x[~in_support], config)
        accs[t] = readout_accuracy(f_s, y[in_support], f_q, y[~in_support], n_cls, config.ridge)
    return float(accs.mean()), float(accs.std())


# ---------------------------------------------------------------------------------
# applying a rule
# ---------------------------------------------------------------------------------
def _is_finite(phi) -> bool:
    return all(np.isfinite(v).all() for v in phi.values())


def apply_rule(theta, phi, dataset, n_steps: int, config, rng, *, eval_every=None,
               eval_seed: int = 0, k_shot: int = 10, n_trials: int = 5, split: str = "test"):
    """Apply the rule ``theta`` to ``phi`` for ``n_steps`` steps; return ``(phi, history)``.

    Step i draws a fresh unlabeled batch of ``config.batch_size`` rows from
    the train split of ``dataset`` with ``rng`` (so the same generator state
    gives the same batches) and sets ``phi <- update_step(theta, phi, x)``.
    ``phi`` is not modified in place. With ``eval_every = k``, ``history`` is
    a list of ``{"step", "accuracy", "std"}`` at steps 0, k, 2k, ... and at
    ``n_steps``: :func:`few_shot_accuracy` (``k_shot``, ``n_trials``,
    ``split``), each time with a new generator seeded ``eval_seed``, so every
    point is scored on the same labeled batches and the evaluation does not
    consume ``rng``. Without it, ``history`` is empty. Raises
    :class:`RuleDivergedError` if phi becomes non-finite.
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


# ---------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------
def _method_labels(inner_steps: int) -> dict:
    return {
        "learned": f"learned rule, {inner_steps} steps",
        "random_rule": f"random rule (init_theta), {inner_steps} steps",
        "init": "random init phi_0, no update",
        "raw": "raw pixels (reference)",
    }


def compare(theta_learned, config, dataset_name: str = "digits", k_shot: int = 10,
            inner_steps: int = 100, seeds=(0, 1, 2, 3, 4), *, n_trials: int = 10,
            layer_sizes=None, dtype=np.float32, n_way=None, permute: bool = True,
            curve_every=None, dataset_kwargs=None, dataset=None, progress: bool = False):
    """Few-shot accuracy of a learned rule against baselines, over several seeds (one task each).

    ``theta_learned`` and ``config`` are the rule and the config it was built
    for (its ``batch_size`` is the rule's; the base model gets layer sizes
    ``[n_features, *config.layer_sizes[1:]]`` unless ``layer_sizes`` is
    given). Per seed: a task of ``dataset_name`` (``get_dataset(name,
    **dataset_kwargs)``, or the given ``dataset``; ``n_way`` random classes,
    all by default; a random input permutation when ``permute``; both drawn,
    then ``phi_0``, from ``default_rng([seed, 0])``), a random theta
    (``init_theta(config, default_rng([seed, 1]))``), the unlabeled batches
    of both rules from ``default_rng([seed, 3])`` and the labeled batches of
    every method from one seed drawn from ``default_rng([seed, 2])``. Rows,
    in order:

    - ``learned``: theta_learned applied ``inner_steps`` times to phi_0;
    - ``random_rule``: the random theta applied the same steps (same batches);
    - ``init``: phi_0 itself (untrained random features);
    - ``raw``: the readout on the raw inputs.

    Each row is a dict: ``method``, ``label``, ``inner_steps``, ``mean`` and
    ``std`` (over the seeds that finished) of the per-seed mean accuracy
    (:func:`few_shot_accuracy` with ``k_shot`` and ``n_trials`` on the test
    split), ``delta_vs_init`` and ``delta_vs_init_std`` (mean and std over
    seeds of the paired difference to the ``init`` row of the same seed:
    the seed-to-seed spread of ``mean`` hides differences this shows),
    ``seeds``, ``per_seed`` (aligned with ``seeds``; None where the rule
    diverged), ``n`` (seeds that finished), ``diverged`` (seeds whose phi
    became non-finite), ``chance``, ``dataset``, ``k_shot``, ``seconds``;
    with ``curve_every``, the two rule rows also get ``curve``: lists
    ``step``, ``mean``, ``std`` (accuracy every ``curve_every`` steps, mean
    and std over seeds) and ``gain_mean``, ``gain_std`` (the same for the
    paired change since step 0).
    """
    fn = "compare"
    config = _check_config(fn, config)
    validate_theta(theta_learned, config, fn=fn)
    inner_steps = _check_int(fn, "inner_steps", inner_steps, 0)
    k_shot = _check_int(fn, "k_shot", k_shot, 1)
    seeds = [int(s) for s in np.atleast_1d(np.asarray(seeds))]
    if not seeds:
        _fail(fn, "need at least one seed")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        _fail(fn, f"dtype must be float32 or float64, got {dtype}")
    if dataset is None:
        dataset = get_dataset(dataset_name, **(dataset_kwargs or {}))
    dataset = _check_dataset(fn, dataset)
    cfg = eval_config(config, dataset.n_features, layer_sizes)
    theta_learned = {k: np.asarray(v, dtype=dtype) for k, v in theta_learned.items()}
    eval_kw = dict(k_shot=k_shot, n_trials=n_trials, split="test")

    results = {m: [] for m in METHODS}
    curves = {"learned": [], "random_rule": []}
    diverged = {m: 0 for m in METHODS}
    seconds = {m: 0.0 for m in METHODS}
    for i, seed in enumerate(seeds):
        task_rng = np.random.default_rng([seed, 0])
        task = dataset if n_way is None else dataset.sample_classes(task_rng, n_way)
        if permute:
            task = task.permuted(task.random_permutation(task_rng))
        phi0 = init_phi(cfg, task_rng, dtype)
        theta_random = init_theta(config, np.random.default_rng([seed, 1]), dtype)
        eval_seed = int(np.random.default_rng([seed, 2]).integers(2**31))
        this_seed = {}      # method -> accuracy, or None when the rule diverged

        for method in METHODS:
            t = time.perf_counter()
            if method in ("learned", "random_rule"):
                theta = theta_learned if method == "learned" else theta_random
                try:
                    # the same unlabeled batches for both rules: a fresh generator per rule
                    phi, history = apply_rule(theta, phi0, task, inner_steps, cfg,
                                              np.random.default_rng([seed, 3]), eval_every=curve_every,
                                              eval_seed=eval_seed, **eval_kw)
                except RuleDivergedError:
                    diverged[method] += 1
                    results[method].append(None)
                    this_seed[method] = None
                    seconds[method] += time.perf_counter() - t
                    continue
                if curve_every is not None:
                    curves[method].append(history)
                    # its last point is the evaluation below (same phi, same labeled batches)
                    accuracy = history[-1]["accuracy"]
                else:
                    accuracy, _ = few_shot_accuracy(phi, task, cfg, np.random.default_rng(eval_seed),
                                                    **eval_kw)
            else:
                accuracy, _ = few_shot_accuracy(phi0 if method == "init" else None, task, cfg,
                                                np.random.default_rng(eval_seed), dtype=dtype, **eval_kw)
            seconds[method] += time.perf_counter() - t
            results[method].append(accuracy)
            this_seed[method] = accuracy
        if progress:
            print(f"compare: seed {seed} ({i + 1}/{len(seeds)}): " + ", ".join(
                f"{m} " + ("diverged" if v is None else f"{v:.3f}") for m, v in this_seed.items()),
                file=sys.stderr, flush=True)

    labels = _method_labels(inner_steps)
    init = np.asarray(results["init"], dtype=np.float64)
    rows = []
    for method in METHODS:
        per_seed = results[method]
        finished = np.array([v is not None for v in per_seed])
        values = np.asarray([v for v in per_seed if v is not None], dtype=np.float64)
        delta = np.asarray([v for v in per_seed if v is not None], dtype=np.float64) - init[finished]
        row = {
            "method": method,
            "label": labels[method],
            "inner_steps": inner_steps if method in curves else 0,
            "mean": float(values.mean()) if values.size else math.nan,
            "std": float(values.std()) if values.size else math.nan,
            "delta_vs_init": float(delta.mean()) if delta.size else math.nan,
            "delta_vs_init_std": float(delta.std()) if delta.size else math.nan,
            "seeds": seeds,
            "per_seed": per_seed,
            "n": int(values.size),
            "diverged": diverged[method],
            "chance": 1.0 / (dataset.n_classes if n_way is None else n_way),
            "dataset": dataset.name,
            "k_shot": k_shot,
            "seconds": round(seconds[method], 3),
        }
        if curve_every is not None and method in curves and curves[method]:
            steps = [p["step"] for p in curves[method][0]]
            acc = np.array([[p["accuracy"] for p in h] for h in curves[method]])
            gain = acc - acc[:, :1]            # paired: each seed against its own phi_0
            row["curve"] = {"step": steps, "mean": acc.mean(axis=0).tolist(),
                            "std": acc.std(axis=0).tolist(), "gain_mean": gain.mean(axis=0).tolist(),
                            "gain_std": gain.std(axis=0).tolist()}
        rows.append(row)
    return rows


def _pm(mean, std, signed=False) -> str:
    if mean is None or not np.isfinite(mean):
        return "n/a"
    if signed:
        return f"{round(mean, 3) + 0.0:+.3f} ± {std:.3f}"      # + 0.0: no "-0.000"
    return f"{mean:.3f} ± {std:.3f}"


def format_table(rows) -> str:
    """The comparison rows as a Markdown table (aligned, so it also reads as plain text).

    Columns: method (the row's ``label``), inner steps, accuracy mean ± std
    over seeds, the paired change against phi_0 (when the rows have
    ``delta_vs_init``), seeds finished, seeds diverged; then one line naming
    the dataset, shots and chance (when the rows carry them)."""
    if not rows:
        _fail("format_table", "no rows")
    paired = any("delta_vs_init" in r for r in rows)
    header = ["method", "inner steps", "accuracy (mean ± std)"]
    header += ["vs phi_0, paired"] if paired else []
    header += ["seeds", "diverged"]
    body = []
    for r in rows:
        line = [str(r["label"]), str(r["inner_steps"]), _pm(r["mean"], r["std"])]
        if paired:
            line.append(_pm(r.get("delta_vs_init"), r.get("delta_vs_init_std"), signed=True))
        body.append(line + [str(r["n"]), str(r["diverged"])])
    widths = [max(len(line[c]) for line in [header] + body) for c in range(len(header))]
    align_right = [False] + [True] * (len(header) - 1)

    def fmt(cells):
        return "| " + " | ".join(c.rjust(w) if right else c.ljust(w)
                                 for c, w, right in zip(cells, widths, align_right)) + " |"

    rule = "|" + "|".join(("-" * (w + 1) + ":") if right else ("-" * (w + 2))
                          for w, right in zip(widths, align_right)) + "|"
    lines = [fmt(header), rule] + [fmt(b) for b in body]
    first = rows[0]
    if "dataset" in first:
        lines.append("")
        lines.append(f"{first['dataset']}, {first['k_shot']}-shot, test split; "
                     f"chance {first['chance']:.3f}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------
def _write_text(path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode("utf-8")))


def plot_comparison(rows, path) -> None:
    """Bar chart of the rows (mean ± std accuracy, chance as a dashed line) to ``path`` (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    means = [r["mean"] for r in rows]
    stds = [r["std"] for r in rows]
    colors = ["tab:blue", "tab:orange", "tab:gray", "tab:green"][: len(rows)]
    y = np.arange(len(rows))
    ax.barh(y, np.nan_to_num(means), xerr=np.nan_to_num(stds), color=colors, capsize=4)
    ax.set_yticks(y, [r["label"] for r in rows])
    ax.invert_yaxis()
    for yi, m in zip(y, means):
        ax.text(0.01, yi, "n/a" if not np.isfinite(m) else f"{m:.3f}", va="center", color="white",
                fontweight="bold")
    first = rows[0]
    if "chance" in first:
        ax.axvline(first["chance"], color="k", linestyle="--", linewidth=1, label="chance")
        ax.legend(loc="lower right")
        ax.set_title(f"{first['dataset']}, {first['k_shot']}-shot ridge readout (test split)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("accuracy")
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)


def plot_curves(rows, path) -> bool:
    """Accuracy against inner steps for the rows that have a ``curve`` (left: mean ± std over
    seeds, with the other rows as horizontal lines; right: the paired change since step 0).
    Returns False (and writes nothing) if no row has a curve."""
    with_curve = [r for r in rows if "curve" in r]
    if not with_curve:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_gain) = plt.subplots(1, 2, figsize=(11, 4))
    for r in with_curve:
        c = {k: np.asarray(v, dtype=float) for k, v in r["curve"].items()}
        line, = ax.plot(c["step"], c["mean"], marker="o", markersize=3, label=r["label"])
        ax.fill_between(c["step"], c["mean"] - c["std"], c["mean"] + c["std"], alpha=0.15,
                        color=line.get_color())
        if "gain_mean" in c:
            ax_gain.plot(c["step"], c["gain_mean"], marker="o", markersize=3, color=line.get_color(),
                         label=r["label"])
            ax_gain.fill_between(c["step"], c["gain_mean"] - c["gain_std"],
                                 c["gain_mean"] + c["gain_std"], alpha=0.15, color=line.get_color())
    for r in rows:
        if "curve" not in r and np.isfinite(r["mean"]):
            ax.axhline(r["mean"], linestyle=":", color="gray" if r["method"] == "init" else "tab:green",
                       label=r["label"])
    ax.set_xlabel("inner (unsupervised) steps")
    ax.set_ylabel("few-shot accuracy")
    ax.set_title("accuracy (mean ± std over seeds)")
    ax.legend(fontsize=8)
    ax_gain.axhline(0, color="k", linewidth=0.8)
    ax_gain.set_xlabel("inner (unsupervised) steps")
    ax_gain.set_ylabel("accuracy change since step 0")
    ax_gain.set_title("paired change (mean ± std over seeds)")
    ax_gain.legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path)
    plt.close(fig)
    return True


def _save_figure(fig, path) -> None:
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=110))


def write_comparison(rows, run_dir, meta=None) -> dict:
    """Write ``comparison.json`` (rows plus ``meta``), ``comparison.md`` and the plots to ``run_dir``.
    Returns name -> path of every file written."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": run_dir / "comparison.json", "markdown": run_dir / "comparison.md",
             "bar_chart": run_dir / "comparison.png"}
    payload = {"meta": meta or {}, "rows": rows}
    _write_text(paths["json"], json.dumps(payload, indent=2, allow_nan=True) + "\n")
    _write_text(paths["markdown"], "# Few-shot comparison\n\n" + format_table(rows) + "\n")
    plot_comparison(rows, paths["bar_chart"])
    if plot_curves(rows, run_dir / "comparison_curve.png"):
        paths["curve"] = run_dir / "comparison_curve.png"
    return paths


# ---------------------------------------------------------------------------------
# the main job
# ---------------------------------------------------------------------------------
def train_for(run_dir, minutes: float, preset: str = "small", *, quiet: bool = False, out=None) -> int:
    """Meta-train in ``run_dir`` for about ``minutes`` minutes with the trainer's ``preset``.

    Uses the trainer's own time limit (``run(..., max_seconds=...)``: it stops
    after the first meta-step that ends past the budget, with a checkpoint),
    never past the preset's ``n_steps``. A run already in ``run_dir`` is
    continued bit for bit (its own settings win), so running the demo again
    trains further. Returns the number of meta-steps now in the run; raises
    KeyboardInterrupt after the trainer has saved its checkpoint on Ctrl-C.
    """
    from refimpl.train import CHECKPOINT_FILE, EXIT_INTERRUPTED, load_checkpoint, run, train_preset

    out = sys.stdout if out is None else out
    run_dir = Path(run_dir)
    ckpt = run_dir / CHECKPOINT_FILE
    tc = train_preset(preset)
    resume = ckpt.exists()
    if resume:
        print(f"demo: continuing the run in {run_dir} from meta-step {load_checkpoint(ckpt)[0].step}",
              file=out, flush=True)
    if minutes > 0:
        start = time.monotonic()
        status = run(run_dir, None if resume else tc, resume=resume, n_steps=tc.n_steps, quiet=quiet,
                     max_seconds=60.0 * float(minutes))
        if status == EXIT_INTERRUPTED:
            raise KeyboardInterrupt(f"meta-training interrupted; checkpoint in {ckpt}")
        if status != 0:
            raise RuntimeError(f"train_for: the trainer returned status {status}")
        step = load_checkpoint(ckpt)[0].step
        print(f"demo: meta-step {step} after {(time.monotonic() - start) / 60:.1f} min", file=out, flush=True)
    return load_checkpoint(ckpt)[0].step if ckpt.exists() else 0


def _default_train(run_dir: Path, minutes: float) -> None:
    """A short ``small``-preset meta-training writing ``run_dir/theta.npz``."""
    train_for(run_dir, minutes, "small")


def _default_plot(run_dir: Path) -> list:
    """The trainer's meta-training curves (``refimpl plot RUN_DIR``); returns the files written."""
    from refimpl.train.plot import plot_run

    return [plot_run(run_dir)]


#: The demo's control comparison: the meta-training distribution (glyphs),
#: in the fonts of the test split, which meta-training never sees.
CONTROL = {"name": "glyphs_heldout_fonts", "dataset": "glyphs", "split_note": "(fonts held out of meta-training)",
           "n_way": 10, "k_shot": 4}


def run_demo(run_dir="runs/demo", minutes: float = 5.0, *, train_fn=None, plot_fn=None,
             dataset_name: str = "digits", k_shot: int = 10, inner_steps: int = 200,
             seeds=(0, 1, 2, 3, 4), n_trials: int = 10, curve_every=25, out=None,
             control: dict | None = CONTROL) -> dict:
    """The main job: meta-train briefly, then compare the rules on held-out digits at 10-shot.

    1. ``train_fn(run_dir, minutes)`` (default: :func:`train_for` with the
       trainer's ``small`` preset, about ``minutes`` minutes) must leave
       ``run_dir/theta.npz`` (a theta-only file, ``save_params(...,
       kind="theta")``);
    2. :func:`compare` on ``dataset_name`` (not used in meta-training);
    3. prints the table (to ``out``, default stdout) and writes
       ``comparison.json`` and ``comparison.md`` in ``run_dir``;
    4. writes ``comparison.png``, ``comparison_curve.png`` (with
       ``curve_every``) and the meta-training curves (``plot_fn(run_dir)``,
       default the trainer's ``plot_run``: ``curves.png``);
    5. with ``control`` (default :data:`CONTROL`: glyphs in fonts held out of
       meta-training, 10-way 4-shot), the same comparison on the training
       distribution, written under ``run_dir/<control name>/``: it separates
       "the rule learned nothing" from "what it learned does not transfer".

    Returns ``{"rows", "paths", "theta_path", "control_rows"}``.
    """
    if not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes >= 0):
        raise ValueError(f"run_demo: minutes must be a finite number >= 0, got {minutes!r}")
    if not (isinstance(inner_steps, int) and inner_steps >= 0):
        raise ValueError(f"run_demo: inner_steps must be an integer >= 0, got {inner_steps!r}")
    if len(seeds) == 0:
        raise ValueError("run_demo: seeds is empty")
    from refimpl.train.trainer import check_run_dir

    run_dir = check_run_dir(run_dir, create=True)      # before minutes of training
    out = sys.stdout if out is None else out
    train_fn = _default_train if train_fn is None else train_fn
    plot_fn = _default_plot if plot_fn is None else plot_fn

    t0 = time.perf_counter()
    print(f"demo: meta-training for about {minutes:g} min in {run_dir}", file=out, flush=True)
    train_fn(run_dir, minutes)
    train_seconds = time.perf_counter() - t0
    theta_path = run_dir / "theta.npz"
    if not theta_path.exists():
        raise FileNotFoundError(f"run_demo: meta-training did not write {theta_path}")
    theta, config = load_params(theta_path, kind="theta")

    print(f"demo: comparing rules on {dataset_name}, {k_shot}-shot, {inner_steps} inner steps, "
          f"{len(seeds)} seeds", file=out, flush=True)
    t1 = time.perf_counter()
    rows = compare(theta, config, dataset_name, k_shot=k_shot, inner_steps=inner_steps, seeds=seeds,
                   n_trials=n_trials, curve_every=curve_every)
    compare_seconds = time.perf_counter() - t1
    print(format_table(rows), file=out, flush=True)
    meta = {"theta": os.fspath(theta_path), "config": config.to_dict(), "dataset": dataset_name,
            "k_shot": k_shot, "inner_steps": inner_steps, "seeds": [int(s) for s in seeds],
            "n_trials": n_trials, "curve_every": curve_every, "train_seconds": round(train_seconds, 1),
            "compare_seconds": round(compare_seconds, 1)}
    paths = write_comparison(rows, run_dir, meta)
    control_rows = None
    if control is not None:
        name = control["name"]
        print(f"demo: control on the training distribution: {control['dataset']} {control['split_note']}, "
              f"{control['n_way']}-way {control['k_shot']}-shot, {inner_steps} inner steps", file=out, flush=True)
        control_rows = compare(theta, config, control["dataset"], k_shot=control["k_shot"],
                               n_way=control["n_way"], inner_steps=inner_steps, seeds=seeds,
                               n_trials=n_trials, curve_every=curve_every)
        print(format_table(control_rows), file=out, flush=True)
        control_paths = write_comparison(control_rows, run_dir / name, {**meta, "dataset": control["dataset"],
                                                                           "k_shot": control["k_shot"],
                                                                           "n_way": control["n_way"]})
        paths.update({f"{name}_{key}": p for key, p in control_paths.items()})
    for i, p in enumerate(plot_fn(run_dir) or []):
        paths[f"training_plot{i}"] = Path(p)
    for p in paths.values():
        print(f"demo: wrote {p}", file=out)
    return {"rows": rows, "paths": paths, "theta_path": theta_path, "control_rows": control_rows}


def add_demo_parser(subparsers):
    """Register ``demo`` (:func:`run_demo`) on an argparse subparsers object (``set_defaults(func=...)``)."""
    from refimpl.train import directory_arg, nonneg_float, nonneg_int, positive_int

    p = subparsers.add_parser(
        "demo", help="short meta-training, then a few-shot comparison on held-out digits",
        description="Meta-train the rule with the 'small' preset for about --minutes minutes in "
                    "--run-dir (continuing a run already there), then compare the learned rule, a "
                    "random rule, untrained random features and raw pixels at 10-shot on the "
                    "held-out digits; print the table and write it (JSON, Markdown) and plots to "
                    "--run-dir.")
    p.add_argument("--run-dir", type=directory_arg, default="runs/demo",
                   help="directory of the meta-training run and the results (default runs/demo)")
    p.add_argument("--minutes", type=nonneg_float, default=5.0, help="meta-training time (default 5)")
    p.add_argument("--inner-steps", type=nonneg_int, default=200,
                   help="rule steps before the readout (default 200)")
    p.add_argument("--seeds", type=positive_int, default=5, help="number of tasks, seeds 0..n-1 (default 5)")
    p.set_defaults(func=demo_command, parser=p)
    return p


def demo_command(args) -> int:
    try:
        run_demo(args.run_dir, minutes=args.minutes, inner_steps=args.inner_steps,
                 seeds=tuple(range(args.seeds)))
    except KeyboardInterrupt as e:
        print(f"\ndemo: interrupted ({e})", file=sys.stderr)
        return 130
    return 0
