"""A shipped rule's card: the numbers it states, computed from the files behind them.

The card (``rules/NAME.json`` and its Markdown rendering ``rules/NAME.md``)
states a log summary (from the run's ``log.jsonl``) and a selection table
(from the selection JSON of ``examples/transfer/choose_rule.py``). Its
``provenance`` field names the committed files they come from (paths
relative to the repository root; a ``.gz`` log is read as gzip), or ``null``
for a file that was not kept, with a ``note`` that says so. ``tests/test_provenance.py``
recomputes every stated number from the named files.
"""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np

#: What a card's Markdown says when a number has no committed file behind it.
NOT_BACKED = "not backed by committed files"


def read_jsonl(path) -> list[dict]:
    """The records of a JSON-lines file, plain or gzip-compressed (by its ``.gz`` suffix)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return [json.loads(line) for line in f if line.strip()]


def log_summary(records, meta_step: int) -> dict:
    """The card's ``log_summary`` of a run's log records up to ``meta_step``."""
    upto = [r for r in records if r["step"] <= meta_step]
    if not upto:
        raise ValueError(f"log_summary: the log has no record up to meta-step {meta_step}")
    J = np.array([r["J"] for r in upto if r["J"] is not None])
    return {"meta_steps": meta_step, "tasks_drawn": upto[-1]["tasks_drawn"],
            "wall_minutes": round(upto[-1]["wall_time"] / 60, 1),
            "J_mean_first_50_steps": round(float(J[:50].mean()), 4),
            "J_mean_last_50_steps": round(float(J[-50:].mean()), 4),
            "dropped_tasks": int(upto[-1]["dropped_total"]), "final_lr": upto[-1]["lr"]}


def selection_table(selection: dict) -> list[dict]:
    """The card's ``selection_table`` of a selection JSON (theta path -> benchmark summary rows): one
    entry per (theta, rule@s) with s > 0, its paired gain over phi_0 and effective ranks."""
    table = []
    for path, rows in selection.items():
        r0 = next(x for x in rows if x["method"] == "rule@0")
        for r in rows:
            if r["method"].startswith("rule@") and r["method"] != "rule@0":
                table.append({"theta": Path(path).name, "inner_steps": int(r["method"].split("@")[1]),
                              "gain": round(r["delta"], 4), "gain_se": round(r["delta_se"], 4),
                              "effective_rank": round(r["effective_rank"], 2),
                              "phi0_effective_rank": round(r0["effective_rank"], 2)})
    return table


def selection_rows_markdown(table) -> list[str]:
    """The Markdown rows of a selection table, as the card prints them."""
    return [f"| {t['theta']} | {t['inner_steps']} | {t['gain']:+.3f} ± {t['gain_se']:.3f} | "
            f"{t['effective_rank']:.1f} ({t['phi0_effective_rank']:.1f}) |" for t in table]


def meta_seed_summary(meta_seeds: dict, dataset: str) -> dict:
    """The card's ``meta_seeds`` entry for one dataset of a meta-seed JSON (``examples/transfer/meta_seeds.py``):
    the rule's paired gain over phi_0, its spread over the recipe's meta-training seeds and the bar count."""
    rows = {r["method"]: r for r in meta_seeds["datasets"][dataset]}
    r = rows["rule"]
    return {"dataset": dataset, "meta_seeds": r["meta_seeds"], "eval_seeds": r["eval_seeds"],
            "gain": round(r["gain"], 4), "gain_std": round(r["gain_std"], 4), "gain_min": round(r["gain_min"], 4),
            "gain_max": round(r["gain_max"], 4), "gain_eval_se": round(r["gain_eval_se"], 4),
            "gains": [round(g, 4) for g in r["gains"]], "min_gain": meta_seeds["min_gain"], "above": r["above"]}


def meta_seed_markdown(summary: dict) -> str:
    """The card's line for a :func:`meta_seed_summary`."""
    s = summary
    gains = ", ".join(f"{g:+.3f}" for g in s["gains"])
    return (f"- across the recipe's {s['meta_seeds']} meta-training seeds ({s['dataset']}, {s['eval_seeds']} "
            f"evaluation seeds, each seed's chosen snapshot at its own inner steps): gain over phi_0 "
            f"{s['gain']:+.3f} (per seed {gains}; sd {s['gain_std']:.3f} between seeds, evaluation se "
            f"{s['gain_eval_se']:.3f}); {s['above']} of {s['meta_seeds']} at least {s['min_gain']:+.2f}")
