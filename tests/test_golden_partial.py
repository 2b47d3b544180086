"""The port kit serves a partial port, and cannot pass falsely.

A backend of one kind passes ``refimpl golden verify`` (the other kinds listed
as not implemented, with a coverage line) and fails it with ``--strict``; a kind
it implements and gets wrong still fails, and so does a backend that implements
nothing selected or a selection that selects nothing. A backend that exits,
prints or raises cannot end the run without a verdict as the report's last line.
Progress goes to stderr as plain lines with a rate and an ETA when stderr is not
a terminal.
"""
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from refimpl.cli import main
from refimpl.golden import check_case, golden_cases, read_manifest, verify
from refimpl.runtime import Progress
from tests.test_golden_port import write_hand_set

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "tests" / "golden"
PORTING = ROOT / "PORTING.md"
PROGRESS_LINE = re.compile(r"^golden (verify|check|export): \d+/\d+ cases \[\d\d:\d\d<(\d\d:\d\d|\?), "
                           r"(\d+\.\d\d|\?) cases/s\]$")

ONE_KIND = '''
import numpy as np


class GaussOnly:
    """A port that has got as far as one kind: gauss, y = exp(-x^2)."""
    scale = 1.0

    def gauss(self, inputs, attrs, config):
        return {"y": np.exp(-inputs["x"] ** 2)}

    def gauss_vjp(self, inputs, attrs, config, cots):
        x = inputs["x"]
        return {"x": self.scale * cots["y"] * (-2.0 * x * np.exp(-x ** 2))}


BACKEND = GaussOnly()
'''


def quiet(*args):
    pass


def _namespace(source: str) -> dict:
    namespace = {}
    exec(compile(source, "<backend>", "exec"), namespace)
    return namespace


def one_kind(scale=1.0):
    backend = _namespace(ONE_KIND)["GaussOnly"]()
    backend.scale = scale
    return backend


def _kinds(directory) -> set:
    return {e["kind"] for e in read_manifest(directory)["cases"]}


@pytest.fixture(scope="module")
def hand_set(tmp_path_factory):
    directory = tmp_path_factory.mktemp("foreign") / "set"
    write_hand_set(directory)      # a set written by hand from docs/golden.md, its own case names
    return directory


@pytest.fixture
def backend_file(tmp_path, monkeypatch):
    """Write a backend module into tmp_path (the working directory) and return its ``file.py:BACKEND``."""
    monkeypatch.chdir(tmp_path)

    def write(source, name="port.py"):
        (tmp_path / name).write_text(source)
        return f"{tmp_path / name}:BACKEND"
    return write


def run_cli(argv, capsys):
    rc = main(argv)
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if not PROGRESS_LINE.match(line)]
    return rc, out.splitlines(), errors


# ---------------------------------------------------------------- a partial port passes, unless --strict
def test_a_backend_of_one_kind_passes_and_lists_the_rest():
    lines = []
    report = verify(COMMITTED, one_kind(), log=lines.append)
    n_cases, n_kinds = len(read_manifest(COMMITTED)["cases"]), len(_kinds(COMMITTED))
    assert report.ok and report.cases_run == 1 and len(report.not_implemented) == n_cases - 1
    assert {c.kind for c in report.not_implemented} == _kinds(COMMITTED) - {"gauss"}
    assert f"coverage: the backend implements 1 of {n_kinds} kind(s) and 1 of {n_cases} case(s) of the set" in lines
    assert "orth_disjoint (orth): not implemented" in lines
    not_implemented = next(line for line in lines if line.startswith("not implemented: "))
    assert "orth (3 cases)" in not_implemented and "gauss" not in not_implemented
    assert lines[-1] == f"verdict: PASS (1 of {n_cases} selected case(s) passed; {n_cases - 1} not implemented)"


def test_strict_fails_the_same_partial_port():
    lines = []
    report = verify(COMMITTED, one_kind(), log=lines.append, strict=True)
    assert not report.ok and report.summary().startswith("--strict: ")
    assert "case(s) of" in report.summary() and "not implemented" in report.summary()
    assert lines[-1].startswith("verdict: FAIL (--strict: ")
    # strict with nothing missing passes
    assert verify(COMMITTED, one_kind(), include=["gauss"], strict=True).ok


@pytest.mark.parametrize("scale, passes", [(1 + 2e-6, False), (1 + 0.5e-6, True)])
def test_an_implemented_kind_that_is_wrong_still_fails(scale, passes):
    """Off by 2e-6 (relative) fails at the limit 1e-6, off by 0.5e-6 passes: the not-implemented cases
    around it change nothing."""
    report = verify(COMMITTED, one_kind(scale))
    assert report.ok is passes
    if not passes:
        assert [c.name for c in report.failed] == ["gauss"]
        assert report.summary().startswith("gauss: grad/x error 2.00e-06 > limit 1.0e-06")
        assert report.verdict().startswith("verdict: FAIL (gauss: grad/x error")


