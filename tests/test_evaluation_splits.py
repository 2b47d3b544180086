"""Where every draw of the benchmark comes from, and how many updates rule@s has seen.

The dataset here has distinct train and test arrays whose rows are all
different, and every row is identified by the multiset of its values (the
benchmark permutes the input columns of each task, which keeps that
multiset), so every array the benchmark hands to a baseline, a feature
transform, the readout or the rule can be traced back to its split and its
example ids. The benchmark runs unchanged: the spies wrap the real functions
and only record what they were given.
"""
from __future__ import annotations

import numpy as np
import pytest

import refimpl.evaluation.baselines as bl
import refimpl.evaluation.benchmark as bm
import refimpl.rule.update_step as rule_update
from refimpl.config import preset
from refimpl.data.base import SPLITS, ArraySource, Dataset
from refimpl.params import init_theta

TINY = preset("tiny")            # B=7, layer_sizes [15, 9, 14, 8]
N_CLASSES = 3
PER_CLASS = {"train": 20, "test": 9}
K_SHOT, K_QUERY, N_TRIALS = 3, 4, 2
STEPS = (0, 1, 3)
POOL = 24


class TracedData:
    """A 3-class dataset with distinct train and test rows, and the map from any row back to its origin.

    Values are multiples of 1/1024 in (0, 1), exact in float32 and float64, so a
    row's sorted values are a key that survives the dtype and a column permutation.
    """

    def __init__(self, seed=0, n_features=TINY.layer_sizes[0]):
        rng = np.random.default_rng(seed)
        x, labels, self.key = {}, {}, {}
        for split in SPLITS:
            labels[split] = rng.permutation(np.repeat(np.arange(N_CLASSES), PER_CLASS[split]))
            x[split] = rng.integers(1, 1024, size=(labels[split].size, n_features)) / 1024
            for i, row in enumerate(x[split]):
                self.key[tuple(np.sort(row))] = (split, i)
        assert len(self.key) == sum(len(v) for v in labels.values()), "rows must be distinct"
        self.labels = labels
        self.dataset = Dataset(ArraySource("traced", x, labels, class_names=("a", "b", "c")))

    def origin(self, x) -> list[tuple[str, int]]:
        """(split, example id) of every row of ``x`` (any dtype, any column order)."""
        x = np.asarray(x, dtype=np.float64)
        assert x.ndim == 2, x.shape
        return [self.key[tuple(np.sort(row))] for row in x]

    def label(self, split, i) -> int:
        return int(self.labels[split][i])


