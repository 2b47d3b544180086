"""``refimpl train``: meta-train the update rule (SPEC 7) in a run directory, in one process or with the
meta-batch on Dask workers (``--workers``, ``--scheduler``)."""
from __future__ import annotations

import sys

from refimpl.runtime import directory_arg, nonneg_int, positive_float, positive_int
from refimpl.train.presets import PRESET_NAMES, train_preset

#: Exit status when the Dask cluster is unreachable or lost (the checkpoint holds the last completed step).
EXIT_CLUSTER_LOST = 3


def train_command(args) -> int:
    from refimpl.cli.signals import exit_status, signals_interrupt
    from refimpl.train.trainer import run

    tc, expect = None, {}
    if args.resume:
        # The checkpoint's settings win; --preset and --seed, when given, must agree with them.
        if args.preset is not None:
            expect["name"] = args.preset
        if args.seed is not None:
            expect["seed"] = args.seed
    else:
        tc = train_preset(args.preset or "tiny")
        if args.seed is not None:
            tc = tc.replace(seed=args.seed)
    if args.workers is not None or args.scheduler is not None:
        return _train_distributed(args, tc, expect)
    with signals_interrupt() as received:
        code = run(args.run_dir, tc, resume=args.resume, restart=args.restart, n_steps=args.steps,
                   checkpoint_every=args.checkpoint_every, quiet=args.quiet, expect=expect,
                   max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes)
    return exit_status(code, received)


def _train_distributed(args, tc, expect) -> int:
    """``refimpl train --workers N`` / ``--scheduler ADDRESS``: the meta-batch on Dask (refimpl.train.distributed)."""
    from refimpl.cli.signals import exit_status, signals_interrupt
    from refimpl.train.distributed import DaskTasks, DistributedError
    from refimpl.train.trainer import run

    received = []
    try:
        with DaskTasks(workers=args.workers, scheduler=args.scheduler, timeout=args.timeout) as tasks:
            with signals_interrupt() as received:
                code = run(args.run_dir, tc, resume=args.resume, restart=args.restart, n_steps=args.steps,
                           checkpoint_every=args.checkpoint_every, quiet=args.quiet, expect=expect,
                           max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
                           run_tasks=tasks)
    except DistributedError as e:
        print(f"{args.parser.prog}: {e}", file=sys.stderr)
        return EXIT_CLUSTER_LOST
    return exit_status(code, received)


def add_train_parser(subparsers):
    """Register ``train`` on an argparse subparsers object (``set_defaults(func=..., parser=...)``)."""
    p = subparsers.add_parser(
        "train", help="meta-train the update rule (SPEC 7)",
        description="Meta-train theta on sampled tasks in --run-dir. A new run takes its settings from "
                    "--preset (default tiny); --resume continues the run in --run-dir from its checkpoint, "
                    "bit for bit, with the settings stored there. Ctrl-C writes a checkpoint and exits "
                    "with status 130.")
    p.add_argument("--preset", choices=PRESET_NAMES, default=None,
                   help="training preset of a new run (default tiny); with --resume, the run's preset, "
                        "checked against the checkpoint")
    p.add_argument("--run-dir", required=True, type=directory_arg,
                   help="directory for the checkpoint, theta, log and plots")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="total number of meta-steps (default: the preset's n_steps)")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--resume", action="store_true",
                       help="continue the run in --run-dir (from the previous checkpoint when the latest "
                            "is missing or unreadable)")
    start.add_argument("--restart", action="store_true",
                       help="start a new run in --run-dir, first removing the files the trainer wrote "
                            "there (nothing else)")
    p.add_argument("--seed", type=nonneg_int, default=None, help="seed of a new run (default 0)")
    p.add_argument("--checkpoint-every", type=positive_int, default=None,
                   help="meta-steps between checkpoints (default: the preset's)")
    p.add_argument("--max-minutes", type=positive_float, default=None,
                   help="stop (with a checkpoint) after about this many minutes; --resume continues")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=positive_int, default=None,
                       help="compute the meta-batch on a local Dask cluster of this many worker processes "
                            "(needs refimpl[distributed]); the result is the single-process run's, bit for bit")
    where.add_argument("--scheduler", default=None, metavar="ADDRESS",
                       help="compute the meta-batch on the running Dask cluster at ADDRESS "
                            "(e.g. tcp://host:8786, started by `dask scheduler`)")
    p.add_argument("--timeout", type=positive_float, default=30.0,
                   help="seconds to wait for an unreachable or silent Dask scheduler before stopping with "
                        "a checkpoint and exit status 3 (default 30)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=train_command, parser=p)
    return p