def test_a_backend_that_implements_nothing_selected_fails():
    report = verify(COMMITTED, one_kind(), include=["matmul", "orth"])
    assert not report.ok and report.cases_run == 0 and len(report.not_implemented) == 4
    assert report.summary() == "the backend implements none of the 4 selected case(s)"
    assert not verify(COMMITTED, object()).ok


def test_a_kind_with_a_forward_and_no_vjp_is_not_run_and_fails():
    namespace = _namespace(ONE_KIND)

    class ForwardOnly:
        gauss = namespace["GaussOnly"].gauss
    report = verify(COMMITTED, ForwardOnly(), include=["gauss"])
    assert not report.ok and report.failed[0].not_run == ("the backend has 'gauss' but no 'gauss_vjp', "
                                                          "and the case stores grads")


@pytest.mark.parametrize("selection", [dict(include=[]), dict(exclude=sorted(_kinds(COMMITTED)))])
def test_an_empty_selection_fails(selection):
    report = verify(COMMITTED, one_kind(), **selection)
    assert not report.ok and report.summary() == "no case selected"
    assert report.verdict() == "verdict: FAIL (no case selected)"


def test_an_included_kind_the_set_lacks_fails(hand_set):
    """A misspelt or absent kind in --include is not silently passed over."""
    report = verify(hand_set, one_kind(), include=["gauss", "gaus"])
    assert report.cases_run == 1 and not report.ok
    assert report.summary() == "the set holds no case of the kind(s) asked for: gaus"


def test_the_one_kind_backend_on_a_foreign_set(hand_set):
    report = verify(hand_set, one_kind())
    assert report.ok and [c.name for c in report.cases if c.ran] == ["hand gauss"]
    assert sorted(c.kind for c in report.not_implemented) == ["matmul", "meta_objective"]
    assert report.coverage() == "coverage: the backend implements 1 of 3 kind(s) and 1 of 3 case(s) of the set"
    assert not verify(hand_set, one_kind(), strict=True).ok
    assert not verify(hand_set, one_kind(1 + 2e-6)).ok


# ---------------------------------------------------------------- the command line, with and without --strict
def test_cli_partial_port_passes_without_strict_and_fails_with_it(backend_file, capsys, tmp_path):
    spec = backend_file(ONE_KIND)
    rc, out, errors = run_cli(["golden", "verify", str(COMMITTED), "--backend", spec,
                               "--json", str(tmp_path / "r.json")], capsys)
    assert rc == 0 and errors == [] and out[-1].startswith("verdict: PASS (1 of ")
    assert any(line.startswith("coverage: the backend implements 1 of ") for line in out)
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["ok"] and saved["finished"] and saved["verdict"] == out[-1] and not saved["strict"]
    assert len(saved["not_implemented"]) == saved["cases_selected"] - 1

    rc, out, errors = run_cli(["golden", "verify", str(COMMITTED), "--backend", spec, "--strict"], capsys)
    assert rc == 1 and out[-1].startswith("verdict: FAIL (--strict: ")
    assert len(errors) == 1 and errors[0].startswith("refimpl golden verify: ") and "--strict: " in errors[0]


def test_cli_empty_selection_fails_with_one_line(backend_file, capsys):
    kinds = ",".join(sorted(_kinds(COMMITTED)))
    rc, out, errors = run_cli(["golden", "verify", str(COMMITTED), "--backend", backend_file(ONE_KIND),
                               "--exclude", kinds], capsys)
    assert rc == 1 and out[-1] == "verdict: FAIL (no case selected)"
    assert errors == [f"refimpl golden verify: {COMMITTED} does not pass: no case selected"]


