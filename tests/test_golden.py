"""Golden values: refimpl still matches the committed set, exports are
deterministic, and the checker catches every kind of failure it must."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from refimpl import golden
from refimpl.npzio import read_npz, write_npz

COMMITTED = Path(__file__).resolve().parent / "golden"


def quiet(*args):
    pass


def test_refimpl_matches_committed_golden_set():
    report = golden.check(COMMITTED, log=quiet)
    failed = [(r.case, r.array, r.rel) for r in report.results if not r.passed]
    assert report.ok, f"problems {report.problems}, failed {failed}"
    assert report.cases_run == report.cases_listed > 0


def test_committed_set_lists_every_case():
    """Every case refimpl can generate (primitives and composed kinds) is in the committed set."""
    manifest = json.loads((COMMITTED / "manifest.json").read_text())
    committed = {case["name"] for case in manifest["cases"]}
    missing = sorted({case.name for case in golden.all_cases()} - committed)
    assert not missing, f"tests/golden lacks {missing}: run `make golden`"


def test_float32_rule_passes_on_committed_set():
    report = golden.check(COMMITTED, float32=True, log=quiet)
    assert report.ok, [(r.case, r.array, r.rel, r.limit) for r in report.results if not r.passed and r.enforced]


@pytest.fixture(scope="module")
def primitive_export(tmp_path_factory):
    directory = tmp_path_factory.mktemp("golden") / "set"
    kinds = ["batchnorm", "conv_batch", "ridge_solve"]
    kinds = [k for k in kinds if k in {c.kind for c in golden.all_cases()}]
    golden.export(directory, kinds=kinds)
    return directory, kinds


def test_export_is_deterministic(primitive_export, tmp_path):
    directory, kinds = primitive_export
    again = tmp_path / "again"
    golden.export(again, kinds=kinds)
    for path in sorted(directory.iterdir()):
        assert path.read_bytes() == (again / path.name).read_bytes(), path.name


def test_manifest_layout(primitive_export):
    directory, _ = primitive_export
    manifest = json.loads((directory / "manifest.json").read_text())
    assert manifest["schema_version"] == 1
    assert set(manifest["generator"]) >= {"refimpl_version", "source_sha256", "numpy", "scipy", "blas"}
    for case in manifest["cases"]:
        arrays = read_npz(directory / case["file"])
        for name, meta in case["arrays"].items():
            assert meta["sha256"] == golden.sha256_array(arrays[name])
            assert meta["dtype"] == "float64" and list(arrays[name].shape) == meta["shape"]
        for name, meta in case["arrays"].items():
            if meta["role"] == "output":
                assert f"cot/{name[4:]}" in case["arrays"]
            if meta["role"] in ("output", "grad"):
                assert {"rtol", "float32_error"} <= set(case["tolerances"][name])


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_check_fails_on_drift(primitive_export, tmp_path):
    directory = _copy(primitive_export[0], tmp_path / "drift")
    manifest = json.loads((directory / "manifest.json").read_text())
    case = manifest["cases"][0]
    arrays = read_npz(directory / case["file"])
    arrays["out/" + next(k[4:] for k in arrays if k.startswith("out/"))] *= 1 + 1e-3
    write_npz(directory / case["file"], arrays)
    for name, value in arrays.items():   # keep the hashes consistent: only the value drifts
        case["arrays"][name]["sha256"] = golden.sha256_array(value)
    (directory / "manifest.json").write_text(json.dumps(manifest))
    report = golden.check(directory, log=quiet)
    assert not report.ok and any(not r.passed for r in report.results)


def test_check_fails_on_hash_mismatch(primitive_export, tmp_path):
    directory = _copy(primitive_export[0], tmp_path / "hash")
    case = json.loads((directory / "manifest.json").read_text())["cases"][0]
    arrays = read_npz(directory / case["file"])
    key = next(iter(arrays))
    arrays[key] = arrays[key] + 1e-12
    write_npz(directory / case["file"], arrays)
    report = golden.check(directory, log=quiet)
    assert not report.ok and report.cases_run < report.cases_listed


def test_check_refuses_unknown_schema(primitive_export, tmp_path):
    directory = _copy(primitive_export[0], tmp_path / "schema")
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (directory / "manifest.json").write_text(json.dumps(manifest))
    report = golden.check(directory, log=quiet)
    assert not report.ok and "schema_version" in report.problems[0]


def test_check_fails_when_a_case_cannot_run(primitive_export, tmp_path):
    directory = _copy(primitive_export[0], tmp_path / "missing")
    manifest = json.loads((directory / "manifest.json").read_text())
    (directory / manifest["cases"][0]["file"]).unlink()
    manifest["cases"].append(dict(manifest["cases"][-1], name="from_the_future", kind="no_such_kind"))
    (directory / "manifest.json").write_text(json.dumps(manifest))
    report = golden.check(directory, log=quiet)
    assert not report.ok and report.cases_run == report.cases_listed - 2


def test_manifest_cannot_loosen_rtol(primitive_export, tmp_path):
    directory = _copy(primitive_export[0], tmp_path / "loose")
    manifest = json.loads((directory / "manifest.json").read_text())
    for case in manifest["cases"]:
        for tol in case["tolerances"].values():
            tol["rtol"] = 1.0
    (directory / "manifest.json").write_text(json.dumps(manifest))
    report = golden.check(directory, log=quiet)
    assert all(r.limit <= golden.DEFAULT_RTOL for r in report.results)


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
