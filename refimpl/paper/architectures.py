"""The rule on base models wider and deeper than it was meta-trained on (Fig. 7).

A cell is (hidden width w, hidden depth d): the base model
``[n_features, w x d, N^L]`` (N^L the rule's top width), built by
:func:`refimpl.evaluation.benchmark.benchmark` through its ``hidden``
argument. The grid is sparse: every width at depth 2, every depth at width
64, and the corners; each cell runs the inner-step counts its cost allows
(the cost of one update grows as w^3 once w is large: the decorrelation
planes multiply [w, w] matrices). A cell or a step count that did not run is
recorded with the reason, never left out.
"""
from __future__ import annotations

import math
import time

import numpy as np

from refimpl.paper.common import (
    Progress,
    compare,
    finish_report,
    fmt,
    header,
    mean_se,
    new_figure,
    per_seed_acc,
    rule_and_control,
    run_benchmark,
)

WIDTHS = (32, 64, 128, 256, 512, 1024, 2048)
DEPTHS = (1, 2, 3, 5, 8)

WIDTH_DEPTH_BUDGET = ("3 min of CPU on one core: digits at 3 and 30 inner steps, 3 seeds x 3 trials (width 512 at "
                      "depth 2 and width >= 1024: 3 steps only, 2 seeds); moons for widths <= 128 at depth 2 and "
                      "depths 1-8 at width 64; width 2048 at depth 8 not run (about 15 s of CPU per update)")


def sparse_grid(widths=WIDTHS, depths=DEPTHS, *, width_at=64, depth_at=2) -> list[tuple[int, int]]:
    """Every width at depth ``depth_at``, every depth at width ``width_at``, and the four corners."""
    cells = {(w, depth_at) for w in widths} | {(width_at, d) for d in depths}
    cells |= {(w, d) for w in (min(widths), max(widths)) for d in (min(depths), max(depths))}
    return sorted(cells, key=lambda c: (c[1], c[0]))


def _plan_full(w: int, d: int, dataset: str):
    """(inner-step counts, seeds) of a cell in the full run, or a reason it is not run."""
    if dataset != "digits" and (w > 128 or (w != 64 and d != 2)):
        return None, "not run: second dataset limited to widths <= 128 and the depth column (budget)"
    if w >= 2048 and d >= 3:
        return None, "not run: about 15 s of CPU per update (budget)"
    if w >= 1024 or (w >= 512 and d >= 2):
        return ((3,), 2), None
    return ((3, 30), 3), None


def _plan_quick(w: int, d: int, dataset: str):
    if w > 16 or d > 3:
        return None, "not run: quick mode"
    return ((2,), 2), None


WIDTH_DEPTH_FULL = {"datasets": ("digits", "moons"), "widths": WIDTHS, "depths": DEPTHS, "steps": (3, 30),
                    "n_trials": 3, "k_shot": 10, "k_query": 10, "plan": "full"}
WIDTH_DEPTH_QUICK = {"datasets": ("digits",), "widths": (4, 16, 32), "depths": (1, 3), "steps": (2,),
                     "n_trials": 2, "k_shot": 5, "k_query": 5, "plan": "quick"}


def width_depth(rule="small-glyphs-rotation", out_dir=None, *, quick: bool = False, progress: bool = True,
                settings=None) -> dict:
    """Gain over phi_0 (same architecture) of the rule and of the control per (width, depth) cell."""
    from refimpl.data import get_dataset

    s = dict(settings or (WIDTH_DEPTH_QUICK if quick else WIDTH_DEPTH_FULL))
    plan = _plan_quick if s["plan"] == "quick" else _plan_full
    log = Progress("width-depth", progress)
    rule, control = rule_and_control(rule)
    grid = sparse_grid(s["widths"], s["depths"], width_at=s.get("width_at", 64 if not quick else 4),
                       depth_at=s.get("depth_at", 2 if not quick else 1))
    out = {}
    for name in s["datasets"]:
        ds = get_dataset(name)
        cells = []
        for w in s["widths"]:
            for d in s["depths"]:
                cell = {"width": w, "depth": d}
                if (w, d) not in grid:
                    cells.append({**cell, "status": "not run: outside the sparse grid"})
                    continue
                todo, reason = plan(w, d, name)
                if todo is None:
                    cells.append({**cell, "status": reason})
                    continue
                steps, seeds = todo
                log(f"{name}: width {w} depth {d}, inner steps {list(steps)}, {seeds} seeds")
                t0 = time.perf_counter()
                res = run_benchmark((rule, control), ds, seeds=range(seeds), inner_steps=(0, *steps),
                                    hidden=(w,) * d, k_shot=s["k_shot"], k_query=s["k_query"],
                                    n_trials=s["n_trials"])
                r_res, c_res = res[rule.name], res[control.name]
                phi0 = per_seed_acc(r_res, "rule@0")
                cell.update({"status": "run", "seeds": seeds, "layer_sizes": r_res["layer_sizes"],
                             "phi_0": mean_se(list(phi0.values())), "steps": {},
                             "seconds": round(time.perf_counter() - t0, 1)})
                for st in s["steps"]:
                    if st not in steps:
                        cell["steps"][str(st)] = {"status": "not run (budget)"}
                        continue
                    ra, ca = per_seed_acc(r_res, f"rule@{st}"), per_seed_acc(c_res, f"rule@{st}")
                    cell["steps"][str(st)] = {
                        "status": "run", "rule": mean_se(list(ra.values())), "control": mean_se(list(ca.values())),
                        "rule_vs_phi_0": compare(ra, phi0), "control_vs_phi_0": compare(ca, phi0),
                        "rule_vs_control": compare(ra, ca),
                        "diverged": {"rule": seeds - len(ra), "control": seeds - len(ca)}}
                cells.append(cell)
        out[name] = cells
    return finish_report("width-depth", "hidden widths and depths the rule was not meta-trained on", rule, control, quick,
                         WIDTH_DEPTH_BUDGET, log, out_dir, width_depth_markdown, width_depth_figure,
                         **{"settings": {**s, "seeds": "3 (2 where stated per cell)" if not quick else 2,
                           "meta_trained_on": "hidden depth 1-2, widths 32-96 (small preset's task mixture)"},
              "datasets": out})


