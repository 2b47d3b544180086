"""Evaluation (the refimpl.evaluation package): few-shot readout, applying a rule, the comparison, the demo."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

import refimpl.evaluation.fewshot as ev
from refimpl.config import preset
from refimpl.data.base import ArraySource, Dataset
from refimpl.evaluation import demo, reporting, suite
from refimpl.params import init_phi, init_theta
from refimpl.rule.update_step import update_step

TINY = preset("tiny")            # B=7, layer_sizes [15, 9, 14, 8]
N_FEATURES = TINY.layer_sizes[0]


def _source(x_train, y_train, x_test, y_test, n_classes, name):
    return ArraySource(name, {"train": x_train, "test": x_test}, {"train": y_train, "test": y_test},
                       class_names=[f"c{i}" for i in range(n_classes)])


def separable_dataset(n_classes=4, per_class=40, n_features=N_FEATURES, noise=0.03, seed=0):
    """Each class a tight cluster around its own random corner-ish point of [0, 1]^F."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, size=(n_classes, n_features))
    labels = np.repeat(np.arange(n_classes), per_class)

    def draw():
        x = centres[labels] + noise * rng.standard_normal((labels.size, n_features))
        return np.clip(x, 0, 1)
    return Dataset(_source(draw(), labels, draw(), labels, n_classes, "separable"))


