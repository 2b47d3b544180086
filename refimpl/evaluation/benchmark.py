"""A rule against every baseline on one dataset: paired few-shot accuracy and feature diagnostics.

Per seed (one task): ``n_way`` classes (all by default) in a random order, a
random input permutation and ``phi_0`` from ``default_rng([seed, 0])``; the
labeled trials (``k_shot`` support + ``k_query`` query examples per class,
test split) from ``default_rng([seed, 2])``, drawn once and used by every
method, so every difference to ``phi_0`` is paired; the rule's unlabeled
batches (train split) from ``default_rng([seed, 3])``; the baselines' own
randomness from ``default_rng([seed, 4])``. Each method's features go
through the SPEC 6 ridge readout (:func:`refimpl.evaluation.fewshot.readout_accuracy`).

Methods: ``rule@<s>`` (theta applied s inner steps to phi_0; s = 0 is phi_0
itself), ``random@<s>`` (a random theta, SPEC 9 ``init_theta`` of the rule's
config, applied the same way from the same phi_0 on the same batches: the
control that shows the gain is meta-learned), ``raw``, ``ink``, ``pca`` (to
N^L, fitted on the unlabeled train split), ``vae`` (the paper's sizes,
fitted on the unlabeled train split until its loss on a validation part of
it stops falling), ``supervised`` (trained on each trial's support set
only). The base net is ``[n_features, *hidden, top]``: the rule's own
widths by default, or e.g. the paper's ``hidden=(128,) * 4, top=32``.
A rule whose phi becomes
non-finite is counted in ``diverged`` at that checkpoint and every later one
(a row with ``n`` < seeds; never replaced by a value, never dropped).
"""
from __future__ import annotations

import functools
import math
import sys
import time

import numpy as np

from refimpl.evaluation import baselines as bl
from refimpl.evaluation.diagnostics import feature_diagnostics
from refimpl.evaluation.fewshot import readout_accuracy
from refimpl.params import init_phi

ALL_BASELINES = ("raw", "ink", "pca", "vae", "supervised")


def _trials(task, rng, k_shot, k_query, n_trials, dtype):
    """Labeled trials of the test split; support and query are different examples (for glyphs,
    different fonts: :meth:`refimpl.data.base.Dataset.support_query_batch`)."""
    out = []
    n = task.n_classes
    for _ in range(n_trials):
        xs, ys, xq, yq = task.support_query_batch(rng, k_shot, k_query, split="test", dtype=dtype)
        out.append((xs, ys[:, :n], xq, yq[:, :n]))
    return out


def _score(transform, trials, n_cls, ridge):
    accs = [readout_accuracy(transform(xs), ys, transform(xq), yq, n_cls, ridge) for xs, ys, xq, yq in trials]
    return float(np.mean(accs)), feature_diagnostics(transform(trials[0][0]))


def _unlabeled_pool(task, rng, size, dtype):
    return task.unlabeled_batch(rng, size, split="train", dtype=dtype)


#: The VAE's settings by default: the paper's sizes and optimiser, early stopping on a validation
#: part (``valid_fraction``) of the unlabeled pool, checked every ``eval_every`` steps, stopping after
#: ``patience`` checks without a new best, at most ``max_steps`` steps.
VAE_DEFAULTS = {**bl.PAPER_VAE, "max_steps": 20000, "eval_every": 250, "patience": 4, "valid_fraction": 0.2,
                "batch_size": 128}
#: The supervised baseline's Adam steps and learning rate: chosen on held-out glyph tasks
#: (examples/transfer/tune_supervised.py, docs/transfer/supervised_tuning.json), no evaluation dataset;
#: the same for the small and the paper's base net (the grid's largest steps and lr: a wider grid may do better).
SUPERVISED_DEFAULTS = {"steps": 1000, "lr": 1e-2}


