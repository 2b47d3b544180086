"""Weight-update planes, merge, orth, bias change and EMA (SPEC 5, SPEC 4 steps 4-5):
refimpl.rule.weight_update against the weight-update oracle (shared_planes,
matrix_update, bias_change in refimpl/reference/update_step.py, autograd.numpy
from the SPEC text), plus the properties SPEC 5 implies."""
import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from refimpl.config import preset
from refimpl.params import READOUTS
from refimpl.reference import update_step as oracle
from refimpl.reference.gradcheck import rel_error
from refimpl.rule.weight_update import (
    SharedPlanes,
    bias_update_backward,
    bias_update_forward,
    matrix_update_backward,
    matrix_update_forward,
    shared_planes_backward,
    shared_planes_forward,
)

TINY = preset("tiny")
SHARED = READOUTS + ("cross_cov",)
RULE = 1e-8


# =========================================================================== the oracle, per input dict

def ref_shared(a):
    """The M-independent quantities of SPEC 5 from the inputs dict ``a``."""
    return oracle.shared_planes(a, a["h_lo"], a["h_up"], a["x_lo"], a["x_up"])


def ref_bias(a):
    return oracle.bias_change(a, a["h_up"])


def ref_layer(a, eps_w):
    """(dW_final, dV_final, db_final) of one layer (SPEC 5)."""
    s = ref_shared(a)
    return (oracle.matrix_update(a["merge/w"], a["W"], s, eps_w),
            oracle.matrix_update(a["merge/w"], a["V"], s, eps_w), ref_bias(a))


def ref_vjp(fn, inputs, cots):
    """Gradient of sum_k <fn(inputs)[k], cots[k]> w.r.t. every entry of the dict ``inputs``."""
    def scalar(args):
        outs = fn(args)
        total = 0.0
        for k, c in cots.items():
            total = total + anp.sum(outs[k] * c)
        return total
    return autograd.grad(scalar)(dict(inputs))


# =========================================================================== inputs

def layer_inputs(rng, B, Nin, Nout, Hd, R, m_scale=0.01):
    a = {
        "h_lo": np.maximum(rng.standard_normal((B, Nin, Hd)), 0.0),   # h leaves a relu
        "h_up": np.maximum(rng.standard_normal((B, Nout, Hd)), 0.0),
        "x_lo": np.abs(rng.standard_normal((B, Nin))),
        "x_up": np.abs(rng.standard_normal((B, Nout))),
        "W": m_scale * rng.standard_normal((Nin, Nout)),
        "V": m_scale * rng.standard_normal((Nin, Nout)),
        "merge/w": 0.1 + 0.05 * rng.standard_normal(10),
        "bias/w": rng.standard_normal(Hd) / np.sqrt(Hd),
    }
    for p in READOUTS:
        a[f"readout/{p}/a"] = rng.standard_normal((Hd, R)) / np.sqrt(Hd)
        a[f"readout/{p}/b"] = rng.standard_normal((Hd, R)) / np.sqrt(Hd)
    return a


def theta_of(a):
    return {k: v for k, v in a.items() if "/" in k}


def cfg(Hd, R):
    return TINY.replace(h_dims=Hd, readout_rank=R)


def tiny_layers():
    s = TINY.layer_sizes
    return [(s[l - 1], s[l]) for l in range(1, len(s))]


def ip_of(a, which, eps_w):
    return float(oracle.matrix_update(a["merge/w"], a[which], ref_shared(a), eps_w, parts=True)[2])


def bias_mean(a):
    return float(np.mean(np.einsum("bjk,k->j", a["h_up"], a["bias/w"])))


def steer(a, sign_ip, sign_bias, eps_w):
    """Choose the signs of merge/w and bias/w so that ip(W) and mean(db_base) have the
    given signs (both are linear in those weights). Returns False when a kink is too
    close (|ip| or |mean| tiny): the caller draws again."""
    ip = ip_of(a, "W", eps_w)
    if ip * sign_ip < 0:
        a["merge/w"] = -a["merge/w"]
    mean = bias_mean(a)
    if mean * sign_bias < 0:
        a["bias/w"] = -a["bias/w"]
    return abs(ip) > 1e-6 and abs(ip_of(a, "V", eps_w)) > 1e-6 and abs(mean) > 1e-6


# =========================================================================== hand composition

