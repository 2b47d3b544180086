"""Golden values: refimpl still matches the committed set, exports are deterministic and safe,
and the checker catches every kind of failure it must (each test perturbs what it guards just past
its limit, and just inside it)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from refimpl import golden
from refimpl.npzio import read_npz, write_npz

COMMITTED = Path(__file__).resolve().parent / "golden"
SPEC_RTOL = 1e-6              # SPEC 10, written out here so that a changed constant in the code is caught
SPEC_FLOAT32_FLOOR = 1e-4
SPEC_FLOAT32_FACTOR = 3.0
KINDS = ["batchnorm", "conv_batch", "ridge_solve"]


def quiet(*args):
    pass


def test_refimpl_matches_committed_golden_set():
    report = golden.check(COMMITTED, log=quiet)
    failed = [(r.case, r.array, r.error) for r in report.results if not r.passed]
    assert report.ok, f"problems {report.reasons()}, failed {failed}"
    assert report.cases_run == len(report.cases) > 0
    assert set(report.counts) == set(golden.kinds())
    assert all(expected == listed == ran > 0 for expected, listed, ran in report.counts.values())
    assert any(r.array.startswith("grad/") for r in report.results)


def test_committed_set_lists_every_case():
    """Every case refimpl can generate (primitives and composed kinds) is in the committed set."""
    manifest = json.loads((COMMITTED / "manifest.json").read_text())
    committed = {case["name"] for case in manifest["cases"]}
    missing = sorted({case.name for case in golden.all_cases()} - committed)
    assert not missing, f"tests/golden lacks {missing}: run `make golden`"


def test_float32_rule_passes_on_committed_set():
    report = golden.check(COMMITTED, float32=True, log=quiet)
    assert report.ok, [(r.case, r.array, r.error, r.limit) for r in report.failed_arrays]
    by_case = {}
    for r in report.results:
        by_case.setdefault(r.case, []).append(r)
    # SPEC 10: grads are enforced on small cases, reported at mid size; outputs always enforced.
    assert all(r.enforced for r in by_case["update_step-tiny"] + by_case["batchnorm_theta"])
    assert not any(r.enforced for r in by_case["meta_gradient-mid"] if r.array.startswith("grad/"))
    assert all(r.enforced for r in by_case["meta_gradient-mid"] if r.array.startswith("out/"))


@pytest.fixture(scope="module")
def primitive_export(tmp_path_factory):
    directory = tmp_path_factory.mktemp("golden") / "set"
    golden.export(directory, kinds=KINDS)
    return directory


def test_export_is_deterministic(primitive_export, tmp_path):
    again = tmp_path / "again"
    golden.export(again, kinds=KINDS)
    for path in sorted(primitive_export.iterdir()):
        assert path.read_bytes() == (again / path.name).read_bytes(), path.name


def test_manifest_layout(primitive_export):
    manifest = json.loads((primitive_export / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert set(manifest["generator"]) >= {"refimpl_version", "source_sha256", "numpy", "scipy", "blas"}
    for case in manifest["cases"]:
        arrays = read_npz(primitive_export / case["file"])
        for name, meta in case["arrays"].items():
            assert meta["sha256"] == golden.sha256_array(arrays[name])
            assert meta["dtype"] == "float64" and list(arrays[name].shape) == meta["shape"]
        for name, meta in case["arrays"].items():
            if meta["role"] == "output":
                assert f"cot/{name[4:]}" in case["arrays"]
            if meta["role"] in ("output", "grad"):
                assert {"rtol", "float32_error"} <= set(case["tolerances"][name])


# ---------------------------------------------------------------- helpers that tamper with a copy
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _manifest(directory: Path) -> dict:
    return json.loads((directory / "manifest.json").read_text())


def _save_manifest(directory: Path, manifest: dict) -> None:
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _entry(manifest: dict, name: str) -> dict:
    return next(c for c in manifest["cases"] if c["name"] == name)


def _perturb(directory: Path, case_name: str, array: str, rel: float) -> None:
    """Shift one element of a stored array so that its normwise relative error (SPEC 10) is ``rel``,
    and rewrite the manifest's hashes so that only the value drifts."""
    manifest = _manifest(directory)
    entry = _entry(manifest, case_name)
    arrays = read_npz(directory / entry["file"])
    a = arrays[array].copy()
    scale = np.max(np.abs(a))
    j = np.unravel_index(np.argmin(np.abs(a)), a.shape)   # far below the max, so the scale is unchanged
    a[j] += rel * scale
    arrays[array] = a
    write_npz(directory / entry["file"], arrays)
    entry["arrays"][array]["sha256"] = golden.sha256_array(a)
    _save_manifest(directory, manifest)


