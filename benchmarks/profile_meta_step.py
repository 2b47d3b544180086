"""Where the time of one meta-step goes: per stage, in CPU time and in Python calls (a training preset).

One thread (BLAS limited). The stage functions are found by name in every
loaded ``refimpl`` module and replaced there by timed wrappers, so the same
script profiles this tree or another revision (``PYTHONPATH=other/tree``):

- drawing the batches (``draw_unroll``);
- the update step's forward stages (base model, TopD, ComputeH, error
  propagation, shared planes, matrix and bias updates) and its VJP stages;
- the meta-objective forward and backward;
- the rest of the meta-step (Adam, clipping, the unroll's glue, the EMA).

Python calls: every function call (Python and C, numpy included) seen by
``sys.setprofile`` while a stage runs is counted for it, in a separate pass
(the counting slows everything down, so the times come from a pass without it).
The innermost stage running is charged: a base-model forward inside the
meta-objective is counted as the meta-objective's.

    .venv/bin/python benchmarks/profile_meta_step.py [--preset small] [--steps 6] [--json out.json]
"""
import argparse
import json
import os
import sys
import time
from collections import defaultdict

from threadpoolctl import threadpool_limits

#: stage -> names of the functions that are that stage (the first that exists is wrapped; each is
#: replaced wherever a refimpl module holds it).
STAGES = {
    "draw batches": ["draw_unroll"],
    "fwd: base model": ["base_forward_unchecked"],
    "fwd: TopD": ["topd_forward_unchecked"],
    "fwd: ComputeH": ["compute_h_forward_unchecked"],
    "fwd: error propagation": ["error_prop_forward_unchecked"],
    "fwd: shared planes": ["shared_planes_forward_unchecked"],
    "fwd: matrix update": ["matrix_update_forward_unchecked"],
    "fwd: bias update": ["bias_update_forward_unchecked"],
    "meta-objective fwd": ["meta_objective_forward_unchecked"],
    "meta-objective bwd": ["meta_objective_backward"],
    "VJP: base model": ["base_backward"],
    "VJP: TopD": ["topd_backward"],
    "VJP: ComputeH": ["compute_h_backward"],
    "VJP: error propagation": ["error_prop_backward"],
    "VJP: shared planes": ["shared_planes_backward"],
    "VJP: matrix update": ["matrix_update_backward"],
    "VJP: bias update": ["bias_update_backward"],
}


class StageTimer:
    """Wraps the stage functions; charges CPU time (and, when counting, calls) to the innermost stage."""

    def __init__(self):
        self.time = defaultdict(float)
        self.calls = defaultdict(int)
        self.stack = ["rest"]
        self.originals = []

    def install(self):
        """Wrap every function object so named (outside refimpl.reference, the oracles) wherever a
        refimpl module holds it."""
        mods = [m for name, m in list(sys.modules.items()) if name.startswith("refimpl") and m is not None]
        for stage, names in STAGES.items():
            wrapped = {}
            for fname in names:
                for m in mods:
                    fn = getattr(m, fname, None)
                    if not callable(fn) or str(getattr(fn, "__module__", "")).startswith("refimpl.reference"):
                        continue
                    if id(fn) not in wrapped:
                        wrapped[id(fn)] = self._wrap(stage, fn)
                    self.originals.append((m, fname, fn))
                    setattr(m, fname, wrapped[id(fn)])

    def uninstall(self):
        for m, fname, fn in self.originals:
            setattr(m, fname, fn)

    def _wrap(self, stage, fn):
        def timed(*a, **k):
            outer = self.stack[-1]
            start = time.process_time()
            self.time[outer] += 0.0
            self.stack.append(stage)
            try:
                return fn(*a, **k)
            finally:
                self.stack.pop()
                spent = time.process_time() - start
                self.time[stage] += spent
                self.time[outer] -= spent            # exclusive times: the outer stage without its inner ones
        return timed

    def counter(self, frame, event, arg):
        if event in ("call", "c_call"):
            self.calls[self.stack[-1]] += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--json", help="also write the table as JSON here")
    args = parser.parse_args()

    import refimpl
    from refimpl.train import init_state, meta_step, train_preset
    try:                                     # loaded so that its stage functions are found
        import refimpl.meta.unroll  # noqa: F401
    except ImportError:                      # a revision from before refimpl/meta/
        import refimpl.model.unroll  # noqa: F401

    tc = train_preset(args.preset)
    state = init_state(tc)
    timer = StageTimer()
    with threadpool_limits(1, "blas"):
        state, _ = meta_step(state, tc)                      # warm up (glyph rendering, caches)
        timer.install()
        start = time.process_time()
        for _ in range(args.steps):
            state, _ = meta_step(state, tc)
        total = time.process_time() - start
        timer.time["rest"] += total - sum(timer.time.values())
        times = dict(timer.time)
        sys.setprofile(timer.counter)
        for _ in range(args.steps):
            state, _ = meta_step(state, tc)
        sys.setprofile(None)
        timer.uninstall()
    n = args.steps
    load = os.getloadavg()
    print(f"refimpl from {refimpl.__file__}; preset {args.preset}; one thread; CPU ms and Python calls per "
          f"meta-step (mean of {n}); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"\n{'stage':<26}{'ms':>9}{'share':>8}{'calls':>10}")
    rows = {}
    for stage in list(STAGES) + ["rest"]:
        t, c = times.get(stage, 0.0) / n, timer.calls.get(stage, 0) / n
        rows[stage] = {"ms": t * 1e3, "calls": c}
        print(f"{stage:<26}{t * 1e3:>9.1f}{t / (total / n):>8.0%}{c:>10.0f}")
    print(f"{'total':<26}{total / n * 1e3:>9.1f}{1:>8.0%}{sum(timer.calls.values()) / n:>10.0f}")
    rows["total"] = {"ms": total / n * 1e3, "calls": sum(timer.calls.values()) / n}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"preset": args.preset, "load": load, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
