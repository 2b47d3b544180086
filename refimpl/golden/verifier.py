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
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from refimpl.golden.format import (
    GoldenError,
    float32_enforced,
    float32_limit,
    float64_limit,
    read_case,
    read_manifest,
    rel_error,
    split_roles,
)

__all__ = ["ArrayVerdict", "CaseVerdict", "VerifyReport", "verify", "check_case", "golden_cases", "load_backend"]


@dataclass
class ArrayVerdict:
    array: str
    error: float            # the normwise relative error; NaN when not computed or not finite
    limit: float
    passed: bool
    enforced: bool = True
    note: str = ""

    def line(self) -> str:
        verdict = "ok" if self.passed else ("FAIL" if self.enforced else "report")
        note = f"  ({self.note})" if self.note else ""
        return f"  {self.array:<40} error {self.error:9.2e}  limit {self.limit:8.1e}  {verdict}{note}"


@dataclass
class CaseVerdict:
    name: str
    kind: str
    arrays: list[ArrayVerdict] = field(default_factory=list)
    not_run: str | None = None                     # why the case could not be run
    not_compared: list[str] = field(default_factory=list)   # returned by the backend, not in the set

    @property
    def failed(self) -> list[ArrayVerdict]:
        return [a for a in self.arrays if not a.passed and a.enforced]

    @property
    def ok(self) -> bool:
        return self.not_run is None and not self.failed

    def summary(self) -> str:
        """One line: why the case fails (empty when it passes)."""
        if self.not_run is not None:
            return f"{self.name}: not run ({self.not_run})"
        return "; ".join(f"{self.name}: {a.array} error {a.error:.2e} > limit {a.limit:.1e}"
                         + (f" ({a.note})" if a.note else "") for a in self.failed)

    def assert_ok(self) -> None:
        """Raise AssertionError naming the case and every failing array (for a port's pytest suite)."""
        if not self.ok:
            raise AssertionError(self.summary())


