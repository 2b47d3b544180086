"""ComputeH (SPEC 4): refimpl.rule.compute_h against the ComputeH oracle,
``refimpl.reference.update_step.compute_h`` (written from SPEC 3-4 in
autograd.numpy, sharing no code with refimpl.ops or refimpl.rule).
Layers: bottom (l = 0: z, W_bot, b absent), middle (all present), top
(l = L: W_top absent), on the tiny preset and on hypothesis-drawn small shapes.
"""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from refimpl.config import preset
from refimpl.params import init_theta
from refimpl.reference import update_step as oracle
from refimpl.reference.gradcheck import rel_error
from refimpl.rule.compute_h import compute_h_backward, compute_h_forward, positional_channels
from tests.helpers import GRAD_RTOL, assert_ok, grad_errors

INPUTS = ("d", "x", "z", "W_bot", "W_top", "b")


# ---------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------
def computeh_theta(config, rng):
    theta = {k: v for k, v in init_theta(config, rng).items() if k.startswith("computeh/")}
    for k in theta:
        if k.endswith("/gamma"):
            theta[k] = 1.0 + 0.3 * rng.standard_normal(theta[k].shape)
        elif k.endswith("/beta"):
            theta[k] = 0.3 * rng.standard_normal(theta[k].shape)
    return theta


def make_case(config, layer, N, N_bot, N_top, seed):
    """layer: "bottom" (l = 0), "middle" or "top" (l = L). Inputs at the scales the rule sees."""
    rng = np.random.default_rng(seed)
    B, D = config.batch_size, config.delta_dims
    theta = computeh_theta(config, rng)
    inputs = {
        "d": rng.standard_normal((B, N, D)),
        "x": np.maximum(rng.standard_normal((B, N)), 0.0),
        "z": rng.standard_normal((B, N)),
        "W_bot": 0.01 * rng.standard_normal((N_bot, N)),
        "W_top": 0.01 * rng.standard_normal((N, N_top)),
        "b": 0.1 * rng.standard_normal(N),
    }
    if layer == "bottom":
        inputs.update(z=None, W_bot=None, b=None)
    elif layer == "top":
        inputs["W_top"] = None
    cot = rng.standard_normal((B, N, config.h_dims))
    return theta, inputs, cot


def tiny_case(layer, seed):
    """The tiny preset's layers: bottom l = 0, middle l = 1, top l = L = 3."""
    config = preset("tiny")
    s = config.layer_sizes
    N, N_bot, N_top = {"bottom": (s[0], 1, s[1]), "middle": (s[1], s[0], s[2]),
                       "top": (s[3], s[2], 1)}[layer]
    return (config, *make_case(config, layer, N, N_bot, N_top, seed))


def check_compute_h(config, theta, inputs, cot, backward=compute_h_backward):
    h, cache = compute_h_forward(theta, *(inputs[k] for k in INPUTS), config)
    d = inputs["d"]
    assert h.shape == (*d.shape[:2], config.h_dims) and h.dtype == d.dtype
    fwd_err = rel_error(h, oracle.compute_h(theta, *(inputs[k] for k in INPUTS), config))
    grads = backward(cot, cache)
    present = [k for k in INPUTS if inputs[k] is not None]

    def scalar(th, *values):
        args = dict(inputs, **dict(zip(present, values)))
        return anp.sum(oracle.compute_h(th, *(args[k] for k in INPUTS), config) * cot)

    ref = autograd.grad(scalar, argnum=tuple(range(1 + len(present))))(
        theta, *(inputs[k] for k in present))
    assert list(grads.theta) == list(theta), "dtheta must hold exactly the computeh names in SPEC 9 order"
    actual = dict(grads.theta, **{k: getattr(grads, k) for k in present})
    errors = grad_errors(actual, dict(ref[0], **dict(zip(present, ref[1:]))))
    for k in INPUTS:
        if inputs[k] is None:
            assert getattr(grads, k) is None, f"absent input {k} must get a None grad"
    return fwd_err, errors


# ---------------------------------------------------------------------------------
# tests
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", ["bottom", "middle", "top"])
def test_tiny_float64_matches_autograd(layer):
    config, *case = tiny_case(layer, seed=11)
    assert_ok(*check_compute_h(config, *case))


@given(layer=st.sampled_from(["bottom", "middle", "top", "single"]),
       B=st.integers(1, 4), N=st.integers(1, 5), N_bot=st.integers(1, 4), N_top=st.integers(1, 4),
       D=st.integers(1, 3), Hs=st.integers(1, 4), Hd=st.integers(1, 3), seed=st.integers(0, 2**31 - 1))
def test_small_shapes_float64_match_autograd(layer, B, N, N_bot, N_top, D, Hs, Hd, seed):
    """Batch 1 and 2, one unit, one channel; "single" is L = 1 where l = 1 is also the top."""
    config = preset("tiny").replace(batch_size=B, delta_dims=D, computeh_size=Hs, h_dims=Hd)
    theta, inputs, cot = make_case(config, "top" if layer == "single" else layer, N, N_bot, N_top, seed)
    assert_ok(*check_compute_h(config, theta, inputs, cot))


def test_batch_one_unit_one():
    config = preset("tiny").replace(batch_size=1)
    for layer in ("bottom", "middle", "top"):
        assert_ok(*check_compute_h(config, *make_case(config, layer, 1, 2, 3, seed=2)))


