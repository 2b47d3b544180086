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
