"""``refimpl golden check DIR``: recompute a golden set with refimpl and compare (docs/golden.md).

The set is judged, not only its manifest: the check counts, per kind, the
cases this version exports and the ones the set holds, and fails when a kind
has no case (unless ``only`` narrows the check to some kinds); a set refimpl
exported (its generator records ``source_sha256``) must also hold every case
of those kinds by name. A case's file must
hold exactly the arrays its manifest entry lists, each matching its shape,
dtype and sha256. A stored output or grad that refimpl does not compute (a
producer may store more grads than the contract requires) is listed as not
compared; one that refimpl computes and the set lacks fails the case. The
float32 rule is enforced for outputs and for the grads of small cases
(:func:`refimpl.golden.format.is_small_case`), reported for the others.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refimpl.golden.catalog import case_kinds, cast_floats, check_kinds, evaluate, evaluators
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
    not_compared: list[str] = field(default_factory=list)     # "case: array" stored but not computed here
    cases_listed: int = 0
    cases_run: int = 0
    counts: dict = field(default_factory=dict)     # kind -> (expected, listed, ran)

    @property
    def failed(self) -> list[ArrayResult]:
        return [r for r in self.results if not r.passed and r.enforced]

    @property
    def ok(self) -> bool:
        return not self.problems and self.cases_run == self.cases_listed and not self.failed

    def summary(self) -> str:
        """One line: why the set fails (empty when it passes)."""
        reasons = self.problems + [f"{r.case}: {r.array} rel {r.rel:.2e} > limit {r.limit:.1e}" for r in self.failed]
        if not reasons:
            return ""
        more = f" (and {len(reasons) - 1} more; see the report above)" if len(reasons) > 1 else ""
        return reasons[0] + more


def check(directory, float32: bool = False, only=None, log=print) -> CheckReport:
    """Recompute every case of the golden set in ``directory`` with refimpl and compare.

    ``float32``: run refimpl in float32 and apply SPEC 10's float32 rule.
    ``only``: check only these kinds (the others, listed or not, are skipped).
    A manifest that is not SPEC 10's layout raises :class:`GoldenError`.
    """
    if only is not None:
        check_kinds(only)
    wanted = (lambda kind: True) if only is None else (lambda kind: kind in only)
    manifest = read_manifest(directory)
    directory = Path(directory)
    expected = {name: kind for name, kind in case_kinds().items() if wanted(kind)}
    entries = [e for e in manifest["cases"] if wanted(e["kind"])]
    report = CheckReport(cases_listed=len(entries))
    ran = Counter()
    for entry in entries:
        try:
            results, extra = _check_case(directory, entry, float32)
        except (ValueError, KeyError, TypeError, FloatingPointError, np.linalg.LinAlgError) as exc:
            # a case that cannot run is reported, and counts as not run
            report.problems.append(f"case {entry['name']!r} did not run: {exc}")
            log(f"{entry['name']} ({entry['kind']}): NOT RUN ({exc})")
            continue
        report.cases_run += 1
        ran[entry["kind"]] += 1
        report.results.extend(results)
        report.not_compared.extend(f"{entry['name']}: {name}" for name in extra)
        bad = [r for r in results if not r.passed and r.enforced]
        log(f"{entry['name']} ({entry['kind']}): {'FAIL' if bad else 'ok'}")
        for r in results:
            log(r.line())
        for name in extra:
            log(f"  {name:<40} not compared (refimpl does not compute it)")
    listed_names = {e["name"] for e in entries}
    own_set = "source_sha256" in manifest["generator"]        # a set refimpl exported: its case names are known
    expected_by_kind = Counter(expected.values())
    listed_by_kind = Counter(e["kind"] for e in entries)
    log("cases per kind (expected by this version / in the set / ran):")
    for kind in sorted(set(expected_by_kind) | set(listed_by_kind)):
        report.counts[kind] = (expected_by_kind[kind], listed_by_kind[kind], ran[kind])
        if own_set or not listed_by_kind[kind]:
            missing = sorted(n for n, k in expected.items() if k == kind and n not in listed_names)
        else:
            missing = []      # another producer names its cases as it likes; one case of the kind suffices
        note = f"  MISSING {', '.join(missing)}" if missing else ""
        log(f"  {kind:<24} {expected_by_kind[kind]:3d} {listed_by_kind[kind]:3d} {ran[kind]:3d}{note}")
        if missing:
            report.problems.append(f"kind {kind}: {len(missing)} of {expected_by_kind[kind]} case(s) "
                                   f"missing from the set ({', '.join(missing)})")
    skipped = len(manifest["cases"]) - len(entries)
    log(f"{report.cases_run} of {report.cases_listed} cases ran"
        + (f" ({skipped} outside --only skipped)" if skipped else "")
        + f"; {len(report.failed)} array(s) failed; {len(report.problems)} problem(s)")
    return report


def _check_case(directory: Path, entry: dict, float32: bool) -> tuple[list[ArrayResult], list[str]]:
    kind = entry["kind"]
    if kind not in evaluators():
        raise GoldenError(f"unknown kind {kind!r}")
    arrays = read_case(directory, entry)
    inputs, cots, expected = split_roles(entry, arrays)
    attrs, config = entry.get("attrs", {}), entry.get("config")

    def computed(dtype):
        evaluation, grads = evaluate(kind, cast_floats(inputs, dtype), attrs, config, cast_floats(cots, dtype))
        values = {f"out/{k}": v for k, v in evaluation.outputs.items()}
        values.update({f"grad/{k}": v for k, v in grads.items()})
        return values

    got64 = computed(np.float64)
    lacking = sorted(set(got64) - set(expected))
    if lacking:
        raise GoldenError(f"the case lacks required array(s) {', '.join(lacking)}")
    got32 = computed(np.float32) if float32 else None
    results = []
    for name, ref in expected.items():
        if name not in got64:
            continue
        role = entry["arrays"][name]["role"]
        tol = entry["tolerances"][name]
        if float32:
            got = np.asarray(got32[name], dtype=np.float64)
            limit = float32_limit(float(tol.get("float32_error", 0.0)), rel_error(got, got64[name]))
            enforced = float32_enforced(entry, role)
        else:
            got = np.asarray(got64[name], dtype=np.float64)
            limit, enforced = float64_limit(float(tol["rtol"])), True
        if got.shape != ref.shape:
            raise GoldenError(f"{name!r} has shape {got.shape}, golden {ref.shape}")
        rel = rel_error(got, ref)
        max_abs = float(np.max(np.abs(got - ref))) if ref.size else 0.0
        results.append(ArrayResult(entry["name"], name, max_abs, rel, limit, bool(rel <= limit), enforced))
    return results, sorted(set(expected) - set(got64))
