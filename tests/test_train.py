"""The meta-trainer's pieces (SPEC 7): presets, schedules, clipping, Adam, tasks, drops, checkpoints, plot."""
import argparse
import json
import math

import numpy as np
import pytest

from refimpl.cli.plot import add_plot_parser
from refimpl.cli.train import add_train_parser
from refimpl.config import preset
from refimpl.meta.unroll import NonFiniteError
from refimpl.params import load_params
from refimpl.train import (
    CHECKPOINT_FILE,
    LOG_FILE,
    THETA_FILE,
    RunDirError,
    TrainConfig,
    adam_init,
    adam_step,
    budget_scale,
    clip_by_global_norm,
    global_norm,
    init_state,
    learning_rate,
    load_checkpoint,
    meta_step,
    read_log,
    run,
    sample_budget,
    save_checkpoint,
    train_preset,
    unroll_range,
)
from refimpl.train.optim import budget_from_normal, mean_grads, round_half_up
from refimpl.train.plot import plot_run, smooth
from refimpl.train.tasks import dataset, draw_unroll, rng_from_state, sample_task
from tests.helpers import stub_meta_gradient

TINY = train_preset("tiny")


def nan_on(slots_steps, how="loss"):
    """A stub that misbehaves for the given (slot serial, step) pairs, identified by call order."""
    calls = []

    def fn(theta, phi, batches, config, *, n_cls):
        res = stub_meta_gradient(theta, phi, batches, config, n_cls=n_cls)
        calls.append(len(calls))
        if len(calls) - 1 in slots_steps:
            if how == "loss":
                return res._replace(loss=float("nan"))
            if how == "dtheta":
                d = dict(res.dtheta)
                d["merge/w"] = d["merge/w"].copy()
                d["merge/w"][3] = np.inf
                return res._replace(dtheta=d)
            if how == "phi":
                p = dict(res.phi_final)
                p["layer1/W"] = np.full_like(p["layer1/W"], np.nan)
                return res._replace(phi_final=p)
            raise NonFiniteError("stub: phi after update step 1 contains NaN or Inf", 0)
        return res
    return fn


# -------------------------------------------------------------------------------------
# presets
# -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tiny", "mid", "small", "paper"])
def test_presets_round_trip_through_json(name):
    tc = train_preset(name)
    back = TrainConfig.from_json(tc.to_json())
    assert back == tc and back.diff(tc) == []
    assert json.loads(tc.to_json())["model"]["batch_size"] == tc.model.batch_size


def test_preset_values():
    assert TINY.model == preset("tiny") and TINY.dtype == "float32"
    paper = train_preset("paper")
    assert paper.model == preset("paper")
    assert (paper.unroll_start, paper.unroll_end, paper.unroll_ramp_steps) == ((2, 4), (8, 15), 50_000)
    assert (paper.budget_scale_start, paper.budget_scale_end, paper.budget_ramp_steps) == (20.0, 20_000.0, 5_000)
    assert paper.lr == (3e-4, 1e-4, 2e-5) and paper.lr_boundaries == (100_000, 150_000)
    assert (paper.adam_beta1, paper.adam_beta2, paper.adam_eps, paper.clip_norm) == (0.9, 0.999, 1e-8, 5.0)
    assert paper.width == (64, 512) and paper.top_width == 32
    small = train_preset("small")
    assert 32 <= small.model.batch_size <= 64 and "digits" not in small.datasets


@pytest.mark.parametrize("change, message", [
    ({"n_way": (1, 3)}, "n_way"), ({"n_way": (5, 3)}, "n_way"), ({"datasets": ("nope",)}, "unknown dataset"),
    ({"datasets": ()}, "datasets"), ({"lr": (1e-3, 1e-4)}, "lr"), ({"lr_boundaries": (10, 5)}, "lr_boundaries"),
    ({"dtype": "float16"}, "dtype"), ({"k_shot": 0}, "k_shot"), ({"adam_beta2": 1.0}, "adam_beta2"),
    ({"tasks_per_step": True}, "tasks_per_step"), ({"clip_norm": -1.0}, "clip_norm"),
])
def test_bad_train_config_is_a_clear_error(change, message):
    with pytest.raises(ValueError, match=message):
        TINY.replace(**change)


def test_from_dict_rejects_unknown_and_missing_fields():
    d = TINY.to_dict()
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({**d, "extra": 1})
    del d["k_shot"]
    with pytest.raises(ValueError, match="missing field"):
        TrainConfig.from_dict(d)