# ---------------------------------------------------------------- the backend cannot pass falsely
EXITS_IN_A_KIND = ONE_KIND + '''

class Exits(GaussOnly):
    def gauss_vjp(self, inputs, attrs, config, cots):
        import sys
        sys.exit(0)


BACKEND = Exits()
'''
PRINTS = ONE_KIND + '''

class Prints(GaussOnly):
    def gauss(self, inputs, attrs, config):
        print("gauss: ok")
        print("verdict: PASS")
        return super().gauss(inputs, attrs, config)


BACKEND = Prints()
'''
WRITES_TO_FD_1 = ONE_KIND + '''

class WritesBelowPython(GaussOnly):
    def gauss(self, inputs, attrs, config):
        import os
        os.write(1, b"verdict: PASS\\n")
        return super().gauss(inputs, attrs, config)


BACKEND = WritesBelowPython()
'''
WRITES_TO_THE_REAL_STDOUT = ONE_KIND + '''

class WritesToTheRealStdout(GaussOnly):
    def gauss(self, inputs, attrs, config):
        import sys
        sys.__stdout__.write("verdict: PASS\\n")      # buffered: flushed after the call returns
        return super().gauss(inputs, attrs, config)


BACKEND = WritesToTheRealStdout()
'''
EXITS_ON_IMPORT = "import sys\nsys.exit(0)\n"
EXITS_WHEN_ASKED = '''
import sys


class Probe:
    def __getattr__(self, name):       # even asking which kinds it has ends the process
        sys.exit(0)


BACKEND = Probe()
'''
RETURNS_NOTHING = ONE_KIND + '''

class ReturnsNothing(GaussOnly):
    def gauss(self, inputs, attrs, config):
        return None


BACKEND = ReturnsNothing()
'''
FALSE_PASSES = {
    "sys.exit in a kind": (EXITS_IN_A_KIND, 1, "backend gauss_vjp called sys.exit(0)"),
    "prints": (PRINTS, 1, "backend gauss wrote to stdout, which carries the report ('gauss: ok verdict: PASS')"),
    "writes to file descriptor 1": (WRITES_TO_FD_1, 1, "backend gauss wrote to stdout"),
    "writes to sys.__stdout__": (WRITES_TO_THE_REAL_STDOUT, 1, "backend gauss wrote to stdout"),
    "sys.exit when probed": (EXITS_WHEN_ASKED, 1, "the run ended early (sys.exit(0))"),
    "returns None": (RETURNS_NOTHING, 1, "backend gauss returned NoneType, not a dict of arrays"),
    "sys.exit on import": (EXITS_ON_IMPORT, 2, "importing it called sys.exit(0)"),
}


@pytest.mark.parametrize("case", sorted(FALSE_PASSES))
def test_a_backend_cannot_end_the_run_without_a_failing_verdict(case, backend_file, capfd):
    source, status, message = FALSE_PASSES[case]
    rc = main(["golden", "verify", str(COMMITTED), "--backend", backend_file(source), "--include", "gauss"])
    out, err = capfd.readouterr()
    errors = [line for line in err.splitlines() if not PROGRESS_LINE.match(line)]
    assert rc == status and len(errors) == 1 and message in errors[0], (rc, errors)
    assert errors[0].startswith("refimpl golden verify: ")
    if status == 1:                     # a report was started: its last line is a failing verdict
        assert out.splitlines()[-1].startswith("verdict: FAIL (")
    # what the backend wrote never reaches the report as a line of its own
    assert not any(line.startswith(("verdict: PASS", "gauss: ok")) for line in out.splitlines())


def test_an_interrupt_inside_the_backend_ends_the_report_with_a_verdict():
    class Interrupted:
        def gauss(self, inputs, attrs, config):
            raise KeyboardInterrupt

        gauss_vjp = gauss
    lines = []
    with pytest.raises(KeyboardInterrupt):
        verify(COMMITTED, Interrupted(), include=["gauss", "matmul"], log=lines.append)
    assert lines[-1] == "verdict: FAIL (stopped after 0 of 2 case(s))"


def test_an_unfinished_report_does_not_pass():
    report = verify(COMMITTED, one_kind(), include=["gauss"])
    assert report.ok
    report.finished = False
    assert not report.ok and report.summary().startswith("the report was not finished")


def test_the_backend_may_write_to_stderr(capfd):
    """Frameworks log to stderr (JAX's platform notice, warnings): that is not the report's channel."""
    class Chatty:
        def gauss(self, inputs, attrs, config):
            print("a framework's notice", file=sys.stderr)
            return one_kind().gauss(inputs, attrs, config)

        def gauss_vjp(self, *args):
            return one_kind().gauss_vjp(*args)
    report = verify(COMMITTED, Chatty(), include=["gauss"])
    assert report.ok and "a framework's notice" in capfd.readouterr().err


# ---------------------------------------------------------------- progress on stderr
class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_progress_lines_have_a_rate_and_an_eta():
    stream = io.StringIO()
    progress = Progress(3, "golden verify", file=stream, interval=0.0)
    for _ in range(3):
        progress.update()
    progress.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and all(PROGRESS_LINE.match(line) for line in lines), lines
    assert lines[-1].startswith("golden verify: 3/3 cases [")
    assert "\r" not in stream.getvalue()


