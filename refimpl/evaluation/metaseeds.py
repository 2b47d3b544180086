"""One recipe, several meta-training seeds: the spread between runs beside the evaluation seeds' error.

A recipe is meta-trained once per meta-training seed; each resulting theta is
evaluated by :func:`refimpl.evaluation.benchmark.benchmark` on the same
evaluation seeds (the same tasks, phi_0 and labeled trials). For each method
this module gives, over the R meta-training seeds:

- the mean over meta-seeds of the method's mean accuracy, and of its paired
  gain over phi_0 (``rule@0``), each per meta-seed over the E evaluation seeds;
- the spread between meta-seeds: the standard deviation (ddof 1), the
  smallest and the largest of the R values;
- the evaluation error beside it: the mean over meta-seeds of the paired
  gain's standard error over evaluation seeds;
- how many meta-seeds' gains are above a bar (``min_gain``): the claim "every
  seed of the recipe beats phi_0 by at least 20 points" is ``above == R``.

Methods that do not depend on theta (phi_0, the baselines) come out with a
spread of 0, which checks that the evaluations were paired.
"""
from __future__ import annotations

import math

import numpy as np

from refimpl.evaluation.benchmark import paired_difference, same_trials, sample_std


def across_meta_seeds(results: dict, min_gain: float = 0.0) -> list[dict]:
    """One row per method measured in every result: the mean and spread over meta-training seeds.

    Parameters
    ----------
    results : dict[str, dict]
        A benchmark result (``per_seed`` records) per meta-training seed, keyed by a label
        (e.g. ``"seed 0"``), all on the same dataset and evaluation seeds.
    min_gain : float
        The bar for ``above``: a meta-seed counts when its paired gain over phi_0 is at least this.

    Returns
    -------
    list of dict
        ``method``, ``meta_seeds`` (R), ``eval_seeds`` (E of the first result), ``acc`` and
        ``gain`` (means over meta-seeds), ``gain_std``, ``gain_min``, ``gain_max`` (the spread
        over meta-seeds), ``gain_eval_se`` (the mean over meta-seeds of the evaluation seeds'
        standard error), ``gains`` (per meta-seed, in the order of ``results``) and ``above``.
    """
    if not results:
        raise ValueError("across_meta_seeds: no results")
    evals = [sorted(r["seed"] for r in res["per_seed"]) for res in results.values()]
    if any(e != evals[0] for e in evals):
        raise ValueError("across_meta_seeds: the results are not on the same evaluation seeds")
    first_label, first = next(iter(results.items()))
    by_seed = {rec["seed"]: rec for rec in first["per_seed"]}
    for label, res in results.items():
        for rec in res["per_seed"]:
            if not same_trials(rec, by_seed[rec["seed"]], key="rule@0"):
                raise ValueError(f"across_meta_seeds: {label}'s phi_0 differs from {first_label}'s on evaluation "
                                 f"seed {rec['seed']} (not the same tasks)")
    methods = [m for m in dict.fromkeys(m for rec in next(iter(results.values()))["per_seed"] for m in rec["acc"])
               if all(all(m in rec["acc"] for rec in res["per_seed"]) for res in results.values())]
    rows = []
    for m in methods:
        acc = [float(np.mean([rec["acc"][m] for rec in res["per_seed"]])) for res in results.values()]
        paired = [paired_difference(res["per_seed"], m) for res in results.values()]
        gains = [p["delta"] for p in paired]
        rows.append({"method": m, "meta_seeds": len(results), "eval_seeds": len(evals[0]),
                     "acc": float(np.mean(acc)), "gain": float(np.mean(gains)), "gain_std": sample_std(gains),
                     "gain_min": float(min(gains)), "gain_max": float(max(gains)),
                     "gain_eval_se": float(np.mean([p["delta_se"] for p in paired])),
                     "gains": gains, "above": int(sum(g >= min_gain for g in gains))})
    return rows


def at_steps(result: dict, steps: int) -> dict:
    """A copy of a benchmark result whose rule and random-theta rows at ``steps`` inner steps are named
    ``rule`` and ``random``, the other rule and random rows dropped.

    Each meta-training seed's theta is used at its own recommended inner steps (chosen on held-out
    glyph tasks, so they may differ between seeds); renamed, the rows of several seeds line up in
    :func:`across_meta_seeds`. phi_0 (``rule@0``) keeps its name.
    """
    def rename(acc):
        if f"rule@{steps}" not in acc:
            raise ValueError(f"at_steps: no rule@{steps} row (rows: {', '.join(acc)})")
        out = {}
        for m, v in acc.items():
            if m == "rule@0" or not m.startswith(("rule@", "random@")):
                out[m] = v
            elif m in (f"rule@{steps}", f"random@{steps}"):
                out[m.split("@")[0]] = v
        return out
    recs = [{**rec, "acc": rename(rec["acc"]), **({"diag": rename(rec["diag"])} if "diag" in rec else {})}
            for rec in result["per_seed"]]
    return {**result, "per_seed": recs}


def format_meta_seeds(rows, min_gain: float = 0.0) -> str:
    """The rows of :func:`across_meta_seeds` as a Markdown table."""
    lines = ["| method | accuracy | gain vs phi_0 | spread over meta-seeds (sd; min to max) | eval se "
             f"| meta-seeds with gain >= {min_gain:+.2f} |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        sd = "nan" if math.isnan(r["gain_std"]) else f"{r['gain_std']:.3f}"
        lines.append(f"| {r['method']} | {r['acc']:.3f} | {r['gain']:+.3f} | {sd}; {r['gain_min']:+.3f} to "
                     f"{r['gain_max']:+.3f} | {r['gain_eval_se']:.3f} | {r['above']}/{r['meta_seeds']} |")
    return "\n".join(lines)
