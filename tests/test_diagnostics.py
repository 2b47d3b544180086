"""Feature diagnostics (refimpl/evaluation/diagnostics.py) on matrices whose answers are known."""
from __future__ import annotations

import numpy as np
import pytest

from refimpl.base_model.mlp import base_forward
from refimpl.config import Config
from refimpl.evaluation import diagnostics as dg
from refimpl.params import init_phi


def matrix_with_singular_values(s, n=200, seed=0):
    """Column-centred [n, len(s)] matrix with exactly the singular values s."""
    rng = np.random.default_rng(seed)
    k = len(s)
    U, _ = np.linalg.qr(rng.standard_normal((n, k)))
    U -= U.mean(axis=0)                     # centred columns ...
    U, _ = np.linalg.qr(U)                  # ... still orthonormal (the span excludes the ones vector)
    V, _ = np.linalg.qr(rng.standard_normal((k, k)))
    return U @ np.diag(s) @ V.T + 3.0      # a constant shift: removed by the centring


@pytest.mark.parametrize("k", [1, 2, 5, 16])
def test_effective_rank_of_k_equal_singular_values_is_k(k):
    s = np.zeros(16)
    s[:k] = 2.5
    assert dg.effective_rank(matrix_with_singular_values(s)) == pytest.approx(k, rel=1e-6)


def test_effective_rank_matches_the_entropy_formula():
    s = np.array([4.0, 2.0, 1.0, 0.5, 0.0])
    p = s[:4] / s[:4].sum()
    expected = np.exp(-np.sum(p * np.log(p)))
    got = dg.effective_rank(matrix_with_singular_values(s))
    assert got == pytest.approx(expected, rel=1e-6)
    # sensitive: a 1% change of one singular value moves it past the tolerance
    s2 = s.copy()
    s2[1] *= 1.01
    assert abs(dg.effective_rank(matrix_with_singular_values(s2)) - expected) > 1e-4


def test_effective_rank_of_copies_of_one_feature_is_one_and_constant_is_zero():
    rng = np.random.default_rng(1)
    g = rng.standard_normal((100, 1))
    F = g * rng.uniform(0.5, 2, size=(1, 8)) + rng.standard_normal((1, 8))
    assert dg.effective_rank(F) == pytest.approx(1.0, abs=1e-6)
    assert dg.effective_rank(np.ones((10, 4))) == 0.0


def test_mean_abs_correlation():
    rng = np.random.default_rng(2)
    g = rng.standard_normal(500)
    F = np.stack([g, -2 * g + 1, 3 * g], axis=1)
    assert dg.mean_abs_correlation(F) == pytest.approx(1.0)
    # two independent blocks of 2 perfectly correlated columns: 2 of 6 pairs at 1, rest ~0
    h = rng.standard_normal(500)
    F = np.stack([g, g, h, h], axis=1)
    expected = (2 * 1.0 + 4 * abs(np.corrcoef(g, h)[0, 1])) / 6
    assert dg.mean_abs_correlation(F) == pytest.approx(expected)
    # a constant column is ignored; fewer than two live columns: NaN
    assert dg.mean_abs_correlation(np.stack([g, -g, np.zeros(500)], axis=1)) == pytest.approx(1.0)
    assert np.isnan(dg.mean_abs_correlation(np.stack([g, np.zeros(500)], axis=1)))


def test_zero_rows_and_dead_units():
    F = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    assert dg.zero_row_fraction(F) == 0.5
    assert dg.dead_unit_fraction(F) == pytest.approx(1 / 3)
    d = dg.feature_diagnostics(F)
    assert set(d) == {"effective_rank", "mean_abs_corr", "zero_rows", "dead_units", "n_units"}
    with pytest.raises(ValueError, match="NaN"):
        dg.feature_diagnostics(np.array([[np.nan, 1.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="2-D"):
        dg.effective_rank(np.ones(5))


def test_ink_features_is_the_mean_input():
    x = np.arange(12.0).reshape(3, 4)
    np.testing.assert_array_equal(dg.ink_features(x), [[1.5], [5.5], [9.5]])


def test_collapsed_phi_features_are_functions_of_ink_only():
    config = Config(layer_sizes=(30, 12, 10, 8))
    rng = np.random.default_rng(3)
    phi = dg.collapsed_phi(config, rng)
    x = rng.random((64, 30))
    F = base_forward(phi, x, config)[0][-1]
    # the same ink with the pixels rearranged (per row): identical features
    x_shuffled = np.stack([rng.permutation(row) for row in x])
    F2 = base_forward(phi, x_shuffled, config)[0][-1]
    np.testing.assert_allclose(F, F2, atol=1e-10)
    assert dg.effective_rank(F) < 3.0
    F0 = base_forward(init_phi(config, rng), x, config)[0][-1]
    assert dg.effective_rank(F0) > 5.0


def test_readout_objective_is_the_spec_formula():
    rng = np.random.default_rng(4)
    n_cls = 3
    F_a, F_b = rng.standard_normal((30, 5)), rng.standard_normal((30, 5))
    lab = np.repeat(np.arange(n_cls), 10)
    y = np.concatenate([np.eye(n_cls)[lab], rng.uniform(-1, 1, (30, 1))], axis=1)

    def centre(Y):
        Yc = Y - Y.mean()
        return Yc / np.sqrt(np.sum(Yc ** 2) / Y.shape[0])
    A = np.hstack([F_a, np.ones((30, 1))])
    C = np.linalg.solve(A.T @ A + 0.1 * np.eye(6), A.T @ centre(y))
    P = np.hstack([F_b, np.ones((30, 1))]) @ C
    Ph = P / np.sqrt(np.sum(P ** 2, axis=1, keepdims=True) + 1e-12)
    expected = np.sum((Ph - centre(y)) ** 2) / 30
    J, acc = dg.readout_objective(F_a, y, F_b, y, n_cls, 0.1)
    assert J == pytest.approx(expected, rel=1e-10)
    assert acc == np.mean(np.argmax(P[:, :n_cls], axis=1) == lab)
    assert abs(dg.readout_objective(F_a, y, F_b, y, n_cls, 0.2)[0] - expected) > 1e-6


def test_objective_comparison_ranks_separable_features():
    # two classes that differ in their mean input only: the ink feature separates them
    from refimpl.data.base import ArraySource, Dataset
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(2), 30)
    x = np.clip(0.3 + 0.4 * labels[:, None] + 0.05 * rng.standard_normal((60, 20)), 0, 1)
    ds = Dataset(ArraySource("ink", {"train": x, "test": x}, {"train": labels, "test": labels},
                             class_names="ab"))
    r = dg.objective_comparison(ds, (20, 16, 8), 2, 10, n_tasks=4, ridge=0.1)
    assert set(r) == {"phi_0", "collapsed", "ink"}
    assert r["ink"]["acc"] > 0.9 and r["collapsed"]["effective_rank"] < r["phi_0"]["effective_rank"]
    assert len(r["ink"]["J_per_task"]) == 4