@dataclass
class VerifyReport:
    directory: str
    float32: bool
    cases: list[CaseVerdict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)          # cases outside include/exclude

    @property
    def failed(self) -> list[CaseVerdict]:
        return [c for c in self.cases if not c.ok]

    @property
    def ok(self) -> bool:
        return bool(self.cases) and not self.failed

    def summary(self) -> str:
        """One line: why the set fails for this backend (empty when it passes)."""
        if not self.cases:
            return "no case selected"
        reasons = [c.summary() for c in self.failed]
        if not reasons:
            return ""
        more = f" (and {len(reasons) - 1} more failing case(s))" if len(reasons) > 1 else ""
        return reasons[0] + more

    def to_dict(self) -> dict:
        def clean(value):   # JSON has no NaN: a missing error is null
            return None if isinstance(value, float) and not math.isfinite(value) else value
        cases = []
        for c in self.cases:
            d = asdict(c)
            d["ok"] = c.ok
            d["arrays"] = [{k: clean(v) for k, v in a.items()} for a in d["arrays"]]
            cases.append(d)
        return {"directory": self.directory, "float32": self.float32, "ok": self.ok,
                "cases_run": sum(c.not_run is None for c in self.cases), "cases_selected": len(self.cases),
                "skipped": self.skipped, "cases": cases}

    def write_json(self, path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")


def _selected(manifest: dict, include, exclude) -> tuple[list[dict], list[str]]:
    for what, kinds in (("include", include), ("exclude", exclude)):
        if kinds is not None and (isinstance(kinds, str) or not all(isinstance(k, str) for k in kinds)):
            raise GoldenError(f"{what} must be a list of kind names, not {kinds!r}")
    chosen, skipped = [], []
    for entry in manifest["cases"]:
        keep = (include is None or entry["kind"] in include) and (exclude is None or entry["kind"] not in exclude)
        (chosen if keep else skipped).append(entry if keep else entry["name"])
    return chosen, skipped


def golden_cases(directory, include=None, exclude=None) -> list[str]:
    """The names of the set's cases of the selected kinds, for ``@pytest.mark.parametrize``."""
    chosen, _ = _selected(read_manifest(directory), include, exclude)
    return [entry["name"] for entry in chosen]


def check_case(directory, name: str, backend, float32: bool = False) -> CaseVerdict:
    """Run ``backend`` on the case ``name`` of the set in ``directory`` and compare (one test of a port)."""
    manifest = read_manifest(directory)
    entry = next((e for e in manifest["cases"] if e["name"] == name), None)
    if entry is None:
        raise GoldenError(f"the golden set in {directory} has no case {name!r}")
    return _verify_case(Path(directory), entry, backend, float32)


def verify(golden_dir, backend, include=None, exclude=None, float32: bool = False, log=None) -> VerifyReport:
    """Verify ``backend`` against every case of the golden set in ``golden_dir`` whose kind is in
    ``include`` (default: all) and not in ``exclude``.

    ``float32``: inputs and cotangents are given to the backend in float32 and
    the float32 rule applies. ``log``: a function receiving the report's lines
    as they come (``print`` for the command line). A manifest that is not the
    contract's layout raises :class:`GoldenError`; a case the backend cannot run
    is reported, and fails the report.
    """
    manifest = read_manifest(golden_dir)
    chosen, skipped = _selected(manifest, include, exclude)
    report = VerifyReport(str(golden_dir), float32, skipped=skipped)
    for entry in chosen:
        verdict = _verify_case(Path(golden_dir), entry, backend, float32)
        report.cases.append(verdict)
        if log is not None:
            if verdict.not_run is not None:
                log(f"{verdict.name} ({verdict.kind}): NOT RUN ({verdict.not_run})")
                continue
            log(f"{verdict.name} ({verdict.kind}): {'ok' if verdict.ok else 'FAIL'}")
            for a in verdict.arrays:
                log(a.line())
    if log is not None:
        ran = sum(c.not_run is None for c in report.cases)
        log(f"{ran} of {len(report.cases)} selected cases ran ({len(skipped)} outside the selection); "
            f"{len(report.failed)} case(s) failed")
    return report


def _cast(arrays: dict, dtype) -> dict:
    return {k: (v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v) for k, v in arrays.items()}


def _call(fn, label: str, *args) -> dict:
    try:
        result = fn(*args)
    except Exception as exc:     # a port's error is reported as the case's, not raised
        raise GoldenError(f"backend {label} raised {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    if not isinstance(result, dict):
        raise GoldenError(f"backend {label} returned {type(result).__name__}, not a dict of arrays")
    return result


def _verify_case(directory: Path, entry: dict, backend, float32: bool) -> CaseVerdict:
    kind = entry["kind"]
    verdict = CaseVerdict(entry["name"], kind)
    try:
        forward = getattr(backend, kind, None)
        vjp = getattr(backend, f"{kind}_vjp", None)
        if not callable(forward):
            raise GoldenError(f"the backend has no {kind!r}")
        arrays = read_case(directory, entry)
        inputs, cots, expected = split_roles(entry, arrays)
        wants_grads = any(name.startswith("grad/") for name in expected)
        if wants_grads and not callable(vjp):
            raise GoldenError(f"the backend has no {kind + '_vjp'!r}")
        dtype = np.float32 if float32 else np.float64
        inputs, cots = _cast(inputs, dtype), _cast(cots, dtype)
        attrs, config = entry.get("attrs", {}), entry.get("config")
        got = {f"out/{k}": v for k, v in _call(forward, kind, dict(inputs), attrs, config).items()}
        if wants_grads:
            grads = _call(vjp, f"{kind}_vjp", dict(inputs), attrs, config, dict(cots))
            got.update({f"grad/{k}": v for k, v in grads.items()})
    except (GoldenError, ValueError) as exc:
        verdict.not_run = str(exc)
        return verdict
    for name, ref in expected.items():
        role = entry["arrays"][name]["role"]
        tol = entry["tolerances"][name]
        if float32:
            limit, enforced = float32_limit(float(tol.get("float32_error", 0.0))), float32_enforced(entry, role)
        else:
            limit, enforced = float64_limit(float(tol["rtol"])), True
        verdict.arrays.append(_judge(name, got.get(name), ref, limit, enforced))
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
    if not math.isfinite(error):
        return ArrayVerdict(name, math.nan, limit, False, enforced, "not finite")
    return ArrayVerdict(name, error, limit, bool(error <= limit), enforced)


def load_backend(spec: str):
    """The object named by ``module:object`` or ``path/to/file.py:object`` (a dotted object path allowed)."""
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
    except Exception as exc:
        raise GoldenError(f"cannot load backend {spec!r}: {type(exc).__name__}: {' '.join(str(exc).split())}") \
            from None
    return obj
