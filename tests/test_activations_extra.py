"""Activation details the generic registry tests do not reach: exact values
and derivatives at the kink z = 0 (SPEC 2: the z <= 0 branch), no overflow
for |z| ~ 1000, and the name list."""
import numpy as np
import pytest

from refimpl.ops.activations import ACTIVATIONS, activation_backward, activation_forward

DTYPES = [np.float32, np.float64]

# f(0) and f'(0), SPEC 2 (the z <= 0 branch at exactly 0).
AT_ZERO = {
    "relu": (0.0, 0.0),
    "leaky_relu": (0.0, 0.2),
    "elu": (0.0, 1.0),           # exp(0) from the z <= 0 branch
    "tanh": (0.0, 1.0),
    "swish": (0.0, 0.5),
    "sigmoid": (0.5, 0.25),
    "softplus": (np.log(2.0), 0.5),
    "step": (0.0, 0.0),
}

# f(z) and f'(z) at z = -1000 and z = +1000.
AT_LARGE = {
    "relu": ((0.0, 0.0), (1000.0, 1.0)),
    "leaky_relu": ((-200.0, 0.2), (1000.0, 1.0)),
    "elu": ((-1.0, 0.0), (1000.0, 1.0)),
    "tanh": ((-1.0, 0.0), (1.0, 0.0)),
    "swish": ((0.0, 0.0), (1000.0, 1.0)),
    "sigmoid": ((0.0, 0.0), (1.0, 0.0)),
    "softplus": ((0.0, 0.0), (1000.0, 1.0)),
    "step": ((0.0, 0.0), (1.0, 0.0)),
}


def _value_and_slope(z, name):
    x, cache = activation_forward(z, name=name)
    (dz,) = activation_backward(np.ones_like(x), cache)
    return x, dz


def test_names_match_spec():
    assert set(AT_ZERO) == set(ACTIVATIONS) == set(AT_LARGE)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_value_and_derivative_at_zero(name, dtype):
    z = np.zeros((2, 3), dtype=dtype)
    x, dz = _value_and_slope(z, name)
    assert x.dtype == dtype and dz.dtype == dtype
    value, slope = AT_ZERO[name]
    np.testing.assert_allclose(x, value, rtol=1e-7 if dtype == np.float64 else 1e-6, atol=0)
    np.testing.assert_allclose(dz, slope, rtol=1e-7 if dtype == np.float64 else 1e-6, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_no_overflow_for_large_inputs(name, dtype):
    z = np.array([-1000.0, 1000.0], dtype=dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        x, dz = _value_and_slope(z, name)
    assert np.isfinite(x).all() and np.isfinite(dz).all()
    (v_neg, d_neg), (v_pos, d_pos) = AT_LARGE[name]
    np.testing.assert_allclose(x, [v_neg, v_pos], rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(dz, [d_neg, d_pos], rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_family_tails_keep_relative_accuracy(dtype):
    """The stable forms keep the tiny tails (exp(-30) ~ 9e-14), not just avoid overflow."""
    z = np.array([-30.0, 30.0], dtype=dtype)
    tail = np.exp(-30.0)
    x, dz = _value_and_slope(z, "sigmoid")
    np.testing.assert_allclose([x[0], dz[0], dz[1]], tail / (1 + tail) ** np.array([1, 2, 2]), rtol=1e-5)
    x, dz = _value_and_slope(z, "softplus")
    np.testing.assert_allclose([x[0], dz[0]], [np.log1p(tail), tail / (1 + tail)], rtol=1e-5)
    x, dz = _value_and_slope(z, "swish")
    np.testing.assert_allclose(x[0], -30.0 * tail / (1 + tail), rtol=1e-5)


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "elu", "step"])
def test_kink_branch_is_taken_at_exactly_zero(name):
    """Tiny positive z takes the z > 0 branch; 0 and -0.0 take the other one."""
    z = np.array([-0.0, 0.0, 1e-300])
    _, dz = _value_and_slope(z, name)
    below = {"relu": 0.0, "leaky_relu": 0.2, "elu": 1.0, "step": 0.0}[name]
    above = 0.0 if name == "step" else 1.0
    np.testing.assert_array_equal(dz, [below, below, above])


@pytest.mark.parametrize("bad", ["gelu", "Relu", "", None, 3])
def test_unknown_name_lists_the_valid_ones(bad):
    with pytest.raises(ValueError, match="activation") as excinfo:
        activation_forward(np.zeros(3), name=bad)
    for valid in ACTIVATIONS:
        assert valid in str(excinfo.value)


def test_float32_gradient_stays_float32_with_float64_cotangent():
    z = np.linspace(-3, 3, 7).astype(np.float32)
    for name in ACTIVATIONS:
        x, cache = activation_forward(z, name=name)
        assert x.dtype == np.float32
        assert activation_backward(np.ones(7), cache).z.dtype == np.float32


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_and_elu_derivatives_keep_relative_accuracy_in_the_tails(dtype):
    """tanh' is not computed as 1 - t^2 (0 in float32 for |z| >~ 9), nor elu' as x + 1."""
    z = np.array([-12.0, -6.0, 9.0], dtype=dtype)
    _, dz = _value_and_slope(z, "tanh")
    np.testing.assert_allclose(dz, 1.0 / np.cosh(z.astype(np.float64)) ** 2, rtol=1e-5)
    _, dz = _value_and_slope(z, "elu")
    np.testing.assert_allclose(dz, [np.exp(-12.0), np.exp(-6.0), 1.0], rtol=1e-5)