def test_float32_within_float32_tolerance():
    for layer in ("bottom", "middle", "top"):
        config, theta, inputs, cot = tiny_case(layer, seed=5)
        h64, c64 = compute_h_forward(theta, *(inputs[k] for k in INPUTS), config)
        g64 = compute_h_backward(cot, c64)
        f32 = {k: None if v is None else v.astype(np.float32) for k, v in inputs.items()}
        theta32 = {k: v.astype(np.float32) for k, v in theta.items()}
        h32, c32 = compute_h_forward(theta32, *(f32[k] for k in INPUTS), config)
        g32 = compute_h_backward(cot.astype(np.float32), c32)
        assert h32.dtype == np.float32
        assert rel_error(h32, h64) <= 1e-5, layer
        for name in g64.theta:
            assert g32.theta[name].dtype == np.float32
            assert rel_error(g32.theta[name], g64.theta[name]) <= 1e-4, (layer, name)
        for k in INPUTS:
            if inputs[k] is not None:
                assert getattr(g32, k).dtype == np.float32
                # W stats: entries ~0.01 with eps_s = 1e-8 inside the roots; float32 relative
                # rounding of the ~1e-4 squares is still ~1e-7, so 1e-4 holds with margin.
                assert rel_error(getattr(g32, k), getattr(g64, k)) <= 1e-4, (layer, k)


def test_perturbed_backward_is_caught():
    """Testing the tester: a backward off by 1e-3 (relative) in any one output fails the check."""
    config, theta, inputs, cot = tiny_case("middle", seed=3)
    for target in ["d", "x", "z", "W_bot", "W_top", "b", "computeh/bn_in/gamma", "computeh/conv0/w",
                   "computeh/bn3/beta"]:
        def perturbed(dh, cache, target=target):
            g = compute_h_backward(dh, cache)
            if target in INPUTS:
                return g._replace(**{target: getattr(g, target) * (1 + 1e-3)})
            return g._replace(theta={**g.theta, target: g.theta[target] * (1 + 1e-3)})
        _, errors = check_compute_h(config, theta, inputs, cot, backward=perturbed)
        assert errors[target] > GRAD_RTOL, target


def test_absent_inputs_are_exact_zeros_not_stats_of_zero_matrices():
    """SPEC 4: s1 = 0 at the top, not WeightStats(0) = [0, sqrt(eps), 0, sqrt(eps)]."""
    config, theta, inputs, _ = tiny_case("top", seed=0)
    args = [inputs[k] for k in INPUTS]
    h_absent, _ = compute_h_forward(theta, *args, config)
    N = inputs["d"].shape[1]
    args[INPUTS.index("W_top")] = np.zeros((N, 3))
    h_zero, _ = compute_h_forward(theta, *args, config)
    assert not np.allclose(h_absent, h_zero, rtol=0, atol=1e-12)


def test_positional_channels_computed_in_float64_then_cast():
    for N in (1, 7, 128):
        p0, p1 = positional_channels(N, np.float32)
        angle = 2 * np.pi * np.arange(N) / N
        assert p0.dtype == np.float32 and np.array_equal(p0, np.sin(angle).astype(np.float32))
        assert np.array_equal(p1, np.cos(angle).astype(np.float32))
    p0, p1 = positional_channels(4, np.float64)
    np.testing.assert_allclose(p0, [0, 1, 0, -1], atol=1e-15)
    np.testing.assert_allclose(p1, [1, 0, -1, 0], atol=1e-15)


def test_bad_inputs_raise():
    config, theta, inputs, cot = tiny_case("middle", seed=0)

    def call(th=theta, **changes):
        args = dict(inputs, **changes)
        return compute_h_forward(th, *(args[k] for k in INPUTS), config)

    with pytest.raises(ValueError, match="absent together"):
        call(z=None)
    with pytest.raises(ValueError, match="absent together"):
        call(W_bot=None, b=None)
    with pytest.raises(ValueError, match="'x'"):
        call(x=inputs["x"][:, :-1])
    with pytest.raises(ValueError, match="'W_bot'"):
        call(W_bot=inputs["W_bot"].T)
    with pytest.raises(ValueError, match="'W_top'"):
        call(W_top=inputs["W_top"].T)
    with pytest.raises(ValueError, match="'b'"):
        call(b=inputs["b"][:-1])
    with pytest.raises(ValueError, match="delta_dims"):
        call(d=inputs["d"][:, :, :-1])
    with pytest.raises(ValueError, match="dtype"):
        call(z=inputs["z"].astype(np.float32))
    with pytest.raises(ValueError, match="dtype"):
        call(th={k: v.astype(np.float32) for k, v in theta.items()})
    with pytest.raises(ValueError, match="missing.*computeh/conv2/w"):
        call(th={k: v for k, v in theta.items() if k != "computeh/conv2/w"})
    bad = inputs["W_top"].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="W_top.*(NaN|Inf)"):
        call(W_top=bad)
    _, cache = call()
    with pytest.raises(ValueError, match="dh"):
        compute_h_backward(cot[..., :-1], cache)
    with pytest.raises(ValueError, match="dh"):
        compute_h_backward(cot.astype(np.float32), cache)
