"""``refimpl ops-report``: every registered operator checked against its oracle
and timed against autograd; ``time_op`` and ``timing_table`` also serve
``benchmarks/ops.py``."""
from __future__ import annotations

import time
from dataclasses import dataclass

import autograd
import numpy as np

from refimpl.reference.gradcheck import check_op, random_cotangent
from refimpl.reference.registry import GOLDEN_SIZE, PAPER_SIZE, OpInfo, Sample, all_ops


def median_time(fn, repeats: int = 7, min_time: float = 0.02) -> float:
    """Median seconds of ``fn()`` over ``repeats`` runs (each run loops until ``min_time``)."""
    fn()  # warm up
    start = time.perf_counter()
    fn()
    once = time.perf_counter() - start
    inner = max(1, int(min_time / max(once, 1e-9)))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) / inner)
    return float(np.median(samples))


@dataclass
class OpTiming:
    name: str
    forward: float
    backward: float
    autograd_forward: float
    autograd_backward: float

    @property
    def ratio(self) -> float:
        """Hand backward / autograd backward (below 1: the hand backward is faster)."""
        return self.backward / self.autograd_backward

    @property
    def total_ratio(self) -> float:
        return (self.forward + self.backward) / (self.autograd_forward + self.autograd_backward)


def time_op(op: OpInfo, sample: Sample, rng: np.random.Generator, repeats: int = 7) -> OpTiming:
    out, cache = op.run(sample)
    cot = random_cotangent(rng, np.shape(out), out.dtype)
    names = [n for n in op.diff_inputs if n in sample.inputs]
    fn = op.vectorized or op.reference

    def packed(args):
        inputs = dict(sample.inputs)
        inputs.update(zip(names, args))
        return fn(**inputs, **sample.attrs)

    args = tuple(sample.inputs[n] for n in names)
    forward = median_time(lambda: op.run(sample), repeats)
    backward = median_time(lambda: op.backward(cot, cache), repeats) if names else float("nan")
    if names:
        ag_forward = median_time(lambda: autograd.make_vjp(packed)(args), repeats)
        vjp, _ = autograd.make_vjp(packed)(args)
        ag_backward = median_time(lambda: vjp(cot), repeats)
    else:
        ag_forward = ag_backward = float("nan")
    return OpTiming(op.name, forward, backward, ag_forward, ag_backward)


def timing_table(timings: list[OpTiming]) -> str:
    lines = [f"{'operator':<28}{'forward':>11}{'hand bwd':>11}{'ag fwd':>11}{'ag bwd':>11}"
             f"{'bwd/ag':>9}{'(f+b)/ag':>10}"]
    for t in timings:
        lines.append(f"{t.name:<28}{t.forward * 1e3:>9.3f}ms{t.backward * 1e3:>9.3f}ms"
                     f"{t.autograd_forward * 1e3:>9.3f}ms{t.autograd_backward * 1e3:>9.3f}ms"
                     f"{t.ratio:>9.2f}{t.total_ratio:>10.2f}")
    return "\n".join(lines)


def operator_report(size_name: str = "golden") -> int:
    """Check every operator against autograd and time it; return a process exit code."""
    size = {"golden": GOLDEN_SIZE, "paper": PAPER_SIZE}[size_name]
    ops = all_ops()
    print(f"refimpl operator report: {len(ops)} registered operators\n")
    print(f"{'operator':<28}{'kind':<22}{'forward err':>12}{'worst grad err':>16}")
    failures = 0
    for op in ops:
        rng = np.random.default_rng(0)
        sample = op.sample(rng, np.float64, GOLDEN_SIZE)
        forward_error, grad_errors = check_op(op, sample, rng)
        worst = max(grad_errors.values(), default=0.0)
        ok = forward_error <= 1e-12 and worst <= op.grad_rtol
        failures += not ok
        print(f"{op.name:<28}{op.kind:<22}{forward_error:>12.1e}{worst:>16.1e}  {'ok' if ok else 'FAIL'}")
    print(f"\ntimings at {size} (float64; autograd applied to the vectorised formula):\n")
    timings = []
    for op in ops:
        rng = np.random.default_rng(0)
        timings.append(time_op(op, op.sample(rng, np.float64, size), rng, repeats=3))
    print(timing_table(timings))
    print(f"\n{len(ops) - failures} of {len(ops)} operators match autograd")
    return 1 if failures else 0
