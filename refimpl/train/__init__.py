"""Meta-training (SPEC 7), in one process or with the meta-batch on Dask workers: ``refimpl train``, ``refimpl plot``.

May import every layer below it (model, rule, ops, config, params, data); nothing imports it but tooling.

    from refimpl.train import train_preset, run
    tc = train_preset("tiny")                      # TrainConfig (frozen, JSON round trip)
    run("runs/x", tc, n_steps=10)                  # start; returns 0, or 130 after Ctrl-C
    run("runs/x", resume=True, n_steps=20)         # continue bit for bit

Run directory layout: refimpl/train/README.md. The command-line parsers are
registered by :func:`add_train_parser` and :func:`add_plot_parser` (called
from refimpl/cli.py; ``python -m refimpl.train`` offers both stand-alone).
"""
from __future__ import annotations

from refimpl.runtime import (EXIT_INTERRUPTED, RunDirError, directory_arg, nonneg_float, nonneg_int, number_type,
                             positive_float, positive_int)
from refimpl.train.checkpoint import TrainState, load_checkpoint, save_checkpoint
from refimpl.train.optim import (AdamState, adam_init, adam_step, budget_scale, clip_by_global_norm,
                                 global_norm, learning_rate, sample_budget, unroll_range)
from refimpl.train.presets import PRESET_NAMES, TrainConfig, train_preset
from refimpl.train.rundir import CHECKPOINT_FILE, CONFIG_FILE, LOG_FILE, PLOT_FILE, THETA_FILE, read_log
from refimpl.train.step import init_state, meta_step
from refimpl.train.trainer import run

__all__ = [
    "TrainState", "load_checkpoint", "save_checkpoint", "AdamState", "adam_init", "adam_step",
    "budget_scale", "clip_by_global_norm", "global_norm", "learning_rate", "sample_budget",
    "unroll_range", "PRESET_NAMES", "TrainConfig", "train_preset", "CHECKPOINT_FILE", "CONFIG_FILE",
    "EXIT_INTERRUPTED", "LOG_FILE", "PLOT_FILE", "THETA_FILE", "RunDirError", "init_state",
    "meta_step", "read_log", "run", "add_train_parser", "add_plot_parser", "number_type", "positive_int",
    "positive_float", "nonneg_int", "nonneg_float", "directory_arg",
]


def _train_command(args) -> int:
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
    received = []
    previous = _install_signal_handlers(received)
    try:
        code = run(args.run_dir, tc, resume=args.resume, restart=args.restart, n_steps=args.steps,
                   checkpoint_every=args.checkpoint_every, quiet=args.quiet, expect=expect,
                   max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes)
    finally:
        _restore_signal_handlers(previous)
    if code == EXIT_INTERRUPTED and received:
        code = 128 + received[-1]
    return code


#: Exit status when the Dask cluster is unreachable or lost (the checkpoint holds the last completed step).
EXIT_CLUSTER_LOST = 3


def _train_distributed(args, tc, expect) -> int:
    """``refimpl train --workers N`` / ``--scheduler ADDRESS``: the meta-batch on Dask (refimpl.train.distributed)."""
    import sys

    from refimpl.train.distributed import DaskTasks, DistributedError
    from refimpl.train.trainer import run

    received = []
    try:
        with DaskTasks(workers=args.workers, scheduler=args.scheduler, timeout=args.timeout) as tasks:
            previous = _install_signal_handlers(received)
            try:
                code = run(args.run_dir, tc, resume=args.resume, restart=args.restart, n_steps=args.steps,
                           checkpoint_every=args.checkpoint_every, quiet=args.quiet, expect=expect,
                           max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
                           run_tasks=tasks)
            finally:
                _restore_signal_handlers(previous)
    except DistributedError as e:
        print(f"{args.parser.prog}: {e}", file=sys.stderr)
        return EXIT_CLUSTER_LOST
    if code == EXIT_INTERRUPTED and received:
        code = 128 + received[-1]
    return code


def _install_signal_handlers(received: list) -> dict:
    """Ctrl-C (SIGINT) and SIGTERM both raise KeyboardInterrupt, so the trainer checkpoints and exits.

    SIGINT is set explicitly because a process started in the background by a
    non-interactive shell inherits SIGINT *ignored*, and Python then installs
    no KeyboardInterrupt handler. The exit status is 128 + the signal number
    (130 for SIGINT, 143 for SIGTERM). Only possible from the main thread.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handler)
    return previous


def _restore_signal_handlers(previous: dict) -> None:
    import signal

    for sig, h in previous.items():
        signal.signal(sig, h)


def _plot_command(args) -> int:
    from refimpl.train.plot import plot_run
    from refimpl.runtime import check_run_dir

    check_run_dir(args.run_dir, create=False)       # a directory the PNG can be written to
    print(f"wrote {plot_run(args.run_dir, window=args.window)}")
    return 0


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
    p.set_defaults(func=_train_command, parser=p)
    return p


def add_plot_parser(subparsers):
    """Register ``plot`` on an argparse subparsers object (``set_defaults(func=..., parser=...)``)."""
    p = subparsers.add_parser("plot", help="draw a run's meta-training curves to RUN_DIR/curves.png",
                              description="Draw J, the few-shot accuracy and the gradient norm of the run "
                                          "in RUN_DIR against the meta-step, to RUN_DIR/curves.png.")
    p.add_argument("run_dir", type=directory_arg, help="a directory written by 'refimpl train'")
    p.add_argument("--window", type=positive_int, default=None,
                   help="smoothing window in meta-steps (default: about 1/20 of the run)")
    p.set_defaults(func=_plot_command, parser=p)
    return p
