"""A deadline for the whole answer to one request, which neither google-genai nor httpx has.

google-genai turns ``HttpOptions.timeout`` (milliseconds) into the httpx timeout of the request
(``_api_client.py`` passes ``timeout / 1000`` seconds with each request), and httpx applies it to
each network operation on its own: connecting, each read, each write. There is no total: a server
that sends a byte every half second never trips a 3 s read timeout, and holds the step as long as
it likes.

``Deadlines.call`` runs one SDK call in a worker thread and waits for it until the deadline, no
longer. Then the call is abandoned: its caller gets ``DeadlinePassed`` at once, and the connection
is cut (shut down, so that the worker's blocked read returns and the worker ends) as soon as the
answer has begun: the httpx response hook (``Deadlines.hook``, given to the SDK's client as an
event hook) hands over each answer's network stream before its body is read. An answer whose
headers have not come yet has no stream to cut: its worker ends with the transport's own per-read
timeout, or when the headers come, and whatever it gets is dropped. Workers are daemon threads,
so an abandoned call never keeps the process alive.

Only public interfaces are used: httpx's event hooks, the ``network_stream`` response extension
and its ``get_extra_info("socket")``, for httpx and httpx2 alike.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlinePassed(Exception):
    """The call was not answered in full by its deadline, and was abandoned."""


class _Call:
    """One call in a worker thread: its outcome, and the connection its answer arrives on."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._stream: Any = None
        self._abandoned = False

    def arrived(self, stream: Any) -> None:
        with self._lock:
            self._stream = stream
            abandoned = self._abandoned
        if abandoned:
            _cut(stream)

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            stream = self._stream
        if stream is not None and not self.done.is_set():
            _cut(stream)


class Deadlines:
    """Calls bounded by a deadline, for one HTTP client whose response hooks include ``hook``."""

    def __init__(self) -> None:
        self._calls: dict[int, _Call] = {}  # worker thread id -> its call
        self._lock = threading.Lock()

    def hook(self, response: Any) -> None:
        """An httpx response hook: the answer of the calling worker's call has begun."""
        call = self._calls.get(threading.get_ident())
        if call is not None:
            call.arrived(response.extensions.get("network_stream"))

    def call(self, function: Callable[[], T], seconds: float) -> T:
        """``function()``, if it returns (or raises) within ``seconds``; else ``DeadlinePassed``."""
        call = _Call()

        def work() -> None:
            me = threading.get_ident()
            with self._lock:
                self._calls[me] = call
            try:
                call.result = function()
            except BaseException as exc:  # handed to the caller, or dropped once abandoned
                call.error = exc
            finally:
                with self._lock:
                    self._calls.pop(me, None)
                call.done.set()

        threading.Thread(target=work, name="gemflow-request", daemon=True).start()
        if not call.done.wait(seconds):
            call.abandon()
            raise DeadlinePassed
        if call.error is not None:
            raise call.error
        result: T = call.result
        return result


def _cut(stream: Any) -> None:
    """Shut the connection down (not just close it: a read blocked on it returns at once)."""
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            # socket.socket's own shutdown, also for an SSLSocket: its override would drop the
            # TLS state under the worker's feet rather than just end the connection.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
