"""Run-time helpers every command shares: the exit status after Ctrl-C, BLAS limits, writable output
directories, the argparse types of the command line, and progress on stderr.

Part of the foundation: imports nothing of refimpl, so the trainer, the evaluation and the command
line (refimpl/cli/) can all use it.
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

#: Exit status after Ctrl-C (128 + SIGINT), as a shell reports it.
EXIT_INTERRUPTED = 130


def blas_single_thread():
    """A context manager limiting BLAS to one thread (threadpoolctl, a scikit-learn dependency).

    The matrices of a meta-step are small, and OpenBLAS's default thread pool
    spin-waits on a loaded machine (benchmarks/RESULTS.md, "One BLAS thread
    for meta-training and evaluation"); a fixed thread count also removes one
    possible source of run-to-run differences. Without threadpoolctl: no limit.
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


# ---------------------------------------------------------------- progress on stderr
# A tqdm bar on a terminal, plain lines otherwise: a log or CI file gets one line per ``interval`` seconds
# (and one at the end) with the count, the ETA and the rate, in tqdm's notation
# (``golden verify: 12/57 cases [00:03<00:11, 3.95 cases/s]``). Report lines written through
# Progress.write clear the bar first (tqdm's external_write_mode), so the two never garble each other.

#: The plain line: count, elapsed < remaining (the ETA), rate (tqdm's notation, and its time format).
PLAIN_FORMAT = "{desc}: {n}/{total} {unit} [{elapsed}<{remaining}, {rate} {unit}/s]"
#: Seconds between two plain lines.
PLAIN_INTERVAL = 5.0


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):    # no isatty, or a closed stream
        return False


class Progress:
    """Counts ``total`` items of ``unit`` (plural) under ``desc`` on ``file`` (default stderr): a tqdm bar
    when ``file`` is a terminal, otherwise a plain line every ``interval`` seconds and one at the end."""

    def __init__(self, total: int, desc: str, unit: str = "cases", file=None, interval: float = PLAIN_INTERVAL):
        from tqdm import tqdm

        self.file = sys.stderr if file is None else file
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.n = 0
        self.start = self.last = time.monotonic()
        self.bar = (tqdm(total=total, desc=desc, unit=f" {unit}", file=self.file, leave=False,
                         dynamic_ncols=True) if _is_terminal(self.file) else None)

    def line(self, elapsed: float) -> str:
        from tqdm import tqdm

        rate = self.n / elapsed if elapsed > 0 else 0.0
        remaining = tqdm.format_interval((self.total - self.n) / rate) if rate > 0 else "?"
        return PLAIN_FORMAT.format(desc=self.desc, n=self.n, total=self.total, unit=self.unit,
                                   elapsed=tqdm.format_interval(elapsed), remaining=remaining,
                                   rate=f"{rate:.2f}" if rate > 0 else "?")

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last >= self.interval or self.n >= self.total:
            self.last = now
            print(self.line(now - self.start), file=self.file, flush=True)

    def status(self, text: str) -> None:
        """What is being done now: the bar's postfix on a terminal, otherwise a plain ``desc: text`` line."""
        if self.bar is not None:
            self.bar.set_postfix_str(text)
            return
        print(f"{self.desc}: {text}", file=self.file, flush=True)

    def write(self, log, text: str) -> None:
        """``log(text)`` (a report line), with the bar cleared around it on a terminal."""
        if self.bar is None:
            log(text)
            return
        with self.bar.external_write_mode():
            log(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