def hand_layer(a, config, cots=None, perturb=None):
    """The layer's three changes with the stages, and (given cotangents) the hand VJP:
    shared once, W and V through matrix_update, their shared cotangents summed."""
    theta = theta_of(a)
    shared, sc = shared_planes_forward(theta, a["h_lo"], a["h_up"], a["x_lo"], a["x_up"], config)
    dW, cW = matrix_update_forward(theta, a["W"], shared, config)
    dV, cV = matrix_update_forward(theta, a["V"], shared, config)
    db, cb = bias_update_forward(theta, a["h_up"], config)
    outs = {"dW": dW, "dV": dV, "db": db}
    if cots is None:
        return outs, None
    tW, gW, sW = matrix_update_backward(cots["dW"], cW)
    tV, gV, sV = matrix_update_backward(cots["dV"], cV)
    dshared = SharedPlanes(*[x + y for x, y in zip(sW, sV)])
    tR, dh_lo, dh_up, dx_lo, dx_up = shared_planes_backward(dshared, sc)
    tb, dh_up_b = bias_update_backward(cots["db"], cb)
    grads = {"W": gW, "V": gV, "h_lo": dh_lo, "h_up": dh_up + dh_up_b, "x_lo": dx_lo,
             "x_up": dx_up, "merge/w": tW["merge/w"] + tV["merge/w"], "bias/w": tb["bias/w"]}
    grads.update(tR)
    if perturb:
        grads[perturb] = grads[perturb] * (1 + 1e-3)
    return outs, grads


def ref_layer_dict(a, eps_w):
    dW, dV, db = ref_layer(a, eps_w)
    return {"dW": dW, "dV": dV, "db": db}


def check_layer(a, config, rng, perturb=None):
    """Forward and VJP errors (per input) of the composed layer against the oracle."""
    ref = ref_layer_dict(a, config.eps_w)
    cots = {k: rng.standard_normal(v.shape) for k, v in ref.items()}
    outs, grads = hand_layer(a, config, cots, perturb)
    fwd = {k: rel_error(outs[k], ref[k]) for k in ref}
    expected = ref_vjp(lambda x: ref_layer_dict(x, config.eps_w), a, cots)
    assert set(grads) == set(a)
    for k in a:
        assert grads[k].shape == a[k].shape and grads[k].dtype == a[k].dtype, k
    return fwd, {k: rel_error(grads[k], expected[k]) for k in a}


# =========================================================================== composed layer tests

@pytest.mark.parametrize("Nin,Nout", tiny_layers(), ids=[f"layer{l}" for l in range(1, TINY.L + 1)])
@pytest.mark.parametrize("sign_ip,sign_bias", [(1, 1), (-1, -1), (1, -1), (-1, 1)],
                         ids=["ip+mean+", "ip-mean-", "ip+mean-", "ip-mean+"])
def test_tiny_layer_matches_autograd(Nin, Nout, sign_ip, sign_bias):
    """Both branches of orth (ip < 0: correction active) and of bias_centre."""
    rng = np.random.default_rng(Nin * 100 + Nout)
    while True:
        a = layer_inputs(rng, TINY.batch_size, Nin, Nout, TINY.h_dims, TINY.readout_rank)
        if steer(a, sign_ip, sign_bias, TINY.eps_w):
            break
    fwd, errors = check_layer(a, TINY, rng)
    assert max(fwd.values()) <= 1e-12, fwd
    assert max(errors.values()) <= RULE, errors


@given(B=st.integers(1, 4), Nin=st.integers(1, 5), Nout=st.integers(1, 5), Hd=st.integers(1, 4),
       R=st.integers(1, 3), m_scale=st.sampled_from([0.01, 1.0]), seed=st.integers(0, 2**31 - 1))
def test_small_shapes_match_autograd(B, Nin, Nout, Hd, R, m_scale, seed):
    """One unit on either side, batch 1 (P6 = 0) and 2, one h channel, rank 1.
    A single weight (Nin = Nout = 1) is degenerate and has its own test below."""
    assume(Nin * Nout > 1)
    if Nin == 1:
        # One row: Mh = M / sqrt(M^2 + eps_w), whose derivative eps_w / (M^2 + eps_w)^1.5 both
        # sides compute from 1 - Mh^2, a cancellation that leaves ~1e-16 M^2 / eps_w relative
        # accuracy: 1e-8 at |M| = 1 (the only path to M when orth is inactive). Use the
        # init scale 0.01 (accuracy ~1e-12); the single-weight test covers |M| = 1.
        m_scale = 0.01
    rng = np.random.default_rng(seed)
    config = cfg(Hd, R)
    for _ in range(20):
        a = layer_inputs(rng, B, Nin, Nout, Hd, R, m_scale)
        if steer(a, rng.choice([-1, 1]), rng.choice([-1, 1]), config.eps_w):
            break
    fwd, errors = check_layer(a, config, rng)
    assert max(fwd.values()) <= 1e-12, fwd
    assert max(errors.values()) <= RULE, errors


