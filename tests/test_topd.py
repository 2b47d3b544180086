"""TopD (SPEC 4): refimpl.rule.topd against the TopD oracle, ``refimpl.reference.update_step.topd``
(written from SPEC 3-4 in autograd.numpy, sharing no code with refimpl.ops or refimpl.rule)."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from refimpl.config import preset
from refimpl.params import init_theta
from refimpl.reference import update_step as oracle
from refimpl.reference.gradcheck import rel_error
from refimpl.rule.topd import topd_backward, topd_forward
from tests.helpers import GRAD_RTOL, assert_ok, grad_errors


# ---------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------
def topd_theta(config, rng, dtype=np.float64):
    """init_theta's topd leaves, with gamma/beta/bias moved off their init so their grads matter."""
    theta = {k: v for k, v in init_theta(config, rng, np.float64).items() if k.startswith("topd/")}
    for k in theta:
        if k.endswith("/gamma"):
            theta[k] = 1.0 + 0.3 * rng.standard_normal(theta[k].shape)
        elif k.endswith("/beta") or k == "topd/conv5/b":
            theta[k] = 0.3 * rng.standard_normal(theta[k].shape)
    return {k: v.astype(dtype) for k, v in theta.items()}


def make_case(config, seed):
    rng = np.random.default_rng(seed)
    theta = topd_theta(config, rng)
    xL = np.maximum(rng.standard_normal((config.batch_size, config.layer_sizes[-1])), 0.0)
    cot = rng.standard_normal((config.batch_size, config.layer_sizes[-1], config.delta_dims))
    return theta, xL, cot


def check_topd(config, theta, xL, cot, backward=topd_backward):
    """(forward error, {name: grad error}) of refimpl vs the transcription, float64."""
    d, cache = topd_forward(theta, xL, config)
    assert d.shape == (*xL.shape, config.delta_dims) and d.dtype == xL.dtype
    ref = oracle.topd(theta, xL, config)
    fwd_err = rel_error(d, ref)
    dtheta, dxL = backward(cot, cache)

    def scalar(th, x):
        return anp.sum(oracle.topd(th, x, config) * cot)

    ref_dtheta, ref_dxL = autograd.grad(scalar, argnum=(0, 1))(theta, xL)
    assert list(dtheta) == list(theta), "dtheta must hold exactly the topd names in SPEC 9 order"
    return fwd_err, grad_errors({**dtheta, "xL": dxL}, {**ref_dtheta, "xL": ref_dxL})


# ---------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_tiny_float64_matches_autograd(seed):
    config = preset("tiny")
    assert_ok(*check_topd(config, *make_case(config, seed)))


@given(B=st.integers(1, 4), N=st.integers(1, 5), D=st.integers(1, 3), T=st.integers(1, 4),
       seed=st.integers(0, 2**31 - 1))
def test_small_shapes_float64_match_autograd(B, N, D, T, seed):
    """Batch 1 and 2, one unit, one channel: every edge of the padding and of the batch norm."""
    config = preset("tiny").replace(batch_size=B, layer_sizes=(3, N), delta_dims=D, topd_size=T)
    assert_ok(*check_topd(config, *make_case(config, seed)))


def test_batch_one_unit_one():
    config = preset("tiny").replace(batch_size=1, layer_sizes=(2, 1))
    assert_ok(*check_topd(config, *make_case(config, 5)))


def test_float32_within_float32_tolerance():
    config = preset("tiny")
    theta, xL, cot = make_case(config, 3)
    d64, c64 = topd_forward(theta, xL, config)
    g64, dx64 = topd_backward(cot, c64)
    theta32 = {k: v.astype(np.float32) for k, v in theta.items()}
    d32, c32 = topd_forward(theta32, xL.astype(np.float32), config)
    g32, dx32 = topd_backward(cot.astype(np.float32), c32)
    assert d32.dtype == np.float32 and dx32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in g32.values())
    assert rel_error(d32, d64) <= 1e-5
    assert rel_error(dx32, dx64) <= 1e-4
    for name in g64:
        assert rel_error(g32[name], g64[name]) <= 1e-4, name


def test_perturbed_backward_is_caught():
    """Testing the tester: a backward off by 1e-3 (relative) in any one output fails the check."""
    config = preset("tiny")
    theta, xL, cot = make_case(config, 4)
    for target in ["xL", "topd/conv0/w", "topd/bn2/beta", "topd/conv5/b"]:
        def perturbed(dd, cache, target=target):
            dtheta, dxL = topd_backward(dd, cache)
            if target == "xL":
                return dtheta, dxL * (1 + 1e-3)
            return {**dtheta, target: dtheta[target] * (1 + 1e-3)}, dxL
        _, errors = check_topd(config, theta, xL, cot, backward=perturbed)
        assert errors[target] > GRAD_RTOL, target


def test_theta_for_another_batch_size_is_refused():
    config = preset("tiny")
    theta, _, _ = make_case(config, 0)
    xL = np.ones((5, config.layer_sizes[-1]))
    with pytest.raises(ValueError, match="theta was built for batch size 7, got a batch of 5"):
        topd_forward(theta, xL, config.replace(batch_size=5))
    with pytest.raises(ValueError, match="theta was built for batch size 7, got a batch of 5"):
        topd_forward(theta, xL, config)


def test_bad_inputs_raise():
    config = preset("tiny")
    theta, xL, cot = make_case(config, 0)
    with pytest.raises(ValueError, match="missing.*topd/bn3/gamma"):
        topd_forward({k: v for k, v in theta.items() if k != "topd/bn3/gamma"}, xL, config)
    with pytest.raises(ValueError, match="topd/conv4/w"):
        topd_forward({**theta, "topd/conv4/w": theta["topd/conv4/w"][:, :-1]}, xL, config)
    with pytest.raises(ValueError, match="dtype"):
        topd_forward(theta, xL.astype(np.float32), config)
    with pytest.raises(ValueError, match="xL"):
        topd_forward(theta, xL[..., None], config)
    bad = xL.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        topd_forward(theta, bad, config)
    _, cache = topd_forward(theta, xL, config)
    with pytest.raises(ValueError, match="dd"):
        topd_backward(cot[:, :-1], cache)
    with pytest.raises(ValueError, match="dd"):
        topd_backward(cot.astype(np.float32), cache)


def test_extra_theta_names_are_ignored_and_inputs_untouched():
    config = preset("tiny")
    full = init_theta(config, np.random.default_rng(0))
    xL = np.maximum(np.random.default_rng(1).standard_normal((7, 8)), 0)
    before = {k: v.copy() for k, v in full.items()}
    x_before = xL.copy()
    d, cache = topd_forward(full, xL, config)
    dtheta, _ = topd_backward(np.random.default_rng(2).standard_normal(d.shape), cache)
    assert set(dtheta) == {k for k in full if k.startswith("topd/")}
    assert np.array_equal(xL, x_before)
    assert all(np.array_equal(full[k], before[k]) for k in full)
