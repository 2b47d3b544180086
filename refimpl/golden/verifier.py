"""The port author's verifier (docs/golden.md section 9): run a backend on every case of a golden
set and compare, per case and per array, with the contract's metric and pass rules.

NumPy only: this module reads the set through :mod:`refimpl.golden.format`
and imports neither refimpl's compute nor autograd, so a port's test suite
can use it with nothing but NumPy installed beside refimpl.

A *backend* is any object with one callable per kind it implements::

    backend.<kind>(inputs, attrs, config) -> outputs
    backend.<kind>_vjp(inputs, attrs, config, cotangents) -> grads

``inputs``: the case's input arrays by their stored names (``"x"``,
``"theta/merge/w"``); ``attrs``: the case's attrs; ``config``: its config
(a dict) or None; ``outputs``: arrays by output name without the ``out/``
prefix (``{"y": ...}``); ``cotangents``: the stored cotangents by output name
(``{"y": ...}``); ``grads``: arrays by input name (``{"x": ...}``).

A port is verified as it grows: a kind the backend has no ``<kind>`` for is
listed as *not implemented* (with a coverage line) and does not fail the
report unless ``strict``; a kind it implements and gets wrong fails. The
backend runs inside the verifier's process, so the verifier guards its own
report: what the backend writes to stdout (which carries the report) fails
its case, a ``sys.exit`` in the backend ends its case and not the run, and the
last line of the report is always a verdict.

The result types, the limit choice and the summaries here are also those of
refimpl's own ``golden check`` (:mod:`refimpl.golden.checker`).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from refimpl.golden.format import (
    GoldenError,
    array_limit,
    cast_floats,
    read_case,
    read_manifest,
    rel_error,
    split_roles,
)
from refimpl.npzio import atomic_write_bytes

__all__ = ["ArrayVerdict", "CaseVerdict", "Report", "VerifyReport", "verify", "check_case", "golden_cases",
           "judge_arrays", "run_cases", "load_backend", "implements"]

NOT_IMPLEMENTED = "not implemented"


@dataclass
class ArrayVerdict:
    """The comparison of one stored array of a case with the backend's.

    ``passed`` is ``error <= limit``; an array whose limit is not ``enforced`` is reported and
    does not fail its case. ``line()`` is its line of a report.
    """

    array: str
    error: float            # the normwise relative error; NaN when not computed or not finite
    limit: float
    passed: bool
    enforced: bool = True
    note: str = ""
    max_abs: float = math.nan   # the largest absolute deviation; NaN when not computed
    case: str = ""              # the case's name

    def line(self) -> str:
        verdict = "ok" if self.passed else ("FAIL" if self.enforced else "report")
        note = f"  ({self.note})" if self.note else ""
        return (f"  {self.array:<40} error {self.error:9.2e}  max_abs {self.max_abs:9.2e}  "
                f"limit {self.limit:8.1e}  {verdict}{note}")


@dataclass
class CaseVerdict:
    """The verdict of one case: an :class:`ArrayVerdict` per stored output and gradient.

    ``ok`` when it ran and no enforced array failed; ``not_implemented`` when the backend has
    no ``<kind>``; ``not_run`` says why a case could not be run. ``summary()`` is one line
    (why it fails), ``assert_ok()`` raises ``AssertionError`` with it.
    """

    name: str
    kind: str
    arrays: list[ArrayVerdict] = field(default_factory=list)
    not_run: str | None = None                     # why the case could not be run
    not_compared: list[str] = field(default_factory=list)   # arrays one side has and the other does not
    not_implemented: bool = False                  # the backend has no <kind>: listed, not run

    @property
    def failed(self) -> list[ArrayVerdict]:
        return [a for a in self.arrays if not a.passed and a.enforced]

    @property
    def ran(self) -> bool:
        return self.not_run is None and not self.not_implemented

    @property
    def ok(self) -> bool:
        return self.ran and not self.failed

    def summary(self) -> str:
        """One line: why the case fails (empty when it passes)."""
        if self.not_implemented:
            return f"{self.name}: {NOT_IMPLEMENTED} (the backend has no {self.kind!r})"
        if self.not_run is not None:
            return f"{self.name}: not run ({self.not_run})"
        return "; ".join(f"{self.name}: {a.array} error {a.error:.2e} > limit {a.limit:.1e}"
                         + (f" ({a.note})" if a.note else "") for a in self.failed)

    def lines(self, not_compared_note: str = "not compared") -> list[str]:
        """The case's lines of a report: a heading, then one line per array."""
        if self.not_implemented:
            return [f"{self.name} ({self.kind}): {NOT_IMPLEMENTED}"]
        if self.not_run is not None:
            return [f"{self.name} ({self.kind}): NOT RUN ({self.not_run})"]
        return ([f"{self.name} ({self.kind}): {'ok' if self.ok else 'FAIL'}"] + [a.line() for a in self.arrays]
                + [f"  {name:<40} {not_compared_note}" for name in self.not_compared])

    def assert_ok(self) -> None:
        """Raise AssertionError naming the case and every failing array (for a port's pytest suite)."""
        if not self.ok:
            raise AssertionError(self.summary())


