"""The meta-batch on Dask workers: meta-steps/s with 1 and 2 local workers, and the cost of shipping a task.

In one run, for the `small` training preset (same seed, same meta-steps):
- meta-steps per second (wall time) of the single-process trainer, and of
  ``DaskTasks(workers=1)`` and ``DaskTasks(workers=2)`` (LocalCluster, worker
  processes with one thread each, BLAS single-threaded); target 2 workers
  >= 1.7x 1 worker;
- per task: the bytes a task's inputs (theta and one slot's TaskJob) and its
  result (the MetaGradient) take pickled, the time to pickle them, and the
  round trip of a task that only receives those inputs and returns a result
  of the same size (the Dask overhead without the meta-gradient).

Wall time, since the point is to use more cores: on a machine where other
processes run, 2 workers cannot get 2 cores; the load average is printed.

    .venv/bin/python benchmarks/dask_workers.py [--steps 6]
"""
import argparse
import os
import pickle
import time

import numpy as np


def echo_sized(theta, job, result_bytes):
    """A task that receives a real task's inputs and returns a payload as large as its result."""
    return np.zeros(result_bytes, dtype=np.uint8)


def steps_per_second(tc, steps, run_tasks=None):
    from refimpl.runtime import blas_single_thread
    from refimpl.train import init_state, meta_step

    state = init_state(tc)
    with blas_single_thread():
        state, _ = meta_step(state, tc, None, run_tasks)          # warm up (glyph cache, worker imports)
        start = time.perf_counter()
        for _ in range(steps):
            state, _ = meta_step(state, tc, None, run_tasks)
    return steps / (time.perf_counter() - start), state


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()

    from refimpl.meta.unroll import UnrollBatches
    from refimpl.train import train_preset
    from refimpl.train.distributed import DaskTasks
    from refimpl.train.step import TaskJob, init_state, run_task
    from refimpl.train.tasks import draw_unroll, rng_from_state

    tc = train_preset("small")
    load = os.getloadavg()
    print(f"`small` preset, {tc.tasks_per_step} tasks per meta-step, {args.steps} meta-steps after one warm-up; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")

    single, ref_state = steps_per_second(tc, args.steps)
    rates = {"single process": single}
    for n in (1, 2):
        with DaskTasks(workers=n) as tasks:
            rates[f"{n} worker(s)"], state = steps_per_second(tc, args.steps, tasks)
        same = all(state.theta[k].tobytes() == ref_state.theta[k].tobytes() for k in state.theta)
        assert same, f"{n} workers: theta differs from the single-process run"
    print("\nmeta-steps per second (wall)")
    for name, r in rates.items():
        print(f"  {name:<16} {r:6.2f}")
    print(f"  2 workers / 1 worker = {rates['2 worker(s)'] / rates['1 worker(s)']:.2f}   (target >= 1.7)")

    # one slot's inputs and result, as the driver ships them
    state = init_state(tc)
    ts = state.tasks[0]
    rng = rng_from_state(ts.rng_state)
    U = 4
    x, x_a, x_b, y_a, y_b = draw_unroll(tc, ts.task, U, rng)
    job = TaskJob(U, ts.phi, UnrollBatches(x, x_a, x_b, y_a, y_b), ts.task.config(tc.model), ts.task.n_way)
    t = time.perf_counter()
    inputs = pickle.dumps((state.theta, job), protocol=5)
    t_in = time.perf_counter() - t
    result = run_task(state.theta, job)
    t = time.perf_counter()
    output = pickle.dumps(result, protocol=5)
    t_out = time.perf_counter() - t
    with DaskTasks(workers=1) as tasks:
        client = tasks.client
        client.submit(echo_sized, state.theta, job, len(output), pure=False).result()     # warm up
        n = 20
        start = time.perf_counter()
        futures = [client.submit(echo_sized, state.theta, job, len(output), pure=False) for _ in range(n)]
        client.gather(futures)
        round_trip = (time.perf_counter() - start) / n
    compute = time.perf_counter()
    run_task(state.theta, job)
    compute = time.perf_counter() - compute
    print(f"\nper task (U = {U}): inputs {len(inputs) / 1024:.0f} KiB pickled in {t_in * 1e3:.2f} ms "
          f"(theta {len(pickle.dumps(state.theta, protocol=5)) / 1024:.0f} KiB), result "
          f"{len(output) / 1024:.0f} KiB pickled in {t_out * 1e3:.2f} ms;")
    print(f"  round trip of a task with those inputs and a result that size: {round_trip * 1e3:.1f} ms "
          f"(mean of {n} in flight), against {compute * 1e3:.0f} ms to compute the task here")


if __name__ == "__main__":
    main()
