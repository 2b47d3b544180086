"""The truncated unroll (SPEC 7): J, the final phi and dJ/dtheta by the hand
reverse pass, against autograd through the whole unroll of the independent
transcription (refimpl/reference/meta_objective.py); rematerialisation;
input validation; golden cases."""
import gc
import tracemalloc

import autograd
import numpy as np
import pytest

import refimpl.meta.unroll as unroll_module
from refimpl import golden
from refimpl.config import PRESET_EXTRAS, preset
from refimpl.meta.meta_objective import meta_objective_backward, meta_objective_forward
from refimpl.meta.unroll import MetaGradient, NonFiniteError, UnrollBatches, meta_gradient, unroll_forward
from refimpl.npzio import read_npz
from refimpl.params import init_phi, init_theta
from refimpl.reference import meta_objective as ref
from refimpl.reference.gradcheck import rel_error
from refimpl.rule.update_step import update_step_forward, update_step_vjp

TINY = preset("tiny")
EXTRAS = PRESET_EXTRAS["tiny"]
N_LABEL, N_CLS = EXTRAS["n_label"], EXTRAS["n_cls"]


def targets(rng, lead, n_reg):
    onehot = np.eye(N_CLS)[rng.integers(0, N_CLS, size=lead)]
    return np.concatenate([onehot, rng.uniform(-1.0, 1.0, tuple(lead) + (n_reg,))], axis=-1)


def make_batches(rng, U, config=TINY, n_reg=0, dtype=np.float64, n_label=N_LABEL):
    lead = (U, config.n_eval, n_label)
    n0 = config.layer_sizes[0]
    b = UnrollBatches(x=rng.uniform(0, 1, (U, config.batch_size, n0)),
                      x_a=rng.uniform(0, 1, lead + (n0,)), x_b=rng.uniform(0, 1, lead + (n0,)),
                      y_a=targets(rng, lead, n_reg), y_b=targets(rng, lead, n_reg))
    return UnrollBatches(*(a.astype(dtype) for a in b))


def setup(seed, U, config=TINY, n_reg=0, dtype=np.float64, phi_scale=None):
    rng = np.random.default_rng(seed)
    theta = init_theta(config, rng, dtype)
    phi = init_phi(config, rng, dtype)
    if phi_scale is not None:   # larger weights put the rule's orth branch and planes 8, 10 to work
        phi = {k: (v * phi_scale if k.endswith(("W", "V")) else v) for k, v in phi.items()}
    return theta, phi, make_batches(rng, U, config, n_reg, dtype)


def oracle(theta, phi, b, config):
    return ref.unroll(theta, phi, b.x, b.x_a, b.y_a, b.x_b, b.y_b, config)


def oracle_dtheta(theta, phi, b, config):
    return autograd.grad(lambda th: oracle(th, phi, b, config)[0])(theta)


def assert_small(errors, tol):
    bad = {k: f"{v:.1e}" for k, v in errors.items() if not v <= tol}
    assert not bad, f"leaves above {tol:g}: {bad}"


@pytest.mark.parametrize("U,n_reg,phi_scale", [(1, 0, None), (2, 3, None), (3, 0, None), (3, 2, 30.0)])
def test_meta_gradient_matches_autograd_through_the_unroll(U, n_reg, phi_scale):
    theta, phi, b = setup(100 + U, U, n_reg=n_reg, phi_scale=phi_scale)
    phi_before = {k: v.copy() for k, v in phi.items()}
    result = meta_gradient(theta, phi, b, TINY, n_cls=N_CLS)
    assert isinstance(result, MetaGradient)
    J, phi_final, losses = oracle(theta, phi, b, TINY)
    assert len(result.losses) == len(result.accuracies) == U
    for got, want in zip(result.losses, losses):
        assert rel_error(got, want) <= 1e-12
    assert rel_error(result.loss, J) <= 1e-12
    assert result.loss == pytest.approx(np.mean(result.losses), rel=1e-15)
    for k in phi:
        assert rel_error(result.phi_final[k], phi_final[k]) <= 1e-12, k
        assert rel_error(result.phi_final[k] - phi[k], phi_final[k] - phi[k]) <= 1e-9, k   # the change itself
    for u, acc in enumerate(result.accuracies):
        phi_u = ref.unroll(theta, phi, b.x[:u + 1], b.x_a, b.y_a, b.x_b, b.y_b, TINY)[1]
        assert acc == ref.accuracy(phi_u, b.x_a[u], b.y_a[u], b.x_b[u], b.y_b[u], TINY, N_CLS)
    expected = oracle_dtheta(theta, phi, b, TINY)
    assert list(result.dtheta) == list(theta)
    for k in theta:
        assert result.dtheta[k].shape == theta[k].shape and result.dtheta[k].dtype == np.float64
    assert_small({k: rel_error(result.dtheta[k], expected[k]) for k in theta}, 1e-6)
    assert sum(np.abs(v).max() > 0 for v in result.dtheta.values()) >= len(theta) - 2
    for k in phi:   # phi_t is the caller's: never modified
        assert np.array_equal(phi[k], phi_before[k])


