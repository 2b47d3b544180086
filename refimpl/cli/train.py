"""``refimpl train``: meta-train the update rule (SPEC 7) in a run directory, in one process or with the
meta-batch on Dask workers (``--workers``, ``--scheduler``)."""
from __future__ import annotations

import argparse
import json
import sys

from refimpl.runtime import directory_arg, nonneg_int, positive_float, positive_int
from refimpl.train.presets import PRESET_NAMES, TrainConfig, train_preset

#: Exit status when the Dask cluster is unreachable or lost (the checkpoint holds the last completed step).
EXIT_CLUSTER_LOST = 3


def _setting(text: str) -> tuple:
    """``FIELD=VALUE`` of ``--set``: VALUE read as JSON (numbers, lists, true/false), else as a string."""
    field, sep, value = text.partition("=")
    if not sep or not field.strip():
        raise argparse.ArgumentTypeError(f"expected FIELD=VALUE (e.g. model.activation=tanh), got {text!r}")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return field.strip(), parsed


def apply_settings(tc: TrainConfig, settings) -> TrainConfig:
    """``tc`` with the ``--set`` changes: ``FIELD`` a TrainConfig field, ``model.FIELD`` a field of the
    rule's Config (SPEC 1: a rule variant, e.g. ``model.activation=tanh``). Each checked as a new config."""
    import dataclasses

    from refimpl.config import Config

    model_changes, changes = {}, {}
    model_fields = {f.name for f in dataclasses.fields(Config)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    for field, value in settings:
        if field.startswith("model."):
            name = field[len("model."):]
            if name not in model_fields:
                raise ValueError(f"--set {field}: the rule's Config has no field {name!r} "
                                 f"(fields: {', '.join(sorted(model_fields))})")
            model_changes[name] = tuple(value) if isinstance(value, list) else value
        elif field in train_fields:
            changes[field] = tuple(value) if isinstance(value, list) else value
        else:
            raise ValueError(f"--set {field}: not a TrainConfig field nor model.FIELD "
                             f"(TrainConfig fields: {', '.join(sorted(train_fields))})")
    if model_changes:
        changes["model"] = tc.model.replace(**model_changes)
    return tc.replace(**changes) if changes else tc


def _check_datasets(names) -> tuple:
    """Each dataset of ``--datasets`` loads (a dataset .npz is read and checked here, before any work)."""
    from refimpl.data import get_dataset

    for name in names:
        try:
            get_dataset(name)
        except FileNotFoundError as e:
            raise ValueError(f"dataset {name} is not installed: {' '.join(str(e).split())}") from None
    return tuple(names)


def capped_workers(workers: int, force: bool, slots: int | None, prog: str) -> int:
    """``workers``, or at most the usable cores and task slots (with a warning) unless ``force``."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = min(cores, slots) if slots else cores
    if workers <= limit or force:
        return workers
    why = f"{cores} usable cores" + (f" and {slots} task slots per meta-step" if slots else "")
    print(f"{prog}: warning: --workers {workers} is more than the {why}; starting {limit} "
          f"(--workers-force starts {workers})", file=sys.stderr)
    return limit


def _name_list(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


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
        if args.set or args.datasets:
            args.parser.error("--set and --datasets choose a new run's settings; a resumed run keeps its own")
    else:
        tc = train_preset(args.preset or "tiny")
        if args.seed is not None:
            tc = tc.replace(seed=args.seed)
        if args.datasets:
            tc = tc.replace(datasets=_check_datasets(args.datasets))
        tc = apply_settings(tc, args.set or ())
    if args.scheduler is not None:
        from refimpl.train.distributed import check_scheduler_address

        check_scheduler_address(args.scheduler)
    if args.workers is not None:
        slots = tc.tasks_per_step if tc is not None else _stored_slots(args.run_dir)
        args.workers = capped_workers(args.workers, args.workers_force, slots, args.parser.prog)
    if args.workers is not None or args.scheduler is not None:
        return _train_distributed(args, tc, expect)
    with signals_interrupt() as received:
        code = run(args.run_dir, tc, resume=args.resume, restart=args.restart, n_steps=args.steps,
                   checkpoint_every=args.checkpoint_every, quiet=args.quiet, expect=expect,
                   max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes)
    return exit_status(code, received)


def _stored_slots(run_dir):
    """The task slots of the run being resumed (None when its settings cannot be read: resume says why)."""
    from pathlib import Path

    from refimpl.train.rundir import CONFIG_FILE

    try:
        return TrainConfig.from_json((Path(run_dir) / CONFIG_FILE).read_text()).tasks_per_step
    except (OSError, ValueError, TypeError, KeyError):
        return None


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
    p.add_argument("--datasets", type=_name_list, default=None,
                   help="comma-separated datasets a new run samples its tasks from (default: the preset's): "
                        "built-in names or paths of dataset .npz files holding x_train, y_train, x_test, y_test")
    p.add_argument("--set", action="append", type=_setting, default=None, metavar="FIELD=VALUE",
                   help="change a setting of a new run (repeatable): a TrainConfig field (e.g. k_shot=5, "
                        "n_way=[2,5]) or a field of the rule's Config as model.FIELD (e.g. model.activation=tanh, "
                        "model.lr_phi=0.003): a rule variant; stored in the run's train_config.json")
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
    p.add_argument("--workers-force", action="store_true",
                   help="start --workers processes even when they are more than the usable cores or the task "
                        "slots of a meta-step (by default capped to those, with a warning)")
    p.add_argument("--timeout", type=positive_float, default=30.0,
                   help="seconds to wait for an unreachable or silent Dask scheduler before stopping with "
                        "a checkpoint and exit status 3 (default 30)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=train_command, parser=p)
    return p
