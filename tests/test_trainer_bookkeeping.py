"""The trainer's bookkeeping: which files ``--restart`` removes, and the step a reset task's budget is drawn at.

Both are invisible in theta for short runs: a file left behind by
``--restart`` breaks only a later ``--resume``, and a budget drawn one step
early differs only while the budget ramp is moving.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import refimpl.train.optim as optim
from refimpl.train import budget_scale, init_state, meta_step, read_log, run, train_preset
from tests.helpers import stub_meta_gradient

TINY = train_preset("tiny")          # budget ramp: scale 3 -> 8 over 10 meta-steps

#: The files a run of the trainer writes in its run directory, by name (the run directory layout of
#: refimpl/train/README.md): --restart removes these and nothing else.
TRAINER_FILES = {"train_config.json", "checkpoint.npz", "checkpoint.prev.npz", "checkpoint.unreadable.npz",
                 "theta.npz", "log.jsonl", "curves.png"}


def test_restart_removes_exactly_the_trainers_files(tmp_path, monkeypatch):
    d = tmp_path / "run"
    assert run(d, TINY, n_steps=2, checkpoint_every=1, meta_gradient_fn=stub_meta_gradient) == 0
    # every file of the trainer present, two of them as a failed resume and a plot leave them
    (d / "checkpoint.unreadable.npz").write_bytes(b"a checkpoint that could not be read")
    (d / "curves.png").write_bytes(b"an old plot")
    assert TRAINER_FILES <= {p.name for p in d.iterdir()}
    mine = {"notes.txt": b"mine", "theta_00100.npz": b"a snapshot", "log.jsonl.bak": b"a copy",
            "checkpoint.npz.orig": b"another copy"}
    for name, data in mine.items():
        (d / name).write_bytes(data)

    removed = []
    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):
        if self.exists():
            removed.append(self.name)
        return real_unlink(self, missing_ok=missing_ok)
    monkeypatch.setattr(Path, "unlink", unlink)
    assert run(d, TINY, restart=True, n_steps=1, meta_gradient_fn=stub_meta_gradient) == 0
    monkeypatch.undo()

    assert set(removed) == TRAINER_FILES
    left = {p.name for p in d.iterdir()}
    assert "checkpoint.unreadable.npz" not in left
    assert "curves.png" not in left or (d / "curves.png").read_bytes() != b"an old plot"
    assert {name: (d / name).read_bytes() for name in mine} == mine
    assert left - set(mine) <= TRAINER_FILES
    assert [r["step"] for r in read_log(d)] == [1]


def _modules_holding(fn):
    return [m for name, m in list(sys.modules.items())
            if name.startswith("refimpl.") and getattr(m, fn.__name__, None) is fn]


def test_a_reset_task_gets_the_budget_drawn_at_step_k_plus_1(monkeypatch):
    assert budget_scale(TINY, 3) != budget_scale(TINY, 4)       # the ramp moves over these steps
    drawn = []
    real = optim.sample_budget

    def sample_budget(tc, k, rng):
        budget = real(tc, k, rng)
        drawn.append((k, budget))
        return budget
    for module in _modules_holding(real):
        monkeypatch.setattr(module, "sample_budget", sample_budget)

    state = init_state(TINY)
    assert [k for k, _ in drawn] == [0] * TINY.tasks_per_step
    assert [ts.task.budget for ts in state.tasks] == [b for _, b in drawn]
    n_resets = 0
    for _ in range(8):
        k = state.step
        drawn.clear()
        state, record = meta_step(state, TINY, stub_meta_gradient)
        # one budget per reset task, drawn with step k + 1's scale, and it is the new task's budget
        assert [kk for kk, _ in drawn] == [k + 1] * len(record["resets"]), (k, drawn, record["resets"])
        for slot, (_, budget) in zip(record["resets"], drawn):
            assert state.tasks[slot].task.budget == budget
            assert state.tasks[slot].steps_done == 0
        n_resets += len(record["resets"])
    assert n_resets >= 2


def test_budget_scale_of_the_tiny_ramp_by_hand():
    # 3 + (8 - 3) * k / 10 for k in [0, 10], then 8
    for k, expected in ((0, 3.0), (1, 3.5), (4, 5.0), (10, 8.0), (25, 8.0)):
        assert np.isclose(budget_scale(TINY, k), expected, rtol=0, atol=1e-12), k


def test_a_kept_task_draws_fresh_batches_at_every_meta_step(monkeypatch):
    # budgets far above the unrolls: no task is reset, every slot keeps its task for all steps
    tc = TINY
    for module in _modules_holding(optim.sample_budget):
        monkeypatch.setattr(module, "sample_budget", lambda tc, k, rng: 10 ** 6)
    seen = []

    def recording_meta_gradient(theta, phi, batches, config, *, n_cls):
        seen.append(np.array(batches.x))
        return stub_meta_gradient(theta, phi, batches, config, n_cls=n_cls)

    state = init_state(tc)
    for _ in range(3):
        state, record = meta_step(state, tc, recording_meta_gradient)
        assert record["resets"] == []
    M = tc.tasks_per_step
    for slot in range(M):
        draws = [seen[step * M + slot] for step in range(3)]
        for a, b in zip(draws, draws[1:]):
            assert not (a.shape == b.shape and np.array_equal(a, b)), f"slot {slot} drew the same batches again"