@dataclass
class Report:
    """What ``verify`` and refimpl's ``check`` both return: a verdict per selected case, and the
    set-level problems (nothing selected, a kind asked for that the set lacks, missing cases)."""

    directory: str
    float32: bool
    cases: list[CaseVerdict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)          # cases outside the selection
    problems: list[str] = field(default_factory=list)
    finished: bool = False                                     # every selected case was judged

    @property
    def failed(self) -> list[CaseVerdict]:
        """Cases that ran and failed, or could not run (a kind not implemented is neither)."""
        return [c for c in self.cases if not c.ok and not c.not_implemented]

    @property
    def not_implemented(self) -> list[CaseVerdict]:
        return [c for c in self.cases if c.not_implemented]

    @property
    def cases_run(self) -> int:
        return sum(c.ran for c in self.cases)

    def reasons(self) -> list[str]:
        """Why the report fails, most important first (empty when it passes)."""
        if not self.cases:
            return ["no case selected"] + [p for p in self.problems if p != "no case selected"]
        return self.problems + [c.summary() for c in self.failed]

    @property
    def ok(self) -> bool:
        return self.finished and not self.reasons()

    def summary(self) -> str:
        """One line: why the set fails (empty when it passes)."""
        if not self.finished:
            return f"the report was not finished ({len(self.cases)} case(s) judged)"
        reasons = self.reasons()
        if not reasons:
            return ""
        more = f" (and {len(reasons) - 1} more; see the report above)" if len(reasons) > 1 else ""
        return reasons[0] + more

    def verdict(self) -> str:
        """The report's last line."""
        if self.ok:
            passed = sum(c.ok for c in self.cases)
            rest = f"; {len(self.not_implemented)} not implemented" if self.not_implemented else ""
            return f"verdict: PASS ({passed} of {len(self.cases)} selected case(s) passed{rest})"
        return f"verdict: FAIL ({self.summary()})"

    def to_dict(self) -> dict:
        def clean(value: Any) -> Any:   # JSON has no NaN: a missing error is null
            return None if isinstance(value, float) and not math.isfinite(value) else value
        cases = []
        for c in self.cases:
            d = asdict(c)
            d["ok"] = c.ok
            d["arrays"] = [{k: clean(v) for k, v in a.items()} for a in d["arrays"]]
            cases.append(d)
        return {"directory": self.directory, "float32": self.float32, "ok": self.ok, "verdict": self.verdict(),
                "finished": self.finished, "cases_run": self.cases_run, "cases_selected": len(self.cases),
                "not_implemented": [c.name for c in self.not_implemented], "problems": self.problems,
                "skipped": self.skipped, "cases": cases}

    def write_json(self, path: str | os.PathLike) -> None:
        """The report as JSON, written atomically (a reader never sees half a report)."""
        text = json.dumps(self.to_dict(), indent=1) + "\n"
        atomic_write_bytes(Path(path), lambda f: f.write(text.encode()))


@dataclass
class VerifyReport(Report):
    """What :func:`verify` returns: a :class:`CaseVerdict` per selected case, the set-level
    problems, and the coverage of the backend.

    ``ok`` when every selected case judged passes (kinds not implemented aside, unless
    ``strict``); ``verdict()`` is the report's last line, ``coverage()`` the kinds and cases
    the backend implements, ``write_json(path)`` the report as JSON.
    """

    strict: bool = False      # kinds the backend does not implement fail the run

    def reasons(self) -> list[str]:
        reasons = super().reasons()
        if self.cases and self.cases_run == 0 and not self.failed:
            reasons.append(f"the backend implements none of the {len(self.cases)} selected case(s)")
        if self.strict and self.not_implemented:
            kinds = sorted({c.kind for c in self.not_implemented})
            reasons.append(f"--strict: {len(self.not_implemented)} case(s) of {len(kinds)} kind(s) not "
                           f"implemented ({', '.join(kinds)})")
        return reasons

    def coverage(self) -> str:
        """One line: the kinds and cases the backend implements, out of the selected ones of the set."""
        kinds = {c.kind for c in self.cases}
        missing = {c.kind for c in self.not_implemented}
        outside = f"; {len(self.skipped)} case(s) outside the selection" if self.skipped else ""
        return (f"coverage: the backend implements {len(kinds - missing)} of {len(kinds)} kind(s) and "
                f"{len(self.cases) - len(self.not_implemented)} of {len(self.cases)} case(s) of the set{outside}")

    def to_dict(self) -> dict:
        return {**super().to_dict(), "strict": self.strict, "coverage": self.coverage()}


