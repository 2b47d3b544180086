"""The meta-batch on Dask workers (refimpl.train.distributed) computes the single-process run.

Against an uninterrupted single-process `tiny` run, bit for bit (theta, Adam
moments, every task's phi and generator state, the log): a run on a local
cluster of 2 worker processes; a run whose worker process is SIGKILLed in the
middle of a meta-step (the scheduler has the task computed again, once); a
run whose scheduler dies, which stops with one line and the checkpoint of the
last completed meta-step, and is resumed. An unreachable scheduler is one
line, exit status 3, after the --timeout, with nothing written.
"""
import functools
import os
import signal
import socket
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")

from refimpl.cli import main as cli_main
from refimpl.train import CHECKPOINT_FILE, load_checkpoint, read_log, run, train_preset
from refimpl.train.distributed import DaskTasks

N_STEPS = 8
EVERY = 3
TINY = train_preset("tiny").replace(n_steps=N_STEPS, checkpoint_every=EVERY)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("single")
    assert run(d, TINY) == 0
    state, _ = load_checkpoint(d / CHECKPOINT_FILE)
    assert state.step == N_STEPS and state.counters["dropped_total"] == 0
    return d, state


@pytest.fixture(scope="module")
def cluster():
    with DaskTasks(workers=2, timeout=20) as tasks:
        yield tasks


def assert_same_run(d, ref_dir, ref_state):
    state, _ = load_checkpoint(d / CHECKPOINT_FILE)
    assert state.step == ref_state.step and state.counters == ref_state.counters
    assert state.adam.t == ref_state.adam.t
    for k in ref_state.theta:
        assert state.theta[k].tobytes() == ref_state.theta[k].tobytes(), k
        assert state.adam.m[k].tobytes() == ref_state.adam.m[k].tobytes(), k
        assert state.adam.v[k].tobytes() == ref_state.adam.v[k].tobytes(), k
    for s, r in zip(state.tasks, ref_state.tasks):
        assert (s.steps_done, s.serial, s.rng_state) == (r.steps_done, r.serial, r.rng_state)
        assert all(s.phi[k].tobytes() == r.phi[k].tobytes() for k in r.phi)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("step_time", "wall_time")}   # noqa: E731
    assert [strip(r) for r in read_log(d)] == [strip(r) for r in read_log(ref_dir)]


def test_two_workers_end_with_the_single_process_theta(reference, cluster, tmp_path):
    ref_dir, ref_state = reference
    assert len(cluster.client.scheduler_info()["workers"]) == 2
    assert run(tmp_path, TINY, run_tasks=cluster) == 0
    assert_same_run(tmp_path, ref_dir, ref_state)


