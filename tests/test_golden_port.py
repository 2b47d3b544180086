"""The golden contract seen from outside refimpl: a set written by hand from docs/golden.md passes
``refimpl golden check``; the port verifier passes an independent backend, fails a broken one
naming the case and the array, and runs with autograd and refimpl's compute unavailable."""
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import autograd
import numpy as np
import pytest

from refimpl import golden
from refimpl.cli import main
from refimpl.config import Config
from refimpl.golden import check_case, golden_cases, verify
from refimpl.reference import meta_objective as meta_oracle

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "tests" / "golden"
EXAMPLE = ROOT / "examples" / "port_backend.py"
PORT_KINDS = ["matmul", "gauss", "soft_sqrt", "batchnorm", "ridge_solve"]


def quiet(*args):
    pass


def _example_module():
    namespace = {}
    exec(compile(EXAMPLE.read_text(), str(EXAMPLE), "exec"), namespace)
    return namespace


# ---------------------------------------------------------------- a set written by hand from the contract
TINY_CONFIG = {"batch_size": 7, "layer_sizes": [15, 9, 14, 8], "delta_dims": 6, "h_dims": 11,
               "computeh_size": 12, "topd_size": 13, "readout_rank": 2, "lr_phi": 0.0003, "ridge": 0.1,
               "n_eval": 4, "activation": "relu", "eps_phi": 1e-06, "eps_theta": 0.001, "eps_d": 1e-06,
               "eps_s": 1e-08, "eps_w": 1e-08, "eps_p": 1e-12}      # docs/golden.md section 2


def _sha256(a: np.ndarray) -> str:      # docs/golden.md section 2, the sha256 rule, transcribed
    return hashlib.sha256(np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()).hexdigest()


def _write_case(directory: Path, name: str, kind: str, arrays: dict, roles: dict, attrs=None, config=None):
    np.savez(directory / f"{name}.npz", **arrays)          # plain numpy: member "<array name>.npy"
    return {"name": name, "kind": kind, "file": f"{name}.npz", "config": config, "attrs": attrs or {},
            "arrays": {k: {"role": roles[k], "shape": list(v.shape), "dtype": str(v.dtype), "sha256": _sha256(v)}
                       for k, v in arrays.items()},
            "tolerances": {k: {"rtol": 1e-6, "float32_error": 0.0} for k in arrays
                           if roles[k] in ("output", "grad")}}


def _roles(arrays: dict) -> dict:
    prefix = {"out/": "output", "cot/": "cotangent", "grad/": "grad"}
    return {k: next((r for p, r in prefix.items() if k.startswith(p)), "input") for k in arrays}


def write_hand_set(directory: Path) -> None:
    """gauss and matmul from their closed forms; meta_objective (with n_cls, and an extra grad w.r.t. x_a
    that the contract allows) from the autograd transcription of SPEC 6, not refimpl's code."""
    rng = np.random.default_rng(20190101)
    directory.mkdir()
    cases = []

    x = rng.standard_normal((4, 3))
    cy = rng.standard_normal((4, 3))
    arrays = {"x": x, "out/y": np.exp(-x ** 2), "cot/y": cy, "grad/x": cy * -2 * x * np.exp(-x ** 2)}
    cases.append(_write_case(directory, "hand gauss", "gauss", arrays, _roles(arrays)))

    a, b = rng.standard_normal((5, 2)), rng.standard_normal((2, 3))
    cy = rng.standard_normal((5, 3))
    arrays = {"a": a, "b": b, "out/y": a @ b, "cot/y": cy, "grad/a": cy @ b.T, "grad/b": a.T @ cy}
    cases.append(_write_case(directory, "hand matmul", "matmul", arrays, _roles(arrays)))

    sizes, n_eval, n_label, n_cls, n_reg = TINY_CONFIG["layer_sizes"], TINY_CONFIG["n_eval"], 6, 3, 2
    phi = {}
    for l in range(1, len(sizes)):
        phi[f"layer{l}/W"] = rng.standard_normal((sizes[l - 1], sizes[l])) / np.sqrt(sizes[l - 1])
        phi[f"layer{l}/V"] = rng.standard_normal((sizes[l - 1], sizes[l])) / np.sqrt(sizes[l - 1])
        phi[f"layer{l}/b"] = np.zeros(sizes[l])

    def targets():
        onehot = np.eye(n_cls)[rng.integers(0, n_cls, (n_eval, n_label))]
        return np.concatenate([onehot, rng.uniform(-1, 1, (n_eval, n_label, n_reg))], axis=-1)
    pairs = {"x_a": rng.uniform(0, 1, (n_eval, n_label, sizes[0])), "y_a": targets(),
             "x_b": rng.uniform(0, 1, (n_eval, n_label, sizes[0])), "y_b": targets()}
    cfg = Config.from_dict(TINY_CONFIG)

    def loss(phi, x_a):
        return meta_oracle.meta_objective(phi, x_a, pairs["y_a"], pairs["x_b"], pairs["y_b"], cfg)
    cot = np.asarray(rng.standard_normal())
    dphi, dx_a = autograd.grad(loss, (0, 1))(phi, pairs["x_a"])
    arrays = {**{f"phi/{k}": v for k, v in phi.items()}, **pairs, "out/loss": np.asarray(loss(phi, pairs["x_a"])),
              "cot/loss": cot, **{f"grad/phi/{k}": cot * v for k, v in dphi.items()}, "grad/x_a": cot * dx_a}
    cases.append(_write_case(directory, "hand meta objective", "meta_objective", arrays, _roles(arrays),
                             attrs={"n_cls": n_cls}, config=TINY_CONFIG))

    manifest = {"schema_version": 1, "generator": {"name": "tests/test_golden_port.py, by hand"}, "cases": cases}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1))