# -------------------------------------------------------------------------------------
# schedules
# -------------------------------------------------------------------------------------
def test_round_half_up():
    assert [round_half_up(v) for v in (2.5, 3.5, 2.4999, -0.5, 9.5)] == [3, 4, 2, 0, 10]


def test_unroll_range_paper_schedule():
    tc = train_preset("paper")   # (2, 4) -> (8, 15) over 50k
    assert unroll_range(tc, 0) == (2, 4)
    assert unroll_range(tc, 50_000) == (8, 15)
    assert unroll_range(tc, 10 ** 6) == (8, 15)
    assert unroll_range(tc, 25_000) == (5, 10)         # (5, 9.5): the half rounds up
    assert unroll_range(tc, 12_500) == (4, 7)          # (3.5, 6.75)
    assert unroll_range(tc, 1_000) == (2, 4)           # (2.12, 4.22)
    assert unroll_range(tc, 4_167) == (3, 5)           # (2.5002, 4.9167)


def test_unroll_range_without_ramp_is_the_end():
    tc = TINY.replace(unroll_ramp_steps=0)
    assert unroll_range(tc, 0) == TINY.unroll_end


def test_budget_scale_and_budget():
    tc = train_preset("paper")   # s: 20 -> 20000 over 5000
    assert budget_scale(tc, 0) == 20.0
    assert budget_scale(tc, 2_500) == pytest.approx(10_010.0)
    assert budget_scale(tc, 5_000) == 20_000.0 and budget_scale(tc, 9_999) == 20_000.0
    assert budget_from_normal(20.0, 0.0) == 20
    assert budget_from_normal(20.0, 0.025) == 21       # 20.5 rounds up
    assert budget_from_normal(20.0, 1.0) == 40
    assert budget_from_normal(20.0, -0.99) == 1        # 0.2 -> 0 -> at least 1
    assert budget_from_normal(20.0, -3.0) == 1


def test_sample_budget_is_a_shifted_normal_of_scale_s():
    tc = train_preset("paper")
    rng = np.random.default_rng(5)
    b = np.array([sample_budget(tc, 5_000, rng) for _ in range(4000)])   # s = 20000
    # mean s and standard deviation s (the clipping at 1 touches only ~16% of the mass).
    positive = b[b > 1]
    assert abs(np.mean(b > 1) - 0.8413) < 0.03
    assert b.min() >= 1 and np.all(b == np.round(b))
    from scipy.stats import norm
    q = norm.ppf(1 - norm.cdf(1.0) / 2)                  # median of n given n > -1
    assert abs(np.median(positive) - 20_000 * (1 + q)) < 0.05 * 20_000


def test_learning_rate_pieces():
    tc = TINY.replace(lr=(3e-4, 1e-4, 2e-5), lr_boundaries=(10, 15))
    assert [learning_rate(tc, k) for k in (0, 9, 10, 14, 15, 1000)] == [3e-4, 3e-4, 1e-4, 1e-4, 2e-5, 2e-5]


# -------------------------------------------------------------------------------------
# clipping, averaging, Adam
# -------------------------------------------------------------------------------------
def test_clip_by_global_norm():
    g = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0], [4.0]])}         # norm 5
    assert global_norm(g) == 5.0
    big = {k: 2 * v for k, v in g.items()}                                  # norm 10
    clipped, norm = clip_by_global_norm(big, 5.0)
    assert norm == 10.0
    np.testing.assert_array_equal(clipped["a"], [3.0, 0.0])
    np.testing.assert_array_equal(clipped["b"], [[0.0], [4.0]])
    small = {k: 0.5 * v for k, v in g.items()}
    clipped, norm = clip_by_global_norm(small, 5.0)
    assert norm == 2.5 and np.array_equal(clipped["a"], [1.5, 0.0])
    with pytest.raises(ValueError, match="global norm"):
        clip_by_global_norm({"a": np.array([np.nan])}, 5.0)


def test_mean_grads():
    out = mean_grads([{"a": np.array([1.0, 2.0], np.float32)}, {"a": np.array([3.0, 5.0], np.float32)}])
    assert out["a"].dtype == np.float64 and np.array_equal(out["a"], [2.0, 3.5])
    with pytest.raises(ValueError, match="no gradients"):
        mean_grads([])


