"""Tables and plots of an evaluation: Markdown and JSON, and PNGs drawn on matplotlib's Agg canvas.

Every table carries the one-feature ink row when it was measured and ends
with a collapse line: a rule row whose top features' effective rank is below
:data:`COLLAPSE_RANK_FRACTION` of phi_0's is flagged ``COLLAPSED``; a table
without such a row says so. Diverged seeds are a column (never dropped
silently). Plots use a :class:`matplotlib.figure.Figure` with a
``FigureCanvasAgg`` (no pyplot, no backend switch, no display needed).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from refimpl.evaluation.benchmark import sample_std
from refimpl.npzio import atomic_write_bytes

#: A rule's features count as collapsed when their effective rank is below this fraction of phi_0's.
COLLAPSE_RANK_FRACTION = 0.5


def _fmt(v, spec):
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def collapsed_methods(rows) -> tuple[list, float | None]:
    """The rule rows whose effective rank is below COLLAPSE_RANK_FRACTION of phi_0's, and phi_0's rank."""
    rank0 = next((r["effective_rank"] for r in rows if r["method"] == "rule@0"), None)
    if not rank0:
        return [], rank0
    return [r["method"] for r in rows if r["method"].startswith("rule@")
            and r["effective_rank"] < COLLAPSE_RANK_FRACTION * rank0], rank0


def format_summary(rows) -> str:
    """The summary rows (:func:`refimpl.evaluation.benchmark.summarize`) as a Markdown table, with
    the collapse line under it."""
    head = ("| method | accuracy ± se | vs phi_0 (paired) ± se | better | eff. rank | mean abs corr "
            "| zero rows | n | diverged | |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    collapsed, rank0 = collapsed_methods(rows)
    for r in rows:
        flag = "COLLAPSED" if r["method"] in collapsed else ""
        lines.append(f"| {r['method']} | {_fmt(r['acc'], '.3f')} ± {_fmt(r['acc_se'], '.3f')} "
                     f"| {_fmt(r['delta'], '+.3f')} ± {_fmt(r['delta_se'], '.3f')} "
                     f"| {r['better']}/{r['n']} | {_fmt(r['effective_rank'], '.1f')} "
                     f"| {_fmt(r['mean_abs_corr'], '.2f')} | {_fmt(r['zero_rows'], '.2f')} | {r['n']} "
                     f"| {r['diverged']} | {flag} |")
    if collapsed:
        lines.append(f"\nWarning: {', '.join(collapsed)}: COLLAPSED, effective rank below "
                     f"{COLLAPSE_RANK_FRACTION:g} of phi_0's ({rank0:.1f}); compare with the ink row.")
    elif rank0:
        lines.append(f"\nCollapse check: every rule row keeps at least {COLLAPSE_RANK_FRACTION:g} of phi_0's "
                     f"effective rank ({rank0:.1f}).")
    return "\n".join(lines)


def format_report(report: dict) -> str:
    """The whole evaluation (:func:`refimpl.evaluation.suite.evaluate_rule`) as Markdown."""
    out = [f"# Evaluation of {report['rule']}", ""]
    for line in report.get("notes", []):
        out.append(f"- {line}")
    for name, res in report["datasets"].items():
        way = f"{res['n_classes']}-way " if res.get("n_classes") else ""
        out += ["", f"## {name}: {way}{res['k_shot']}-shot, {len(res['per_seed'])} seeds, "
                    f"{res['n_trials']} trials x {res['k_query']} queries/class, net {res['layer_sizes']}", "",
                format_summary(res["summary"])]
    return "\n".join(out) + "\n"


def _save(fig, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    atomic_write_bytes(path, lambda f: fig.savefig(f, format="png", dpi=110))


#: What every error bar of these plots is.
ERROR_BARS = "error bars: ± 1 standard error over seeds"


def _error_bars(report: dict) -> str:
    return "no error bars: one seed" if report.get("settings", {}).get("seeds") == 1 else ERROR_BARS


def _seeds(report: dict) -> str:
    n = report.get("settings", {}).get("seeds")
    return f", {n} seed{'' if n == 1 else 's'}" if n else ""


def _budget_title(report: dict) -> str:
    """A title line naming the baselines' budgets when they are reduced (``settings['reduced_budget']``)."""
    settings = report.get("settings", {})
    if not settings.get("reduced_budget"):
        return _seeds(report)
    return (f"{_seeds(report)}\nREDUCED baseline budgets: VAE {settings.get('vae_steps')} steps, "
            f"supervised {settings.get('supervised_steps')} steps (weaker than a full evaluation's)")