def _vae_pool(task, rng, pool_size, valid_fraction, dtype):
    """``(fit, valid)`` unlabeled inputs of the train split with no example in both: every
    example of an unaugmented dataset once (at most ``pool_size``), split at random; for an augmented
    one, draws of disjoint example sets."""
    n = task.n_examples("train")
    if not task.augmented:
        x, _ = task.arrays("train", dtype=dtype)
        x = x[rng.permutation(len(x))[:pool_size]]
        n_valid = max(1, int(round(valid_fraction * len(x))))
        return x[n_valid:], x[:n_valid]
    pool = task._pool["train"]
    order = pool[rng.permutation(n)]
    n_valid = max(1, int(round(valid_fraction * n)))
    draw = task.source.draw
    fit_idx = order[n_valid:][rng.integers(n - n_valid, size=pool_size)]
    valid_idx = order[:n_valid][rng.integers(n_valid, size=max(1, int(valid_fraction * pool_size)))]
    x_fit, _ = draw(rng, fit_idx, "train", np.dtype(dtype))
    x_valid, _ = draw(rng, valid_idx, "train", np.dtype(dtype))
    return task._finish(x_fit), task._finish(x_valid)


def seed_methods(rule_labels, steps, baselines) -> list[str]:
    """The methods of one seed, in the order :func:`benchmark` computes them (and its records list them).

    ``rule_labels``: ``"rule"`` and/or ``"random"``, the thetas applied; ``steps``: the sorted
    checkpoints, 0 included; ``baselines``: the baselines' names. ``random@0`` is not a method of its
    own (phi_0 is the ``rule@0`` row); without a theta, ``rule@0`` is phi_0's row all the same.
    """
    if not rule_labels:
        return ["rule@0", *baselines]
    return [f"{label}@{s}" for label in rule_labels for s in steps if label == "rule" or s > 0] + list(baselines)


def _method_started(on_method, seed, methods, method) -> None:
    if on_method is not None:
        on_method(int(seed), method, methods.index(method) + 1, len(methods))