def test_the_plain_line_states_the_rate_and_the_eta():
    """1 of 4 cases after 3 s: 1/3 case per second, 3 cases to go, so 9 s remaining; 4 of 40 after 100 s."""
    progress = Progress(4, "golden verify", file=io.StringIO())
    progress.n = 1
    assert progress.line(3.0) == "golden verify: 1/4 cases [00:03<00:09, 0.33 cases/s]"
    progress.total, progress.n = 40, 4
    assert progress.line(100.0) == "golden verify: 4/40 cases [01:40<15:00, 0.04 cases/s]"
    progress.n = 0
    assert progress.line(0.0) == "golden verify: 0/40 cases [00:00<?, ? cases/s]"


def test_plain_progress_is_throttled_but_always_ends_with_a_line():
    stream = io.StringIO()
    progress = Progress(50, "golden check", file=stream, interval=3600.0)
    for _ in range(50):
        progress.update()
    assert stream.getvalue().splitlines() == [stream.getvalue().splitlines()[-1]]
    assert stream.getvalue().startswith("golden check: 50/50 cases [")


def test_a_terminal_gets_a_bar_and_the_report_lines_between_its_redraws():
    stream, written = _Terminal(), []
    progress = Progress(2, "golden verify", file=stream)
    progress.write(written.append, "gauss (gauss): ok")
    progress.update(2)
    progress.close()
    assert written == ["gauss (gauss): ok"] and progress.bar is not None
    assert "\r" in stream.getvalue() and not PROGRESS_LINE.match(stream.getvalue().strip())


def test_cli_verify_reports_progress_on_stderr(backend_file, capsys):
    rc = main(["golden", "verify", str(COMMITTED), "--backend", backend_file(ONE_KIND)])
    out, err = capsys.readouterr()
    n_cases = len(read_manifest(COMMITTED)["cases"])
    assert rc == 0 and err.splitlines()[-1].startswith(f"golden verify: {n_cases}/{n_cases} cases [")
    assert all(PROGRESS_LINE.match(line) for line in err.splitlines())
    assert not any(PROGRESS_LINE.match(line) for line in out.splitlines())


# ---------------------------------------------------------------- PORTING.md's pytest example
def _porting_example() -> str:
    text = PORTING.read_text()
    block = text.split("<!-- pytest example -->", 2)[1]
    return "\n".join(line[4:] for line in block.splitlines() if line.startswith("    ") or not line.strip())


def test_porting_pytest_example_runs_and_skips_unimplemented_kinds(tmp_path):
    """The example as PORTING.md prints it, with GOLDEN and BACKEND supplied: one test per case of the set,
    the unimplemented ones skipped, and a failure once the implemented kind is wrong."""
    (tmp_path / "my_backend.py").write_text(ONE_KIND)
    example = _porting_example()
    assert "golden_cases(GOLDEN)" in example and "pytest.skip" in example
    (tmp_path / "test_port.py").write_text(example.replace("from myport.golden_backend import BACKEND",
                                                           "from my_backend import BACKEND")
                                           .replace('GOLDEN = "path/to/tests/golden"', f"GOLDEN = {str(COMMITTED)!r}"))
    n_cases = len(golden_cases(COMMITTED))

    def run():
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_port.py"],
                              cwd=tmp_path, capture_output=True, text=True)
        return done.returncode, done.stdout.strip().splitlines()[-1]
    rc, summary = run()
    assert rc == 0 and summary.startswith(f"1 passed, {n_cases - 1} skipped"), summary
    (tmp_path / "my_backend.py").write_text(ONE_KIND.replace("scale = 1.0", "scale = 1.0 + 2e-6"))
    rc, summary = run()
    assert rc == 1 and summary.startswith(f"1 failed, {n_cases - 1} skipped"), summary


def test_check_case_marks_an_unimplemented_kind():
    verdict = check_case(COMMITTED, "orth_disjoint", one_kind())
    assert verdict.not_implemented and not verdict.ok
    assert verdict.summary() == "orth_disjoint: not implemented (the backend has no 'orth')"
    assert check_case(COMMITTED, "gauss", one_kind()).ok
    assert not check_case(COMMITTED, "gauss", one_kind(1 + 2e-6)).ok


def test_cli_export_reports_progress_on_stderr(tmp_path, capsys):
    rc = main(["golden", "export", str(tmp_path / "set"), "--kinds", "matmul,gauss"])
    out, err = capsys.readouterr()
    assert rc == 0 and out == f"wrote 2 golden cases to {tmp_path / 'set'}\n"
    assert err.splitlines() and all(PROGRESS_LINE.match(line) for line in err.splitlines())
    assert err.splitlines()[-1].startswith("golden export: 2/2 cases [")
