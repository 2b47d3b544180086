"""The meta-objective (SPEC 6) and its hand-composed VJP with respect to phi,
against autograd applied to the independent transcription in
refimpl/reference/meta_objective.py."""
import autograd
import numpy as np
import pytest

import refimpl.meta.meta_objective as mo_module
from refimpl import golden
from refimpl.config import PRESET_EXTRAS, preset
from refimpl.meta.meta_objective import meta_objective, meta_objective_backward, meta_objective_forward
from refimpl.params import init_phi
from refimpl.reference import meta_objective as ref
from refimpl.reference.gradcheck import rel_error

TINY = preset("tiny")
N_LABEL, N_CLS = PRESET_EXTRAS["tiny"]["n_label"], PRESET_EXTRAS["tiny"]["n_cls"]   # 16, 5
assert TINY.n_eval == 4


def targets(rng, lead, n_cls=N_CLS, n_reg=0):
    onehot = np.eye(n_cls)[rng.integers(0, n_cls, size=lead)]
    return np.concatenate([onehot, rng.uniform(-1.0, 1.0, tuple(lead) + (n_reg,))], axis=-1)


def setup(seed, config=TINY, n_reg=0, dtype=np.float64, phi_scale=None, n_label=N_LABEL):
    rng = np.random.default_rng(seed)
    phi = init_phi(config, rng)
    if phi_scale is not None:
        phi = {k: (v * phi_scale if k.endswith("/W") else v) for k, v in phi.items()}
    lead = (config.n_eval, n_label)
    x_a = rng.uniform(0.0, 1.0, lead + (config.layer_sizes[0],))
    x_b = rng.uniform(0.0, 1.0, lead + (config.layer_sizes[0],))
    y_a, y_b = targets(rng, lead, n_reg=n_reg), targets(rng, lead, n_reg=n_reg)
    cast = lambda a: a.astype(dtype)
    return {k: cast(v) for k, v in phi.items()}, cast(x_a), cast(y_a), cast(x_b), cast(y_b)


def autograd_grad(phi, x_a, y_a, x_b, y_b, config, dloss):
    return autograd.grad(lambda p: dloss * ref.meta_objective(p, x_a, y_a, x_b, y_b, config))(phi)


CASES = [  # (seed, n_reg, activation, phi_scale)
    (0, 0, "relu", None),
    (1, 3, "relu", None),
    (2, 4, "tanh", 30.0),
    (3, 2, "elu", None),
    (4, 1, "softplus", 5.0),
]


@pytest.mark.parametrize("seed,n_reg,activation,phi_scale", CASES)
def test_forward_and_vjp_match_autograd(seed, n_reg, activation, phi_scale):
    config = TINY.replace(activation=activation)
    phi, x_a, y_a, x_b, y_b = setup(seed, config, n_reg=n_reg, phi_scale=phi_scale)
    loss, accuracy, cache = meta_objective_forward(phi, x_a, y_a, x_b, y_b, config, n_cls=N_CLS)
    assert loss.shape == () and loss.dtype == np.float64
    assert rel_error(loss, ref.meta_objective(phi, x_a, y_a, x_b, y_b, config)) <= 1e-12
    assert accuracy == ref.accuracy(phi, x_a, y_a, x_b, y_b, config, N_CLS)
    # the mean of the per-pair losses, each pair on its own (own batch statistics)
    one_pair = config.replace(n_eval=1)
    for e in range(config.n_eval):
        one = ref.pair_loss(phi, x_a[e], y_a[e], x_b[e], y_b[e], config)
        pair = slice(e, e + 1)
        mine, _, _ = meta_objective_forward(phi, x_a[pair], y_a[pair], x_b[pair], y_b[pair], one_pair,
                                            n_cls=N_CLS)
        assert rel_error(mine, one) <= 1e-12
    dloss = -0.7 + 0.3 * seed                       # a cotangent that is not 1
    dphi = meta_objective_backward(dloss, cache)
    expected = autograd_grad(phi, x_a, y_a, x_b, y_b, config, dloss)
    assert list(dphi) == list(phi)
    errors = {k: rel_error(dphi[k], expected[k]) for k in phi}
    bad = {k: f"{v:.1e}" for k, v in errors.items() if not v <= 1e-8}
    assert not bad, bad
    for k in phi:
        assert dphi[k].shape == phi[k].shape and dphi[k].dtype == np.float64
        if k.endswith("/V"):
            assert not dphi[k].any()                # V is not read by the base model
        else:
            assert np.abs(dphi[k]).max() > 0        # the check compares something non-trivial