class Spy:
    """Wraps the benchmark's baselines, feature transforms, readout and rule; records what each saw."""

    def __init__(self, data: TracedData, monkeypatch, theta):
        self.data, self.theta = data, theta
        self.outputs = []          # (features returned by a transform, method, origins of its input)
        self.readouts = []         # (method, support origins, support labels, query origins, query labels)
        self.pools = []            # (baseline, origins of the unlabeled pool)
        self.supervised = []       # (origins of the labeled set, labels it was given)
        self.updates = []          # origins of each unlabeled batch the rule was applied to
        self.rule_readouts = []    # number of updates behind each phi that was read out
        self._updates_behind = {}  # id(phi) -> (phi, updates of the rule that made it)
        self._watch(monkeypatch)

    def _transform(self, method, transform):
        def recorded(x):
            out = transform(x)
            self.outputs.append((out, method, self.data.origin(x)))
            return out
        return recorded

    def _is_inputs(self, v) -> bool:
        return isinstance(v, np.ndarray) and v.ndim == 2 and v.shape[1] == self.data.dataset.n_features

    def _made_by(self, f):
        for out, method, origins in reversed(self.outputs):
            if out is f:
                return method, origins
        raise AssertionError("the readout got features that no recorded transform returned")

    def _watch(self, mp):
        real = {name: getattr(bl, name) for name in
                ("init_features", "raw_features", "ink_features_fn", "pca_features", "train_vae",
                 "train_supervised")}
        real_readout, real_update, real_init_phi = bm.readout_accuracy, rule_update.update_step, bm.init_phi

        def init_phi(config, rng, dtype=np.float32):
            phi = real_init_phi(config, rng, dtype)
            self._updates_behind[id(phi)] = (phi, 0)
            return phi

        def update_step(theta, phi, x, config):
            out = real_update(theta, phi, x, config)
            behind = self._updates_behind.get(id(phi))
            if behind is not None and behind[0] is phi and \
                    all(np.array_equal(theta[k], self.theta[k]) for k in self.theta):
                self._updates_behind[id(out)] = (out, behind[1] + 1)
                self.updates.append(self.data.origin(x))
            return out

        def init_features(phi, config):
            behind = self._updates_behind.get(id(phi))
            if behind is not None and behind[0] is phi:
                self.rule_readouts.append(behind[1])
                name = f"rule after {behind[1]} updates"
            else:                  # e.g. a control row with another theta: its own name per checkpoint
                name = f"phi of another rule, read out #{len(self.outputs)}"
            return self._transform(name, real["init_features"](phi, config))

        def pca_features(x_train, n_components, seed=0):
            self.pools.append(("pca", self.data.origin(x_train)))
            return self._transform("pca", real["pca_features"](x_train, n_components, seed=seed))

        def train_vae(x_train, *args, **kwargs):
            # the fitting pool, and any other set of inputs it is given (e.g. a validation part)
            seen = self.data.origin(x_train) + [o for v in kwargs.values() if self._is_inputs(v)
                                                for o in self.data.origin(v)]
            self.pools.append(("vae", seen))
            fit = real["train_vae"](x_train, *args, **kwargs)
            return fit._replace(transform=self._transform("vae", fit.transform))

        def train_supervised(x_labeled, labels, *args, **kwargs):
            self.supervised.append((self.data.origin(x_labeled), [int(v) for v in labels]))
            fit = real["train_supervised"](x_labeled, labels, *args, **kwargs)
            return fit._replace(transform=self._transform("supervised", fit.transform))

        def readout_accuracy(f_support, y_support, f_query, y_query, n_classes, ridge):
            method, s_origin = self._made_by(f_support)
            method_q, q_origin = self._made_by(f_query)
            assert method_q == method
            self.readouts.append((method, s_origin, np.argmax(y_support[:, :n_classes], axis=1).tolist(),
                                  q_origin, np.argmax(y_query[:, :n_classes], axis=1).tolist()))
            return real_readout(f_support, y_support, f_query, y_query, n_classes, ridge)

        mp.setattr(bm, "init_phi", init_phi)
        mp.setattr(rule_update, "update_step", update_step)
        mp.setattr(bm, "readout_accuracy", readout_accuracy)
        mp.setattr(bl, "init_features", init_features)
        mp.setattr(bl, "raw_features", lambda: self._transform("raw", real["raw_features"]()))
        mp.setattr(bl, "ink_features_fn", lambda: self._transform("ink", real["ink_features_fn"]()))
        mp.setattr(bl, "pca_features", pca_features)
        mp.setattr(bl, "train_vae", train_vae)
        mp.setattr(bl, "train_supervised", train_supervised)


@pytest.fixture(scope="module")
def theta():
    return init_theta(TINY, np.random.default_rng(0), np.float32)


def _run(monkeypatch, theta, seed, n_way=None, data=None):
    data = data or TracedData()
    spy = Spy(data, monkeypatch, theta)
    res = bm.benchmark(theta, TINY, data.dataset, seeds=[seed], k_shot=K_SHOT, k_query=K_QUERY,
                       n_trials=N_TRIALS, inner_steps=STEPS, n_way=n_way, vae_steps=2, supervised_steps=2,
                       pool_size=POOL, progress=False)
    return data, spy, res


@pytest.fixture(params=[(0, None), (1, 2)], ids=["seed0-all-classes", "seed1-2-way"])
def traced_run(request, monkeypatch, theta):
    return _run(monkeypatch, theta, *request.param) + (request.param[1],)