def width_depth_markdown(report) -> str:
    lines = header(report)
    steps = [str(t) for t in report["settings"]["steps"]]
    for name, cells in report["datasets"].items():
        lines += [f"## {name}", "", "| width | depth | layer sizes | seeds | phi_0 | "
                  + " | ".join(f"rule vs phi_0 @{t} | control vs phi_0 @{t} | rule vs control @{t}" for t in steps)
                  + " | seconds |", "|---:|---:|---|---:|---:|" + "---:|---:|---:|" * len(steps) + "---:|"]
        for c in cells:
            if c["status"] != "run":
                lines.append(f"| {c['width']} | {c['depth']} | {c['status']} | | | " + "| | | " * len(steps) + "|")
                continue
            parts = []
            for t in steps:
                st = c["steps"][t]
                if st["status"] != "run":
                    parts.append(f"{st['status']} | | ")
                else:
                    parts.append(f"{fmt(st['rule_vs_phi_0'], signed=True)} | {fmt(st['control_vs_phi_0'], signed=True)} "
                                 f"| {fmt(st['rule_vs_control'], signed=True)}")
            lines.append(f"| {c['width']} | {c['depth']} | {c['layer_sizes']} | {c['seeds']} | {fmt(c['phi_0'])} | "
                         + " | ".join(parts) + f" | {c['seconds']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def width_depth_figure(report):
    names = list(report["datasets"])
    steps = [str(t) for t in report["settings"]["steps"]]
    widths, depths = list(report["settings"]["widths"]), list(report["settings"]["depths"])
    fig, axes = new_figure(max(7.5, 4.6 * len(steps)), 3.2 * len(names) + 0.5, len(names), len(steps))
    vmax = 0.05
    for cells in report["datasets"].values():
        for c in cells:
            for st in c.get("steps", {}).values():
                if st["status"] == "run":
                    vmax = max(vmax, abs(st["rule_vs_phi_0"]["mean"]))
    image = None
    for i, name in enumerate(names):
        by = {(c["width"], c["depth"]): c for c in report["datasets"][name]}
        for j, t in enumerate(steps):
            ax = axes[i, j]
            grid = np.full((len(depths), len(widths)), np.nan)
            for a, d in enumerate(depths):
                for b, w in enumerate(widths):
                    c = by[(w, d)]
                    st = c.get("steps", {}).get(t)
                    if c["status"] == "run" and st["status"] == "run":
                        grid[a, b] = st["rule_vs_phi_0"]["mean"]
                        se = st["rule_vs_phi_0"]["se"]
                        ax.text(b, a, f"{grid[a, b]:+.2f}\n±{se:.2f}" if math.isfinite(se) else f"{grid[a, b]:+.2f}",
                                ha="center", va="center", fontsize=6,
                                color="white" if abs(grid[a, b]) > 0.6 * vmax else "black")
                    else:
                        ax.text(b, a, "n/r" if c["status"] != "run" or st is None else "n/r\nbudget",
                                ha="center", va="center", fontsize=6, color="0.4")
            image = ax.imshow(grid, cmap="RdBu", vmin=-vmax, vmax=vmax, aspect="auto")
            ax.set_facecolor("0.9")
            ax.set_xticks(range(len(widths)))
            ax.set_xticklabels([str(w) for w in widths], fontsize=7)
            ax.set_yticks(range(len(depths)))
            ax.set_yticklabels([str(d) for d in depths], fontsize=7)
            ax.set_xlabel("hidden width")
            ax.set_ylabel("hidden depth")
            ax.set_title(f"{name}, {t} inner steps", fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), label="rule minus phi_0 (paired, ± 1 s.e.)", shrink=0.8)
    fig.suptitle(f"{report['rule']}: gain over phi_0 of the same architecture; n/r = not run", fontsize=9)
    return fig
