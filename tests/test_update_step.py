"""The whole update step (SPEC 4-5) and its hand-composed VJP, end to end
against autograd applied to the independent transcription in
refimpl/reference/update_step.py."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

import refimpl.rule.update_step as step_module
from refimpl.config import preset
from refimpl.ops.activations import ACTIVATIONS
from refimpl.params import init_phi, init_theta
from refimpl.reference import update_step as ref
from refimpl.reference.gradcheck import rel_error
from refimpl.rule.update_step import update_step, update_step_forward, update_step_vjp

TINY = preset("tiny")
DEPTHS = {1: [15, 8], 2: [15, 9, 8], 3: list(TINY.layer_sizes), 4: [15, 9, 14, 10, 8]}


def setup(config, seed, dtype=np.float64, phi_scale=None):
    rng = np.random.default_rng(seed)
    theta = init_theta(config, rng, dtype)
    phi = init_phi(config, rng, dtype)
    if phi_scale is not None:   # larger weights put planes 8 and 10 and the orth branch to work
        phi = {k: (v * phi_scale if k.endswith(("W", "V")) else v) for k, v in phi.items()}
    x = rng.uniform(0, 1, (config.batch_size, config.layer_sizes[0])).astype(dtype)
    cot = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in phi.items()}
    return theta, phi, x, cot


def autograd_vjp(theta, phi, x, cot, config):
    def scalar(th, ph):
        out, _ = ref.update_step(th, ph, x, config)
        return anp.sum(anp.array([anp.sum(out[k] * cot[k]) for k in sorted(out)]))
    return autograd.grad(scalar, argnum=(0, 1))(theta, phi)


def vjp_errors(theta, phi, x, cot, config, vjp=update_step_vjp):
    """Per-leaf relative errors of the hand VJP. For phi the EMA's identity part
    (1 - lr) cot is removed from both sides, so the check sees the rule's own
    contribution, which is lr-scaled and would otherwise hide under it."""
    _, _, cache = update_step_forward(theta, phi, x, config)
    dtheta, dphi = vjp(cot, cache)
    gtheta, gphi = autograd_vjp(theta, phi, x, cot, config)
    keep = 1 - config.lr_phi
    errors = {f"theta/{k}": rel_error(dtheta[k], gtheta[k]) for k in theta}
    errors.update({f"phi/{k}": rel_error(dphi[k] - keep * cot[k], gphi[k] - keep * cot[k]) for k in phi})
    return errors


def assert_small(errors, tol):
    bad = {k: f"{v:.1e}" for k, v in errors.items() if not v <= tol}
    assert not bad, f"leaves above {tol:g}: {bad}"


@pytest.mark.parametrize("seed,phi_scale", [(0, None), (1, None), (2, 30.0)])
def test_tiny_forward_and_vjp_match_autograd(seed, phi_scale):
    theta, phi, x, cot = setup(TINY, seed, phi_scale=phi_scale)
    phi_next, deltas, _ = update_step_forward(theta, phi, x, TINY)
    ref_next, ref_deltas = ref.update_step(theta, phi, x, TINY)
    for k in phi:
        assert rel_error(deltas[k], ref_deltas[k]) <= 1e-12, k        # the change itself, not hidden by the EMA
        assert rel_error(phi_next[k], ref_next[k]) <= 1e-12, k
    errors = vjp_errors(theta, phi, x, cot, TINY)
    assert len(errors) == len(theta) + len(phi)
    assert_small(errors, 1e-7)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_depths(depth):
    config = TINY.replace(layer_sizes=tuple(DEPTHS[depth]))
    theta, phi, x, cot = setup(config, 10 + depth)
    _, deltas, _ = update_step_forward(theta, phi, x, config)
    _, ref_deltas = ref.update_step(theta, phi, x, config)
    for k in phi:
        assert rel_error(deltas[k], ref_deltas[k]) <= 1e-12, k
    assert_small(vjp_errors(theta, phi, x, cot, config), 1e-7)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activations(activation):
    config = TINY.replace(activation=activation)
    theta, phi, x, cot = setup(config, 20)
    _, deltas, _ = update_step_forward(theta, phi, x, config)
    _, ref_deltas = ref.update_step(theta, phi, x, config)
    for k in phi:
        assert rel_error(deltas[k], ref_deltas[k]) <= 1e-12, k
    assert_small(vjp_errors(theta, phi, x, cot, config), 1e-7)


def test_perturbed_stage_backward_is_caught(monkeypatch):
    """Testing the tester: a stage backward off by 1e-3 must fail the end-to-end check."""
    theta, phi, x, cot = setup(TINY, 0)
    original = step_module.compute_h_backward

    def perturbed(dh, cache):
        g = original(dh, cache)
        return g._replace(d=g.d * (1 + 1e-3))
    monkeypatch.setattr(step_module, "compute_h_backward", perturbed)
    errors = vjp_errors(theta, phi, x, cot, TINY)
    assert max(errors.values()) > 1e-5


def test_spec_properties():
    theta, phi, x, _ = setup(TINY, 3, phi_scale=30.0)
    _, deltas, cache = update_step_forward(theta, phi, x, TINY)
    L = len(TINY.layer_sizes) - 1
    for l in range(1, L + 1):
        assert deltas[f"layer{l}/b"].mean() <= 1e-15
        for kind in ("W", "V"):
            key = f"layer{l}/{kind}"
            assert np.sum(deltas[key] * phi[key]) >= -1e-12      # dM_final = r dM_orth, r > 0
            assert np.sqrt(np.mean(deltas[key] ** 2)) < 1
    # the orth correction switches on for a rule that pushes against M
    theta_neg = dict(theta, **{"merge/w": -np.abs(theta["merge/w"])})
    _, deltas, cache = update_step_forward(theta_neg, phi, x, TINY)
    assert any(mc.orth_cache.active for mc in cache.matrix.values())
    for key in cache.matrix:
        assert np.sum(deltas[key] * phi[key]) >= -1e-12


def test_theta_for_another_batch_size_is_refused():
    theta, phi, x, _ = setup(TINY, 4)
    other = TINY.replace(batch_size=TINY.batch_size + 2)
    theta_other = init_theta(other, np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch size"):
        update_step(theta_other, phi, x, TINY)
    with pytest.raises(ValueError):
        update_step(theta, phi, x[:-1], TINY)


def test_float32_runs_close_to_float64():
    theta, phi, x, cot = setup(TINY, 5)
    next64, deltas64, cache64 = update_step_forward(theta, phi, x, TINY)
    dtheta64, dphi64 = update_step_vjp(cot, cache64)
    f32 = lambda d: {k: v.astype(np.float32) for k, v in d.items()}
    next32, deltas32, cache32 = update_step_forward(f32(theta), f32(phi), x.astype(np.float32), TINY)
    dtheta32, dphi32 = update_step_vjp(f32(cot), cache32)
    for k in phi:
        assert next32[k].dtype == np.float32 and dphi32[k].dtype == np.float32
        assert rel_error(deltas32[k], deltas64[k]) <= 1e-4, k
    for k in theta:
        assert dtheta32[k].dtype == np.float32
        assert rel_error(dtheta32[k], dtheta64[k]) <= 1e-3, k


def test_nan_input_is_refused():
    theta, phi, x, _ = setup(TINY, 6)
    x = x.copy()
    x[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        update_step(theta, phi, x, TINY)
