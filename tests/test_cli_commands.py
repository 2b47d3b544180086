"""Every command of the command line run end to end with its backend stubbed: each argument reaches it.

The parsers are tested elsewhere; here ``refimpl.cli.main`` runs the whole
command with non-default, pairwise different values for every option, and the
stub (the function the command hands its work to) records what it was given.
Stubs replace the backend wherever a module holds it, so the tests do not
depend on how the command modules import it. The rule card (the ``.json``
beside a theta file) is read for a shipped name and for a file, and its
recommended step count is what the demo evaluates.
"""
from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest

from refimpl.cli import build_parser, main
from refimpl.params import init_theta, save_params


def stub_everywhere(monkeypatch, module_name: str, name: str, stub):
    """Replace ``module_name.name`` by ``stub`` in that module and in every loaded refimpl module holding it."""
    build_parser()                          # imports every command module
    module = importlib.import_module(module_name)
    real = getattr(module, name)
    monkeypatch.setattr(module, name, stub)
    for mod_name, mod in list(sys.modules.items()):
        if mod_name.startswith("refimpl") and mod is not module:
            for attr, value in list(vars(mod).items()):
                if value is real:
                    monkeypatch.setattr(mod, attr, stub)
    return real


def assert_reached(given: dict, expected: dict) -> None:
    """Every expected argument reached the stub with its value (options added later may come too)."""
    assert {k: given.get(k, "<not given>") for k in expected} == expected


class Recorder:
    """A stub that records its calls and returns ``result(*args, **kwargs)``."""

    def __init__(self, result=None):
        self.calls, self.result = [], result

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result(*args, **kwargs) if callable(self.result) else self.result

    @property
    def only(self):
        assert len(self.calls) == 1, self.calls
        return self.calls[0]


def _rows():
    return [{"method": m, "acc": 0.5, "acc_se": 0.01, "delta": 0.0, "delta_se": 0.0, "better": 0, "n": 2,
             "effective_rank": 3.0, "mean_abs_corr": 0.1, "zero_rows": 0.0, "diverged": 0}
            for m in ("rule@0", "ink")]


def fake_benchmark(theta, config, dataset, **kw):
    diag = {"effective_rank": 3.0, "mean_abs_corr": 0.1, "zero_rows": 0.0}
    per_seed = [{"seed": seed, "acc": {"rule@0": 0.5, "ink": 0.25}, "diag": {"rule@0": diag, "ink": diag}}
                for seed in kw["seeds"]]
    return {"per_seed": per_seed, "summary": _rows(), "layer_sizes": [dataset.n_features, 4],
            "k_shot": kw["k_shot"], "k_query": kw["k_query"], "n_trials": kw["n_trials"], "dataset": dataset.name,
            "n_classes": kw["n_way"] or dataset.n_classes}


def fake_report(rule, datasets, **kw):
    return {"rule": str(rule), "notes": [], "settings": kw, "paths": {},
            "datasets": {name: {"summary": _rows(), "per_seed": [{}], "k_shot": 1, "k_query": 1, "n_trials": 1,
                                "layer_sizes": [2, 3], "n_classes": 2} for name in datasets}}


# ---------------------------------------------------------------------------------
# refimpl eval
# ---------------------------------------------------------------------------------
EVAL_ARGS = ["--datasets", "moons,digits", "--k-shot", "3", "--inner-steps", "0,7", "--seeds", "4",
             "--baselines", "raw,pca", "--n-way", "5", "--trials", "6", "--vae-steps", "11",
             "--supervised-steps", "12"]


def test_eval_hands_every_option_to_evaluate_rule(monkeypatch, tmp_path, capsys):
    evaluate = Recorder(fake_report)
    stub_everywhere(monkeypatch, "refimpl.evaluation.suite", "evaluate_rule", evaluate)
    assert main(["eval", "random", *EVAL_ARGS, "--out", str(tmp_path / "out")]) == 0
    args, kw = evaluate.only
    given = dict(zip(("rule", "datasets"), args), **kw)
    assert_reached(given, {"rule": "random", "datasets": ["moons", "digits"], "k_shot": 3, "inner_steps": [0, 7],
                     "seeds": 4, "baselines": ["raw", "pca"], "n_way": 5, "n_trials": 6, "vae_steps": 11,
                     "supervised_steps": 12, "out_dir": str(tmp_path / "out")})
    assert "# Evaluation of random" in capsys.readouterr().out


