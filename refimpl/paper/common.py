"""What every paper experiment shares: the rule and its random-theta control, paired statistics, output files.

- :func:`rule_and_control`: the rule under test (a shipped name, a theta
  ``.npz`` or ``random``, resolved by :func:`refimpl.evaluation.suite.resolve_rule`)
  and the control, a SPEC 9 ``init_theta`` of the rule's config drawn with
  :data:`CONTROL_SEED` (never the rule's own theta: ``random`` uses seed
  ``RANDOM_RULE_SEED``).
- :func:`paired`: mean, standard error and count of per-seed differences
  (the same base model phi_0 and the same labeled trials on both sides).
- :func:`run_benchmark`: :func:`refimpl.evaluation.benchmark.benchmark` for the
  rule and the control on the same seeds, so every rule, control and phi_0
  number of one cell is paired.
- :func:`write_outputs`: ``NAME.json``, ``NAME.md`` and ``NAME.png`` in the
  output directory, each written atomically.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from refimpl.npzio import atomic_write_bytes

#: The seed of the random-theta control (``init_theta`` of the rule's config).
CONTROL_SEED = 20190
#: A difference is called significant when it exceeds this many standard errors.
SIGNIFICANCE_SE = 2.0


class Rule(NamedTuple):
    name: str        # what was asked for: a shipped name, a path, "random", "control"
    label: str       # one line saying what theta is
    theta: dict
    config: object   # refimpl.config.Config
    info: dict


def _same_theta(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def control_rule(rule: Rule) -> Rule:
    """The random-theta control of ``rule``: ``init_theta(rule.config, default_rng(seed))`` with the
    first seed from :data:`CONTROL_SEED` on whose theta differs from the rule's."""
    from refimpl.params import init_theta

    seed = CONTROL_SEED
    while True:
        theta = init_theta(rule.config, np.random.default_rng(seed), np.float32)
        if not _same_theta(theta, rule.theta):
            return Rule("control", f"random-theta control (SPEC 9 init_theta, seed {seed})", theta,
                        rule.config, {"seed": seed})
        seed += 1


def rule_and_control(rule) -> tuple[Rule, Rule]:
    """``(rule, control)``: ``rule`` resolved (shipped name, theta file, ``random``) and its control."""
    from refimpl.evaluation.suite import resolve_rule

    theta, config, label, info = resolve_rule(rule)
    theta = {k: np.asarray(v, np.float32) for k, v in theta.items()}
    resolved = Rule(str(rule), label, theta, config, dict(info))
    return resolved, control_rule(resolved)


def reporting_steps(rule: Rule, default: int = 100) -> int:
    """The inner-step count the rule is reported at: its ``recommended_inner_steps`` (chosen on
    meta-training data) or ``default``."""
    return int(rule.info.get("recommended_inner_steps", default))


# ---------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------
def se(values) -> float:
    v = np.asarray(values, dtype=np.float64)
    return float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else float("nan")


def mean_se(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()) if v.size else float("nan"), "se": se(v), "n": int(v.size)}


def paired(a, b) -> dict:
    """Mean, standard error and n of ``a - b`` (per-seed values, same seeds)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return {**mean_se(d), "better": int(np.sum(d > 0))}


def significant(stat: dict, sign: int = 1) -> bool:
    """``stat`` (a :func:`paired` result) is above zero (``sign=1``) or below it (``-1``) by more than
    :data:`SIGNIFICANCE_SE` standard errors."""
    m, s = stat["mean"], stat["se"]
    if not (isinstance(m, float) and math.isfinite(m)) or not math.isfinite(s):
        return False
    return sign * m > SIGNIFICANCE_SE * s


def fmt(stat, digits: int = 3, signed: bool = False) -> str:
    """``mean ± se`` of a :func:`mean_se` / :func:`paired` dict (``n/a`` when missing)."""
    if stat is None or not math.isfinite(stat.get("mean", float("nan"))):
        return "n/a"
    spec = f"{'+' if signed else ''}.{digits}f"
    s = stat.get("se", float("nan"))
    return f"{format(stat['mean'], spec)} ± {format(s, f'.{digits}f')}" if math.isfinite(s) else \
        format(stat["mean"], spec)


# ---------------------------------------------------------------------------------
# running the evaluation engine for the rule and the control
# ---------------------------------------------------------------------------------
def per_seed_acc(result: dict, method: str) -> dict:
    """``{seed: accuracy}`` of ``method`` in a benchmark result (seeds where it diverged are absent)."""
    return {r["seed"]: r["acc"][method] for r in result["per_seed"] if method in r["acc"]}


def per_seed_diag(result: dict, method: str, key: str = "effective_rank") -> dict:
    return {r["seed"]: r["diag"][method][key] for r in result["per_seed"] if method in r["diag"]}


def compare(a: dict, b: dict) -> dict:
    """:func:`paired` over the seeds both ``{seed: value}`` maps have."""
    seeds = sorted(set(a) & set(b))
    return paired([a[s] for s in seeds], [b[s] for s in seeds])


def run_benchmark(rules, dataset, *, seeds, inner_steps, baselines=(), config=None, **kwargs) -> dict:
    """:func:`refimpl.evaluation.benchmark.benchmark` for each rule in ``rules`` on the same seeds.

    ``config``: the base model's config (default: the rule's). ``inner_steps``:
    the checkpoints, or ``{rule name: checkpoints}``. The first rule also runs
    ``baselines``. Returns ``{rule.name: result}``; every result
    shares phi_0 (``rule@0``) and the labeled trials seed by seed.
    """
    from refimpl.evaluation.benchmark import benchmark

    out = {}
    for i, rule in enumerate(rules):
        out[rule.name] = benchmark(rule.theta, config or rule.config, dataset, seeds=list(seeds),
                                   inner_steps=inner_steps[rule.name] if isinstance(inner_steps, dict)
                                   else inner_steps, baselines=baselines if i == 0 else (),
                                   progress=False, **kwargs)
    return out


def step_table(results: dict, rule: Rule, control: Rule, steps) -> list[dict]:
    """One row per inner-step count: rule, control and phi_0 accuracies with paired differences and the
    effective ranks of the rule's and the control's top features."""
    r_res, c_res = results[rule.name], results[control.name]
    phi0 = per_seed_acc(r_res, "rule@0")
    rows = []
    for s in steps:
        ra, ca = per_seed_acc(r_res, f"rule@{s}"), per_seed_acc(c_res, f"rule@{s}")
        rows.append({
            "step": int(s), "phi_0": mean_se(list(phi0.values())),
            "control_run": any(f"rule@{s}" in r["acc"] or f"rule@{s}" in r["diverged"] for r in c_res["per_seed"]),
            "rule": mean_se(list(ra.values())), "control": mean_se(list(ca.values())),
            "rule_vs_phi_0": compare(ra, phi0), "control_vs_phi_0": compare(ca, phi0),
            "rule_vs_control": compare(ra, ca),
            "rule_rank": mean_se(list(per_seed_diag(r_res, f"rule@{s}").values())),
            "control_rank": mean_se(list(per_seed_diag(c_res, f"rule@{s}").values())),
            "rule_diverged": sum(f"rule@{s}" in r["diverged"] for r in r_res["per_seed"]),
            "control_diverged": sum(f"rule@{s}" in r["diverged"] for r in c_res["per_seed"]),
        })
    return rows


# ---------------------------------------------------------------------------------
# output
# ---------------------------------------------------------------------------------
class Progress:
    """Progress lines on stderr, ``paper EXPERIMENT: message [elapsed s]`` (silent when disabled)."""

    def __init__(self, experiment: str, enabled: bool = True):
        self.experiment, self.enabled = experiment, enabled
        self.t0, self.c0 = time.perf_counter(), time.process_time()

    def __call__(self, message: str) -> None:
        if self.enabled:
            print(f"paper {self.experiment}: {message} [{time.perf_counter() - self.t0:.0f} s]",
                  file=sys.stderr, flush=True)

    @property
    def seconds(self) -> float:
        """Wall-clock seconds since the start."""
        return round(time.perf_counter() - self.t0, 1)

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds of this process since the start (what a budget on a shared machine is counted in)."""
        return round(time.process_time() - self.c0, 1)


