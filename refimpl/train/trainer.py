"""The single-process meta-trainer (SPEC 7): meta-steps, the run loop, logging, checkpoints.

One meta-step (:func:`meta_step`, a pure function of the state) at step k:

1. for each task slot i (in order), with slot i's generator: draw U uniform
   in :func:`~refimpl.train.optim.unroll_range` at k, capped at the task's
   remaining budget; draw the U unlabeled batches and U x n_eval labeled
   pairs; call ``meta_gradient`` from the slot's phi; keep phi_final;
2. a task whose J, dtheta or phi_final is not finite (or whose unroll raises
   :class:`refimpl.meta.unroll.NonFiniteError`) is *dropped*: its gradient is
   not used, it is reset, the event is counted and logged;
3. a task whose budget is spent is reset: a new task is drawn (with the
   slot's generator, budget scale of step k + 1);
4. the kept gradients are averaged, clipped to global norm ``clip_norm``,
   and Adam takes a step with the learning rate of step k. If every task was
   dropped, theta and Adam are left unchanged (counted as ``adam_skipped``).

All randomness comes from generators whose states are in the state (one per
slot and one for the trainer, which draws theta_0), so a run continued from
a checkpoint is bit for bit the run that was not interrupted.
"""
from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from refimpl.npzio import atomic_write_bytes
from refimpl.params import init_theta, save_params
from refimpl.train.checkpoint import TrainState, load_checkpoint, save_checkpoint
from refimpl.train.optim import (adam_init, adam_step, clip_by_global_norm, learning_rate, mean_grads,
                                 unroll_range)
from refimpl.train.presets import TrainConfig
from refimpl.train.tasks import draw_unroll, new_task_state, rng_from_state

CONFIG_FILE = "train_config.json"
CHECKPOINT_FILE = "checkpoint.npz"
#: The checkpoint before the latest: resumed from when the latest is missing or unreadable.
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.npz"
#: Where an unreadable latest checkpoint is moved when the run falls back to the previous one.
UNREADABLE_CHECKPOINT_FILE = "checkpoint.unreadable.npz"
THETA_FILE = "theta.npz"
LOG_FILE = "log.jsonl"
PLOT_FILE = "curves.png"
#: Every file the trainer writes in a run directory (``--restart`` removes these and nothing else).
RUN_FILES = (CONFIG_FILE, CHECKPOINT_FILE, PREVIOUS_CHECKPOINT_FILE, UNREADABLE_CHECKPOINT_FILE, THETA_FILE,
             LOG_FILE, PLOT_FILE)

#: Exit status after Ctrl-C (128 + SIGINT), as a shell reports it.
EXIT_INTERRUPTED = 130


def _default_meta_gradient():
    from refimpl.meta.unroll import meta_gradient
    return meta_gradient


def _nonfinite_errors() -> tuple:
    from refimpl.meta.unroll import NonFiniteError
    return (NonFiniteError, FloatingPointError, np.linalg.LinAlgError)


def init_state(tc: TrainConfig) -> TrainState:
    """Step 0: theta_0 from the trainer generator, one task per slot from its own generator.

    Generators: ``SeedSequence(tc.seed).spawn(1 + M)`` -> PCG64; the first is
    the trainer's, slot i gets the (i + 1)-th.
    """
    seeds = np.random.SeedSequence(tc.seed).spawn(1 + tc.tasks_per_step)
    trainer_rng = np.random.Generator(np.random.PCG64(seeds[0]))
    theta = init_theta(tc.model, trainer_rng, tc.np_dtype)
    tasks = tuple(new_task_state(tc, 0, np.random.Generator(np.random.PCG64(s)), serial=1)
                  for s in seeds[1:])
    counters = {"dropped_total": 0, "tasks_drawn": len(tasks), "adam_skipped": 0}
    return TrainState(0, theta, adam_init(theta), tasks, trainer_rng.bit_generator.state, counters, 0.0)


def _finite_dict(d: dict) -> bool:
    return all(np.isfinite(v).all() for v in d.values())


def _json_float(x):
    return None if x is None or not math.isfinite(x) else float(x)


class TaskJob(NamedTuple):
    """One slot's share of a meta-step, drawn on the driver: everything a (possibly remote) worker needs."""
    U: int
    phi: dict
    batches: object          # refimpl.meta.unroll.UnrollBatches
    config: object           # the task's rule Config
    n_cls: int


