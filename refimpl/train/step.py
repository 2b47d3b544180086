"""The meta-step (SPEC 7): the maths of one step of meta-training, a pure function of the state.

One meta-step (:func:`meta_step`, a pure function of the state) at step k:

1. for each task slot i (in order), with slot i's generator: draw U uniform
   in :func:`~refimpl.train.optim.unroll_range` at k, capped at the task's
   remaining budget; draw the U unlabeled batches and U x n_eval labeled
   pairs; call ``meta_gradient`` from the slot's phi; keep phi_final
   (:func:`run_slot`: in this process, or on a worker that receives the
   generator's state and returns it advanced);
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

import math
import time
from typing import NamedTuple

import numpy as np

from refimpl.params import init_theta
from refimpl.train.checkpoint import TrainState
from refimpl.train.optim import adam_init, adam_step, clip_by_global_norm, learning_rate, mean_grads, unroll_range
from refimpl.train.presets import TrainConfig
from refimpl.train.tasks import draw_unroll, new_task_state, rng_from_state


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
    """One slot's drawn unroll: U, the phi it starts from, its batches, the rule config and n_cls."""
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


class SlotJob(NamedTuple):
    """One slot's share of a meta-step before anything is drawn: everything a (possibly remote)
    worker needs to draw the slot's U and batches with the slot's generator and to compute its
    meta-gradient (:func:`run_slot`). The generator travels as its state and comes back advanced."""
    tc: TrainConfig
    task: object             # refimpl.train.tasks.TaskDef
    phi: dict
    remaining: int           # the task's inner steps left (caps U)
    unroll_range: tuple      # (lo, hi) of meta-step k (refimpl.train.optim.unroll_range)
    rng_state: dict          # the slot generator's bit_generator.state before the draws


class SlotOutcome(NamedTuple):
    """What :func:`run_slot` hands back to the driver."""
    U: int
    result: object           # the MetaGradient, or None when the task is dropped
    reason: str | None       # why it was dropped (None: kept)
    rng_state: dict          # the slot generator's state after the draws of U and the batches


def draw_task_job(job: SlotJob, rng: np.random.Generator) -> TaskJob:
    """The slot's draws, with its generator ``rng`` (advanced): U uniform in the unroll range,
    capped at the task's remaining budget, then the unroll's batches (refimpl.train.tasks.draw_unroll)."""
    from refimpl.meta.unroll import UnrollBatches

    lo, hi = job.unroll_range
    U = min(int(rng.integers(lo, hi + 1)), job.remaining)
    x, x_a, x_b, y_a, y_b = draw_unroll(job.tc, job.task, U, rng)
    return TaskJob(U, job.phi, UnrollBatches(x, x_a, x_b, y_a, y_b), job.task.config(job.tc.model),
                   job.task.n_way)


def run_slot(theta: dict, job: SlotJob, meta_gradient_fn=None) -> SlotOutcome:
    """Draw one slot's unroll and compute its meta-gradient (:func:`run_task`).

    A pure function of its arguments: the generator is rebuilt from ``job.rng_state`` and its
    advanced state is returned, so a worker process may run it (and run it again after a
    failure) and the driver continues the slot's stream exactly where one process would.
    """
    rng = rng_from_state(job.rng_state)
    task_job = draw_task_job(job, rng)
    res, reason = run_task(theta, task_job, meta_gradient_fn)
    return SlotOutcome(task_job.U, res, reason, rng.bit_generator.state)


def meta_step(state: TrainState, tc: TrainConfig, meta_gradient_fn=None, run_tasks=None):
    """One meta-step; returns ``(new_state, record)`` and never modifies ``state``.

    ``record`` is the JSON log line (a dict). ``meta_gradient_fn`` defaults
    to :func:`refimpl.meta.unroll.meta_gradient` (tests pass stubs).
    ``run_tasks(theta, slot_jobs, meta_gradient_fn)``, when given, returns
    ``[run_slot(theta, job, meta_gradient_fn) for job in slot_jobs]``, computed
    elsewhere (refimpl.train.distributed): the slots' draws happen there, on
    generators rebuilt from the states the jobs carry, and the advanced states
    come back; the driver keeps every state, so the run is the one-process run.
    """
    t0 = time.perf_counter()
    k = state.step
    lo, hi = unroll_range(tc, k)
    lr = learning_rate(tc, k)
    slots = [SlotJob(tc, ts.task, ts.phi, ts.remaining, (lo, hi), ts.rng_state) for ts in state.tasks]
    if run_tasks is None:
        outcomes = [run_slot(state.theta, job, meta_gradient_fn) for job in slots]
    else:
        outcomes = list(run_tasks(state.theta, slots, meta_gradient_fn))
    grads, tasks = [], []
    rec_J, rec_acc, rec_U, dropped, resets = [], [], [], [], []
    counters = dict(state.counters)
    for i, (ts, (U, res, reason, rng_state)) in enumerate(zip(state.tasks, outcomes)):
        rng = rng_from_state(rng_state)
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

