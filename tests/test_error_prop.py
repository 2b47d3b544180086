"""Error propagation (SPEC 4 step 3): refimpl.rule.error_prop against its oracle,
``refimpl.reference.update_step.error_prop`` (autograd.numpy from the SPEC text,
sharing no code with refimpl.ops or refimpl.rule)."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from refimpl.config import preset
from refimpl.reference import update_step as oracle
from refimpl.reference.gradcheck import rel_error
from refimpl.rule.error_prop import ErrorPropGrads, error_prop_backward, error_prop_forward

TINY = preset("tiny")
NAMES = ("E_w", "E_b", "d", "h", "z", "V")


# --------------------------------------------------------------------------- the oracle's VJP

def ref_vjp(inputs, cot, eps_d):
    def scalar(args):
        return anp.sum(oracle.error_prop(*[args[n] for n in NAMES], eps_d) * cot)
    return autograd.grad(scalar)(dict(inputs))


# --------------------------------------------------------------------------- helpers

def make_inputs(rng, B, N, Nb, D, Hd, dtype=np.float64, v_scale=0.01):
    return {
        "E_w": rng.standard_normal((Hd, D)) / np.sqrt(Hd),
        "E_b": 0.1 * rng.standard_normal(D),
        "d": rng.standard_normal((B, N, D)),
        "h": np.maximum(rng.standard_normal((B, N, Hd)), 0.0),   # h comes out of a relu
        "z": rng.standard_normal((B, N)),
        "V": v_scale * rng.standard_normal((Nb, N)),
    }


def run(inputs, config, dtype=np.float64):
    a = {k: v.astype(dtype) for k, v in inputs.items()}
    theta = {"errprop/w": a["E_w"], "errprop/b": a["E_b"]}
    return error_prop_forward(theta, a["d"], a["h"], a["z"], a["V"], config)


def grads_by_name(g: ErrorPropGrads):
    return {"E_w": g.theta["errprop/w"], "E_b": g.theta["errprop/b"],
            "d": g.d, "h": g.h, "z": g.z, "V": g.V}


def check(inputs, config, rng, tol=1e-8, backward=error_prop_backward):
    out, cache = run(inputs, config)
    ref = oracle.error_prop(*[inputs[n] for n in NAMES], config.eps_d)
    assert out.dtype == np.float64 and out.shape == ref.shape
    fwd = rel_error(out, ref)
    assert fwd <= 1e-12, f"forward error {fwd:.2e}"
    cot = rng.standard_normal(out.shape)
    mine = grads_by_name(backward(cot, cache))
    expected = ref_vjp(inputs, cot, config.eps_d)
    errors = {n: rel_error(mine[n], expected[n]) for n in NAMES}
    for n in NAMES:
        assert mine[n].shape == inputs[n].shape, n
    return errors


def tiny_layers():
    s = TINY.layer_sizes
    return [(l, s[l], s[l - 1]) for l in range(1, len(s))]


# --------------------------------------------------------------------------- tests

@pytest.mark.parametrize("l,N,Nb", tiny_layers(), ids=[f"layer{l}" for l, _, _ in tiny_layers()])
@pytest.mark.parametrize("v_scale", [0.01, 1.0])
def test_tiny_forward_and_vjp_match_autograd(l, N, Nb, v_scale):
    rng = np.random.default_rng(100 + l)
    inputs = make_inputs(rng, TINY.batch_size, N, Nb, TINY.delta_dims, TINY.h_dims, v_scale=v_scale)
    errors = check(inputs, TINY, rng)
    assert max(errors.values()) <= 1e-8, errors


@given(B=st.integers(1, 4), N=st.integers(1, 5), Nb=st.integers(1, 5), D=st.integers(1, 4),
       Hd=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_small_shapes_match_autograd(B, N, Nb, D, Hd, seed):
    """One unit, one channel (D = 1: d_below = +-1 up to eps_d), batch 1 and 2 included."""
    rng = np.random.default_rng(seed)
    config = TINY.replace(delta_dims=D, h_dims=Hd)
    inputs = make_inputs(rng, B, N, Nb, D, Hd, v_scale=float(rng.choice([0.01, 1.0])))
    errors = check(inputs, config, rng)
    assert max(errors.values()) <= 1e-8, errors


def test_float32_runs_within_float32_tolerance():
    rng = np.random.default_rng(7)
    l, N, Nb = tiny_layers()[1]
    inputs = make_inputs(rng, TINY.batch_size, N, Nb, TINY.delta_dims, TINY.h_dims)
    out32, cache32 = run(inputs, TINY, np.float32)
    assert out32.dtype == np.float32
    ref = oracle.error_prop(*[inputs[n] for n in NAMES], TINY.eps_d)
    assert rel_error(out32, ref) <= 1e-5
    cot = rng.standard_normal(out32.shape)
    g32 = grads_by_name(error_prop_backward(cot.astype(np.float32), cache32))
    expected = ref_vjp(inputs, cot, TINY.eps_d)
    for n in NAMES:
        assert g32[n].dtype == np.float32, n
        assert rel_error(g32[n], expected[n]) <= 1e-4, n


@pytest.mark.parametrize("name", NAMES)
def test_perturbed_backward_is_caught(name):
    """Testing the tester: one gradient off by 1e-3 (relative) fails the 1e-8 check."""
    def perturbed(dd, cache):
        g = error_prop_backward(dd, cache)
        key = {"E_w": "errprop/w", "E_b": "errprop/b"}.get(name)
        if key:
            theta = dict(g.theta)
            theta[key] = theta[key] * (1 + 1e-3)
            return g._replace(theta=theta)
        return g._replace(**{name: getattr(g, name) * (1 + 1e-3)})

    rng = np.random.default_rng(3)
    l, N, Nb = tiny_layers()[0]
    inputs = make_inputs(rng, TINY.batch_size, N, Nb, TINY.delta_dims, TINY.h_dims)
    errors = check(inputs, TINY, rng, backward=perturbed)
    assert errors[name] > 1e-8
    assert all(e <= 1e-8 for n, e in errors.items() if n != name)


def test_output_is_channel_rms_normalised():
    rng = np.random.default_rng(5)
    inputs = make_inputs(rng, 7, 9, 15, TINY.delta_dims, TINY.h_dims, v_scale=1.0)
    out, _ = run(inputs, TINY)
    rms = np.sqrt(np.mean(out ** 2, axis=2))
    assert np.all(rms < 1) and np.all(rms > 0.99)


@pytest.mark.parametrize("bad", ["d", "h", "z", "V", "E_w", "E_b", "dtype"])
def test_bad_input_raises(bad):
    rng = np.random.default_rng(0)
    a = make_inputs(rng, 3, 4, 5, TINY.delta_dims, TINY.h_dims)
    if bad == "dtype":
        a["V"] = a["V"].astype(np.float32)
    elif bad == "V":
        a["V"] = a["V"][:, :-1]
    else:
        a[bad] = a[bad][..., :-1]
    theta = {"errprop/w": a["E_w"], "errprop/b": a["E_b"]}
    with pytest.raises(ValueError, match="error_prop"):
        error_prop_forward(theta, a["d"], a["h"], a["z"], a["V"], TINY)
