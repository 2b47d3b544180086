"""A user's own experiment: their data and rule variant through the public API and the command line,
progress lines, resumable evaluation, and the refusals and messages that replace silent surprises.
The CLI cases are tables (input -> the one line it now gives); see tests/test_cli.py for the pattern."""
import io
import json
import os
import tempfile

import numpy as np
import pytest

import refimpl
from refimpl.data import from_arrays, get_dataset, load_npz, register_dataset, unregister_dataset
from refimpl.evaluation import reporting, suite
from refimpl.npzio import atomic_write_bytes, remove_stale_temp_files
from refimpl.train import run, train_preset
from tests.helpers import stub_meta_gradient
from tests.test_cli import assert_one_line_error, cli


def blobs(n_train=60, n_test=90, n_features=6, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, size=(n_classes, n_features))

    def split(n):
        y = np.arange(n) % n_classes
        return np.clip(centres[y] + 0.05 * rng.normal(size=(n, n_features)), 0, 1).astype(np.float32), y
    return (*split(n_train), *split(n_test))


@pytest.fixture
def npz(tmp_path):
    x_train, y_train, x_test, y_test = blobs()
    path = tmp_path / "mine.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


QUICK = dict(inner_steps=[0, 2], seeds=2, baselines=["raw"], n_trials=1, progress=False)


# ---------------------------------------------------------------- 1. own data
def test_from_arrays_is_a_dataset_of_those_arrays():
    x_train, y_train, x_test, y_test = blobs()
    ds = from_arrays(x_train, y_train, x_test, y_test, name="mine")
    assert (ds.name, ds.n_features, ds.n_classes) == ("mine", 6, 3)
    x, labels = ds.arrays("test")
    np.testing.assert_array_equal(x, x_test)
    np.testing.assert_array_equal(labels, y_test)
    images = from_arrays((np.arange(2 * 4 * 3) % 256).astype(np.uint8).reshape(2, 4, 3), [0, 1],
                         np.zeros((2, 4, 3), np.uint8), [1, 0])
    assert images.image_shape == (4, 3) and images.arrays("train")[0].max() <= 1.0


X, Y = blobs()[:2]
FROM_ARRAYS_CASES = {
    "inputs above 1": ((X * 255, Y, X, Y), "must lie in [0, 1]"),
    "non-finite inputs": ((np.where(X > 0.5, np.nan, X), Y, X, Y), "non-finite"),
    "labels of another length": ((X, Y[:-1], X, Y), "y_train must have shape [60]"),
    "one-hot labels": ((X, np.eye(3, dtype=int)[Y], X, Y), "y_train must have shape [60]"),
    "float labels": ((X, Y.astype(float), X, Y), "integer or string label"),
    "feature counts differ": ((X, Y, X[:, :5], Y), "x_train has 6 features per example, x_test 5"),
    "a test label unseen in training": ((X, Y, X, Y + 1), "y_test has labels that y_train lacks"),
    "one class only": ((X, Y * 0, X, Y * 0), "at least 2 classes"),
    "a 4-d input": ((X.reshape(60, 1, 2, 3), Y, X, Y), "must have shape [n, n_features] or [n, H, W]"),
}


@pytest.mark.parametrize("case", sorted(FROM_ARRAYS_CASES))
def test_from_arrays_refuses_bad_arrays_in_one_line(case):
    arrays, match = FROM_ARRAYS_CASES[case]
    with pytest.raises(ValueError, match=match.replace("[", r"\[").replace("]", r"\]")) as e:
        from_arrays(*arrays, name="mine")
    assert "\n" not in str(e.value) and str(e.value).startswith("dataset mine: ")


