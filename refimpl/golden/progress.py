"""Progress of a golden command on stderr: a tqdm bar on a terminal, plain lines otherwise.

A log or CI file gets one line per ``interval`` seconds (and one at the end)
with the count, the ETA and the rate, in tqdm's notation
(``golden verify: 12/57 cases [00:03<00:11, 3.95 cases/s]``); a terminal gets
tqdm's bar, and report lines written through :meth:`Progress.write` clear it
first (tqdm's ``external_write_mode``), so the two never garble each other. tqdm and the standard library
only: the verifier imports this without refimpl's compute.
"""
from __future__ import annotations

import sys
import time

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
    """Counts ``total`` items of ``unit`` (plural) under ``desc`` on ``file`` (default stderr)."""

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