def _result(report, case, array):
    return next(r for r in report.results if r.case == case and r.array == array)


def _first(directory: Path, case: str, prefix: str) -> str:
    return next(k for k in _entry(_manifest(directory), case)["arrays"] if k.startswith(prefix))


# ---------------------------------------------------------------- float64 rule
@pytest.mark.parametrize("prefix", ["out/", "grad/"])
@pytest.mark.parametrize("factor, passes", [(2.0, False), (0.5, True)])
def test_drift_past_rtol_fails_and_within_passes(primitive_export, tmp_path, prefix, factor, passes):
    directory = _copy(primitive_export, tmp_path / "drift")
    array = _first(directory, "batchnorm_theta", prefix)
    _perturb(directory, "batchnorm_theta", array, factor * SPEC_RTOL)
    report = golden.check(directory, only=KINDS, log=quiet)
    result = _result(report, "batchnorm_theta", array)
    assert result.limit == SPEC_RTOL and result.passed is passes and report.ok is passes
    assert result.error == pytest.approx(factor * SPEC_RTOL, rel=1e-3)


def test_manifest_cannot_loosen_rtol(primitive_export, tmp_path):
    directory = _copy(primitive_export, tmp_path / "loose")
    manifest = _manifest(directory)
    for case in manifest["cases"]:
        for tol in case["tolerances"].values():
            tol["rtol"] = 1.0
    _save_manifest(directory, manifest)
    _perturb(directory, "batchnorm_theta", _first(directory, "batchnorm_theta", "grad/"), 2 * SPEC_RTOL)
    report = golden.check(directory, only=KINDS, log=quiet)
    assert all(r.limit == SPEC_RTOL for r in report.results) and not report.ok


# ---------------------------------------------------------------- float32 rule
@pytest.mark.parametrize("factor, passes", [(1.05, False), (0.95, True)])
def test_float32_floor_boundary_on_a_small_case_gradient(primitive_export, tmp_path, factor, passes):
    """A recorded float32 error of 0 leaves the floor: the limit is exactly 1e-4."""
    directory = _copy(primitive_export, tmp_path / "f32")
    array = _first(directory, "batchnorm_theta", "grad/")
    manifest = _manifest(directory)
    _entry(manifest, "batchnorm_theta")["tolerances"][array]["float32_error"] = 0.0
    _save_manifest(directory, manifest)
    _perturb(directory, "batchnorm_theta", array, factor * SPEC_FLOAT32_FLOOR)
    report = golden.check(directory, float32=True, only=KINDS, log=quiet)
    result = _result(report, "batchnorm_theta", array)
    assert result.limit == SPEC_FLOAT32_FLOOR and result.enforced
    assert result.passed is passes and report.ok is passes


def test_float32_limit_formula():
    assert golden.float32_limit(0.0, 1.0) == SPEC_FLOAT32_FLOOR
    assert golden.float32_limit(1e-3, 1.0) == pytest.approx(SPEC_FLOAT32_FACTOR * 1e-3, rel=1e-15)
    assert golden.float32_limit(1e-3, 2e-3) == pytest.approx(SPEC_FLOAT32_FACTOR * 1e-3, rel=1e-15)
    # the recorded error is capped at refimpl's own: a file can tighten the limit, never widen it
    assert golden.float32_limit(1.0, 1e-3) == pytest.approx(SPEC_FLOAT32_FACTOR * 1e-3, rel=1e-15)
    assert golden.float32_limit(1.0, 1e-6) == SPEC_FLOAT32_FLOOR


@pytest.fixture(scope="module")
def update_step_set(tmp_path_factory):
    """The committed update_step-tiny case: the largest float32 grad errors of a small case."""
    directory = tmp_path_factory.mktemp("update_step") / "set"
    directory.mkdir()
    manifest = _manifest(COMMITTED)
    manifest["cases"] = [c for c in manifest["cases"] if c["name"] == "update_step-tiny"]
    for case in manifest["cases"]:
        shutil.copy(COMMITTED / case["file"], directory / case["file"])
    _save_manifest(directory, manifest)
    return directory