def test_npz_and_registered_datasets_go_wherever_a_name_does(npz):
    ds = get_dataset(str(npz))
    assert ds.n_classes == 3 and get_dataset(str(npz)) is ds          # read once per process
    register_dataset("mine_blobs", load_npz(npz))
    try:
        with pytest.raises(ValueError, match="registered already"):
            register_dataset("mine_blobs", ds)
        with pytest.raises(ValueError, match="built-in"):
            register_dataset("moons", ds)
        tc = train_preset("tiny").replace(datasets=("mine_blobs", str(npz)), n_way=(2, 3))
        assert run(npz.parent / "run", tc, n_steps=2) == 0          # the real meta-gradient, on the user's data
        from refimpl.train import read_log
        assert all(r["J"] is not None for r in read_log(npz.parent / "run"))
        report = refimpl.evaluate_rule("random", ["mine_blobs", str(npz)], **QUICK)
        assert list(report["datasets"]) == ["mine_blobs", str(npz)]
    finally:
        unregister_dataset("mine_blobs")


def test_a_dataset_object_is_evaluated_like_a_name():
    ds = from_arrays(*blobs(), name="mine")
    by_object = refimpl.evaluate_rule("random", [ds], **QUICK)["datasets"]["mine"]
    register_dataset("mine_again", ds)
    try:
        by_name = refimpl.evaluate_rule("random", ["mine_again"], **QUICK)["datasets"]["mine_again"]
    finally:
        unregister_dataset("mine_again")
    assert [r["acc"] for r in by_object["per_seed"]] == [r["acc"] for r in by_name["per_seed"]]


# ---------------------------------------------------------------- 2. own rule variant, presets
@pytest.mark.parametrize("rule, match", [
    ((1, 2), "needs a refimpl.Config second"),
    ((1, refimpl.preset("tiny")), "needs theta as a dict"),
    (({"nope": np.zeros(2)}, refimpl.preset("tiny")), "evaluate_rule"),
    ((1, 2, 3), "must be \\(theta, config\\), got a tuple of 3"),
    (42, "rule must be a shipped rule name"),
])
def test_a_bad_theta_config_pair_is_one_clear_line(rule, match):
    with pytest.raises(ValueError, match=match) as e:
        refimpl.evaluate_rule(rule, ["moons"], **QUICK)
    assert "\n" not in str(e.value)


def test_a_rule_variant_is_evaluated_as_a_theta_config_pair():
    config = refimpl.preset("small").replace(activation="tanh")
    theta = refimpl.init_theta(config, np.random.default_rng(0))
    report = refimpl.evaluate_rule((theta, config), ["moons"], **QUICK)
    assert report["config"]["activation"] == "tanh" and report["rule"] == "given theta"


def test_one_set_of_preset_names():
    from refimpl.config import PRESET_NAMES, PRESETS
    from refimpl.train.presets import PRESET_NAMES as TRAIN_NAMES

    assert PRESET_NAMES == TRAIN_NAMES == tuple(PRESETS) == ("tiny", "mid", "small", "mixture", "paper")
    for name in PRESET_NAMES:
        assert train_preset(name).model == refimpl.preset(name), name
    theta, config, _ = refimpl.load_rule("small-glyphs-rotation")
    assert config == refimpl.preset("small")             # the shipped rule's config is the small preset
    with pytest.raises(ValueError, match="known: tiny, mid, small, mixture, paper"):
        refimpl.preset("huge")


def test_train_set_makes_a_variant_run(tmp_path, capsys):
    from refimpl.train import CONFIG_FILE, TrainConfig

    code, out, err = cli(["train", "--run-dir", str(tmp_path / "r"), "--steps", "1", "--quiet",
                          "--set", "model.activation=tanh", "--set", "n_way=[2,3]", "--set", "k_shot=3"], capsys)
    assert code == 0, err
    tc = TrainConfig.from_json((tmp_path / "r" / CONFIG_FILE).read_text())
    assert (tc.model.activation, tc.n_way, tc.k_shot) == ("tanh", (2, 3), 3)


