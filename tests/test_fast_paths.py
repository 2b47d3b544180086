"""The fast evaluations against the plain forms they must equal (up to rounding).

- the convolution's tap form (K accumulated matmuls on shifted row ranges)
  against the im2col form, forward and VJP, both axes, every edge size;
- the fused conv -> BN -> relu block against the plain composition of the
  three operators;
- float32 runs the fast forms and float64 the plain ones (the golden set's
  float64 numbers come from the plain forms);
- the unroll that keeps its step caches against the one that rematerialises
  them: bit for bit.
Each comparison is checked to fail on an error just past its tolerance.
"""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from refimpl.config import preset
from refimpl.meta import unroll
from refimpl.ops import conv
from refimpl.params import init_phi, init_theta
from refimpl.rule import conv_block

TOL = {np.float64: 1e-12, np.float32: 2e-5}


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) / max(float(np.max(np.abs(b))), 1e-30) if b.size else 0.0


def assert_close(actual: dict, reference: dict, tol: float) -> None:
    errors = {k: rel(actual[k], reference[k]) for k in reference}
    bad = {k: f"{e:.1e}" for k, e in errors.items() if not e <= tol}
    assert not bad, f"errors above {tol:g}: {bad}"


def conv_case(rng, B, N, C, Cout, K, axis, dtype, bias):
    m = rng.standard_normal((B, N, C)).astype(dtype)
    w = rng.standard_normal((K, C, Cout)).astype(dtype)
    b = rng.standard_normal(Cout).astype(dtype) if bias else None
    y_ref, cache_ref = conv.conv_im2col(m, w, b, axis)
    y, cache = conv.conv_taps(m, w, b, axis)
    dy = rng.standard_normal(y.shape).astype(dtype)
    g_ref, g = conv.conv_im2col_vjp(dy, cache_ref), conv.conv_taps_vjp(dy, cache)
    ref = {"y": y_ref, "m": g_ref.m, "w": g_ref.w, **({"bias": g_ref.bias} if bias else {})}
    out = {"y": y, "m": g.m, "w": g.w, **({"bias": g.bias} if bias else {})}
    return out, ref