def test_unroll_forward_equals_the_gradient_run():
    theta, phi, b = setup(7, 3, n_reg=1)
    J, phi_final, losses, accuracies = unroll_forward(theta, phi, b, TINY, n_cls=N_CLS)
    result = meta_gradient(theta, phi, b, TINY, n_cls=N_CLS)
    assert J == result.loss and losses == result.losses and accuracies == result.accuracies
    for k in phi:
        assert np.array_equal(phi_final[k], result.phi_final[k])


def test_steps_after_u_score_later_pairs_only():
    """Step u is scored on its own pairs: changing the pairs of the last step
    changes only the last loss, and phi_final not at all."""
    theta, phi, b = setup(8, 3)
    first = unroll_forward(theta, phi, b, TINY, n_cls=N_CLS)
    rng = np.random.default_rng(1)
    x_a = b.x_a.copy()
    x_a[2] = rng.uniform(0, 1, x_a[2].shape)
    second = unroll_forward(theta, phi, b._replace(x_a=x_a), TINY, n_cls=N_CLS)
    assert first[2][:2] == second[2][:2] and first[2][2] != second[2][2]
    for k in phi:
        assert np.array_equal(first[1][k], second[1][k])


def test_perturbed_carry_is_caught(monkeypatch):
    """Testing the tester: a cotangent carried between steps that is off by 1e-3 fails the check."""
    theta, phi, b = setup(9, 2)
    expected = oracle_dtheta(theta, phi, b, TINY)

    def perturbed(dphi_next, cache):
        dtheta, dphi = update_step_vjp(dphi_next, cache)
        return dtheta, {k: v * (1 + 1e-3) for k, v in dphi.items()}
    monkeypatch.setattr(unroll_module, "update_step_vjp", perturbed)
    result = meta_gradient(theta, phi, b, TINY, n_cls=N_CLS)
    assert max(rel_error(result.dtheta[k], expected[k]) for k in theta) > 1e-6


def test_perturbed_meta_objective_backward_is_caught(monkeypatch):
    theta, phi, b = setup(10, 1)
    expected = oracle_dtheta(theta, phi, b, TINY)

    def perturbed(dloss, cache):
        g = meta_objective_backward(dloss, cache)
        g["layer2/b"] = g["layer2/b"] * (1 + 1e-3)
        return g
    monkeypatch.setattr(unroll_module, "meta_objective_backward", perturbed)
    result = meta_gradient(theta, phi, b, TINY, n_cls=N_CLS)
    assert max(rel_error(result.dtheta[k], expected[k]) for k in theta) > 1e-6


def test_float32_runs_close_to_float64():
    theta, phi, b = setup(11, 2, n_reg=2)
    r64 = meta_gradient(theta, phi, b, TINY, n_cls=N_CLS)
    f32 = lambda d: {k: v.astype(np.float32) for k, v in d.items()}
    b32 = UnrollBatches(*(a.astype(np.float32) for a in b))
    r32 = meta_gradient(f32(theta), f32(phi), b32, TINY, n_cls=N_CLS)
    assert isinstance(r32.loss, float)
    assert rel_error(r32.loss, r64.loss) <= 1e-5
    for k in phi:
        assert r32.phi_final[k].dtype == np.float32
        assert rel_error(r32.phi_final[k], r64.phi_final[k]) <= 1e-5, k
        assert rel_error(r32.phi_final[k] - phi[k], r64.phi_final[k] - phi[k]) <= 1e-3, k   # the change
    for k in theta:
        assert r32.dtheta[k].dtype == np.float32
        assert rel_error(r32.dtheta[k], r64.dtheta[k]) <= 1e-3, k