def run_task(theta: dict, job: TaskJob, meta_gradient_fn=None):
    """The meta-gradient of one slot: ``(result, None)``, or ``(None, reason)`` when it is dropped.

    A pure function of its arguments (no state, no randomness), so a worker
    process may run it, and run it again after a failure, with the same result.
    """
    mg = meta_gradient_fn or _default_meta_gradient()
    try:
        with np.errstate(all="ignore"):   # non-finite values are detected below, never hidden
            res = mg(theta, job.phi, job.batches, job.config, n_cls=job.n_cls)
    except _nonfinite_errors() as e:
        return None, f"{type(e).__name__}: {e}"
    if not math.isfinite(float(res.loss)):
        return None, f"non-finite J ({float(res.loss)})"
    if not _finite_dict(res.dtheta):
        return None, "non-finite dtheta"
    if not _finite_dict(res.phi_final):
        return None, "non-finite phi_final"
    return res, None


def meta_step(state: TrainState, tc: TrainConfig, meta_gradient_fn=None, run_tasks=None):
    """One meta-step; returns ``(new_state, record)`` and never modifies ``state``.

    ``record`` is the JSON log line (a dict). ``meta_gradient_fn`` defaults
    to :func:`refimpl.meta.unroll.meta_gradient` (tests pass stubs).
    ``run_tasks(theta, jobs, meta_gradient_fn)``, when given, returns
    ``[run_task(theta, job, meta_gradient_fn) for job in jobs]``, computed
    elsewhere (refimpl.train.distributed); ``jobs`` is an iterator that draws
    each slot's inputs when it is reached. Every random draw stays here.
    """
    from refimpl.meta.unroll import UnrollBatches

    t0 = time.perf_counter()
    k = state.step
    lo, hi = unroll_range(tc, k)
    lr = learning_rate(tc, k)
    jobs, rngs = [], []

    def draw_jobs():
        """Each slot's draws, on its own generator, in slot order; yielded one by one so that a
        distributed ``run_tasks`` can start slot i while slot i + 1 is drawn."""
        for ts in state.tasks:
            rng = rng_from_state(ts.rng_state)
            U = min(int(rng.integers(lo, hi + 1)), ts.remaining)
            x, x_a, x_b, y_a, y_b = draw_unroll(tc, ts.task, U, rng)
            jobs.append(TaskJob(U, ts.phi, UnrollBatches(x, x_a, x_b, y_a, y_b), ts.task.config(tc.model),
                                ts.task.n_way))
            rngs.append(rng)
            yield jobs[-1]

    if run_tasks is None:
        outcomes = [run_task(state.theta, job, meta_gradient_fn) for job in draw_jobs()]
    else:
        outcomes = run_tasks(state.theta, draw_jobs(), meta_gradient_fn)
    grads, tasks = [], []
    rec_J, rec_acc, rec_U, dropped, resets = [], [], [], [], []
    counters = dict(state.counters)
    for i, (ts, rng, job, (res, reason)) in enumerate(zip(state.tasks, rngs, jobs, outcomes)):
        U = job.U
        rec_U.append(U)
        if reason is None:
            grads.append(res.dtheta)
            rec_J.append(float(res.loss))
            acc = float(np.mean(res.accuracies)) if len(res.accuracies) else None
            rec_acc.append(acc)
            ts = ts._replace(phi=res.phi_final, steps_done=ts.steps_done + U)
        else:
            rec_J.append(None)
            rec_acc.append(None)
            dropped.append({"slot": i, "serial": ts.serial, "reason": reason})
        if reason is not None or ts.remaining <= 0:
            resets.append(i)
            ts = new_task_state(tc, k + 1, rng, serial=ts.serial + 1)
            counters["tasks_drawn"] += 1
        else:
            ts = ts._replace(rng_state=rng.bit_generator.state)
        tasks.append(ts)

    counters["dropped_total"] += len(dropped)
    grad_norm = None
    theta, adam = state.theta, state.adam
    if grads:
        clipped, grad_norm = clip_by_global_norm(mean_grads(grads), tc.clip_norm)
        theta, adam = adam_step(theta, clipped, adam, lr, beta1=tc.adam_beta1, beta2=tc.adam_beta2,
                                eps=tc.adam_eps)
    else:
        counters["adam_skipped"] += 1
    step_time = time.perf_counter() - t0
    kept_J = [j for j in rec_J if j is not None]
    kept_acc = [a for a in rec_acc if a is not None]
    new_state = TrainState(k + 1, theta, adam, tuple(tasks), state.trainer_rng, counters,
                           state.elapsed + step_time)
    record = {
        "step": k + 1, "J": _json_float(float(np.mean(kept_J))) if kept_J else None,
        "J_tasks": [_json_float(j) for j in rec_J],
        "accuracy": _json_float(float(np.mean(kept_acc))) if kept_acc else None,
        "acc_tasks": [_json_float(a) for a in rec_acc],
        "U": rec_U, "U_range": [lo, hi], "lr": lr,
        "grad_norm": _json_float(grad_norm), "clipped": bool(grad_norm is not None and grad_norm > tc.clip_norm),
        "dropped": len(dropped), "dropped_total": counters["dropped_total"], "drop_events": dropped,
        "resets": resets, "tasks_drawn": counters["tasks_drawn"],
        "step_time": step_time, "wall_time": new_state.elapsed,
    }
    return new_state, record


