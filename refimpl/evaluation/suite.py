"""A rule against every baseline on several datasets, paired over seeds (``refimpl eval``, refimpl/cli/evaluate.py).

    from refimpl.evaluation.suite import evaluate_rule
    report = evaluate_rule("small-glyphs-rotation", datasets=("digits", "moons"), inner_steps=(0, 100, 300),
                           seeds=10, out_dir="runs/eval")

For each dataset, :func:`refimpl.evaluation.benchmark.benchmark` runs the rule
from fresh random base models phi_0 (one task per seed) and every baseline
on the same labeled trials, so every difference to phi_0 is paired; each
row carries the diagnostics of its features (effective rank, mean |corr|,
zero rows). The one-feature ink baseline is always measured, and every table
ends with the collapse line (:mod:`refimpl.evaluation.reporting`). Seeds on
which phi became non-finite are counted in the ``diverged`` column.

The rule is a shipped name (:func:`refimpl.pretrained.list_rules`), a theta
``.npz`` file, or ``random`` (``init_theta`` of the ``small`` preset, seed
12345). Every table of a learned rule also carries the ``random@<s>`` rows:
``init_theta`` of the rule's own config (seed 12345) applied from the same
phi_0 on the same batches. Datasets with more classes than ``n_way`` are
evaluated on ``n_way`` random classes per seed (glyphs); for glyphs the
labeled trials come from the font families held out of meta-training, support
and query from different fonts. ``arch``: ``"rule"`` (the rule's hidden widths
and N^L) or ``"paper"`` (:data:`PAPER_ARCH`: 4 hidden layers of 128, a top
layer of 32).
"""
from __future__ import annotations

import sys

import numpy as np

from refimpl.evaluation.benchmark import ALL_BASELINES, benchmark
from refimpl.runtime import blas_single_thread, check_run_dir

#: The seed of the ``random`` rule's theta.
RANDOM_RULE_SEED = 12345
DEFAULT_INNER_STEPS = (0, 100, 300, 1000)
#: Base nets of the evaluation: (hidden widths, top width); None = the rule's own.
ARCHS = {"rule": None, "paper": ((128, 128, 128, 128), 32)}
PAPER_ARCH = ARCHS["paper"]


def random_theta_of(config):
    """The random-theta control of a rule with ``config``: SPEC 9 ``init_theta``, seed RANDOM_RULE_SEED."""
    from refimpl.params import init_theta

    return init_theta(config, np.random.default_rng(RANDOM_RULE_SEED), np.float32)


def resolve_rule(rule):
    """``(theta, config, label, info)`` of ``rule``: a shipped name, a theta ``.npz`` path, ``random``
    (``init_theta`` of the ``small`` preset) or an already loaded ``(theta, config)`` pair."""
    from refimpl.params import init_theta
    from refimpl.pretrained import load_rule

    if isinstance(rule, tuple):
        theta, config = rule
        return theta, config, "given theta", {}
    if rule == "random":
        from refimpl.train.presets import train_preset

        config = train_preset("small").model
        theta = init_theta(config, np.random.default_rng(RANDOM_RULE_SEED), np.float32)
        return theta, config, f"random rule (init_theta, small preset, seed {RANDOM_RULE_SEED})", {}
    theta, config, info = load_rule(rule)
    return theta, config, str(rule), info


