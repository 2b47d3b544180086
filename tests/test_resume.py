"""Interrupted and resumed meta-training ends with exactly the theta of an uninterrupted run (SPEC 7).

The reference is an uninterrupted `tiny` run with the real meta-gradient. It
is compared bit for bit (theta, Adam moments, every task's phi, definition
and generator state) with: a run stopped and resumed in-process; a run
SIGKILLed in a subprocess at a random moment after its first checkpoint and
resumed; a run stopped by SIGINT (Ctrl-C) in a subprocess, which must write
a checkpoint and exit with status 130, then resumed.
"""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from refimpl.params import load_params
from refimpl.train import CHECKPOINT_FILE, THETA_FILE, load_checkpoint, read_log, run, train_preset

N_STEPS = 16
EVERY = 3
TINY = train_preset("tiny")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("reference")
    assert run(d, TINY, n_steps=N_STEPS, checkpoint_every=EVERY) == 0
    state, _ = load_checkpoint(d / CHECKPOINT_FILE)
    assert state.step == N_STEPS and state.counters["dropped_total"] == 0
    return d, state


def assert_same_run(d, ref_dir, ref_state):
    state, tc = load_checkpoint(d / CHECKPOINT_FILE)
    assert state.step == ref_state.step and tc.replace(checkpoint_every=EVERY) == TINY.replace(
        n_steps=N_STEPS, checkpoint_every=EVERY)
    for k in ref_state.theta:
        assert state.theta[k].tobytes() == ref_state.theta[k].tobytes(), k
        assert state.adam.m[k].tobytes() == ref_state.adam.m[k].tobytes(), k
        assert state.adam.v[k].tobytes() == ref_state.adam.v[k].tobytes(), k
    assert state.adam.t == ref_state.adam.t and state.counters == ref_state.counters
    for s, r in zip(state.tasks, ref_state.tasks):
        assert s.task.to_json_dict() == r.task.to_json_dict() and np.array_equal(s.task.perm, r.task.perm)
        assert (s.steps_done, s.serial, s.rng_state) == (r.steps_done, r.serial, r.rng_state)
        assert all(s.phi[k].tobytes() == r.phi[k].tobytes() for k in r.phi)
    theta, _ = load_params(d / THETA_FILE, kind="theta")
    ref_theta, _ = load_params(ref_dir / THETA_FILE, kind="theta")
    assert all(theta[k].tobytes() == ref_theta[k].tobytes() for k in ref_theta)
    log = read_log(d)
    assert [r["step"] for r in log] == list(range(1, N_STEPS + 1))
    ref_log = read_log(ref_dir)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("step_time", "wall_time")}   # noqa: E731
    assert [strip(r) for r in log] == [strip(r) for r in ref_log]


def test_theta_changes_over_the_reference_run(reference):
    from refimpl.train import init_state
    _, state = reference
    theta0 = init_state(TINY).theta
    assert any(not np.array_equal(theta0[k], state.theta[k]) for k in theta0)


def test_stop_and_resume_in_process(reference, tmp_path):
    ref_dir, ref_state = reference
    d = tmp_path / "run"
    assert run(d, TINY, n_steps=3, checkpoint_every=EVERY) == 0       # stops at a non-checkpoint step
    assert run(d, resume=True, n_steps=7, checkpoint_every=EVERY) == 0
    assert run(d, resume=True, n_steps=N_STEPS) == 0
    assert_same_run(d, ref_dir, ref_state)


def _spawn(d):
    cmd = [sys.executable, "-m", "refimpl", "train", "--preset", "tiny", "--run-dir", str(d),
           "--steps", str(N_STEPS), "--checkpoint-every", str(EVERY), "--quiet"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONHASHSEED": "0"})


def _wait_for(predicate, proc, timeout=60.0):
    t0 = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"trainer exited early with {proc.returncode}: {err.decode()[-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            pytest.fail("trainer made no progress")
        time.sleep(0.02)


def test_sigkill_at_a_random_moment_then_resume(reference, tmp_path):
    ref_dir, ref_state = reference
    d = tmp_path / "run"
    proc = _spawn(d)
    _wait_for(lambda: (d / CHECKPOINT_FILE).exists(), proc)       # the step-0 checkpoint
    _wait_for(lambda: len(read_log(d)) >= 1, proc)                  # one meta-step done
    step_time = read_log(d)[0]["step_time"]
    delay = random.uniform(0.0, 0.4 * (N_STEPS - 1) * step_time)     # within the first ~40% of the run
    time.sleep(delay)
    assert proc.poll() is None, "the run finished before the kill; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at, _ = load_checkpoint(d / CHECKPOINT_FILE)
    lines = len(read_log(d))
    assert killed_at.step < N_STEPS, f"delay {delay:.3f}s"
    assert run(d, resume=True) == 0, f"delay {delay:.3f}s, checkpoint at {killed_at.step}, {lines} log lines"
    assert_same_run(d, ref_dir, ref_state)


def test_sigint_writes_a_checkpoint_then_resume(reference, tmp_path):
    ref_dir, ref_state = reference
    d = tmp_path / "run"
    proc = _spawn(d)
    _wait_for(lambda: len(read_log(d)) >= 3, proc)                  # mid-run, between checkpoints or not
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert b"interrupted: checkpoint of meta-step" in err
    state, tc = load_checkpoint(d / CHECKPOINT_FILE)
    assert 3 <= state.step < N_STEPS and tc.n_steps == N_STEPS
    # The checkpoint holds the last completed meta-step, and the log agrees with it.
    assert [r["step"] for r in read_log(d)] == list(range(1, state.step + 1))
    theta, _ = load_params(d / THETA_FILE, kind="theta")
    assert all(theta[k].tobytes() == state.theta[k].tobytes() for k in theta)
    assert run(d, resume=True) == 0
    assert_same_run(d, ref_dir, ref_state)


def test_cli_resume_refuses_another_preset_or_seed(reference, tmp_path):
    from refimpl.cli import main
    ref_dir, _ = reference
    assert main(["train", "--run-dir", str(ref_dir), "--resume", "--preset", "small", "--quiet"]) == 2
    assert main(["train", "--run-dir", str(ref_dir), "--resume", "--seed", "9", "--quiet"]) == 2
    assert main(["train", "--run-dir", str(ref_dir), "--preset", "tiny", "--quiet"]) == 2   # no --resume


def test_sigterm_also_checkpoints(tmp_path):
    d = tmp_path / "run"
    proc = _spawn(d)
    _wait_for(lambda: len(read_log(d)) >= 1, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    state, _ = load_checkpoint(d / CHECKPOINT_FILE)
    assert 1 <= state.step < N_STEPS
    assert [r["step"] for r in read_log(d)] == list(range(1, state.step + 1))
