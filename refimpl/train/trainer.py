"""The meta-training loop (SPEC 7): meta-steps in a run directory, with BLAS limits, progress and Ctrl-C.

:func:`run` starts or resumes a run (:mod:`refimpl.train.rundir`), takes
meta-steps (:func:`refimpl.train.step.meta_step`), logs each one and writes
checkpoints; Ctrl-C writes the checkpoint of the last completed meta-step.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from refimpl.runtime import EXIT_INTERRUPTED, blas_single_thread
from refimpl.train.presets import TrainConfig
from refimpl.train.rundir import CHECKPOINT_FILE, LOG_FILE, THETA_FILE, prepare_run, truncate_log, write_checkpoint
from refimpl.train.step import meta_step


def _progress(total, initial, quiet):
    from tqdm import tqdm
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, initial=initial, unit="step", disable=disable, dynamic_ncols=True,
                desc="meta-train")


def _plain_progress(total, initial, quiet):
    """Plain lines (count, rate, ETA) on stderr when it is not a terminal (a log, nohup, CI), else None."""
    from refimpl.runtime import Progress

    if quiet or sys.stderr.isatty() or total <= initial:
        return None
    return Progress(total - initial, desc=f"meta-train (steps {initial + 1}-{total})", unit="meta-steps")



def run(run_dir, tc: TrainConfig | None = None, *, resume: bool = False, restart: bool = False, n_steps=None,
        checkpoint_every=None, quiet: bool = True, meta_gradient_fn=None, on_step=None,
        expect=None, max_seconds=None, run_tasks=None) -> int:
    """Meta-train in ``run_dir`` up to ``tc.n_steps`` (or ``n_steps``) meta-steps; return an exit status.

    Writes one log line per meta-step, a checkpoint and the theta file every
    ``checkpoint_every`` steps and at the end. Ctrl-C (KeyboardInterrupt)
    writes the checkpoint of the last completed meta-step and returns 130.
    ``on_step(state, record)`` (optional) is called after each step (tests).
    ``restart``: start over in a run directory that holds a run (see
    :func:`prepare_run`). ``max_seconds`` (optional): stop, with a checkpoint and status 0, after
    the first meta-step that ends that long after the start (the run can be
    continued with ``resume=True``; where it stopped does not change what it
    computes). BLAS runs single-threaded meanwhile (:func:`blas_single_thread`).
    ``run_tasks`` (optional): where the slots' meta-gradients are computed
    (:class:`refimpl.train.distributed.DaskTasks`; default: here, in order).
    If it raises (a lost cluster), the checkpoint of the last completed
    meta-step is written and the exception propagates.
    """
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds >= 0):
        raise ValueError(f"run: max_seconds must be a non-negative number, got {max_seconds!r}")
    started = time.monotonic()
    state, tc = prepare_run(run_dir, tc, resume=resume, restart=restart, n_steps=n_steps,
                            checkpoint_every=checkpoint_every, expect=expect)
    run_dir = Path(run_dir)
    log_path = run_dir / LOG_FILE
    if resume and not quiet:
        print(f"resuming the run in {run_dir} from meta-step {state.step} (of {tc.n_steps})", file=sys.stderr)
    bar = _progress(tc.n_steps, state.step, quiet)
    plain = _plain_progress(tc.n_steps, state.step, quiet)
    committed = state
    written = state.step          # prepare_run's checkpoint (start) or the one resumed from
    try:
        with blas_single_thread(), open(log_path, "a") as log:
            while committed.step < tc.n_steps:
                new_state, record = meta_step(committed, tc, meta_gradient_fn, run_tasks)
                # The log line is written before the commit: a line for a step the
                # checkpoint does not hold is removed when the run is resumed.
                log.write(json.dumps(record, allow_nan=False) + "\n")
                log.flush()
                committed = new_state
                for ev in record["drop_events"]:
                    message = (f"meta-step {record['step']}: task slot {ev['slot']} dropped and reset "
                               f"({ev['reason']})")
                    if bar.disable:
                        if not quiet:
                            print(message, file=sys.stderr)
                    else:
                        bar.write(message, file=sys.stderr)
                bar.update(1)
                if record["J"] is not None:
                    bar.set_postfix(J=f"{record['J']:.4f}", drop=committed.counters["dropped_total"],
                                    refresh=False)
                if plain is not None:
                    if record["J"] is not None:
                        plain.desc = (f"meta-train (steps {state.step + 1}-{tc.n_steps}; step {committed.step} "
                                      f"J {record['J']:.4f})")
                    plain.update(1)
                if on_step is not None:
                    on_step(committed, record)
                if committed.step % tc.checkpoint_every == 0:
                    write_checkpoint(run_dir, committed, tc)
                    written = committed.step
                if max_seconds is not None and time.monotonic() - started >= max_seconds:
                    break
    except KeyboardInterrupt:
        bar.close()
        write_checkpoint(run_dir, committed, tc)
        truncate_log(run_dir, committed.step)
        print(f"\ninterrupted: checkpoint of meta-step {committed.step} written to {run_dir / CHECKPOINT_FILE}; "
              f"continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        if run_tasks is None:
            raise
        bar.close()                       # the cluster failed: keep the last completed meta-step
        if written != committed.step:
            write_checkpoint(run_dir, committed, tc)
        truncate_log(run_dir, committed.step)
        raise
    bar.close()
    if written != committed.step:
        write_checkpoint(run_dir, committed, tc)
    if not quiet:
        if committed.step > tc.n_steps:
            what = f"nothing to do: the run is at meta-step {committed.step}, past the {tc.n_steps} asked for"
        else:
            what = f"{'done' if committed.step == tc.n_steps else 'time limit reached'}: {committed.step} of " \
                   f"{tc.n_steps} meta-steps"
        print(f"{what}; theta in {run_dir / THETA_FILE}", file=sys.stderr)
    return 0
