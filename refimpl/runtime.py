"""Run-time helpers every command shares: the exit status after Ctrl-C, BLAS limits, writable output
directories, and the argparse types of the command line.

Part of the foundation: imports nothing of refimpl, so the trainer, the evaluation and the command
line (refimpl/cli/) can all use it.
"""
from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

#: Exit status after Ctrl-C (128 + SIGINT), as a shell reports it.
EXIT_INTERRUPTED = 130


def blas_single_thread():
    """A context manager limiting BLAS to one thread (threadpoolctl, a scikit-learn dependency).

    The matrices of a meta-step are small: with OpenBLAS's default thread
    pool one small-preset unroll took 3.1 s instead of 0.24 s on this 2-core
    machine while it was loaded by other processes (threads spin-waiting),
    and a fixed thread count removes one possible source of run-to-run
    differences. Without threadpoolctl: no limit.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:   # pragma: no cover - scikit-learn requires threadpoolctl
        import contextlib
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


class RunDirError(ValueError):
    """The run directory does not allow the requested start or resume."""


def check_run_dir(run_dir, *, create: bool) -> Path:
    """``run_dir`` as a Path, once it is known to be a directory this process can write in.

    ``create``: make it (and its parents) when missing; otherwise a missing
    directory is a RunDirError too.
    """
    if str(run_dir).strip() == "":
        raise RunDirError("the run directory is an empty path")
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is not a directory")
    if not run_dir.exists():
        if not create:
            raise RunDirError(f"{run_dir} does not exist")
        try:
            run_dir.mkdir(parents=True)
        except OSError as e:
            raise RunDirError(f"cannot create {run_dir}: {e.strerror or e}") from None
    try:
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as e:
        raise RunDirError(f"cannot write in {run_dir}: {e.strerror or e}") from None
    return run_dir


def number_type(convert, minimum, description):
    """An argparse ``type`` that parses with ``convert`` and requires a finite value >= ``minimum``
    (> 0 when ``minimum`` is 0 and ``description`` says positive)."""
    strict = description.startswith("positive")

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {description}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value <= 0):
            raise argparse.ArgumentTypeError(f"expected a {description}, got {value}")
        return value
    return parse


positive_int = number_type(int, 1, "positive integer")
positive_float = number_type(float, 0, "positive number")
nonneg_int = number_type(int, 0, "non-negative integer")
nonneg_float = number_type(float, 0, "non-negative number")


def directory_arg(text: str) -> str:
    """An argparse ``type``: a non-empty path (an empty one would mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a directory, got an empty path")
    return text
