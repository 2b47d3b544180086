"""``refimpl golden export DIR``: write a golden set (docs/golden.md).

The exporter writes into a new directory (built beside it and renamed into
place, so it appears complete or not at all), an empty one, or one holding a
set it exported before (recognised by its manifest); anything else is
refused. It never deletes or moves a file it did not write: replacing a set
rewrites the case files, then the manifest, then removes the case files the
old manifest listed that the new set no longer has.

``missing_only`` adds to a set refimpl exported the cases it lacks and
leaves every other case file and manifest entry as it is, byte for byte: the
way to extend a committed set from a machine whose CPU or BLAS rounds the
last bit of some values differently (a full export there rewrites those
files with values equal within rounding, not identical bytes).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import scipy

import refimpl
from refimpl.golden.catalog import all_cases, check_kinds, evaluate, evaluators
from refimpl.golden.contract import CaseSpec, case_rng, source_sha256
from refimpl.golden.format import (
    DEFAULT_RTOL,
    MANIFEST_FILE,
    SCHEMA_VERSION,
    GoldenError,
    cast_floats,
    read_case,
    read_manifest,
    rel_error,
    sha256_array,
)
from refimpl.npzio import atomic_write_bytes, current_umask, write_npz
from refimpl.runtime import Progress


def export(directory, kinds: list[str] | None = None, missing_only: bool = False, progress: bool = False) -> dict:
    """Write the golden set of ``kinds`` (default: all) to ``directory``; return the manifest.

    ``missing_only``: ``directory`` must hold a set refimpl exported; only the
    cases of ``kinds`` it lacks are written and added to its manifest.
    ``progress``: progress lines on stderr.
    """
    if kinds is not None:
        check_kinds(kinds)
        if not kinds:
            raise GoldenError("no kinds selected; give at least one, or None for all")
    target = Path(directory)
    previous = _previous_set(target)
    cases = [c for c in all_cases() if kinds is None or c.kind in kinds]
    try:
        if missing_only:
            return _add_missing(target, cases, previous, progress)
        if target.exists():
            return _write_in_place(target, cases, previous, progress)
        return _write_new(target, cases, progress)
    except OSError as e:
        raise GoldenError(f"cannot write the golden set to {target}: {e.strerror or e}") from None


def _add_missing(target: Path, cases: list[CaseSpec], previous: dict | None, progress: bool) -> dict:
    if previous is None:
        raise GoldenError(f"{target} holds no golden set to add missing cases to; export the whole set instead")
    listed = {entry["name"] for entry in previous["cases"]}
    ours = _verified_old_files(target, previous)
    unverified = sorted(entry["name"] for entry in previous["cases"] if entry["file"] not in ours)
    if unverified:
        raise GoldenError(f"the case file(s) of {', '.join(unverified)} in {target} do not match the manifest; "
                          f"export the whole set instead")
    new = [c for c in cases if c.name not in listed]
    before = {p.name for p in target.iterdir()}
    foreign = sorted({f"{c.name}.npz" for c in new} & before)
    if foreign:
        raise GoldenError(f"{target} holds {', '.join(foreign)}, which its manifest does not list; "
                          f"refusing to overwrite")
    order = {c.name: i for i, c in enumerate(all_cases())}
    try:
        entries = previous["cases"] + _export_cases(new, target, progress)
        entries.sort(key=lambda entry: order.get(entry["name"], len(order)))
        _write_manifest(target, entries)
    except BaseException:
        for case in new:        # only files this export created
            (target / f"{case.name}.npz").unlink(missing_ok=True)
        raise
    return read_manifest(target)


def _previous_set(target: Path) -> dict | None:
    """The manifest of the set refimpl exported to ``target`` before; None for a new or empty directory."""
    if not target.exists():
        return None
    if not target.is_dir():
        raise GoldenError(f"{target} exists and is not a directory; give a new or empty directory")
    if not any(target.iterdir()):
        return None
    if not (target / MANIFEST_FILE).is_file():
        raise GoldenError(f"{target} is not empty and holds no golden set; give a new or empty directory")
    try:
        manifest = read_manifest(target)
    except GoldenError as e:
        raise GoldenError(f"{target} is not empty and its manifest is not one refimpl wrote ({e})") from None
    if not {"refimpl_version", "source_sha256"} <= set(manifest["generator"]):
        raise GoldenError(f"{target} holds a golden set refimpl did not export; give a new or empty directory")
    return manifest


def _write_new(target: Path, cases: list[CaseSpec], progress: bool) -> dict:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging.chmod(0o777 & ~current_umask())        # mkdtemp makes 0700
        manifest = _write_set(staging, cases, progress)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)    # the staging directory is ours alone
        raise
    return manifest


def _verified_old_files(target: Path, previous: dict | None) -> set[str]:
    """The case files of the previous set that are verifiably what its manifest lists: named after
    their case and matching every sha256. Only those may be overwritten or removed."""
    ours = set()
    for entry in (previous or {}).get("cases", []):
        if entry["file"] != f"{entry['name']}.npz":
            continue
        try:
            read_case(target, entry)
        except (GoldenError, ValueError):
            continue
        ours.add(entry["file"])
    return ours


def _write_in_place(target: Path, cases: list[CaseSpec], previous: dict | None, progress: bool) -> dict:
    before = {p.name for p in target.iterdir()}
    ours = _verified_old_files(target, previous)
    foreign = sorted({f"{c.name}.npz" for c in cases} & before - ours)
    if foreign:
        raise GoldenError(f"{target} holds {', '.join(foreign)}, which its manifest does not vouch for "
                          f"(name or sha256 differ); refusing to overwrite: give a new or empty directory")
    try:
        manifest = _write_set(target, cases, progress)
    except BaseException:
        for name in {f"{c.name}.npz" for c in cases} - before:   # only files this export created
            (target / name).unlink(missing_ok=True)
        raise
    if previous is not None:
        kept = {entry["file"] for entry in manifest["cases"]}
        for name in ours - kept:
            (target / name).unlink(missing_ok=True)
    return manifest


def _write_set(directory: Path, cases: list[CaseSpec], progress: bool) -> dict:
    """The case files, then the manifest (last: a set is only complete once it is written)."""
    return _write_manifest(directory, _export_cases(cases, directory, progress))


def _export_cases(cases: list[CaseSpec], directory: Path, progress: bool) -> list[dict]:
    bar = Progress(len(cases), "golden export") if progress else None
    entries = []
    try:
        for case in cases:
            entries.append(_export_case(case, directory))
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    return entries


def _write_manifest(directory: Path, entries: list[dict]) -> dict:
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "generator": {"refimpl_version": refimpl.__version__, "source_sha256": source_sha256(),
                      "numpy": np.__version__, "scipy": scipy.__version__, "blas": _blas()},
        "cases": entries,
    }
    text = json.dumps(manifest, indent=1, sort_keys=False) + "\n"
    atomic_write_bytes(directory / MANIFEST_FILE, lambda f: f.write(text.encode()))
    return manifest


def _blas() -> str:
    try:
        info = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{info.get('name', '?')} {info.get('version', '?')}"
    except Exception:  # the layout of numpy's config differs between versions
        return "unknown"


def _export_case(case: CaseSpec, directory: Path) -> dict:
    rng = case_rng(case.name + "/cotangents")
    evaluation = evaluators()[case.kind](case.inputs, case.attrs, case.config)
    cots = {}
    for name, out in evaluation.outputs.items():
        if name in evaluation.value_only:
            continue
        if name in evaluation.fixed_cotangents:
            cots[name] = np.asarray(evaluation.fixed_cotangents[name], dtype=np.float64)
        else:
            cots[name] = rng.standard_normal(np.shape(out))
    grads = evaluation.vjp(cots)

    ev32, grads32 = evaluate(case.kind, cast_floats(case.inputs, np.float32), case.attrs, case.config,
                             cast_floats(cots, np.float32))
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
    write_npz(directory / f"{case.name}.npz", arrays)
    entry = {"name": case.name, "kind": case.kind, "file": f"{case.name}.npz", "config": case.config,
             "attrs": case.attrs,
             "arrays": {k: {"role": roles[k], "shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype),
                            "sha256": sha256_array(np.asarray(v))} for k, v in arrays.items()},
             "tolerances": tolerances}
    if case.preset is not None:
        entry["preset"] = case.preset
    return entry