def test_adam_two_steps_by_hand():
    theta = {"w": np.array([1.0, -2.0]), "b": np.array([0.5])}
    g1 = {"w": np.array([0.2, -0.4]), "b": np.array([0.0])}
    g2 = {"w": np.array([-0.1, 0.3]), "b": np.array([1.0])}
    lr, eps = 0.01, 1e-8
    state = adam_init(theta)
    t1, s1 = adam_step(theta, g1, state, lr)
    t2, s2 = adam_step(t1, g2, s1, lr)
    # Step 1: m = 0.1 g, v = 0.001 g^2, m_hat = g, v_hat = g^2, step = lr g / (|g| + eps).
    np.testing.assert_allclose(t1["w"], [1.0 - 0.01 * 0.2 / (0.2 + eps), -2.0 + 0.01 * 0.4 / (0.4 + eps)],
                               rtol=0, atol=1e-15)
    assert t1["b"][0] == 0.5                       # zero gradient: no move
    # Step 2 for w[0]: m = 0.9*0.02 + 0.1*(-0.1) = 0.008; v = 0.999*4e-5 + 0.001*0.01 = 4.996e-5.
    m, v = 0.008, 4.996e-5
    m_hat, v_hat = m / (1 - 0.81), v / (1 - 0.998001)
    assert s2.t == 2 and s2.m["w"][0] == pytest.approx(m, abs=1e-17) and s2.v["w"][0] == pytest.approx(v, abs=1e-19)
    assert t2["w"][0] == pytest.approx(t1["w"][0] - lr * m_hat / (math.sqrt(v_hat) + eps), abs=1e-15)
    # b: m = 0.1, v = 0.001, bias-corrected 0.1/0.19 and 0.001/0.001999.
    assert t2["b"][0] == pytest.approx(0.5 - lr * (0.1 / 0.19) / (math.sqrt(0.001 / 0.001999) + eps), abs=1e-15)
    # Inputs untouched.
    assert theta["w"][0] == 1.0 and state.t == 0 and not state.m["w"].any()


def test_adam_keeps_float32_theta_float32():
    theta = {"w": np.ones(3, np.float32)}
    t1, s1 = adam_step(theta, {"w": np.ones(3)}, adam_init(theta), 1e-3)
    assert t1["w"].dtype == np.float32 and s1.m["w"].dtype == np.float64
    np.testing.assert_allclose(t1["w"], 1 - 1e-3, rtol=1e-6)


# -------------------------------------------------------------------------------------
# tasks
# -------------------------------------------------------------------------------------
def test_sample_task_respects_the_ranges():
    tc = train_preset("small")
    rng = np.random.default_rng(0)
    glyphs = dataset("glyphs")
    depths, widths = set(), []
    for _ in range(40):
        task, phi = sample_task(tc, 0, rng)
        sizes = task.layer_sizes
        assert sizes[0] == glyphs.n_features and sizes[-1] == tc.top_width
        depths.add(len(sizes) - 2)
        widths += list(sizes[1:-1])
        assert tc.n_way[0] <= task.n_way <= tc.n_way[1] and len(set(task.classes)) == task.n_way
        assert sorted(task.perm.tolist()) == list(range(glyphs.n_features))
        assert task.budget >= 1
        assert set(phi) == {f"layer{l}/{p}" for l in range(1, len(sizes)) for p in "WVb"}
        assert phi["layer1/W"].shape == (sizes[0], sizes[1]) and phi["layer1/W"].dtype == np.float32
    assert depths == set(range(tc.depth[0], tc.depth[1] + 1))
    assert min(widths) >= tc.width[0] and max(widths) <= tc.width[1]
    # Log-uniform: the median width is near the geometric mean of the range.
    assert abs(np.log(np.median(widths)) - 0.5 * np.log(tc.width[0] * tc.width[1])) < 0.3


def test_task_is_a_function_of_the_generator_state():
    rng = np.random.default_rng(3)
    state = rng.bit_generator.state
    a, pa = sample_task(TINY, 0, rng)
    b, pb = sample_task(TINY, 0, rng_from_state(state))
    assert a.to_json_dict() == b.to_json_dict() and np.array_equal(a.perm, b.perm)
    assert all(np.array_equal(pa[k], pb[k]) for k in pa)


