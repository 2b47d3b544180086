"""Baselines (refimpl/evaluation/baselines.py) and the benchmark that runs them."""
from __future__ import annotations

import numpy as np
import pytest

from refimpl.config import preset
from refimpl.data.base import ArraySource, Dataset
from refimpl.evaluation import baselines as bl
from refimpl.evaluation.benchmark import benchmark
from refimpl.evaluation.reporting import format_summary
from refimpl.params import init_theta


def clustered(n_classes=3, per_class=40, n_features=15, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0.2, 0.8, size=(n_classes, n_features))
    labels = np.repeat(np.arange(n_classes), per_class)
    x = np.clip(centres[labels] + 0.05 * rng.standard_normal((labels.size, n_features)), 0, 1)
    return x, labels


def test_vae_loss_falls():
    x, _ = clustered()
    fit = bl.train_vae(x, hidden=(12, 10), latent=4, rng=np.random.default_rng(0), n_steps=300,
                       batch_size=32, lr=1e-3)
    first, last = np.mean(fit.losses[:20]), np.mean(fit.losses[-20:])
    assert last < first - 0.1 * abs(first)
    f = fit.transform(x)
    assert f.shape == (x.shape[0], 4) and np.isfinite(f).all()


def test_vae_loss_is_the_negative_elbo_at_zero_noise():
    # With eps = 0, z = mu: the loss is the Gaussian NLL of x under the decoder plus the KL term.
    rng = np.random.default_rng(1)
    x = rng.random((8, 5))
    params = bl.vae_init(rng, 5, (6,), 2)
    enc, (We, be), dec, (Wd, bd) = params
    stats = np.asarray(bl._mlp(enc, x)) @ We + be
    mu, log_sd = stats[:, :2], np.clip(stats[:, 2:], -6, 3)
    out = np.asarray(bl._mlp(dec, mu)) @ Wd + bd
    x_mu, x_log_sd = out[:, :5], np.clip(out[:, 5:], -5, 2)
    var = np.exp(2 * x_log_sd)
    nll = np.sum(0.5 * np.log(2 * np.pi * var) + (x - x_mu) ** 2 / (2 * var), axis=1)
    kl = np.sum(0.5 * (mu ** 2 + np.exp(2 * log_sd) - 1) - log_sd, axis=1)
    got = float(bl.vae_loss(params, (x, np.zeros((8, 2)))))
    assert got == pytest.approx(float(np.mean(nll + kl)), rel=1e-10)


def test_supervised_fits_its_labeled_set():
    x, labels = clustered(n_classes=4, per_class=10)
    fit = bl.train_supervised(x, labels, (15, 12, 8), 4, np.random.default_rng(2), n_steps=200)
    assert bl.supervised_accuracy(fit, x, labels) == 1.0
    assert fit.losses[-1] < 0.1 * fit.losses[0]
    assert fit.transform(x).shape == (40, 8)


def test_pca_features_are_the_top_components():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 6)) * np.array([5, 3, 1, 0.1, 0.1, 0.1])
    f = bl.pca_features(x, 2)(x)
    assert f.shape == (200, 2)
    np.testing.assert_allclose(np.var(f, axis=0), np.var(x[:, :2], axis=0), rtol=0.05)


def test_benchmark_pairs_every_method_with_phi0():
    x, labels = clustered(n_classes=3, per_class=40)
    ds = Dataset(ArraySource("clusters", {"train": x, "test": x}, {"train": labels, "test": labels},
                             class_names="abc"))
    config = preset("tiny")          # B=7, layer_sizes [15, 9, 14, 8]
    theta = init_theta(config, np.random.default_rng(0), np.float32)
    res = benchmark(theta, config, ds, seeds=(0, 1), k_shot=5, k_query=5, n_trials=2,
                    inner_steps=(0, 2), vae_steps=20, supervised_steps=20, pool_size=64, progress=False)
    rows = {r["method"]: r for r in res["summary"]}
    assert set(rows) == {"rule@0", "rule@2", "raw", "ink", "pca", "vae", "supervised"}
    assert rows["rule@0"]["delta"] == 0 and rows["rule@0"]["n"] == 2
    # paired: each method's delta is its own accuracy minus phi_0's on the same seed
    for r in res["per_seed"]:
        assert set(r["acc"]) == set(rows)
    raw = np.array([r["acc"]["raw"] - r["acc"]["rule@0"] for r in res["per_seed"]])
    assert rows["raw"]["delta"] == pytest.approx(raw.mean())
    assert rows["raw"]["acc"] > 0.9            # well-separated clusters: raw pixels solve it
    assert "| rule@2 |" in format_summary(res["summary"])


def test_format_summary_flags_collapsed_rule_rows():
    base = {"acc": 0.5, "acc_se": 0.01, "delta": 0.0, "delta_se": 0.0, "better": 0, "n": 3,
            "mean_abs_corr": 0.1, "zero_rows": 0.0, "diverged": 0}
    rows = [{**base, "method": "rule@0", "effective_rank": 14.0},
            {**base, "method": "rule@50", "effective_rank": 7.1},
            {**base, "method": "rule@200", "effective_rank": 6.9},
            {**base, "method": "ink", "effective_rank": 1.0}]
    text = format_summary(rows)
    flagged = [line.split("|")[1].strip() for line in text.splitlines() if "COLLAPSED" in line and line.startswith("|")]
    assert flagged == ["rule@200"] and "Warning: rule@200" in text
