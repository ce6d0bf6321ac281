"""Finishing work that a Ctrl-C or SIGTERM must not cut in half.

A run is interruptible until its work is done. What follows (saving the lock file, closing the
store, writing ``--json``) is short and must be whole: ``deferred`` runs it to its end and then
delivers the signal as it would have been delivered (the handler in place runs: a
``KeyboardInterrupt``, for gemflow's commands), so the command still ends as interrupted.

``leave`` ends the process once a command is done, so that no signal can arrive while the
interpreter shuts down (its handlers gone, a signal then kills the process: exit -2 or -15).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

STOPPING = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Run the block to its end even if SIGINT or SIGTERM arrives; deliver the signal after it.

    A second signal is not deferred: whoever sends it means it (the block may be stuck waiting
    for another process's lock). Only the main thread receives signals; in any other (a
    notebook's worker, say) the block simply runs. A handler set outside Python is left alone.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(number: int, frame: object) -> None:
        if received:
            raise KeyboardInterrupt
        received.append(number)

    previous = {}
    for signum in STOPPING:
        handler = signal.getsignal(signum)
        if handler is not None:
            previous[signum] = handler
            signal.signal(signum, hold)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for number in dict.fromkeys(received):
            signal.raise_signal(number)


def leave(code: int, interrupted: int) -> NoReturn:
    """Exit with ``code`` (``interrupted`` if a signal comes before the end) at once: the work is
    done and its files are closed, and the interpreter's shutdown is skipped, with its window in
    which a signal kills the process instead of ending it with an exit code."""
    while True:
        try:
            if hasattr(signal, "pthread_sigmask"):  # from here on a signal only waits
                signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
                if set(signal.sigpending()) & set(STOPPING):
                    code = interrupted
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):  # a closed pipe or stream
                    stream.flush()
            os._exit(code)
        except KeyboardInterrupt:  # it came before the signals were blocked
            code = interrupted