def test_draw_unroll_shapes_and_labels():
    task, _ = sample_task(TINY, 0, np.random.default_rng(1))
    x, x_a, x_b, y_a, y_b = draw_unroll(TINY, task, 3, np.random.default_rng(2))
    n_label, E, n_reg = task.n_way * TINY.k_shot, TINY.model.n_eval, dataset("glyphs").n_reg
    assert x.shape == (3, TINY.model.batch_size, 196) and x.dtype == np.float32
    assert x_a.shape == x_b.shape == (3, E, n_label, 196)
    assert y_a.shape == y_b.shape == (3, E, n_label, task.n_way + n_reg)
    assert np.array_equal(y_a[..., :task.n_way].sum(-1), np.ones((3, E, n_label)))
    assert 0 <= x.min() and x.max() <= 1
    # The permutation is applied: unpermuting gives the dataset's own pixel order.
    view = dataset("glyphs").subset(list(task.classes))
    xr, _ = view.labeled_batch(np.random.default_rng(9), 2, dtype=np.float32)
    xp, _ = view.permuted(task.perm).labeled_batch(np.random.default_rng(9), 2, dtype=np.float32)
    assert np.array_equal(xp, xr[:, task.perm])


def test_rng_from_state_rejects_unknown_bit_generators():
    with pytest.raises(ValueError, match="bit generator"):
        rng_from_state({"bit_generator": "Nope", "state": {}})


# -------------------------------------------------------------------------------------
# meta-steps: budget, resets, drops
# -------------------------------------------------------------------------------------
def test_meta_step_carries_phi_and_resets_spent_tasks():
    tc = TINY.replace(budget_scale_start=3.0, budget_scale_end=3.0, unroll_start=(1, 2), unroll_end=(1, 2))
    state = init_state(tc)
    seen_reset = False
    for _ in range(12):
        new, rec = meta_step(state, tc, stub_meta_gradient)
        assert new.step == state.step + 1 and rec["step"] == new.step
        for i, (old, cur) in enumerate(zip(state.tasks, new.tasks)):
            U = rec["U"][i]
            assert 1 <= U <= min(2, old.remaining)         # U is capped at the remaining budget
            if old.steps_done + U >= old.task.budget:       # spent: a new task, from scratch
                seen_reset = True
                assert i in rec["resets"] and cur.serial == old.serial + 1 and cur.steps_done == 0
                assert cur.task.budget >= 1
            else:                                           # carried: phi_final of the stub
                assert i not in rec["resets"] and cur.serial == old.serial
                assert cur.steps_done == old.steps_done + U
                assert cur.task is old.task
                expect = stub_meta_gradient(state.theta, old.phi, _batches_of(tc, old, U),
                                            old.task.config(tc.model), n_cls=old.task.n_way).phi_final
                assert all(np.array_equal(cur.phi[k], expect[k]) for k in expect)
        state = new
    assert seen_reset and state.counters["tasks_drawn"] > tc.tasks_per_step


def _batches_of(tc, ts, U):
    from refimpl.meta.unroll import UnrollBatches
    rng = rng_from_state(ts.rng_state)
    rng.integers(1, 3)                                       # the U draw comes first
    return UnrollBatches(*draw_unroll(tc, ts.task, U, rng))


def _expected_theta(state, tc, grads, k=0):
    clipped, _ = clip_by_global_norm(mean_grads(grads), tc.clip_norm)
    theta, _ = adam_step(state.theta, clipped, state.adam, learning_rate(tc, k))
    return theta


@pytest.mark.parametrize("how", ["loss", "dtheta", "phi", "raise"])
def test_non_finite_task_is_dropped_reset_and_counted(how):
    tc = TINY.replace(tasks_per_step=3)
    state = init_state(tc)
    new, rec = meta_step(state, tc, nan_on({1}, how))          # slot 1 misbehaves
    assert rec["dropped"] == 1 and rec["dropped_total"] == 1 and new.counters["dropped_total"] == 1
    assert rec["drop_events"][0]["slot"] == 1 and rec["J_tasks"][1] is None
    assert 1 in rec["resets"] and new.tasks[1].serial == 2 and new.tasks[1].steps_done == 0
    assert new.counters["tasks_drawn"] == tc.tasks_per_step + len(rec["resets"])     # a new task per reset
    # theta moved by the average of the *other two* gradients (the stub is deterministic).
    good = [stub_meta_gradient(state.theta, state.tasks[i].phi, _batches_of_step0(tc, state.tasks[i]),
                               state.tasks[i].task.config(tc.model), n_cls=state.tasks[i].task.n_way).dtheta
            for i in (0, 2)]
    expect = _expected_theta(state, tc, good)
    assert all(np.array_equal(new.theta[k], expect[k]) for k in expect)
    assert all(np.isfinite(v).all() for v in new.theta.values())
    assert rec["J"] == pytest.approx(np.mean([rec["J_tasks"][0], rec["J_tasks"][2]]))
    json.dumps(rec, allow_nan=False)                             # the log line is strict JSON


