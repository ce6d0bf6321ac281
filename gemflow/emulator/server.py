"""A deterministic Gemini API emulator on loopback: the HTTP server and :class:`Emulator`.

The real google-genai SDK talks to it unchanged (``HttpOptions(base_url=emulator.url)`` or
``GOOGLE_GEMINI_BASE_URL``). The layers, each in its own module:

- :class:`_Handler` (here) speaks HTTP/1.1 (keep-alive, Content-Length, chunked request bodies);
- :class:`~gemflow.emulator.service.Service` turns one request into one reply: routing, key
  check, parsing and the response bodies (``wire.py``), validation against ``gemflow.models``
  (``catalog.py``), and the answer itself (``answer.py``: faults, an optional prompt rewriter,
  what the model draws, text for readers, usage metadata from ``usage.py``);
- :class:`~gemflow.emulator.batches.Batches` runs batch jobs in threads of their own, and
  :class:`~gemflow.emulator.files.FileStore` keeps uploaded and generated files on disk;
- :class:`Emulator` (here) owns the server thread, those two and the request log (``log.py``).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from gemflow.emulator.answer import Answerer, Dropped
from gemflow.emulator.batch_faults import BatchFaults
from gemflow.emulator.batches import Batches, BatchInfo
from gemflow.emulator.faults import Faults
from gemflow.emulator.files import MAX_FILE_BYTES, FileStore, StoredFile
from gemflow.emulator.log import RequestLog, path_for_log
from gemflow.emulator.rewrite import Rewriter
from gemflow.emulator.service import Service
from gemflow.emulator.usage import THOUGHTS_TOKENS
from gemflow.emulator.wire import ApiFailure, Reply, bad_request

__all__ = ["THOUGHTS_TOKENS", "Emulator"]

# A hostile (or broken) client must not hold a thread or the memory: a request must arrive whole
# within REQUEST_SECONDS, a stalled connection is dropped after SOCKET_SECONDS, and a body may be
# at most MAX_BODY_BYTES, gzipped or not.
REQUEST_SECONDS = 60.0
SOCKET_SECONDS = 30.0
MAX_BODY_BYTES = 64 * 1024 * 1024


# --------------------------------------------------------------------------- HTTP transport


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], service: Service, log: RequestLog) -> None:
        self.service = service
        self.log = log
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections, so no handler serves after stop()."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):  # the client went away: not our problem
            return
        super().handle_error(request, client_address)


class _Gone(Exception):
    """The request's body did not arrive: there is no one to answer."""


