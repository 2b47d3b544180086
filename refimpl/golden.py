"""Golden values (SPEC 10): export a set, and check refimpl against one.

A golden set is a directory holding ``manifest.json`` and one ``<case>.npz``
per case. Cases come from *providers* (the operator registry, and the
composed kinds registered by later modules); each case's *kind* names an
*evaluator* that recomputes it from its stored inputs, so ``check`` needs
nothing but the directory.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy

import refimpl
from refimpl.reference.gradcheck import rel_error
from refimpl.npzio import current_umask, atomic_write_bytes, little_endian, read_npz, write_npz

SCHEMA_VERSION = 1
DEFAULT_RTOL = 1e-6
FLOAT32_FLOOR = 1e-4       # SPEC 10: a float32 port passes when err <= max(1e-4, 3 x reference float32 error)
FLOAT32_FACTOR = 3.0


@dataclass
class Evaluation:
    """What an evaluator returns for one case.

    outputs: output name -> array (stored as ``out/<name>``)
    vjp: cotangents (output name -> array) -> grads (input name -> array)
    value_only: outputs that get no cotangent (SPEC 10's exceptions)
    fixed_cotangents: outputs whose cotangent is fixed rather than random
    """

    outputs: dict[str, np.ndarray]
    vjp: Callable[[dict], dict]
    value_only: frozenset = frozenset()
    fixed_cotangents: dict = field(default_factory=dict)


@dataclass
class CaseSpec:
    name: str
    kind: str
    inputs: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    config: dict | None = None
    preset: str | None = None        # "tiny", "mid", "paper" or None (primitive cases)


Evaluator = Callable[[dict, dict, "dict | None"], Evaluation]
_EVALUATORS: dict[str, Evaluator] = {}
_PROVIDERS: list[Callable[[], list[CaseSpec]]] = []


def register_kind(kind: str, evaluator: Evaluator) -> None:
    _EVALUATORS[kind] = evaluator


def register_provider(provider: Callable[[], list[CaseSpec]]) -> None:
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)


def case_rng(name: str) -> np.random.Generator:
    """A generator seeded from the case name, so every case is reproducible on its own."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little"))


# ---------------------------------------------------------------- primitives
def _primitive_evaluators():
    from refimpl.reference.registry import all_ops, grads_dict

    by_kind: dict[str, list] = {}
    for op in all_ops():
        by_kind.setdefault(op.kind, []).append(op)
    for kind, ops in by_kind.items():
        first = ops[0]
        if any(o.forward is not first.forward or o.backward is not first.backward for o in ops):
            raise RuntimeError(f"registry kind {kind!r} maps to more than one forward/backward")
        diff = tuple(dict.fromkeys(n for o in ops for n in o.diff_inputs))

        def evaluate(inputs, attrs, config, first=first, diff=diff):
            out, cache = first.forward(**inputs, **attrs)

            def vjp(cots):
                grads = grads_dict(first.backward(cots[first.output], cache))
                return {k: v for k, v in grads.items() if k in diff and k in inputs}
            return Evaluation(outputs={first.output: out}, vjp=vjp)
        register_kind(kind, evaluate)


def _primitive_cases() -> list[CaseSpec]:
    from refimpl.reference.registry import GOLDEN_SIZE, all_ops

    cases = []
    for op in all_ops():
        sample = op.sample(case_rng(op.name), np.float64, GOLDEN_SIZE)
        cases.append(CaseSpec(op.name, op.kind, dict(sample.inputs), _jsonable(dict(sample.attrs))))
    return cases


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _load_composed() -> None:
    """Import the modules that register composed kinds (later issues add to this list)."""
    import importlib

    for module in ("refimpl.golden_composed", "refimpl.golden_composed_meta"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


_SET_UP = False


def _setup() -> None:
    """Register the primitive kinds and import the composed ones, once.

    A flag rather than ``if not _EVALUATORS``: importing a composed module
    first registers its kinds and must not make the primitives look done.
    """
    global _SET_UP
    if not _SET_UP:
        _SET_UP = True
        _primitive_evaluators()
        register_provider(_primitive_cases)
        _load_composed()


def all_cases() -> list[CaseSpec]:
    _setup()
    cases = [c for provider in _PROVIDERS for c in provider()]
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        raise RuntimeError("duplicate golden case names")
    return cases


# ---------------------------------------------------------------- helpers
def sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(little_endian(a).tobytes()).hexdigest()


def source_sha256() -> str:
    """Hash of every .py file of the package (path and content), in sorted order."""
    root = Path(refimpl.__file__).parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def _blas() -> str:
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info.get('name', '?')} {info.get('version', '?')}"
    except Exception:  # the layout of numpy's config differs between versions
        return "unknown"