def _batches_of_step0(tc, ts):
    from refimpl.meta.unroll import UnrollBatches
    rng = rng_from_state(ts.rng_state)
    lo, hi = unroll_range(tc, 0)
    U = min(int(rng.integers(lo, hi + 1)), ts.remaining)
    return UnrollBatches(*draw_unroll(tc, ts.task, U, rng))


def test_every_task_dropped_leaves_theta_and_adam_alone():
    tc = TINY
    state = init_state(tc)
    new, rec = meta_step(state, tc, nan_on({0, 1}))
    assert rec["dropped"] == 2 and rec["grad_norm"] is None and rec["J"] is None
    assert new.counters["adam_skipped"] == 1 and new.adam.t == 0
    assert all(np.array_equal(new.theta[k], state.theta[k]) for k in state.theta)


def test_other_errors_are_not_swallowed():
    def broken(*a, **k):
        raise ValueError("a bug, not a NaN")
    with pytest.raises(ValueError, match="a bug"):
        meta_step(init_state(TINY), TINY, broken)


def test_meta_step_does_not_modify_its_input():
    state = init_state(TINY)
    copy = {k: v.copy() for k, v in state.theta.items()}
    rng_states = [t.rng_state for t in state.tasks]
    meta_step(state, TINY, stub_meta_gradient)
    assert all(np.array_equal(copy[k], state.theta[k]) for k in copy)
    assert [t.rng_state for t in state.tasks] == rng_states and state.step == 0


def test_real_meta_gradient_step_on_tiny():
    state = init_state(TINY)
    new, rec = meta_step(state, TINY)
    assert rec["dropped"] == 0 and np.isfinite(rec["J"]) and rec["grad_norm"] > 0
    assert 0 <= rec["accuracy"] <= 1
    changed = [k for k in state.theta if not np.array_equal(state.theta[k], new.theta[k])]
    assert len(changed) > len(state.theta) // 2
    assert all(v.dtype == np.float32 for v in new.theta.values())


# -------------------------------------------------------------------------------------
# checkpoints, run directory, theta file
# -------------------------------------------------------------------------------------
def _assert_states_equal(a, b):
    assert a.step == b.step and a.adam.t == b.adam.t and a.counters == b.counters
    assert a.trainer_rng == b.trainer_rng and a.elapsed == b.elapsed
    for k in a.theta:
        for x, y in ((a.theta, b.theta), (a.adam.m, b.adam.m), (a.adam.v, b.adam.v)):
            assert x[k].dtype == y[k].dtype and np.array_equal(x[k], y[k]), k
    assert len(a.tasks) == len(b.tasks)
    for s, t in zip(a.tasks, b.tasks):
        assert s.task.to_json_dict() == t.task.to_json_dict() and np.array_equal(s.task.perm, t.task.perm)
        assert (s.steps_done, s.serial, s.rng_state) == (t.steps_done, t.serial, t.rng_state)
        assert set(s.phi) == set(t.phi) and all(np.array_equal(s.phi[k], t.phi[k]) for k in s.phi)


def test_checkpoint_round_trip(tmp_path):
    state = init_state(TINY)
    for _ in range(3):
        state, _ = meta_step(state, TINY, stub_meta_gradient)
    save_checkpoint(tmp_path / "c.npz", state, TINY)
    back, tc = load_checkpoint(tmp_path / "c.npz")
    assert tc == TINY
    _assert_states_equal(state, back)
    # And the loaded state continues exactly like the original.
    s1, r1 = meta_step(state, TINY, stub_meta_gradient)
    s2, r2 = meta_step(back, TINY, stub_meta_gradient)
    _assert_states_equal(s1._replace(elapsed=0.0), s2._replace(elapsed=0.0))
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert "theta/merge/w" in z.files and "task1/perm" in z.files and "task0/phi/layer1/W" in z.files
        assert all(z[n].dtype != object for n in z.files)


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "c.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="checkpoint"):
        load_checkpoint(tmp_path / "c.npz")
    from refimpl.npzio import write_npz
    write_npz(tmp_path / "d.npz", {"x": np.zeros(2)})
    with pytest.raises(ValueError, match="not a meta-training checkpoint"):
        load_checkpoint(tmp_path / "d.npz")