class _Deadline:
    """A connection's buffered reader, whose reads all end by the deadline of the request being
    read: a socket timeout bounds only each ``recv``, and a client that sends a byte now and then
    never trips it. Each ``recv`` here may wait only until the deadline."""

    def __init__(self, raw: Any, connection: socket.socket) -> None:
        self.raw = raw
        self.connection = connection
        self.until = time.monotonic() + REQUEST_SECONDS

    def start(self) -> None:
        self.until = time.monotonic() + REQUEST_SECONDS

    def _arm(self) -> None:
        remaining = self.until - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request did not arrive in time")
        self.connection.settimeout(min(remaining, SOCKET_SECONDS))

    def readline(self, limit: int = -1) -> bytes:
        line = bytearray()
        while limit < 0 or len(line) < limit:
            self._arm()
            buffered = self.raw.peek(1)  # at most one recv, when nothing is buffered
            if not buffered:
                break
            end = buffered.find(b"\n") + 1 or len(buffered)
            if limit >= 0:
                end = min(end, limit - len(line))
            line += self.raw.read(end)  # from the buffer: no recv
            if line.endswith(b"\n"):
                break
        return bytes(line)

    def read(self, size: int = -1) -> bytes:
        data = bytearray()
        while size < 0 or len(data) < size:
            self._arm()
            chunk = self.raw.read1(65536 if size < 0 else size - len(data))  # at most one recv
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def close(self) -> None:
        self.raw.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "gemflow-emulator"
    sys_version = ""
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server
    rfile: Any  # a _Deadline over the socket's reader

    def setup(self) -> None:
        super().setup()
        self.rfile = _Deadline(self.rfile, self.connection)

    def handle_one_request(self) -> None:
        self.rfile.start()  # the next request (a keep-alive wait included) has its own deadline
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib's access log on stderr; the emulator keeps its own log."""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def _serve(self) -> None:
        service, log = self.server.service, self.server.log
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query))
        record = log.begin(self.command, path_for_log(url.path, query))
        reply: Reply | None
        try:
            body = self._read_body()
            self.connection.settimeout(SOCKET_SECONDS)  # the answer: a stalled reader is dropped
            headers = {name.lower(): value for name, value in self.headers.items()}
            reply = service.handle(self.command, url.path, query, headers, body, record)
        except (Dropped, _Gone):
            reply = None
        except ApiFailure as failure:
            reply = failure.reply()
        except Exception:
            traceback.print_exc()
            reply = ApiFailure(500, "Internal error in the gemflow emulator.").reply()
        # Record before sending: a client that has its answer must find the request logged.
        log.finish(record, reply.status if reply else None)
        if reply is None:
            self.close_connection = True
        else:
            self._send(reply)

    def _read_body(self) -> bytes:
        try:
            return self._read_body_bytes()
        except OSError:  # too slow to arrive (see _Deadline), or the client went away
            raise _Gone from None

    def _read_body_bytes(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = self._read_chunked()
        else:
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self.close_connection = True  # we can't tell where this body ends
                raise bad_request("Invalid Content-Length header.") from None
            if length > MAX_BODY_BYTES:
                raise self._too_large()
            body = self.rfile.read(length) if length > 0 else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = self._gunzip(body)
        return body

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise self._too_large()
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def _gunzip(self, body: bytes) -> bytes:
        """``body`` inflated, but never past MAX_BODY_BYTES: a gzip bomb stops there."""
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(body, MAX_BODY_BYTES + 1)
        except zlib.error:
            raise bad_request("Request body is not valid gzip.") from None
        if len(data) > MAX_BODY_BYTES:
            raise self._too_large()
        if not inflater.eof:
            raise bad_request("Request body is not valid gzip.")
        return data

    def _too_large(self) -> ApiFailure:
        self.close_connection = True  # the rest of the body is not read
        return bad_request(f"Request payload size exceeds the limit: {MAX_BODY_BYTES} bytes.")

    def _send(self, reply: Reply) -> None:
        try:
            if reply.file is not None:
                self._send_file(reply)
                return
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if reply.trickle:
                self._trickle(reply.body, reply.trickle)
            else:
                self.wfile.write(reply.body)
        except OSError:  # the client went away (or cut a trickle short)
            self.close_connection = True

    def _send_file(self, reply: Reply) -> None:
        """Stream a file (a download) instead of holding it in memory."""
        assert reply.file is not None
        with reply.file.open("rb") as source:
            size = source.seek(0, 2)
            source.seek(0)
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(size))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            shutil.copyfileobj(source, self.wfile, 1024 * 1024)

    def _trickle(self, body: bytes, seconds: float) -> None:
        """Send ``body`` a byte at a time, ``seconds`` apart, until the client or stop() ends it."""
        stopping = self.server.service.answerer.stopping
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            if stopping.wait(seconds):
                self.close_connection = True
                return


# --------------------------------------------------------------------------- the emulator