def _call_number(calls) -> int:
    """This call's number 1, 2, ... among all processes: the first ``calls.<n>`` it can create.

    Exclusive creation is atomic, so two workers starting their tasks at the same moment get
    different numbers (counting the lines of ``calls`` after appending can give both the same)."""
    n = 1
    while True:
        try:
            os.close(os.open(f"{calls}.{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return n
        except FileExistsError:
            n += 1


def killing_meta_gradient(theta, phi, batches, config, *, n_cls, calls, marker, kill_at):
    """The real meta-gradient, except that call number ``kill_at`` SIGKILLs its own worker process, once."""
    from refimpl.meta.unroll import meta_gradient

    with open(calls, "a") as f:
        f.write(f"{os.getpid()}\n")
    if _call_number(calls) == kill_at and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return meta_gradient(theta, phi, batches, config, n_cls=n_cls)


def test_a_killed_worker_is_replaced_and_its_task_computed_once(reference, cluster, tmp_path):
    ref_dir, ref_state = reference
    calls, marker = tmp_path / "calls.txt", tmp_path / "killed.txt"
    kill_at = TINY.tasks_per_step * 2 + 1          # the first task of meta-step 3
    mg = functools.partial(killing_meta_gradient, calls=str(calls), marker=str(marker), kill_at=kill_at)
    run_dir = tmp_path / "run"
    assert run(run_dir, TINY, run_tasks=cluster, meta_gradient_fn=mg) == 0
    assert marker.exists(), "no worker was killed"
    pids = calls.read_text().split()
    assert len(pids) == N_STEPS * TINY.tasks_per_step + 1     # exactly one task computed again
    assert marker.read_text() in pids
    assert_same_run(run_dir, ref_dir, ref_state)


def failing_once_meta_gradient(theta, phi, batches, config, *, n_cls, calls, marker, fail_at):
    """The real meta-gradient, except that call number ``fail_at`` raises, once (the worker survives)."""
    from refimpl.meta.unroll import meta_gradient

    with open(calls, "a") as f:
        f.write(f"{os.getpid()}\n")
    if len(Path(calls).read_text().split()) == fail_at and not os.path.exists(marker):
        Path(marker).write_text("raised")
        raise RuntimeError("a task that fails once (injected)")
    return meta_gradient(theta, phi, batches, config, n_cls=n_cls)


def test_a_task_that_raises_once_is_retried_and_the_theta_is_the_same(reference, cluster, tmp_path):
    ref_dir, ref_state = reference
    calls, marker = tmp_path / "calls.txt", tmp_path / "raised.txt"
    mg = functools.partial(failing_once_meta_gradient, calls=str(calls), marker=str(marker),
                           fail_at=TINY.tasks_per_step + 2)          # the second task of meta-step 2
    run_dir = tmp_path / "run"
    assert run(run_dir, TINY, run_tasks=cluster, meta_gradient_fn=mg) == 0
    assert marker.exists(), "no task raised"
    assert len(calls.read_text().split()) == N_STEPS * TINY.tasks_per_step + 1     # one task computed again
    assert_same_run(run_dir, ref_dir, ref_state)


def slow_first_task(theta, phi, batches, config, *, n_cls, finished):
    """A stand-in for the meta-gradient: job ``phi["job"]`` (the test numbers its jobs there) returns
    J = that number; job 0 takes a second longer than the others, so it completes after them."""
    job = int(phi["job"])
    if job == 0:
        time.sleep(1.5)
    with open(finished, "a") as f:
        f.write(f"{job}\n")
    return types.SimpleNamespace(loss=float(job), dtheta={}, phi_final={}, accuracies=[])


def test_results_are_gathered_in_task_order_when_tasks_complete_out_of_order(cluster, tmp_path):
    from refimpl.train import init_state
    from refimpl.train.optim import unroll_range
    from refimpl.train.step import SlotJob

    finished = tmp_path / "finished.txt"
    state = init_state(TINY)
    jobs = [SlotJob(TINY, ts.task, {"job": np.array(i)}, ts.remaining, unroll_range(TINY, 0), ts.rng_state)
            for i, ts in enumerate(state.tasks)]
    results = cluster({}, iter(jobs), functools.partial(slow_first_task, finished=str(finished)))
    order = [int(t) for t in finished.read_text().split()]
    assert sorted(order) == list(range(len(jobs))) and order.index(0) > order.index(1), order   # out of order
    assert [out.reason for out in results] == [None] * len(jobs)
    assert [out.result.loss for out in results] == [float(i) for i in range(len(jobs))]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_scheduler_is_one_line_after_the_timeout(tmp_path, capsys):
    run_dir = tmp_path / "run"
    start = time.monotonic()
    code = cli_main(["train", "--preset", "tiny", "--run-dir", str(run_dir), "--steps", "2",
                     "--scheduler", f"tcp://127.0.0.1:{closed_port()}", "--timeout", "2", "--quiet"])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 3 and elapsed < 30
    assert err.count("\n") == 1 and "cannot reach the Dask scheduler" in err and "Traceback" not in err
    assert not run_dir.exists()                      # nothing written


def _spawn(args, **kw):
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.communicate(timeout=30)


def test_a_lost_scheduler_stops_with_a_checkpoint_and_resume_continues(reference, tmp_path):
    ref_dir, ref_state = reference
    port = closed_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = _spawn(["-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
                        "--no-dashboard"])
    worker = _spawn(["-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--nworkers", "1",
                     "--no-dashboard"])
    run_dir = tmp_path / "run"
    train = None
    try:
        train = _spawn(["-m", "refimpl", "train", "--preset", "tiny", "--run-dir", str(run_dir), "--steps",
                        str(N_STEPS), "--checkpoint-every", str(EVERY), "--scheduler", address, "--timeout", "3",
                        "--quiet"])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and train.poll() is None:
            if len(read_log(run_dir)) >= 2 if (run_dir / "log.jsonl").exists() else False:
                break
            time.sleep(0.05)
        assert train.poll() is None, train.communicate()
        scheduler.send_signal(signal.SIGKILL)
        _, err = train.communicate(timeout=120)
    finally:
        for p in (train, worker, scheduler):
            if p is not None:
                _stop(p)
    assert train.returncode == 3, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "lost the Dask scheduler" in lines[0], err
    state, _ = load_checkpoint(run_dir / CHECKPOINT_FILE)
    assert 2 <= state.step < N_STEPS
    assert [r["step"] for r in read_log(run_dir)] == list(range(1, state.step + 1))
    assert run(run_dir, resume=True) == 0              # the single-process trainer continues
    assert_same_run(run_dir, ref_dir, ref_state)
