"""Ctrl-C and SIGTERM, for every command in one place.

``refimpl train`` checkpoints and exits on either signal (:func:`signals_interrupt`, exit status 128 +
the signal number); ``refimpl demo`` and every other command report a Ctrl-C in one line and exit
with :data:`~refimpl.runtime.EXIT_INTERRUPTED` (:func:`interrupted`).
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading

from refimpl.runtime import EXIT_INTERRUPTED


@contextlib.contextmanager
def signals_interrupt():
    """Within it, Ctrl-C (SIGINT) and SIGTERM both raise KeyboardInterrupt, so the trainer checkpoints and
    exits; yields the list of the signal numbers received (for :func:`exit_status`).

    SIGINT is set explicitly because a process started in the background by a
    non-interactive shell inherits SIGINT *ignored*, and Python then installs
    no KeyboardInterrupt handler. The exit status is 128 + the signal number
    (130 for SIGINT, 143 for SIGTERM). Only possible from the main thread:
    elsewhere the handlers are left as they are.
    """
    received = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            received.append(signum)
            raise KeyboardInterrupt

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield received
    finally:
        for sig, h in previous.items():
            signal.signal(sig, h)


def exit_status(code: int, received: list) -> int:
    """The trainer's exit status ``code``, made 128 + the signal number when a signal interrupted it."""
    if code == EXIT_INTERRUPTED and received:
        return 128 + received[-1]
    return code


def interrupted(message: str) -> int:
    """Say ``message`` on stderr after a Ctrl-C; returns :data:`~refimpl.runtime.EXIT_INTERRUPTED`."""
    print(message, file=sys.stderr)
    return EXIT_INTERRUPTED