# -------------------------------------------------------------------------------------
# run directory
# -------------------------------------------------------------------------------------
def read_log(run_dir) -> list[dict]:
    """The JSONL log's records; [] when there is no log.

    A torn last line (no newline: a kill mid-write) is skipped; any other line
    that is not a JSON record with a "step" is a ValueError (a corrupted log).
    """
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is corrupted (not UTF-8 text at byte {e.start})") from None
    lines = text.split("\n")
    out = []
    for number, line in enumerate(lines[:-1], 1):   # lines[-1] is "" or the torn last line
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if not (isinstance(rec, dict) and isinstance(rec.get("step"), int)):
            raise ValueError(f"{path} is corrupted (line {number} is not a meta-step record)")
        out.append(rec)
    return out


def _truncate_log(run_dir, step: int) -> None:
    """Keep only the log lines of meta-steps 1..step (the ones the checkpoint contains)."""
    path = Path(run_dir) / LOG_FILE
    if not path.exists():
        return
    keep = [r for r in read_log(run_dir) if r["step"] <= step]
    text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in keep)
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def write_checkpoint(run_dir, state: TrainState, tc: TrainConfig) -> None:
    """The full checkpoint (the one it replaces kept as the previous), then the theta-only file (each atomic)."""
    run_dir = Path(run_dir)
    if (run_dir / CHECKPOINT_FILE).exists():
        os.replace(run_dir / CHECKPOINT_FILE, run_dir / PREVIOUS_CHECKPOINT_FILE)
    save_checkpoint(run_dir / CHECKPOINT_FILE, state, tc)
    save_params(run_dir / THETA_FILE, state.theta, tc.model, kind="theta")


def _progress(total, initial, quiet):
    from tqdm import tqdm
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="step", disable=disable, dynamic_ncols=True,
                desc="meta-train")


class RunDirError(ValueError):
    """The run directory does not allow the requested start or resume."""


def check_run_dir(run_dir, *, create: bool) -> Path:
    """``run_dir`` as a Path, once it is known to be a directory this process can write in.

    ``create``: make it (and its parents) when missing; otherwise a missing
    directory is a RunDirError too.
    """
    if str(run_dir).strip() == "":
        raise RunDirError("the run directory is an empty path")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a directory")
    if not run_dir.exists():
        if not create:
            raise RunDirError(f"{run_dir} does not exist")
        try:
            run_dir.mkdir(parents=True)
        except OSError as e:
            raise RunDirError(f"cannot create {run_dir}: {e.strerror or e}") from None
    try:
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as e:
        raise RunDirError(f"cannot write in {run_dir}: {e.strerror or e}") from None
    return run_dir


def _check_holds_run(run_dir: Path) -> None:
    """``--restart`` deletes only in a directory that a run of ours wrote: one with a readable
    ``train_config.json`` (the first file a run writes)."""
    try:
        TrainConfig.from_json((run_dir / CONFIG_FILE).read_text())
    except (OSError, ValueError, TypeError, KeyError) as e:
        raise RunDirError(f"--restart: {run_dir} holds no run to restart (no readable {CONFIG_FILE}: "
                          f"{getattr(e, 'strerror', None) or e}); nothing removed") from None