def test_eval_reaches_the_benchmark_with_every_option(monkeypatch, tmp_path):
    bench = Recorder(fake_benchmark)
    stub_everywhere(monkeypatch, "refimpl.evaluation.benchmark", "benchmark", bench)
    assert main(["eval", "random", *EVAL_ARGS, "--out", str(tmp_path / "out")]) == 0
    # one call per (dataset, seed), so that each finished seed is kept (resumable evaluation)
    assert [(c[0][2].name, list(c[1]["seeds"])) for c in bench.calls] == [
        (name, [seed]) for name in ("moons", "digits") for seed in range(4)]
    from refimpl.train import train_preset
    expected_theta = init_theta(train_preset("small").model, np.random.default_rng(12345), np.float32)
    for (theta, config, ds), kw in bench.calls:
        assert all(np.array_equal(theta[k], expected_theta[k]) for k in expected_theta)
        assert config == train_preset("small").model
        assert (kw["k_shot"], kw["k_query"], kw["n_trials"]) == (3, 10, 6)
        assert tuple(kw["inner_steps"]) == (0, 7)
        assert tuple(kw["baselines"]) == ("raw", "pca", "ink")           # ink is always added
        assert (kw["vae_steps"], kw["supervised_steps"]) == (11, 12)
        # 5-way tasks only where the dataset has more classes (digits 10, moons 2)
        assert kw["n_way"] == (5 if ds.name == "digits" else None)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["settings"]["seeds"] == 4 and list(saved["datasets"]) == ["moons", "digits"]


# ---------------------------------------------------------------------------------
# rule cards
# ---------------------------------------------------------------------------------
def _theta_file(path, card=None):
    from refimpl.train import train_preset

    config = train_preset("small").model
    save_params(path, init_theta(config, np.random.default_rng(3), np.float32), config, kind="theta")
    if card is not None:
        path.with_suffix(".json").write_text(json.dumps(card))
    return path


def test_the_card_of_a_shipped_rule_is_read(monkeypatch):
    from refimpl.pretrained import RULES_DIR, list_rules, load_rule

    name = list_rules()[0]
    card = json.loads((RULES_DIR / f"{name}.json").read_text())
    assert load_rule(name)[2] == card
    stub_everywhere(monkeypatch, "refimpl.evaluation.benchmark", "benchmark", Recorder(fake_benchmark))
    from refimpl.evaluation.suite import evaluate_rule
    report = evaluate_rule(name, ["moons"], seeds=1, inner_steps=[0], baselines=["raw"], progress=False)
    assert report["info"] == card
    assert f"recommended inner steps {card['recommended_inner_steps']}" in report["notes"][0]


def test_the_card_beside_a_theta_file_is_read_and_none_is_empty(tmp_path):
    from refimpl.pretrained import load_rule

    card = {"name": "mine", "recommended_inner_steps": 37}
    assert load_rule(str(_theta_file(tmp_path / "mine.npz", card)))[2] == card
    assert load_rule(tmp_path / "mine.npz")[2] == card
    assert load_rule(str(_theta_file(tmp_path / "bare.npz")))[2] == {}


def test_demo_evaluates_the_cards_recommended_step_count(monkeypatch, tmp_path):
    # 37, not the default 100: a card whose key is not read would give [0, 100]
    rule = _theta_file(tmp_path / "mine.npz", {"name": "mine", "recommended_inner_steps": 37})
    evaluate = Recorder(fake_report)
    train = Recorder(3)
    stub_everywhere(monkeypatch, "refimpl.evaluation.suite", "evaluate_rule", evaluate)
    stub_everywhere(monkeypatch, "refimpl.evaluation.demo", "train_for", train)
    stub_everywhere(monkeypatch, "refimpl.evaluation.demo", "_default_plot", Recorder([]))
    run_dir = tmp_path / "demo"
    assert main(["demo", "--rule", str(rule), "--run-dir", str(run_dir), "--minutes", "0.25", "--seeds", "3"]) == 0
    assert len(evaluate.calls) == 2                                  # transfer and the glyph control
    for args, kw in evaluate.calls:
        assert args[0] == str(rule)
        assert kw["inner_steps"] == [0, 37] and kw["seeds"] == 3
    (train_dir, minutes), _ = train.only
    assert (str(train_dir), minutes) == (str(run_dir / "meta_training"), 0.25)


def test_demo_hands_every_option_to_run_demo(monkeypatch, tmp_path):
    demo = Recorder({})
    stub_everywhere(monkeypatch, "refimpl.evaluation.demo", "run_demo", demo)
    assert main(["demo", "--run-dir", str(tmp_path / "d"), "--minutes", "0.5", "--seeds", "2",
                 "--rule", "random"]) == 0
    args, kw = demo.only
    assert_reached(dict(zip(("run_dir",), args), **kw), {"run_dir": str(tmp_path / "d"), "minutes": 0.5,
                                                         "seeds": 2, "rule": "random"})


# ---------------------------------------------------------------------------------
# refimpl train, refimpl plot
# ---------------------------------------------------------------------------------
def _train_call(run):
    args, kw = run.only
    return dict(zip(("run_dir", "tc"), args), **kw)


def test_train_hands_every_option_to_the_trainer(monkeypatch, tmp_path):
    run = Recorder(0)
    stub_everywhere(monkeypatch, "refimpl.train.trainer", "run", run)
    d = str(tmp_path / "run")
    assert main(["train", "--preset", "small", "--seed", "7", "--run-dir", d, "--steps", "9",
                 "--checkpoint-every", "4", "--max-minutes", "1.5", "--restart", "--quiet"]) == 0
    call = _train_call(run)
    tc = call.pop("tc")
    assert (tc.name, tc.seed) == ("small", 7)
    assert_reached(call, {"run_dir": d, "resume": False, "restart": True, "n_steps": 9, "checkpoint_every": 4,
                          "quiet": True, "expect": {}, "max_seconds": 90.0})


