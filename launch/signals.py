"""Signals for the commands that run child processes (``launch``, ``eval``,
``bench``): Ctrl-C and SIGTERM as a request to stop, whose handler stops the
children so that the command reports what was done instead of a KeyboardInterrupt
mid-way; and a signal to a child's whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def handled_signals(handler: Callable[[int, object], object]) -> Iterator[None]:
    """SIGINT and SIGTERM call ``handler(signum, frame)`` while inside; the previous
    handlers come back after. Main thread only, the only one Python lets install
    handlers: elsewhere it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, prev in previous.items():
            signal.signal(sig, prev)


def kill_group(pgid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to process group ``pgid``; nothing when it is already gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