def benchmark(theta, config, dataset, *, seeds=range(10), k_shot: int = 10, k_query: int = 10,
              n_trials: int = 10, inner_steps=(0, 50, 100, 200), n_way=None, hidden=None, top=None,
              baselines=ALL_BASELINES, vae_steps=None, supervised_steps=None, supervised_lr=None,
              vae=None, random_theta=None, pool_size: int = 2000, dtype=np.float32,
              progress: bool = True, permute: bool = True, on_method=None) -> dict:
    """Every method on one dataset, for each seed: the rule at its checkpoints and every baseline.

    The base model has layer sizes ``[n_features, *hidden, top]`` (defaults: the config's hidden
    widths and N^L). Each
    seed draws its task (``n_way`` classes and an input permutation), its phi_0, and
    ``n_trials`` labeled support and query sets that every method is scored on.

    Parameters
    ----------
    theta : Mapping[str, ndarray] or None
        The rule's parameters; None evaluates only phi_0 and the baselines.
    random_theta : Mapping[str, ndarray] or None
        A theta of ``config``'s shapes (the random-theta control, SPEC 9 ``init_theta``): adds the
        ``random@<s>`` rows, applied from the same phi_0 on the same batches as the rule.
    config : Config
        The rule's configuration (batch size B, N^L, ridge, ...).
    dataset : Dataset
        The data (:func:`refimpl.get_dataset`).
    seeds : iterable of int
        The tasks.
    k_shot, k_query : int
        Support and query examples per class in each trial.
    n_trials : int
        Labeled trials per seed.
    inner_steps : sequence of int
        The rule's checkpoints (unsupervised steps); 0 is always included.
    n_way : int or None
        K, the classes of each task; None uses all.
    hidden : sequence of int, optional
        The hidden widths of the base model (default: the config's).
    top : int, optional
        N^L of the base model (default: the config's); e.g. ``hidden=(128,) * 4, top=32``, the
        paper's base net.
    baselines : sequence of str
        Any of ``"raw"``, ``"ink"``, ``"pca"``, ``"vae"``, ``"supervised"``.
    vae : dict, optional
        Overrides of :data:`VAE_DEFAULTS` (sizes, lr, early stopping, step cap).
    vae_steps, supervised_steps, supervised_lr : optional
        The VAE's step cap (it stops early on its validation loss); the supervised baseline's
        Adam steps and learning rate (default :data:`SUPERVISED_DEFAULTS`).
    pool_size : int
        Unlabeled examples that PCA and the VAE are fitted on.
    dtype : dtype
        The dtype the rule runs in (float32).
    progress : bool
        Print a line per seed to stderr.
    permute : bool
        False leaves the inputs in their own order; the permutation is still drawn, so phi_0 and
        the trials' examples are those of ``permute=True`` (the two runs are paired).
    on_method : callable, optional
        Called as ``on_method(seed, method, position, total)`` when a method of a seed starts
        (``position`` counts from 1 among the seed's ``total`` methods, ``seed_methods``); a
        rule's checkpoint starts before the inner steps that lead to it. Checkpoints after one where
        phi diverged are not started. It only observes: the result is the same without it.

    Returns
    -------
    dict
        ``per_seed`` (one record per seed: accuracy and feature diagnostics of each method, the
        checkpoints that diverged), ``summary`` (:func:`summarize`), ``layer_sizes``, ``k_shot``,
        ``k_query``, ``n_trials``, ``dataset``, ``n_classes`` and ``budgets`` (the VAE's and the
        supervised baseline's settings used); with the VAE, each seed's record has its
        ``vae_curve`` (validation and training losses, the step kept, the step it stopped at).
    """
    hidden = tuple(config.layer_sizes[1:-1]) if hidden is None else tuple(hidden)
    top = int(config.layer_sizes[-1]) if top is None else int(top)
    cfg = config.replace(layer_sizes=(dataset.n_features, *hidden, top))
    steps = sorted({0, *(int(s) for s in inner_steps)}) if theta is not None else [0]
    vae = {**VAE_DEFAULTS, **(vae or {}), **({} if vae_steps is None else {"max_steps": int(vae_steps)})}
    vae_latent = min(int(vae["latent"]), top)
    sup = {"steps": SUPERVISED_DEFAULTS["steps"] if supervised_steps is None else int(supervised_steps),
           "lr": SUPERVISED_DEFAULTS["lr"] if supervised_lr is None else float(supervised_lr)}
    rules = {}
    if theta is not None:
        rules["rule"] = {k: np.asarray(v, dtype=dtype) for k, v in theta.items()}
    if random_theta is not None:
        rules["random"] = {k: np.asarray(v, dtype=dtype) for k, v in random_theta.items()}
    per_seed = []
    for seed in seeds:
        t0 = time.perf_counter()
        task_rng = np.random.default_rng([seed, 0])
        task = dataset if n_way is None else dataset.sample_classes(task_rng, n_way)
        perm = task.random_permutation(task_rng)
        task = task.permuted(perm) if permute else task
        n_cls = task.n_classes
        phi = init_phi(cfg, task_rng, dtype)
        trials = _trials(task, np.random.default_rng([seed, 2]), k_shot, k_query, n_trials, dtype)
        record = {"seed": int(seed), "acc": {}, "diag": {}, "diverged": []}
        methods = seed_methods(list(rules), steps, baselines)
        started = functools.partial(_method_started, on_method, seed, methods)
        if not rules:
            started("rule@0")
            acc, diag = _score(bl.init_features(phi, cfg), trials, n_cls, cfg.ridge)
            record["acc"]["rule@0"], record["diag"]["rule@0"] = acc, diag
        for label, th in rules.items():
            _apply_and_score(label, th, phi, task, cfg, steps, np.random.default_rng([seed, 3]), trials, n_cls,
                             dtype, record, started)
        base_rng = np.random.default_rng([seed, 4])
        pool = None
        for name in baselines:
            started(name)
            if name == "raw":
                transform = bl.raw_features()
            elif name == "ink":
                transform = bl.ink_features_fn()
            elif name == "pca":
                if pool is None:
                    pool = _unlabeled_pool(task, base_rng, pool_size, np.float64)
                transform = bl.pca_features(pool, cfg.layer_sizes[-1], seed=int(seed))
            elif name == "vae":
                x_fit, x_valid = _vae_pool(task, np.random.default_rng([seed, 5]), pool_size,
                                           vae["valid_fraction"], np.float64)
                fit = bl.train_vae(x_fit, vae["hidden"], vae_latent, np.random.default_rng([seed, 6]),
                                   n_steps=vae["max_steps"], batch_size=vae["batch_size"], lr=vae["lr"],
                                   x_valid=x_valid, eval_every=vae["eval_every"], patience=vae["patience"])
                transform = fit.transform
                record["vae_curve"] = {"valid": [[int(a), float(b)] for a, b in fit.valid],
                                       "train_every_50": [float(np.mean(fit.losses[i:i + 50]))
                                                          for i in range(0, len(fit.losses), 50)],
                                       "best_step": fit.best_step, "stopped_at": fit.stopped_at,
                                       "n_fit": len(x_fit), "n_valid": len(x_valid)}
            elif name == "supervised":
                accs = []
                for xs, ys, xq, yq in trials:
                    fit = bl.train_supervised(xs, np.argmax(ys, axis=1), cfg.layer_sizes, n_cls, base_rng,
                                              n_steps=sup["steps"], lr=sup["lr"])
                    accs.append(readout_accuracy(fit.transform(xs), ys, fit.transform(xq), yq, n_cls, cfg.ridge))
                record["acc"][name] = float(np.mean(accs))
                record["diag"][name] = feature_diagnostics(fit.transform(trials[0][0]))
                continue
            else:
                raise ValueError(f"benchmark: unknown baseline {name!r}; known: {', '.join(ALL_BASELINES)}")
            acc, diag = _score(transform, trials, n_cls, cfg.ridge)
            record["acc"][name], record["diag"][name] = acc, diag
        record["seconds"] = round(time.perf_counter() - t0, 1)
        per_seed.append(record)
        if progress:
            print(f"benchmark {dataset.name} seed {seed}: " +
                  ", ".join(f"{m} {a:.3f}" for m, a in record["acc"].items()) + f" [{record['seconds']}s]",
                  file=sys.stderr, flush=True)
    budgets = {}
    if "vae" in baselines:
        budgets["vae"] = {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in vae.items()},
                          "latent": vae_latent, "pool_size": pool_size}
    if "supervised" in baselines:
        budgets["supervised"] = dict(sup)
    return {"per_seed": per_seed, "summary": summarize(per_seed), "layer_sizes": list(cfg.layer_sizes),
            "k_shot": k_shot, "k_query": k_query, "n_trials": n_trials, "dataset": dataset.name,
            "n_classes": (dataset.n_classes if n_way is None else n_way), "budgets": budgets}


