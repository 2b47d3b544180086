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

import functools
import json
import sys
from pathlib import Path

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


#: Classes per task on datasets with more classes (glyphs); any other n_way must fit some dataset.
DEFAULT_N_WAY = 10
#: The largest inner-step checkpoint accepted (the shipped rule recommends 45; the paper's curves end at 1e4).
MAX_INNER_STEPS = 100_000


def _check_theta_config(rule) -> tuple:
    """A ``(theta, config)`` pair, checked: a Config, and a theta of that config's shapes (one line otherwise)."""
    from refimpl.config import Config
    from refimpl.params import validate_theta

    fn = "evaluate_rule"
    if len(rule) != 2:
        raise ValueError(f"{fn}: a rule given as a tuple must be (theta, config), got a tuple of {len(rule)}")
    theta, config = rule
    if not isinstance(config, Config):
        raise ValueError(f"{fn}: a rule given as (theta, config) needs a refimpl.Config second "
                         f"(e.g. refimpl.preset('small')), got {type(config).__name__}")
    if not isinstance(theta, dict):
        raise ValueError(f"{fn}: a rule given as (theta, config) needs theta as a dict of arrays "
                         f"(refimpl.init_theta or refimpl.load), got {type(theta).__name__}")
    validate_theta(theta, config, fn=fn)
    return theta, config


def resolve_rule(rule):
    """``(theta, config, label, info)`` of ``rule``: a shipped name, a theta ``.npz`` path, ``random``
    (``init_theta`` of the ``small`` preset) or a ``(theta, config)`` pair (checked: one line on a bad one)."""
    from refimpl.params import init_theta
    from refimpl.pretrained import load_rule

    if isinstance(rule, tuple):
        theta, config = _check_theta_config(rule)
        return theta, config, "given theta", {}
    if not isinstance(rule, (str, Path)):
        raise ValueError(f"evaluate_rule: rule must be a shipped rule name, a theta .npz path, 'random' or a "
                         f"(theta, config) tuple, got {type(rule).__name__}")
    if rule == "random":
        from refimpl.config import preset

        config = preset("small")
        theta = init_theta(config, np.random.default_rng(RANDOM_RULE_SEED), np.float32)
        return theta, config, f"random rule (init_theta, small preset, seed {RANDOM_RULE_SEED})", {}
    theta, config, info = load_rule(rule)
    return theta, config, str(rule), info


def dataset_label(dataset) -> str:
    """The name a dataset goes by in a report: its registry name, its .npz path, or a Dataset's ``name``."""
    from refimpl.data import Dataset

    return dataset.name if isinstance(dataset, Dataset) else str(dataset)


