"""The evaluation's controls and paper-sized baselines: the random-theta rows, the VAE with early
stopping on a validation part, the paper's base net, the budgets in the result."""
from __future__ import annotations

import numpy as np
import pytest

from refimpl.config import preset
from refimpl.data.base import ArraySource, Dataset
from refimpl.evaluation import baselines as bl, benchmark as bm
from refimpl.params import init_theta


def clusters(n_classes=3, per_class=40, n_features=15, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, size=(n_classes, n_features))
    labels = np.repeat(np.arange(n_classes), per_class)
    x = np.clip(centres[labels] + 0.05 * rng.standard_normal((labels.size, n_features)), 0, 1)
    return Dataset(ArraySource("clusters", {"train": x, "test": x}, {"train": labels, "test": labels},
                               class_names="abc"))


SMALL_VAE = {"hidden": (12, 10), "latent": 6, "max_steps": 60, "eval_every": 10, "patience": 2,
             "batch_size": 16, "lr": 1e-3}


def test_random_rows_start_from_phi0_on_the_same_batches():
    config = preset("tiny")
    theta = init_theta(config, np.random.default_rng(0), np.float32)
    rand = init_theta(config, np.random.default_rng(1), np.float32)
    kw = dict(seeds=(0, 1), k_shot=5, k_query=5, n_trials=2, inner_steps=(0, 3), baselines=("raw",),
              progress=False)
    res = bm.benchmark(theta, config, clusters(), random_theta=rand, **kw)
    methods = [r["method"] for r in res["summary"]]
    assert methods[:3] == ["rule@0", "rule@3", "random@3"]        # beside phi_0, no second phi_0 row
    # the random rows are the rule rows of the random theta itself (same phi_0, same batches)
    alone = bm.benchmark(rand, config, clusters(), **kw)
    for a, b in zip(res["per_seed"], alone["per_seed"]):
        assert a["acc"]["random@3"] == b["acc"]["rule@3"] and a["acc"]["rule@0"] == b["acc"]["rule@0"]
    # and differ from the rule's own rows (the check can fail)
    assert any(r["diag"]["random@3"]["effective_rank"] != r["diag"]["rule@3"]["effective_rank"]
               for r in res["per_seed"])


def test_evaluate_rule_adds_the_random_theta_of_the_rules_config(monkeypatch):
    from refimpl.evaluation import suite

    seen = {}

    def fake(theta, config, ds, **kw):
        seen.update(kw)
        return {"per_seed": [], "summary": [], "budgets": {}}
    config = preset("tiny")
    theta = init_theta(config, np.random.default_rng(0), np.float32)
    suite.evaluate_rule((theta, config), ["moons"], seeds=1, baselines=["raw"], progress=False, benchmark_fn=fake)
    expect = suite.random_theta_of(config)
    assert set(seen["random_theta"]) == set(expect)
    assert all(np.array_equal(seen["random_theta"][k], expect[k]) for k in expect)
    seen.clear()
    suite.evaluate_rule((theta, config), ["moons"], seeds=1, baselines=["raw"], progress=False, benchmark_fn=fake,
                        random_row=False, arch="paper")
    assert "random_theta" not in seen and seen["hidden"] == (128,) * 4 and seen["top"] == 32
    with pytest.raises(ValueError, match="arch"):
        suite.evaluate_rule((theta, config), ["moons"], seeds=1, progress=False, benchmark_fn=fake, arch="huge")


def test_paper_arch_sets_the_base_net_and_budgets_are_reported():
    config = preset("tiny")
    theta = init_theta(config, np.random.default_rng(0), np.float32)
    res = bm.benchmark(theta, config, clusters(), seeds=(0,), k_shot=5, k_query=5, n_trials=1, inner_steps=(1,),
                       hidden=(10, 10, 10, 10), top=12, baselines=("vae", "supervised"), vae=SMALL_VAE,
                       supervised_steps=7, supervised_lr=1e-3, pool_size=80, progress=False)
    assert res["layer_sizes"] == [15, 10, 10, 10, 10, 12]
    assert res["budgets"]["supervised"] == {"steps": 7, "lr": 1e-3}
    vae = res["budgets"]["vae"]
    assert vae["hidden"] == [12, 10] and vae["latent"] == 6 and vae["max_steps"] == 60 and vae["patience"] == 2
    curve = res["per_seed"][0]["vae_curve"]
    assert curve["stopped_at"] <= 60 and curve["valid"][0][0] == 0 and curve["n_valid"] > 0
    # the latent is N^L when the net's top is narrower than the VAE's latent
    res = bm.benchmark(None, config, clusters(), seeds=(0,), k_shot=5, k_query=5, n_trials=1, top=4,
                       baselines=("vae",), vae=SMALL_VAE, pool_size=80, progress=False)
    assert res["budgets"]["vae"]["latent"] == 4
    assert res["per_seed"][0]["diag"]["vae"]["effective_rank"] <= 4 + 1e-9


def test_vae_early_stopping_keeps_the_best_validation_parameters():
    rng = np.random.default_rng(0)
    x = rng.random((200, 8))
    # lr high enough that the validation loss turns up: the fit stops and keeps the best step
    fit = bl.train_vae(x[:150], (16,), 3, np.random.default_rng(1), n_steps=400, batch_size=16, lr=3e-2,
                       x_valid=x[150:], eval_every=10, patience=3)
    steps = [s for s, _ in fit.valid]
    losses = [v for _, v in fit.valid]
    assert steps[0] == 0 and fit.best_step == steps[int(np.argmin(losses))]
    assert fit.stopped_at <= 400 and len(fit.losses) == fit.stopped_at
    if fit.stopped_at < 400:       # stopped early: the last `patience` checks did not improve
        assert min(losses[-3:]) >= min(losses)
    valid_batch = (x[150:], np.random.default_rng(0).standard_normal((50, 3)))
    assert float(bl.vae_loss(fit.params, valid_batch)) == pytest.approx(min(losses))
    # without a validation set: the old fixed-length fit, the last parameters
    plain = bl.train_vae(x, (16,), 3, np.random.default_rng(1), n_steps=30, batch_size=16, lr=1e-3)
    assert plain.stopped_at == 30 and plain.valid == [] and len(plain.losses) == 30


def test_vae_validation_examples_are_not_fitted():
    ds = clusters(per_class=30)
    x_fit, x_valid = bm._vae_pool(ds, np.random.default_rng(0), 2000, 0.2, np.float64)
    assert len(x_fit) + len(x_valid) == ds.n_examples("train") and len(x_valid) == 18
    rows_fit = {r.tobytes() for r in x_fit}
    assert not any(r.tobytes() in rows_fit for r in x_valid)


def test_supervised_defaults_are_the_committed_choice_on_heldout_glyphs():
    import json
    from pathlib import Path

    doc = json.loads((Path(__file__).resolve().parents[1] / "docs" / "transfer" / "supervised_tuning.json").read_text())
    assert "glyphs_rotation" in doc["tasks"] and "select" in doc["tasks"]
    for net, choice in doc["chosen"].items():
        cells = [c for c in doc["grid"] if c["net"] == net]
        best = max(cells, key=lambda c: c["accuracy"])
        assert (best["steps"], best["lr"]) == (choice["steps"], choice["lr"])
        assert {"steps": choice["steps"], "lr": choice["lr"]} == bm.SUPERVISED_DEFAULTS, net