def test_run_writes_log_checkpoint_and_theta_file(tmp_path):
    d = tmp_path / "run"
    assert run(d, TINY, n_steps=4, checkpoint_every=3, meta_gradient_fn=stub_meta_gradient) == 0
    log = read_log(d)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    for r in log:
        assert set(r) >= {"step", "J", "J_tasks", "accuracy", "U", "lr", "grad_norm", "dropped", "wall_time"}
    state, tc = load_checkpoint(d / CHECKPOINT_FILE)
    assert state.step == 4 and tc.n_steps == 4
    theta, config = load_params(d / THETA_FILE, kind="theta")
    assert config == TINY.model and all(np.array_equal(theta[k], state.theta[k]) for k in theta)
    assert TrainConfig.from_json((d / "train_config.json").read_text()).replace(n_steps=4) == tc


def test_run_dir_rules(tmp_path):
    d = tmp_path / "run"
    run(d, TINY, n_steps=1, meta_gradient_fn=stub_meta_gradient)
    with pytest.raises(RunDirError, match="already holds a run"):
        run(d, TINY, n_steps=2, meta_gradient_fn=stub_meta_gradient)
    with pytest.raises(RunDirError, match="other settings"):
        run(d, TINY.replace(seed=7), resume=True, n_steps=2, meta_gradient_fn=stub_meta_gradient)
    with pytest.raises(RunDirError, match="does not exist"):
        run(tmp_path / "empty", resume=True, meta_gradient_fn=stub_meta_gradient)
    # Resuming with the same preset (another n_steps) is allowed.
    assert run(d, TINY, resume=True, n_steps=2, meta_gradient_fn=stub_meta_gradient) == 0
    assert [r["step"] for r in read_log(d)] == [1, 2]


def test_keyboard_interrupt_writes_a_checkpoint_and_returns_130(tmp_path):
    d = tmp_path / "run"

    def interrupt(state, record):
        if state.step == 2:
            raise KeyboardInterrupt
    code = run(d, TINY, n_steps=10, checkpoint_every=100, meta_gradient_fn=stub_meta_gradient,
               on_step=interrupt)
    assert code == 130
    state, _ = load_checkpoint(d / CHECKPOINT_FILE)
    assert state.step == 2 and [r["step"] for r in read_log(d)] == [1, 2]


def test_log_is_truncated_to_the_checkpoint_on_resume(tmp_path):
    d = tmp_path / "run"
    run(d, TINY, n_steps=3, checkpoint_every=2, meta_gradient_fn=stub_meta_gradient)
    ckpt_at_3 = (d / CHECKPOINT_FILE).read_bytes()
    run(d, TINY, resume=True, n_steps=5, meta_gradient_fn=stub_meta_gradient)
    (d / CHECKPOINT_FILE).write_bytes(ckpt_at_3)          # as if killed after step 5 with the checkpoint of step 3
    with open(d / LOG_FILE, "a") as f:
        f.write('{"step": 6, "J": 1.0')                  # a torn line
    run(d, TINY, resume=True, n_steps=3, meta_gradient_fn=stub_meta_gradient)
    assert [r["step"] for r in read_log(d)] == [1, 2, 3]


def test_time_limit_stops_with_a_checkpoint(tmp_path):
    d = tmp_path / "run"
    assert run(d, TINY, n_steps=50, max_seconds=0, meta_gradient_fn=stub_meta_gradient) == 0
    state, tc = load_checkpoint(d / CHECKPOINT_FILE)
    assert state.step == 1 and tc.n_steps == 50 and len(read_log(d)) == 1
    with pytest.raises(ValueError, match="max_seconds"):
        run(tmp_path / "other", TINY, max_seconds=-1, meta_gradient_fn=stub_meta_gradient)


# -------------------------------------------------------------------------------------
# plot, CLI
# -------------------------------------------------------------------------------------
def test_smooth_is_a_trailing_mean_ignoring_missing():
    y = np.array([1.0, 3.0, np.nan, 5.0, 7.0])
    np.testing.assert_allclose(smooth(y, 2), [1.0, 2.0, 3.0, 5.0, 6.0])
    np.testing.assert_allclose(smooth(y, 1)[[0, 1, 3, 4]], [1, 3, 5, 7])
    assert np.isnan(smooth(y, 1)[2])


