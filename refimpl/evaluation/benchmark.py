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
itself), ``raw``, ``ink``, ``pca`` (to N^L, fitted on the unlabeled train
split), ``vae`` (fitted on the unlabeled train split), ``supervised``
(trained on each trial's support set only). A rule whose phi becomes
non-finite is counted in ``diverged`` at that checkpoint and every later one
(a row with ``n`` < seeds; never replaced by a value, never dropped).
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from refimpl.evaluation.fewshot import readout_accuracy
from refimpl.evaluation import baselines as bl
from refimpl.evaluation.diagnostics import feature_diagnostics
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


def benchmark(theta, config, dataset, *, seeds=range(10), k_shot: int = 10, k_query: int = 10,
              n_trials: int = 10, inner_steps=(0, 50, 100, 200), n_way=None, hidden=None,
              baselines=ALL_BASELINES, vae_steps: int = 2000, supervised_steps: int = 300,
              pool_size: int = 2000, dtype=np.float32, progress: bool = True) -> dict:
    """Run every method on ``dataset`` for each seed; return ``{"per_seed": ..., "summary": ...}``.

    ``config`` is the rule's config; the base model has layer sizes
    ``[n_features, *hidden, N^L]`` (``hidden`` default: the config's hidden
    widths). ``theta=None`` evaluates only phi_0 and the baselines.
    """
    from refimpl.rule.update_step import update_step

    hidden = tuple(config.layer_sizes[1:-1]) if hidden is None else tuple(hidden)
    cfg = config.replace(layer_sizes=(dataset.n_features, *hidden, config.layer_sizes[-1]))
    steps = sorted({0, *(int(s) for s in inner_steps)}) if theta is not None else [0]
    if theta is not None:
        theta = {k: np.asarray(v, dtype=dtype) for k, v in theta.items()}
    per_seed = []
    for seed in seeds:
        t0 = time.perf_counter()
        task_rng = np.random.default_rng([seed, 0])
        task = dataset if n_way is None else dataset.sample_classes(task_rng, n_way)
        task = task.permuted(task.random_permutation(task_rng))
        n_cls = task.n_classes
        phi = init_phi(cfg, task_rng, dtype)
        trials = _trials(task, np.random.default_rng([seed, 2]), k_shot, k_query, n_trials, dtype)
        record = {"seed": int(seed), "acc": {}, "diag": {}, "diverged": []}
        batch_rng = np.random.default_rng([seed, 3])
        done = 0
        for s in steps:
            while theta is not None and done < s:
                phi = update_step(theta, phi, task.unlabeled_batch(batch_rng, cfg.batch_size, dtype=dtype), cfg)
                done += 1
            if not all(np.isfinite(v).all() for v in phi.values()):
                record["diverged"] = [f"rule@{t}" for t in steps if t >= s]   # this and every later checkpoint
                break
            acc, diag = _score(bl.init_features(phi, cfg), trials, n_cls, cfg.ridge)
            record["acc"][f"rule@{s}"], record["diag"][f"rule@{s}"] = acc, diag
        base_rng = np.random.default_rng([seed, 4])
        pool = None
        for name in baselines:
            if name == "raw":
                transform = bl.raw_features()
            elif name == "ink":
                transform = bl.ink_features_fn()
            elif name in ("pca", "vae"):
                if pool is None:
                    pool = _unlabeled_pool(task, base_rng, pool_size, np.float64)
                if name == "pca":
                    transform = bl.pca_features(pool, cfg.layer_sizes[-1], seed=int(seed))
                else:
                    transform = bl.train_vae(pool, hidden, cfg.layer_sizes[-1], base_rng,
                                             n_steps=vae_steps).transform
            elif name == "supervised":
                accs = []
                for xs, ys, xq, yq in trials:
                    fit = bl.train_supervised(xs, np.argmax(ys, axis=1), cfg.layer_sizes, n_cls, base_rng,
                                              n_steps=supervised_steps)
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
    return {"per_seed": per_seed, "summary": summarize(per_seed), "layer_sizes": list(cfg.layer_sizes),
            "k_shot": k_shot, "k_query": k_query, "n_trials": n_trials, "dataset": dataset.name,
            "n_classes": (dataset.n_classes if n_way is None else n_way)}


def _se(v):
    return float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def summarize(per_seed) -> list[dict]:
    """One row per method: mean and standard error of accuracy over seeds; the paired difference
    to ``rule@0`` (phi_0): mean, standard error, seeds better; mean effective rank and
    mean |correlation|; seeds that finished and that diverged."""
    methods = list(dict.fromkeys(m for r in per_seed for m in [*r["acc"], *r.get("diverged", [])]))
    methods = sorted((m for m in methods if m.startswith("rule@")), key=lambda m: int(m.split("@")[1])) + \
        [m for m in methods if not m.startswith("rule@")]
    rows = []
    for m in methods:
        have = [r for r in per_seed if m in r["acc"] and "rule@0" in r["acc"]]
        acc = np.array([r["acc"][m] for r in have])
        delta = acc - np.array([r["acc"]["rule@0"] for r in have])
        rows.append({
            "method": m, "n": len(have), "diverged": sum(m in r.get("diverged", []) or
                                                         (m.startswith("rule@") and m not in r["acc"])
                                                         for r in per_seed),
            "acc": _nanmean(acc), "acc_se": _se(acc),
            "delta": _nanmean(delta), "delta_se": _se(delta), "better": int(np.sum(delta > 0)),
            "effective_rank": _nanmean([r["diag"][m]["effective_rank"] for r in have]),
            "mean_abs_corr": _nanmean([r["diag"][m]["mean_abs_corr"] for r in have]),
            "zero_rows": _nanmean([r["diag"][m]["zero_rows"] for r in have]),
        })
    return rows