def _load_for_resume(run_dir: Path):
    """The latest readable checkpoint: the latest, else (saying so on stderr) the previous one."""
    latest, previous = run_dir / CHECKPOINT_FILE, run_dir / PREVIOUS_CHECKPOINT_FILE
    problem = None
    if latest.exists():
        try:
            return load_checkpoint(latest)
        except ValueError as e:
            problem = f"{latest} is unreadable ({e})"
    else:
        problem = f"{latest} is missing"
    if not previous.exists():
        if latest.exists():
            raise RunDirError(f"--resume: {problem}, and there is no previous checkpoint; start over with "
                              f"--restart (removes only the trainer's files) or use another --run-dir")
        if (run_dir / LOG_FILE).exists():
            raise RunDirError(f"--resume: {run_dir} has a log but no checkpoint to resume from; start over "
                              f"with --restart (removes only the trainer's files) or use another --run-dir")
        raise RunDirError(f"--resume: {latest} does not exist; start a run there without --resume")
    try:
        state, stored = load_checkpoint(previous)
    except ValueError as e:
        raise RunDirError(f"--resume: {problem}, and the previous checkpoint is unreadable too ({e}); start "
                          f"over with --restart (removes only the trainer's files)") from None
    if latest.exists():   # kept for inspection, and so the next checkpoint does not push it into `previous`
        os.replace(latest, run_dir / UNREADABLE_CHECKPOINT_FILE)
        problem += f"; moved to {UNREADABLE_CHECKPOINT_FILE}"
    print(f"warning: {problem}; resuming from the previous checkpoint {previous} (meta-step {state.step})",
          file=sys.stderr)
    return state, stored


def prepare_run(run_dir, tc: TrainConfig | None, *, resume: bool, restart: bool = False, n_steps=None,
                checkpoint_every=None, expect=None):
    """Start or resume; returns ``(state, tc)``.

    Start: ``run_dir`` must not hold a run already (no checkpoint, no log),
    unless ``restart``, which requires a readable ``train_config.json`` (a
    run of ours) and first removes the files the trainer writes
    (:data:`RUN_FILES`) and nothing else; never overwrites a file of those
    names that no run wrote; writes ``train_config.json`` and
    the step-0 checkpoint. Resume: reads the checkpoint, or the previous one
    when it is missing or unreadable (its TrainConfig wins; ``tc``, when
    given, must agree on every field but ``n_steps`` and
    ``checkpoint_every``), truncates the log to the checkpoint's step;
    ``expect`` (field -> value), when given, must match the checkpoint's
    TrainConfig too. ``n_steps`` / ``checkpoint_every`` override.
    """
    if resume and restart:
        raise RunDirError("--resume and --restart exclude each other")
    overrides = {}
    if n_steps is not None:
        overrides["n_steps"] = n_steps
    if checkpoint_every is not None:
        overrides["checkpoint_every"] = checkpoint_every
    if resume:
        try:
            run_dir = check_run_dir(run_dir, create=False)
        except RunDirError as e:
            raise RunDirError(f"--resume: {e}") from None
        state, stored = _load_for_resume(run_dir)
        if tc is not None:
            differing = [n for n in tc.diff(stored) if n not in ("n_steps", "checkpoint_every")]
            if differing:
                detail = ", ".join(f"{n}: checkpoint {getattr(stored, n)!r} vs requested {getattr(tc, n)!r}"
                                   for n in differing)
                raise RunDirError(f"--resume: the checkpoint in {run_dir} was made with other settings ({detail})")
        for name, value in (expect or {}).items():
            if getattr(stored, name) != value:
                raise RunDirError(f"--resume: the run in {run_dir} has {name} {getattr(stored, name)!r}, "
                                  f"not {value!r}")
        tc = stored.replace(**overrides)
        try:
            _truncate_log(run_dir, state.step)
        except ValueError as e:
            raise RunDirError(f"--resume: {e}; move it aside to resume without it") from None
        return state, tc
    if tc is None:
        raise RunDirError("a new run needs a TrainConfig")
    tc = tc.replace(**overrides)
    run_dir = check_run_dir(run_dir, create=True)
    if restart:
        _check_holds_run(run_dir)
        for name in RUN_FILES:
            (run_dir / name).unlink(missing_ok=True)
    if (run_dir / CHECKPOINT_FILE).exists() or (run_dir / PREVIOUS_CHECKPOINT_FILE).exists():
        raise RunDirError(f"{run_dir} already holds a run; continue it with --resume, start over with "
                          f"--restart (removes only the trainer's files), or use another --run-dir")
    if (run_dir / LOG_FILE).exists():
        raise RunDirError(f"{run_dir} holds a log but no checkpoint; start over with --restart (removes only "
                          f"the trainer's files) or use another --run-dir")
    # Never overwrite a file of the trainer's names that no run of ours wrote.
    foreign = [name for name in RUN_FILES if (run_dir / name).exists()]
    if foreign:
        raise RunDirError(f"{run_dir} holds {', '.join(foreign)} but no run to continue; refusing to overwrite "
                          f"them: use another --run-dir")
    text = tc.to_json() + "\n"
    atomic_write_bytes(run_dir / CONFIG_FILE, lambda f: f.write(text.encode()))
    state = init_state(tc)
    write_checkpoint(run_dir, state, tc)
    return state, tc


