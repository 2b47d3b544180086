"""Provenance of the shipped rules' cards: every number a card states is recomputed from the committed
files its ``provenance`` names (the run's log, the selection JSON), the Markdown card shows the JSON
card's numbers, and a card without those files says that its numbers are not backed by them."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest

from refimpl.pretrained import RULES_DIR, list_rules
from refimpl.pretrained.card import (
    NOT_BACKED,
    log_summary,
    meta_seed_markdown,
    meta_seed_summary,
    read_jsonl,
    selection_rows_markdown,
    selection_table,
)

ROOT = Path(__file__).resolve().parents[1]


def card(name):
    return json.loads((RULES_DIR / f"{name}.json").read_text())


def problems(info: dict, markdown: str, root: Path = ROOT) -> list[str]:
    """What in a card (its JSON ``info`` and Markdown text) the committed files do not back."""
    out = []
    prov = info.get("provenance")
    if prov is None:
        return ["the card has no provenance field"]
    for key in ("log", "selection"):
        if prov.get(key) is None:
            if NOT_BACKED not in markdown or not prov.get("note"):
                out.append(f"no committed {key}, and the card does not say its numbers are {NOT_BACKED!r}")
        elif not (root / prov[key]).is_file():
            out.append(f"{prov[key]} (the {key}) is not in the repository")
    if prov.get("log") and (root / prov["log"]).is_file():
        want = log_summary(read_jsonl(root / prov["log"]), info["log_summary"]["meta_steps"])
        if want != info["log_summary"]:
            out.append(f"log_summary {info['log_summary']} is not the log's {want}")
    if prov.get("selection") and (root / prov["selection"]).is_file():
        want = selection_table(json.loads((root / prov["selection"]).read_text()))
        if want != info["selection_table"]:
            out.append("selection_table is not the selection JSON's")
    check = info.get("heldout_check")
    if check is not None:
        if not (root / check["file"]).is_file():
            out.append(f"{check['file']} (the held-out check) is not in the repository")
        else:
            (rows,) = json.loads((root / check["file"]).read_text()).values()
            by = {r["method"]: r for r in rows}
            for m, v in check["rows"].items():
                want = {"acc": round(by[m]["acc"], 4), "gain": round(by[m]["delta"], 4),
                        "gain_se": round(by[m]["delta_se"], 4), "effective_rank": round(by[m]["effective_rank"], 2)}
                if v != want:
                    out.append(f"heldout_check row {m} {v} is not the file's {want}")
                line = f"| {m} | {v['acc']:.3f} | {v['gain']:+.3f} ± {v['gain_se']:.3f} | {v['effective_rank']:.1f} |"
                if line not in markdown:
                    out.append(f"the Markdown card lacks the held-out check row {line!r}")
    seeds = info.get("meta_seeds")
    if seeds is not None:
        path = prov.get("meta_seeds")
        if path is None or not (root / path).is_file():
            out.append(f"{path} (the meta-training seeds) is not in the repository")
        else:
            want = meta_seed_summary(json.loads((root / path).read_text()), seeds["dataset"])
            if want != seeds:
                out.append(f"meta_seeds {seeds} is not the file's {want}")
            if meta_seed_markdown(seeds) not in markdown:
                out.append("the Markdown card lacks the meta-training seeds' line")
    # the Markdown card prints the JSON card's numbers
    for row in selection_rows_markdown(info.get("selection_table", [])):
        if row not in markdown:
            out.append(f"the Markdown card lacks the row {row!r}")
    summary = info.get("log_summary", {})
    for key in ("J_mean_first_50_steps", "J_mean_last_50_steps"):
        if key in summary and f"{summary[key]:.3f}" not in markdown:
            out.append(f"the Markdown card does not state {key} = {summary[key]:.3f}")
    step = re.search(r"meta-step (\d+)", info.get("theta_snapshot", ""))
    if step and f"meta-step {step.group(1)}" not in markdown:
        out.append("the Markdown card does not state the snapshot's meta-step")
    return out


@pytest.mark.parametrize("name", list_rules())
def test_every_card_number_comes_from_committed_files(name):
    assert problems(card(name), (RULES_DIR / f"{name}.md").read_text()) == []


def _fake_run(tmp_path):
    records = [{"step": k, "J": 1.0 - 0.001 * k, "tasks_drawn": 4 + k // 10, "wall_time": 3.0 * k,
                "dropped_total": 0, "lr": 1e-3} for k in range(1, 121)]
    (tmp_path / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    rows = [{"method": "rule@0", "delta": 0.0, "delta_se": 0.0, "effective_rank": 14.0},
            {"method": "rule@50", "delta": 0.25, "delta_se": 0.03, "effective_rank": 11.0}]
    (tmp_path / "sel.json").write_text(json.dumps({"runs/x/thetas/theta_00100.npz": rows}))
    info = {"theta_snapshot": "theta_00100.npz (meta-step 100)", "log_summary": log_summary(records, 100),
            "selection_table": selection_table({"runs/x/thetas/theta_00100.npz": rows}),
            "provenance": {"log": "log.jsonl", "selection": "sel.json"}}
    s = info["log_summary"]
    md = (f"meta-step 100; J {s['J_mean_first_50_steps']:.3f} then {s['J_mean_last_50_steps']:.3f}\n"
          + "\n".join(selection_rows_markdown(info["selection_table"])))
    return info, md


def test_the_provenance_check_can_fail(tmp_path):
    info, md = _fake_run(tmp_path)
    assert problems(info, md, tmp_path) == []
    bad = copy.deepcopy(info)
    bad["log_summary"]["J_mean_last_50_steps"] += 0.001          # a number typed in, not the log's
    assert any("log_summary" in p for p in problems(bad, md, tmp_path))
    bad = copy.deepcopy(info)
    bad["selection_table"][0]["gain"] = 0.26
    assert any("selection_table" in p for p in problems(bad, md, tmp_path))
    assert any("lacks the row" in p for p in problems(info, md.replace("+0.250", "+0.260"), tmp_path))
    bad = copy.deepcopy(info)
    bad["provenance"]["log"] = "missing.jsonl"
    assert any("not in the repository" in p for p in problems(bad, md, tmp_path))
    bad = copy.deepcopy(info)
    bad["provenance"] = {"log": None, "selection": "sel.json"}
    assert any("does not say" in p for p in problems(bad, md, tmp_path))
    bad["provenance"]["note"] = "the run's log was not kept"
    assert problems(bad, md + f"\nThe log summary is {NOT_BACKED}.", tmp_path) == []
    # a held-out check row typed in by hand
    rows = [{"method": "rule@0", "acc": 0.4, "delta": 0.0, "delta_se": 0.0, "effective_rank": 14.0},
            {"method": "rule@100", "acc": 0.8, "delta": 0.4, "delta_se": 0.03, "effective_rank": 10.0}]
    (tmp_path / "check.json").write_text(json.dumps({"theta.npz": rows}))
    good = {**info, "heldout_check": {"file": "check.json", "rows": {
        "rule@100": {"acc": 0.8, "gain": 0.4, "gain_se": 0.03, "effective_rank": 10.0}}}}
    line = "| rule@100 | 0.800 | +0.400 ± 0.030 | 10.0 |"
    assert problems(good, md + "\n" + line, tmp_path) == []
    bad = copy.deepcopy(good)
    bad["heldout_check"]["rows"]["rule@100"]["gain"] = 0.41
    assert any("heldout_check row" in p for p in problems(bad, md + "\n" + line, tmp_path))
    assert any("held-out check row" in p for p in problems(good, md, tmp_path))


def test_the_meta_seed_line_must_be_the_files(tmp_path):
    info, md = _fake_run(tmp_path)
    rows = [{"method": "rule", "meta_seeds": 3, "eval_seeds": 10, "gain": 0.27, "gain_std": 0.02, "gain_min": 0.25,
             "gain_max": 0.29, "gain_eval_se": 0.011, "gains": [0.25, 0.27, 0.29], "above": 3}]
    (tmp_path / "seeds.json").write_text(json.dumps({"min_gain": 0.2, "datasets": {"digits": rows}}))
    summary = meta_seed_summary({"min_gain": 0.2, "datasets": {"digits": rows}}, "digits")
    good = {**info, "meta_seeds": summary, "provenance": {**info["provenance"], "meta_seeds": "seeds.json"}}
    line = meta_seed_markdown(summary)
    assert "+0.270 (per seed +0.250, +0.270, +0.290; sd 0.020" in line and "3 of 3 at least +0.20" in line
    assert problems(good, md + "\n" + line, tmp_path) == []
    bad = copy.deepcopy(good)
    bad["meta_seeds"]["gains"][0] = 0.2501                      # typed in, not the file's
    assert any("is not the file's" in p for p in problems(bad, md + "\n" + line, tmp_path))
    assert any("meta-training seeds' line" in p for p in problems(good, md, tmp_path))
    bad = copy.deepcopy(good)
    bad["provenance"]["meta_seeds"] = "missing.json"
    assert any("not in the repository" in p for p in problems(bad, md + "\n" + line, tmp_path))