@pytest.mark.parametrize("seed", range(8))
def test_single_weight_matches_autograd_absolutely(seed):
    """Nin = Nout = 1: Mf = sign(M), Mh = M / sqrt(M^2 + eps_w) = sign(M) (1 - O(eps_w/M^2)),
    so dM_final depends on M only through eps_w, and when ip < 0 the correction cancels
    dM_merge exactly (dM_orth = 0 in exact arithmetic, ~1e-17 after rounding). A relative
    error of such values compares rounding noise; compare absolutely instead (the
    cotangents and every other value are O(1))."""
    rng = np.random.default_rng(seed)
    config = cfg(1, 1)
    a = layer_inputs(rng, int(rng.integers(1, 3)), 1, 1, 1, 1, [0.01, 1.0][seed % 2])
    steer(a, [1, -1][seed // 2 % 2], [1, -1][seed // 4], config.eps_w)
    ref = ref_layer_dict(a, config.eps_w)
    cots = {k: rng.standard_normal(v.shape) for k, v in ref.items()}
    outs, grads = hand_layer(a, config, cots)
    expected = ref_vjp(lambda x: ref_layer_dict(x, config.eps_w), a, cots)
    for k in ref:
        assert np.max(np.abs(outs[k] - ref[k])) <= 1e-15, k
    for k in a:
        assert np.max(np.abs(grads[k] - expected[k])) <= 1e-14, k


# =========================================================================== stage-by-stage tests

def test_shared_planes_alone_match_autograd():
    rng = np.random.default_rng(11)
    Nin, Nout = tiny_layers()[1]
    a = layer_inputs(rng, TINY.batch_size, Nin, Nout, TINY.h_dims, TINY.readout_rank)
    ins = {k: v for k, v in a.items() if k.startswith(("h_", "x_", "readout/"))}
    shared, cache = shared_planes_forward(theta_of(ins), a["h_lo"], a["h_up"], a["x_lo"], a["x_up"], TINY)
    ref = ref_shared(ins)
    for k in SHARED:
        assert rel_error(getattr(shared, k), ref[k]) <= 1e-12, k
    cots = {k: rng.standard_normal(ref[k].shape) for k in SHARED}
    dtheta, dh_lo, dh_up, dx_lo, dx_up = shared_planes_backward(SharedPlanes(**cots), cache)
    mine = dict(dtheta, h_lo=dh_lo, h_up=dh_up, x_lo=dx_lo, x_up=dx_up)
    expected = ref_vjp(ref_shared, ins, cots)
    assert set(mine) == set(ins)
    for k in ins:
        assert rel_error(mine[k], expected[k]) <= RULE, k

    # None cotangents are zeros (only the "upper" readouts and P6 here).
    part = {k: (cots[k] if k in ("lin_upper", "sqr_upper", "cross_cov") else None) for k in SHARED}
    dtheta, dh_lo, dh_up, dx_lo, dx_up = shared_planes_backward(SharedPlanes(**part), cache)
    expected = ref_vjp(ref_shared, ins, {k: v for k, v in part.items() if v is not None})
    mine = dict(dtheta, h_lo=dh_lo, h_up=dh_up, x_lo=dx_lo, x_up=dx_up)
    for k in ins:
        assert rel_error(mine[k], expected[k]) <= RULE, k
    assert not dh_lo.any() and not dtheta["readout/zero/a"].any()


@pytest.mark.parametrize("sign_ip", [1, -1])
def test_matrix_update_alone_matches_autograd(sign_ip):
    """matrix_update with the shared quantities as free (arbitrary) inputs."""
    rng = np.random.default_rng(21)
    Nin, Nout = tiny_layers()[2]
    shapes = {"zero": (Nin, Nout), "rbf": (Nin, Nout), "first": (Nin, Nout),
              "lin_lower": (Nin, Nin), "sqr_lower": (Nin, Nin), "lin_upper": (Nout, Nout),
              "sqr_upper": (Nout, Nout), "cross_cov": (Nin, Nout)}
    ins = {k: rng.standard_normal(s) for k, s in shapes.items()}
    ins["M"] = 0.01 * rng.standard_normal((Nin, Nout))
    ins["merge/w"] = 0.1 + 0.05 * rng.standard_normal(10)

    def f(x):
        return {"out": oracle.matrix_update(x["merge/w"], x["M"], x, TINY.eps_w)}

    ip = float(oracle.matrix_update(ins["merge/w"], ins["M"], ins, TINY.eps_w, parts=True)[2])
    if ip * sign_ip < 0:
        ins["merge/w"] = -ins["merge/w"]
    shared = SharedPlanes(**{k: ins[k] for k in shapes})
    out, cache = matrix_update_forward({"merge/w": ins["merge/w"]}, ins["M"], shared, TINY)
    assert cache.orth_cache.active == (sign_ip < 0)
    assert rel_error(out, f(ins)["out"]) <= 1e-12
    cot = rng.standard_normal(out.shape)
    dtheta, dM, dshared = matrix_update_backward(cot, cache)
    mine = dict(dshared._asdict(), M=dM, **dtheta)
    expected = ref_vjp(f, ins, {"out": cot})
    for k in ins:
        assert rel_error(mine[k], expected[k]) <= RULE, k


@pytest.mark.parametrize("sign", [1, -1])
def test_bias_update_alone_matches_autograd(sign):
    rng = np.random.default_rng(31)
    a = layer_inputs(rng, TINY.batch_size, 9, 14, TINY.h_dims, TINY.readout_rank)
    if bias_mean(a) * sign < 0:
        a["bias/w"] = -a["bias/w"]
    ins = {"bias/w": a["bias/w"], "h_up": a["h_up"]}
    out, cache = bias_update_forward(ins, a["h_up"], TINY)
    assert cache.centre_cache.active == (sign > 0)
    assert rel_error(out, ref_bias(ins)) <= 1e-12
    cot = rng.standard_normal(out.shape)
    dtheta, dh = bias_update_backward(cot, cache)
    expected = ref_vjp(lambda x: {"o": ref_bias(x)}, ins, {"o": cot})
    assert rel_error(dtheta["bias/w"], expected["bias/w"]) <= RULE
    assert rel_error(dh, expected["h_up"]) <= RULE


def test_float32_runs_within_float32_tolerance():
    rng = np.random.default_rng(51)
    Nin, Nout = tiny_layers()[0]
    a = layer_inputs(rng, TINY.batch_size, Nin, Nout, TINY.h_dims, TINY.readout_rank)
    ref = ref_layer_dict(a, TINY.eps_w)
    cots = {k: rng.standard_normal(v.shape) for k, v in ref.items()}
    a32 = {k: v.astype(np.float32) for k, v in a.items()}
    outs, grads = hand_layer(a32, TINY, {k: v.astype(np.float32) for k, v in cots.items()})
    expected = ref_vjp(lambda x: ref_layer_dict(x, TINY.eps_w), a, cots)
    for k in ref:
        assert outs[k].dtype == np.float32, k
        assert rel_error(outs[k], ref[k]) <= 1e-5, k
    for k in a:
        assert grads[k].dtype == np.float32, k
        assert rel_error(grads[k], expected[k]) <= 1e-4, k


# =========================================================================== testing the tester

@pytest.mark.parametrize("name", ["W", "V", "h_lo", "h_up", "x_lo", "x_up", "merge/w", "bias/w",
                                  "readout/zero/a", "readout/sqr_upper/b"])
def test_perturbed_backward_is_caught(name):
    rng = np.random.default_rng(61)
    Nin, Nout = tiny_layers()[0]
    a = layer_inputs(rng, TINY.batch_size, Nin, Nout, TINY.h_dims, TINY.readout_rank)
    _, errors = check_layer(a, TINY, rng, perturb=name)
    assert errors[name] > RULE
    assert all(e <= RULE for k, e in errors.items() if k != name)


# =========================================================================== SPEC 5 properties

@pytest.mark.parametrize("seed", range(6))
def test_spec5_properties(seed):
    """<dM_orth, M>_F = max(ip, 0) ||M||_F >= 0; RMS(dM_final) < 1; mean(db_final) <= 0."""
    rng = np.random.default_rng(seed)
    Nin, Nout = tiny_layers()[seed % TINY.L]
    a = layer_inputs(rng, TINY.batch_size, Nin, Nout, TINY.h_dims, TINY.readout_rank,
                     m_scale=[0.01, 1.0][seed % 2])
    if seed % 2:
        a["merge/w"] = -a["merge/w"]      # ip of the other sign, usually
        a["bias/w"] = -a["bias/w"]
    theta = theta_of(a)
    shared, _ = shared_planes_forward(theta, a["h_lo"], a["h_up"], a["x_lo"], a["x_up"], TINY)
    for which in ("W", "V"):
        M = a[which]
        out, cache = matrix_update_forward(theta, M, shared, TINY)
        nM = np.linalg.norm(M)
        dM_orth = out / cache.final_cache.r                 # dM_final = r dM_orth, r > 0
        ip = ip_of(a, which, TINY.eps_w)
        inner = np.vdot(dM_orth, M)
        tol = 1e-12 * np.linalg.norm(dM_orth) * nM          # rounding of the inner product
        assert inner >= -tol
        assert abs(inner - max(ip, 0.0) * nM) <= tol
        assert (ip < 0) == cache.orth_cache.active
        assert np.sqrt(np.mean(out ** 2)) < 1
    db, cache = bias_update_forward(theta, a["h_up"], TINY)
    assert np.mean(db) <= 1e-15
    assert np.sqrt(np.mean(db ** 2)) < 1
    assert np.all(np.isfinite(db))


def test_large_planes_are_capped_below_unit_rms():
    """Even a huge merged change has RMS < 1 after the final normalisation."""
    rng = np.random.default_rng(71)
    Nin, Nout = tiny_layers()[1]
    a = layer_inputs(rng, TINY.batch_size, Nin, Nout, TINY.h_dims, TINY.readout_rank)
    a["merge/w"] = 1e4 * a["merge/w"]
    theta = theta_of(a)
    shared, _ = shared_planes_forward(theta, a["h_lo"], a["h_up"], a["x_lo"], a["x_up"], TINY)
    out, _ = matrix_update_forward(theta, a["W"], shared, TINY)
    rms = np.sqrt(np.mean(out ** 2))
    assert 0.99 < rms < 1


def test_all_zero_M_raises():
    rng = np.random.default_rng(81)
    Nin, Nout = tiny_layers()[0]
    a = layer_inputs(rng, TINY.batch_size, Nin, Nout, TINY.h_dims, TINY.readout_rank)
    theta = theta_of(a)
    shared, _ = shared_planes_forward(theta, a["h_lo"], a["h_up"], a["x_lo"], a["x_up"], TINY)
    with pytest.raises(ValueError, match="all zeros"):
        matrix_update_forward(theta, np.zeros((Nin, Nout)), shared, TINY)


@pytest.mark.parametrize("bad", ["h_up", "x_lo", "readout", "merge", "M", "dtype", "bias"])
def test_bad_input_raises(bad):
    rng = np.random.default_rng(91)
    Nin, Nout = tiny_layers()[0]
    a = layer_inputs(rng, TINY.batch_size, Nin, Nout, TINY.h_dims, TINY.readout_rank)
    theta = theta_of(a)
    h_up, x_lo, M = a["h_up"], a["x_lo"], a["W"]
    if bad == "h_up":
        h_up = h_up[1:]
    elif bad == "x_lo":
        x_lo = x_lo[:, 1:]
    elif bad == "readout":
        theta["readout/rbf/b"] = theta["readout/rbf/b"][:, :1]
    elif bad == "merge":
        theta["merge/w"] = theta["merge/w"][:9]
    elif bad == "M":
        M = M[:, 1:]
    elif bad == "dtype":
        M = M.astype(np.float32)
    elif bad == "bias":
        theta["bias/w"] = theta["bias/w"][:3]
    with pytest.raises(ValueError):
        shared, _ = shared_planes_forward(theta, a["h_lo"], h_up, x_lo, a["x_up"], TINY)
        matrix_update_forward(theta, M, shared, TINY)
        bias_update_forward(theta, h_up, TINY)


def test_bad_cotangent_raises():
    rng = np.random.default_rng(92)
    Nin, Nout = tiny_layers()[0]
    a = layer_inputs(rng, TINY.batch_size, Nin, Nout, TINY.h_dims, TINY.readout_rank)
    theta = theta_of(a)
    shared, sc = shared_planes_forward(theta, a["h_lo"], a["h_up"], a["x_lo"], a["x_up"], TINY)
    bad = shared._replace(lin_lower=shared.lin_lower[:, 1:])
    with pytest.raises(ValueError, match="lin_lower"):
        shared_planes_backward(bad, sc)
    out, mc = matrix_update_forward(theta, a["W"], shared, TINY)
    with pytest.raises(ValueError, match="ddM_final"):
        matrix_update_backward(out[1:], mc)
    db, bc = bias_update_forward(theta, a["h_up"], TINY)
    with pytest.raises(ValueError, match="ddb_final"):
        bias_update_backward(db[1:], bc)
