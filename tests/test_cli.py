"""Every command's bad input: exactly one line on stderr, a non-zero exit, and nothing changed in the
run or golden directory (a snapshot of its files and bytes before and after). The commands run in
process through ``refimpl.cli.main``; the example scripts in a subprocess. Also: the help texts."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from refimpl import golden
from refimpl.cli import build_parser, main
from refimpl.npzio import read_npz, write_npz
from refimpl.train import LOG_FILE, run, train_preset

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "tests" / "golden"
UNWRITABLE = "/proc/refimpl-no-such-dir"      # cannot be created, even by root


GOLDEN_PROGRESS = re.compile(r"golden (check|verify|export): \d+/\d+ cases \[")


def cli(argv, capsys):
    """(exit status, stdout, stderr) of ``refimpl ARGV`` run in this process."""
    try:
        code = main(argv)
    except SystemExit as e:                     # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    # the golden commands' progress lines (stderr is not a terminal here); tests/test_golden_partial.py checks them
    err = "".join(line for line in err.splitlines(keepends=True) if not GOLDEN_PROGRESS.match(line))
    return code, out, err


def snapshot(directory: Path) -> dict:
    return {str(p.relative_to(directory)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(directory.rglob("*"))}


def assert_one_line_error(code, err, prefix, match=None):
    assert code not in (0, None), err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(prefix + ": ") and not lines[0].startswith(f"{prefix}: {prefix.split()[-1]}:"), err
    assert "Traceback" not in err
    if match is not None:
        assert match in lines[0], lines[0]


# ---------------------------------------------------------------- train and plot
@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    """A finished stub run, a directory holding only its log, one with a corrupted log, and a regular file."""
    from tests.helpers import stub_meta_gradient

    base = tmp_path_factory.mktemp("cli")
    tiny = train_preset("tiny")
    assert run(base / "run", tiny, n_steps=2, meta_gradient_fn=stub_meta_gradient) == 0
    shutil.copytree(base / "run", base / "log_only")
    for p in (base / "log_only").iterdir():
        if p.name != LOG_FILE:
            p.unlink()
    shutil.copytree(base / "run", base / "bad_log")
    (base / "bad_log" / LOG_FILE).write_bytes(b'{"step": 1}\n\xff\xfe garbage\n{"step": 2}\n')
    shutil.copytree(base / "run", base / "bad_ckpt")
    for name in ("checkpoint.npz", "checkpoint.prev.npz"):
        (base / "bad_ckpt" / name).write_bytes(b"not a checkpoint")
    (base / "bad_demo" / "meta_training").mkdir(parents=True)
    (base / "bad_demo" / "meta_training" / "checkpoint.npz").write_bytes(b"not a checkpoint")
    (base / "afile").write_text("a regular file")
    (base / "empty").mkdir()
    return base


TRAIN_CASES = {
    "run dir empty string": (["--run-dir", ""], "empty path"),
    "run dir a regular file": (["--run-dir", "{afile}"], "is not a directory"),
    "run dir cannot be created": (["--run-dir", UNWRITABLE], "cannot create"),
    "run dir cannot be written": (["--run-dir", "/proc"], "cannot write in /proc"),
    "resume, run dir cannot be written": (["--run-dir", "/proc", "--resume"], "cannot write in /proc"),
    "steps 0": (["--run-dir", "{empty}", "--steps", "0"], "--steps: expected a positive integer, got 0"),
    "steps not a number": (["--run-dir", "{empty}", "--steps", "many"], "--steps"),
    "seed negative": (["--run-dir", "{empty}", "--seed", "-1"], "--seed"),
    "max-minutes nan": (["--run-dir", "{empty}", "--max-minutes", "nan"], "--max-minutes"),
    "checkpoint-every 0": (["--run-dir", "{empty}", "--checkpoint-every", "0"], "--checkpoint-every"),
    "unknown preset": (["--run-dir", "{empty}", "--preset", "huge"], "--preset: invalid choice"),
    "resume and restart": (["--run-dir", "{run}", "--resume", "--restart"], "not allowed with"),
    "no run dir": ([], "--run-dir"),
    "unknown option": (["--run-dir", "{empty}", "--fast"], "unrecognized arguments"),
    "new run over a run": (["--run-dir", "{run}"], "already holds a run"),
    "resume with another preset": (["--run-dir", "{run}", "--resume", "--preset", "small"], "has name 'tiny'"),
    "resume without a run": (["--run-dir", "{empty}", "--resume"], "does not exist"),
    "resume a missing dir": (["--run-dir", "{missing}", "--resume"], "does not exist"),
    "resume a log without checkpoint": (["--run-dir", "{log_only}", "--resume"], "--restart"),
    "new run over a log": (["--run-dir", "{log_only}"], "--restart"),
    "resume a corrupted log": (["--run-dir", "{bad_log}", "--resume"], "log.jsonl is corrupted"),
    "resume unreadable checkpoints": (["--run-dir", "{bad_ckpt}", "--resume"], "unreadable"),
}


def _fill(args, base):
    names = {"afile": "afile", "empty": "empty", "run": "run", "log_only": "log_only", "bad_log": "bad_log",
             "bad_ckpt": "bad_ckpt", "missing": "missing", "bad_demo": "bad_demo"}
    return [a.format(**{k: str(base / v) for k, v in names.items()}) for a in args]


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_bad_input(run_dirs, capsys, case):
    args, match = TRAIN_CASES[case]
    before = snapshot(run_dirs)
    code, out, err = cli(["train", "--quiet", *_fill(args, run_dirs)], capsys)
    assert_one_line_error(code, err, "refimpl train", match)
    assert snapshot(run_dirs) == before


PLOT_CASES = {
    "no log": (["{empty}"], "missing or has no meta-step records"),
    "missing dir": (["{missing}"], "does not exist"),
    "a regular file": (["{afile}"], "is not a directory"),
    "cannot be written": (["/proc"], "cannot write in /proc"),
    "corrupted log": (["{bad_log}"], "log.jsonl is corrupted"),
    "empty path": ([""], "empty path"),
    "window 0": (["{run}", "--window", "0"], "--window"),
    "no run dir": ([], "required"),
}


@pytest.mark.parametrize("case", sorted(PLOT_CASES))
def test_plot_bad_input(run_dirs, capsys, case):
    args, match = PLOT_CASES[case]
    before = snapshot(run_dirs)
    code, out, err = cli(["plot", *_fill(args, run_dirs)], capsys)
    assert_one_line_error(code, err, "refimpl plot", match)
    assert snapshot(run_dirs) == before


DEMO_CASES = {
    "seeds 0": (["--seeds", "0"], "--seeds: expected a positive integer, got 0"),
    "unknown rule": (["--rule", "no-such-rule"], "neither a shipped rule"),
    "minutes -1": (["--minutes", "-1"], "--minutes"),
    "minutes nan": (["--minutes", "nan"], "--minutes"),
    "run dir empty string": (["--run-dir", ""], "empty path"),
    "run dir a regular file": (["--run-dir", "{afile}"], "is not a directory"),
    "run dir cannot be created": (["--run-dir", UNWRITABLE], "cannot create"),
    "unreadable checkpoints": (["--run-dir", "{bad_demo}"], "checkpoint"),
}


@pytest.mark.parametrize("case", sorted(DEMO_CASES))
def test_demo_bad_input_fails_before_any_work(run_dirs, capsys, case):
    args, match = DEMO_CASES[case]
    before = snapshot(run_dirs)
    start = time.monotonic()
    code, out, err = cli(["demo", "--run-dir", str(run_dirs / "empty"), *_fill(args, run_dirs)], capsys)
    assert time.monotonic() - start < 30
    assert_one_line_error(code, err, "refimpl demo", match)
    assert snapshot(run_dirs) == before


EVAL_CASES = {
    "unknown rule": (["no-such-rule"], "neither a shipped rule"),
    "corrupt rule file": (["{afile}.npz"], "neither a shipped rule"),
    "unknown dataset": (["random", "--datasets", "moons,nosuch"], "unknown dataset nosuch"),
    "empty dataset list": (["random", "--datasets", ","], "--datasets: expected comma-separated names"),
    "k-shot 0": (["random", "--k-shot", "0"], "--k-shot: expected a positive integer, got 0"),
    "seeds 0": (["random", "--seeds", "0"], "--seeds: expected a positive integer, got 0"),
    "inner steps negative": (["random", "--inner-steps", "0,-5"], "--inner-steps: expected comma-separated"),
    "inner steps not numbers": (["random", "--inner-steps", "a,b"], "--inner-steps: expected comma-separated"),
    "unknown baseline": (["random", "--baselines", "pca,magic"], "unknown baseline magic"),
    "n-way 0": (["random", "--n-way", "0"], "--n-way"),
    "out a regular file": (["random", "--out", "{afile}"], "is not a directory"),
    "out cannot be created": (["random", "--out", UNWRITABLE], "cannot create"),
    "no rule": ([], "required"),
    "unknown option": (["random", "--fast"], "unrecognized arguments"),
}


@pytest.mark.parametrize("case", sorted(EVAL_CASES))
def test_eval_bad_input_fails_before_any_work(run_dirs, capsys, case):
    args, match = EVAL_CASES[case]
    before = snapshot(run_dirs)
    start = time.monotonic()
    code, out, err = cli(["eval", *_fill(args, run_dirs)], capsys)
    assert time.monotonic() - start < 30
    assert_one_line_error(code, err, "refimpl eval", match)
    assert snapshot(run_dirs) == before


def test_eval_fashion_mnist_missing_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("REFIMPL_FASHION_MNIST", str(tmp_path / "none"))
    code, out, err = cli(["eval", "random", "--datasets", "fashion_mnist14"], capsys)
    assert_one_line_error(code, err, "refimpl eval", "fashion_mnist14 is not installed")


# ---------------------------------------------------------------- golden export and check
@pytest.fixture(scope="module")
def golden_dirs(tmp_path_factory):
    base = tmp_path_factory.mktemp("golden_cli")
    golden.export(base / "set", kinds=["matmul", "gauss"])
    (base / "bad_demo" / "meta_training").mkdir(parents=True)
    (base / "bad_demo" / "meta_training" / "checkpoint.npz").write_bytes(b"not a checkpoint")
    (base / "afile").write_text("a regular file")
    (base / "foreign").mkdir()
    (base / "foreign" / "notes.txt").write_text("mine")
    return base


def _tampered(base: Path, name: str, change) -> Path:
    """A copy of the set with ``change(directory, manifest)`` applied (returning the manifest to save, or None)."""
    directory = base / "tampered" / name
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(base / "set", directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    result = change(directory, manifest)
    if isinstance(result, bytes):
        (directory / "manifest.json").write_bytes(result)
    elif result is not None:
        (directory / "manifest.json").write_text(json.dumps(result))
    return directory


def _drift(directory, manifest):
    entry = manifest["cases"][0]
    arrays = read_npz(directory / entry["file"])
    name = next(k for k in arrays if k.startswith("grad/"))
    arrays[name] = arrays[name] * (1 + 1e-3)
    write_npz(directory / entry["file"], arrays)
    entry["arrays"][name]["sha256"] = golden.sha256_array(arrays[name])
    return manifest


def _extra_array(directory, manifest):
    path = directory / manifest["cases"][0]["file"]
    write_npz(path, {**read_npz(path), "grad/unlisted": np.zeros(2)})


def _missing_array(directory, manifest):
    path = directory / manifest["cases"][0]["file"]
    arrays = read_npz(path)
    write_npz(path, {k: v for k, v in arrays.items() if not k.startswith("grad/")})


def _sha_mismatch(directory, manifest):
    path = directory / manifest["cases"][0]["file"]
    arrays = read_npz(path)
    key = next(iter(arrays))
    write_npz(path, {**arrays, key: arrays[key] + 1e-12})


CHECK_CASES = {
    "manifest a JSON list": (lambda d, m: b"[]", 2, "must be a JSON object, not a list"),
    "cases a number": (lambda d, m: dict(m, cases=5), 2, "'cases' must be a list"),
    "a string entry": (lambda d, m: dict(m, cases=["matmul"]), 2, "must be an object, not a string"),
    "not UTF-8": (lambda d, m: b"\xff\xfe{}", 2, "not UTF-8"),
    "no manifest": (lambda d, m: (d / "manifest.json").unlink(), 2, "does not exist"),
    "drifted grad": (_drift, 1, "error"),
    "extra array": (_extra_array, 1, "does not list: grad/unlisted"),
    "missing arrays": (_missing_array, 1, "missing from"),
    "sha mismatch": (_sha_mismatch, 1, "sha256"),
    "a kind missing": (lambda d, m: dict(m, cases=[c for c in m["cases"] if c["kind"] != "gauss"]), 1,
                       "kind gauss: 1 of 1 case(s) missing"),
}


@pytest.mark.parametrize("case", sorted(CHECK_CASES))
def test_golden_check_bad_set(golden_dirs, capsys, case):
    change, status, match = CHECK_CASES[case]
    directory = _tampered(golden_dirs, case.replace(" ", "_"), change)
    before = snapshot(directory)
    code, out, err = cli(["golden", "check", str(directory), "--only", "matmul,gauss"], capsys)
    assert code == status
    assert_one_line_error(code, err, "refimpl golden check", match)
    assert snapshot(directory) == before


@pytest.mark.parametrize("argv, match", [
    (["{set}", "--only", "nosuch"], "--only: unknown kind nosuch (valid: activation"),
    (["{set}"], "missing from the set"),          # a partial set, not narrowed
    ([""], "empty path"),
    ([], "required"),
])
def test_golden_check_bad_arguments(golden_dirs, capsys, argv, match):
    before = snapshot(golden_dirs)
    code, out, err = cli(["golden", "check", *[a.format(set=golden_dirs / "set") for a in argv]], capsys)
    assert_one_line_error(code, err, "refimpl golden check", match)
    assert snapshot(golden_dirs) == before


def test_golden_check_cli_exit_status_on_the_committed_set(capsys):
    code, out, err = cli(["golden", "check", str(COMMITTED)], capsys)
    assert code == 0 and err == "" and "cases per kind" in out


EXPORT_CASES = {
    "unknown kind": (["{base}/new", "--kinds", "nosuch"], "--kinds: unknown kind nosuch (valid: activation"),
    "a regular file": (["{base}/afile", "--kinds", "matmul"], "is not a directory"),
    "a foreign directory": (["{base}/foreign", "--kinds", "matmul"], "holds no golden set"),
    "empty path": (["", "--kinds", "matmul"], "empty path"),
    "cannot be created": ([UNWRITABLE, "--kinds", "matmul"], "cannot write the golden set"),
}


@pytest.mark.parametrize("case", sorted(EXPORT_CASES))
def test_golden_export_bad_input(golden_dirs, capsys, case):
    args, match = EXPORT_CASES[case]
    before = snapshot(golden_dirs)
    code, out, err = cli(["golden", "export", *[a.format(base=golden_dirs) for a in args]], capsys)
    assert_one_line_error(code, err, "refimpl golden export", match)
    assert snapshot(golden_dirs) == before


def test_golden_export_dot(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(["golden", "export", ".", "--kinds", "matmul,gauss"], capsys)
    assert code == 0 and err == "" and sorted(os.listdir(tmp_path)) == ["gauss.npz", "manifest.json", "matmul.npz"]
    code, out, err = cli(["golden", "check", ".", "--only", "matmul", "--only", "gauss"], capsys)
    assert code == 0 and err == ""


# ---------------------------------------------------------------- ops-report
@pytest.mark.parametrize("argv, match", [
    (["--size", "huge"], "--size: invalid choice"),
    (["extra"], "unrecognized arguments"),
])
def test_ops_report_bad_input(capsys, argv, match):
    code, out, err = cli(["ops-report", *argv], capsys)
    assert_one_line_error(code, err, "refimpl ops-report", match)


def test_unknown_command(capsys):
    code, out, err = cli(["frobnicate"], capsys)
    assert_one_line_error(code, err, "refimpl", "invalid choice")


# ---------------------------------------------------------------- the example scripts
def _script(name, *args, cwd):
    return subprocess.run([sys.executable, str(ROOT / "examples" / name), *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


@pytest.mark.parametrize("script, argv, match", [
    ("check_one_operator.py", ["nosuch"], "invalid choice: 'nosuch'"),
    ("check_one_operator.py", ["batchnorm_theta", "b"], "unrecognized arguments"),
])
def test_example_script_bad_input(tmp_path, script, argv, match):
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    before = snapshot(tmp_path)
    result = _script(script, *argv, cwd=tmp_path)
    assert_one_line_error(result.returncode, result.stderr, script, match)
    assert snapshot(tmp_path) == before


def test_evaluate_rule_example_is_refimpl_eval(tmp_path):
    result = _script("evaluate_rule.py", "no-such-rule", cwd=tmp_path)
    assert_one_line_error(result.returncode, result.stderr, "refimpl eval", "neither a shipped rule")
    assert list(tmp_path.iterdir()) == []


def test_check_one_operator_help_is_help(tmp_path):
    result = _script("check_one_operator.py", "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage:") and result.stderr == ""
    assert "batchnorm_theta" in result.stdout


# ---------------------------------------------------------------- help texts
def _parsers(parser, prog=""):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_help_texts():
    parsers = list(_parsers(build_parser()))
    assert {p.prog for p in parsers} >= {"refimpl train", "refimpl plot", "refimpl demo", "refimpl eval",
                                         "refimpl ops-report",
                                         "refimpl golden export", "refimpl golden check"}
    for p in parsers:
        text = p.format_help()
        assert "``" not in text, p.prog
        for action in p._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help, f"{p.prog} {action.dest} has no help"
    by_prog = {p.prog: p for p in parsers}
    export_help = " ".join(by_prog["refimpl golden export"].format_help().split())
    assert all(kind in export_help for kind in golden.kinds())
    assert "--preset" in by_prog["refimpl train"].format_help()


@pytest.mark.parametrize("argv, prog", [(["golden", "check", str(COMMITTED)], "refimpl golden check"),
                                        (["golden", "export", "unused"], "refimpl golden export")])
def test_ctrl_c_in_a_golden_command_is_one_line_and_status_130(argv, prog, capsys, monkeypatch, tmp_path):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(golden, argv[1], interrupted)
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(argv, capsys)
    assert code == 130 and err.splitlines() == [f"{prog}: interrupted"], err
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- one package, one module per command
def test_every_command_lives_in_its_own_module_of_refimpl_cli():
    modules = {p.prog: p.get_default("func").__module__ for p in _parsers(build_parser())
               if p.get_default("func") is not None}
    assert modules == {"refimpl train": "refimpl.cli.train", "refimpl plot": "refimpl.cli.plot",
                       "refimpl eval": "refimpl.cli.evaluate", "refimpl demo": "refimpl.cli.demo",
                       "refimpl ops-report": "refimpl.cli.ops_report", "refimpl paper": "refimpl.cli.paper",
                       "refimpl golden export": "refimpl.cli.golden",
                       "refimpl golden check": "refimpl.cli.golden", "refimpl golden verify": "refimpl.cli.golden"}


def test_a_signal_makes_the_trainer_status_128_plus_its_number():
    import signal

    from refimpl.cli.signals import exit_status, signals_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with signals_interrupt() as received:
        assert signal.getsignal(signal.SIGTERM) is not before
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGTERM) is before and received == [signal.SIGTERM]
    assert exit_status(130, received) == 128 + signal.SIGTERM
    assert exit_status(130, []) == 130 and exit_status(0, received) == 0 and exit_status(2, received) == 2