def test_every_method_was_read_out_and_recorded(traced_run):
    data, spy, res, n_way = traced_run
    methods = {m for m, *_ in spy.readouts}
    assert methods >= {f"rule after {s} updates" for s in STEPS} | {"raw", "ink", "pca", "vae", "supervised"}
    assert set(res["per_seed"][0]["acc"]) >= {f"rule@{s}" for s in STEPS} | {"raw", "ink", "pca", "vae",
                                                                           "supervised"}


def test_pca_and_vae_pools_come_only_from_the_unlabeled_train_split(traced_run):
    data, spy, res, n_way = traced_run
    assert sorted(name for name, _ in spy.pools) == ["pca", "vae"]
    for name, origins in spy.pools:
        assert len(origins) >= min(POOL, PER_CLASS["train"]), name
        assert {split for split, _ in origins} == {"train"}, name


def test_the_rule_runs_on_train_split_batches(traced_run):
    data, spy, res, n_way = traced_run
    assert len(spy.updates) == max(STEPS)
    for batch in spy.updates:
        assert len(batch) == TINY.batch_size
        assert {split for split, _ in batch} == {"train"}


def test_support_and_query_are_disjoint_test_split_sets_with_their_true_labels(traced_run):
    data, spy, res, n_way = traced_run
    n_cls = n_way or N_CLASSES
    to_source = {}
    for method, support, ys, query, yq in spy.readouts:
        assert {split for split, _ in support + query} == {"test"}, method
        assert not set(support) & set(query), method
        assert len(set(support)) == n_cls * K_SHOT and len(set(query)) == n_cls * K_QUERY, method
        for label in range(n_cls):
            assert ys.count(label) == K_SHOT and yq.count(label) == K_QUERY, method
        for (split, i), label in zip(support + query, ys + yq):
            to_source.setdefault(label, set()).add(data.label(split, i))
    # each task label is one source class, different labels different classes
    assert all(len(c) == 1 for c in to_source.values())
    sources = [next(iter(to_source[label])) for label in range(n_cls)]
    assert len(set(sources)) == n_cls
    if n_way is None:
        assert sources == list(range(N_CLASSES))


def test_every_method_of_a_seed_is_scored_on_the_same_trials(traced_run):
    data, spy, res, n_way = traced_run
    trials = {}
    for method, support, ys, query, yq in spy.readouts:
        trials.setdefault(method, []).append((tuple(support), tuple(ys), tuple(query), tuple(yq)))
    reference = trials["rule after 0 updates"]
    assert len(reference) == N_TRIALS and len(set(reference)) == N_TRIALS     # distinct draws
    for method, seen in trials.items():
        assert seen == reference, method


def test_the_supervised_baseline_sees_exactly_each_trials_support_labels(traced_run):
    data, spy, res, n_way = traced_run
    support_sets = [(support, ys) for method, support, ys, _, _ in spy.readouts if method == "supervised"]
    assert len(spy.supervised) == N_TRIALS == len(support_sets)
    for (seen, labels), (support, ys) in zip(spy.supervised, support_sets):
        assert seen == support            # the support rows, no query row
        assert labels == ys               # their labels, in the readout's label order


def test_rule_at_s_is_phi_after_exactly_s_updates(traced_run):
    data, spy, res, n_way = traced_run
    # one readout of the features per checkpoint, in order, each of phi_0 after exactly s rule updates
    assert spy.rule_readouts == list(STEPS)
    per_method = {}
    for method, *_ in spy.readouts:
        per_method[method] = per_method.get(method, 0) + 1
    assert all(per_method[f"rule after {s} updates"] == N_TRIALS for s in STEPS)


def test_a_seed_reproduces_its_draws_and_other_seeds_differ(monkeypatch, theta):
    data = TracedData()
    _, a, _ = _run(monkeypatch, theta, 0, data=data)
    monkeypatch.undo()
    _, b, _ = _run(monkeypatch, theta, 0, data=data)
    monkeypatch.undo()
    _, c, _ = _run(monkeypatch, theta, 1, data=data)
    strip = [(m, s, q) for m, s, _, q, _ in a.readouts]
    assert strip == [(m, s, q) for m, s, _, q, _ in b.readouts]
    assert strip != [(m, s, q) for m, s, _, q, _ in c.readouts]