def naive_meta_gradient(theta, phi, b, config, n_cls):
    """The same reverse pass but keeping every step's caches (no rematerialisation):
    the memory test's negative control."""
    caches = []
    for u in range(b.U):
        x, x_a, y_a, x_b, y_b = b.step(u)
        phi, _, step_cache = update_step_forward(theta, phi, x, config)
        _, _, mo_cache = meta_objective_forward(phi, x_a, y_a, x_b, y_b, config, n_cls=n_cls)
        caches.append((step_cache, mo_cache))
    carry = None
    for step_cache, mo_cache in reversed(caches):
        g = meta_objective_backward(1.0 / b.U, mo_cache)
        if carry is not None:
            g = {k: g[k] + carry[k] for k in g}
        _, carry = update_step_vjp(g, step_cache)


def peak_bytes(fn, theta, phi, b):
    fn(theta, phi, b, TINY, n_cls=N_CLS)      # warm up lazy imports and caches
    gc.collect()
    tracemalloc.start()
    try:
        fn(theta, phi, b, TINY, n_cls=N_CLS)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_rematerialisation_keeps_peak_memory_flat_in_U(monkeypatch):
    """Structural, not timed: tracemalloc's peak (numpy registers its buffers)
    at U = 6 stays within 1.3x of U = 2 (measured: ~1.08x; the growth is the
    phi copies), while keeping every step's caches gives ~2.8x. The unroll
    keeps the caches only when U of them fit in KEEP_CACHES_BYTES (tiny ones
    do); with that budget at 0 it always rematerialises."""
    monkeypatch.setattr(unroll_module, "KEEP_CACHES_BYTES", 0)
    rng = np.random.default_rng(12)
    theta, phi = init_theta(TINY, rng), init_phi(TINY, rng)
    b2, b6 = make_batches(rng, 2), make_batches(rng, 6)
    ratio = peak_bytes(meta_gradient, theta, phi, b6) / peak_bytes(meta_gradient, theta, phi, b2)
    naive_ratio = peak_bytes(naive_meta_gradient, theta, phi, b6) / peak_bytes(naive_meta_gradient, theta, phi, b2)
    assert ratio <= 1.3, ratio
    assert naive_ratio >= 2.0, naive_ratio     # the measure does see stored caches


def test_kept_caches_stay_within_their_budget(monkeypatch):
    rng = np.random.default_rng(12)
    theta, phi = init_theta(TINY, rng), init_phi(TINY, rng)
    b6 = make_batches(rng, 6)
    kept = peak_bytes(meta_gradient, theta, phi, b6)
    budget = unroll_module.KEEP_CACHES_BYTES
    monkeypatch.setattr(unroll_module, "KEEP_CACHES_BYTES", 0)
    remat = peak_bytes(meta_gradient, theta, phi, b6)
    assert kept > 1.5 * remat                  # tiny caches fit the default budget: kept
    assert kept - remat <= budget


def test_non_finite_phi_raises_non_finite_error(monkeypatch):
    theta, phi, b = setup(13, 3)
    calls = []

    def exploding(theta, phi, x, config):
        phi_next, deltas, cache = update_step_forward(theta, phi, x, config)
        calls.append(1)
        if len(calls) == 2:
            phi_next = dict(phi_next, **{"layer1/W": phi_next["layer1/W"] * np.inf})
        return phi_next, deltas, cache
    monkeypatch.setattr(unroll_module, "update_step_forward_unchecked", exploding)
    with pytest.raises(NonFiniteError, match="update step 2") as info:
        meta_gradient(theta, phi, b, TINY, n_cls=N_CLS)
    assert info.value.step == 1 and isinstance(info.value, ValueError)