def check_arguments(datasets, k_shot, inner_steps, seeds, baselines, n_way, n_trials, k_query: int = 10) -> list:
    """Validate everything before any work; returns the Dataset objects. Raises ValueError (one line).

    ``datasets``: names (built in, registered, dataset ``.npz`` paths) or
    :class:`~refimpl.data.Dataset` objects, each at most once."""
    from refimpl.data import Dataset, get_dataset, is_dataset_name, list_datasets

    fn = "evaluate_rule"
    if isinstance(datasets, (str, Dataset)) or not datasets:
        raise ValueError(f"{fn}: datasets must be a non-empty list of names or Datasets, got {datasets!r}")
    datasets = list(datasets)
    unknown = [d for d in datasets if not (isinstance(d, Dataset) or is_dataset_name(str(d)))]
    if unknown:
        raise ValueError(f"{fn}: unknown dataset {', '.join(map(str, unknown))} (known: {', '.join(list_datasets())}, "
                         f"or the path of a dataset .npz)")
    labels = [dataset_label(d) for d in datasets]
    repeated = sorted({n for n in labels if labels.count(n) > 1})
    if repeated:
        raise ValueError(f"{fn}: dataset {', '.join(repeated)} is given more than once")
    for name, value, low in (("k_shot", k_shot, 1), ("seeds", seeds, 1), ("n_trials", n_trials, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{fn}: {name} must be an integer >= {low}, got {value!r}")
    if n_way is not None and (isinstance(n_way, bool) or not isinstance(n_way, (int, np.integer)) or n_way < 2):
        raise ValueError(f"{fn}: n_way must be an integer >= 2 or None, got {n_way!r}")
    if not inner_steps or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0
                              for s in inner_steps):
        raise ValueError(f"{fn}: inner_steps must be a non-empty list of integers >= 0, got {inner_steps!r}")
    if max(inner_steps) > MAX_INNER_STEPS:
        raise ValueError(f"{fn}: inner_steps must be at most {MAX_INNER_STEPS}, got {max(inner_steps)}")
    bad = [b for b in baselines if b not in ALL_BASELINES]
    if bad:
        raise ValueError(f"{fn}: unknown baseline {', '.join(map(str, bad))} (known: {', '.join(ALL_BASELINES)})")
    loaded = []
    for name in datasets:
        try:
            loaded.append(get_dataset(name))
        except FileNotFoundError as e:       # e.g. Fashion-MNIST without its Debian package
            raise ValueError(f"{fn}: dataset {name} is not installed: {' '.join(str(e).split())}") from None
    if n_way is not None and n_way != DEFAULT_N_WAY and n_way > max(ds.n_classes for ds in loaded):
        sizes = ", ".join(f"{label} {ds.n_classes}" for label, ds in zip(labels, loaded))
        raise ValueError(f"{fn}: n_way {n_way} is more classes than any dataset has ({sizes}); n_way applies to "
                         f"datasets with more classes than it (the default {DEFAULT_N_WAY} to those with more than "
                         f"{DEFAULT_N_WAY})")
    for label, ds in zip(labels, loaded):
        counts = ds.class_counts("test")
        if not ds.augmented and counts.min() < k_shot + k_query:
            c = int(np.argmin(counts))
            raise ValueError(f"{fn}: dataset {label} has {counts[c]} test examples of class {ds.class_names[c]!r}; "
                             f"each trial draws k_shot + k_query = {k_shot} + {k_query} per class")
    return loaded


def _method_started(on_method, bar, name, seeds, seed, method, position, total) -> None:
    """A method of ``name``'s seed ``seed`` starts: the caller's ``on_method``, and the status beside the bar."""
    if on_method is not None:
        on_method(name, seed, method, position, total)
    if bar is not None:
        bar.status(f"{name} seed {seed} ({seed + 1} of {seeds}): {method} ({position} of {total} methods)")


def evaluate_rule(rule, datasets=("digits", "moons"), *, k_shot: int = 10, inner_steps=DEFAULT_INNER_STEPS,
                  seeds: int = 10, baselines=ALL_BASELINES, n_way: int | None = DEFAULT_N_WAY, n_trials: int = 10,
                  k_query: int = 10, vae_steps=None, supervised_steps=None, supervised_lr=None,
                  arch: str = "rule", random_row: bool = True,
                  out_dir=None, resume: bool = False, force: bool = False, progress: bool = True,
                  benchmark_fn=None, skipped=None, reduced_budget: bool = False, on_method=None) -> dict:
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
        ``(theta, config)`` pair: a rule variant of one's own, theta a dict of arrays with the
        SPEC 9 names and shapes of the :class:`refimpl.Config` (checked: one line otherwise).
    datasets : sequence of str or Dataset
        Each at most once: names for :func:`refimpl.get_dataset` (built in, registered with
        ``refimpl.data.register_dataset``, or dataset ``.npz`` paths) or
        :class:`refimpl.data.Dataset` objects (``refimpl.data.from_arrays``).
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
        If given, each finished (dataset, seed) is written there at once
        (``refimpl.evaluation.store``), and at the end ``report.json``, ``report.md`` and two
        figures. A directory holding a finished or an interrupted evaluation is refused unless
        ``force`` or ``resume``.
    resume : bool
        Continue the interrupted evaluation in ``out_dir`` (same arguments): the report is the
        uninterrupted run's.
    force : bool
        Replace what an earlier evaluation wrote in ``out_dir`` (its own files only).
    progress : bool
        Print a line per seed and progress lines (seeds done, rate, ETA) to stderr, and within a seed
        the method being computed (``eval: digits seed 0 (1 of 10): rule@100 (3 of 12 methods)``; on a
        terminal, beside the bar).
    on_method : callable, optional
        Called as ``on_method(dataset, seed, method, position, total)`` when a method of a seed
        starts (the ``on_method`` of :func:`~refimpl.evaluation.benchmark.benchmark`, with the
        dataset's name); seeds read back by ``resume`` are not computed, so not announced. It only
        observes: the report is the same without it.
    benchmark_fn : callable, optional
        Replaces :func:`refimpl.evaluation.benchmark.benchmark` (tests).
    skipped : dict, optional
        ``{dataset: reason}`` of datasets the caller left out, named in the report's notes.
    reduced_budget : bool
        Say in the notes and the plots' titles that the baselines' budgets are reduced.

    Returns
    -------
    dict
        ``{"rule", "config", "info", "settings", "notes", "skipped", "datasets"}``; ``datasets`` maps each
        name to the :func:`~refimpl.evaluation.benchmark.benchmark` result of that dataset.

    Raises
    ------
    ValueError
        One line naming the bad argument, before any work: an unknown rule, dataset or baseline,
        a count out of range, a dataset given twice, an ``n_way`` no dataset has, a dataset that
        is not installed or has too few test examples per class.

    Examples
    --------
    >>> import refimpl
    >>> report = refimpl.evaluate_rule("small-glyphs-rotation", ["moons"], inner_steps=[0, 10],
    ...                                seeds=1, baselines=["raw"], n_trials=1, progress=False)
    >>> [row["method"] for row in report["datasets"]["moons"]["summary"]]
    ['rule@0', 'rule@10', 'random@10', 'raw', 'ink']
    """
    from refimpl.evaluation.benchmark import summarize
    from refimpl.evaluation.reporting import write_report
    from refimpl.evaluation.store import EvalStore, theta_digest
    from refimpl.runtime import Progress

    inner_steps = tuple(inner_steps)
    baselines = tuple(dict.fromkeys(list(baselines) + ["ink"]))
    loaded = check_arguments(datasets, k_shot, inner_steps, seeds, baselines, n_way, n_trials, k_query)
    if arch not in ARCHS:
        raise ValueError(f"evaluate_rule: unknown arch {arch!r} (known: {', '.join(ARCHS)})")
    names = [dataset_label(d) for d in datasets]
    theta, config, label, info = resolve_rule(rule)
    hidden, top = ARCHS[arch] if ARCHS[arch] is not None else (None, None)
    random_theta = random_theta_of(config) if (random_row and not (isinstance(rule, str) and rule == "random")) \
        else None
    skipped = dict(skipped or {})
    settings = {"k_shot": k_shot, "k_query": k_query, "inner_steps": list(inner_steps), "seeds": seeds,
                "n_way": n_way, "n_trials": n_trials, "baselines": list(baselines),
                "vae_steps": vae_steps, "supervised_steps": supervised_steps, "supervised_lr": supervised_lr,
                "arch": arch, "random_row": random_theta is not None, "reduced_budget": bool(reduced_budget)}
    store = None
    if out_dir is not None:
        out_dir = check_run_dir(out_dir, create=True)
        manifest = {"rule": label, "theta": theta_digest(theta, config), "datasets": names, "settings": settings}
        store = EvalStore(out_dir, manifest, resume=resume, force=force)
    elif resume or force:
        raise ValueError("evaluate_rule: resume and force need an out_dir")

    run = benchmark if benchmark_fn is None else benchmark_fn
    results = {}
    bar = Progress(len(names) * seeds, desc="eval", unit="seeds") if progress else None
    where = ["before the first seed"]
    try:
        with blas_single_thread():   # small matrices (benchmarks/RESULTS.md, "One BLAS thread for meta-training ...")
            for index, (name, ds) in enumerate(zip(names, loaded)):
                way = n_way if (n_way is not None and ds.n_classes > n_way) else None
                extra = {} if random_theta is None else {"random_theta": random_theta}
                if hidden is not None:
                    extra.update(hidden=hidden, top=top)
                if supervised_lr is not None:
                    extra["supervised_lr"] = supervised_lr
                if progress:
                    bar.write(lambda text: print(text, file=sys.stderr, flush=True),
                              f"eval: {label} on {name}, {way or ds.n_classes}-way {k_shot}-shot, {seeds} seeds, "
                              f"inner steps {list(inner_steps)}")
                parts = []
                for seed in range(seeds):
                    part = None if store is None else store.load(index, seed)
                    if part is None:
                        where[0] = f"during {name} seed {seed} ({index * seeds + seed} of {len(names) * seeds} " \
                                   f"seeds done)"
                        hook = None if bar is None and on_method is None else \
                            functools.partial(_method_started, on_method, bar, name, seeds)
                        part = run(theta, config, ds, seeds=[seed], k_shot=k_shot, k_query=k_query,
                                   n_trials=n_trials, inner_steps=inner_steps, n_way=way, baselines=baselines,
                                   vae_steps=vae_steps, supervised_steps=supervised_steps, progress=progress,
                                   on_method=hook, **extra)
                        # as it reads back from the store, so a resumed report equals an uninterrupted one
                        part = json.loads(json.dumps(part, allow_nan=True))
                        if store is not None:
                            store.save(index, seed, part)
                    elif progress:
                        bar.write(lambda text: print(text, file=sys.stderr, flush=True),
                                  f"eval: {name} seed {seed}: resumed from {out_dir}")
                    parts.append(part)
                    if progress:
                        bar.update(1)
                per_seed = [r for part in parts for r in part["per_seed"]]
                results[name] = {**parts[-1], "per_seed": per_seed, "summary": summarize(per_seed)}
    except KeyboardInterrupt:
        kept = (f"; the finished seeds are kept in {store.partial}, continue with --resume (resume=True)"
                if store is not None else "")
        raise KeyboardInterrupt(f"{where[0]}{kept}") from None
    finally:
        if bar is not None:
            bar.close()
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
    if reduced_budget:
        notes.append(f"REDUCED baseline budgets (VAE {vae_steps} steps, supervised {supervised_steps} steps): "
                     f"these baselines are weaker than in a full evaluation")
    for name, why in skipped.items():
        notes.append(f"skipped dataset {name}: {why}")
    report = {"rule": label, "config": config.to_dict(), "info": info, "notes": notes,
              "settings": settings, "skipped": skipped, "datasets": results}
    if out_dir is not None:
        report["paths"] = {k: str(p) for k, p in write_report(report, out_dir).items()}
        store.remove_partial()
    return report
