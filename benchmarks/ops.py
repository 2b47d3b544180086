"""Per-operator timings at the paper preset's shapes (B=128, N=128, C=64, K=3, R=4).

For every registered operator, in one run: median time of the forward, of the
hand backward, and of autograd's forward trace and backward on the same
computation (its vectorised autograd.numpy form). Prints the hand/autograd
ratio per operator; the aim is a ratio below 1 everywhere.

    .venv/bin/python benchmarks/ops.py [--dtype float32|float64] [--only NAME ...]
"""
import argparse

import numpy as np

from refimpl.reference.ops_report import time_op, timing_table
from refimpl.reference.registry import PAPER_SIZE, all_ops


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="*", default=None)
    args = parser.parse_args()
    dtype = np.dtype(args.dtype)
    timings = []
    for op in all_ops():
        if args.only and op.name not in args.only:
            continue
        rng = np.random.default_rng(0)
        timings.append(time_op(op, op.sample(rng, dtype, PAPER_SIZE), rng, repeats=args.repeats))
        print(f"  timed {op.name}", flush=True)
    print(f"\n{PAPER_SIZE}, {dtype}\n")
    print(timing_table(timings))
    slower = [t.name for t in timings if not t.ratio < 1]
    print(f"\nhand backward faster than autograd's for {len(timings) - len(slower)} of {len(timings)} operators"
          + (f"; not for: {', '.join(slower)}" if slower else ""))


if __name__ == "__main__":
    main()
