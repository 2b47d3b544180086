"""Base model (SPEC 2): forward and hand-composed VJP against autograd applied to the
base-model oracle (refimpl.reference.update_step.base_forward), at depths 1, 2, 4 and
for every activation."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from refimpl.base_model.mlp import base_backward, base_forward
from refimpl.config import ACTIVATIONS, preset
from refimpl.params import init_phi
from refimpl.reference import update_step as oracle
from refimpl.reference.gradcheck import rel_error

TINY = preset("tiny")
DEPTHS = {1: (15, 9), 2: (15, 9, 14), 4: (15, 9, 14, 8, 6)}


# ---------------------------------------------------------------------------------
def _setup(depth, activation, seed=0, dtype=np.float64, B=None):
    config = TINY.replace(layer_sizes=DEPTHS[depth], activation=activation)
    rng = np.random.default_rng(seed)
    phi = init_phi(config, rng, dtype)
    # biases of order 1 put the activations' curved parts to work
    phi = {k: (v * 10 if k.endswith("/b") else v) for k, v in phi.items()}
    x = rng.uniform(0, 1, (B or config.batch_size, config.layer_sizes[0])).astype(dtype)
    return config, phi, x, rng


def _cotangents(rng, config, B, dtype=np.float64):
    dxs = [rng.standard_normal((B, n)).astype(dtype) for n in config.layer_sizes]
    dzs = [rng.standard_normal((B, n)).astype(dtype) for n in config.layer_sizes[1:]]
    return dxs, dzs


def _reference_vjp(phi, x, config, dxs, dzs):
    def scalar(args):
        xs, zs = oracle.base_forward({k: args[k] for k in phi}, args["x"], config)
        total = 0.0
        for xl, c in zip(xs, dxs):
            if c is not None:
                total = total + anp.sum(xl * c)
        for zl, c in zip(zs, dzs):
            if c is not None:
                total = total + anp.sum(zl * c)
        return total
    return autograd.grad(scalar)({**phi, "x": x})


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("depth", sorted(DEPTHS))
def test_forward_and_vjp_match_autograd(depth, activation):
    config, phi, x, rng = _setup(depth, activation, seed=depth)
    xs, zs, cache = base_forward(phi, x, config)
    assert len(xs) == depth + 1 and len(zs) == depth and xs[0] is x
    ref_xs, ref_zs = oracle.base_forward(phi, x, config)
    for l in range(depth + 1):
        assert xs[l].shape == (config.batch_size, config.layer_sizes[l]) and xs[l].dtype == np.float64
        assert rel_error(xs[l], ref_xs[l]) <= 1e-12, f"x^{l}"
    for l in range(1, depth + 1):
        assert rel_error(zs[l - 1], ref_zs[l - 1]) <= 1e-12, f"z^{l}"

    dxs, dzs = _cotangents(rng, config, x.shape[0])
    dphi, dx = base_backward(dxs, dzs, cache)
    expected = _reference_vjp(phi, x, config, dxs, dzs)
    assert list(dphi) == list(phi)
    for name in phi:
        assert dphi[name].shape == phi[name].shape and dphi[name].dtype == np.float64
        err = rel_error(dphi[name], expected[name])
        assert err <= 1e-8, f"grad {name}: rel error {err:.2e}"
        if name.endswith("/V"):
            assert not np.any(dphi[name]), "V is not used by the base model"
        else:
            assert np.any(dphi[name]), f"grad {name} is identically zero: the test would be blind"
    assert rel_error(dx, expected["x"]) <= 1e-8


@pytest.mark.parametrize("activation", ["relu", "elu", "step"])
def test_none_cotangents_mean_zero(activation):
    config, phi, x, rng = _setup(2, activation, seed=7)
    _, _, cache = base_forward(phi, x, config)
    B = x.shape[0]
    patterns = [
        ([0, None, 2], [None, 1]),          # holes everywhere
        ([None, None, None], [None, None]),  # nothing: all-zero grads
        ([0, None, None], [None, None]),     # only x^0: dx is that cotangent (a copy)
        ([None, None, 2], [None, None]),     # only the top
        ([None, 1, None], [0, None]),        # only the middle: layer 2 gets nothing
    ]
    for px, pz in patterns:
        full_x, full_z = _cotangents(rng, config, B)
        dxs = [None if p is None else full_x[i] for i, p in enumerate(px)]
        dzs = [None if p is None else full_z[i] for i, p in enumerate(pz)]
        zero_x = [np.zeros_like(full_x[i]) if d is None else d for i, d in enumerate(dxs)]
        zero_z = [np.zeros_like(full_z[i]) if d is None else d for i, d in enumerate(dzs)]
        dphi, dx = base_backward(dxs, dzs, cache)
        dphi0, dx0 = base_backward(zero_x, zero_z, cache)
        for k in dphi:
            np.testing.assert_allclose(dphi[k], dphi0[k], rtol=1e-13, atol=1e-300, err_msg=k)
        np.testing.assert_allclose(dx, dx0, rtol=1e-13, atol=1e-300)
        if dxs[0] is not None:
            assert dx is not dxs[0]


def test_vjp_tolerance_catches_a_wrong_gradient():
    """Testing the tester: the 1e-8 check rejects a gradient off by 1e-6 relative."""
    config, phi, x, rng = _setup(2, "tanh", seed=3)
    _, _, cache = base_forward(phi, x, config)
    dxs, dzs = _cotangents(rng, config, x.shape[0])
    dphi, _ = base_backward(dxs, dzs, cache)
    expected = _reference_vjp(phi, x, config, dxs, dzs)
    assert rel_error(dphi["layer1/W"] * (1 + 1e-6), expected["layer1/W"]) > 1e-8
    # dropping one cotangent (here dx^1) is caught too
    dphi_missing, _ = base_backward([dxs[0], None, dxs[2]], dzs, cache)
    assert rel_error(dphi_missing["layer1/W"], expected["layer1/W"]) > 1e-3


def test_batch_of_one_and_other_batch_sizes():
    """Any B >= 1 runs (labeled batches differ from batch_size); B = 1 has zero variance."""
    for B in (1, 2, 16):
        config, phi, x, rng = _setup(2, "relu", seed=B, B=B)
        xs, zs, cache = base_forward(phi, x, config)
        if B == 1:
            for l, z in enumerate(zs, start=1):
                np.testing.assert_allclose(z[0], phi[f"layer{l}/b"], rtol=0, atol=1e-12)
        dxs, dzs = _cotangents(rng, config, B)
        dphi, dx = base_backward(dxs, dzs, cache)
        expected = _reference_vjp(phi, x, config, dxs, dzs)
        for name in phi:
            assert rel_error(dphi[name], expected[name]) <= 1e-8, (B, name)
        assert rel_error(dx, expected["x"]) <= 1e-8


@pytest.mark.parametrize("activation", ["relu", "swish", "softplus"])
def test_float32_runs_within_float32_tolerance(activation):
    config, phi64, x64, rng = _setup(4, activation, seed=5)
    phi32 = {k: v.astype(np.float32) for k, v in phi64.items()}
    x32 = x64.astype(np.float32)
    xs32, zs32, cache32 = base_forward(phi32, x32, config)
    xs64, zs64, cache64 = base_forward(phi64, x64, config)
    for a, b in zip(xs32 + zs32, xs64 + zs64):
        assert a.dtype == np.float32
        assert rel_error(a, b) <= 1e-4
    dxs, dzs = _cotangents(rng, config, x64.shape[0])
    dphi64, dx64 = base_backward(dxs, dzs, cache64)
    dphi32, dx32 = base_backward([c.astype(np.float32) for c in dxs],
                                 [c.astype(np.float32) for c in dzs], cache32)
    for k in dphi64:
        assert dphi32[k].dtype == np.float32, k
        assert rel_error(dphi32[k], dphi64[k]) <= 1e-3, k
    assert dx32.dtype == np.float32 and rel_error(dx32, dx64) <= 1e-3


def test_paper_preset_shapes():
    config = preset("paper")
    rng = np.random.default_rng(0)
    phi = init_phi(config, rng)
    x = rng.uniform(0, 1, (config.batch_size, 196))
    xs, zs, cache = base_forward(phi, x, config)
    assert [a.shape[1] for a in xs] == [196, 128, 128, 128, 128, 32]
    dphi, dx = base_backward([None] * 5 + [np.ones_like(xs[-1])], [None] * 5, cache)
    assert dx.shape == x.shape and set(dphi) == set(phi)


def test_bad_input_raises():
    config, phi, x, rng = _setup(2, "relu")
    with pytest.raises(ValueError, match=r"base_forward: argument 'x' must have shape \[B, N\^0 = 15\].*\(7, 14\)"):
        base_forward(phi, x[:, :14], config)
    with pytest.raises(ValueError, match="base_forward: argument 'x' must have 2 dimensions.*(7, 15, 1)"):
        base_forward(phi, x[..., None], config)
    with pytest.raises(ValueError, match="base_forward: argument 'x' must have 2 dimensions"):
        base_forward(phi, x[0], config)
    bad = x.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="base_forward: argument 'x' contains NaN"):
        base_forward(phi, bad, config)
    with pytest.raises(ValueError, match="base_forward: .*dtype.*x: float32"):
        base_forward(phi, x.astype(np.float32), config)
    with pytest.raises(ValueError, match="base_forward: argument 'x' must have shape"):
        base_forward(phi, x[:0], config)
    incomplete = {k: v for k, v in phi.items() if k != "layer2/b"}
    with pytest.raises(ValueError, match=r"base_forward: phi .*missing name\(s\) \['layer2/b'\]"):
        base_forward(incomplete, x, config)
    nan_phi = {**phi, "layer1/W": np.full_like(phi["layer1/W"], np.inf)}
    with pytest.raises(ValueError, match=r"base_forward: phi contains NaN or Inf in \['layer1/W'\]"):
        base_forward(nan_phi, x, config)
    with pytest.raises(ValueError, match="base_forward: .*'x' must be a numpy array"):
        base_forward(phi, x.tolist(), config)

    _, _, cache = base_forward(phi, x, config)
    dxs, dzs = _cotangents(rng, config, x.shape[0])
    with pytest.raises(ValueError, match="base_backward: argument 'dxs' must be a list of 3"):
        base_backward(dxs[:2], dzs, cache)
    with pytest.raises(ValueError, match=r"base_backward: argument 'dzs\[1\] \(z\^2\)' must have shape \(7, 14\), got \(7, 9\)"):
        base_backward(dxs, [dzs[0], dzs[0]], cache)
    with pytest.raises(ValueError, match=r"base_backward: argument 'dxs\[2\] \(x\^2\)' must be float64"):
        base_backward(dxs[:2] + [dxs[2].astype(np.float32)], dzs, cache)
    with pytest.raises(ValueError, match=r"base_backward: argument 'dxs\[0\] \(x\^0\)' contains NaN"):
        base_backward([np.full_like(dxs[0], np.nan)] + dxs[1:], dzs, cache)