def check_arguments(datasets, k_shot, inner_steps, seeds, baselines, n_way, n_trials) -> list:
    """Validate everything before any work; returns the Dataset objects. Raises ValueError (one line)."""
    from refimpl.data import get_dataset, list_datasets

    fn = "evaluate_rule"
    if isinstance(datasets, str) or not datasets:
        raise ValueError(f"{fn}: datasets must be a non-empty list of names, got {datasets!r}")
    unknown = [d for d in datasets if d not in list_datasets()]
    if unknown:
        raise ValueError(f"{fn}: unknown dataset {', '.join(map(str, unknown))} (known: {', '.join(list_datasets())})")
    for name, value, low in (("k_shot", k_shot, 1), ("seeds", seeds, 1), ("n_trials", n_trials, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{fn}: {name} must be an integer >= {low}, got {value!r}")
    if n_way is not None and (isinstance(n_way, bool) or not isinstance(n_way, (int, np.integer)) or n_way < 2):
        raise ValueError(f"{fn}: n_way must be an integer >= 2 or None, got {n_way!r}")
    if not inner_steps or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
                              for s in inner_steps):
        raise ValueError(f"{fn}: inner_steps must be a non-empty list of integers >= 0, got {inner_steps!r}")
    bad = [b for b in baselines if b not in ALL_BASELINES]
    if bad:
        raise ValueError(f"{fn}: unknown baseline {', '.join(map(str, bad))} (known: {', '.join(ALL_BASELINES)})")
    loaded = []
    for name in datasets:
        try:
            loaded.append(get_dataset(name))
        except FileNotFoundError as e:       # e.g. Fashion-MNIST without its Debian package
            raise ValueError(f"{fn}: dataset {name} is not installed: {' '.join(str(e).split())}") from None
    return loaded


def evaluate_rule(rule, datasets=("digits", "moons"), *, k_shot: int = 10, inner_steps=DEFAULT_INNER_STEPS,
                  seeds: int = 10, baselines=ALL_BASELINES, n_way: int | None = 10, n_trials: int = 10,
                  k_query: int = 10, vae_steps=None, supervised_steps=None, supervised_lr=None,
                  arch: str = "rule", random_row: bool = True,
                  out_dir=None, progress: bool = True, benchmark_fn=None) -> dict:
    """Evaluate a rule against every baseline on each dataset, as ``refimpl eval`` does.

    For each seed (a task), a fresh random base model phi_0 is built for the dataset, the rule is
    applied for each of ``inner_steps`` unsupervised steps on the dataset's unlabeled train split,
    and the top features [n, N^L] are read out by the SPEC 6 ridge readout on ``k_shot`` labeled
    examples per class. Every baseline is scored on the same labeled examples, and each method's
    accuracy is paired with phi_0's per seed. Runs with one BLAS thread.

    Parameters
    ----------
    rule : str, path-like or tuple
        A shipped rule's name (:func:`refimpl.list_rules`), the path of a theta ``.npz``,
        ``"random"`` (an untrained theta of the ``small`` preset: the random-theta control) or a
        loaded ``(theta, config)`` pair.
    datasets : sequence of str
        Names for :func:`refimpl.get_dataset`.
    k_shot : int
        Labeled examples per class for the readout.
    inner_steps : sequence of int
        The checkpoints (unsupervised steps) at which the rule's features are read out; 0
        (phi_0 itself) is always included.
    seeds : int
        The tasks 0..seeds-1: each has its own phi_0, class subset, input permutation and batches.
    baselines : sequence of str
        Any of ``"raw"``, ``"ink"``, ``"pca"``, ``"vae"``, ``"supervised"``; ``"ink"`` (the
        one-feature baseline) is always added.
    n_way : int or None
        K, the classes of each task (drawn at random per seed); None uses all the dataset's
        classes.
    n_trials : int
        Labeled draws per seed; the accuracy is their mean.
    k_query : int
        Query examples per class in each trial.
    vae_steps, supervised_steps, supervised_lr : int, int, float, optional
        Override the baselines' budgets: the VAE's step cap (it stops early when its loss on a
        validation part of the unlabeled data stops falling), the supervised baseline's Adam steps
        and learning rate (defaults: :data:`refimpl.evaluation.benchmark.VAE_DEFAULTS` and
        ``SUPERVISED_DEFAULTS``, chosen on held-out glyph tasks). The budgets used are in each
        dataset's result (``budgets``) and in the report's notes.
    arch : str
        The base net: ``"rule"`` (the rule's hidden widths and N^L) or ``"paper"`` (4 hidden layers
        of 128, a top layer of 32).
    random_row : bool
        Add the ``random@<s>`` rows: a random theta (SPEC 9 ``init_theta`` of the rule's config)
        applied from the same phi_0 on the same batches (not for the ``random`` rule itself).
    out_dir : str or path-like, optional
        If given, ``report.json``, ``report.md`` and two figures are written there.
    progress : bool
        Print a line per seed to stderr.
    benchmark_fn : callable, optional
        Replaces :func:`refimpl.evaluation.benchmark.benchmark` (tests).

    Returns
    -------
    dict
        ``{"rule", "config", "info", "settings", "notes", "datasets"}``; ``datasets`` maps each
        name to the :func:`~refimpl.evaluation.benchmark.benchmark` result of that dataset.

    Raises
    ------
    ValueError
        One line naming the bad argument, before any work: an unknown rule, dataset or baseline,
        a count out of range, or a dataset that is not installed.

    Examples
    --------
    >>> import refimpl
    >>> report = refimpl.evaluate_rule("small-glyphs-rotation", ["moons"], inner_steps=[0, 10],
    ...                                seeds=1, baselines=["raw"], n_trials=1, progress=False)
    >>> [row["method"] for row in report["datasets"]["moons"]["summary"]]
    ['rule@0', 'rule@10', 'random@10', 'raw', 'ink']
    """
    from refimpl.evaluation.reporting import write_report

    inner_steps = tuple(inner_steps)
    baselines = tuple(dict.fromkeys(list(baselines) + ["ink"]))
    loaded = check_arguments(datasets, k_shot, inner_steps, seeds, baselines, n_way, n_trials)
    if arch not in ARCHS:
        raise ValueError(f"evaluate_rule: unknown arch {arch!r} (known: {', '.join(ARCHS)})")
    theta, config, label, info = resolve_rule(rule)
    hidden, top = ARCHS[arch] if ARCHS[arch] is not None else (None, None)
    random_theta = random_theta_of(config) if (random_row and rule != "random") else None
    if out_dir is not None:
        out_dir = check_run_dir(out_dir, create=True)

    run = benchmark if benchmark_fn is None else benchmark_fn
    results = {}
    with blas_single_thread():      # small matrices (benchmarks/RESULTS.md, "One BLAS thread for meta-training ...")
        for name, ds in zip(datasets, loaded):
            way = n_way if (n_way is not None and ds.n_classes > n_way) else None
            if progress:
                print(f"eval: {label} on {name}, {way or ds.n_classes}-way {k_shot}-shot, {seeds} seeds, "
                      f"inner steps {list(inner_steps)}", file=sys.stderr, flush=True)
            extra = {} if random_theta is None else {"random_theta": random_theta}
            if hidden is not None:
                extra.update(hidden=hidden, top=top)
            if supervised_lr is not None:
                extra["supervised_lr"] = supervised_lr
            results[name] = run(theta, config, ds, seeds=range(seeds), k_shot=k_shot, k_query=k_query,
                                n_trials=n_trials, inner_steps=inner_steps, n_way=way, baselines=baselines,
                                vae_steps=vae_steps, supervised_steps=supervised_steps, progress=progress,
                                **extra)
    budgets = next((r.get("budgets") for r in results.values() if r.get("budgets")), {}) or {}
    vae_b, sup_b = budgets.get("vae"), budgets.get("supervised")
    notes = [f"rule: {label}" + (f", recommended inner steps {info['recommended_inner_steps']}"
                                 if "recommended_inner_steps" in info else ""),
             f"baselines: {', '.join(baselines)}"
             + (f" (VAE {vae_b['hidden']} latent {vae_b['latent']}, Adam {vae_b['lr']:g}, early stopping on a "
                f"{vae_b['valid_fraction']:g} validation part every {vae_b['eval_every']} steps, patience "
                f"{vae_b['patience']}, cap {vae_b['max_steps']} steps)" if vae_b else "")
             + (f" (supervised: {sup_b['steps']} Adam steps at lr {sup_b['lr']:g} on each trial's support set)"
                if sup_b else ""),
             f"base net: {arch}" + ("" if hidden is None else f" (hidden {list(hidden)}, top {top})"),
             *(["random@s: a random theta (SPEC 9 init_theta of the rule's config, seed "
                f"{RANDOM_RULE_SEED}) applied s inner steps from the same phi_0 on the same batches"]
               if random_theta is not None else []),
             "rule@s: theta applied s inner steps to phi_0 on unlabeled train-split batches; rule@0 is phi_0; "
             "differences are paired per seed (same task, phi_0 and labeled trials); ± is one standard error "
             "over seeds"]
    report = {"rule": label, "config": config.to_dict(), "info": info, "notes": notes,
              "settings": {"k_shot": k_shot, "k_query": k_query, "inner_steps": list(inner_steps), "seeds": seeds,
                           "n_way": n_way, "n_trials": n_trials, "baselines": list(baselines),
                           "vae_steps": vae_steps, "supervised_steps": supervised_steps,
                           "supervised_lr": supervised_lr, "arch": arch, "random_row": random_theta is not None},
              "datasets": results}
    if out_dir is not None:
        report["paths"] = {k: str(p) for k, p in write_report(report, out_dir).items()}
    return report