# ---------------------------------------------------------------- the CLI table (input -> one line)
def _paths(tmp_path, npz):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=np.zeros((3, 2)))
    small = tmp_path / "small.npz"
    x_train, y_train, x_test, y_test = blobs(n_test=30)
    np.savez(small, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return {"npz": str(npz), "bad": str(bad), "small": str(small), "dir": str(tmp_path)}


CLI_CASES = {
    "eval duplicate datasets": (["eval", "random", "--datasets", "moons,moons"], "refimpl eval",
                                "dataset moons is given more than once"),
    "eval impossible n-way": (["eval", "random", "--datasets", "moons,digits", "--n-way", "500"], "refimpl eval",
                              "n_way 500 is more classes than any dataset has (moons 2, digits 10)"),
    "eval huge inner steps": (["eval", "random", "--inner-steps", "99999999999999999999"], "refimpl eval",
                              "at most 100000"),
    "eval missing npz": (["eval", "random", "--datasets", "{dir}/none.npz"], "refimpl eval", "no such file"),
    "eval npz lacking arrays": (["eval", "random", "--datasets", "{bad}"], "refimpl eval",
                                "missing array(s) y_train, x_test, y_test"),
    "eval too few test examples": (["eval", "random", "--datasets", "{small}"], "refimpl eval",
                                   "has 10 test examples of class '0'; each trial draws k_shot + k_query = 10 + 10"),
    "eval resume without out": (["eval", "random", "--resume"], "refimpl eval", "need --out"),
    "eval bad theta file": (["eval", "{npz}"], "refimpl eval", ""),
    "train bad scheduler": (["train", "--run-dir", "{dir}/t", "--scheduler", "notaurl"], "refimpl train",
                            "is not a Dask scheduler address"),
    "train scheduler without port": (["train", "--run-dir", "{dir}/t", "--scheduler", "tcp://"], "refimpl train",
                                     "is not a Dask scheduler address"),
    "train set unknown field": (["train", "--run-dir", "{dir}/t", "--set", "foo=1"], "refimpl train",
                                "not a TrainConfig field"),
    "train set bad activation": (["train", "--run-dir", "{dir}/t", "--set", "model.activation=nope"],
                                 "refimpl train", "field 'activation' must be one of"),
    "train set without =": (["train", "--run-dir", "{dir}/t", "--set", "k_shot"], "refimpl train",
                            "expected FIELD=VALUE"),
    "train missing npz": (["train", "--run-dir", "{dir}/t", "--datasets", "{dir}/none.npz"], "refimpl train",
                          "no such file"),
    "train resume with set": (["train", "--run-dir", "{dir}/t", "--resume", "--set", "k_shot=2"], "refimpl train",
                              "a resumed run keeps its own"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_bad_input_is_one_line(case, tmp_path, npz, capsys):
    argv, prog, match = CLI_CASES[case]
    paths = _paths(tmp_path, npz)
    code, out, err = cli([a.format(**paths) for a in argv], capsys)
    assert_one_line_error(code, err, prog, match or None)
    assert not (tmp_path / "t").exists()


def test_workers_above_the_cores_warn_and_are_capped(monkeypatch, capsys):
    from refimpl.cli.train import capped_workers

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert capped_workers(64, False, 4, "refimpl train") == 2
    assert "--workers 64 is more than the 2 usable cores and 4 task slots" in capsys.readouterr().err
    assert capped_workers(64, True, 4, "refimpl train") == 64
    assert capped_workers(2, False, 1, "refimpl train") == 1          # more workers than task slots
    assert capped_workers(2, False, 4, "refimpl train") == 2 and "warning" not in capsys.readouterr().err.split(
        "\n")[-1]


# ---------------------------------------------------------------- 3. progress
def test_train_prints_plain_progress_and_names_the_resumed_step(tmp_path, capsys, monkeypatch):
    import refimpl.runtime as runtime

    monkeypatch.setattr(runtime, "PLAIN_INTERVAL", 0.0)
    monkeypatch.setattr(runtime.Progress.__init__, "__defaults__", ("cases", None, 0.0))
    tc = train_preset("tiny")
    assert run(tmp_path / "r", tc, n_steps=2, quiet=False, meta_gradient_fn=stub_meta_gradient) == 0
    err = capsys.readouterr().err
    assert "meta-train (steps 1-2" in err and "meta-steps/s]" in err and "<" in err
    assert run(tmp_path / "r", resume=True, n_steps=4, quiet=False, meta_gradient_fn=stub_meta_gradient) == 0
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"resuming the run in {tmp_path / 'r'} from meta-step 2 (of 4)"
    assert "meta-train (steps 3-4" in err


def test_eval_prints_progress_with_rate_and_eta(capsys, monkeypatch):
    import refimpl.runtime as runtime

    monkeypatch.setattr(runtime.Progress.__init__, "__defaults__", ("cases", None, 0.0))
    refimpl.evaluate_rule("random", ["moons"], **{**QUICK, "progress": True})
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("eval: ") and "/2 seeds" in line]
    assert lines and lines[-1].startswith("eval: 2/2 seeds [") and "seeds/s]" in lines[-1]


# Within one seed: the hook fires as each method starts, in the order of the seed's record, with its position
# among the seed's planned methods; the rule's checkpoints are sorted with 0 added, random@0 is phi_0's row, ink
# is always added, and the checkpoints after one where phi diverged are not started (case: planned, not started).
METHOD_CASES = {
    "random rule, one baseline": (dict(rule="random", inner_steps=[0, 2], baselines=["raw"]),
                                  ["rule@0", "rule@2", "raw", "ink"], []),
    "shipped rule with its random rows": (dict(rule="small-glyphs-rotation", inner_steps=[0, 2, 3],
                                               baselines=["raw", "pca"]),
                                          ["rule@0", "rule@2", "rule@3", "random@2", "random@3", "raw", "pca",
                                           "ink"], []),
    "unsorted steps without 0": (dict(rule="random", inner_steps=[3, 1], baselines=[]),
                                 ["rule@0", "rule@1", "rule@3", "ink"], []),
    "diverged at the first step": (dict(rule="random", inner_steps=[0, 1, 2], baselines=["raw"], diverge=True),
                                   ["rule@0", "rule@1", "rule@2", "raw", "ink"], ["rule@2"]),
}


@pytest.mark.parametrize("case", sorted(METHOD_CASES))
def test_the_method_hook_fires_once_per_method_in_order(case, monkeypatch):
    import refimpl.rule.update_step as update_step_module

    settings, planned, not_started = METHOD_CASES[case]
    settings = dict(settings)
    if settings.pop("diverge", False):
        monkeypatch.setattr(update_step_module, "update_step",
                            lambda theta, phi, x, cfg: {k: np.full_like(v, np.nan) for k, v in phi.items()})
    calls = []
    report = refimpl.evaluate_rule(settings.pop("rule"), ["moons"], **{**QUICK, **settings},
                                   on_method=lambda *call: calls.append(call))
    started = [(i, m) for i, m in enumerate(planned, 1) if m not in not_started]
    assert calls == [("moons", seed, m, i, len(planned)) for seed in (0, 1) for i, m in started]
    diverged = ["rule@1", "rule@2"] if not_started else []
    for record in report["datasets"]["moons"]["per_seed"]:
        assert [m for m in planned if m not in diverged] == list(record["acc"]) and record["diverged"] == diverged


def test_a_checkpoint_is_announced_before_the_inner_steps_that_lead_to_it(monkeypatch):
    import refimpl.rule.update_step as update_step_module

    steps_done, seen = [], []
    real = update_step_module.update_step
    monkeypatch.setattr(update_step_module, "update_step", lambda *a: steps_done.append(1) or real(*a))
    refimpl.evaluate_rule("random", ["moons"], **{**QUICK, "seeds": 1, "inner_steps": [0, 2, 5]},
                          on_method=lambda _ds, _seed, method, *_: seen.append((method, len(steps_done))))
    assert seen == [("rule@0", 0), ("rule@2", 0), ("rule@5", 2), ("raw", 5), ("ink", 5)]


def test_benchmark_without_theta_announces_phi0_and_the_baselines():
    from refimpl.evaluation.benchmark import benchmark

    calls = []
    res = benchmark(None, refimpl.preset("small"), get_dataset("moons"), seeds=[3], n_trials=1, baselines=["raw"],
                    progress=False, on_method=lambda *call: calls.append(call))
    assert calls == [(3, "rule@0", 1, 2), (3, "raw", 2, 2)] == [(3, m, i, 2) for i, m in
                                                                  enumerate(res["per_seed"][0]["acc"], 1)]


@pytest.mark.parametrize("progress, hooked", [(True, True), (True, False), (False, True)])
def test_the_report_is_byte_identical_with_and_without_progress(tmp_path, monkeypatch, capsys, progress, hooked):
    import refimpl.evaluation.benchmark as benchmark_module

    class FixedClock:          # the per-seed "seconds" are the only timing in report.json
        perf_counter = staticmethod(lambda: 0.0)

    monkeypatch.setattr(benchmark_module, "time", FixedClock)
    settings = dict(QUICK, baselines=["raw", "pca"])
    quiet = refimpl.evaluate_rule("random", ["moons", "digits"], out_dir=tmp_path / "quiet", **settings)
    capsys.readouterr()
    loud = refimpl.evaluate_rule("random", ["moons", "digits"], out_dir=tmp_path / "loud",
                                 **{**settings, "progress": progress},
                                 on_method=(lambda *call: None) if hooked else None)
    assert ("(3 of 5 methods)" in capsys.readouterr().err) == progress
    assert reporting.format_report(loud) == reporting.format_report(quiet)
    for name in ("report.json", "report.md"):
        assert (tmp_path / "loud" / name).read_bytes() == (tmp_path / "quiet" / name).read_bytes()


def test_eval_names_each_method_of_a_seed_as_it_starts(tmp_path, capsys, monkeypatch):
    import refimpl.evaluation.benchmark as benchmark_module

    class FixedClock:
        perf_counter = staticmethod(lambda: 0.0)

    monkeypatch.setattr(benchmark_module, "time", FixedClock)
    argv = ["eval", "random", "--datasets", "moons", "--seeds", "2", "--inner-steps", "0,2", "--baselines", "raw",
            "--trials", "1"]
    code, out, err = cli(argv, capsys)
    assert code == 0
    lines = [line for line in err.splitlines() if "methods)" in line]
    assert lines == [f"eval: moons seed {s} ({s + 1} of 2): {m} ({i} of 4 methods)"
                     for s in (0, 1) for i, m in enumerate(["rule@0", "rule@2", "raw", "ink"], 1)]
    assert out.rstrip("\n") == reporting.format_report(
        refimpl.evaluate_rule("random", ["moons"], **{**QUICK, "inner_steps": [0, 2]})).rstrip("\n")


def test_a_progress_status_is_the_bars_postfix_on_a_terminal_and_a_line_otherwise():
    from refimpl.runtime import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for stream, terminal in ((io.StringIO(), False), (Terminal(), True)):
        progress = Progress(3, "eval", unit="seeds", file=stream, interval=1e9)
        progress.status("moons seed 0 (1 of 3): vae (6 of 7 methods)")
        progress.close()
        text = stream.getvalue()
        assert ("eval: moons seed 0 (1 of 3): vae (6 of 7 methods)\n" == text) != terminal
        if terminal:
            assert "moons seed 0 (1 of 3): vae (6 of 7 methods)" in text and "\r" in text


# ---------------------------------------------------------------- 4. resumable evaluation
class Interrupt(Exception):
    pass


def _without_timing(report):
    report = json.loads(json.dumps(report, allow_nan=True))
    report.pop("paths", None)
    for res in report["datasets"].values():
        for r in res["per_seed"]:
            r.pop("seconds", None)
    return report


@pytest.mark.parametrize("k", [1, 3])
def test_an_interrupted_evaluation_resumes_to_the_uninterrupted_report(tmp_path, k):
    from refimpl.evaluation.benchmark import benchmark

    settings = dict(QUICK, seeds=2)
    whole = refimpl.evaluate_rule("random", ["moons", "digits"], out_dir=tmp_path / "whole", **settings)
    calls = []

    def failing(*a, **kw):
        if len(calls) == k:
            raise Interrupt
        calls.append(kw["seeds"])
        return benchmark(*a, **kw)

    with pytest.raises(Interrupt):
        refimpl.evaluate_rule("random", ["moons", "digits"], out_dir=tmp_path / "cut", benchmark_fn=failing,
                              **settings)
    assert len(list((tmp_path / "cut" / "partial").glob("*-seed*.json"))) == k
    assert not (tmp_path / "cut" / "report.json").exists()
    with pytest.raises(ValueError, match="holds an interrupted evaluation.*--resume"):
        refimpl.evaluate_rule("random", ["moons", "digits"], out_dir=tmp_path / "cut", **settings)
    with pytest.raises(ValueError, match="other settings"):
        refimpl.evaluate_rule("random", ["moons", "digits"], out_dir=tmp_path / "cut", resume=True,
                              **{**settings, "n_trials": 2})
    recomputed = []
    resumed = refimpl.evaluate_rule("random", ["moons", "digits"], out_dir=tmp_path / "cut", resume=True,
                                    benchmark_fn=lambda *a, **kw: recomputed.append(1) or benchmark(*a, **kw),
                                    **settings)
    assert len(recomputed) == 4 - k                               # the finished seeds are not computed again
    assert _without_timing(resumed) == _without_timing(whole)
    stored = json.loads((tmp_path / "cut" / "report.json").read_text())
    assert _without_timing(stored) == _without_timing(json.loads((tmp_path / "whole" / "report.json").read_text()))
    assert not (tmp_path / "cut" / "partial").exists()


def test_a_finished_report_is_refused_unless_forced(tmp_path, capsys):
    argv = ["eval", "random", "--datasets", "moons", "--seeds", "1", "--inner-steps", "0", "--baselines", "raw",
            "--trials", "1", "--out", str(tmp_path / "ev")]
    assert cli(argv, capsys)[0] == 0
    (tmp_path / "ev" / "mine.txt").write_text("not the evaluation's")
    code, out, err = cli(argv, capsys)
    assert_one_line_error(code, err, "refimpl eval", "holds a finished evaluation (report.json, report.md")
    code, out, err = cli(argv + ["--force"], capsys)
    assert code == 0 and (tmp_path / "ev" / "mine.txt").read_text() == "not the evaluation's"


# ---------------------------------------------------------------- 5. no surprises
def test_stale_temp_files_of_own_atomic_writes_are_removed_at_the_next_start(tmp_path):
    run_dir = tmp_path / "r"
    assert run(run_dir, train_preset("tiny"), n_steps=1, meta_gradient_fn=stub_meta_gradient) == 0
    _, stale = tempfile.mkstemp(prefix=".checkpoint.npz.", suffix=".tmp", dir=run_dir)
    keep = [run_dir / ".checkpoint.npz.mine.tmp", run_dir / "notes.tmp", run_dir / ".other.npz.abcdefgh.tmp"]
    for p in keep:
        p.write_text("not the trainer's")
    assert run(run_dir, resume=True, n_steps=2, meta_gradient_fn=stub_meta_gradient) == 0
    assert not os.path.exists(stale) and all(p.exists() for p in keep)


def test_remove_stale_temp_files_matches_only_the_write_pattern(tmp_path):
    atomic_write_bytes(tmp_path / "a.json", lambda f: f.write(b"{}"))
    _, t = tempfile.mkstemp(prefix=".a.json.", suffix=".tmp", dir=tmp_path)
    (tmp_path / ".a.json.ABCDEFGH.tmp").write_text("x")        # upper case: not mkstemp's
    (tmp_path / ".a.json.abcdefgh.tmp.bak").write_text("x")
    assert remove_stale_temp_files(tmp_path, ["a.json"]) == [tmp_path / os.path.basename(t)]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".a.json.ABCDEFGH.tmp", ".a.json.abcdefgh.tmp.bak",
                                                           "a.json"]


def _stub_eval(rule, datasets, **kw):
    return {"rule": rule, "notes": [], "datasets": {}, "settings": kw, "paths": {}}


def test_demo_starts_from_scratch_or_says_it_continues(tmp_path):
    from refimpl.evaluation import demo

    def train_fn(run_dir, minutes):
        return run(run_dir, train_preset("tiny"), n_steps=1, meta_gradient_fn=stub_meta_gradient) if not \
            (run_dir / "checkpoint.npz").exists() else run(run_dir, resume=True, n_steps=2,
                                                            meta_gradient_fn=stub_meta_gradient)

    kw = dict(rule="random", minutes=0.1, seeds=1, datasets=("moons",), evaluate_fn=_stub_eval, train_fn=train_fn,
              plot_fn=lambda d: [])
    err = io.StringIO()
    demo.run_demo(tmp_path / "d", out=err, **kw)
    assert "from scratch" in err.getvalue()
    err = io.StringIO()
    demo.run_demo(tmp_path / "d", out=err, **kw)
    assert "from scratch (the previous demo's run there removed; --continue continues it)" in err.getvalue()
    err = io.StringIO()
    demo.run_demo(tmp_path / "d", out=err, continue_run=True, **kw)
    assert "continuing the previous demo's run" in err.getvalue()


def test_demo_names_skipped_datasets_and_the_part_ctrl_c_interrupted(tmp_path, monkeypatch, capsys):
    import refimpl.data as data
    from refimpl.data import FashionMNISTNotFoundError
    from refimpl.evaluation import demo

    original = data.get_dataset

    def missing_fashion(name, **kw):
        if name.startswith("fashion"):
            raise FashionMNISTNotFoundError("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
        return original(name, **kw)

    monkeypatch.setattr(data, "get_dataset", missing_fashion)
    seen = {}

    def evaluate_fn(rule, datasets, **kw):
        seen.setdefault("datasets", datasets)
        seen.setdefault("skipped", kw.get("skipped"))
        raise KeyboardInterrupt

    err = io.StringIO()
    with pytest.raises(KeyboardInterrupt) as e:
        demo.run_demo(tmp_path / "d", rule="random", minutes=0, seeds=1, evaluate_fn=evaluate_fn,
                      train_fn=lambda *a: 0, plot_fn=lambda d: [], out=err)
    assert "fashion_mnist14" not in seen["datasets"] and "fashion_mnist14" in seen["skipped"]
    assert "demo: skipped dataset fashion_mnist14: not installed" in err.getvalue()
    assert str(e.value).startswith("during 1/3 transfer: rule random on digits, moons")
    monkeypatch.setattr(demo, "run_demo", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt("during 2/3 x")))
    code, out, err = cli(["demo", "--run-dir", str(tmp_path / "d2")], capsys)
    assert code == 130 and err.strip() == "demo: interrupted during 2/3 x"


def test_skipped_datasets_are_in_the_report():
    report = refimpl.evaluate_rule("random", ["moons"], skipped={"fashion_mnist14": "not installed"}, **QUICK)
    assert report["skipped"] == {"fashion_mnist14": "not installed"}
    assert "skipped dataset fashion_mnist14: not installed" in reporting.format_report(report)


# ---------------------------------------------------------------- 7. plots
def _figures(monkeypatch, report):
    figs = {}
    monkeypatch.setattr(reporting, "_save", lambda fig, path: figs.__setitem__(path.name, fig))
    reporting.plot_accuracy(report, __import__("pathlib").Path("accuracy.png"))
    reporting.plot_inner_steps(report, __import__("pathlib").Path("inner_steps.png"))
    return figs


@pytest.mark.parametrize("steps, scale", [([0, 2], "linear"), ([0, 1, 2], "linear"), ([0, 1, 2, 3], "log")])
def test_inner_step_plots_have_error_bars_and_a_linear_axis_below_four_points(monkeypatch, steps, scale):
    report = refimpl.evaluate_rule("random", ["moons"], **{**QUICK, "inner_steps": steps})
    figs = _figures(monkeypatch, report)
    acc, rank = figs["inner_steps.png"].axes
    assert acc.get_xscale() == rank.get_xscale() == scale
    assert acc.containers and rank.containers                         # errorbar containers
    legend = rank.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 > rank.get_window_extent().x1 - 1  # beside
    for fig in figs.values():
        assert "error bars: ± 1 standard error over seeds" in fig._suptitle.get_text()


def test_reduced_budgets_are_named_in_the_titles(monkeypatch):
    report = refimpl.evaluate_rule("random", ["moons"], reduced_budget=True, vae_steps=30, supervised_steps=20,
                                   **QUICK)
    for fig in _figures(monkeypatch, report).values():
        assert "REDUCED baseline budgets: VAE 30 steps, supervised 20 steps" in fig._suptitle.get_text()
    assert any("REDUCED baseline budgets" in n for n in report["notes"])


@pytest.mark.parametrize("values, window", [([1.0, 2.0, np.nan, 4.0, 7.0, 3.0], 3), ([5.0], 1),
                                            ([np.nan, np.nan, 1.0, 1.5], 2), (list(np.linspace(0, 1, 9)), 4)])
def test_the_training_curves_band_is_the_standard_error_of_the_trailing_mean(values, window):
    from refimpl.train.plot import smooth_se

    v = np.asarray(values)
    expected = []
    for i in range(len(v)):
        part = v[max(0, i - window + 1):i + 1]
        part = part[np.isfinite(part)]
        expected.append(part.std(ddof=1) / np.sqrt(len(part)) if len(part) > 1 else np.nan)
    np.testing.assert_allclose(smooth_se(v, window), expected, rtol=1e-12, atol=1e-15)


def test_the_training_curves_legend_is_beside_the_axes_and_names_the_band(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from refimpl.train import plot

    assert run(tmp_path / "r", train_preset("tiny"), n_steps=4, meta_gradient_fn=stub_meta_gradient) == 0
    figs = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: figs.append(self))
    plot.plot_run(tmp_path / "r", window=2)
    ax = figs[0].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "± 1 s.e. of that mean" in labels and ax.get_legend().get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1


def test_an_interrupted_eval_says_where_and_how_to_continue(tmp_path, capsys, monkeypatch):
    from refimpl.evaluation.benchmark import benchmark

    calls = []

    def interrupted_on_the_second(*a, **kw):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return benchmark(*a, **kw)

    monkeypatch.setattr(suite, "benchmark", interrupted_on_the_second)
    out = tmp_path / "ev"
    code, _, err = cli(["eval", "random", "--datasets", "moons", "--seeds", "2", "--inner-steps", "0",
                        "--baselines", "raw", "--trials", "1", "--out", str(out)], capsys)
    last = err.strip().splitlines()[-1]
    assert code == 130
    assert last == (f"refimpl eval: interrupted during moons seed 1 (1 of 2 seeds done); the finished seeds are "
                    f"kept in {out / 'partial'}, continue with --resume (resume=True)")


def test_a_one_seed_plot_says_it_has_no_error_bars(monkeypatch):
    report = refimpl.evaluate_rule("random", ["moons"], **{**QUICK, "seeds": 1})
    for fig in _figures(monkeypatch, report).values():
        title = fig._suptitle.get_text()
        assert "no error bars: one seed" in title and ", 1 seed" in title and "1 seeds" not in title