def _worst_float32_grad(directory: Path, case: str) -> str:
    tolerances = _entry(_manifest(directory), case)["tolerances"]
    return max((k for k in tolerances if k.startswith("grad/")), key=lambda k: tolerances[k]["float32_error"])


@pytest.mark.parametrize("tamper", ["none", "widen_recorded_error", "relabel_preset_mid"])
def test_float32_small_case_gradient_past_its_limit_fails(update_step_set, tmp_path, tamper):
    """Twice the floor fails, with the factor 3 (30 would pass it here), whatever the file says."""
    directory = _copy(update_step_set, tmp_path / "set")
    array = _worst_float32_grad(directory, "update_step-tiny")
    manifest = _manifest(directory)
    entry = _entry(manifest, "update_step-tiny")
    recorded = entry["tolerances"][array]["float32_error"]
    assert SPEC_FLOAT32_FLOOR / 30 < recorded < SPEC_FLOAT32_FLOOR / SPEC_FLOAT32_FACTOR
    if tamper == "widen_recorded_error":
        for tol in entry["tolerances"].values():
            tol["float32_error"] = 1.0
    elif tamper == "relabel_preset_mid":
        entry["preset"] = "mid"
    _save_manifest(directory, manifest)
    _perturb(directory, "update_step-tiny", array, 2 * SPEC_FLOAT32_FLOOR)
    report = golden.check(directory, float32=True, only=["update_step"], log=quiet)
    result = _result(report, "update_step-tiny", array)
    assert result.enforced and not result.passed and not report.ok
    assert result.limit == SPEC_FLOAT32_FLOOR


# ---------------------------------------------------------------- the set, not only the manifest
def test_extra_array_in_a_case_file_is_reported(primitive_export, tmp_path):
    directory = _copy(primitive_export, tmp_path / "extra")
    entry = _entry(_manifest(directory), "ridge_solve")
    arrays = read_npz(directory / entry["file"])
    write_npz(directory / entry["file"], {**arrays, "grad/unlisted": np.zeros(3)})
    report = golden.check(directory, only=KINDS, log=quiet)
    assert not report.ok and report.cases_run == len(report.cases) - 1
    assert any("does not list: grad/unlisted" in p for p in report.reasons())


def test_missing_array_in_a_case_file_is_reported(primitive_export, tmp_path):
    directory = _copy(primitive_export, tmp_path / "missing_array")
    entry = _entry(_manifest(directory), "ridge_solve")
    arrays = read_npz(directory / entry["file"])
    dropped = _first(directory, "ridge_solve", "grad/")
    write_npz(directory / entry["file"], {k: v for k, v in arrays.items() if k != dropped})
    report = golden.check(directory, only=KINDS, log=quiet)
    assert not report.ok and any(f"missing from ridge_solve.npz: {dropped}" in p for p in report.reasons())


def test_check_fails_on_hash_mismatch(primitive_export, tmp_path):
    directory = _copy(primitive_export, tmp_path / "hash")
    case = _manifest(directory)["cases"][0]
    arrays = read_npz(directory / case["file"])
    key = next(iter(arrays))
    arrays[key] = arrays[key] + 1e-12
    write_npz(directory / case["file"], arrays)
    report = golden.check(directory, only=KINDS, log=quiet)
    assert not report.ok and report.cases_run < len(report.cases)
    assert any("sha256" in p for p in report.reasons())


def test_cases_removed_with_their_manifest_entries_fail(primitive_export, tmp_path):
    directory = _copy(primitive_export, tmp_path / "removed")
    manifest = _manifest(directory)
    manifest["cases"] = [c for c in manifest["cases"] if c["kind"] != "conv_batch"]
    _save_manifest(directory, manifest)
    report = golden.check(directory, only=KINDS, log=quiet)
    assert not report.ok and report.cases_run == len(report.cases)
    assert any(p.startswith("kind conv_batch:") for p in report.problems)
    assert report.counts["conv_batch"][1:] == (0, 0) and report.counts["conv_batch"][0] > 0
    # narrowing the check explicitly is the way to check part of a set
    assert golden.check(directory, only=["batchnorm", "ridge_solve"], log=quiet).ok


def test_empty_case_list_fails(primitive_export, tmp_path):
    directory = _copy(primitive_export, tmp_path / "empty")
    manifest = _manifest(directory)
    manifest["cases"] = []
    _save_manifest(directory, manifest)
    report = golden.check(directory, log=quiet)
    assert not report.ok and len(report.problems) == len(golden.kinds())


