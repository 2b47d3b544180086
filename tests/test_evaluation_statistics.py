"""The evaluation's statistics against values worked out by hand in this file.

:func:`refimpl.evaluation.benchmark.summarize` on per-seed records whose
numbers are chosen here: means, standard errors with ddof 1, the paired
difference to phi_0 and its standard error, ``better`` counts (a tie is not
better), the mean diagnostics, the diverged count; the collapse flag on each
side of its threshold; the diverged count of a real benchmark run with a
stub rule that breaks on one seed.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import refimpl.evaluation.benchmark as bm
import refimpl.rule.update_step as rule_update
from refimpl.config import preset
from refimpl.data.base import ArraySource, Dataset
from refimpl.evaluation.reporting import COLLAPSE_RANK_FRACTION, collapsed_methods
from refimpl.params import init_theta

TINY = preset("tiny")            # B=7, layer_sizes [15, 9, 14, 8]


def _diag(rank, corr, zero):
    return {"effective_rank": rank, "mean_abs_corr": corr, "zero_rows": zero, "dead_units": 0.0, "n_units": 8}


# Four seeds. Accuracies and diagnostics by seed; seed 3 diverged at rule@10 (so it has no rule@10 entry).
ACC = {"rule@0": [0.50, 0.60, 0.40, 0.55],
       "rule@2": [0.52, 0.66, 0.47, 0.50],
       "rule@10": [0.58, 0.61, 0.52, None],
       "raw": [0.70, 0.60, 0.45, 0.50]}
RANK = {"rule@0": [6.0, 5.0, 7.0, 6.0], "rule@2": [5.0, 4.0, 6.0, 5.5], "rule@10": [2.0, 3.0, 4.0, None],
        "raw": [9.0, 9.5, 8.0, 8.5]}


def _per_seed():
    records = []
    for seed in range(4):
        rec = {"seed": seed, "acc": {}, "diag": {}, "diverged": []}
        for m, accs in ACC.items():
            if accs[seed] is None:
                rec["diverged"].append(m)
                continue
            rec["acc"][m] = accs[seed]
            rec["diag"][m] = _diag(RANK[m][seed], 0.1 * (seed + 1), 0.25 * (seed % 2))
        records.append(rec)
    return records


def _mean(v):
    return sum(v) / len(v)


def _se(v):
    """The standard error of the mean with the n - 1 denominator, written out."""
    m = _mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) / math.sqrt(len(v))


def test_summarize_rows_are_the_hand_computed_statistics():
    rows = {r["method"]: r for r in bm.summarize(_per_seed())}
    # rule rows by their step count (10 after 2), then the baselines
    assert [r["method"] for r in bm.summarize(_per_seed())] == ["rule@0", "rule@2", "rule@10", "raw"]

    # rule@0: n 4; delta exactly 0 with se 0, never better than itself
    r0 = rows["rule@0"]
    assert (r0["n"], r0["diverged"], r0["better"]) == (4, 0, 0)
    assert r0["acc"] == pytest.approx(0.5125, abs=1e-12)                   # (0.50+0.60+0.40+0.55)/4
    assert r0["acc_se"] == pytest.approx(_se([0.50, 0.60, 0.40, 0.55]), abs=1e-12)
    assert r0["acc_se"] == pytest.approx(0.0426956284, abs=1e-9)          # sqrt(0.021875/3)/2
    assert r0["delta"] == 0.0 and r0["delta_se"] == 0.0

    # raw: deltas 0.20, 0.00, 0.05, -0.05 (paired, seed by seed); a tie is not better
    raw = rows["raw"]
    deltas = [0.20, 0.00, 0.05, -0.05]
    assert (raw["n"], raw["diverged"], raw["better"]) == (4, 0, 2)
    assert raw["acc"] == pytest.approx(0.5625, abs=1e-12)
    assert raw["acc_se"] == pytest.approx(_se(ACC["raw"]), abs=1e-12)
    assert raw["delta"] == pytest.approx(0.05, abs=1e-12)
    assert raw["delta_se"] == pytest.approx(_se(deltas), abs=1e-12)
    assert raw["delta_se"] == pytest.approx(0.0540061725, abs=1e-9)        # sqrt(0.035/3)/2
    # an unpaired difference (raw - mean(phi_0)) would have the se of raw itself, 0.0554
    assert abs(raw["delta_se"] - _se(ACC["raw"])) > 1e-3
    assert raw["effective_rank"] == pytest.approx(8.75, abs=1e-12)
    assert raw["mean_abs_corr"] == pytest.approx(0.25, abs=1e-12)           # (0.1+0.2+0.3+0.4)/4
    assert raw["zero_rows"] == pytest.approx(0.125, abs=1e-12)              # (0+0.25+0+0.25)/4

    # rule@2: deltas 0.02, 0.06, 0.07, -0.05
    r2 = rows["rule@2"]
    assert (r2["n"], r2["diverged"], r2["better"]) == (4, 0, 3)
    assert r2["delta"] == pytest.approx(0.025, abs=1e-12)
    assert r2["delta_se"] == pytest.approx(_se([0.02, 0.06, 0.07, -0.05]), abs=1e-12)

    # rule@10: seed 3 diverged: three seeds, each paired with its own phi_0; deltas 0.08, 0.01, 0.12
    r10 = rows["rule@10"]
    assert (r10["n"], r10["diverged"], r10["better"]) == (3, 1, 3)
    assert r10["acc"] == pytest.approx(1.71 / 3, abs=1e-12)
    assert r10["acc_se"] == pytest.approx(_se([0.58, 0.61, 0.52]), abs=1e-12)
    assert r10["delta"] == pytest.approx(0.07, abs=1e-12)
    assert r10["delta_se"] == pytest.approx(_se([0.08, 0.01, 0.12]), abs=1e-12)
    assert r10["effective_rank"] == pytest.approx(3.0, abs=1e-12)
    assert r10["mean_abs_corr"] == pytest.approx(0.2, abs=1e-12)           # seeds 0-2 only


def test_summarize_counts_a_rule_row_missing_without_a_diverged_entry_as_diverged():
    records = _per_seed()
    records[3]["diverged"] = []           # an older record: the row is simply absent
    r10 = {r["method"]: r for r in bm.summarize(records)}["rule@10"]
    assert (r10["n"], r10["diverged"]) == (3, 1)


def test_summarize_of_one_seed_has_nan_standard_errors():
    row = {r["method"]: r for r in bm.summarize(_per_seed()[:1])}["raw"]
    assert row["n"] == 1 and row["acc"] == pytest.approx(0.70)
    assert math.isnan(row["acc_se"]) and math.isnan(row["delta_se"])


@pytest.mark.parametrize("rank, flagged", [(5.0, False), (5.0 - 1e-9, True), (5.0 + 1e-9, False),
                                           (0.5, True), (9.9, False)])
def test_the_collapse_flag_on_each_side_of_half_phi0s_rank(rank, flagged):
    assert COLLAPSE_RANK_FRACTION == 0.5
    rows = [{"method": "rule@0", "effective_rank": 10.0}, {"method": "rule@50", "effective_rank": rank},
            {"method": "ink", "effective_rank": 1.0}]          # a baseline is never flagged
    collapsed, rank0 = collapsed_methods(rows)
    assert rank0 == 10.0
    assert collapsed == (["rule@50"] if flagged else [])


def _counting_stub(monkeypatch, break_seed_at):
    """A stub rule (phi copied unchanged) whose phi turns NaN at the given update of the given seeds."""
    behind, real_init_phi = {}, bm.init_phi
    seeds_started = []

    def init_phi(config, rng, dtype=np.float32):
        phi = real_init_phi(config, rng, dtype)
        seeds_started.append(len(seeds_started))
        behind[id(phi)] = (phi, len(seeds_started) - 1, 0)
        return phi

    def update_step(theta, phi, x, config):
        held, seed, n = behind[id(phi)]
        assert held is phi
        out = {k: v.copy() for k, v in phi.items()}
        if break_seed_at.get(seed) == n + 1:
            out["layer1/W"][0, 0] = np.nan
        behind[id(out)] = (out, seed, n + 1)
        return out

    monkeypatch.setattr(bm, "init_phi", init_phi)
    monkeypatch.setattr(rule_update, "update_step", update_step)


def test_benchmark_counts_the_seeds_that_diverged_at_each_checkpoint(monkeypatch):
    rng = np.random.default_rng(0)
    x = {s: rng.random((12, 15)) for s in ("train", "test")}
    labels = {s: np.repeat([0, 1, 2], 4) for s in ("train", "test")}
    ds = Dataset(ArraySource("blobs", x, labels, class_names="abc"))
    _counting_stub(monkeypatch, {0: 2, 2: 4})     # seed 0 breaks at its 2nd update, seed 2 at its 4th
    theta = init_theta(TINY, np.random.default_rng(0), np.float32)
    res = bm.benchmark(theta, TINY, ds, seeds=range(3), k_shot=2, k_query=2, n_trials=1,
                       inner_steps=(1, 2, 3, 5), baselines=(), progress=False)
    assert [r["diverged"] for r in res["per_seed"]] == [["rule@2", "rule@3", "rule@5"], [], ["rule@5"]]
    rows = {r["method"]: (r["n"], r["diverged"]) for r in res["summary"]}
    assert rows == {"rule@0": (3, 0), "rule@1": (3, 0), "rule@2": (2, 1), "rule@3": (2, 1), "rule@5": (1, 2)}


def _seed_record(seed, a0, a1):
    return {"seed": seed, "acc": {"rule@0": a0, "supervised": a1},
            "diag": {"rule@0": _diag(5.0, 0.1, 0.0), "supervised": _diag(4.0, 0.2, 0.0)}, "diverged": []}


def test_merge_seeds_joins_disjoint_seeds_and_refuses_overlap_or_other_budgets():
    head = {"dataset": "digits", "layer_sizes": [64, 8], "budgets": {"supervised": {"steps": 1000, "lr": 0.01}}}
    late = {**head, "per_seed": [_seed_record(3, 0.5, 0.9), _seed_record(2, 0.4, 0.6)]}
    early = {**head, "per_seed": [_seed_record(0, 0.6, 0.8)]}
    merged = bm.merge_seeds([late, early])
    assert [r["seed"] for r in merged["per_seed"]] == [0, 2, 3]
    sup = {r["method"]: r for r in merged["summary"]}["supervised"]
    # gains 0.2, 0.2, 0.4: mean 0.8/3, sample sd 0.2/sqrt(3), se 0.2/3
    assert sup["delta"] == pytest.approx(0.8 / 3, abs=1e-12) and sup["delta_se"] == pytest.approx(0.2 / 3, abs=1e-12)
    assert merged["budgets"] == head["budgets"]
    with pytest.raises(ValueError, match=r"seeds in more than one result: \[0\]"):
        bm.merge_seeds([early, early])
    other = {**early, "budgets": {"supervised": {"steps": 300, "lr": 0.01}}}
    with pytest.raises(ValueError, match="differs from the first in budgets"):
        bm.merge_seeds([late, other])
    with pytest.raises(ValueError, match="no results"):
        bm.merge_seeds([])


def test_same_trials_uses_raw_when_both_have_it_and_fails_just_past_its_tolerance():
    a = {"acc": {"rule@0": 0.5, "raw": 0.8}}
    other_net = {"acc": {"rule@0": 0.3, "raw": 0.8}}              # another phi_0, the same trials
    assert bm.same_trials(a, other_net)
    assert not bm.same_trials(a, other_net, key="rule@0")
    assert bm.same_trials(a, {"acc": {"rule@0": 0.3, "raw": 0.8 + 5e-13}})
    assert not bm.same_trials(a, {"acc": {"rule@0": 0.5, "raw": 0.8 + 2e-12}})
    assert not bm.same_trials({"acc": {"rule@0": 0.5}}, {"acc": {"rule@0": 0.5 + 2e-12, "raw": 0.8}})
