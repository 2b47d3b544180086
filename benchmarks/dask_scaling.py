"""A scaling model of the meta-batch on Dask workers, from the measurements of benchmarks/dask_workers.py.

A meta-step with M tasks on W workers takes

    T(W) = d + M * o_driver + makespan_W(c_1 + o_w, ..., c_M + o_w)

- d: the driver's time per meta-step outside ``run_tasks`` (building the
  jobs, Adam, bookkeeping), measured;
- o_driver: the driver's serial share of shipping one task (pickling theta
  and the SlotJob, unpickling the SlotOutcome), measured;
- o_w = round trip - o_driver: the rest of a task's shipping cost (scheduler,
  transfer, the worker's unpickling), measured as the round trip of an
  empty task with the same inputs and result size with many in flight,
  counted on the worker (it overlaps across workers);
- c_i: each task's compute time (drawing and the meta-gradient), measured
  per slot in one process; for M larger than the measured slots, the
  measured times repeat;
- makespan_W: the tasks handed, in slot order, each to the worker that is
  free first (Dask's scheduler does about that for independent tasks).

It assumes a worker per core with nothing else on it, a scheduler that is
never the bottleneck (at about 1 ms of scheduler time per task this holds
while M / T stays below ~1000 tasks/s) and no stragglers. It is checked
against the measured 1- and 2-worker rates of the same run, and projects
meta-steps/s at 8, 32 and 128 workers for the preset's meta-batch (M = 4
for `small`: at most 4 workers can be busy) and for a meta-batch of 256
tasks of the same kind (the paper preset's tasks_per_step).

    .venv/bin/python benchmarks/dask_scaling.py dask.json [--plot benchmarks/dask_scaling.png] [--json out.json]
"""
import argparse
import heapq
import json

WORKERS = (1, 2, 4, 8, 16, 32, 64, 128)


def makespan(times, workers: int) -> float:
    free = [0.0] * min(workers, len(times))
    heapq.heapify(free)
    for t in times:
        heapq.heappush(free, heapq.heappop(free) + t)
    return max(free)


def step_time(m: dict, M: int, W: int) -> float:
    c = m["task_compute_s"]
    o_driver = m["driver_per_task_s"]
    o_w = max(m["round_trip_s"] - o_driver, 0.0)
    tasks = [c[i % len(c)] + o_w for i in range(M)]
    return m["driver_s"]["2"] + M * o_driver + makespan(tasks, W)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("measurements", help="JSON written by benchmarks/dask_workers.py --json")
    parser.add_argument("--plot")
    parser.add_argument("--json")
    args = parser.parse_args()
    with open(args.measurements) as f:
        m = json.load(f)
    m["driver_s"] = {str(k): v for k, v in m["driver_s"].items()}
    M0 = m["tasks_per_step"]
    single = m["rates"]["single process"]
    print(f"measured ({m['preset']}, load average {m['load_before'][0]:.2f} before, "
          f"{m['load_after_rates'][0]:.2f} after the rates): single process {single:.2f} meta-steps/s; "
          f"task compute {', '.join(f'{c * 1e3:.0f}' for c in m['task_compute_s'])} ms; driver "
          f"{m['driver_s']['2'] * 1e3:.1f} ms per meta-step + {m['driver_per_task_s'] * 1e3:.2f} ms per task; "
          f"round trip {m['round_trip_s'] * 1e3:.1f} ms per task")
    print("\ncheck against the measured rates (meta-steps/s):")
    check = {}
    for W in (1, 2):
        predicted = 1 / step_time(m, M0, W)
        measured = m["rates"][f"{W} worker(s)"]
        check[W] = {"predicted": predicted, "measured": measured}
        print(f"  {W} worker(s): model {predicted:.2f}, measured {measured:.2f} ({measured / predicted:.2f}x the model)")
    projection = {}
    for M in (M0, 256):
        projection[M] = {W: 1 / step_time(m, M, W) for W in WORKERS}
        print(f"\nprojected meta-steps/s, {M} tasks per meta-step:")
        for W in WORKERS:
            mark = "   <- asked for" if W in (8, 32, 128) else ""
            print(f"  {W:>4} workers: {projection[M][W]:8.3f}  ({projection[M][W] / projection[M][1]:5.1f}x one "
                  f"worker){mark}")
        serial = m["driver_s"]["2"] + M * m["driver_per_task_s"]
        print(f"  limit with unlimited workers: {1 / (serial + max(m['task_compute_s']) + m['round_trip_s']):.3f} "
              f"(the driver's {serial * 1e3:.0f} ms per meta-step plus the slowest task)")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for M, style in zip(projection, ("-o", "-s")):
            ax.plot(WORKERS, [projection[M][W] for W in WORKERS], style, ms=4,
                    label=f"model, {M} tasks per meta-step")
        ax.plot([1, 2], [m["rates"]["1 worker(s)"], m["rates"]["2 worker(s)"]], "k^", ms=8,
                label=f"measured, {M0} tasks (load {m['load_before'][0]:.1f})")
        ax.axhline(single, color="grey", ls=":", label="measured, one process")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("Dask workers (one core each)")
        ax.set_ylabel("meta-steps / s")
        ax.set_title(f"`{m['preset']}` tasks on Dask workers: scaling model", fontsize=10)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        print(f"\nplot: {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"check": check, "projection": projection}, f, indent=1)


if __name__ == "__main__":
    main()