def test_plot_writes_a_png(tmp_path):
    d = tmp_path / "run"
    run(d, TINY, n_steps=3, meta_gradient_fn=nan_on({1}))
    out = plot_run(d)
    assert out == d / "curves.png"
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    with pytest.raises(ValueError, match="no meta-step records"):
        plot_run(tmp_path)


def test_parsers_register_subcommands():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    add_train_parser(sub)
    add_plot_parser(sub)
    a = parser.parse_args(["train", "--preset", "small", "--run-dir", "r", "--steps", "7", "--resume",
                           "--seed", "3", "--quiet", "--max-minutes", "1.5", "--checkpoint-every", "4"])
    assert (a.preset, a.run_dir, a.steps, a.resume, a.seed, a.quiet) == ("small", "r", 7, True, 3, True)
    assert (a.max_minutes, a.checkpoint_every) == (1.5, 4)
    assert callable(a.func)
    b = parser.parse_args(["plot", "somewhere"])
    assert b.run_dir == "somewhere" and callable(b.func) and b.func is not a.func
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--run-dir", "r", "--steps", "0"])


# -------------------------------------------------------------------------------------
# schedules at their boundaries, Adam's own step count, the previous checkpoint
# -------------------------------------------------------------------------------------
SCHEDULE = TINY.replace(lr=(3e-3, 1e-3, 2e-4), lr_boundaries=(2, 3))


def _step_from(k: int, tc):
    state = init_state(tc)
    for _ in range(k):
        state, _ = meta_step(state, tc, stub_meta_gradient)
    return state


@pytest.mark.parametrize("k, piece", [(1, 0), (2, 1), (3, 2)])
def test_meta_step_at_a_learning_rate_boundary_uses_and_logs_the_rate_of_its_own_step(k, piece):
    """Boundaries (2, 3): step k = 1 is the last of lr[0], k = 2 the first (and last) of lr[1], k = 3 lr[2]."""
    state = _step_from(k, SCHEDULE)
    new, record = meta_step(state, SCHEDULE, stub_meta_gradient)
    assert record["lr"] == SCHEDULE.lr[piece]
    constant = SCHEDULE.replace(lr=(SCHEDULE.lr[piece],) * 3)   # the same step with that rate all along
    expected, _ = meta_step(state, constant, stub_meta_gradient)
    assert all(np.array_equal(new.theta[name], expected.theta[name]) for name in new.theta)
    other = SCHEDULE.replace(lr=(SCHEDULE.lr[(piece + 1) % 3],) * 3)
    differs, _ = meta_step(state, other, stub_meta_gradient)
    assert any(not np.array_equal(new.theta[name], differs.theta[name]) for name in new.theta)


def test_checkpoint_round_trip_after_a_step_that_dropped_every_task(tmp_path):
    """Adam's step count is its own (it skips a step where every task was dropped), not the meta-step's."""
    state, _ = meta_step(init_state(TINY), TINY, nan_on({0, 1}))
    state, _ = meta_step(state, TINY, stub_meta_gradient)
    assert (state.step, state.adam.t) == (2, 1)
    save_checkpoint(tmp_path / "c.npz", state, TINY)
    back, _ = load_checkpoint(tmp_path / "c.npz")
    assert back.adam.t == 1
    uninterrupted, _ = meta_step(state, TINY, stub_meta_gradient)
    resumed, _ = meta_step(back, TINY, stub_meta_gradient)
    assert all(uninterrupted.theta[k].tobytes() == resumed.theta[k].tobytes() for k in state.theta)


@pytest.fixture
def finished_run(tmp_path):
    """A 4-step stub run with checkpoints at steps 2 and 4 (so the previous checkpoint is step 2)."""
    d = tmp_path / "run"
    assert run(d, TINY, n_steps=4, checkpoint_every=2, meta_gradient_fn=stub_meta_gradient) == 0
    return d