def _selected(manifest: dict, include, exclude) -> tuple[list[dict], list[str], list[str]]:
    """The selected entries, the names of the others, and the problems of the selection (an included
    kind the set holds no case of)."""
    for what, kinds in (("include", include), ("exclude", exclude)):
        if kinds is not None and (isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds)):
            raise GoldenError(f"{what} must be a list of kind names, not {kinds!r}")
    chosen, skipped = [], []
    for entry in manifest["cases"]:
        keep = (include is None or entry["kind"] in include) and (exclude is None or entry["kind"] not in exclude)
        (chosen if keep else skipped).append(entry if keep else entry["name"])
    held = {entry["kind"] for entry in manifest["cases"]}
    absent = [k for k in dict.fromkeys(include or []) if k not in held]
    problems = [f"the set holds no case of the kind(s) asked for: {', '.join(absent)}"] if absent else []
    return chosen, skipped, problems


def golden_cases(directory: str | os.PathLike, include: Sequence[str] | None = None,
                 exclude: Sequence[str] | None = None) -> list[str]:
    """The names of a golden set's cases of the selected kinds, for ``@pytest.mark.parametrize``.

    Parameters
    ----------
    directory : str or path-like
        The golden set.
    include, exclude : sequence of str, optional
        Kinds to select (default all) and to leave out.

    Returns
    -------
    list of str
        Case names, in the manifest's order.
    """
    chosen, _, _ = _selected(read_manifest(directory), include, exclude)
    return [entry["name"] for entry in chosen]


def check_case(directory: str | os.PathLike, name: str, backend: Any, float32: bool = False) -> CaseVerdict:
    """Run a backend on one case of a golden set and compare: one test of a port.

    Parameters
    ----------
    directory : str or path-like
        The golden set.
    name : str
        The case's name (:func:`golden_cases` lists them).
    backend : object
        As for :func:`verify`.
    float32 : bool
        Give the backend float32 inputs and apply the float32 rule.

    Returns
    -------
    CaseVerdict
        Per array: error, limit, pass. ``not_implemented`` is set when the backend has no
        ``<kind>`` (a port's test skips the case); ``assert_ok()`` raises naming every failing
        array.

    Raises
    ------
    GoldenError
        If the set has no case ``name`` or its manifest cannot be read.
    """
    manifest = read_manifest(directory)
    entry = next((e for e in manifest["cases"] if e["name"] == name), None)
    if entry is None:
        raise GoldenError(f"the golden set in {directory} has no case {name!r}")
    return _verify_case(Path(directory), entry, backend, float32)


def run_cases(report: Report, entries: list[dict], judge_case: Callable[[dict], CaseVerdict],
              log: Callable[[str], None] | None = None, progress: bool = False, desc: str = "golden",
              not_compared_note: str = "not compared") -> Report:
    """Judge every entry with ``judge_case(entry) -> CaseVerdict`` into ``report``, logging each
    case's lines, with progress on stderr when ``progress``. ``report.finished`` is set once every
    entry is judged; whatever stops the loop early, the last logged line is a verdict."""
    emit = (lambda text: None) if log is None else log
    bar = None
    if progress:
        from refimpl.runtime import Progress
        bar = Progress(len(entries), desc)
        emit = (lambda text, log=emit: bar.write(log, text))
    try:
        for entry in entries:
            verdict = judge_case(entry)
            report.cases.append(verdict)
            for text in verdict.lines(not_compared_note):
                emit(text)
            if bar is not None:
                bar.update()
        report.finished = True
    except BaseException:
        emit(f"verdict: FAIL (stopped after {len(report.cases)} of {len(entries)} case(s))")
        raise
    finally:
        if bar is not None:
            bar.close()
    return report


