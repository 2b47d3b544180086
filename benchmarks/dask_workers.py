"""The meta-batch on Dask workers: meta-steps/s with 1 and 2 local workers, and what a task costs.

In one run, for a training preset (default `small`; same seed, same meta-steps):
- meta-steps per second (wall time) of the single-process trainer, and of
  ``DaskTasks(workers=1)`` and ``DaskTasks(workers=2)`` (LocalCluster, worker
  processes with one thread each, BLAS single-threaded), the three
  alternating ``--rounds`` times, best round kept; each run must end
  with the single-process theta, bit for bit (asserted); target: 2 workers
  >= 1.6x the single process;
- the driver's time per meta-step outside ``run_tasks`` (building the jobs,
  Adam, the bookkeeping), measured in the 2-worker run;
- per task: the bytes a task's inputs (theta and one slot's SlotJob) and its
  result (the SlotOutcome) take pickled, the compute time of one task in
  this process (mean over the slots, with their own U), and the round trip
  of a task that only receives those inputs and returns a result of that
  size (the Dask overhead per task with ``--in-flight`` tasks queued).

``--json`` writes these numbers for benchmarks/dask_scaling.py (the scaling
model). Wall time, since the point is to use more cores: on a machine where
other processes run, 2 workers cannot get 2 cores; the load average is
printed before and after.

    .venv/bin/python benchmarks/dask_workers.py [--steps 6] [--json dask.json]
"""
import argparse
import json
import os
import pickle
import time

import numpy as np


def echo_sized(theta, job, result_bytes):
    """A task that receives a real task's inputs and returns a payload as large as its result."""
    return np.zeros(result_bytes, dtype=np.uint8)