def test_a_partial_set_fails_unless_narrowed(primitive_export):
    assert not golden.check(primitive_export, log=quiet).ok
    assert golden.check(primitive_export, only=KINDS, log=quiet).ok


def test_check_fails_when_a_case_cannot_run(primitive_export, tmp_path):
    directory = _copy(primitive_export, tmp_path / "missing")
    manifest = _manifest(directory)
    (directory / manifest["cases"][0]["file"]).unlink()
    manifest["cases"].append(dict(manifest["cases"][-1], name="from_the_future", kind="no_such_kind"))
    _save_manifest(directory, manifest)
    report = golden.check(directory, log=quiet)
    assert not report.ok and report.cases_run == len(report.cases) - 2


MALFORMED = {
    "a JSON list": (b"[]", "must be a JSON object, not a list"),
    "cases a number": (lambda m: dict(m, cases=5), "'cases' must be a list, not a number"),
    "a string entry": (lambda m: dict(m, cases=["batchnorm_theta"]), "must be an object, not a string"),
    "not UTF-8": (b'{"schema_version": 1, "\xff": 2}', "not UTF-8"),
    "not JSON": (b'{"schema_version": 1,', "not valid JSON"),
    "unknown schema": (lambda m: dict(m, schema_version=99), "unknown schema_version 99"),
    "a file outside the set": (lambda m: dict(m, cases=[dict(m["cases"][0], file="../x.npz")]), "plain .npz"),
    "an absolute file path": (lambda m: dict(m, cases=[dict(m["cases"][0], file="/tmp/x.npz")]), "plain .npz"),
    "no case name": (lambda m: dict(m, cases=[{k: v for k, v in m["cases"][0].items() if k != "name"}]),
                     "'name' must be a non-empty string"),
    "a grad not named grad/": (lambda m: dict(m, cases=[dict(m["cases"][0], arrays={
        **m["cases"][0]["arrays"], "dm": dict(next(iter(m["cases"][0]["arrays"].values())), role="grad")})]),
        "must be named grad/<name>"),
    "a tolerance missing": (lambda m: dict(m, cases=[dict(m["cases"][0], tolerances={})]), "no entry for"),
    "a negative float32 error": (
        lambda m: dict(m, cases=[dict(m["cases"][0], tolerances={
            k: dict(v, float32_error=-1.0) for k, v in m["cases"][0]["tolerances"].items()})]),
        "'float32_error' must be a non-negative"),
}


@pytest.mark.parametrize("what", sorted(MALFORMED))
def test_malformed_manifest_is_one_clear_error(primitive_export, tmp_path, what):
    directory = _copy(primitive_export, tmp_path / "malformed")
    change, message = MALFORMED[what]
    path = directory / "manifest.json"
    path.write_bytes(change if isinstance(change, bytes) else json.dumps(change(_manifest(directory))).encode())
    with pytest.raises(golden.GoldenError, match=message) as info:
        golden.check(directory, only=KINDS, log=quiet)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- export never deletes what it did not write