def blas_single_thread():
    """A context manager limiting BLAS to one thread (threadpoolctl, a scikit-learn dependency).

    The matrices of a meta-step are small: with OpenBLAS's default thread
    pool one small-preset unroll took 3.1 s instead of 0.24 s on this 2-core
    machine while it was loaded by other processes (threads spin-waiting),
    and a fixed thread count removes one possible source of run-to-run
    differences. Without threadpoolctl: no limit.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:   # pragma: no cover - scikit-learn requires threadpoolctl
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def run(run_dir, tc: TrainConfig | None = None, *, resume: bool = False, restart: bool = False, n_steps=None,
        checkpoint_every=None, quiet: bool = True, meta_gradient_fn=None, on_step=None,
        expect=None, max_seconds=None, run_tasks=None) -> int:
    """Meta-train in ``run_dir`` up to ``tc.n_steps`` (or ``n_steps``) meta-steps; return an exit status.

    Writes one log line per meta-step, a checkpoint and the theta file every
    ``checkpoint_every`` steps and at the end. Ctrl-C (KeyboardInterrupt)
    writes the checkpoint of the last completed meta-step and returns 130.
    ``on_step(state, record)`` (optional) is called after each step (tests).
    ``restart``: start over in a run directory that holds a run (see
    :func:`prepare_run`). ``max_seconds`` (optional): stop, with a checkpoint and status 0, after
    the first meta-step that ends that long after the start (the run can be
    continued with ``resume=True``; where it stopped does not change what it
    computes). BLAS runs single-threaded meanwhile (:func:`blas_single_thread`).
    ``run_tasks`` (optional): where the slots' meta-gradients are computed
    (:class:`refimpl.train.distributed.DaskTasks`; default: here, in order).
    If it raises (a lost cluster), the checkpoint of the last completed
    meta-step is written and the exception propagates.
    """
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds >= 0):
        raise ValueError(f"run: max_seconds must be a non-negative number, got {max_seconds!r}")
    started = time.monotonic()
    state, tc = prepare_run(run_dir, tc, resume=resume, restart=restart, n_steps=n_steps,
                            checkpoint_every=checkpoint_every, expect=expect)
    run_dir = Path(run_dir)
    log_path = run_dir / LOG_FILE
    bar = _progress(tc.n_steps, state.step, quiet)
    committed = state
    written = state.step          # prepare_run's checkpoint (start) or the one resumed from
    try:
        with blas_single_thread(), open(log_path, "a") as log:
            while committed.step < tc.n_steps:
                new_state, record = meta_step(committed, tc, meta_gradient_fn, run_tasks)
                # The log line is written before the commit: a line for a step the
                # checkpoint does not hold is removed when the run is resumed.
                log.write(json.dumps(record, allow_nan=False) + "\n")
                log.flush()
                committed = new_state
                for ev in record["drop_events"]:
                    message = (f"meta-step {record['step']}: task slot {ev['slot']} dropped and reset "
                               f"({ev['reason']})")
                    if bar.disable:
                        if not quiet:
                            print(message, file=sys.stderr)
                    else:
                        bar.write(message, file=sys.stderr)
                bar.update(1)
                if record["J"] is not None:
                    bar.set_postfix(J=f"{record['J']:.4f}", drop=committed.counters["dropped_total"],
                                    refresh=False)
                if on_step is not None:
                    on_step(committed, record)
                if committed.step % tc.checkpoint_every == 0:
                    write_checkpoint(run_dir, committed, tc)
                    written = committed.step
                if max_seconds is not None and time.monotonic() - started >= max_seconds:
                    break
    except KeyboardInterrupt:
        bar.close()
        write_checkpoint(run_dir, committed, tc)
        _truncate_log(run_dir, committed.step)
        print(f"\ninterrupted: checkpoint of meta-step {committed.step} written to {run_dir / CHECKPOINT_FILE}; "
              f"continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        if run_tasks is None:
            raise
        bar.close()                       # the cluster failed: keep the last completed meta-step
        if written != committed.step:
            write_checkpoint(run_dir, committed, tc)
        _truncate_log(run_dir, committed.step)
        raise
    bar.close()
    if written != committed.step:
        write_checkpoint(run_dir, committed, tc)
    if not quiet:
        if committed.step > tc.n_steps:
            what = f"nothing to do: the run is at meta-step {committed.step}, past the {tc.n_steps} asked for"
        else:
            what = f"{'done' if committed.step == tc.n_steps else 'time limit reached'}: {committed.step} of " \
                   f"{tc.n_steps} meta-steps"
        print(f"{what}; theta in {run_dir / THETA_FILE}", file=sys.stderr)
    return 0