class TimedTasks:
    """Wraps a ``run_tasks`` and adds up the wall time spent inside it."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0

    def __call__(self, *args):
        start = time.perf_counter()
        try:
            return self.inner(*args)
        finally:
            self.seconds += time.perf_counter() - start


def steps_per_second(tc, steps, run_tasks=None):
    from refimpl.runtime import blas_single_thread
    from refimpl.train import init_state, meta_step

    state = init_state(tc)
    with blas_single_thread():
        state, _ = meta_step(state, tc, None, run_tasks)          # warm up (glyph cache, worker imports)
        if isinstance(run_tasks, TimedTasks):
            run_tasks.seconds = 0.0
        start = time.perf_counter()
        for _ in range(steps):
            state, _ = meta_step(state, tc, None, run_tasks)
    return steps / (time.perf_counter() - start), state


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--in-flight", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()

    from refimpl.runtime import blas_single_thread
    from refimpl.train import init_state, train_preset
    from refimpl.train.distributed import DaskTasks
    from refimpl.train.optim import unroll_range
    from refimpl.train.step import SlotJob, run_slot

    tc = train_preset(args.preset)
    load0 = os.getloadavg()
    print(f"`{args.preset}` preset, {tc.tasks_per_step} tasks per meta-step, {args.steps} meta-steps after one "
          f"warm-up; load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f} on {os.cpu_count()} cores")

    # The three ways alternate, --rounds times, with both clusters up all along (idle workers cost
    # nothing), so that each sees the machine's load of the same minutes; the best round of each is kept.
    rates, driver, log = {}, {}, []
    with DaskTasks(workers=1) as one, DaskTasks(workers=2) as two:
        ways = {"single process": None, "1 worker(s)": one, "2 worker(s)": two}
        ref_state = None
        for rnd in range(args.rounds):
            for name, tasks in ways.items():
                timed = None if tasks is None else TimedTasks(tasks)
                rate, state = steps_per_second(tc, args.steps, timed)
                load = os.getloadavg()[0]
                log.append({"round": rnd, "way": name, "rate": rate, "load1": load})
                print(f"  round {rnd} {name:<16} {rate:6.3f} meta-steps/s  load {load:5.2f}", flush=True)
                if rate > rates.get(name, 0.0):
                    rates[name] = rate
                    if timed is not None:
                        driver[len(tasks.client.scheduler_info()["workers"])] = 1 / rate - timed.seconds / args.steps
                if ref_state is None:
                    ref_state = state
                same = all(state.theta[k].tobytes() == ref_state.theta[k].tobytes() for k in state.theta)
                same &= all(a.rng_state == b.rng_state for a, b in zip(state.tasks, ref_state.tasks))
                assert same, f"{name}: theta or a task's generator differs from the single-process run"
    load1 = os.getloadavg()
    print(f"\nmeta-steps per second (wall), best of {args.rounds} rounds; every run ends with the "
          f"single-process theta and generator states, bit for bit")
    for name, r in rates.items():
        print(f"  {name:<16} {r:6.2f}")
    ratio = rates["2 worker(s)"] / rates["single process"]
    print(f"  2 workers / single process = {ratio:.2f}   (target >= 1.6); "
          f"2 workers / 1 worker = {rates['2 worker(s)'] / rates['1 worker(s)']:.2f}")
    print(f"  driver time per meta-step outside run_tasks: {driver[2] * 1e3:.1f} ms (2 workers), "
          f"{driver[1] * 1e3:.1f} ms (1 worker)")

    # one meta-step's slot jobs, as the driver ships them
    state = init_state(tc)
    lo, hi = unroll_range(tc, 0)
    jobs = [SlotJob(tc, ts.task, ts.phi, ts.remaining, (lo, hi), ts.rng_state) for ts in state.tasks]
    inputs = [len(pickle.dumps((state.theta, job), protocol=5)) for job in jobs]
    with blas_single_thread():
        run_slot(state.theta, jobs[0])                                        # warm up
        computes, outcomes = [], []
        for job in jobs:
            start = time.perf_counter()
            outcomes.append(run_slot(state.theta, job))
            computes.append(time.perf_counter() - start)
    outputs = [len(pickle.dumps(o, protocol=5)) for o in outcomes]
    start = time.perf_counter()                  # the driver's own share of shipping a task
    for _ in range(5):
        for job, o in zip(jobs, outcomes):
            pickle.loads(pickle.dumps(o, protocol=5))
            pickle.dumps((state.theta, job), protocol=5)
    driver_per_task = (time.perf_counter() - start) / (5 * len(jobs))
    with DaskTasks(workers=1) as tasks:
        client = tasks.client
        client.submit(echo_sized, state.theta, jobs[0], max(outputs), pure=False).result()     # warm up
        start = time.perf_counter()
        futures = [client.submit(echo_sized, state.theta, jobs[i % len(jobs)], outputs[i % len(jobs)], pure=False)
                   for i in range(args.in_flight)]
        client.gather(futures)
        round_trip = (time.perf_counter() - start) / args.in_flight
    load2 = os.getloadavg()
    print(f"\nper task: inputs {np.mean(inputs) / 1024:.0f} KiB pickled (theta "
          f"{len(pickle.dumps(state.theta, protocol=5)) / 1024:.0f} KiB), result {np.mean(outputs) / 1024:.0f} KiB;")
    print(f"  round trip of a task with those inputs and a result that size: {round_trip * 1e3:.1f} ms "
          f"(mean of {args.in_flight} in flight), against {np.mean(computes) * 1e3:.0f} ms to compute a task "
          f"here (U = {[o.U for o in outcomes]}: {', '.join(f'{c * 1e3:.0f}' for c in computes)} ms)")
    print(f"  the driver's share of a task (pickling its inputs, unpickling its result): "
          f"{driver_per_task * 1e3:.2f} ms")
    print(f"load average after: {load2[0]:.2f} {load2[1]:.2f} {load2[2]:.2f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "tasks_per_step": tc.tasks_per_step, "steps": args.steps,
                       "load_before": load0, "load_after_rates": load1, "load_after": load2,
                       "rates": rates, "rounds": log, "driver_s": driver, "task_compute_s": computes,
                       "task_U": [o.U for o in outcomes], "round_trip_s": round_trip,
                       "driver_per_task_s": driver_per_task,
                       "input_bytes": inputs, "output_bytes": outputs}, f, indent=1)


if __name__ == "__main__":
    main()