def header(report: dict) -> list[str]:
    """The Markdown lines every table starts with: rule, control, seeds, what ± means, run time."""
    s = report["settings"]
    return [f"# {report['experiment']}: {report['title']}", "",
            f"- rule: {report['rule']}", f"- control: {report['control']}",
            f"- seeds: {s.get('seeds')}; labeled trials per seed: {s.get('n_trials', 'n/a')}; "
            f"{s.get('k_shot', 'n/a')} shots per class, {s.get('k_query', 'n/a')} query examples per class",
            "- ± is one standard error over seeds; differences (\"vs\") are paired per seed "
            "(same phi_0, same input permutation, same labeled trials)",
            f"- budget: {report['budget']}; measured: {report['cpu_seconds']:.0f} s of CPU, "
            f"{report['seconds']:.0f} s wall-clock"
            + (" (quick mode)" if report.get("quick") else ""), ""]


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_outputs(report: dict, markdown: str, figure, out_dir) -> dict:
    """Write ``<experiment>.json``, ``.md`` and ``.png`` to ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    stem = report["experiment"]
    paths = {"json": out_dir / f"{stem}.json", "md": out_dir / f"{stem}.md", "png": out_dir / f"{stem}.png"}
    text = json.dumps(report, indent=1, default=_json_default, allow_nan=True) + "\n"
    atomic_write_bytes(paths["json"], lambda f: f.write(text.encode()))
    atomic_write_bytes(paths["md"], lambda f: f.write(markdown.encode()))
    atomic_write_bytes(paths["png"], lambda f: figure.savefig(f, format="png", dpi=90))
    return {k: str(p) for k, p in paths.items()}


def finish_report(experiment: str, title: str, rule, control, quick: bool, budget, log, out_dir,
                  markdown_fn, figure_fn, **body) -> dict:
    """The report every experiment returns: its name, title, rule and control, budget and times, then
    ``body`` (settings and results); written as JSON, Markdown and PNG when ``out_dir`` is given."""
    report = {"experiment": experiment, "title": title, "rule": rule.label, "rule_name": rule.name,
              "control": control.label, "quick": quick, "budget": budget, "seconds": log.seconds,
              "cpu_seconds": log.cpu_seconds, **body}
    log("done")
    if out_dir is not None:
        report["paths"] = write_outputs(report, markdown_fn(report), figure_fn(report), out_dir)
    return report


def new_figure(width: float, height: float, rows: int = 1, cols: int = 1, **kw):
    """A matplotlib Figure on an Agg canvas (no pyplot) and its axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, squeeze=False, **kw)


def step_axis(ax, steps) -> None:
    """Inner steps on a symmetric-log axis (0 is phi_0) when there are 4 or more, linear otherwise."""
    steps = sorted(steps)
    if len(steps) >= 4:
        ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(steps)
    ax.set_xticklabels([str(s) for s in steps], fontsize=7)
    ax.set_xlabel("inner steps")


def errorbar(ax, xs, stats, label, **kw):
    ys = [s["mean"] for s in stats]
    es = [s["se"] if math.isfinite(s["se"]) else 0.0 for s in stats]
    ax.errorbar(xs, ys, yerr=es, label=label, capsize=2, marker="o", markersize=3, **kw)