def _apply_and_score(label, theta, phi, task, cfg, steps, batch_rng, trials, n_cls, dtype, record, started):
    """``<label>@<s>`` rows: ``theta`` applied to ``phi`` on unlabeled train batches from ``batch_rng``,
    scored at each of ``steps``; a non-finite phi marks this and every later checkpoint diverged.
    ``started(method)`` is called as each row's work begins."""
    from refimpl.rule.update_step import update_step

    done = 0
    for s in steps:
        if label == "rule" or s > 0:
            started(f"{label}@{s}")
        while done < s:
            phi = update_step(theta, phi, task.unlabeled_batch(batch_rng, cfg.batch_size, dtype=dtype), cfg)
            done += 1
        if not all(np.isfinite(v).all() for v in phi.values()):
            record["diverged"] += [f"{label}@{t}" for t in steps if t >= s]
            return
        if label != "rule" and s == 0:
            continue                      # phi_0 is the rule@0 row
        acc, diag = _score(bl.init_features(phi, cfg), trials, n_cls, cfg.ridge)
        record["acc"][f"{label}@{s}"], record["diag"][f"{label}@{s}"] = acc, diag


def sample_std(v) -> float:
    """The sample standard deviation (ddof 1) of ``v``; NaN for fewer than two values."""
    return float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")


def _se(v):
    return sample_std(v) / math.sqrt(len(v)) if len(v) > 1 else float("nan")


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def paired_difference(per_seed, method: str, other: str = "rule@0") -> dict:
    """``method`` minus ``other``, paired over the seeds that have both: mean, standard error, seeds
    where ``method`` is ahead, and how many seeds were paired."""
    have = [r for r in per_seed if method in r["acc"] and other in r["acc"]]
    delta = np.array([r["acc"][method] - r["acc"][other] for r in have])
    return {"delta": _nanmean(delta), "delta_se": _se(delta), "better": int(np.sum(delta > 0)), "n": len(have)}