def plot_accuracy(report: dict, path) -> Path:
    """One panel per dataset: accuracy ± se of every method (rule rows and baselines) as bars."""
    from matplotlib.figure import Figure

    names = list(report["datasets"])
    fig = Figure(figsize=(max(5.0, 3.6 * len(names)), 3.8))
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        rows = report["datasets"][name]["summary"]
        collapsed, _ = collapsed_methods(rows)
        colors = ["tab:red" if r["method"] in collapsed else
                  ("tab:blue" if r["method"].startswith("rule@") else "tab:gray") for r in rows]
        ax.bar(range(len(rows)), [r["acc"] for r in rows],
               yerr=[0 if math.isnan(r["acc_se"]) else r["acc_se"] for r in rows], color=colors)
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([r["method"] for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_ylim(0, 1)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("few-shot accuracy")
    fig.suptitle(f"{report['rule']}{_budget_title(report)}\nblue: the rule (rule@0 = phi_0); gray: baselines; "
                 f"red: collapsed; {_error_bars(report)}", fontsize=8)
    fig.tight_layout()
    _save(fig, Path(path))
    return Path(path)


def plot_inner_steps(report: dict, path) -> Path:
    """Accuracy and effective rank of the rule's features against inner steps, per dataset (± 1 standard
    error over seeds), with the ink baseline as a dotted line. The step axis is logarithmic (step 0 drawn
    at 1) only with 4 or more checkpoints; the legend sits beside the axes, never over the data."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 3.9))
    ax_acc, ax_rank = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    n_points = max((sum(r["method"].startswith("rule@") for r in res["summary"])
                    for res in report["datasets"].values()), default=0)
    log_axis = n_points >= 4
    for name, res in report["datasets"].items():
        rows = res["summary"]
        rule = sorted((int(r["method"].split("@")[1]), r) for r in rows if r["method"].startswith("rule@"))
        steps = [max(s, 1) for s, _ in rule] if log_axis else [s for s, _ in rule]
        se = [0 if math.isnan(r["acc_se"]) else r["acc_se"] for _, r in rule]
        line = ax_acc.errorbar(steps, [r["acc"] for _, r in rule], yerr=se, fmt="o-", capsize=3, label=name)
        color = line.lines[0].get_color()
        ranks = {}
        for s, r in rule:
            ranks[s] = [rec["diag"][r["method"]]["effective_rank"] for rec in res.get("per_seed", [])
                        if r["method"] in rec.get("diag", {})]
        rank_se = [(sample_std(ranks[s]) / math.sqrt(len(ranks[s])) if len(ranks[s]) > 1 else 0.0) for s, _ in rule]
        ax_rank.errorbar(steps, [r["effective_rank"] for _, r in rule], yerr=rank_se, fmt="o-", capsize=3,
                         color=color, label=name)
        for r in rows:
            if r["method"] == "ink":
                ax_acc.axhline(r["acc"], color=color, ls=":", lw=1)
    for ax, label in ((ax_acc, "few-shot accuracy (dotted: ink)"), (ax_rank, "effective rank of top features")):
        if log_axis:
            ax.set_xscale("log")
            ax.set_xlabel("inner steps (log; 0 drawn at 1)")
        else:
            ax.set_xlabel("inner steps")
        ax.set_ylabel(label)
    ax_rank.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle(f"{report['rule']}{_budget_title(report)}; {_error_bars(report)}", fontsize=8)
    fig.tight_layout()
    _save(fig, Path(path))
    return Path(path)


def write_report(report: dict, out_dir) -> dict:
    """Write an evaluation report as JSON, Markdown tables and two figures.

    Each file is written to a temporary name and renamed, so none is ever half-written.

    Parameters
    ----------
    report : dict
        The result of :func:`refimpl.evaluate_rule`.
    out_dir : str or path-like
        The directory (created if needed).

    Returns
    -------
    dict
        ``{"json", "markdown", "accuracy_plot", "inner_steps_plot"}``: the paths written
        (``report.json``, ``report.md``, ``accuracy.png``, ``inner_steps.png``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "report.json", "markdown": out_dir / "report.md"}
    text = json.dumps(report, indent=1, allow_nan=True) + "\n"
    atomic_write_bytes(paths["json"], lambda f: f.write(text.encode()))
    markdown = format_report(report)
    atomic_write_bytes(paths["markdown"], lambda f: f.write(markdown.encode()))
    paths["accuracy_plot"] = plot_accuracy(report, out_dir / "accuracy.png")
    paths["inner_steps_plot"] = plot_inner_steps(report, out_dir / "inner_steps.png")
    return paths