class Emulator:
    """A Gemini API emulator serving on loopback in a daemon thread.

    Use as a context manager (``with Emulator() as emu: ...``) or call :meth:`start` and
    :meth:`stop`. Every request is recorded (see :attr:`requests`); with ``log_path`` the records
    are also appended to that file as JSON lines. Neither ever holds image bytes or the API key.

    ``rewrite`` makes it behave like a real service: what it does to prompts before its image
    model sees them, and how that model letters text (see :mod:`gemflow.emulator.rewrite`): a
    :class:`~gemflow.emulator.rewrite.Rewriter`, or its modes as text (``"system,paraphrase"``).
    Without it prompts reach the model as sent, and it letters what it is asked.

    Like a real model, it answers the n-th identical image request with a new picture, take n
    (see :mod:`gemflow.emulator.takes`); requests with a ``seed`` always get the same one.
    ``vary_takes=False`` answers every identical request with take 1, the same bytes. With
    ``takes_file``, the counts are read from that file when it starts and kept there when it stops.

    It runs batch jobs (``client.batches``) in threads of its own, with the timings and faults of
    ``batch_faults`` (a :class:`~gemflow.emulator.batch_faults.BatchFaults`); :meth:`batches`
    shows them. Uploaded and generated files (``client.files``) live in a temporary folder, at
    most ``max_file_bytes`` each. Stopping the emulator interrupts its jobs (they keep the state
    they had) and removes its files.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_path: Path | None = None,
        faults: Faults | None = None,
        api_key: str | None = None,
        scale: float = 1.0,
        extra_models: Iterable[str] = (),
        rewrite: Rewriter | str | None = None,
        vary_takes: bool = True,
        batch_faults: BatchFaults | None = None,
        max_file_bytes: int = MAX_FILE_BYTES,
        takes_file: Path | None = None,
    ) -> None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        self.host = host
        self.port = port
        self.log_path = Path(log_path) if log_path is not None else None
        self.takes_file = takes_file
        self._stopping = threading.Event()
        self._answerer = Answerer(
            faults=faults if faults is not None else Faults(),
            scale=scale,
            stopping=self._stopping,
            rewriter=Rewriter.parse(rewrite) if isinstance(rewrite, str) else rewrite,
            vary_takes=vary_takes,
        )
        self._files = FileStore(max_bytes=max_file_bytes)
        self._batches = Batches(
            answerer=self._answerer,
            files=self._files,
            faults=batch_faults if batch_faults is not None else BatchFaults(),
        )
        self._service = Service(
            api_key=api_key,
            extra_models=extra_models,
            answerer=self._answerer,
            batches=self._batches,
            files=self._files,
        )
        self._log = RequestLog()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()

    @property
    def faults(self) -> Faults:
        """The live fault settings: ``emu.faults.push("429")`` affects the next request."""
        return self._answerer.faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._answerer.faults = faults

    @property
    def batch_faults(self) -> BatchFaults:
        """The live batch timings and faults: ``emu.batch_faults.push_job("fail")``."""
        return self._batches.faults

    @batch_faults.setter
    def batch_faults(self, faults: BatchFaults) -> None:
        self._batches.faults = faults

    def batches(self) -> list[BatchInfo]:
        """Every batch job not deleted, oldest first: state, counts, outcome of each item."""
        return self._batches.snapshot()

    def files(self) -> list[StoredFile]:
        """Every file (uploaded, or a batch's output), oldest first."""
        return self._files.snapshot()

    @property
    def url(self) -> str:
        """``http://HOST:PORT``; only known once started (``port=0`` picks a free port)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: call start() first")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """A snapshot of the request records so far, in the order the requests finished."""
        return self._log.records()

    def api_calls(self, endpoint: str = "generateContent") -> list[dict[str, Any]]:
        return [record for record in self.requests if record["endpoint"] == endpoint]

    def start(self) -> Emulator:
        with self._lifecycle:
            if self._server is not None:
                raise RuntimeError("the emulator is already running")
            self._stopping.clear()
            if self.takes_file is not None:
                self._answerer.takes.load(self.takes_file)
            server = _Server((self.host, self.port), self._service, self._log)
            if self.log_path is not None:
                self._log.open(self.log_path)
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"gemflow-emulator-{server.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving. Requests sleeping in latency or ``hang`` are dropped, not waited for."""
        with self._lifecycle:
            server, thread = self._server, self._thread
            if server is None or thread is None:
                return
            self._stopping.set()
            server.shutdown()
            server.close_connections()
            server.server_close()
            thread.join()
            self._batches.stop()
            self._files.close()
            self._server = self._thread = None
            self._log.close()
            if self.takes_file is not None:
                self._answerer.takes.save(self.takes_file)

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` is called from another thread or Ctrl-C; then stop."""
        if self._server is None:
            self.start()
        try:
            while not self._stopping.wait(0.5):
                pass
        finally:
            self.stop()

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