def summarize(per_seed) -> list[dict]:
    """One row per method from the per-seed records of :func:`benchmark`.

    Parameters
    ----------
    per_seed : list of dict
        The ``per_seed`` records.

    Returns
    -------
    list of dict
        For each method (the rule's checkpoints ``rule@<steps>`` first): ``n`` (seeds scored),
        ``diverged``, ``acc`` and ``acc_se`` (mean and standard error over seeds), ``delta``,
        ``delta_se`` and ``better`` (the paired difference to ``rule@0``, phi_0: mean, standard
        error, seeds better), and the means of the features' ``effective_rank``, mean absolute
        correlation ``mean_abs_corr`` and ``zero_rows``.
    """
    methods = list(dict.fromkeys(m for r in per_seed for m in [*r["acc"], *r.get("diverged", [])]))
    def stepped(prefix):
        return sorted((m for m in methods if m.startswith(prefix)), key=lambda m: int(m.split("@")[1]))
    methods = stepped("rule@") + stepped("random@") + \
        [m for m in methods if not m.startswith(("rule@", "random@"))]
    rows = []
    for m in methods:
        have = [r for r in per_seed if m in r["acc"] and "rule@0" in r["acc"]]
        acc = np.array([r["acc"][m] for r in have])
        paired = paired_difference(per_seed, m)
        rows.append({
            "method": m, "n": len(have), "diverged": sum(m in r.get("diverged", []) or
                                                         (m.startswith(("rule@", "random@")) and m not in r["acc"])
                                                         for r in per_seed),
            "acc": _nanmean(acc), "acc_se": _se(acc),
            "delta": paired["delta"], "delta_se": paired["delta_se"], "better": paired["better"],
            "effective_rank": _nanmean([r["diag"][m]["effective_rank"] for r in have]),
            "mean_abs_corr": _nanmean([r["diag"][m]["mean_abs_corr"] for r in have]),
            "zero_rows": _nanmean([r["diag"][m]["zero_rows"] for r in have]),
        })
    return rows


def same_trials(a: dict, b: dict, key: str | None = None, tol: float = 1e-12) -> bool:
    """Whether two per-seed records were scored on the same task and labeled trials: a method that both
    computed from the same inputs scores the same. ``key`` defaults to raw inputs when both have them (they
    do not depend on the base net, so records of two architectures pair too), else phi_0 (``rule@0``,
    the same architecture); pass ``key="rule@0"`` to require the same phi_0 as well."""
    if key is None:
        key = "raw" if "raw" in a["acc"] and "raw" in b["acc"] else "rule@0"
    return abs(a["acc"][key] - b["acc"][key]) <= tol


def merge_seeds(results) -> dict:
    """One benchmark result from results of the same computation on disjoint seeds (e.g. two processes
    that each fitted some seeds of a slow baseline): the records in seed order and their summary.

    Everything but ``per_seed`` and ``summary`` (dataset, layer sizes, budgets, ...) must agree.
    """
    results = list(results)
    if not results:
        raise ValueError("merge_seeds: no results")
    rest = [{k: v for k, v in r.items() if k not in ("per_seed", "summary")} for r in results]
    for i, other in enumerate(rest[1:], 1):
        if other != rest[0]:
            keys = sorted(k for k in {*other, *rest[0]} if other.get(k) != rest[0].get(k))
            raise ValueError(f"merge_seeds: result {i} differs from the first in {', '.join(keys)}")
    per_seed = sorted((rec for r in results for rec in r["per_seed"]), key=lambda rec: rec["seed"])
    seeds = [rec["seed"] for rec in per_seed]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"merge_seeds: seeds in more than one result: {sorted({s for s in seeds if seeds.count(s) > 1})}")
    return {**rest[0], "per_seed": per_seed, "summary": summarize(per_seed)}