def test_regression_columns_change_loss_and_grad():
    """The regression targets are really part of the loss (not sliced off with the classes)."""
    phi, x_a, y_a, x_b, y_b = setup(5, n_reg=3)
    loss, _, cache = meta_objective_forward(phi, x_a, y_a, x_b, y_b, TINY, n_cls=N_CLS)
    y_b2 = y_b.copy()
    y_b2[..., N_CLS:] *= -1
    loss2, _, cache2 = meta_objective_forward(phi, x_a, y_a, x_b, y_b2, TINY, n_cls=N_CLS)
    assert abs(float(loss) - float(loss2)) > 1e-3
    g1, g2 = meta_objective_backward(1.0, cache), meta_objective_backward(1.0, cache2)
    assert rel_error(g1["layer1/W"], g2["layer1/W"]) > 1e-3


def test_accuracy_on_memorised_labels():
    """Accuracy semantics on a case whose answer is known without the code.

    With x_b = x_a and a feature map much wider than n_label, the ridge fit
    memorises its own training labels, so every row is right (accuracy 1).
    Scoring the same predictions against labels whose class c is replaced by
    n_cls - 1 - c, exactly the rows of the middle class stay right."""
    wide = TINY.replace(layer_sizes=(15, 64, 64))
    phi, x_a, y_a, _, _ = setup(7, wide, n_reg=2)
    _, acc_train, _ = meta_objective_forward(phi, x_a, y_a, x_a, y_a, wide, n_cls=N_CLS)
    assert acc_train == 1.0
    y_flip = y_a.copy()
    y_flip[..., :N_CLS] = y_a[..., N_CLS - 1::-1]
    _, acc_flip, _ = meta_objective_forward(phi, x_a, y_a, x_a, y_flip, wide, n_cls=N_CLS)
    middle = np.mean(np.argmax(y_a[..., :N_CLS], axis=-1) == N_CLS // 2)
    assert 0 < middle < 0.5
    assert acc_flip == middle


def test_float32_runs_close_to_float64():
    args64 = setup(8, n_reg=2)
    args32 = setup(8, n_reg=2, dtype=np.float32)
    loss64, acc64, cache64 = meta_objective_forward(*args64, TINY, n_cls=N_CLS)
    loss32, acc32, cache32 = meta_objective_forward(*args32, TINY, n_cls=N_CLS)
    assert loss32.dtype == np.float32 and loss32.shape == ()
    assert rel_error(loss32, loss64) <= 1e-5
    g64 = meta_objective_backward(1.0, cache64)
    g32 = meta_objective_backward(np.float32(1.0), cache32)
    for k in g64:
        assert g32[k].dtype == np.float32
        assert rel_error(g32[k], g64[k]) <= 1e-3, k
    assert abs(acc32 - acc64) <= 2 / (TINY.n_eval * N_LABEL)
    assert meta_objective(*args32, TINY, n_cls=N_CLS)[0] == float(loss32)


def test_perturbed_backward_is_caught(monkeypatch):
    """Testing the tester: a ridge backward off by 1e-3 fails the autograd comparison."""
    phi, x_a, y_a, x_b, y_b = setup(9, n_reg=1)
    original = mo_module.ridge_solve_backward

    def perturbed(dC, cache):
        g = original(dC, cache)
        return g._replace(A=g.A * (1 + 1e-3))
    monkeypatch.setattr(mo_module, "ridge_solve_backward", perturbed)
    _, _, cache = meta_objective_forward(phi, x_a, y_a, x_b, y_b, TINY, n_cls=N_CLS)
    dphi = meta_objective_backward(1.0, cache)
    expected = autograd_grad(phi, x_a, y_a, x_b, y_b, TINY, 1.0)
    assert max(rel_error(dphi[k], expected[k]) for k in phi) > 1e-6


def test_pairs_use_their_own_batch_statistics():
    """Changing x_a of one pair changes that pair's loss only (no statistics shared across pairs)."""
    phi, x_a, y_a, x_b, y_b = setup(10)
    x_a2 = x_a.copy()
    x_a2[2] = np.random.default_rng(0).uniform(0, 1, x_a2[2].shape)
    one_pair = TINY.replace(n_eval=1)

    def losses(xa):
        joint, _, _ = meta_objective_forward(phi, xa, y_a, x_b, y_b, TINY, n_cls=N_CLS)
        alone = [float(meta_objective_forward(phi, xa[e:e + 1], y_a[e:e + 1], x_b[e:e + 1], y_b[e:e + 1],
                                              one_pair, n_cls=N_CLS)[0]) for e in range(TINY.n_eval)]
        assert rel_error(joint, np.mean(alone)) <= 1e-12     # the mean of pairs each run alone
        return np.array(alone)

    changed = losses(x_a) != losses(x_a2)
    assert changed.tolist() == [False, False, True, False]


def bad_cases():
    phi, x_a, y_a, x_b, y_b = setup(11, n_reg=2)
    not_onehot = y_a.copy()
    not_onehot[1, 3, :N_CLS] = 0.0
    two_hot = y_b.copy()
    two_hot[0, 0, :2] = 1.0
    with_nan = x_b.copy()
    with_nan[0, 0, 0] = np.nan
    base = dict(phi=phi, x_a=x_a, y_a=y_a, x_b=x_b, y_b=y_b, n_cls=N_CLS)
    return [
        (dict(base, x_a=x_a[:3], y_a=y_a[:3], x_b=x_b[:3], y_b=y_b[:3]), "n_eval"),
        (dict(base, x_a=x_a[0]), "dimensions"),
        (dict(base, x_b=x_b[:, :-1]), "'x_b'"),
        (dict(base, x_a=x_a[..., :-1], x_b=x_b[..., :-1]), "features on its last axis"),
        (dict(base, y_a=y_a[:, :-1]), "'y_a'"),
        (dict(base, y_b=y_b[..., :-1]), "'y_b'"),
        (dict(base, n_cls=1), "n_cls"),
        (dict(base, n_cls=N_CLS + 3), "n_cls"),
        (dict(base, n_cls=2.0), "n_cls"),
        (dict(base, y_a=not_onehot), "one-hot"),
        (dict(base, y_b=two_hot), "one-hot"),
        (dict(base, y_a=y_a.astype(np.float32)), "dtype"),
        (dict(base, x_a=x_a[:, :1], y_a=y_a[:, :1], x_b=x_b[:, :1], y_b=y_b[:, :1]), "n_label >= 2"),
        (dict(base, x_b=with_nan), "NaN"),
        (dict(base, phi={k: v for k, v in phi.items() if k != "layer2/b"}), "layer2/b"),
    ]


@pytest.mark.parametrize("index", range(15))
def test_bad_input_raises(index):
    kwargs, message = bad_cases()[index]
    args = [kwargs.pop(k) for k in ("phi", "x_a", "y_a", "x_b", "y_b")]
    with pytest.raises(ValueError, match=message):
        meta_objective_forward(*args, TINY, **kwargs)


def test_bad_cotangent_raises():
    _, _, cache = meta_objective_forward(*setup(12), TINY, n_cls=N_CLS)
    for dloss in (np.ones(2), float("nan"), "1"):
        with pytest.raises(ValueError, match="dloss"):
            meta_objective_backward(dloss, cache)


def test_golden_meta_objective_export_and_check(tmp_path):
    """SPEC 10 cases for the tiny and mid presets: export, then check in float64 and float32."""
    names = {c.name for c in golden.all_cases() if c.kind == "meta_objective"}
    assert names == {"meta_objective-tiny", "meta_objective-mid"}
    manifest = golden.export(tmp_path / "set", kinds=["meta_objective"])
    for case in manifest["cases"]:
        arrays = case["arrays"]
        assert case["attrs"]["n_cls"] == PRESET_EXTRAS[case["preset"]]["n_cls"]
        config = preset(case["preset"])
        n_label = PRESET_EXTRAS[case["preset"]]["n_label"]
        assert arrays["x_a"]["shape"] == [config.n_eval, n_label, config.layer_sizes[0]]
        assert arrays["out/loss"]["shape"] == [] and arrays["cot/loss"]["shape"] == []
        assert {f"grad/phi/{k}" for k in init_phi(config, np.random.default_rng(0))} <= set(arrays)
    for float32 in (False, True):
        report = golden.check(tmp_path / "set", float32=float32, only=["meta_objective"], log=lambda *a: None)
        assert report.ok and report.cases_run == 2, [(r.array, r.error, r.limit) for r in report.results
                                                     if not r.passed]
