"""``refimpl paper EXPERIMENT --rule RULE --out DIR``: one of the paper's experiments, or ``all``."""
from __future__ import annotations

import argparse
import sys


def _description() -> str:
    from refimpl.paper import EXPERIMENTS, budget

    lines = ["Run one of the paper's experiments at small scale for RULE (a shipped rule name, a theta .npz "
             "file, or 'random': a SPEC 9 random init) and write EXPERIMENT.json, EXPERIMENT.md and "
             "EXPERIMENT.png to --out. Every table carries phi_0 and a random-theta control on the same seeds. "
             "'all' runs every experiment in turn with progress lines. --quick runs tiny sizes (seconds). "
             "Budgets of the full runs (single-threaded):", ""]
    for e in EXPERIMENTS.values():
        lines.append(f"  {e.name} ({e.figure}): {e.summary}. Budget: {budget(e.name)}.")
    return "\n".join(lines)


def add_paper_parser(subparsers):
    """Register ``paper`` on an argparse subparsers object."""
    from refimpl.paper import EXPERIMENTS
    from refimpl.runtime import directory_arg

    p = subparsers.add_parser("paper", help="the paper's experiments (Figs. 5-8, 10) for any rule: tables, "
                                            "figures, random-theta control",
                              description=_description(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=[*EXPERIMENTS, "all"], help="the experiment, or all of them")
    p.add_argument("--rule", default="small-glyphs-rotation",
                   help="shipped rule name, theta .npz, or 'random' (default small-glyphs-rotation)")
    p.add_argument("--out", type=directory_arg, required=True, help="directory for the tables and figures")
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in seconds, not a result")
    p.add_argument("--run-dir", type=directory_arg, default=None,
                   help="filters (and all): a meta-training run directory whose thetas/theta_*.npz snapshots "
                        "are shown as well")
    p.set_defaults(func=paper_command, parser=p)
    return p


def paper_command(args) -> int:
    from pathlib import Path

    from refimpl.paper import run_all, run_experiment
    from refimpl.paper.common import rule_and_control
    from refimpl.runtime import blas_single_thread, check_run_dir

    if args.run_dir is not None and not Path(args.run_dir, "thetas").is_dir():
        raise ValueError(f"--run-dir {args.run_dir} has no thetas/ directory of snapshots")
    if args.run_dir is not None and args.experiment not in ("filters", "all"):
        raise ValueError("--run-dir is used by the filters experiment only")
    rule_and_control(args.rule)                 # a bad rule is one line before any work
    out = check_run_dir(args.out, create=True)
    with blas_single_thread():
        if args.experiment == "all":
            reports = run_all(args.rule, out, quick=args.quick, run_dir=args.run_dir)
        else:
            kw = {"run_dir": args.run_dir} if args.run_dir is not None else {}
            reports = {args.experiment: run_experiment(args.experiment, args.rule, out, quick=args.quick, **kw)}
    for name, report in reports.items():
        for path in report["paths"].values():
            print(f"paper {name}: wrote {path}", file=sys.stderr)
    return 0