def random_label_dataset(n_classes=4, per_class=30, n_features=64, seed=1):
    """Uniform inputs with labels independent of them: nothing to learn."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    return Dataset(_source(rng.random((labels.size, n_features)), labels,
                           rng.random((labels.size, n_features)), labels, n_classes, "noise"))


def assert_phi_finite(phi):
    assert all(np.isfinite(v).all() for v in phi.values())


# ---------------------------------------------------------------------------------
# readout
# ---------------------------------------------------------------------------------
def test_readout_accuracy_matches_an_independent_ridge_classifier():
    rng = np.random.default_rng(3)
    n_cls, F = 3, 5
    f_s, f_q = rng.standard_normal((30, F)), rng.standard_normal((40, F))
    lab_s, lab_q = rng.integers(n_cls, size=30), rng.integers(n_cls, size=40)
    # targets with one extra regression column, which the readout must ignore
    y_s = np.concatenate([np.eye(n_cls)[lab_s], rng.uniform(-1, 1, (30, 1))], axis=1)
    y_q = np.concatenate([np.eye(n_cls)[lab_q], rng.uniform(-1, 1, (40, 1))], axis=1)
    ridge = 0.7
    # independent transcription: explicit normal equations on [f, 1] with centred, scaled one-hots
    A = np.hstack([f_s, np.ones((30, 1))])
    Y = np.eye(n_cls)[lab_s]
    Yh = (Y - Y.mean()) / np.sqrt(np.sum((Y - Y.mean()) ** 2) / 30)
    C = np.linalg.solve(A.T @ A + ridge * np.eye(F + 1), A.T @ Yh)
    pred = np.argmax(np.hstack([f_q, np.ones((40, 1))]) @ C, axis=1)
    expected = np.mean(pred == lab_q)
    got = ev.readout_accuracy(f_s, y_s, f_q, y_q, n_cls, ridge)
    assert got == pytest.approx(expected, abs=1e-12)
    # and the prediction is not trivially constant on this data
    assert len(np.unique(pred)) > 1


def test_readout_accuracy_rejects_bad_shapes_and_nonfinite_features():
    f = np.zeros((4, 3))
    y = np.eye(2)[[0, 1, 0, 1]]
    with pytest.raises(ValueError, match="same F"):
        ev.readout_accuracy(f, y, np.zeros((4, 2)), y, 2, 0.1)
    with pytest.raises(ValueError, match="support targets"):
        ev.readout_accuracy(f, y[:3], f, y, 2, 0.1)
    bad = f.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ev.readout_accuracy(bad, y, f, y, 2, 0.1)


def test_few_shot_accuracy_is_high_on_separable_data():
    ds = separable_dataset()
    mean, std = ev.few_shot_accuracy(None, ds, TINY, np.random.default_rng(0), k_shot=5, n_trials=4)
    assert mean > 0.97
    assert 0 <= std < 0.05
    # the same data seen through a random-init base model's top features (8 units, 4 classes)
    cfg = TINY.replace(layer_sizes=(N_FEATURES, 32, 16))
    phi = init_phi(cfg, np.random.default_rng(1))
    mean_phi, _ = ev.few_shot_accuracy(phi, ds, cfg, np.random.default_rng(0), k_shot=5, n_trials=4)
    assert mean_phi > 0.8


def test_few_shot_accuracy_is_near_chance_on_random_labels():
    # 30 examples per class, k_shot 10, k_query 20: the query is exactly the rest of each
    # class. Support and query must be disjoint: 40 support rows in 64 dimensions are
    # fitted almost exactly, so any overlap would lift the accuracy well above chance.
    ds = random_label_dataset()
    mean, std = ev.few_shot_accuracy(None, ds, TINY, np.random.default_rng(5), k_shot=10,
                                     n_trials=30, k_query=20)
    # 30 trials x 80 queries: the standard error at chance 0.25 is about 0.01
    assert abs(mean - 0.25) < 0.05
    assert std > 0


def test_few_shot_accuracy_is_deterministic_and_validates():
    ds = separable_dataset()
    a = ev.few_shot_accuracy(None, ds, TINY, np.random.default_rng(9), k_shot=3, n_trials=3)
    b = ev.few_shot_accuracy(None, ds, TINY, 9, k_shot=3, n_trials=3)
    assert a == b
    with pytest.raises(ValueError, match="k_shot"):
        ev.few_shot_accuracy(None, ds, TINY, 0, k_shot=0)
    with pytest.raises(ValueError, match="no query examples"):
        ev.few_shot_accuracy(None, ds, TINY, 0, k_shot=40)
    with pytest.raises(ValueError, match="split"):
        ev.few_shot_accuracy(None, ds, TINY, 0, split="validation")
    wrong = TINY.replace(layer_sizes=(N_FEATURES + 1, 9, 8))
    with pytest.raises(ValueError, match="input features"):
        ev.few_shot_accuracy(init_phi(wrong, np.random.default_rng(0)), ds, wrong, 0)
    with pytest.raises(ValueError, match="Config"):
        ev.few_shot_accuracy(None, ds, "tiny", 0)


# ---------------------------------------------------------------------------------
# applying a rule
# ---------------------------------------------------------------------------------
def test_apply_rule_changes_phi_keeps_it_finite_and_matches_update_step():
    ds = separable_dataset()
    theta = init_theta(TINY, np.random.default_rng(0))
    phi0 = init_phi(TINY, np.random.default_rng(1))
    before = {k: v.copy() for k, v in phi0.items()}
    phi, history = ev.apply_rule(theta, phi0, ds, 3, TINY, np.random.default_rng(2))
    assert history == []
    assert set(phi) == set(phi0)
    assert_phi_finite(phi)
    for name in phi0:
        np.testing.assert_array_equal(phi0[name], before[name])      # not modified in place
        assert not np.array_equal(phi[name], phi0[name]), name
    # step by step with the same batches: three update_step calls
    rng = np.random.default_rng(2)
    expected = phi0
    for _ in range(3):
        expected = update_step(theta, expected, ds.unlabeled_batch(rng, TINY.batch_size, dtype=np.float64),
                               TINY)
    for name in phi:
        np.testing.assert_array_equal(phi[name], expected[name])


def test_apply_rule_history_and_zero_steps():
    ds = separable_dataset()
    theta = init_theta(TINY, np.random.default_rng(0))
    phi0 = init_phi(TINY, np.random.default_rng(1))
    phi, history = ev.apply_rule(theta, phi0, ds, 5, TINY, 3, eval_every=2, k_shot=3, n_trials=2)
    assert [h["step"] for h in history] == [0, 2, 4, 5]
    assert all(0 <= h["accuracy"] <= 1 and h["std"] >= 0 for h in history)
    # step 0 is phi0 scored on the eval_seed batches; the last is the returned phi on the same batches
    assert history[0]["accuracy"] == ev.few_shot_accuracy(phi0, ds, TINY, 0, k_shot=3, n_trials=2)[0]
    assert history[-1]["accuracy"] == ev.few_shot_accuracy(phi, ds, TINY, 0, k_shot=3, n_trials=2)[0]
    # evaluating does not consume the batch generator: the same phi as without history
    phi_plain, _ = ev.apply_rule(theta, phi0, ds, 5, TINY, 3)
    for name in phi:
        np.testing.assert_array_equal(phi[name], phi_plain[name])
    same, hist0 = ev.apply_rule(theta, phi0, ds, 0, TINY, 3)
    assert hist0 == [] and all(np.array_equal(same[k], phi0[k]) for k in phi0)


def test_apply_rule_float32_theta_on_float64_phi_and_bad_arguments():
    ds = separable_dataset()
    theta32 = init_theta(TINY, np.random.default_rng(0), np.float32)
    phi0 = init_phi(TINY, np.random.default_rng(1))
    phi, _ = ev.apply_rule(theta32, phi0, ds, 1, TINY, 0)
    assert all(v.dtype == np.float64 for v in phi.values())
    with pytest.raises(ValueError, match="n_steps"):
        ev.apply_rule(theta32, phi0, ds, -1, TINY, 0)
    with pytest.raises(ValueError, match="batch size"):
        ev.apply_rule(init_theta(TINY.replace(batch_size=8), np.random.default_rng(0)), phi0, ds, 1,
                      TINY, 0)
    with pytest.raises(ValueError, match="Dataset"):
        ev.apply_rule(theta32, phi0, np.zeros((3, 15)), 1, TINY, 0)


def _nan_after(n_ok):
    calls = {"n": 0}

    def fake_update_step(theta, phi, x, config):
        calls["n"] += 1
        out = update_step(theta, phi, x, config)
        if calls["n"] > n_ok:
            out = dict(out)
            out["layer1/W"] = out["layer1/W"].copy()
            out["layer1/W"][0, 0] = np.nan
        return out
    return fake_update_step


def test_apply_rule_raises_when_phi_diverges(monkeypatch):
    monkeypatch.setattr(ev, "update_step", _nan_after(2))
    ds = separable_dataset()
    theta = init_theta(TINY, np.random.default_rng(0))
    phi0 = init_phi(TINY, np.random.default_rng(1))
    with pytest.raises(ev.RuleDivergedError, match=r"step 3 of 4 \(in \['layer1/W'\]\)"):
        ev.apply_rule(theta, phi0, ds, 4, TINY, 0)


# ---------------------------------------------------------------------------------
# refimpl eval: the function, its report and its files
# ---------------------------------------------------------------------------------
def test_evaluate_rule_on_a_tiny_task_writes_tables_and_plots(tmp_path):
    theta = init_theta(TINY, np.random.default_rng(0), np.float32)
    ds = separable_dataset()
    # a registered name is needed: patch the lookup to the separable dataset
    report = suite.evaluate_rule((theta, TINY), ["moons"], inner_steps=[0, 2], seeds=2, n_trials=1,
                                 baselines=["raw"], vae_steps=5, supervised_steps=5, out_dir=tmp_path / "out",
                                 progress=False,
                                 benchmark_fn=lambda th, cfg, _ds, **kw: suite.benchmark(
                                     th, cfg.replace(layer_sizes=(N_FEATURES, *cfg.layer_sizes[1:])), ds, **kw))
    rows = {r["method"]: r for r in report["datasets"]["moons"]["summary"]}
    assert set(rows) == {"rule@0", "rule@2", "random@2", "raw", "ink"}     # ink and the random theta always
    assert rows["rule@0"]["delta"] == 0 and rows["rule@0"]["n"] == 2
    assert report["settings"]["baselines"] == ["raw", "ink"]
    for name in ("report.json", "report.md", "accuracy.png", "inner_steps.png"):
        assert (tmp_path / "out" / name).is_file(), name
    assert (tmp_path / "out" / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "out" / "report.md").read_text()
    assert "| ink |" in text and ("Collapse check" in text or "COLLAPSED" in text)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [(r["method"], r["acc"]) for r in saved["datasets"]["moons"]["summary"]] == \
        [(r["method"], r["acc"]) for r in report["datasets"]["moons"]["summary"]]


def test_benchmark_counts_a_diverged_rule_and_keeps_its_rows(monkeypatch):
    import refimpl.evaluation.benchmark as bm
    theta = init_theta(TINY, np.random.default_rng(0), np.float32)
    monkeypatch.setattr("refimpl.rule.update_step.update_step", _nan_after(0))
    res = bm.benchmark(theta, TINY, separable_dataset(), seeds=range(2), k_shot=3, k_query=3, n_trials=1,
                       inner_steps=(0, 1, 3), baselines=(), progress=False)
    rows = {r["method"]: r for r in res["summary"]}
    assert list(rows) == ["rule@0", "rule@1", "rule@3"]
    assert rows["rule@0"]["n"] == 2 and rows["rule@0"]["diverged"] == 0
    assert (rows["rule@1"]["n"], rows["rule@1"]["diverged"]) == (0, 2)
    assert (rows["rule@3"]["n"], rows["rule@3"]["diverged"]) == (0, 2)
    assert "| rule@3 |" in reporting.format_summary(res["summary"])


@pytest.mark.parametrize("kwargs, match", [
    ({"datasets": "digits"}, "datasets must be a non-empty list"),
    ({"datasets": ["nosuch"]}, "unknown dataset nosuch"),
    ({"k_shot": 0}, "k_shot must be an integer >= 1"),
    ({"seeds": 0}, "seeds must be an integer >= 1"),
    ({"inner_steps": [0, -1]}, "inner_steps must be a non-empty list"),
    ({"baselines": ["vae", "magic"]}, "unknown baseline magic"),
    ({"n_way": 1}, "n_way must be an integer >= 2"),
])
def test_evaluate_rule_checks_its_arguments_before_any_work(kwargs, match):
    called = []
    with pytest.raises(ValueError, match=match):
        suite.evaluate_rule("random", **{"datasets": ["moons"], **kwargs},
                            benchmark_fn=lambda *a, **k: called.append(1))
    assert not called


def test_format_summary_always_ends_with_the_collapse_line():
    base = {"acc": 0.5, "acc_se": 0.01, "delta": 0.0, "delta_se": 0.0, "better": 0, "n": 3,
            "mean_abs_corr": 0.1, "zero_rows": 0.0, "diverged": 0}
    fine = reporting.format_summary([{**base, "method": "rule@0", "effective_rank": 14.0},
                                     {**base, "method": "rule@9", "effective_rank": 7.0}])
    assert "COLLAPSED" not in fine and "Collapse check: every rule row keeps at least 0.5" in fine
    bad = reporting.format_summary([{**base, "method": "rule@0", "effective_rank": 14.0},
                                    {**base, "method": "rule@9", "effective_rank": 6.99}])
    assert "Warning: rule@9: COLLAPSED" in bad


# ---------------------------------------------------------------------------------
# the demo's orchestration (stubs: no evaluation, no training)
# ---------------------------------------------------------------------------------
def _fake_report(rule, datasets, **kw):
    rows = [{"method": m, "acc": 0.5, "acc_se": 0.01, "delta": 0.0, "delta_se": 0.0, "better": 0, "n": 1,
             "effective_rank": 3.0, "mean_abs_corr": 0.1, "zero_rows": 0.0, "diverged": 0}
            for m in ("rule@0", "ink")]
    res = {name: {"summary": rows, "per_seed": [{}], "k_shot": kw["k_shot"], "k_query": 10, "n_trials": 1,
                  "layer_sizes": [2, 3], "n_classes": 2} for name in datasets}
    return {"rule": rule, "notes": [], "datasets": res, "settings": kw,
            "paths": {"markdown": str(kw["out_dir"] / "report.md")}}


def test_run_demo_orchestration_with_stubs(tmp_path):
    calls = []

    def evaluate_fn(rule, datasets, **kw):
        calls.append(("eval", tuple(datasets), kw.get("n_way"), kw["inner_steps"], kw["seeds"]))
        return _fake_report(rule, datasets, **kw)

    def train_fn(run_dir, minutes):
        calls.append(("train", run_dir.name, minutes))
        return 3

    def plot_fn(run_dir):
        calls.append(("plot", run_dir.name))
        return [run_dir / "curves.png"]

    err = io.StringIO()
    result = demo.run_demo(tmp_path / "demo", rule="random", minutes=0.5, seeds=2, datasets=("moons",),
                           evaluate_fn=evaluate_fn, train_fn=train_fn, plot_fn=plot_fn, out=err)
    assert [c[0] for c in calls] == ["eval", "eval", "train", "plot"]
    assert calls[0][1:] == (("moons",), None, [0, 100], 2)
    assert calls[1][1:] == (("glyphs_rotation",), 10, [0, 100], 2)     # the glyph control, 10-way
    assert calls[2] == ("train", "meta_training", 0.5)
    assert result["meta_steps"] == 3 and "transfer_markdown" in result["paths"]
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("demo: 1/3 transfer") and lines[-1].startswith("demo: done in")
    assert all(line.startswith("demo: ") for line in lines)            # plain lines, no terminal needed


@pytest.mark.parametrize("kwargs, match", [
    ({"minutes": -1}, "minutes must be a finite number >= 0"),
    ({"minutes": float("nan")}, "minutes must be a finite number >= 0"),
    ({"seeds": 0}, "seeds must be an integer >= 1"),
    ({"rule": "no-such-rule"}, "neither a shipped rule"),
])
def test_run_demo_checks_arguments_before_any_work(tmp_path, kwargs, match):
    calls = []
    stub = lambda *a, **k: calls.append(1)          # noqa: E731
    with pytest.raises(ValueError, match=match):
        demo.run_demo(tmp_path / "demo", **kwargs, evaluate_fn=stub, train_fn=stub, plot_fn=stub,
                      out=io.StringIO())
    assert not calls and not (tmp_path / "demo").exists()


def test_train_for_meets_a_time_budget_and_continues_the_run(tmp_path):
    from refimpl.train import read_log

    run_dir = tmp_path / "run"
    log = io.StringIO()
    assert demo.train_for(run_dir, 0, "tiny", out=log) == 0            # no time: no meta-step
    first = demo.train_for(run_dir, 0.01, "tiny", out=log)             # at least one meta-step
    assert first >= 1 and (run_dir / "theta.npz").is_file()
    second = demo.train_for(run_dir, 0.01, "tiny", out=log)
    assert second >= first + 1
    assert [r["step"] for r in read_log(run_dir)] == list(range(1, second + 1))


def test_demo_and_eval_parsers(monkeypatch):
    import argparse

    from refimpl.cli import demo as demo_command, evaluate as eval_command

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    demo_command.add_demo_parser(sub)
    eval_command.add_eval_parser(sub)
    defaults = parser.parse_args(["demo"])
    assert (defaults.minutes, defaults.seeds) == (demo.DEMO_MINUTES, demo.DEMO_SEEDS)
    args = parser.parse_args(["demo", "--minutes", "0.5", "--seeds", "2"])
    seen = {}
    monkeypatch.setattr(demo, "run_demo", lambda run_dir, **kw: seen.update(run_dir=run_dir, **kw))
    assert args.func(args) == 0
    assert seen == {"run_dir": "runs/demo", "minutes": 0.5, "seeds": 2, "rule": demo.DEMO_RULE,
                    "continue_run": False}
    args = parser.parse_args(["eval", "random", "--inner-steps", "0,5", "--datasets", "moons,digits"])
    assert (args.inner_steps, args.datasets, args.seeds, args.k_shot) == ([0, 5], ["moons", "digits"], 10, 10)
