"""Orth at an inner product of exactly 0 (SPEC 5, derivations/orth.md): the kink of relu(-ip), where
relu'(0) = 0 leaves the correction inactive, so y = dM, dL/ddM = dy and dL/dMf = 0 (eq. 4).

The ``orth_disjoint`` registry sample puts dM and Mf on disjoint supports, so the inner product is
exactly 0 in every dtype and summation order; its golden case carries the branch to a port, and a port
(or refimpl) that takes the active branch at 0 fails it, while the other orth cases cannot tell.
"""
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, strategies as st

from refimpl import golden
from refimpl.golden import catalog, read_case, read_manifest, verify
from refimpl.golden.contract import Evaluation
from refimpl.ops.planes import orth_backward, orth_forward
from refimpl.reference.registry import all_ops
from tests.strategies import sizes

COMMITTED = Path(__file__).resolve().parent / "golden"
DISJOINT = next(op for op in all_ops() if op.name == "orth_disjoint")


@given(size=sizes(), seed=st.integers(0, 2**31 - 1), dtype=st.sampled_from([np.float64, np.float32]))
def test_the_sample_has_an_inner_product_of_exactly_zero(size, seed, dtype):
    sample = DISJOINT.sample(np.random.default_rng(seed), dtype, size)
    dM, Mf = sample.inputs["dM"], sample.inputs["Mf"]
    assert dM.dtype == Mf.dtype == dtype and not np.any((dM != 0) & (Mf != 0))
    assert np.vdot(dM, Mf) == 0.0 and np.sum(dM[::-1] * Mf[::-1]) == 0.0
    assert np.isclose(np.sum(Mf.astype(np.float64) ** 2), 1.0, rtol=1e-6)
    if dM.size > 1:      # a 1 x 1 matrix has room for Mf alone
        assert np.any(dM != 0)


@given(size=sizes(), seed=st.integers(0, 2**31 - 1))
def test_orth_at_zero_is_the_inactive_branch_exactly(size, seed):
    """Written out from derivations/orth.md eq. 4, not from the code: y = dM, (dy, 0)."""
    rng = np.random.default_rng(seed)
    sample = DISJOINT.sample(rng, np.float64, size)
    dM, Mf = sample.inputs["dM"], sample.inputs["Mf"]
    y, cache = orth_forward(dM, Mf)
    dy = rng.standard_normal(dM.shape)
    grads = orth_backward(dy, cache)
    np.testing.assert_array_equal(y, dM)
    np.testing.assert_array_equal(grads.dM, dy)
    np.testing.assert_array_equal(grads.Mf, np.zeros_like(Mf))


def test_the_committed_case_stores_the_inactive_branch():
    entry = next(e for e in read_manifest(COMMITTED)["cases"] if e["name"] == "orth_disjoint")
    arrays = read_case(COMMITTED, entry)
    assert entry["kind"] == "orth" and np.vdot(arrays["dM"], arrays["Mf"]) == 0.0
    assert np.any(arrays["dM"] != 0) and np.any(arrays["grad/dM"] != 0)
    np.testing.assert_array_equal(arrays["out/y"], arrays["dM"])
    np.testing.assert_array_equal(arrays["grad/dM"], arrays["cot/y"])
    np.testing.assert_array_equal(arrays["grad/Mf"], np.zeros_like(arrays["Mf"]))


def _orth(dM, Mf, active_at_zero: bool):
    """The branch-free orth of PORTING.md section 3; ``active_at_zero`` takes relu'(0) = 1 instead."""
    ip = np.vdot(dM, Mf)
    active = ip <= 0 if active_at_zero else ip < 0
    c = -ip if active else 0.0 * ip
    y = dM + c * Mf

    def vjp(dy):
        t = -np.vdot(dy, Mf) if active else 0.0
        return dy + t * Mf, c * dy + t * dM
    return y, vjp


class OrthPort:
    def __init__(self, active_at_zero):
        self.active_at_zero = active_at_zero

    def orth(self, inputs, attrs, config):
        return {"y": _orth(inputs["dM"], inputs["Mf"], self.active_at_zero)[0]}

    def orth_vjp(self, inputs, attrs, config, cots):
        dM, dMf = _orth(inputs["dM"], inputs["Mf"], self.active_at_zero)[1](cots["y"])
        return {"dM": dM, "Mf": dMf}


@pytest.mark.parametrize("active_at_zero", [False, True])
def test_only_the_zero_case_catches_a_port_active_at_zero(active_at_zero):
    report = verify(COMMITTED, OrthPort(active_at_zero), include=["orth"])
    assert len(report.cases) == 3
    if not active_at_zero:
        assert report.ok
        return
    assert [c.name for c in report.failed] == ["orth_disjoint"]
    assert {a.array for a in report.failed[0].failed} == {"grad/dM", "grad/Mf"}


def test_refimpl_active_at_zero_fails_golden_check(monkeypatch):
    """The same mistake in refimpl's own orth (the evaluator the check runs) fails the committed set."""
    def mutated(inputs, attrs, config):
        y, vjp = _orth(inputs["dM"], inputs["Mf"], active_at_zero=True)
        return Evaluation({"y": y}, lambda cots: dict(zip(("dM", "Mf"), vjp(cots["y"]))))
    original = catalog.evaluators()
    monkeypatch.setattr(catalog, "evaluators", lambda: {**original, "orth": mutated})
    report = golden.check(COMMITTED, only=["orth"], log=lambda *a: None)
    assert not report.ok and {c.name for c in report.failed} == {"orth_disjoint"}
    monkeypatch.undo()
    assert golden.check(COMMITTED, only=["orth"], log=lambda *a: None).ok
