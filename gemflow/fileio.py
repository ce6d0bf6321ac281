"""Files on disk: atomic writes, and content digests remembered by stat so a no-op reads nothing."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from stat import S_ISREG
from typing import Any

CHUNK = 1 << 20
LOCK_POLL = 0.05  # seconds between tries for a lock another process (or thread) holds


def _file_mode() -> int:
    """0666 less the process's umask: the mode ``open()`` gives a new file."""
    try:  # Linux says it without changing it (umask() can only be read by setting it)
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Write ``data`` to ``path`` so that a reader (or a killed run) never sees a partial file.

    ``durable`` also survives a power cut (fsync); outputs do without it, since every output can
    be restored from the cache, and an fsync per image slows wide runs down.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600; a file we write gets what open() would
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def held(path: Path, *, cancelled: Callable[[], bool], waiting: str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (made if missing) across processes and
    threads; the system lets go of it when a process dies. Waiting polls, so that an
    interrupted run stops waiting: ``Interrupted(waiting)`` once ``cancelled()``."""
    from gemflow.errors import Interrupted

    with open(path, "a+b") as handle:  # an open of its own: threads exclude each other too
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if cancelled():
                    raise Interrupted(waiting) from None
                time.sleep(LOCK_POLL)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def hash_file(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()


Signature = tuple[int, int, int, int]  # size, mtime_ns, inode, ctime_ns


class DigestMemo:
    """Content digests of files, re-hashed when size, mtime, inode or ctime differ from last time
    (ctime too: an edit in place that keeps size and mtime, as ``touch -r`` can, still moves it).

    Cheapest first, as make and git do: the stat decides whether to read; the hash decides whether
    the content changed. A touched file is re-hashed and found unchanged; its dependents do not run.
    """

    def __init__(self, entries: dict[str, tuple[Any, ...]] | None = None) -> None:
        self.entries = dict(entries or {})
        self.changed = False
        self._lock = threading.Lock()

    def digest(self, path: Path) -> str | None:
        """The file's content digest, or None when it does not exist."""
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):  # missing, or a parent is not a folder
            return None
        if not S_ISREG(stat.st_mode):  # a folder or a FIFO put in a file's place: never block
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        signature: Signature = _signature(stat)
        key = str(path)
        known = self.entries.get(key)
        if known is not None and len(known) == 5 and known[:4] == signature:
            return str(known[4])
        value = hash_file(path)
        self.remember(path, value, signature)
        return value

    def forget(self, path: Path) -> None:
        """The file at ``path`` moved away: its digest must be read again."""
        with self._lock:
            if self.entries.pop(str(path), None) is not None:
                self.changed = True

    def remember(self, path: Path, value: str, signature: Signature | None = None) -> None:
        """Record a digest we already know (a file we just wrote), saving a read next time."""
        if signature is None:
            signature = _signature(path.stat())
        with self._lock:
            self.entries[str(path)] = (*signature, value)
            self.changed = True


def _signature(stat: os.stat_result) -> Signature:
    return stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns
