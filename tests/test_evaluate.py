"""Evaluation (refimpl/evaluate.py): few-shot readout, applying a rule, the comparison, the demo."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

import refimpl.evaluate as ev
from refimpl.config import preset
from refimpl.data import get_dataset
from refimpl.data.base import ArraySource, Dataset
from refimpl.params import init_phi, init_theta, load_params, save_params
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
# comparison and table
# ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    return get_dataset("digits")


def test_compare_rows_are_complete_and_sane(digits):
    theta = init_theta(TINY, np.random.default_rng(7), np.float32)
    rows = ev.compare(theta, TINY, k_shot=5, inner_steps=2, seeds=(0, 1), n_trials=2, dataset=digits)
    assert [r["method"] for r in rows] == list(ev.METHODS)
    for r in rows:
        assert 0 <= r["mean"] <= 1 and r["std"] >= 0
        assert r["n"] == 2 and len(r["per_seed"]) == 2 and r["diverged"] == 0
        assert r["mean"] == pytest.approx(np.mean(r["per_seed"]))
        assert r["seeds"] == [0, 1]
    by = {r["method"]: r for r in rows}
    for r in rows:   # the paired difference against the same seed's phi_0
        d = np.subtract(r["per_seed"], by["init"]["per_seed"])
        assert r["delta_vs_init"] == pytest.approx(d.mean())
        assert r["delta_vs_init_std"] == pytest.approx(d.std())
        assert r["chance"] == pytest.approx(0.1) and r["dataset"] == "digits" and r["k_shot"] == 5
    assert by["learned"]["inner_steps"] == by["random_rule"]["inner_steps"] == 2
    assert by["raw"]["mean"] > 0.6                       # 5-shot ridge on 8x8 digit pixels
    assert by["init"]["mean"] > 0.15                     # 8 random features are above chance
    json.dumps(rows)                                     # JSON-ready


def test_compare_is_paired_zero_steps_equal_init_and_learned_equals_random_for_same_theta(digits):
    theta = init_theta(TINY, np.random.default_rng(7))
    rows = {r["method"]: r for r in ev.compare(theta, TINY, k_shot=5, inner_steps=0, seeds=(3,),
                                               n_trials=2, dataset=digits, dtype=np.float64)}
    # with no step both rules leave phi_0 as it is, scored on the same labeled batches
    assert rows["learned"]["per_seed"] == rows["init"]["per_seed"] == rows["random_rule"]["per_seed"]
    # the random rule of seed s is init_theta(config, default_rng([s, 1])): given as the learned
    # theta, the two rule rows must agree exactly (same phi_0, same unlabeled batches)
    # (a large EMA step, so that two steps on other batches would change the accuracy)
    fast = TINY.replace(lr_phi=0.5)
    same = init_theta(fast, np.random.default_rng([3, 1]))
    rows = {r["method"]: r for r in ev.compare(same, fast, k_shot=5, inner_steps=2, seeds=(3,),
                                               n_trials=2, dataset=digits, dtype=np.float64,
                                               curve_every=1)}
    assert rows["learned"]["per_seed"] == rows["random_rule"]["per_seed"]
    assert rows["learned"]["per_seed"] != rows["init"]["per_seed"]
    assert rows["learned"]["curve"]["step"] == [0, 1, 2]
    assert rows["learned"]["curve"]["mean"][-1] == rows["learned"]["mean"]
    assert rows["learned"]["curve"]["mean"][0] == rows["init"]["mean"]
    assert rows["learned"]["curve"]["gain_mean"] == pytest.approx(
        np.subtract(rows["learned"]["curve"]["mean"], rows["init"]["mean"]))
    assert "curve" not in rows["init"]


def test_compare_counts_diverged_seeds(monkeypatch, digits):
    monkeypatch.setattr(ev, "update_step", _nan_after(0))
    theta = init_theta(TINY, np.random.default_rng(7))
    rows = {r["method"]: r for r in ev.compare(theta, TINY, k_shot=3, inner_steps=1, seeds=(0, 1),
                                               n_trials=1, dataset=digits)}
    for m in ("learned", "random_rule"):
        assert rows[m]["diverged"] == 2 and rows[m]["n"] == 0 and np.isnan(rows[m]["mean"])
        assert rows[m]["per_seed"] == [None, None] and np.isnan(rows[m]["delta_vs_init"])
    assert rows["init"]["n"] == 2 and rows["init"]["diverged"] == 0
    table = ev.format_table(list(rows.values()))
    assert table.count("n/a") == 4          # accuracy and paired change of both rules


def test_compare_validates(digits):
    theta = init_theta(TINY, np.random.default_rng(7))
    with pytest.raises(ValueError, match="seed"):
        ev.compare(theta, TINY, seeds=(), dataset=digits)
    with pytest.raises(ValueError, match="inner_steps"):
        ev.compare(theta, TINY, inner_steps=-2, dataset=digits)
    with pytest.raises(ValueError, match="layer_sizes must start"):
        ev.compare(theta, TINY, layer_sizes=(15, 8), dataset=digits)
    with pytest.raises(ValueError, match="unknown dataset"):
        ev.compare(theta, TINY, dataset_name="mnist-from-the-internet")


def test_format_table():
    rows = [
        {"label": "learned rule, 10 steps", "inner_steps": 10, "mean": 0.51234, "std": 0.0201,
         "delta_vs_init": 0.0123, "delta_vs_init_std": 0.004,
         "n": 5, "diverged": 0, "dataset": "digits", "k_shot": 10, "chance": 0.1},
        {"label": "raw pixels (reference)", "inner_steps": 0, "mean": 0.9, "std": 0.0, "n": 5,
         "delta_vs_init": -0.25, "delta_vs_init_std": 0.01, "diverged": 0},
        {"label": "tiny loss", "inner_steps": 10, "mean": 0.5, "std": 0.01, "n": 5,
         "delta_vs_init": -0.0002, "delta_vs_init_std": 0.001, "diverged": 0},
        {"label": "x", "inner_steps": 10, "mean": float("nan"), "std": float("nan"), "n": 0,
         "delta_vs_init": float("nan"), "delta_vs_init_std": float("nan"), "diverged": 5},
    ]
    text = ev.format_table(rows)
    lines = text.splitlines()
    table = lines[:6]
    assert table[0].startswith("| method") and "accuracy (mean ± std)" in table[0]
    assert "vs phi_0, paired" in table[0]
    assert set(table[1]) <= set("|-:")
    assert len({len(line) for line in table}) == 1                  # aligned columns
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table]
    assert cells[2] == ["learned rule, 10 steps", "10", "0.512 ± 0.020", "+0.012 ± 0.004", "5", "0"]
    assert cells[3] == ["raw pixels (reference)", "0", "0.900 ± 0.000", "-0.250 ± 0.010", "5", "0"]
    assert cells[4] == ["tiny loss", "10", "0.500 ± 0.010", "+0.000 ± 0.001", "5", "0"]
    assert cells[5] == ["x", "10", "n/a", "n/a", "0", "5"]
    assert lines[-1] == "digits, 10-shot, test split; chance 0.100"
    # rows without the paired fields (or the dataset line) give the shorter table
    plain = [{k: v for k, v in r.items() if not k.startswith("delta") and k not in
              ("dataset", "k_shot", "chance")} for r in rows]
    short = ev.format_table(plain).splitlines()
    assert len(short) == 6 and "paired" not in short[0]
    assert [c.strip() for c in short[2].strip("|").split("|")] == [
        "learned rule, 10 steps", "10", "0.512 ± 0.020", "5", "0"]
    with pytest.raises(ValueError, match="no rows"):
        ev.format_table([])


# ---------------------------------------------------------------------------------
# the main job
# ---------------------------------------------------------------------------------
def test_run_demo_plumbing_writes_its_files(tmp_path):
    calls = {}

    def fake_train(run_dir, minutes):
        calls["train"] = (run_dir, minutes)
        save_params(run_dir / "theta.npz", init_theta(TINY, np.random.default_rng(0), np.float32),
                    TINY, kind="theta")

    def fake_plot(run_dir):
        path = run_dir / "training.png"
        path.write_bytes(b"\x89PNG fake")
        return [path]

    class Out:
        text = ""

        def write(self, s):
            Out.text += s

        def flush(self):
            pass

    run_dir = tmp_path / "demo"
    result = ev.run_demo(run_dir, minutes=0.25, train_fn=fake_train, plot_fn=fake_plot,
                         inner_steps=2, seeds=(0, 1), n_trials=1, k_shot=3, curve_every=1, out=Out())
    assert calls["train"] == (run_dir, 0.25)
    for name in ("comparison.json", "comparison.md", "comparison.png", "comparison_curve.png",
                 "training.png"):
        assert (run_dir / name).is_file(), name
    for name in ("comparison.png", "comparison_curve.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    umask = os.umask(0)
    os.umask(umask)
    assert ((run_dir / "comparison.json").stat().st_mode & 0o777) == 0o666 & ~umask   # not mkstemp's 0600
    assert not [p.name for p in run_dir.iterdir() if p.name.endswith(".tmp")]
    saved = json.loads((run_dir / "comparison.json").read_text())
    assert [r["method"] for r in saved["rows"]] == list(ev.METHODS)
    assert saved["meta"]["k_shot"] == 3 and saved["meta"]["config"]["batch_size"] == TINY.batch_size
    table = ev.format_table(result["rows"])
    assert table in (run_dir / "comparison.md").read_text()
    assert table in Out.text
    theta, cfg = load_params(result["theta_path"], kind="theta")
    assert cfg == TINY
    # the control comparison on the meta-training distribution, in its own folder
    control = json.loads((run_dir / ev.CONTROL["name"] / "comparison.json").read_text())
    assert control["meta"]["dataset"] == "glyphs" and control["meta"]["n_way"] == ev.CONTROL["n_way"]
    assert [r["method"] for r in control["rows"]] == list(ev.METHODS)
    assert ev.format_table(result["control_rows"]) in Out.text


def test_run_demo_fails_clearly_without_theta(tmp_path):
    with pytest.raises(FileNotFoundError, match="did not write"):
        ev.run_demo(tmp_path, minutes=0, train_fn=lambda d, m: None, plot_fn=lambda d: [],
                    out=open("/dev/null", "w"))


def test_train_for_meets_a_time_budget_continues_the_run_and_feeds_the_demo(tmp_path):
    from refimpl.train import read_log

    run_dir = tmp_path / "run"
    log = io.StringIO()
    assert ev.train_for(run_dir, 0, "tiny", quiet=True, out=log) == 0     # no time: no meta-step
    first = ev.train_for(run_dir, 0.01, "tiny", quiet=True, out=log)      # at least one meta-step
    assert first >= 1 and (run_dir / "theta.npz").is_file()
    second = ev.train_for(run_dir, 0.01, "tiny", quiet=True, out=log)
    assert second >= first + 1
    assert "continuing the run" in log.getvalue()
    assert [r["step"] for r in read_log(run_dir)] == list(range(1, second + 1))
    # the demo on that run, with the trainer's own plot of the meta-training curves
    result = ev.run_demo(run_dir, minutes=0, train_fn=lambda d, m: None, inner_steps=2, seeds=(0,), control=None,
                         n_trials=1, k_shot=3, curve_every=None, out=log)
    assert (run_dir / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (run_dir / "comparison_curve.png").exists()
    assert set(result["paths"]) == {"json", "markdown", "bar_chart", "training_plot0"}


def test_demo_parser_defaults_and_command(monkeypatch):
    import argparse

    parser = argparse.ArgumentParser()
    ev.add_demo_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["demo", "--minutes", "0.5", "--seeds", "2"])
    assert (args.run_dir, args.minutes, args.inner_steps, args.seeds) == ("runs/demo", 0.5, 200, 2)
    seen = {}
    monkeypatch.setattr(ev, "run_demo", lambda run_dir, **kw: seen.update(run_dir=run_dir, **kw))
    assert args.func(args) == 0
    assert seen == {"run_dir": "runs/demo", "minutes": 0.5, "inner_steps": 200, "seeds": (0, 1)}