def _snapshot(directory: Path) -> dict:
    return {p.relative_to(directory): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_export_refuses_a_directory_it_did_not_write(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    before = _snapshot(tmp_path)
    with pytest.raises(golden.GoldenError, match="not empty and holds no golden set"):
        golden.export(tmp_path, kinds=["matmul"])
    (tmp_path / "manifest.json").write_text('{"cases": []}')
    before = _snapshot(tmp_path)
    with pytest.raises(golden.GoldenError, match="not one refimpl wrote"):
        golden.export(tmp_path, kinds=["matmul"])
    assert _snapshot(tmp_path) == before


def test_export_refuses_a_regular_file(tmp_path):
    path = tmp_path / "afile"
    path.write_text("keep me")
    with pytest.raises(golden.GoldenError, match="is not a directory"):
        golden.export(path, kinds=["matmul"])
    assert [p.name for p in tmp_path.iterdir()] == ["afile"] and path.read_text() == "keep me"


def test_export_to_dot_and_relative_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    golden.export(".", kinds=["matmul"])
    assert golden.check(".", only=["matmul"], log=quiet).ok
    golden.export("sub/set", kinds=["matmul"])
    assert golden.check("sub/set", only=["matmul"], log=quiet).ok
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["set"]


def test_re_export_replaces_only_its_own_files(tmp_path):
    directory = tmp_path / "set"
    golden.export(directory, kinds=["matmul", "gauss"])
    (directory / "notes.txt").write_text("mine")
    golden.export(directory, kinds=["gauss"])
    names = sorted(p.name for p in directory.iterdir())
    assert names == ["gauss.npz", "manifest.json", "notes.txt"]
    assert golden.check(directory, only=["gauss"], log=quiet).ok


def test_forged_manifest_cannot_make_export_delete_or_overwrite_a_users_file(tmp_path):
    directory = tmp_path / "set"
    golden.export(directory, kinds=["matmul", "gauss"])
    manifest = json.loads((directory / "manifest.json").read_text())
    gauss = next(e for e in manifest["cases"] if e["name"] == "gauss")
    gauss["file"] = "thesis.npz"                 # a case entry pointing at the user's file
    (directory / "thesis.npz").write_bytes(b"precious")
    (directory / "manifest.json").write_text(json.dumps(manifest))
    golden.export(directory, kinds=["matmul"])
    assert (directory / "thesis.npz").read_bytes() == b"precious"
    # a file named like a case but not the one the manifest vouches for is never overwritten
    (directory / "gauss.npz").write_bytes(b"mine too")
    before = _snapshot(directory)
    with pytest.raises(golden.GoldenError, match="gauss.npz, which its manifest does not vouch for"):
        golden.export(directory, kinds=["matmul", "gauss"])
    assert _snapshot(directory) == before


def test_export_refuses_unknown_kinds(tmp_path):
    with pytest.raises(golden.GoldenError, match="unknown kind.*nosuch.*valid: activation"):
        golden.export(tmp_path / "set", kinds=["nosuch"])
    assert not (tmp_path / "set").exists()


# ---------------------------------------------------------------- npz safety
def test_pickled_npz_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, x=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        read_npz(path)


def test_corrupt_npz_is_refused(tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a valid"):
        read_npz(path)


def test_failed_write_keeps_old_file(tmp_path):
    path = tmp_path / "keep.npz"
    write_npz(path, {"a": np.arange(3.0)})
    with pytest.raises(ValueError):
        write_npz(path, {"a": np.arange(3.0), "b": np.array([None], dtype=object)})
    np.testing.assert_array_equal(read_npz(path)["a"], np.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npz"]


def test_a_case_file_linked_from_outside_the_set_is_not_run(primitive_export, tmp_path):
    directory = _copy(primitive_export, tmp_path / "linked")
    entry = _entry(_manifest(directory), "ridge_solve")
    outside = tmp_path / "elsewhere.npz"
    (directory / entry["file"]).rename(outside)
    (directory / entry["file"]).symlink_to(outside)
    report = golden.check(directory, only=KINDS, log=quiet)
    assert not report.ok and any("leads outside the set's directory" in p for p in report.reasons())


# ---------------------------------------------------------------- coverage by kind and case count, not by name
@pytest.fixture(scope="module")
def orth_export(tmp_path_factory):
    """The three orth cases (a multi-case kind) and gauss, as refimpl exports them."""
    directory = tmp_path_factory.mktemp("orth") / "set"
    golden.export(directory, kinds=["orth", "gauss"])
    return directory


def test_a_set_missing_one_case_of_a_multi_case_kind_fails(orth_export, tmp_path):
    directory = _copy(orth_export, tmp_path / "short")
    manifest = _manifest(directory)
    manifest["cases"] = [c for c in manifest["cases"] if c["name"] != "orth_shrinking"]
    _save_manifest(directory, manifest)
    report = golden.check(directory, only=["orth", "gauss"], log=quiet)
    assert not report.ok and report.cases_run == 3 and not report.failed
    assert report.counts["orth"] == (3, 2, 2)
    assert report.summary().startswith("kind orth: 1 of 3 case(s) missing from the set (it holds 2;")
    assert golden.check(orth_export, only=["orth", "gauss"], log=quiet).ok


def test_coverage_counts_cases_per_kind_and_ignores_their_names(orth_export, tmp_path):
    """A case renamed (entry and file) still counts for its kind; its arrays decide."""
    directory = _copy(orth_export, tmp_path / "renamed")
    manifest = _manifest(directory)
    entry = _entry(manifest, "orth_shrinking")
    (directory / entry["file"]).rename(directory / "my own name.npz")
    entry.update(name="my own name", file="my own name.npz")
    _save_manifest(directory, manifest)
    assert golden.check(directory, only=["orth", "gauss"], log=quiet).ok
    _perturb(directory, "my own name", "grad/Mf", 2 * SPEC_RTOL)
    report = golden.check(directory, only=["orth", "gauss"], log=quiet)
    assert not report.ok and [(r.case, r.array) for r in report.failed_arrays] == [("my own name", "grad/Mf")]


@pytest.mark.parametrize("only", [["orth"], None])
def test_an_empty_selection_fails_with_no_case_selected(orth_export, tmp_path, only):
    directory = _copy(orth_export, tmp_path / "empty")
    manifest = _manifest(directory)
    manifest["cases"] = [c for c in manifest["cases"] if c["kind"] != "orth"] if only else []
    _save_manifest(directory, manifest)
    lines = []
    report = golden.check(directory, only=only, log=lines.append)
    assert not report.ok and report.summary().startswith("no case selected")
    assert lines[-1].startswith("verdict: FAIL (no case selected")


def test_a_wrong_shape_array_is_a_failed_array_not_an_error(orth_export, tmp_path):
    """A stored output of another shape (its manifest entry consistent with it) fails as an array."""
    directory = _copy(orth_export, tmp_path / "shape")
    manifest = _manifest(directory)
    entry = _entry(manifest, "orth")
    arrays = read_npz(directory / entry["file"])
    arrays["out/y"] = arrays["out/y"].T.copy()
    write_npz(directory / entry["file"], arrays)
    entry["arrays"]["out/y"].update(shape=list(arrays["out/y"].shape), sha256=golden.sha256_array(arrays["out/y"]))
    _save_manifest(directory, manifest)
    report = golden.check(directory, only=["orth", "gauss"], log=quiet)
    assert not report.ok and report.cases_run == 4
    [failed] = report.failed_arrays
    assert (failed.case, failed.array, failed.note) == ("orth", "out/y", "shape [6, 5], golden [5, 6]")


def test_check_reports_progress_on_stderr_when_asked(orth_export, capsys):
    report = golden.check(orth_export, only=["orth", "gauss"], log=quiet, progress=True)
    err = capsys.readouterr().err.splitlines()
    assert report.ok and err[-1].startswith("golden check: 4/4 cases [") and "cases/s]" in err[-1]


# ---------------------------------------------------------------- adding the cases a set lacks
def test_export_missing_adds_only_the_missing_cases(orth_export, tmp_path):
    directory = _copy(orth_export, tmp_path / "grow")
    manifest = _manifest(directory)
    manifest["cases"] = [c for c in manifest["cases"] if c["name"] != "orth_disjoint"]
    _save_manifest(directory, manifest)
    (directory / "orth_disjoint.npz").unlink()
    # the kept files hold other bytes than this machine would write: they must survive untouched
    entry = _entry(manifest, "gauss")
    arrays = read_npz(directory / entry["file"])
    arrays["out/y"] = arrays["out/y"] * (1 + 1e-12)
    write_npz(directory / entry["file"], arrays)
    entry["arrays"]["out/y"]["sha256"] = golden.sha256_array(arrays["out/y"])
    _save_manifest(directory, manifest)
    before = {p.name: p.read_bytes() for p in directory.iterdir() if p.suffix == ".npz"}
    grown = golden.export(directory, kinds=["orth", "gauss"], missing_only=True)
    assert [c["name"] for c in grown["cases"]] == [c["name"] for c in _manifest(orth_export)["cases"]]
    assert {p.name: p.read_bytes() for p in directory.iterdir() if p.suffix == ".npz" and p.name in before} \
        == before
    assert (directory / "orth_disjoint.npz").read_bytes() == (orth_export / "orth_disjoint.npz").read_bytes()
    assert _entry(grown, "gauss") == entry
    assert golden.check(directory, only=["orth", "gauss"], log=quiet).ok


def test_export_missing_refuses_a_set_whose_files_do_not_match(orth_export, tmp_path):
    directory = _copy(orth_export, tmp_path / "bad")
    (directory / "gauss.npz").write_bytes(b"not what the manifest says")
    before = _snapshot(directory)
    with pytest.raises(golden.GoldenError, match="gauss in .* do not match the manifest"):
        golden.export(directory, missing_only=True)
    assert _snapshot(directory) == before
    with pytest.raises(golden.GoldenError, match="holds no golden set to add missing cases to"):
        golden.export(tmp_path / "new", missing_only=True)
