"""The spread over meta-training seeds (refimpl.evaluation.metaseeds), against values worked by hand."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from refimpl.evaluation.metaseeds import across_meta_seeds, at_steps, format_meta_seeds


def _result(phi0, rule, extra=None):
    recs = []
    for i, (a0, a1) in enumerate(zip(phi0, rule)):
        acc = {"rule@0": a0, "rule@100": a1, **({"pca": extra[i]} if extra else {})}
        recs.append({"seed": i, "acc": acc})
    return {"per_seed": recs}


PHI0 = [0.5, 0.6, 0.7]
# meta-seed A gains 0.3, 0.2, 0.2 (mean 7/30, se 1/30); B gains 0.1, 0.1, 0.0 (mean 1/15, se 1/30)
RESULTS = {"seed 0": _result(PHI0, [0.8, 0.8, 0.9], [0.9, 0.9, 0.9]),
           "seed 1": _result(PHI0, [0.6, 0.7, 0.7], [0.9, 0.9, 0.9])}


def test_rows_are_the_hand_worked_values():
    rows = {r["method"]: r for r in across_meta_seeds(RESULTS, min_gain=0.2)}
    r = rows["rule@100"]
    assert (r["meta_seeds"], r["eval_seeds"]) == (2, 3)
    assert r["acc"] == pytest.approx(0.75, abs=1e-12)
    assert r["gains"] == pytest.approx([7 / 30, 1 / 15], abs=1e-12)
    assert r["gain"] == pytest.approx(0.15, abs=1e-12)
    assert r["gain_std"] == pytest.approx((7 / 30 - 1 / 15) / math.sqrt(2), abs=1e-12)   # ddof 1
    assert (r["gain_min"], r["gain_max"]) == pytest.approx((1 / 15, 7 / 30), abs=1e-12)
    assert r["gain_eval_se"] == pytest.approx(1 / 30, abs=1e-12)
    assert r["above"] == 1                      # only A reaches +0.20
    # theta-free rows have no spread: the evaluations were paired
    assert rows["pca"]["gain_std"] == pytest.approx(0.0, abs=1e-12)
    assert rows["rule@0"]["gain"] == 0.0


def test_the_bar_counts_at_its_boundary():
    gains = across_meta_seeds(RESULTS)[1]["gains"]
    assert across_meta_seeds(RESULTS, min_gain=gains[1])[1]["above"] == 2
    assert across_meta_seeds(RESULTS, min_gain=gains[1] + 1e-9)[1]["above"] == 1


def test_a_perturbed_accuracy_moves_the_spread():
    base = across_meta_seeds(RESULTS)[1]["gain_std"]
    bumped = {**RESULTS, "seed 1": _result(PHI0, [0.6, 0.7, 0.7 + 1e-6])}
    assert abs(across_meta_seeds(bumped)[1]["gain_std"] - base) > 1e-8


def test_a_method_missing_from_one_run_is_left_out_and_seeds_must_match():
    part = {**RESULTS, "seed 1": _result(PHI0, [0.6, 0.7, 0.7])}        # no pca row
    assert [r["method"] for r in across_meta_seeds(part)] == ["rule@0", "rule@100"]
    with pytest.raises(ValueError, match="same evaluation seeds"):
        across_meta_seeds({**RESULTS, "seed 1": _result(PHI0[:2], [0.6, 0.7])})
    with pytest.raises(ValueError, match="no results"):
        across_meta_seeds({})


def test_one_meta_seed_has_no_spread_and_the_table_says_nan():
    rows = across_meta_seeds({"seed 0": RESULTS["seed 0"]})
    assert math.isnan(rows[1]["gain_std"])
    table = format_meta_seeds(rows)
    assert "| rule@100 | 0.833 | +0.233 | nan; +0.233 to +0.233 | 0.033 | 1/1 |" in table


def test_seeds_at_different_recommended_steps_line_up_after_at_steps():
    a = _result(PHI0, [0.8, 0.8, 0.9])
    b = {"per_seed": [{"seed": i, "acc": {"rule@0": a0, "rule@200": a0 + 0.1, "random@200": 0.1, "rule@100": 0.0}}
                      for i, a0 in enumerate(PHI0)]}
    rows = {r["method"]: r for r in across_meta_seeds({"A": at_steps(a, 100), "B": at_steps(b, 200)})}
    assert sorted(rows) == ["rule", "rule@0"]          # random only in B; B's rule@100 is not its rule
    assert rows["rule"]["gains"] == pytest.approx([7 / 30, 0.1], abs=1e-12)
    assert "random" in at_steps(b, 200)["per_seed"][0]["acc"]
    assert a["per_seed"][0]["acc"]["rule@100"] == 0.8      # the input is not changed
    with pytest.raises(ValueError, match="no rule@50 row"):
        at_steps(a, 50)


def _report(path, steps, rule_acc, phi0=PHI0):
    diag = {"effective_rank": 3.0, "mean_abs_corr": 0.1, "zero_rows": 0.0}
    recs = [{"seed": i, "acc": {"rule@0": a0, f"rule@{steps}": a1, "pca": 0.9},
             "diag": {"rule@0": diag, f"rule@{steps}": diag, "pca": diag}} for i, (a0, a1) in
            enumerate(zip(phi0, rule_acc))]
    report = {"rule": "r", "info": {"theta_snapshot": "t", "recommended_inner_steps": steps},
              "datasets": {"digits": {"per_seed": recs}}}
    path.write_text(json.dumps(report))
    return str(path)


def _script(*args):
    root = Path(__file__).resolve().parents[1]
    return subprocess.run([sys.executable, str(root / "examples" / "transfer" / "meta_seeds.py"), *args],
                          capture_output=True, text=True, cwd=root)


def test_the_meta_seeds_script_writes_the_rows_and_refuses_unpaired_reports(tmp_path):
    a = _report(tmp_path / "a.json", 100, [0.8, 0.8, 0.9])
    b = _report(tmp_path / "b.json", 200, [0.6, 0.7, 0.7])
    out = tmp_path / "seeds.json"
    done = _script(str(out), f"seed 0={a}", f"seed 1={b}", "--datasets", "digits", "--min-gain", "0.2")
    assert done.returncode == 0, done.stderr
    rows = {r["method"]: r for r in json.loads(out.read_text())["datasets"]["digits"]}
    assert rows["rule"]["gains"] == pytest.approx([7 / 30, 1 / 15], abs=1e-12) and rows["rule"]["above"] == 1
    assert "| rule |" in (tmp_path / "seeds.md").read_text()
    # per seed, the rule minus PCA paired: seed 1 is 0.6, 0.7, 0.7 against 0.9 each
    minus_pca = json.loads(out.read_text())["per_seed"]["digits"]["seed 1"]["minus"]["pca"]
    assert minus_pca["delta"] == pytest.approx(-0.7 / 3, abs=1e-12) and minus_pca["better"] == 0
    assert "| seed 1 | 0.667 | +0.067 ± 0.033 (2/3) |" in (tmp_path / "seeds.md").read_text()
    c = _report(tmp_path / "c.json", 100, [0.8, 0.8, 0.9], phi0=[0.5, 0.6, 0.7 + 1e-9])
    bad = _script(str(tmp_path / "bad.json"), f"seed 0={a}", f"seed 2={c}", "--datasets", "digits")
    assert bad.returncode == 2 and "seed 2's phi_0 differs from seed 0's on evaluation seed 2" in bad.stderr.strip().splitlines()[-1]
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad.json").exists()


def test_unpaired_meta_seeds_are_refused_just_past_the_tolerance():
    near = {**RESULTS, "seed 1": _result([0.5, 0.6, 0.7 + 5e-13], [0.6, 0.7, 0.7])}
    assert across_meta_seeds(near)[0]["method"] == "rule@0"          # within 1e-12: the same phi_0
    off = {**RESULTS, "seed 1": _result([0.5, 0.6, 0.7 + 2e-12], [0.6, 0.7, 0.7])}
    with pytest.raises(ValueError, match="seed 1's phi_0 differs from seed 0's on evaluation seed 2"):
        across_meta_seeds(off)