def bad_cases():
    theta, phi, b = setup(14, 2, n_reg=1)
    theta32 = {k: v.astype(np.float32) for k, v in theta.items()}
    other_b = init_theta(TINY.replace(batch_size=9), np.random.default_rng(0))
    not_onehot = b.y_b.copy()
    not_onehot[1, 0, 0, :N_CLS] = 0.5
    return [
        (dict(batches=b._replace(x=b.x[:, :-1])), "B = 7"),
        (dict(batches=b._replace(x=b.x[:1])), "first axis is U = 1"),
        (dict(batches=b._replace(x_a=b.x_a[:, :, :-1])), "'x_a'|'x_b'"),
        (dict(batches=b._replace(y_a=b.y_a[..., :-1])), "'y_a'|'y_b'"),
        (dict(batches=b._replace(y_b=b.y_b[0])), "batches.y_b"),
        (dict(batches=b._replace(x=b.x[:0])), "U >= 1"),
        (dict(batches=b._replace(x_b=b.x_b.astype(np.float32))), "dtype"),
        (dict(batches=b._replace(x=b.x.astype(np.float32))), "float32"),
        (dict(batches=b._replace(y_b=not_onehot)), "one-hot"),
        (dict(batches=tuple(b)), "UnrollBatches"),
        (dict(theta=theta32), "float32"),
        (dict(theta=other_b), "batch size"),
        (dict(n_cls=N_CLS + 2), "n_cls"),
        (dict(config=TINY.replace(n_eval=3)), "n_eval"),
    ]


@pytest.mark.parametrize("index", range(14))
@pytest.mark.parametrize("fn", [meta_gradient, unroll_forward], ids=["meta_gradient", "unroll_forward"])
def test_bad_input_raises(fn, index):
    theta, phi, b = setup(14, 2, n_reg=1)
    kwargs = dict(theta=theta, phi=phi, batches=b, config=TINY, n_cls=N_CLS)
    changes, message = bad_cases()[index]
    kwargs.update(changes)
    with pytest.raises(ValueError, match=message):
        fn(kwargs.pop("theta"), kwargs.pop("phi"), kwargs.pop("batches"), kwargs.pop("config"), **kwargs)


def test_golden_meta_gradient_export_and_check(tmp_path):
    """SPEC 10 cases for the tiny and mid presets: export, then check in float64 and float32."""
    names = {c.name for c in golden.all_cases() if c.kind == "meta_gradient"}
    assert names == {"meta_gradient-tiny", "meta_gradient-mid"}
    manifest = golden.export(tmp_path / "set", kinds=["meta_gradient"])
    theta_names = set(init_theta(TINY, np.random.default_rng(0)))
    for case in manifest["cases"]:
        arrays = case["arrays"]
        extras = PRESET_EXTRAS[case["preset"]]
        config = preset(case["preset"])
        assert case["attrs"] == {"n_cls": extras["n_cls"]}
        assert arrays["x"]["shape"] == [extras["U"], config.batch_size, config.layer_sizes[0]]
        assert arrays["x_a"]["shape"] == [extras["U"], config.n_eval, extras["n_label"], config.layer_sizes[0]]
        assert arrays["y_b"]["shape"][:3] == [extras["U"], config.n_eval, extras["n_label"]]
        assert {f"grad/theta/{k}" for k in theta_names} <= set(arrays)
        assert not any(k.startswith(("cot/phi", "grad/phi")) for k in arrays)
        assert {k for k in arrays if k.startswith("cot/")} == {"cot/loss"}
        assert all(f"out/phi/{k}" in arrays for k in init_phi(config, np.random.default_rng(0)))
    loss_cot = read_npz(tmp_path / "set" / manifest["cases"][0]["file"])["cot/loss"]
    assert loss_cot.shape == () and float(loss_cot) == 1.0
    for float32 in (False, True):
        report = golden.check(tmp_path / "set", float32=float32, only=["meta_gradient"], log=lambda *a: None)
        assert report.ok and report.cases_run == 2, [(r.array, r.error, r.limit) for r in report.results
                                                     if not r.passed]