@settings(max_examples=60, deadline=None)
@given(B=st.integers(1, 7), N=st.integers(1, 7), C=st.integers(1, 5), Cout=st.integers(1, 4),
       K=st.sampled_from([1, 3, 5]), axis=st.sampled_from([0, 1]), bias=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_conv_tap_form_equals_im2col(B, N, C, Cout, K, axis, bias, dtype, seed):
    out, ref = conv_case(np.random.default_rng(seed), B, N, C, Cout, K, axis, dtype, bias)
    for k in out:
        assert out[k].dtype == dtype and out[k].shape == ref[k].shape, k
    assert_close(out, ref, TOL[dtype])


@pytest.mark.parametrize("axis", [0, 1])
def test_conv_tap_form_at_paper_like_sizes(axis):
    out, ref = conv_case(np.random.default_rng(axis), 16, 40, 32, 24, 5, axis, np.float32, True)
    assert_close(out, ref, TOL[np.float32])


@settings(max_examples=40, deadline=None)
@given(B=st.integers(1, 6), N=st.integers(1, 6), C=st.integers(1, 6), Cout=st.integers(1, 5),
       K=st.sampled_from([1, 3, 5]), axis=st.sampled_from([0, 1]),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_fused_block_equals_plain_composition(B, N, C, Cout, K, axis, dtype, seed):
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((B, N, C)).astype(dtype)
    w = rng.standard_normal((K, C, Cout)).astype(dtype)
    gamma = rng.uniform(0.5, 1.5, Cout).astype(dtype)
    beta = rng.standard_normal(Cout).astype(dtype)
    y_ref, c_ref = conv_block.conv_bn_relu_plain_forward(m, w, gamma, beta, axis=axis, eps=1e-3)
    y, c = conv_block.conv_bn_relu_fused_forward(m, w, gamma, beta, axis=axis, eps=1e-3)
    dy = rng.standard_normal(y.shape).astype(dtype)
    g_ref = conv_block.conv_bn_relu_plain_backward(dy, c_ref)
    g = conv_block.conv_bn_relu_fused_backward(dy, c)
    out = {"y": y, **g._asdict()}
    ref = {"y": y_ref, **g_ref._asdict()}
    for k in out:
        assert out[k].dtype == dtype, k
    # float32: batch norm divides by a std that may be small; the errors are relative to each array's max
    assert_close(out, ref, 1e-10 if dtype == np.float64 else 2e-3)


def test_comparisons_fail_just_past_their_tolerance():
    rng = np.random.default_rng(0)
    out, ref = conv_case(rng, 5, 6, 4, 3, 3, 1, np.float64, True)
    assert_close(out, ref, TOL[np.float64])
    for k in ref:
        bumped = dict(out)
        bumped[k] = out[k] + 3 * TOL[np.float64] * np.max(np.abs(ref[k])) * (np.arange(out[k].size) == 0
                                                                              ).reshape(out[k].shape)
        with pytest.raises(AssertionError, match=k):
            assert_close(bumped, ref, TOL[np.float64])


def test_float32_runs_the_fast_forms_and_float64_the_plain_ones():
    rng = np.random.default_rng(1)
    for dtype, fused in ((np.float32, True), (np.float64, False)):
        m = rng.standard_normal((4, 5, 8)).astype(dtype)
        w = rng.standard_normal((3, 8, 8)).astype(dtype)
        gamma, beta = np.ones(8, dtype), np.zeros(8, dtype)
        assert conv.uses_tap_form(m, w) is fused
        _, cache = conv_block.conv_bn_relu_forward(m, w, gamma, beta, axis=1, eps=1e-3)
        assert isinstance(cache, conv_block.ConvBnReluFusedCache) is fused
        y, _ = conv.conv_unit_forward(m, w)
        ref = conv.conv_im2col(m, w, None, 1)[0]
        assert (y.tobytes() == ref.tobytes()) or fused        # float64: the plain form, bit for bit


def test_unroll_keeping_its_caches_is_bitwise_the_rematerialising_one(monkeypatch):
    config = preset("tiny")
    rng = np.random.default_rng(3)
    theta = init_theta(config, rng, np.float32)
    phi = init_phi(config, rng, np.float32)
    U, E, n, n_cls = 3, config.n_eval, 6, 2
    B, N0 = config.batch_size, config.layer_sizes[0]
    labels = lambda: np.eye(n_cls, dtype=np.float32)[rng.integers(0, n_cls, (U, E, n))]   # noqa: E731
    batches = unroll.UnrollBatches(
        x=rng.uniform(0, 1, (U, B, N0)).astype(np.float32),
        x_a=rng.uniform(0, 1, (U, E, n, N0)).astype(np.float32),
        x_b=rng.uniform(0, 1, (U, E, n, N0)).astype(np.float32), y_a=labels(), y_b=labels())
    calls = []
    real_step = unroll._step_forward
    monkeypatch.setattr(unroll, "_step_forward", lambda *a: calls.append(1) or real_step(*a))
    kept = unroll.meta_gradient(theta, phi, batches, config, n_cls=n_cls)
    assert len(calls) == U                                # no step recomputed
    monkeypatch.setattr(unroll, "KEEP_CACHES_BYTES", 0)
    calls.clear()
    remat = unroll.meta_gradient(theta, phi, batches, config, n_cls=n_cls)
    assert len(calls) == 2 * U - 1
    assert kept.loss == remat.loss
    for k in theta:
        assert kept.dtheta[k].tobytes() == remat.dtheta[k].tobytes(), k
    assert any(np.any(v != 0) for v in kept.dtheta.values())


def float64_leaves(obj, path="") -> list:
    if isinstance(obj, (np.ndarray, np.generic)):
        return [path] if obj.dtype == np.float64 else []
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in float64_leaves(v, f"{path}/{k}")]
    if isinstance(obj, (tuple, list)):
        names = getattr(obj, "_fields", range(len(obj)))
        return [p for n, v in zip(names, obj) for p in float64_leaves(v, f"{path}/{n}")]
    return []


def test_a_float32_step_keeps_no_float64_array():
    from refimpl.rule.update_step import update_step_forward, update_step_vjp

    config = preset("tiny")
    rng = np.random.default_rng(4)
    theta, phi = init_theta(config, rng, np.float32), init_phi(config, rng, np.float32)
    x = rng.uniform(0, 1, (config.batch_size, config.layer_sizes[0])).astype(np.float32)
    phi_next, deltas, cache = update_step_forward(theta, phi, x, config)
    cot = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in phi_next.items()}
    grads = update_step_vjp(cot, cache)
    assert float64_leaves((phi_next, deltas, cache, grads)) == []
    assert float64_leaves({"probe": np.zeros(1)}) == ["/probe"]      # the walk does find one