HAND_KINDS = ["gauss", "matmul", "meta_objective"]


@pytest.fixture(scope="module")
def hand_set(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hand") / "set"
    write_hand_set(directory)
    return directory


def test_a_hand_written_set_passes_refimpl_golden_check(hand_set):
    report = golden.check(hand_set, only=HAND_KINDS, log=quiet)
    assert report.ok, (report.reasons(), [(r.case, r.array, r.error) for r in report.failed_arrays])
    assert report.cases_run == 3 and len(report.results) == 2 + 3 + 1 + 9
    assert [(c.name, c.not_compared) for c in report.cases if c.not_compared] == [("hand meta objective",
                                                                                   ["grad/x_a"])]
    assert main(["golden", "check", str(hand_set), "--only", ",".join(HAND_KINDS)]) == 0


def test_a_foreign_set_with_its_own_case_names_passes_on_its_arrays(hand_set, capsys):
    """Not narrowed with --only: the set holds 3 of refimpl's kinds, and 1 of the 2 meta_objective cases
    refimpl exports, under names of its own; coverage is reported, and the arrays decide."""
    lines = []
    report = golden.check(hand_set, log=lines.append)
    assert report.ok and report.cases_run == 3 and not report.own_set
    assert report.counts["meta_objective"] == (2, 1, 1) and report.counts["orth"] == (3, 0, 0)
    coverage = next(line for line in lines if line.startswith("coverage: "))
    assert coverage.startswith(f"coverage: the set holds 3 of the {len(golden.kinds())} kind(s) and 3 case(s)")
    assert lines[-1].startswith("verdict: PASS (3 of 3 selected case(s) passed")
    assert main(["golden", "check", str(hand_set)]) == 0
    # a kind asked for by name that the set lacks fails
    report = golden.check(hand_set, only=["gauss", "orth"], log=quiet)
    assert not report.ok and report.summary().startswith("kind orth: 3 of 3 case(s) missing from the set")


def test_the_hand_written_set_fails_when_its_values_are_wrong(hand_set, tmp_path):
    """The check above can fail: the same set with one grad off by 1e-5 (relative) does not pass."""
    import shutil
    directory = tmp_path / "wrong"
    shutil.copytree(hand_set, directory)
    manifest = json.loads((directory / "manifest.json").read_text())
    entry = next(c for c in manifest["cases"] if c["kind"] == "matmul")
    with np.load(directory / entry["file"]) as f:
        arrays = dict(f)
    arrays["grad/b"] = arrays["grad/b"] * (1 + 1e-5)
    manifest["cases"][manifest["cases"].index(entry)] = _write_case(directory, entry["name"], "matmul", arrays,
                                                                    _roles(arrays))
    (directory / "manifest.json").write_text(json.dumps(manifest))
    report = golden.check(directory, only=HAND_KINDS, log=quiet)
    assert not report.ok and [(r.case, r.array) for r in report.failed_arrays] == [("hand matmul", "grad/b")]


def test_the_hand_written_set_verifies_with_refimpl_as_the_backend(hand_set):
    """The verifier reads the same set; a backend of closed forms passes its primitive cases."""
    backend = _example_module()["BACKEND"]
    report = verify(hand_set, backend, include=["gauss", "matmul"])
    assert report.ok and len(report.cases) == 2 and len(report.skipped) == 1


# ---------------------------------------------------------------- the port verifier
def test_example_backend_passes_without_autograd_or_refimpl_compute(tmp_path):
    """``refimpl golden verify`` in a process where importing autograd fails."""
    report_path = tmp_path / "report.json"
    code = (
        "import sys\n"
        "sys.modules['autograd'] = None   # any import of autograd now raises ImportError\n"
        "from refimpl.cli import main\n"
        f"rc = main(['golden', 'verify', {str(COMMITTED)!r}, '--backend', {str(EXAMPLE) + ':BACKEND'!r},\n"
        f"           '--include', {','.join(PORT_KINDS)!r}, '--json', {str(report_path)!r}])\n"
        "compute = sorted(m for m in sys.modules if m.startswith(('refimpl.ops', 'refimpl.base_model', 'refimpl.rule',\n"
        "                 'refimpl.meta', 'refimpl.reference', 'refimpl.config', 'refimpl.params', 'scipy', 'autograd'))\n"
        "                 and sys.modules[m] is not None)\n"
        "assert not compute, compute\n"
        "sys.exit(rc)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["cases_run"] == report["cases_selected"] == 6
    assert {c["kind"] for c in report["cases"]} == set(PORT_KINDS)
    assert all(a["passed"] for c in report["cases"] for a in c["arrays"])


def test_example_backend_passes_in_float32():
    report = verify(COMMITTED, _example_module()["BACKEND"], include=PORT_KINDS, float32=True)
    assert report.ok and all(a.limit >= 1e-4 for c in report.cases for a in c.arrays)


def _broken_backend(factor):
    namespace = _example_module()

    class Broken(namespace["NumpyPort"]):
        def soft_sqrt_vjp(self, inputs, attrs, config, cots):
            return {"x": factor * super().soft_sqrt_vjp(inputs, attrs, config, cots)["x"]}
    return Broken()


@pytest.mark.parametrize("factor, passes", [(1 + 2e-6, False), (1 + 0.5e-6, True)])
def test_one_wrong_gradient_fails_naming_case_and_array(factor, passes):
    report = verify(COMMITTED, _broken_backend(factor), include=PORT_KINDS)
    assert report.ok is passes
    if not passes:
        assert [c.name for c in report.failed] == ["soft_sqrt"]
        assert [a.array for a in report.failed[0].failed] == ["grad/x"]
        assert report.summary().startswith("soft_sqrt: grad/x error")


def test_cli_verify_fails_a_broken_backend_with_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "broken_port.py").write_text(
        EXAMPLE.read_text() + "\n\nclass Broken(NumpyPort):\n"
        "    def gauss_vjp(self, inputs, attrs, config, cots):\n"
        "        return {'x': -super().gauss_vjp(inputs, attrs, config, cots)['x']}\n\nBROKEN = Broken()\n")
    monkeypatch.chdir(tmp_path)
    rc = main(["golden", "verify", str(COMMITTED), "--backend", "broken_port:BROKEN", "--include", "gauss"])
    captured = capsys.readouterr()
    progress, error = captured.err.splitlines()       # the progress line, then the one line of the failure
    assert rc == 1 and progress.startswith("golden verify: 1/1 cases [")
    assert error.startswith("refimpl golden verify: ") and "gauss: grad/x error" in error
    assert captured.out.splitlines()[-1].startswith("verdict: FAIL (gauss: grad/x error")


@pytest.mark.parametrize("argv, message", [
    (["--backend", "no_such_module:X"], "cannot load backend 'no_such_module:X'"),
    (["--backend", "nocolon"], "must be module:object"),
    (["--backend", "examples/nothere.py:X"], "does not exist"),
])
def test_cli_verify_bad_backend_is_one_line(argv, message, capsys):
    rc = main(["golden", "verify", str(COMMITTED), *argv])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err


def test_a_kind_the_backend_lacks_is_listed_as_not_implemented():
    report = verify(COMMITTED, _example_module()["BACKEND"], include=["gauss", "orth"])
    assert report.ok and [c.name for c in report.cases if c.ran] == ["gauss"]
    assert [c.name for c in report.not_implemented] == ["orth", "orth_disjoint", "orth_shrinking"]
    assert not verify(COMMITTED, _example_module()["BACKEND"], include=["gauss", "orth"], strict=True).ok


def test_a_missing_or_misshapen_array_fails():
    class Partial:
        def matmul(self, inputs, attrs, config):
            return {"y": (inputs["a"] @ inputs["b"]).T}

        def matmul_vjp(self, inputs, attrs, config, cots):
            return {"a": cots["y"] @ inputs["b"].T, "extra": np.zeros(2)}
    case = check_case(COMMITTED, "matmul", Partial())
    notes = {a.array: a.note for a in case.failed}
    assert notes["out/y"].startswith("shape") and notes["grad/b"] == "not returned by the backend"
    assert case.not_compared == ["grad/extra"]
    with pytest.raises(AssertionError, match="matmul: out/y"):
        case.assert_ok()


# One test per case, as a port's own suite would write it.
@pytest.mark.parametrize("case", golden_cases(COMMITTED, include=PORT_KINDS))
def test_pytest_helper_one_test_per_case(case):
    check_case(COMMITTED, case, _example_module()["BACKEND"]).assert_ok()