def _cast(arrays: dict, dtype) -> dict:
    return {k: (v.astype(dtype) if np.issubdtype(v.dtype, np.floating) else v) for k, v in arrays.items()}


def _evaluate(case_kind: str, inputs, attrs, config, cotangents=None):
    evaluation = _EVALUATORS[case_kind](inputs, attrs, config)
    grads = evaluation.vjp(cotangents) if cotangents is not None else None
    return evaluation, grads


# ---------------------------------------------------------------- export
def export(directory, kinds: list[str] | None = None) -> dict:
    """Write a golden set to ``directory`` (replacing it as a whole); return the manifest."""
    cases = [c for c in all_cases() if kinds is None or c.kind in kinds]
    if not cases:
        raise ValueError(f"no golden cases for kinds {kinds}")
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o777 & ~current_umask())        # mkdtemp makes 0700
    try:
        manifest_cases = [_export_case(case, staging) for case in cases]
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "generator": {"refimpl_version": refimpl.__version__, "source_sha256": source_sha256(),
                          "numpy": np.__version__, "scipy": scipy.__version__, "blas": _blas()},
            "cases": manifest_cases,
        }
        text = json.dumps(manifest, indent=1, sort_keys=False) + "\n"
        atomic_write_bytes(staging / "manifest.json", lambda f: f.write(text.encode()))
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _swap_in(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` so that one of them is always complete on disk."""
    if target.exists():
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
        staging.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(target)


def _export_case(case: CaseSpec, staging: Path) -> dict:
    rng = case_rng(case.name + "/cotangents")
    evaluation = _EVALUATORS[case.kind](case.inputs, case.attrs, case.config)
    cots = {}
    for name, out in evaluation.outputs.items():
        if name in evaluation.value_only:
            continue
        if name in evaluation.fixed_cotangents:
            cots[name] = np.asarray(evaluation.fixed_cotangents[name], dtype=np.float64)
        else:
            cots[name] = rng.standard_normal(np.shape(out))
    grads = evaluation.vjp(cots)

    ev32, grads32 = _evaluate(case.kind, _cast(case.inputs, np.float32), case.attrs, case.config,
                              _cast(cots, np.float32))
    arrays, roles, tolerances = {}, {}, {}
    for name, value in case.inputs.items():
        arrays[name], roles[name] = np.asarray(value), "input"
    for name, value in evaluation.outputs.items():
        key = f"out/{name}"
        arrays[key], roles[key] = np.asarray(value, dtype=np.float64), "output"
        tolerances[key] = {"rtol": DEFAULT_RTOL, "float32_error": rel_error(ev32.outputs[name], value)}
    for name, value in cots.items():
        arrays[f"cot/{name}"], roles[f"cot/{name}"] = value, "cotangent"
    for name, value in grads.items():
        key = f"grad/{name}"
        arrays[key], roles[key] = np.asarray(value, dtype=np.float64), "grad"
        tolerances[key] = {"rtol": DEFAULT_RTOL, "float32_error": rel_error(grads32[name], value)}
    write_npz(staging / f"{case.name}.npz", arrays)
    entry = {"name": case.name, "kind": case.kind, "file": f"{case.name}.npz", "config": case.config,
             "attrs": case.attrs,
             "arrays": {k: {"role": roles[k], "shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype),
                            "sha256": sha256_array(np.asarray(v))} for k, v in arrays.items()},
             "tolerances": tolerances}
    if case.preset is not None:
        entry["preset"] = case.preset
    return entry


# ---------------------------------------------------------------- check
@dataclass
class ArrayResult:
    case: str
    array: str
    max_abs: float
    rel: float
    limit: float
    passed: bool
    enforced: bool = True

    def line(self) -> str:
        verdict = "ok" if self.passed else ("FAIL" if self.enforced else "report")
        return f"  {self.array:<40} max_abs {self.max_abs:9.2e}  rel {self.rel:9.2e}  limit {self.limit:8.1e}  {verdict}"


@dataclass
class CheckReport:
    results: list[ArrayResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    cases_listed: int = 0
    cases_run: int = 0

    @property
    def ok(self) -> bool:
        return (not self.problems and self.cases_run == self.cases_listed
                and all(r.passed or not r.enforced for r in self.results))


def check(directory, float32: bool = False, log=print) -> CheckReport:
    """Recompute every case of a golden set with refimpl and compare (SPEC 10)."""
    _setup()
    directory = Path(directory)
    report = CheckReport()
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        report.problems.append(f"cannot read {directory / 'manifest.json'}: {exc}")
        log(report.problems[-1])
        return report
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        report.problems.append(f"unknown schema_version {version!r} (this verifier knows {SCHEMA_VERSION})")
        log(report.problems[-1])
        return report
    cases = manifest.get("cases", [])
    report.cases_listed = len(cases)
    for entry in cases:
        try:
            results = _check_case(directory, entry, float32)
        except Exception as exc:  # a case that cannot run is reported, and counts as not run
            report.problems.append(f"case {entry.get('name')!r} did not run: {exc}")
            log(f"{entry.get('name')}: NOT RUN ({exc})")
            continue
        report.cases_run += 1
        report.results.extend(results)
        bad = [r for r in results if not r.passed and r.enforced]
        log(f"{entry['name']} ({entry['kind']}): {'FAIL' if bad else 'ok'}")
        for r in results:
            log(r.line())
    log(f"{report.cases_run} of {report.cases_listed} cases ran; "
        f"{sum(1 for r in report.results if not r.passed and r.enforced)} array(s) failed; "
        f"{len(report.problems)} problem(s)")
    return report


def _check_case(directory: Path, entry: dict, float32: bool) -> list[ArrayResult]:
    kind = entry["kind"]
    if kind not in _EVALUATORS:
        raise ValueError(f"unknown kind {kind!r}")
    arrays = read_npz(directory / entry["file"], what="golden case file")
    listed = entry["arrays"]
    if set(arrays) != set(listed):
        raise ValueError(f"arrays in file {sorted(set(arrays) ^ set(listed))} differ from the manifest")
    for name, meta in listed.items():
        if sha256_array(arrays[name]) != meta["sha256"]:
            raise ValueError(f"array {name!r} does not match its sha256 in the manifest")
    roles = {name: meta["role"] for name, meta in listed.items()}
    inputs = {k: v for k, v in arrays.items() if roles[k] == "input"}
    cots = {k[len("cot/"):]: v for k, v in arrays.items() if roles[k] == "cotangent"}
    dtype = np.float32 if float32 else np.float64
    evaluation, grads = _evaluate(kind, _cast(inputs, dtype), entry.get("attrs", {}), entry.get("config"),
                                  _cast(cots, dtype))
    computed = {f"out/{k}": v for k, v in evaluation.outputs.items()}
    computed.update({f"grad/{k}": v for k, v in grads.items()})
    small_case = entry.get("preset") in (None, "tiny")
    results = []
    for name, role in roles.items():
        if role not in ("output", "grad"):
            continue
        if name not in computed:
            raise ValueError(f"refimpl produced no {name!r}")
        tol = entry.get("tolerances", {}).get(name, {})
        rtol = min(float(tol.get("rtol", DEFAULT_RTOL)), DEFAULT_RTOL)   # a manifest may only tighten
        enforced = True
        if float32:
            rtol = max(FLOAT32_FLOOR, FLOAT32_FACTOR * float(tol.get("float32_error", 0.0)))
            enforced = small_case or role == "output"
        ref = arrays[name]
        got = np.asarray(computed[name], dtype=np.float64)
        if got.shape != ref.shape:
            raise ValueError(f"{name!r} has shape {got.shape}, golden {ref.shape}")
        rel = rel_error(got, ref)
        max_abs = float(np.max(np.abs(got - ref))) if ref.size else 0.0
        results.append(ArrayResult(entry["name"], name, max_abs, rel, rtol, bool(rel <= rtol), enforced))
    return results