def test_train_resume_checks_the_given_preset_and_seed(monkeypatch, tmp_path):
    run = Recorder(0)
    stub_everywhere(monkeypatch, "refimpl.train.trainer", "run", run)
    d = str(tmp_path / "run")
    assert main(["train", "--resume", "--preset", "small", "--seed", "3", "--run-dir", d]) == 0
    call = _train_call(run)
    assert call["tc"] is None and call["resume"] is True and call["restart"] is False
    assert call["expect"] == {"name": "small", "seed": 3}
    assert (call["n_steps"], call["checkpoint_every"], call["max_seconds"], call["quiet"]) == (None, None, None,
                                                                                             False)


@pytest.mark.parametrize("where", [["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]])
def test_train_on_dask_hands_the_cluster_options_and_the_tasks_to_the_trainer(monkeypatch, tmp_path, where):
    made = []

    class FakeTasks:
        def __init__(self, **kw):
            made.append(kw)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False
    run = Recorder(0)
    stub_everywhere(monkeypatch, "refimpl.train.trainer", "run", run)
    stub_everywhere(monkeypatch, "refimpl.train.distributed", "DaskTasks", FakeTasks)
    d = str(tmp_path / "run")
    assert main(["train", "--run-dir", d, "--steps", "5", "--timeout", "7", "--seed", "2", *where]) == 0
    workers = int(where[1]) if where[0] == "--workers" else None
    scheduler = where[1] if where[0] == "--scheduler" else None
    assert made == [{"workers": workers, "scheduler": scheduler, "timeout": 7.0}]
    call = _train_call(run)
    assert isinstance(call["run_tasks"], FakeTasks)
    assert (call["run_dir"], call["tc"].name, call["tc"].seed, call["n_steps"]) == (d, "tiny", 2, 5)


def test_plot_hands_the_window_to_plot_run(monkeypatch, tmp_path, capsys):
    plot = Recorder(tmp_path / "curves.png")
    stub_everywhere(monkeypatch, "refimpl.train.plot", "plot_run", plot)
    assert main(["plot", str(tmp_path), "--window", "13"]) == 0
    args, kw = plot.only
    assert (str(args[0]), kw) == (str(tmp_path), {"window": 13})
    assert "curves.png" in capsys.readouterr().out


# ---------------------------------------------------------------------------------
# refimpl ops-report, refimpl golden
# ---------------------------------------------------------------------------------
def test_ops_report_hands_the_size_to_the_report(monkeypatch):
    report = Recorder(0)
    stub_everywhere(monkeypatch, "refimpl.reference.ops_report", "operator_report", report)
    assert main(["ops-report", "--size", "paper"]) == 0
    args, kw = report.only
    assert dict(zip(("size_name",), args), **kw) == {"size_name": "paper"}


class _Passing:
    ok = True
    cases = []

    def summary(self):
        return ""

    def write_json(self, path):
        self.written = path


def test_golden_export_hands_directory_and_kinds(monkeypatch, tmp_path):
    export = Recorder({"cases": [1, 2]})
    stub_everywhere(monkeypatch, "refimpl.golden", "export", export)
    assert main(["golden", "export", str(tmp_path / "g"), "--kinds", "orth,ridge_solve"]) == 0
    args, kw = export.only
    assert str(args[0]) == str(tmp_path / "g") and kw["kinds"] == ["orth", "ridge_solve"]


def test_golden_check_hands_directory_float32_and_only(monkeypatch, tmp_path):
    check = Recorder(_Passing())
    stub_everywhere(monkeypatch, "refimpl.golden", "check", check)
    assert main(["golden", "check", str(tmp_path), "--float32", "--only", "orth"]) == 0
    args, kw = check.only
    assert str(args[0]) == str(tmp_path) and kw["float32"] is True and kw["only"] == ["orth"]


def test_golden_verify_hands_backend_selection_float32_and_json(monkeypatch, tmp_path):
    backend = object()
    load = Recorder(backend)
    result = _Passing()
    verify = Recorder(result)
    stub_everywhere(monkeypatch, "refimpl.golden.verifier", "load_backend", load)
    stub_everywhere(monkeypatch, "refimpl.golden.verifier", "verify", verify)
    out = str(tmp_path / "r.json")
    assert main(["golden", "verify", str(tmp_path), "--backend", "mod:obj", "--float32", "--include", "orth,relu",
                 "--exclude", "relu", "--json", out]) == 0
    assert load.only[0] == ("mod:obj",)
    args, kw = verify.only
    assert str(args[0]) == str(tmp_path) and args[1] is backend
    assert (kw["include"], kw["exclude"], kw["float32"]) == (["orth", "relu"], ["relu"], True)
    assert str(result.written) == out