def verify(golden_dir: str | os.PathLike, backend: Any, include: Sequence[str] | None = None,
           exclude: Sequence[str] | None = None, float32: bool = False, log: Callable[[str], None] | None = None,
           strict: bool = False, progress: bool = False) -> VerifyReport:
    """Verify a port's backend against the cases of a golden set.

    Each selected case's stored inputs (and cotangents) are given to ``backend.<kind>`` (and
    ``backend.<kind>_vjp``); every stored output and gradient is compared with the contract's
    metric and limit (docs/golden.md). A case of a kind the backend does not implement is
    listed as not implemented and does not fail the report, unless ``strict``; a backend that
    implements none of the selected cases fails. A case the backend cannot run is reported and
    fails the report.

    Parameters
    ----------
    golden_dir : str or path-like
        The set: a directory with ``manifest.json`` and one ``.npz`` per case.
    backend : object
        Any object with a callable ``<kind>(inputs, attrs, config) -> outputs`` per kind it
        implements, and ``<kind>_vjp(inputs, attrs, config, cotangents) -> grads`` where the case
        stores gradients (see the module's docstring).
    include, exclude : sequence of str, optional
        Kinds to select (default all) and to leave out.
    float32 : bool
        Give the backend float32 inputs and cotangents, and apply the float32 rule.
    log : callable, optional
        Receives the report's lines as they come (``print`` for the command line); the last one
        is the verdict.
    strict : bool
        Kinds the backend does not implement fail the run.
    progress : bool
        Progress lines on stderr.

    Returns
    -------
    VerifyReport
        A verdict per selected case; ``ok`` says whether the set passes, ``coverage()`` what the
        backend implements.

    Raises
    ------
    GoldenError
        If the manifest is not the contract's layout, or ``include``/``exclude`` are not lists of
        kind names.

    Examples
    --------
    A port's test suite, one test per case (PORTING.md has the full example)::

        import pytest
        from refimpl.golden.verifier import check_case, golden_cases

        @pytest.mark.parametrize("name", golden_cases("tests/golden"))
        def test_golden(name):
            verdict = check_case("tests/golden", name, MyBackend())
            if verdict.not_implemented:
                pytest.skip(verdict.summary())
            verdict.assert_ok()
    """
    manifest = read_manifest(golden_dir)
    chosen, skipped, problems = _selected(manifest, include, exclude)
    report = VerifyReport(str(golden_dir), float32, skipped=skipped, problems=problems, strict=strict)
    run_cases(report, chosen, lambda entry: _verify_case(Path(golden_dir), entry, backend, float32), log,
              progress, desc="golden verify")
    if log is not None:
        missing = {}
        for c in report.not_implemented:
            missing[c.kind] = missing.get(c.kind, 0) + 1
        if missing:
            log(f"{NOT_IMPLEMENTED}: " + ", ".join(f"{k} ({n} case{'s' if n > 1 else ''})"
                                                  for k, n in sorted(missing.items())))
        log(report.coverage())
        log(f"{report.cases_run} of {len(report.cases)} selected cases ran ({len(skipped)} outside the selection, "
            f"{len(report.not_implemented)} not implemented); {len(report.failed)} case(s) failed")
        log(report.verdict())
    return report


def implements(backend: Any, kind: str) -> bool:
    """Whether ``backend`` implements ``kind`` (has a callable ``<kind>``)."""
    return callable(getattr(backend, kind, None))


@contextlib.contextmanager
def _stdout_captured():
    """Collect what is written to stdout meanwhile, by Python (sys.stdout) or below it (file descriptor
    1), so that a backend cannot write into the report; yields a list that receives the text."""
    captured = []
    buffer = io.StringIO()
    _flush_stdout()     # the report so far goes out before the capture starts
    try:
        saved = os.dup(1)
    except OSError:          # no file descriptor 1: capture at the Python level only
        saved = None
    spool = tempfile.TemporaryFile() if saved is not None else None
    if spool is not None:
        os.dup2(spool.fileno(), 1)
    try:
        with contextlib.redirect_stdout(buffer):
            yield captured
    finally:
        if spool is not None:
            _flush_stdout()     # what the backend left in Python's buffers belongs to the capture
            os.dup2(saved, 1)
            os.close(saved)
            spool.seek(0)
            captured.append(spool.read().decode(errors="replace"))
            spool.close()
        captured.append(buffer.getvalue())


def _flush_stdout() -> None:
    for stream in {id(s): s for s in (sys.stdout, sys.__stdout__) if s is not None}.values():
        with contextlib.suppress(Exception):
            stream.flush()


def _call(fn, label: str, *args) -> dict:
    with _stdout_captured() as printed:
        try:
            result = fn(*args)
        except SystemExit as exc:     # a backend's sys.exit ends its case, not the verifier
            raise GoldenError(f"backend {label} called sys.exit({exc.code!r})") from None
        except Exception as exc:     # a port's error is reported as the case's, not raised
            raise GoldenError(f"backend {label} raised {type(exc).__name__}: {' '.join(str(exc).split())}") \
                from None
    text = " ".join("".join(printed).split())
    if text:
        shown = text if len(text) <= 60 else text[:57] + "..."
        raise GoldenError(f"backend {label} wrote to stdout, which carries the report ({shown!r}); "
                          f"write diagnostics to stderr")
    if not isinstance(result, dict):
        raise GoldenError(f"backend {label} returned {type(result).__name__}, not a dict of arrays")
    return result


