"""Every registered operator: forward vs the independent transcription,
hand backward vs autograd on that transcription, float32, testing the
tester, and bad input. Adding an operator to the registry adds it here."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

from refimpl.reference.gradcheck import check_op
from refimpl.reference.registry import Sample, Size, all_ops, grads_dict
from tests.strategies import sizes

OPS = all_ops()
IDS = [op.name for op in OPS]


@pytest.mark.parametrize("op", OPS, ids=IDS)
@given(size=sizes(), seed=st.integers(0, 2**31 - 1))
def test_forward_and_backward_float64(op, size, seed):
    rng = np.random.default_rng(seed)
    sample = op.sample(rng, np.float64, size)
    out, _ = op.run(sample)
    assert out.dtype == np.float64
    forward_error, grad_errors = check_op(op, sample, rng)
    assert forward_error <= 1e-12, f"forward error {forward_error:.2e}"
    for name, err in grad_errors.items():
        assert err <= op.grad_rtol, f"grad '{name}' rel error {err:.2e} > {op.grad_rtol:g}"


@pytest.mark.parametrize("op", OPS, ids=IDS)
@given(size=sizes(), seed=st.integers(0, 2**31 - 1))
def test_float32_runs_within_float32_tolerance(op, size, seed):
    rng = np.random.default_rng(seed)
    sample64 = op.sample(rng, np.float64, size)
    sample32 = Sample({k: v.astype(np.float32) for k, v in sample64.inputs.items()}, sample64.attrs)
    out32, cache32 = op.run(sample32)
    assert out32.dtype == np.float32
    forward_error, grad_errors = check_op(op, sample32, rng)
    assert forward_error <= op.f32_rtol, f"float32 forward error {forward_error:.2e}"
    for name, err in grad_errors.items():
        assert err <= op.f32_rtol * 10, f"float32 grad '{name}' error {err:.2e}"
    for name, g in grads_dict(op.backward(np.ones_like(out32) * 0.5, cache32)).items():
        assert g.dtype == np.float32, f"grad '{name}' is {g.dtype}"


@pytest.mark.parametrize("op", [o for o in OPS if o.vectorized], ids=[o.name for o in OPS if o.vectorized])
@given(size=sizes(), seed=st.integers(0, 2**31 - 1))
def test_vectorized_form_computes_the_same(op, size, seed):
    """The benchmark times autograd on ``vectorized``: it must be the same computation."""
    sample = op.sample(np.random.default_rng(seed), np.float64, size)
    out, _ = op.run(sample)
    vec = op.vectorized(**sample.inputs, **sample.attrs)
    assert np.shape(vec) == np.shape(out)
    np.testing.assert_allclose(vec, out, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("op", [o for o in OPS if o.diff_inputs], ids=[o.name for o in OPS if o.diff_inputs])
def test_perturbed_backward_is_caught(op):
    """Testing the tester: a backward off by 1e-3 (relative) must fail the check."""
    rng = np.random.default_rng(1)
    sample = op.sample(rng, np.float64, Size())

    def perturbed(dout, cache):
        grads = op.backward(dout, cache)
        bumped = {}
        for k, g in grads._asdict().items():
            if g is not None:
                scale = float(np.max(np.abs(g))) or 1.0
                g = g * (1 + 1e-3) + 1e-3 * scale * (k == k)  # shift too, for exact-zero grads
            bumped[k] = g
        return type(grads)(**bumped)

    _, errors = check_op(op, sample, np.random.default_rng(2), backward=perturbed)
    assert errors and max(errors.values()) > op.grad_rtol


@pytest.mark.parametrize("op", OPS, ids=IDS)
def test_nan_and_wrong_ndim_raise(op):
    rng = np.random.default_rng(3)
    sample = op.sample(rng, np.float64, Size())
    for name, value in sample.inputs.items():
        bad = value.copy()
        bad.flat[bad.size // 2] = np.nan
        with pytest.raises(ValueError, match=rf"{op.kind}.*'{name}'.*(NaN|Inf)"):
            op.forward(**{**sample.inputs, name: bad}, **sample.attrs)
        if name in op.any_ndim:
            continue
        with pytest.raises(ValueError, match=rf"{op.kind}.*{name}"):
            op.forward(**{**sample.inputs, name: value[..., None]}, **sample.attrs)


@pytest.mark.parametrize("op", [o for o in OPS if o.bad_inputs], ids=[o.name for o in OPS if o.bad_inputs])
def test_operator_specific_bad_input(op):
    for inputs, attrs, needle in op.bad_inputs(np.random.default_rng(4)):
        with pytest.raises(ValueError, match=op.kind) as excinfo:
            op.forward(**inputs, **attrs)
        assert needle in str(excinfo.value), f"message {excinfo.value!s} lacks {needle!r}"
