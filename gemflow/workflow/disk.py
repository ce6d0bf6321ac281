"""What loading a workflow asks of the disk besides the workflow file: each question is recorded
with its answer, so that a compiled plan (``gemflow.workflow.plan``) is reused only while every
one of them still gets the same answer.

The questions are few and cheap to ask again: whether a file exists, what a folder resolves to,
which names in a folder are symbolic links or are there at all, what an input file is, and the
bytes of a text file the workflow includes (compared by size, times and inode first, as git's
index does; read again and hashed only when those differ).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

Observation = tuple[Any, ...]  # (question, *arguments, answer): plain data, kept in a plan


class Disk:
    """The loader's view of the disk, recording each question once with its answer."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, ...], Any] = {}  # (question, *arguments) -> answer
        self._listings: dict[str, frozenset[str]] = {}

    @property
    def seen(self) -> list[Observation]:
        return [(*question, answer) for question, answer in self.answers.items()]

    def _ask(self, question: tuple[str, ...], answer: Callable[[], Any]) -> Any:
        if question not in self.answers:
            self.answers[question] = answer()
        return self.answers[question]

    def exists(self, path: str) -> bool:
        return bool(self._ask(("exists", path), lambda: os.path.exists(path)))

    def realpath(self, path: str) -> str:
        return str(self._ask(("realpath", path), lambda: os.path.realpath(path)))

    def has_entry(self, folder: str, name: str) -> bool:
        """Whether ``folder`` holds an entry named ``name`` (exactly: not another case of it)."""
        if folder not in self._listings:
            self._listings[folder] = _listing(folder)
        return bool(self._ask(("entry", folder, name), lambda: name in self._listings[folder]))

    def is_link(self, path: str) -> bool:
        """Whether ``path`` is a symbolic link; the links of its folder are listed once."""
        folder, name = os.path.split(path)
        return name in self.links(folder)

    def links(self, folder: str) -> list[str]:
        links: list[str] = self._ask(("links", folder), lambda: sorted(links_in(folder)))
        return links

    def file_type(self, path: str) -> str | None:
        """'file', 'unreadable' (a file this user cannot read), 'folder' or 'other' (a pipe, a
        device); None when nothing is there."""
        found: str | None = self._ask(("type", path), lambda: file_type(Path(path)))
        return found

    def read(self, path: str, most: int) -> bytes:
        """At most ``most`` bytes of regular file ``path`` (``OSError`` for anything else)."""
        data, info = read_regular_file(path, most)
        self.answers[("read", path, str(most))] = (signature(info), _sha(data))
        return data

    def unchanged(self, path: str, most: int, seen: tuple[Any, Any]) -> bool:
        """Whether file ``path`` still has the bytes it had when ``read`` saw ``seen``."""
        sig, sha = seen
        return signature(os.stat(path)) == tuple(sig) or _sha(self.read(path, most)) == sha


_QUESTIONS: dict[str, Callable[..., Any]] = {
    "exists": Disk.exists,
    "realpath": Disk.realpath,
    "entry": Disk.has_entry,
    "links": Disk.links,
    "type": Disk.file_type,
}


def still_true(seen: Iterable[Observation]) -> bool:
    """Whether every question in ``seen`` gets the same answer now."""
    disk = Disk()
    try:
        for question, *arguments, answer in seen:
            if question == "read":
                path, most = arguments
                same = disk.unchanged(path, int(most), answer)
            elif question in _QUESTIONS:
                same = _QUESTIONS[question](disk, *arguments) == answer
            else:
                return False  # a question this gemflow does not ask: not its plan
            if not same:
                return False
    except (OSError, ValueError, TypeError):
        return False
    return True


def read_regular_file(path: str | Path, most: int) -> tuple[bytes, os.stat_result]:
    """At most ``most`` bytes of ``path``, and its stat; ``OSError`` for a folder, a pipe or a
    device.

    Opened non-blocking, so a FIFO is refused at once instead of waiting for a writer; reading at
    most ``most`` bytes also catches a file that grows after it was checked.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "it is a folder, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file (a pipe or a device?)")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        return handle.read(most), info


def signature(info: os.stat_result) -> tuple[int, int, int, int]:
    """What changes when a file's content may have: size, mtime, inode and ctime (an edit that
    keeps size and mtime, or a file swapped in with its old mtime, still changes the ctime)."""
    return info.st_size, info.st_mtime_ns, info.st_ino, info.st_ctime_ns


def file_type(path: Path) -> str | None:
    """What is at ``path``; never raises: a name too long for the OS is simply not there."""
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode):
        return "file" if os.access(path, os.R_OK) else "unreadable"
    return "folder" if stat.S_ISDIR(mode) else "other"


def links_in(folder: str) -> frozenset[str]:
    """The names of the symbolic links in ``folder`` (none when it is not there)."""
    try:
        with os.scandir(folder) as entries:
            return frozenset(entry.name for entry in entries if entry.is_symlink())
    except OSError:
        return frozenset()


def _listing(folder: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return frozenset()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