@pytest.mark.parametrize("damage", ["unreadable", "missing"])
def test_resume_falls_back_to_the_previous_checkpoint_and_says_so(finished_run, tmp_path, capsys, damage):
    d = finished_run
    reference, _ = load_checkpoint(d / CHECKPOINT_FILE)
    assert load_checkpoint(d / "checkpoint.prev.npz")[0].step == 2
    if damage == "unreadable":
        (d / CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    else:
        (d / CHECKPOINT_FILE).unlink()
    capsys.readouterr()
    assert run(d, resume=True, n_steps=4, meta_gradient_fn=stub_meta_gradient) == 0
    err = capsys.readouterr().err
    assert "resuming from the previous checkpoint" in err and "meta-step 2" in err and damage in err
    state, _ = load_checkpoint(d / CHECKPOINT_FILE)
    assert state.step == 4 and all(state.theta[k].tobytes() == reference.theta[k].tobytes() for k in state.theta)
    assert [r["step"] for r in read_log(d)] == [1, 2, 3, 4]
    assert (d / "checkpoint.unreadable.npz").exists() is (damage == "unreadable")


def test_log_without_checkpoint_offers_restart_and_restart_removes_only_trainer_files(finished_run):
    d = finished_run
    (d / CHECKPOINT_FILE).unlink()
    (d / "checkpoint.prev.npz").unlink()
    mine = {"notes.txt": b"mine", "mine.npz": b"not the trainer's", "notes.json": b"{}", "curves.pdf": b"%PDF"}
    for name, data in mine.items():
        (d / name).write_bytes(data)
    with pytest.raises(RunDirError, match="has a log but no checkpoint.*--restart"):
        run(d, resume=True, meta_gradient_fn=stub_meta_gradient)
    with pytest.raises(RunDirError, match="holds a log but no checkpoint.*--restart"):
        run(d, TINY, n_steps=2, meta_gradient_fn=stub_meta_gradient)
    assert run(d, TINY, restart=True, n_steps=2, meta_gradient_fn=stub_meta_gradient) == 0
    assert {name: (d / name).read_bytes() for name in mine} == mine
    assert [r["step"] for r in read_log(d)] == [1, 2]


def _snapshot(d):
    return {p.name: p.read_bytes() for p in d.iterdir()}


def test_restart_deletes_nothing_where_no_run_of_ours_is(tmp_path):
    d = tmp_path / "user"
    d.mkdir()
    for name in ("log.jsonl", "curves.png", "theta.npz", "other.txt"):
        (d / name).write_bytes(b"the user's " + name.encode())
    before = _snapshot(d)
    with pytest.raises(RunDirError, match="--restart: .* holds no run to restart.*nothing removed"):
        run(d, TINY, restart=True, n_steps=2, meta_gradient_fn=stub_meta_gradient)
    assert _snapshot(d) == before


@pytest.mark.parametrize("names", [("theta.npz",), ("train_config.json", "theta.npz"), ("curves.png",)])
def test_new_run_never_overwrites_files_with_the_trainers_names(tmp_path, names):
    d = tmp_path / "user"
    d.mkdir()
    for name in names:
        (d / name).write_bytes(b"the user's " + name.encode())
    (d / "other.txt").write_text("kept")
    before = _snapshot(d)
    with pytest.raises(RunDirError, match="holds .*but no run to continue; refusing to overwrite"):
        run(d, TINY, n_steps=2, meta_gradient_fn=stub_meta_gradient)
    assert _snapshot(d) == before


def test_new_run_in_a_directory_with_other_files_only(tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "notes.txt").write_text("kept")
    assert run(d, TINY, n_steps=1, meta_gradient_fn=stub_meta_gradient) == 0
    assert (d / "notes.txt").read_text() == "kept" and (d / "checkpoint.npz").exists()


@pytest.mark.parametrize("garbage", [b"\xff\xfe not text\n", b"{\"step\": 1}\nnot json\n{\"step\": 2}\n"])
def test_corrupted_log_on_resume_is_one_clear_error(finished_run, garbage):
    d = finished_run
    (d / LOG_FILE).write_bytes(garbage)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(RunDirError, match="log.jsonl is corrupted") as info:
        run(d, resume=True, meta_gradient_fn=stub_meta_gradient)
    assert "\n" not in str(info.value)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


def test_run_dir_that_is_a_file_or_empty_is_refused(tmp_path):
    f = tmp_path / "afile"
    f.write_text("keep")
    with pytest.raises(RunDirError, match="is not a directory"):
        run(f, TINY, n_steps=1, meta_gradient_fn=stub_meta_gradient)
    with pytest.raises(RunDirError, match="empty path"):
        run("", TINY, n_steps=1, meta_gradient_fn=stub_meta_gradient)
    assert f.read_text() == "keep" and [p.name for p in tmp_path.iterdir()] == ["afile"]
