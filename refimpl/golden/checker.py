"""``refimpl golden check DIR``: recompute a golden set with refimpl and compare (docs/golden.md).

refimpl is judged as the verifier judges a port (:mod:`refimpl.golden.verifier`:
the same verdicts, limits and summaries), with two differences: refimpl
measures its own float32 error on each case and caps the recorded one at it
(:func:`refimpl.golden.format.float32_limit`), and an output or grad refimpl
computes that the case lacks fails the case (the contract requires it). A
stored output or grad refimpl does not compute (a producer may store more
grads than the contract requires) is listed as not compared.

Coverage is judged by kind and case count, never by case name, since a
producer names its cases as it likes:

- nothing selected fails ("no case selected"), and so does a kind asked for
  with ``only`` that the set holds no case of;
- a set refimpl exported (its generator records ``source_sha256``) must hold,
  for every selected kind, at least as many cases as this version exports;
- a set from another producer is reported per kind (its cases against this
  version's), and passes or fails on the arrays compared.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from refimpl.golden.catalog import case_kinds, check_kinds, evaluate, evaluators
from refimpl.golden.format import GoldenError, cast_floats, read_case, read_manifest, rel_error, split_roles
from refimpl.golden.verifier import ArrayVerdict, CaseVerdict, Report, judge_arrays, run_cases


@dataclass
class CheckReport(Report):
    counts: dict = field(default_factory=dict)     # kind -> (exported by this version, in the set, ran)
    own_set: bool = False                           # refimpl exported the set

    @property
    def results(self) -> list[ArrayVerdict]:
        """Every compared array of every case."""
        return [a for c in self.cases for a in c.arrays]

    @property
    def failed_arrays(self) -> list[ArrayVerdict]:
        return [a for c in self.cases for a in c.failed]


def check(directory, float32: bool = False, only=None, log=print, progress: bool = False) -> CheckReport:
    """Recompute every case of the golden set in ``directory`` with refimpl and compare.

    ``float32``: run refimpl in float32 and apply SPEC 10's float32 rule.
    ``only``: check only these kinds (the others, listed or not, are skipped).
    ``progress``: progress lines on stderr. A manifest that is not SPEC 10's
    layout raises :class:`GoldenError`.
    """
    if only is not None:
        check_kinds(only)
    wanted = (lambda kind: True) if only is None else (lambda kind: kind in only)
    manifest = read_manifest(directory)
    directory = Path(directory)
    entries = [e for e in manifest["cases"] if wanted(e["kind"])]
    report = CheckReport(str(directory), float32, skipped=[e["name"] for e in manifest["cases"]
                                                           if not wanted(e["kind"])],
                         own_set="source_sha256" in manifest["generator"])
    log = (lambda *a: None) if log is None else log
    run_cases(report, entries, lambda entry: _check_case(directory, entry, float32), log, progress,
              desc="golden check", not_compared_note="not compared (refimpl does not compute it)")
    _judge_coverage(report, entries, only, log)
    log(f"{report.cases_run} of {len(entries)} cases ran"
        + (f" ({len(report.skipped)} outside --only skipped)" if report.skipped else "")
        + f"; {len(report.failed_arrays)} array(s) failed; {len(report.failed)} case(s) failed")
    log(report.verdict())
    return report


def _judge_coverage(report: CheckReport, entries: list[dict], only, log) -> None:
    exported = Counter(kind for kind in case_kinds().values() if only is None or kind in only)
    listed = Counter(e["kind"] for e in entries)
    ran = Counter(c.kind for c in report.cases if c.ran)
    log("cases per kind (exported by this version / in the set / ran):")
    for kind in sorted(set(exported) | set(listed)):
        report.counts[kind] = (exported[kind], listed[kind], ran[kind])
        short = exported[kind] - listed[kind]
        fails = listed[kind] == 0 and only is not None or short > 0 and report.own_set
        note = f"  {short} case(s) fewer than this version exports" if short > 0 else ""
        log(f"  {kind:<24} {exported[kind]:3d} {listed[kind]:3d} {ran[kind]:3d}{note}{' (FAIL)' if fails else ''}")
        if fails:
            report.problems.append(f"kind {kind}: {short} of {exported[kind]} case(s) missing from the set "
                                   f"(it holds {listed[kind]}; cases are counted per kind, not matched by name)")
    kinds = [k for k in exported if listed[k]]
    log(f"coverage: the set holds {len(kinds)} of the {len(exported)} kind(s) and {sum(listed.values())} case(s) "
        f"against the {sum(exported.values())} this version exports"
        + ("" if report.own_set else " (a set from another producer: coverage is reported, not required)"))


def _check_case(directory: Path, entry: dict, float32: bool) -> CaseVerdict:
    kind = entry["kind"]
    verdict = CaseVerdict(entry["name"], kind)
    try:
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
    except (ValueError, KeyError, TypeError, FloatingPointError, np.linalg.LinAlgError) as exc:
        # a case that cannot run is reported, and counts as not run
        verdict.not_run = str(exc)
        return verdict
    compared = {name: ref for name, ref in expected.items() if name in got64}
    if float32:
        own = {name: rel_error(got32[name], got64[name]) for name in compared}
        verdict.arrays = judge_arrays(entry, compared, got32, True, own)
    else:
        verdict.arrays = judge_arrays(entry, compared, got64, False)
    verdict.not_compared = sorted(set(expected) - set(got64))
    return verdict