def judge_arrays(entry: dict, expected: dict, got: dict, float32: bool,
                 own_float32_errors: Mapping[str, float] | None = None) -> list[ArrayVerdict]:
    """One verdict per stored output and grad of ``expected`` against ``got`` (same names), with the
    limit of :func:`refimpl.golden.format.array_limit`; ``own_float32_errors``: the verifier's own
    float32 error per array, where it can measure one (refimpl's check)."""
    own = own_float32_errors or {}
    verdicts = []
    for name, ref in expected.items():
        limit, enforced = array_limit(entry, name, float32, own.get(name, math.inf))
        verdict = _judge(name, got.get(name), ref, limit, enforced)
        verdict.case = entry["name"]
        verdicts.append(verdict)
    return verdicts


def _verify_case(directory: Path, entry: dict, backend, float32: bool) -> CaseVerdict:
    kind = entry["kind"]
    verdict = CaseVerdict(entry["name"], kind)
    if not implements(backend, kind):
        verdict.not_implemented = True
        return verdict
    try:
        forward, vjp = getattr(backend, kind), getattr(backend, f"{kind}_vjp", None)
        arrays = read_case(directory, entry)
        inputs, cots, expected = split_roles(entry, arrays)
        wants_grads = any(name.startswith("grad/") for name in expected)
        if wants_grads and not callable(vjp):
            raise GoldenError(f"the backend has {kind!r} but no {kind + '_vjp'!r}, and the case stores grads")
        dtype = np.float32 if float32 else np.float64
        inputs, cots = cast_floats(inputs, dtype), cast_floats(cots, dtype)
        attrs, config = entry.get("attrs", {}), entry.get("config")
        got = {f"out/{k}": v for k, v in _call(forward, kind, dict(inputs), attrs, config).items()}
        if wants_grads:
            grads = _call(vjp, f"{kind}_vjp", dict(inputs), attrs, config, dict(cots))
            got.update({f"grad/{k}": v for k, v in grads.items()})
    except (GoldenError, ValueError) as exc:
        verdict.not_run = str(exc)
        return verdict
    verdict.arrays = judge_arrays(entry, expected, got, float32)
    verdict.not_compared = sorted(set(got) - set(expected))
    return verdict


def _judge(name: str, value, ref: np.ndarray, limit: float, enforced: bool) -> ArrayVerdict:
    if value is None:
        return ArrayVerdict(name, math.nan, limit, False, enforced, "not returned by the backend")
    try:
        value = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return ArrayVerdict(name, math.nan, limit, False, enforced, "not an array of numbers")
    if value.shape != ref.shape:
        return ArrayVerdict(name, math.nan, limit, False, enforced,
                            f"shape {list(value.shape)}, golden {list(ref.shape)}")
    error = rel_error(value, ref)
    max_abs = float(np.max(np.abs(value - ref))) if ref.size else 0.0
    if not math.isfinite(error):
        return ArrayVerdict(name, math.nan, limit, False, enforced, "not finite", max_abs)
    return ArrayVerdict(name, error, limit, bool(error <= limit), enforced, "", max_abs)


def load_backend(spec: str) -> Any:
    """The backend object named on the command line (``refimpl golden verify --backend``).

    Parameters
    ----------
    spec : str
        ``module:object`` or ``path/to/file.py:object``; the object may be a dotted path
        (``module:Class.attribute``).

    Returns
    -------
    object
        The named object.

    Raises
    ------
    GoldenError
        If ``spec`` is malformed, the file does not exist, or importing it fails (an import that
        calls ``sys.exit`` included); one line naming why.
    """
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise GoldenError(f"--backend must be module:object or file.py:object, not {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise GoldenError(f"backend file {module_name} does not exist")
            module_spec = importlib.util.spec_from_file_location(f"_golden_backend_{path.stem}", path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except GoldenError:
        raise
    except SystemExit as exc:      # a backend module that exits on import must not end the verifier
        raise GoldenError(f"cannot load backend {spec!r}: importing it called sys.exit({exc.code!r})") from None
    except Exception as exc:
        raise GoldenError(f"cannot load backend {spec!r}: {type(exc).__name__}: {' '.join(str(exc).split())}") \
            from None
    return obj
