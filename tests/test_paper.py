"""The paper's experiments (refimpl/paper/): quick modes, the control, permutations, architectures, the page."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from refimpl.paper import EXPERIMENTS, architectures, common, permutation as perm_exp, representation

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------
# every experiment's quick mode, through the command line
# ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    from refimpl.cli import main

    out = tmp_path_factory.mktemp("paper")
    assert main(["paper", "all", "--quick", "--rule", "small-glyphs-rotation", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("name", list(EXPERIMENTS))
def test_quick_mode_writes_table_json_and_figure(quick_run, name):
    report = json.loads((quick_run / f"{name}.json").read_text())
    md = (quick_run / f"{name}.md").read_text()
    assert (quick_run / f"{name}.png").stat().st_size > 1000
    assert report["experiment"] == name and report["quick"] is True
    assert report["rule"] == "small-glyphs-rotation"
    assert report["control"].startswith("random-theta control") and report["control"] in md
    assert "seeds:" in md and "standard error" in md and "budget:" in md
    assert report["budget"] == common_budget(name)
    text = json.dumps(report)
    assert '"control' in text and ("phi_0" in text)


def common_budget(name):
    from refimpl.paper import budget
    return budget(name)


def test_every_budget_is_in_the_help_and_the_docs():
    from refimpl.cli.paper import _description
    from refimpl.paper import budget

    docs = (ROOT / "docs" / "paper.md").read_text()
    for name in EXPERIMENTS:
        assert budget(name) in _description()
        assert budget(name) in docs, name


def test_a_bad_rule_is_one_line_and_exit_2(tmp_path, capsys):
    from refimpl.cli import main

    assert main(["paper", "shots", "--quick", "--rule", "no-such-rule", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no-such-rule" in err[0]
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------------------------
# the random-theta control
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", ["small-glyphs-rotation", "random"])
def test_the_control_is_a_different_theta_from_the_rules(rule):
    from refimpl.params import init_theta

    r, c = common.rule_and_control(rule)
    assert r.theta.keys() == c.theta.keys()
    assert any(not np.array_equal(r.theta[k], c.theta[k]) for k in r.theta)
    expected = init_theta(r.config, np.random.default_rng(c.info["seed"]), np.float32)
    assert all(np.array_equal(expected[k], c.theta[k]) for k in expected)


def test_a_rule_equal_to_the_control_seed_gets_the_next_seed():
    from refimpl.params import init_theta

    r, _ = common.rule_and_control("random")
    clash = init_theta(r.config, np.random.default_rng(common.CONTROL_SEED), np.float32)
    c = common.control_rule(r._replace(theta=clash))
    assert c.info["seed"] == common.CONTROL_SEED + 1
    assert any(not np.array_equal(clash[k], c.theta[k]) for k in clash)


# ---------------------------------------------------------------------------------
# statistics
# ---------------------------------------------------------------------------------
def test_paired_standard_error_and_significance():
    a, b = [0.6, 0.7, 0.8], [0.5, 0.5, 0.5]
    p = common.paired(a, b)
    d = np.array([0.1, 0.2, 0.3])
    assert p["mean"] == pytest.approx(0.2) and p["se"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert p["better"] == 3 and p["n"] == 3
    assert common.significant(p)                           # 0.2 > 2 * 0.0577
    assert not common.significant({"mean": 0.2, "se": 0.1001})
    assert common.significant({"mean": 0.2, "se": 0.0999})
    assert not common.significant({"mean": 0.2, "se": float("nan")})
    assert common.significant({"mean": -0.3, "se": 0.1}, sign=-1)


# ---------------------------------------------------------------------------------
# permutation
# ---------------------------------------------------------------------------------
def test_the_permutation_experiment_permutes(monkeypatch):
    from refimpl.data.base import Dataset

    seen = []
    original = Dataset.permuted

    def spy(self, perm):
        seen.append(np.asarray(perm).copy())
        return original(self, perm)
    monkeypatch.setattr(Dataset, "permuted", spy)
    report = perm_exp.permutation("small-glyphs-rotation", quick=True, progress=False)
    seeds = report["settings"]["seeds"]
    assert len(seen) == 2 * seeds                # the permuted arms of rule and control; not the others
    for p in seen:
        assert np.mean(p != np.arange(len(p))) > 0.5
    assert report["equivariance"]["moved_fraction"] > 0.5
    rows = {(r["theta"], r["step"]): r for r in report["rows"]}
    at = max(report["settings"]["steps"])
    assert rows[("small-glyphs-rotation", at)]["per_seed_identical"] < seeds   # really a different input order


def test_benchmark_without_permutation_keeps_the_input_order(monkeypatch):
    from refimpl.data import get_dataset
    from refimpl.evaluation import benchmark as bm

    inputs = []
    original = bm.readout_accuracy

    def spy(fs, ys, fq, yq, n, ridge):
        return original(fs, ys, fq, yq, n, ridge)
    monkeypatch.setattr(bm, "readout_accuracy", spy)
    ds = get_dataset("digits")
    orig_trials = bm._trials

    def trials(task, *a):
        out = orig_trials(task, *a)
        inputs.append((task.perm, out[0][0]))
        return out
    monkeypatch.setattr(bm, "_trials", trials)
    r, _ = common.rule_and_control("small-glyphs-rotation")
    for permute in (True, False):
        bm.benchmark(None, r.config, ds, seeds=[0], n_trials=1, k_shot=2, k_query=2, baselines=(),
                     progress=False, permute=permute)
    (p_perm, x_perm), (p_none, x_none) = inputs
    assert p_none is None and p_perm is not None
    np.testing.assert_array_equal(x_perm, x_none[:, p_perm])      # same examples, permuted columns


def test_permute_phi_inputs_matches_the_permuted_inputs():
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((5, 7)), rng.standard_normal((7, 3))
    perm = rng.permutation(7)
    phi = perm_exp.permute_phi_inputs({"layer1/W": W, "layer1/V": W + 1, "layer1/b": np.zeros(3)}, perm)
    np.testing.assert_allclose(x[:, perm] @ phi["layer1/W"], x @ W)
    np.testing.assert_allclose(x[:, perm] @ phi["layer1/V"], x @ (W + 1))


def test_unpermute_rows_undoes_the_input_permutation():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((6, 2))
    perm = rng.permutation(6)
    Wp = W[perm]                                  # the weights a permuted-input model needs for the same output
    np.testing.assert_array_equal(representation.unpermute_rows(Wp, perm), W)
    assert not np.array_equal(representation.unpermute_rows(Wp, np.arange(6)), W)


def test_template_score_and_smoothness_separate_templates_from_noise():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:8, :8]
    templates = np.stack([np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / 6.0).ravel() for c in (2, 5)])
    noise = rng.standard_normal((4, 64))
    assert representation.template_score(templates + 0.01 * noise[:2], templates) > 0.99
    assert representation.template_score(noise, templates) < 0.6
    assert representation.smoothness(templates, (8, 8)) > 0.7
    assert abs(representation.smoothness(noise, (8, 8))) < 0.3


# ---------------------------------------------------------------------------------
# width-depth
# ---------------------------------------------------------------------------------
def test_a_width_depth_cell_builds_that_architecture(monkeypatch):
    from refimpl.evaluation import benchmark as bm

    built = []
    original = bm.init_phi

    def spy(config, rng, dtype):
        built.append(tuple(config.layer_sizes))
        return original(config, rng, dtype)
    monkeypatch.setattr(bm, "init_phi", spy)
    settings = {"datasets": ("digits",), "widths": (3, 5, 7), "depths": (1, 3), "steps": (1,), "n_trials": 1,
                "k_shot": 2, "k_query": 2, "plan": "quick", "width_at": 3, "depth_at": 1}
    report = architectures.width_depth("small-glyphs-rotation", quick=True, progress=False, settings=settings)
    cells = report["datasets"]["digits"]
    run = [c for c in cells if c["status"] == "run"]
    assert {(c["width"], c["depth"]) for c in run} == {(3, 1), (5, 1), (7, 1), (3, 3), (7, 3)}
    for c in run:
        sizes = (64, *[c["width"]] * c["depth"], 16)
        assert tuple(c["layer_sizes"]) == sizes
        assert built.count(sizes) == 2 * c["seeds"]          # rule and control, every seed
    assert {(c["width"], c["depth"]) for c in cells if c["status"] != "run"} == {(5, 3)}


def test_the_sparse_grid():
    grid = architectures.sparse_grid()
    assert len(grid) == len(set(grid))
    assert {(w, 2) for w in architectures.WIDTHS} <= set(grid)
    assert {(64, d) for d in architectures.DEPTHS} <= set(grid)
    assert {(32, 1), (32, 8), (2048, 1), (2048, 8)} <= set(grid)
    assert (128, 3) not in grid


def _fake_benchmark(rules, dataset, *, seeds, inner_steps, hidden=(), **kw):
    out = {}
    for i, r in enumerate(rules):
        steps = inner_steps[r.name] if isinstance(inner_steps, dict) else inner_steps
        per_seed = [{"seed": s, "acc": {f"rule@{t}": 0.5 + 0.01 * t * (1 - i) + 0.01 * s for t in steps},
                     "diag": {f"rule@{t}": {"effective_rank": 10.0} for t in steps}, "diverged": []} for s in seeds]
        out[r.name] = {"per_seed": per_seed, "layer_sizes": [dataset.n_features, *hidden, 16]}
    return out


def test_the_full_width_depth_plan_marks_every_cell_that_did_not_run(monkeypatch, tmp_path):
    monkeypatch.setattr(architectures, "run_benchmark", _fake_benchmark)
    report = architectures.width_depth("small-glyphs-rotation", tmp_path, progress=False)
    for cells in report["datasets"].values():
        assert len(cells) == len(architectures.WIDTHS) * len(architectures.DEPTHS)
        by = {(c["width"], c["depth"]): c for c in cells}
        assert all(c["status"] for c in cells)
        assert by[(128, 3)]["status"] == "not run: outside the sparse grid"
    digits = {(c["width"], c["depth"]): c for c in report["datasets"]["digits"]}
    assert digits[(2048, 2)]["status"] == "run"
    assert digits[(2048, 2)]["steps"]["30"]["status"] == "not run (budget)"
    assert digits[(2048, 2)]["steps"]["3"]["status"] == "run"
    assert digits[(2048, 8)]["status"].startswith("not run")
    assert digits[(8 * 8, 8)]["steps"]["30"]["rule_vs_phi_0"]["mean"] == pytest.approx(0.3)
    md = (tmp_path / "width-depth.md").read_text()
    assert md.count("not run") >= 10
    for w in architectures.WIDTHS:
        for d in architectures.DEPTHS:
            assert f"\n| {w} | {d} | " in md


# ---------------------------------------------------------------------------------
# the page
# ---------------------------------------------------------------------------------
def test_the_page_is_the_one_its_json_generates():
    from refimpl.paper import page

    committed = (ROOT / "docs" / "paper.md").read_text()
    assert page.generate(ROOT / "docs" / "paper") == committed


def _reports(quick_run):
    return {p.stem: json.loads(p.read_text()) for p in quick_run.glob("*.json")}


def test_the_permutation_verdict_follows_its_numbers(quick_run):
    from refimpl.paper import page

    r = _reports(quick_run)
    r["permutation"]["equivariance"]["feature_gap"] = 0.0
    for row in r["permutation"]["rows"]:
        row["agree"] = True
    assert page.claim_permutation(r)[0] == "reproduced"
    r["permutation"]["equivariance"]["feature_gap"] = 1e-3 * r["permutation"]["equivariance"]["feature_scale"]
    assert page.claim_permutation(r)[0] == "partly"
    r["permutation"]["rows"][-1 if r["permutation"]["rows"][-1]["theta"] != "control" else 0]["agree"] = False
    assert page.claim_permutation(r)[0] == "not"


def test_the_fig5_verdict_counts_significant_wins(quick_run):
    from refimpl.paper import page

    r = _reports(quick_run)
    ds = r["inner-steps"]["datasets"]["digits"]
    row = next(x for x in ds["rows"] if x["step"] == ds["reported_at"])
    stats = [row["rule_vs_phi_0"]] + [b["rule_vs_this"] for b in ds["baselines"] if b["method"] in ("vae", "supervised")]
    for s in stats:
        s.update(mean=0.1, se=0.049)
    assert page.claim_fig5(r)[0] == "reproduced"
    stats[2].update(se=0.051)                     # just past 2 s.e.: no longer a win
    assert page.claim_fig5(r)[0] == "partly"
    for s in stats:
        s.update(mean=-0.1)
    assert page.claim_fig5(r)[0] == "not"


def test_the_step_activation_part_needs_twice_phi_0(quick_run):
    from refimpl.paper import page

    r = _reports(quick_run)
    rows = r["activations"]["activations"]["step"]["rows"]
    at = max(x["step"] for x in rows)
    row = next(x for x in rows if x["step"] == at)
    row["rule"]["mean"] = 2 * row["phi_0"]["mean"]
    assert "step reaches twice phi_0's accuracy: holds" in "\n".join(page.claim_fig8(r)[2])
    row["rule"]["mean"] = 2 * row["phi_0"]["mean"] - 0.001
    assert "step reaches twice phi_0's accuracy: does not hold" in "\n".join(page.claim_fig8(r)[2])


@pytest.mark.parametrize("name", ["permutation", "width-depth"])
def test_render_rewrites_the_table_from_the_json_alone(quick_run, tmp_path, name):
    from refimpl.paper import render

    report = json.loads((quick_run / f"{name}.json").read_text())
    render(report, tmp_path)
    assert (tmp_path / f"{name}.md").read_text() == (quick_run / f"{name}.md").read_text()
    assert json.loads((tmp_path / f"{name}.json").read_text()) == report


def test_combine_inner_steps_needs_the_same_settings_and_other_datasets(quick_run):
    from refimpl.paper.curves import combine_inner_steps

    r = json.loads((quick_run / "inner-steps.json").read_text())
    a = {**r, "datasets": {"digits": r["datasets"]["digits"]}}
    b = {**r, "datasets": {"moons": r["datasets"]["moons"]}}
    both = combine_inner_steps([a, b])
    assert set(both["datasets"]) == {"digits", "moons"} and both["seconds"] == pytest.approx(2 * r["seconds"], abs=0.2)
    with pytest.raises(ValueError):
        combine_inner_steps([a, a])
    with pytest.raises(ValueError):
        combine_inner_steps([a, {**b, "settings": {**b["settings"], "seeds": 99}}])
