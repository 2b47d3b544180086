"""A slot's draws and meta-gradient away from the driver (refimpl.train.step.run_slot).

The job carries the slot generator's state and the outcome brings the
advanced state back; a meta-step whose jobs and outcomes go through pickle
(as they do to a worker process) is the in-process meta-step bit for bit,
and so is one that runs the slots in reverse order.
"""
import pickle

from refimpl.train import init_state, meta_step, train_preset
from refimpl.train.optim import unroll_range
from refimpl.train.step import SlotJob, draw_task_job, run_slot
from refimpl.train.tasks import rng_from_state

TINY = train_preset("tiny")


def through_pickle(theta, jobs, meta_gradient_fn=None):
    theta, jobs = pickle.loads(pickle.dumps((theta, list(jobs))))
    return pickle.loads(pickle.dumps([run_slot(theta, job, meta_gradient_fn) for job in jobs]))


def in_reverse(theta, jobs, meta_gradient_fn=None):
    jobs = list(jobs)
    return [run_slot(theta, job, meta_gradient_fn) for job in jobs[::-1]][::-1]


def digest(state) -> bytes:
    parts = [state.theta[k].tobytes() for k in sorted(state.theta)]
    parts += [state.adam.m[k].tobytes() for k in sorted(state.adam.m)]
    for ts in state.tasks:
        parts += [ts.phi[k].tobytes() for k in sorted(ts.phi)] + [repr(ts.rng_state).encode()]
    return b"".join(parts)


def test_run_slot_draws_with_the_slot_generator_and_returns_it_advanced():
    state = init_state(TINY)
    ts = state.tasks[0]
    job = SlotJob(TINY, ts.task, ts.phi, ts.remaining, unroll_range(TINY, 0), ts.rng_state)
    out = run_slot(state.theta, job)
    rng = rng_from_state(ts.rng_state)
    local = draw_task_job(job, rng)
    assert out.U == local.U and out.rng_state == rng.bit_generator.state
    assert out.rng_state != ts.rng_state and out.reason is None


def test_meta_steps_through_pickle_or_in_another_order_are_the_in_process_steps():
    ref = other = reverse = init_state(TINY)
    for _ in range(3):
        ref, rec = meta_step(ref, TINY)
        other, rec_other = meta_step(other, TINY, run_tasks=through_pickle)
        reverse, _ = meta_step(reverse, TINY, run_tasks=in_reverse)
        assert rec_other["J_tasks"] == rec["J_tasks"] and rec_other["U"] == rec["U"]
    assert digest(other) == digest(ref) and digest(reverse) == digest(ref)
    # the comparison can fail: one more step differs
    assert digest(meta_step(ref, TINY)[0]) != digest(ref)
